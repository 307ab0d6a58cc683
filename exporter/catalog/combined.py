"""Combined failures: symptoms that point at several layers at once."""

from exporter.catalog.app import API_ALL_CRASHLOOPING, crashlooping
from exporter.catalog.gates import (
    BY,
    CLUSTER_SILENT,
    FLANNEL_BROKEN,
    KUBEPROXY_BROKEN,
    NODES_LOST,
    OBS_PROBE_ABSENT,
    REDIS_NODE_IN_MAINTENANCE,
    fresh,
)
from exporter.catalog.model import Alert, FailureMode, Panel, Query

# Requests as users make them (one target each): through Cloudflare and to the api; the per-node origins are
# the same requests on three paths and would ticket three times for one slowness.
USER_FACING = 'role=~"public|api_shallow|api_deep"'
OBS = 'job="honeydue-obs-probe"'
# As users see it, from the obs box: the public URL through Cloudflare fails and no node's origin answers
# (Traefik answering 404 or 502, or nothing at all), whatever the api's own health check inside says; the
# exporter's own public and origin probes stand in while the obs-probe is not running (ObsProbeDown). Quiet
# while every api replica crash-loops (ApiAllReplicasCrashLooping names that cause and its fix), while two
# nodes are gone (two-nodes-fail pages) and while nothing from the cluster arrives (the cluster-silent alerts
# tell a dead cluster from a cut pipeline).
SITE_DOWN = (
    f'((max by (job) (honeydue_http_up{{{OBS},role="public"}}) == 0) '
    f'and on (job) (max by (job) (honeydue_http_up{{{OBS},role="origin"}}) == 0) '
    f'or ((max by (job) (honeydue_http_up{{job="honeydue-exporter",role="public"}}) == 0) '
    f'and on (job) (max by (job) (honeydue_http_up{{job="honeydue-exporter",role="origin"}}) == 0) '
    f'unless on (job) max by (job) (honeydue_probe_error_info{{probe="http_www",reason="dns"}}) '
    f"and on () {OBS_PROBE_ABSENT})) "
    f"unless on () ({API_ALL_CRASHLOOPING}) unless on () ({CLUSTER_SILENT}) unless on () {NODES_LOST}"
)
# One node's origin fails from outside while another's answers: the users Cloudflare sends there get errors.
# Only while the node itself is up: it answers HTTP at all (any status: its Traefik answers with an error), or
# vmagent reaches its netcheck pod. A node off the network is not this (Cloudflare retries another origin on
# a failed connection; the node's own alerts speak). Not while Flannel or kube-proxy is broken on it (its
# Traefik cannot reach the api: their page names the node).
ORIGIN_FAILING_ON_NODE = (
    f'(honeydue_http_up{{{OBS},role="origin"}} == 0) and on () (max(honeydue_http_up{{{OBS},role="origin"}}) == 1) '
    'and on (node) (label_replace(' + fresh('up{job="honeydue-netcheck"} == 1', 'up{job="honeydue-netcheck"}')
    + f', "node", "$1", "instance", "netcheck-(.+)") or honeydue_http_status_code{{{OBS},role="origin"}} > 0) '
    f"unless on (node) ({FLANNEL_BROKEN} or {KUBEPROXY_BROKEN})"
)
# A rollout in progress: its new pods are not Ready yet and not in the Service either (no 502 from them).
ROLLING = (
    'label_replace(honeydue_kube_deployment_status_replicas_updated < honeydue_kube_deployment_spec_replicas, '
    '"workload", "$1", "deployment", "(.+)")'
)
# "kubectl top pods: are we CPU-bound?": a honeyDue container that has used at least 90% of its CPU limit
# over 10 minutes is throttled by the kernel (CFS quota), so every request it serves waits. Containers with
# no CPU limit are not compared (the panel still shows their use).
CPU_BOUND = (
    'avg_over_time(honeydue_kube_pod_container_cpu_usage_cores{namespace="honeydue"}[10m]) '
    f"/ on ({BY}, namespace, pod, container) "
    '(honeydue_kube_pod_container_resource_limits{namespace="honeydue",resource="cpu"} > 0) > 0.9'
)
WAITING_OTHER = (
    '(max_over_time(honeydue_kube_pod_container_status_waiting_reason{namespace="honeydue",'
    'reason!~"CrashLoopBackOff|ImagePullBackOff|ErrImagePull"}[5m]) >= 1) '
    f'* on ({BY}, namespace, pod) group_left (workload) honeydue_kube_pod_info'
)
# A deployment's alert carries the `workload` label its pods' alerts carry: an inhibition scoped by workload
# (deploy/alertmanager) mutes only the deployment a page is about.
WORKLOAD_OF_DEPLOYMENT = 'label_replace({}, "workload", "$1", "deployment", "(.+)")'


