"""k3s control plane failures. Signals from the Kubernetes probe (issue 4) and the vmagent /
no-data probes (issue 5)."""

from exporter.catalog.model import Alert, FailureMode, Panel, Query

ENTRIES = (
    FailureMode(
        id="etcd-corruption",
        heading="etcd corruption on one node",
        layer="k3s",
        signals=("honeydue_kube_apiserver_etcd_ready", "honeydue_kube_apiserver_readyz_up"),
        probes=("kubernetes_nodes",),
        alerts=(
            Alert(
                name="KubeApiserverEtcdCheckFailing",
                severity="warning",
                expr="honeydue_kube_apiserver_etcd_ready == 0 and on (node) honeydue_kube_apiserver_readyz_up == 1",
                for_="5m",
                summary="A server node's API server answers but reports its etcd check failing.",
                description="/readyz/etcd on {{ $labels.node }} has failed for 5 minutes while the node answers: "
                "its etcd member has diverged or lost its peers. Remove the node from the cluster and rejoin it.",
            ),
        ),
        panels=(
            Panel(
                title="etcd check per server node",
                queries=(
                    Query("honeydue_kube_apiserver_etcd_ready", "etcd ok {{node}}"),
                    Query("honeydue_kube_apiserver_readyz_up", "answered {{node}}"),
                ),
            ),
        ),
    ),
    FailureMode(
        id="coredns-down",
        heading="CoreDNS down",
        layer="k3s",
        signals=("honeydue_dns_up", "honeydue_dns_result", "honeydue_dns_lookup_duration_seconds",
                 "honeydue_kube_deployment_status_replicas_available"),
        probes=("dns", "kubernetes_deployments"),
        alerts=(
            Alert(
                name="ClusterDnsLookupFailing",
                severity="critical",
                expr='honeydue_dns_up{role="cluster"} == 0',
                for_="3m",
                summary="A Service name does not resolve through the cluster DNS server.",
                description="{{ $labels.domain }} has not resolved through {{ $labels.resolver }} for 3 minutes "
                "(see honeydue_dns_result). New connections inside the cluster fail with no such host. "
                "kubectl logs -n kube-system deploy/coredns --previous.",
            ),
            Alert(
                name="CoreDNSUnavailable",
                severity="critical",
                expr='honeydue_kube_deployment_status_replicas_available{namespace="kube-system",'
                'deployment="coredns"} == 0',
                for_="2m",
                summary="No CoreDNS replica is available: pods cannot resolve Service names.",
                description="coredns has had {{ $value }} available replicas for 2 minutes. New connections by "
                "name fail (\"no such host\"). Check `kubectl logs -n kube-system deploy/coredns --previous`.",
            ),
        ),
        panels=(
            Panel(
                title="Cluster DNS: Service name lookup",
                queries=(
                    Query('honeydue_dns_up{role="cluster"}', "up {{domain}}"),
                    Query('honeydue_dns_lookup_duration_seconds{role="cluster"}', "seconds {{domain}}"),
                ),
            ),
            Panel(
                title="CoreDNS replicas available",
                queries=(Query('honeydue_kube_deployment_status_replicas_available{deployment="coredns"}',
                               "available"),),
            ),
        ),
    ),
    FailureMode(
        id="metrics-server-down",
        heading="metrics-server down",
        layer="k3s",
        signals=("honeydue_kube_apiservice_available", "honeydue_kube_deployment_status_replicas_available"),
        probes=("kubernetes_apiservices", "kubernetes_deployments"),
        alerts=(
            Alert(
                name="MetricsServerUnavailable",
                severity="warning",
                expr='honeydue_kube_apiservice_available{apiservice="v1beta1.metrics.k8s.io"} == 0',
                for_="10m",
                summary="The metrics API is unavailable: kubectl top fails and HPAs cannot scale.",
                description="APIService {{ $labels.apiservice }} has not been Available for 10 minutes. "
                "Restart it with `kubectl rollout restart deployment/metrics-server -n kube-system`.",
            ),
        ),
        panels=(
            Panel(
                title="metrics-server APIService and replicas",
                queries=(
                    Query("honeydue_kube_apiservice_available", "{{apiservice}} available"),
                    Query('honeydue_kube_deployment_status_replicas_available{deployment="metrics-server"}',
                          "replicas available"),
                ),
            ),
        ),
    ),
    FailureMode(
        id="vmagent-cant-reach-obs",
        row="Observability pipeline",
        heading="vmagent can't reach obs.88oakapps.com",
        layer="k3s",
        planned="issue 5: vmagent remote-write errors, drops and pending bytes; obs ingest /health probe",
    ),
    FailureMode(
        id="grafana-no-data",
        row="Observability pipeline",
        heading='Grafana dashboard shows "no data"',
        layer="k3s",
        signals=("honeydue_probe_success", "honeydue_probe_last_success_timestamp_seconds"),
        planned="issue 5: metrics used by shipped dashboards and rules that have no series in the obs TSDB",
    ),
)
