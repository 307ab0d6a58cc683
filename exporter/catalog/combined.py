"""Combined failures: symptoms that point at several layers at once."""

from exporter.catalog.model import Alert, FailureMode, Panel, Query

ENTRIES = (
    FailureMode(
        id="everything-is-slow",
        heading='"Everything is slow"',
        layer="combined",
        signals=("honeydue_postgres_connect_duration_seconds", "honeydue_postgres_query_duration_seconds"),
        probes=("postgres",),
        planned="issue 5: HTTP probe latencies per phase; issue 4: CPU-bound pods",
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