ENTRIES = (
    FailureMode(
        id="everything-is-slow",
        heading='"Everything is slow"',
        layer="combined",
        signals=("honeydue_postgres_connect_duration_seconds", "honeydue_postgres_query_duration_seconds",
                 "honeydue_http_phase_duration_seconds", "honeydue_dns_lookup_duration_seconds",
                 "honeydue_smtp_phase_duration_seconds", "honeydue_kube_pod_container_cpu_usage_cores",
                 "honeydue_kube_pod_container_resource_limits"),
        probes=("postgres", "http", "dns", "smtp", "kubernetes_pod_metrics", "kubernetes_pods"),
        alerts=(
            Alert(
                name="UserFacingRequestsSlow",
                severity="warning",
                expr=f'avg_over_time(honeydue_http_phase_duration_seconds{{phase="total",{USER_FACING}}}[5m]) > 2',
                for_="10m",
                summary="User-facing requests take more than 2 seconds on average.",
                description="{{ $labels.target }} ({{ $labels.role }}) has averaged {{ $value | humanizeDuration }} "
                "over 5 minutes. Compare its phases (dns, connect, tls, first_byte) with Postgres latency to find "
                "the slow layer; check kubectl top pods and the Neon console.",
            ),
            Alert(
                name="KubeContainerCpuBound",
                severity="warning",
                expr=CPU_BOUND,
                for_="15m",
                summary="A honeyDue container is using nearly all of its CPU limit, so it is throttled.",
                description="{{ $labels.pod }} ({{ $labels.container }}) has averaged {{ $value | humanizePercentage }} "
                "of its CPU limit over 10 minutes (kubectl top pods -n honeydue): the kernel throttles it and its "
                "requests wait. Look for a hot loop or a traffic spike (Cloudflare analytics); raise the limit or "
                "add replicas.",
            ),
        ),
        panels=(
            Panel(
                title="Request time by phase (user-facing targets)",
                queries=(
                    Query(f'honeydue_http_phase_duration_seconds{{phase!="total",{USER_FACING}}}',
                          "{{target}} {{phase}}"),
                ),
                unit="s",
                description="first_byte growing = the app or the database; dns/connect/tls growing = the network.",
            ),
            Panel(
                title="Probe latencies: HTTP, DNS, SMTP, Postgres",
                queries=(
                    Query('honeydue_http_phase_duration_seconds{phase="total"}', "http {{target}}"),
                    Query("honeydue_dns_lookup_duration_seconds", "dns {{domain}} via {{resolver}}"),
                    Query('honeydue_smtp_phase_duration_seconds{phase="total"}', "smtp {{target}}"),
                    Query("honeydue_postgres_query_duration_seconds", "postgres {{endpoint}}"),
                ),
                unit="s",
            ),
            Panel(
                title="CPU used against the limit (kubectl top pods)",
                queries=(
                    Query('honeydue_kube_pod_container_cpu_usage_cores{namespace="honeydue"} '
                          f"/ on ({BY}, namespace, pod, container) "
                          '(honeydue_kube_pod_container_resource_limits{namespace="honeydue",resource="cpu"} > 0)',
                          "{{pod}} {{container}}"),
                ),
                unit="percentunit",
                description="From the metrics API (metrics-server). Near 100% = the container is throttled, "
                "its requests wait; KubeContainerCpuBound fires at 90% over 10 minutes.",
            ),
            Panel(
                title="CPU used per container (cores)",
                queries=(
                    Query('honeydue_kube_pod_container_cpu_usage_cores{namespace="honeydue"}',
                          "{{pod}} {{container}}"),
                ),
                description="Includes containers without a CPU limit. No data = the metrics API is unavailable "
                '(honeydue_kube_resource_up{resource="pods.metrics.k8s.io"} says why).',
            ),
        ),
    ),
    FailureMode(
        id="some-users-see-502",
        heading='"Some users see 502, others don\'t"',
        layer="combined",
        signals=("honeydue_kube_workload_pods", "honeydue_http_up", "honeydue_kube_pod_container_status_waiting_reason",
                 "honeydue_kube_pod_info"),
        probes=("kubernetes_pods", "http"),
        alerts=(
            Alert(
                name="OriginFailingOnNode",
                severity="critical",
                expr=ORIGIN_FAILING_ON_NODE,
                for_="150s",
                summary="One node's origin fails from outside while another node's answers: some users see errors.",
                description="The origin on node {{ $labels.node }} (its Traefik, probed by node IP from the obs box) "
                "has failed for 3 minutes while another node's answers, and the node itself is up: users "
                "Cloudflare sends there get 404 or 502. kubectl get pods -n kube-system -l "
                "app.kubernetes.io/name=traefik -o wide, and the api pods on {{ $labels.node }}.",
                obs_side=True,
                user_facing=True,
            ),
            Alert(
                name="TraefikPodCrashLooping",
                severity="warning",
                expr=crashlooping("kube-system", "traefik"),
                for_="10m",
                summary="A Traefik container keeps crashing: the node it runs on answers users with errors.",
                description="{{ $labels.pod }} ({{ $labels.container }}) has been crash-looping for 10 minutes. "
                "kubectl -n kube-system logs {{ $labels.pod }} --previous.",
                labels=(("workload", "traefik"),),
            ),
            Alert(
                name="WorkloadPodNotReadyOnNode",
                severity="warning",
                expr=f'(honeydue_kube_workload_pods{{ready="false"}} > 0) unless on ({BY}, namespace, workload) {ROLLING}',
                for_="5m",
                summary="An api or traefik pod on one node is not Ready, so some users get 502.",
                description="{{ $value }} {{ $labels.workload }} pods on node {{ $labels.node }} have not been "
                "Ready for 5 minutes (outside a rollout). Connections that land on that node fail; read that pod's logs.",
            ),
        ),
        panels=(
            Panel(
                title="Ready api and traefik pods per node",
                queries=(Query('honeydue_kube_workload_pods{ready="true"}', "{{workload}} {{node}}"),
                         Query('honeydue_kube_workload_pods{ready="false"}', "not ready {{workload}} {{node}}")),
            ),
        ),
    ),
    FailureMode(
        id="worked-5-minutes-ago",
        heading='"It worked 5 minutes ago, now it doesn\'t"',
        layer="combined",
        signals=("honeydue_kube_deployment_last_rollout_timestamp_seconds",
                 "honeydue_kube_deployment_status_replicas_updated", "honeydue_kube_deployment_exists",
                 "honeydue_kube_deployment_status_replicas_available", "honeydue_http_up",
                 "honeydue_kube_pod_container_status_waiting_reason"),
        probes=("kubernetes_deployments", "kubernetes_pods", "http"),
        alerts=(
            Alert(
                name="HoneydueRolloutStuck",
                severity="warning",
                expr=WORKLOAD_OF_DEPLOYMENT.format("honeydue_kube_deployment_status_replicas_updated "
                                                   "< honeydue_kube_deployment_spec_replicas"),
                for_="15m",
                summary="A deployment's rollout has not finished in 15 minutes.",
                description="{{ $labels.namespace }}/{{ $labels.deployment }} has only {{ $value }} replicas at the "
                "new template. Check `kubectl rollout status` and the new pods' events.",
            ),
            Alert(
                name="SiteDownEverywhere",
                severity="critical",
                expr=SITE_DOWN,
                for_="2m",
                summary="The site answers nowhere from outside: not through Cloudflare, not at any node's origin.",
                description="For 2 minutes the public URL and every node's origin probed directly ({{ $labels.job }}, "
                "the obs box's view, or the exporter's while the obs-probe is down) have failed (Traefik answering "
                "404/502, or nothing): the outage is ours, "
                "not Cloudflare's, and the api's own health check inside the cluster may still pass. What changed? "
                "kubectl rollout history deployment/api -n honeydue, kubectl -n kube-system get pods -l "
                "app.kubernetes.io/name=traefik, kubectl get events -A.",
                obs_side=True,
                user_facing=True,
                labels=(("workload", "api"),),
            ),
            Alert(
                name="HoneydueDeploymentReplicasMismatch",
                severity="warning",
                expr=WORKLOAD_OF_DEPLOYMENT.format('honeydue_kube_deployment_spec_replicas{namespace="honeydue"} '
                                                   '!= honeydue_kube_deployment_status_replicas_available'
                                                   '{namespace="honeydue"}')
                # Redis cannot leave its drained node: planned, for the maintenance window (RedisDown's too)
                + f' unless on ({BY}, deployment) label_replace({REDIS_NODE_IN_MAINTENANCE}, "deployment", "redis", '
                '"", "")',
                for_="15m",
                summary="A honeyDue deployment has had fewer available replicas than desired for 15 minutes.",
                description="{{ $labels.deployment }} has {{ $value }} desired replicas and a different number "
                "available. kubectl -n honeydue describe "
                "deployment {{ $labels.deployment }} and the events of its pods.",
            ),
            Alert(
                name="HoneydueContainerWaiting",
                severity="warning",
                expr=WAITING_OTHER,
                for_="15m",
                summary="A honeyDue container has been waiting to start for 15 minutes.",
                description="{{ $labels.pod }} ({{ $labels.container }}) has waited with {{ $labels.reason }} for "
                "15 minutes (CreateContainerConfigError: a missing ConfigMap or Secret key; ContainerCreating: a "
                "volume that cannot mount). kubectl -n honeydue describe pod {{ $labels.pod }}.",
            ),
            Alert(
                name="KubeDeploymentMissing",
                severity="warning",
                expr="honeydue_kube_deployment_exists == 0",
                for_="10m",
                summary="A deployment the exporter watches does not exist.",
                description="{{ $labels.namespace }}/{{ $labels.deployment }} is gone (exists = {{ $value }}). "
                "Was it deleted or renamed by a recent manifest change?",
            ),
        ),
        panels=(
            Panel(
                title="Time since each deployment's last rollout",
                queries=(Query("time() - honeydue_kube_deployment_last_rollout_timestamp_seconds",
                               "{{namespace}}/{{deployment}}"),),
                unit="s",
                description="A rollout minutes before the trouble started is the first suspect.",
            ),
        ),
    ),
)
