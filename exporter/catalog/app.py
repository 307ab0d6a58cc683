"""Application-level failure modes: api, admin, worker, Redis and the residence-IDs cache."""

from exporter.catalog.model import Alert, FailureMode, Panel, Query

REDIS_RATIO = "honeydue_redis_memory_used_bytes / (honeydue_redis_memory_max_bytes > 0)"
WAITING = "honeydue_kube_pod_container_status_waiting_reason"
# A container in CrashLoopBackOff flips to Running between back-offs; looking at the worst state
# over 5 minutes keeps the alert from flapping (the kube-prometheus KubePodCrashLooping fix).
CRASHLOOPING = f'max_over_time({WAITING}{{reason="CrashLoopBackOff"}}[5m])'
API_CRASHLOOPING_PODS = (
    f'max by (namespace, pod) (max_over_time({WAITING}{{namespace="honeydue",reason="CrashLoopBackOff"}}[5m])) '
    'and on (namespace, pod) honeydue_kube_pod_info{workload="api"}'
)

ENTRIES = (
    FailureMode(
        id="api-pod-oom",
        heading="api pod OOM",
        layer="app",
        signals=("honeydue_kube_pod_container_status_last_terminated_reason",
                 "honeydue_kube_pod_container_status_restarts_total"),
        probes=("kubernetes_pods",),
        alerts=(
            Alert(
                name="ContainerOOMKilled",
                severity="warning",
                expr='(honeydue_kube_pod_container_status_last_terminated_reason{namespace="honeydue",'
                'reason="OOMKilled"} == 1) and on (namespace, pod, container) '
                "(increase(honeydue_kube_pod_container_status_restarts_total[15m]) > 0)",
                for_="1m",
                summary="A honeyDue container was OOM-killed and restarted.",
                description="{{ $labels.container }} in {{ $labels.pod }} was killed for exceeding its memory "
                "limit and restarted in the last 15 minutes. If it keeps happening raise "
                "resources.limits.memory or debug the leak (kubectl logs --previous).",
            ),
        ),
        panels=(
            Panel(
                title="Container restarts (15m) and last termination reason",
                queries=(
                    Query('increase(honeydue_kube_pod_container_status_restarts_total{namespace="honeydue"}[15m])',
                          "{{pod}}"),
                    Query("honeydue_kube_pod_container_status_last_terminated_reason", "{{pod}} {{reason}}"),
                ),
            ),
        ),
    ),
    FailureMode(
        id="api-pod-panics",
        heading="api pod panics",
        layer="app",
        signals=("honeydue_kube_pod_container_status_waiting_reason", "honeydue_kube_pod_info",
                 "honeydue_kube_deployment_spec_replicas"),
        probes=("kubernetes_pods", "kubernetes_deployments"),
        alerts=(
            Alert(
                name="KubePodCrashLooping",
                severity="warning",
                expr=f"{CRASHLOOPING} >= 1",
                for_="15m",
                summary="A container keeps crashing and is in CrashLoopBackOff.",
                description="{{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) has been "
                "crash-looping for 15 minutes. Read the panic in `kubectl logs --previous`, fix and deploy.",
            ),
            Alert(
                name="ApiAllReplicasCrashLooping",
                severity="critical",
                expr=f"count by (namespace) ({API_CRASHLOOPING_PODS}) >= on (namespace) "
                'honeydue_kube_deployment_spec_replicas{namespace="honeydue",deployment="api"}',
                for_="5m",
                summary="Every api replica is crash-looping: roll back to the previous revision.",
                description="{{ $value }} api pods are in CrashLoopBackOff, all the desired replicas: bad code "
                "is crashing on startup. Run `kubectl rollout undo deployment/api -n honeydue` now.",
            ),
        ),
        panels=(
            Panel(
                title="Containers crash-looping",
                queries=(Query(f"sum by (namespace, pod) ({CRASHLOOPING})", "{{namespace}}/{{pod}}"),),
            ),
            Panel(
                title="api replicas desired vs available",
                queries=(
                    Query('honeydue_kube_deployment_spec_replicas{deployment="api"}', "desired"),
                    Query('honeydue_kube_deployment_status_replicas_available{deployment="api"}', "available"),
                    Query(f"count({API_CRASHLOOPING_PODS})", "crash-looping"),
                ),
            ),
        ),
    ),
    FailureMode(
        id="api-deadlocks",
        heading="api deadlocks",
        layer="app",
        planned="issue 5: shallow /api/health/ passes while a deep request times out",
    ),
    FailureMode(
        id="admin-pod-crashes",
        heading="admin pod crashes",
        layer="app",
        signals=("honeydue_kube_deployment_status_replicas_available",),
        probes=("kubernetes_deployments",),
        planned="issue 5: admin HTTP probe",
        alerts=(
            Alert(
                name="AdminUnavailable",
                severity="warning",
                expr='honeydue_kube_deployment_status_replicas_available{namespace="honeydue",deployment="admin"}'
                " == 0",
                for_="2m",
                summary="No admin replica is available: admins get 502 at admin.myhoneydue.com.",
                description="admin has had {{ $value }} available replicas for 2 minutes. The user-facing api is "
                "unaffected; check the admin pod's events and logs.",
            ),
        ),
        panels=(
            Panel(
                title="honeyDue deployments available / desired",
                queries=(
                    Query('honeydue_kube_deployment_status_replicas_available{namespace="honeydue"} '
                          '/ honeydue_kube_deployment_spec_replicas{namespace="honeydue"}', "{{deployment}}"),
                ),
                unit="percentunit",
            ),
        ),
    ),
    FailureMode(
        id="worker-stops-processing",
        row="Worker and queues",
        heading="worker stops processing jobs",
        layer="app",
        planned="issue 3: Asynq backlog, oldest-pending latency, live worker servers, stuck tasks, cron",
    ),
    FailureMode(
        id="redis-pod-dies",
        heading="redis pod dies + node is different",
        layer="app",
        signals=("honeydue_redis_up", "honeydue_redis_uptime_seconds", "honeydue_redis_asynq_queues",
                 "honeydue_redis_restarted_empty", "honeydue_kube_redis_nodes", "honeydue_kube_redis_node_ready"),
        probes=("redis", "kubernetes_nodes"),
        alerts=(
            Alert(
                name="RedisNodeNotReady",
                severity="warning",
                expr="honeydue_kube_redis_node_ready == 0",
                for_="2m",
                summary="The node labelled honeydue/redis=true is not Ready, so Redis cannot run with its data.",
                description="Node {{ $labels.node }} holds Redis' local-path volume and has not been Ready for "
                "2 minutes. If it is gone, move the label to a healthy node (Redis restarts empty).",
            ),
            Alert(
                name="RedisNodeLabelNotUnique",
                severity="warning",
                expr="honeydue_kube_redis_nodes != 1",
                for_="10m",
                summary="Not exactly one node carries the honeydue/redis=true label.",
                description="{{ $value }} nodes carry honeydue/redis=true (must be 1). Redis may schedule away from "
                "its data: label one healthy node and remove the label elsewhere.",
            ),
            Alert(
                name="RedisDown",
                severity="critical",
                expr="honeydue_redis_up == 0",
                for_="2m",
                summary="Redis does not answer: Asynq jobs and the auth caches are unavailable.",
                description="The exporter {{ $labels.instance }} could not reach Redis for 2 minutes. "
                "Check the redis pod and the node labelled honeydue/redis=true.",
            ),
            Alert(
                name="RedisRestartedEmpty",
                severity="warning",
                expr="honeydue_redis_restarted_empty == 1",
                for_="1m",
                summary="Redis restarted without its data: Asynq queue state was lost.",
                description="Redis uptime reset and Asynq's queue registry (asynq:queues) is gone "
                "(now {{ $value }}). In-flight jobs were lost; cron re-schedules on its next tick. "
                "Make sure the honeydue/redis=true label is on a healthy node.",
            ),
        ),
        panels=(
            Panel(
                title="Redis up and uptime",
                queries=(Query("honeydue_redis_up", "up"), Query("honeydue_redis_uptime_seconds", "uptime")),
                description="A drop of uptime to zero with the Asynq registry gone means Redis restarted empty.",
            ),
            Panel(
                title="Redis node label: labelled nodes and their readiness",
                queries=(
                    Query("honeydue_kube_redis_nodes", "labelled nodes"),
                    Query("honeydue_kube_redis_node_ready", "ready {{node}}"),
                ),
            ),
            Panel(
                title="Asynq queue registry and keys",
                queries=(
                    Query("honeydue_redis_asynq_queues", "asynq queues"),
                    Query("sum(honeydue_redis_keys)", "keys"),
                    Query("honeydue_redis_restarted_empty", "restarted empty"),
                ),
            ),
        ),
    ),
    FailureMode(
        id="stale-residence-ids-cache",
        row="Worker and queues",
        heading="Stale residence-IDs cache (data freshness bug)",
        layer="app",
        chapter17="§23 Invalidate residence-IDs cache for a user",
        planned="issue 3: sampled cache entries compared with the database's membership truth",
    ),
    FailureMode(
        id="redis-at-maxmemory",
        heading="Redis at maxmemory limit",
        layer="app",
        signals=("honeydue_redis_memory_used_bytes", "honeydue_redis_memory_max_bytes",
                 "honeydue_redis_maxmemory_policy_info", "honeydue_redis_oom_errors_total"),
        probes=("redis",),
        alerts=(
            Alert(
                name="RedisMaxmemoryPolicyNotAllkeysLru",
                severity="warning",
                expr='honeydue_redis_maxmemory_policy_info{policy!="allkeys-lru"} == 1',
                for_="5m",
                summary="Redis maxmemory-policy is not allkeys-lru, so a full Redis will refuse writes.",
                description="Redis runs with maxmemory-policy {{ $labels.policy }}. Set it back with "
                "CONFIG SET maxmemory-policy allkeys-lru and re-apply the redis manifest.",
            ),
            Alert(
                name="RedisMemoryNearLimit",
                severity="warning",
                expr=f"{REDIS_RATIO} > 0.9",
                for_="10m",
                summary="Redis memory use is above 90% of maxmemory.",
                description="Redis uses {{ $value | humanizePercentage }} of maxmemory. Look for runaway "
                "keys without TTLs (redis-cli --bigkeys).",
            ),
            Alert(
                name="RedisNearLimitWithoutEviction",
                severity="critical",
                expr=f'({REDIS_RATIO} > 0.95) and on() '
                f'(honeydue_redis_maxmemory_policy_info{{policy="noeviction"}} == 1)',
                for_="2m",
                summary="Redis is almost full and will not evict: writes are about to fail with OOM.",
                description="Redis uses {{ $value | humanizePercentage }} of maxmemory with policy "
                "noeviction. Set maxmemory-policy allkeys-lru now.",
            ),
            Alert(
                name="RedisRejectingWritesOOM",
                severity="critical",
                expr="increase(honeydue_redis_oom_errors_total[5m]) > 0",
                for_="1m",
                summary="Redis is refusing commands with OOM errors.",
                description="Redis answered {{ $value | humanize }} commands with OOM in the last 5 minutes "
                "(used memory > maxmemory). Check maxmemory-policy and memory use.",
            ),
        ),
        panels=(
            Panel(
                title="Redis memory used / maxmemory",
                queries=(Query(REDIS_RATIO, "used / max"),),
                unit="percentunit",
            ),
            Panel(
                title="Redis maxmemory-policy and OOM replies",
                queries=(
                    Query("honeydue_redis_maxmemory_policy_info", "{{policy}}"),
                    Query("increase(honeydue_redis_oom_errors_total[5m])", "OOM replies / 5m"),
                ),
            ),
        ),
    ),
)
