"""k3s control plane failures. Signals from the Kubernetes probe (issue 4), the DNS probe, the vmagent and
no-data probes (issue 5) and the obs side."""

from exporter.catalog.gates import (
    BY,
    CLUSTER_DNS_FAILING,
    CLUSTER_SILENT,
    DNS_FAILS_ON_A_NODE,
    NETCHECK_JUST_LOST,
    NETWORK_FAULT,
    NODE_LIST_FAILING,
    NODES_LOST,
    OBS_NODES_ANSWER,
    OBS_PUBLIC_UP,
    QUORUM_LOST,
    grew,
    token_refused,
    unless_network_fault,
    unless_not_theirs,
)
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
# while Redis or a Postgres endpoint is down (RedisDown, the Neon alerts), the other Kubernetes resources
# cannot be listed while the node list fails (KubeAPIUnreachable pages); a probe refused our credentials is
# HoneydueCredentialsRejected's.
PROBE_FAILING = (
    f'((honeydue_probe_success{{probe!~"{PROBES_WITH_OWN_ALERT}|asynq|residence_cache|kubernetes_.+"}} == 0)'
    f' or ((honeydue_probe_success{{probe="asynq"}} == 0) unless on ({BY}) (honeydue_redis_up == 0))'
    f' or ((honeydue_probe_success{{probe="residence_cache"}} == 0) unless on ({BY}) '
    f"((honeydue_redis_up == 0) or (min by ({BY}) (honeydue_postgres_up) == 0)))"
    f" or ((honeydue_probe_success{{{KUBE_PROBES}}} == 0) unless on ({BY}) {NODE_LIST_FAILING})"
    f' or ((honeydue_probe_success{{probe=~"kubernetes_pod_metrics_.+"}} == 0) unless on ({BY}) '
    f"({NODE_LIST_FAILING} or {METRICS_API_DOWN})))"
    f' unless on ({BY}, probe) honeydue_probe_error_info{{reason="auth"}}'
    # lost quorum or a network fault fails probes everywhere (the netcheck pods' lists too): their pages speak
    f" unless on () ({QUORUM_LOST}) unless on () {NETWORK_FAULT}"
)
# vmagent lists the exporter but mostly cannot scrape it (a crash loop at its 300 s back-off answers about one
# scrape in 11), or no longer lists it (its pod is not Running: Pending, evicted) while netcheck's targets
# are there, so vmagent works. Quiet while a network fault explains it (its page), and for 5 minutes after a
# node went off the network: the exporter may have run there and is being rescheduled (~70 s). A ticket: the
# exporter's own failure is never a page (docs/witnesses.md), though about 60 alerts cannot fire meanwhile.
# The window is short on purpose: after a fault that explains the exporter's silence ends, its history must
# not keep the alert pending for longer than its `for` (it would page for a fault already over).
EXPORTER_DOWN = (
    '((max by (job) (avg_over_time(up{job="honeydue-exporter"}[3m])) < 0.5) '
    'or (absent_over_time(up{job="honeydue-exporter"}[3m]) and on () count(up{job="honeydue-netcheck"}) > 0))'
    f" unless on () {NETWORK_FAULT} unless on () (count({NETCHECK_JUST_LOST}) > 0)"
)
NETCHECK_DOWN = (
    'label_replace(max by (job, instance) (up{job="honeydue-netcheck"}), "node", "$1", "instance", "netcheck-(.+)") == 0'
)
# The exporter's own credentials refused: Postgres or Redis passwords, the api or obs token (401/403 from a
# target it authenticates to), the Kubernetes service-account token. One ticket about the exporter.
CREDENTIALS = (
    f'max by ({BY}, probe) (honeydue_probe_error_info{{reason="auth"}} == 1) '
    f'or label_replace(max by ({BY}, target) (honeydue_http_status_code{{role=~"api_deep|obs_ingest"}} == 401 '
    f'or honeydue_http_status_code{{role=~"api_deep|obs_ingest"}} == 403), "probe", "http_$1", "target", "(.+)")'
)
# Outside names fail through CoreDNS while Service names resolve, and the public name resolves when the
# exporter asks a public resolver directly or the obs box reaches the site by it: CoreDNS cannot reach its
# upstream (the obs box's view counts when the exporter's own node cannot reach public resolvers either, as
# when a firewall drops DNS egress on the node CoreDNS and the exporter share).
_UPSTREAM_NAMES_FAIL = (
    f'((max by ({BY}) (honeydue_dns_up{{role="cluster_upstream"}}) == 0) unless on ({BY}) {CLUSTER_DNS_FAILING})'
)
UPSTREAM_FAILING = (
    f'({_UPSTREAM_NAMES_FAIL} and on ({BY}) (max by ({BY}) (honeydue_dns_up{{role="public"}}) == 1)) '
    f"or ({_UPSTREAM_NAMES_FAIL} and on () {OBS_PUBLIC_UP})"
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
                expr="(honeydue_kube_apiserver_etcd_ready == 0 and on (node) honeydue_kube_apiserver_readyz_up == 1) "
                f"unless on ({BY}) ({QUORUM_LOST}) unless on () {NODES_LOST}",
                for_="5m",
                summary="A server node's API server answers but reports its etcd check failing.",
                description="/readyz/etcd on {{ $labels.node }} has failed for 5 minutes while the node answers and the "
                "others pass theirs (a quorum loss fails every member's check: KubeEtcdQuorumLost): its etcd member "
                "has diverged. Remove the node from the cluster and rejoin it.",
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
                expr=unless_network_fault('(honeydue_dns_up{role="cluster"} == 0) '
                                          f"and on () {DNS_FAILS_ON_A_NODE}"),
                for_="3m",
                summary="A Service name does not resolve through the cluster DNS server.",
                description="{{ $labels.domain }} has not resolved through {{ $labels.resolver }} for 3 minutes "
                "(see honeydue_dns_result), and names fail on the nodes too (netcheck): new connections inside the "
                "cluster fail with no such host. kubectl logs -n kube-system deploy/coredns --previous.",
                user_facing=True,
            ),
            Alert(
                name="ClusterDnsUpstreamFailing",
                severity="critical",
                expr=unless_network_fault(UPSTREAM_FAILING),
                for_="3m",
                summary="CoreDNS answers Service names but cannot resolve names outside the cluster.",
                description="Names outside the cluster have not resolved through CoreDNS from {{ $labels.instance }} "
                "for 3 minutes while Service names do and the public name resolves elsewhere: pods cannot reach "
                "Neon, Fastmail or B2 by name. CoreDNS cannot reach its upstream resolvers (forward in the Corefile, the node's "
                "resolv.conf, UFW on :53 outbound).",
                user_facing=True,
                slow_reason="over 5 minutes only when the exporter's node cannot reach the public resolvers either "
                "(DNS egress blocked there): then the obs box's probe of the site decides, every 30 s with an 8 s "
                "timeout; with the public resolvers answering the exporter it pages within its budget.",
            ),
            Alert(
                name="CoreDNSUnavailable",
                severity="critical",
                expr='(honeydue_kube_deployment_status_replicas_available{namespace="kube-system",'
                f'deployment="coredns"}} == 0) unless on () {NODES_LOST}',
                for_="2m",
                summary="No CoreDNS replica is available: pods cannot resolve Service names.",
                description="coredns has had {{ $value }} available replicas for 2 minutes (its pod crashes, or its "
                "node is gone and it waits to be rescheduled). New connections by name fail (\"no such host\"). "
                "Check `kubectl logs -n kube-system deploy/coredns --previous`.",
                user_facing=True,
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
                expr=unless_not_theirs('honeydue_http_up{role="obs_ingest"} == 0 '
                                       f'unless {token_refused("obs_ingest")}', "http_obs_ingest"),
                for_="10m",
                summary="The obs box's ingest /health endpoint does not answer 200 to our bearer token.",
                description="{{ $labels.target }} has failed for 10 minutes (honeydue_http_status_code 0 means no "
                "answer; a refused token is HoneydueCredentialsRejected's). vmagent buffers up to 512 MB and replays "
                "on reconnect; check the obs stack with docker compose ps on the obs box.",
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
                name="ClusterSilentNodesAnswer",
                severity="warning",
                # The value is the number of origins answering (0 when only the public URL does).
                expr=f"(({OBS_NODES_ANSWER} >= 2) or (vector(0) and on () {OBS_PUBLIC_UP} "
                f"unless on () ({OBS_NODES_ANSWER} >= 1))) and on () {CLUSTER_SILENT}",
                for_="30s",
                summary="Nothing from the cluster reaches the obs box while the nodes answer from outside.",
                description="For 2 minutes neither the exporter nor any netcheck pod has reached the obs TSDB, yet "
                "{{ $value }} of the three nodes' origins answer the obs box's own probe (with none, the public URL "
                "does): the cluster runs and vmagent "
                "cannot deliver (a rejected token, TLS, the network to the obs box, or vmagent's own node gone: it "
                "is rescheduled within about 6 minutes). vmagent buffers 512 MB and replays. Dashboards are stale "
                "and in-cluster alerts cannot fire meanwhile.",
                obs_side=True,
                detect="2m",
            ),
            Alert(
                name="VmagentMetricsUnreadable",
                severity="warning",
                expr=unless_not_theirs("honeydue_vmagent_up == 0", "vmagent"),
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
        "the obs-side ClusterSilentNodesAnswer rule (the nodes answer the obs box's own probe: the cluster runs) catches "
        "it, with the Watchdog; these in-cluster alerts fire "
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
                severity="warning",
                expr=EXPORTER_DOWN,
                for_="2m",
                summary="vmagent cannot scrape the exporter (crash loop, or its pod is not running): about 60 alerts "
                "cannot fire.",
                description="vmagent has scraped {{ $labels.job }} less than half the time over 3 minutes, or lists "
                "no exporter pod at all, while the netcheck DaemonSet's series arrive: the cluster and vmagent work "
                "and the exporter itself does not. kubectl -n honeydue get pods -l "
                "app.kubernetes.io/component=exporter (CrashLoopBackOff, Pending, evicted) and its logs --previous.",
                obs_side=True,
                detect="90s",
            ),
            Alert(
                name="HoneydueNetcheckDown",
                severity="warning",
                expr=f"{NETCHECK_DOWN} unless on () {NODES_LOST}",
                for_="5m",
                summary="vmagent cannot scrape the netcheck pod of a node, so that node's network paths are unwatched.",
                description="The netcheck pod on {{ $labels.node }} has failed vmagent's scrapes for 5 minutes "
                "(up == 0): the UFW, Flannel and kube-proxy alerts cannot see that node. Its node may be down "
                "(see HoneydueNodeNotReady); else kubectl -n honeydue get pods -l "
                "app.kubernetes.io/component=netcheck -o wide.",
                obs_side=True,
            ),
            Alert(
                name="ObsProbeDown",
                severity="warning",
                expr='absent_over_time(up{job="honeydue-obs-probe"}[5m]) or (up{job="honeydue-obs-probe"} == 0)',
                for_="5m",
                summary="The obs box's own probe is not scraped: the outside view of the site is missing.",
                description="The obs-probe ({{ $labels.job }}) has not been scraped on the obs box for 5 minutes. "
                "The alerts fall back on the exporter's own view, but an ingress that fails everywhere, a "
                "Cloudflare outage and a dead cluster can no longer be told apart as well. Check the obs-probe "
                "container (deploy/obs/docker-compose.obs-probe.yml) and its scrape job.",
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
                "on them resolved. Fix what it reads.",
            ),
            Alert(
                name="HoneydueCredentialsRejected",
                severity="warning",
                expr=CREDENTIALS,
                for_="5m",
                summary="A dependency refuses the exporter's own credentials: its signals are missing, the dependency "
                "itself may be fine.",
                description="Probe {{ $labels.probe }} on {{ $labels.instance }} has been refused with its "
                "credentials for 5 minutes (a rotated Postgres or Redis password, an expired api or obs token, a "
                "service-account token the API rejects). Its dependency's alerts stay quiet meanwhile: update the "
                "Secret honeydue-exporter-secrets and restart the exporter.",
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
                for_="25m",
                summary="A metric used by the shipped dashboards or rules has no series in the obs TSDB.",
                description="{{ $labels.metric }} has had no series in the obs TSDB for 25 minutes, so its panels "
                "show no data and its alerts cannot fire. Is its probe configured and is vmagent scraping it? "
                "List families that are not deployed under nodata.ignore.",
            ),
            Alert(
                name="NoDataCheckFailing",
                severity="warning",
                expr=unless_not_theirs("honeydue_nodata_query_up == 0", "nodata"),
                for_="25m",
                summary="The exporter cannot query the obs TSDB for missing metrics.",
                description="The no-data check from {{ $labels.instance }} has failed for 25 minutes; check "
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
