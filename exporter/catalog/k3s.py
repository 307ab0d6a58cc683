"""k3s control plane failures. Signals from the Kubernetes probe (issue 4) and the vmagent /
no-data probes (issue 5)."""

from exporter.catalog.gates import BY, CLUSTER_DNS_FAILING, NODE_LIST_FAILING, grew, unless_cluster_dns
from exporter.catalog.model import Alert, FailureMode, Panel, Query

# Probe families whose failure has its own alert (the family's up series is 0 with the reason), so a
# generic probe-failing ticket would only repeat it; every other probe's failure makes its series vanish.
PROBES_WITH_OWN_ALERT = "redis|postgres_.+|http_.+|dns_.+|smtp_.+|tcp_.+|kubernetes_api|vmagent|nodata"
KUBE_PROBES = 'probe=~"kubernetes_.+",probe!~"kubernetes_api|kubernetes_pod_metrics_.+"'
# The metrics API fails with its APIService (MetricsServerUnavailable says so) or with the node list.
METRICS_API_DOWN = (
    f'(max by ({BY}) (honeydue_kube_apiservice_available{{apiservice="v1beta1.metrics.k8s.io"}}) == 0)'
)
# Consequences stay quiet: Asynq cannot be read while Redis is down (RedisDown pages), the residence cache
# while Redis or a Postgres endpoint is down (RedisDown, the Neon alerts), the
# other Kubernetes resources cannot be listed while the node list fails (KubeAPIUnreachable pages).
PROBE_FAILING = (
    f'(honeydue_probe_success{{probe!~"{PROBES_WITH_OWN_ALERT}|asynq|residence_cache|kubernetes_.+"}} == 0)'
    f' or ((honeydue_probe_success{{probe="asynq"}} == 0) unless on ({BY}) (honeydue_redis_up == 0))'
    f' or ((honeydue_probe_success{{probe="residence_cache"}} == 0) unless on ({BY}) '
    f"((honeydue_redis_up == 0) or (min by ({BY}) (honeydue_postgres_up) == 0)))"
    f" or ((honeydue_probe_success{{{KUBE_PROBES}}} == 0) unless on ({BY}) {NODE_LIST_FAILING})"
    f' or ((honeydue_probe_success{{probe=~"kubernetes_pod_metrics_.+"}} == 0) unless on ({BY}) '
    f"({NODE_LIST_FAILING} or {METRICS_API_DOWN}))"
)
# The main exporter sends nothing while netcheck pods still do: the cluster and vmagent are fine, the
# exporter is dead (crash loop, evicted, Pending). Without this, ~60 rules go quiet and nobody is paged.
EXPORTER_ABSENT = (
    'absent_over_time(honeydue_exporter_build_info{job="honeydue-exporter"}[3m]) '
    'and on () count_over_time(honeydue_exporter_build_info{job="honeydue-netcheck"}[3m])'
)
NETCHECK_DOWN = (
    'label_replace(max by (job, instance) (up{job="honeydue-netcheck"}), "node", "$1", "instance", "netcheck-(.+)") == 0'
)

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
                name="ClusterDnsUpstreamFailing",
                severity="warning",
                expr=f'(honeydue_dns_up{{role="cluster_upstream"}} == 0) unless on ({BY}) {CLUSTER_DNS_FAILING}',
                for_="10m",
                summary="CoreDNS answers Service names but cannot resolve names outside the cluster.",
                description="{{ $labels.domain }} has not resolved through {{ $labels.resolver }} for 10 minutes "
                "while Service names do: CoreDNS cannot reach its upstream resolvers (forward in the Corefile, "
                "the node's resolv.conf, UFW on :53 outbound).",
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
        signals=(
            "honeydue_vmagent_up",
            "honeydue_vmagent_remotewrite_pending_bytes",
            "honeydue_vmagent_remotewrite_errors_total",
            "honeydue_vmagent_remotewrite_retries_total",
            "honeydue_vmagent_remotewrite_packets_dropped_total",
            "honeydue_vmagent_persistentqueue_blocks_dropped_total",
            "honeydue_vmagent_persistentqueue_dropped_bytes_total",
            "honeydue_http_up",
        ),
        probes=("vmagent", "http"),
        alerts=(
            Alert(
                name="ObsIngestUnhealthy",
                severity="warning",
                expr=unless_cluster_dns('honeydue_http_up{role="obs_ingest"} == 0'),
                for_="10m",
                summary="The obs box's ingest /health endpoint does not answer 200 to our bearer token.",
                description="{{ $labels.target }} has failed for 10 minutes (honeydue_http_status_code shows 401 for "
                "a bad token, 0 for no answer). vmagent buffers up to 512 MB and replays on reconnect; check the "
                "obs stack with docker compose ps on the obs box.",
            ),
            Alert(
                name="VmagentRemoteWriteErrors",
                severity="warning",
                expr="rate(honeydue_vmagent_remotewrite_errors_total[5m]) > 0",
                for_="10m",
                summary="vmagent keeps failing to remote-write to the obs box.",
                description="vmagent has failed {{ $value | humanize }} remote-write attempts per second for 10 "
                "minutes. Check the obs ingest /health endpoint and the bearer token; vmagent buffers on disk "
                "and replays on reconnect.",
            ),
            Alert(
                name="VmagentBufferFilling",
                severity="warning",
                expr="honeydue_vmagent_remotewrite_pending_bytes > 268435456",
                for_="5m",
                summary="vmagent's remote-write buffer is more than half full.",
                description="{{ $value | humanize1024 }}B are waiting to be sent to the obs box (the buffer holds "
                "512 MB). When it fills up vmagent drops data; restore the obs endpoint or restart vmagent.",
            ),
            Alert(
                name="VmagentDroppingData",
                severity="warning",
                expr=f"{grew('honeydue_vmagent_remotewrite_packets_dropped_total', '15m')} "
                f"or {grew('honeydue_vmagent_persistentqueue_blocks_dropped_total', '15m')}",
                for_="1m",
                summary="vmagent dropped metrics that will never reach the obs box.",
                description="vmagent dropped {{ $value | humanize }} blocks in the last 15 minutes (remote-write "
                "packets or persistent-queue blocks): the gap on the dashboards is permanent.",
            ),
            Alert(
                name="VmagentMetricsUnreadable",
                severity="warning",
                expr=unless_cluster_dns("honeydue_vmagent_up == 0"),
                for_="10m",
                summary="The exporter cannot read vmagent's own metrics.",
                description="GET of vmagent's /metrics from {{ $labels.instance }} has failed for 10 minutes, so "
                "the remote-write health of the pipeline is unknown. Is the vmagent pod running?",
            ),
        ),
        panels=(
            Panel(
                title="vmagent pending remote-write bytes",
                queries=(
                    Query("honeydue_vmagent_remotewrite_pending_bytes", "pending"),
                    Query("honeydue_vmagent_persistentqueue_pending_bytes", "on disk"),
                ),
                unit="bytes",
                description="Grows while the obs box is unreachable; the buffer holds 512 MB.",
            ),
            Panel(
                title="vmagent remote-write errors and retries",
                queries=(
                    Query("rate(honeydue_vmagent_remotewrite_errors_total[5m])", "errors"),
                    Query("rate(honeydue_vmagent_remotewrite_retries_total[5m])", "retries"),
                    Query("rate(honeydue_vmagent_remotewrite_dial_errors_total[5m])", "dial errors"),
                    Query("rate(honeydue_vmagent_remotewrite_blocks_sent_total[5m])", "blocks sent"),
                ),
                unit="ops",
            ),
            Panel(
                title="vmagent dropped data",
                queries=(
                    Query("increase(honeydue_vmagent_remotewrite_packets_dropped_total[15m])", "packets"),
                    Query("increase(honeydue_vmagent_persistentqueue_blocks_dropped_total[15m])", "queue blocks"),
                ),
            ),
        ),
        blind_spot="Alerts are evaluated on the obs box, so a total write failure shows there as missing series: "
        "the obs-side HoneydueExporterSeriesAbsent rule and the Watchdog catch it; these in-cluster alerts fire "
        "on partial failures and after the buffer is replayed.",
    ),
    FailureMode(
        id="grafana-no-data",
        row="Observability pipeline",
        heading='Grafana dashboard shows "no data"',
        layer="k3s",
        signals=("honeydue_nodata_metric_missing", "honeydue_nodata_missing_metrics", "honeydue_nodata_query_up",
                 "honeydue_exporter_build_info", "honeydue_probe_success", "honeydue_probe_error_info",
                 "honeydue_kube_resource_error_info", "honeydue_probe_series_dropped", "honeydue_probe_series_limit"),
        probes=("nodata",),
        alerts=(
            Alert(
                name="HoneydueExporterDown",
                severity="critical",
                expr=EXPORTER_ABSENT,
                for_="2m",
                summary="The exporter sends no series while the netcheck pods do: about 60 alerts cannot fire.",
                description="Nothing from job {{ $labels.job }} has reached the obs TSDB for 5 minutes while the "
                "netcheck DaemonSet's series arrive, so the cluster and vmagent work and the exporter itself is "
                "dead: kubectl -n honeydue get pods -l app.kubernetes.io/component=exporter (CrashLoopBackOff, "
                "Pending, evicted) and its logs --previous.",
                obs_side=True,
            ),
            Alert(
                name="HoneydueNetcheckDown",
                severity="warning",
                expr=NETCHECK_DOWN,
                for_="5m",
                summary="vmagent cannot scrape the netcheck pod of a node, so that node's network paths are unwatched.",
                description="The netcheck pod on {{ $labels.node }} has failed vmagent's scrapes for 5 minutes "
                "(up == 0): the UFW, Flannel and kube-proxy alerts cannot see that node. kubectl -n honeydue "
                "get pods -l app.kubernetes.io/component=netcheck -o wide.",
                obs_side=True,
            ),
            Alert(
                name="HoneydueProbeFailing",
                severity="warning",
                expr=PROBE_FAILING,
                for_="15m",
                summary="A probe has failed for 15 minutes, so the series and alerts it feeds are gone.",
                description="Probe {{ $labels.probe }} on {{ $labels.instance }} has failed every run for 15 "
                "minutes (honeydue_probe_error_info gives the reason): its signals vanished and the alerts built "
                "on them resolved. Fix what it reads, or its credentials.",
            ),
            Alert(
                name="KubeExporterAccessDenied",
                severity="warning",
                expr='honeydue_kube_resource_error_info{reason=~"forbidden|unauthorized"} == 1',
                for_="10m",
                summary="The exporter may not read a Kubernetes resource, so its signals are missing.",
                description="The exporter's requests for {{ $labels.resource }} fail with {{ $labels.reason }}: "
                "apply deploy/base/rbac.yaml or fix the service-account token. This is not a healthy cluster.",
            ),
            Alert(
                name="DashboardMetricMissing",
                severity="warning",
                expr="honeydue_nodata_metric_missing == 1",
                for_="30m",
                summary="A metric used by the shipped dashboards or rules has no series in the obs TSDB.",
                description="{{ $labels.metric }} has had no series in the obs TSDB for 30 minutes, so its panels "
                "show no data and its alerts cannot fire. Is its probe configured and is vmagent scraping it? "
                "List families that are not deployed under nodata.ignore.",
            ),
            Alert(
                name="NoDataCheckFailing",
                severity="warning",
                expr=unless_cluster_dns("honeydue_nodata_query_up == 0"),
                for_="30m",
                summary="The exporter cannot query the obs TSDB for missing metrics.",
                description="The no-data check from {{ $labels.instance }} has failed for 30 minutes; check "
                "nodata.query_url and its bearer token.",
            ),
            Alert(
                name="ProbeSeriesLimitReached",
                severity="warning",
                expr="honeydue_probe_series_dropped > 0",
                for_="15m",
                summary="A probe produces more series than its series_limit allows, so some are left out.",
                description="Probe {{ $labels.probe }} on {{ $labels.instance }} has left out {{ $value }} series "
                "per run for 15 minutes (the cardinality guard): panels and alerts that need them show no data. "
                "Raise series_limit for its family (honeydue_probe_series_limit is the current limit) or watch less.",
            ),
        ),
        panels=(
            Panel(
                title="Metrics without data in the obs TSDB",
                queries=(Query("honeydue_nodata_missing_metrics", "missing"),),
                kind="stat",
            ),
            Panel(
                title="Missing metrics by name",
                queries=(Query("honeydue_nodata_metric_missing == 1", "{{metric}}"),),
                description="Each line is a metric the dashboards or rules use that has no series.",
            ),
        ),
    ),
)
