"""Combined failures: symptoms that point at several layers at once."""

from exporter.catalog.model import Alert, FailureMode, Panel, Query

USER_FACING = 'role=~"public|origin|api_shallow|api_deep"'

ENTRIES = (
    FailureMode(
        id="everything-is-slow",
        heading='"Everything is slow"',
        layer="combined",
        signals=("honeydue_postgres_connect_duration_seconds", "honeydue_postgres_query_duration_seconds",
                 "honeydue_http_phase_duration_seconds", "honeydue_dns_lookup_duration_seconds",
                 "honeydue_smtp_phase_duration_seconds"),
        probes=("postgres", "http", "dns", "smtp"),
        planned="not yet: CPU-bound pods (kubectl top, from the metrics.k8s.io API)",
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
        ),
    ),
    FailureMode(
        id="some-users-see-502",
        heading='"Some users see 502, others don\'t"',
        layer="combined",
        signals=("honeydue_kube_workload_pods",),
        probes=("kubernetes_pods",),
        alerts=(
            Alert(
                name="WorkloadPodNotReadyOnNode",
                severity="warning",
                expr='honeydue_kube_workload_pods{ready="false"} > 0',
                for_="5m",
                summary="An api or traefik pod on one node is not Ready, so some users get 502.",
                description="{{ $value }} {{ $labels.workload }} pods on node {{ $labels.node }} have not been "
                "Ready for 5 minutes. Connections that land on that node fail; read that pod's logs.",
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
                 "honeydue_kube_deployment_status_replicas_updated", "honeydue_kube_deployment_exists"),
        probes=("kubernetes_deployments",),
        alerts=(
            Alert(
                name="KubeDeploymentRolloutStuck",
                severity="warning",
                expr="honeydue_kube_deployment_status_replicas_updated "
                "< honeydue_kube_deployment_spec_replicas",
                for_="15m",
                summary="A deployment's rollout has not finished in 15 minutes.",
                description="{{ $labels.namespace }}/{{ $labels.deployment }} has only {{ $value }} replicas at the "
                "new template. Check `kubectl rollout status` and the new pods' events.",
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
