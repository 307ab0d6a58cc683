"""k3s control plane failures. Signals arrive with the Kubernetes probe (issue 4) and the
vmagent / no-data probes (issue 5)."""

from exporter.catalog.model import Alert, FailureMode, Panel, Query

ENTRIES = (
    FailureMode(
        id="etcd-corruption",
        heading="etcd corruption on one node",
        layer="k3s",
        planned="issue 4: apiserver /readyz etcd check per server node",
    ),
    FailureMode(
        id="coredns-down",
        heading="CoreDNS down",
        layer="k3s",
        signals=("honeydue_dns_up", "honeydue_dns_result", "honeydue_dns_lookup_duration_seconds"),
        probes=("dns",),
        planned="issue 4: coredns deployment availability",
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
        ),
        panels=(
            Panel(
                title="Cluster DNS: Service name lookup",
                queries=(
                    Query('honeydue_dns_up{role="cluster"}', "up {{domain}}"),
                    Query('honeydue_dns_lookup_duration_seconds{role="cluster"}', "seconds {{domain}}"),
                ),
            ),
        ),
    ),
    FailureMode(
        id="metrics-server-down",
        heading="metrics-server down",
        layer="k3s",
        planned="issue 4: APIService v1beta1.metrics.k8s.io Available, deployment availability",
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
