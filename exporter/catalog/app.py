"""Application-level failure modes: api, admin, worker, Redis and the residence-IDs cache."""

from exporter.catalog.gates import (
    BY,
    QUORUM_LOST,
    REDIS_NODE_IN_MAINTENANCE,
    blocked_somewhere,
    grew,
    token_refused,
    unless_not_theirs,
)
from exporter.catalog.model import Alert, FailureMode, Panel, Query

REDIS_RATIO = "honeydue_redis_memory_used_bytes / (honeydue_redis_memory_max_bytes > 0)"
PENDING = 'asynq_tasks{state="pending"}'
PENDING_GROWING = grew(PENDING, "10m")
PROCESSED = "asynq_tasks_processed_total"
NOTHING_PROCESSED = f"({PROCESSED} - {PROCESSED} offset 10m == 0)"
# When the container last terminated, as the API reports it (lastState.terminated.finishedAt): a kill
# 15 minutes old or more is not news, whatever gaps the data has (an offset comparison re-fired weeks-old
# OOMs after every gap longer than its window).
TERMINATED_RECENTLY = "(time() - honeydue_kube_pod_container_status_last_terminated_timestamp_seconds < 900)"
WAITING = "honeydue_kube_pod_container_status_waiting_reason"
# A container in CrashLoopBackOff flips to Running between back-offs; looking at the worst state
# over 5 minutes keeps the alert from flapping (the kube-prometheus KubePodCrashLooping fix).
CRASHLOOPING = f'max_over_time({WAITING}{{reason="CrashLoopBackOff"}}[5m])'


def crashlooping(namespace: str, workload: str) -> str:
    """Containers of one workload's pods crash-looping (the workload from the pod's owner)."""
    return (f'max by ({BY}, namespace, pod, container) (max_over_time({WAITING}{{namespace="{namespace}",'
            f'reason="CrashLoopBackOff"}}[5m])) >= 1 and on ({BY}, namespace, pod) '
            f'honeydue_kube_pod_info{{namespace="{namespace}",workload="{workload}"}}')


# Redis started within the hour and Asynq's data did not survive it: the queue registry emptied after having
# members, or the processed counters started again from zero. Read from the TSDB, so an exporter restart
# in between changes nothing (the exporter keeps no memory of Redis' past).
# The loss first (the dashboard draws the first comparison: the emptied registry), then the young Redis.
REDIS_RESTARTED_EMPTY = (
    f"((max by ({BY}) (min_over_time(honeydue_redis_asynq_queues[1h])) == 0 "
    f"and max by ({BY}) (max_over_time(honeydue_redis_asynq_queues[2h])) > 0) "
    f"or (sum by ({BY}) (resets(asynq_tasks_processed_total[1h])) > 0)) "
    f"and on ({BY}) (honeydue_redis_uptime_seconds < 3600)"
)
API_CRASHLOOPING_PODS = (
    f'max by (job, instance, namespace, pod) (max_over_time({WAITING}{{namespace="honeydue",reason="CrashLoopBackOff"}}[5m])) '
    'and on (job, instance, namespace, pod) honeydue_kube_pod_info{workload="api"}'
)

API_ALL_CRASHLOOPING = (
    f"count by ({BY}, namespace) ({API_CRASHLOOPING_PODS}) >= on ({BY}, namespace) "
    'honeydue_kube_deployment_spec_replicas{namespace="honeydue",deployment="api"}'
)

ENTRIES = (
    FailureMode(
        id="api-pod-oom",
        heading="api pod OOM",
        layer="app",
        signals=("honeydue_kube_pod_container_status_last_terminated_reason",
                 "honeydue_kube_pod_container_status_last_terminated_timestamp_seconds",
                 "honeydue_kube_pod_container_status_restarts_total", "honeydue_kube_pod_info"),
        probes=("kubernetes_pods",),
        alerts=(
            Alert(
                name="ContainerOOMKilled",
                severity="warning",
                expr='(honeydue_kube_pod_container_status_last_terminated_reason{namespace="honeydue",'
                f'reason="OOMKilled"}} == 1) and on ({BY}, namespace, pod, container) {TERMINATED_RECENTLY} '
                f'and on ({BY}, namespace, pod) honeydue_kube_pod_info{{workload="api"}}',
                for_="1m",
                summary="An api container was OOM-killed and restarted.",
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
                name="ApiPodCrashLooping",
                severity="warning",
                expr=crashlooping("honeydue", "api"),
                for_="15m",
                summary="An api container keeps crashing and is in CrashLoopBackOff.",
                description="{{ $labels.pod }} ({{ $labels.container }}) has been crash-looping for 15 minutes while "
                "other replicas serve. Read the panic in `kubectl -n honeydue logs {{ $labels.pod }} --previous`, "
                "fix and deploy.",
                labels=(("workload", "api"),),
            ),
            Alert(
                name="ApiAllReplicasCrashLooping",
                severity="critical",
                expr=API_ALL_CRASHLOOPING,
                for_="2m",
                summary="Every api replica is crash-looping: roll back to the previous revision.",
                description="{{ $value }} api pods are in CrashLoopBackOff, all the desired replicas: bad code "
                "is crashing on startup. Run `kubectl rollout undo deployment/api -n honeydue` now.",
                labels=(("workload", "api"),),
                user_facing=True,
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
        signals=("honeydue_http_up", "honeydue_http_phase_duration_seconds"),
        probes=("http",),
        alerts=(
            Alert(
                name="ApiDeepRequestFailingShallowHealthy",
                severity="critical",
                expr=unless_not_theirs(
                    '(honeydue_http_up{role="api_deep"} == 0) '
                    f'and on ({BY}) (max by ({BY}) (honeydue_http_up{{role="api_shallow"}}) == 1) '
                    f'unless on ({BY}) (honeydue_postgres_up{{endpoint="pooler"}} == 0) '
                    f'unless {token_refused("api_deep")}', "http_api_deep|postgres_pooler"),
                for_="150s",
                summary="The api's shallow health check passes while a real request fails or hangs.",
                description="The deep request {{ $labels.target }} has failed or timed out for 3 minutes while "
                "/api/health/ answers and the Neon pooler accepts connections, so readiness and liveness see "
                "nothing. Likely a deadlock: "
                "kubectl rollout restart deployment/api -n honeydue.",
                user_facing=True,
            ),
        ),
        panels=(
            Panel(
                title="api shallow health vs deep request",
                queries=(Query('honeydue_http_up{role=~"api_shallow|api_deep"}', "{{role}} {{target}}"),),
                description="Shallow up while deep down = deadlock.",
            ),
            Panel(
                title="api shallow vs deep request time",
                queries=(
                    Query('honeydue_http_phase_duration_seconds{role=~"api_shallow|api_deep",phase="total"}',
                          "{{role}} {{target}}"),
                ),
                unit="s",
            ),
        ),
    ),
    FailureMode(
        id="admin-pod-crashes",
        heading="admin pod crashes",
        layer="app",
        signals=("honeydue_http_up", "honeydue_http_status_code",
                 "honeydue_kube_deployment_status_replicas_available", "honeydue_kube_pod_container_status_waiting_reason",
                 "honeydue_kube_pod_info"),
        probes=("http", "kubernetes_deployments", "kubernetes_pods"),
        alerts=(
            Alert(
                name="AdminUnreachable",
                severity="warning",
                expr=unless_not_theirs('honeydue_http_up{role="admin"} == 0', "http_admin"),
                for_="5m",
                summary="The admin site does not answer as expected.",
                description="The admin target {{ $labels.target }} has failed for 5 minutes (502 at Cloudflare "
                "when the admin pod is down). Only admins are affected; check the admin pod's restarts and logs.",
            ),
            Alert(
                name="AdminPodCrashLooping",
                severity="warning",
                expr=crashlooping("honeydue", "admin"),
                for_="10m",
                summary="The admin container keeps crashing and is in CrashLoopBackOff.",
                description="{{ $labels.pod }} ({{ $labels.container }}) has been crash-looping for 10 minutes: admins "
                "get 502 at admin.myhoneydue.com, users are unaffected. kubectl -n honeydue logs {{ $labels.pod }} "
                "--previous.",
                labels=(("workload", "admin"),),
            ),
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
                title="admin HTTP status",
                queries=(Query('honeydue_http_status_code{role="admin"}', "{{target}}"),),
                description="0 means no answer.",
            ),
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
        signals=("asynq_tasks", "asynq_queue_latency_seconds", "asynq_tasks_processed_total",
                 "asynq_queue_paused", "honeydue_asynq_servers_live", "honeydue_asynq_server_queue_priority",
                 "honeydue_asynq_stuck_active_tasks", "honeydue_asynq_schedulers_live",
                 "honeydue_asynq_cron_last_enqueue_timestamp_seconds", "honeydue_asynq_cron_interval_seconds",
                 "honeydue_asynq_queue_read_ok", "honeydue_kube_pod_container_status_waiting_reason",
                 "honeydue_kube_pod_info"),
        probes=("asynq", "kubernetes_pods"),
        alerts=(
            Alert(
                name="AsynqBacklogGrowingNothingProcessed",
                severity="critical",
                expr=f"{PENDING_GROWING} and on ({BY}, queue) {NOTHING_PROCESSED} "
                f"unless on ({BY}, queue) (asynq_queue_paused == 1)",
                for_="5m",
                summary="An Asynq queue keeps growing while the worker processes nothing.",
                description="Queue {{ $labels.queue }} gained {{ $value | humanize }} pending tasks in 10 minutes "
                "and no task was processed. Restart the worker (kubectl rollout restart deployment/worker "
                "-n honeydue) and read its logs.",
                labels=(("workload", "worker"),),
                user_facing=False,
            ),
            Alert(
                name="AsynqNoLiveWorker",
                severity="critical",
                expr=f'(sum by ({BY}) (asynq_tasks{{state="pending"}}) > 0) '
                f'and on ({BY}) (sum by ({BY}) (honeydue_asynq_servers_live{{status="active"}}) == 0)',
                for_="2m",
                summary="No Asynq worker server is alive while tasks are waiting.",
                description="No worker server has sent a heartbeat for 2 minutes and {{ $value }} tasks are "
                "pending. Emails and cron jobs are not running: check deployment/worker in namespace honeydue.",
                labels=(("workload", "worker"),),
                user_facing=False,
            ),
            Alert(
                name="WorkerPodCrashLooping",
                severity="warning",
                expr=crashlooping("honeydue", "worker"),
                for_="10m",
                summary="The worker container keeps crashing and is in CrashLoopBackOff.",
                description="{{ $labels.pod }} ({{ $labels.container }}) has been crash-looping for 10 minutes: emails "
                "and cron jobs wait. kubectl -n honeydue logs {{ $labels.pod }} --previous.",
                labels=(("workload", "worker"),),
            ),
            Alert(
                name="AsynqQueueNotServed",
                severity="warning",
                expr='(asynq_tasks{state="pending"} > 0) '
                "unless on(instance, queue) honeydue_asynq_server_queue_priority "
                'and on(instance) (sum by (instance) (honeydue_asynq_servers_live{status="active"}) > 0)',
                for_="10m",
                summary="Tasks wait in an Asynq queue that no live worker server serves.",
                description="Queue {{ $labels.queue }} holds {{ $value }} pending tasks but none of the live "
                "worker servers lists it in its queues. Check the worker's queue configuration.",
            ),
            Alert(
                name="AsynqQueueLatencyHigh",
                severity="warning",
                expr="asynq_queue_latency_seconds > 300 unless on(instance, queue) (asynq_queue_paused == 1)",
                for_="5m",
                summary="The oldest pending Asynq task has waited more than 5 minutes.",
                description="The oldest pending task of queue {{ $labels.queue }} has waited "
                "{{ $value | humanizeDuration }}. The worker is too slow or stuck.",
            ),
            Alert(
                name="AsynqStuckActiveTasks",
                severity="warning",
                expr="sum without (reason) (honeydue_asynq_stuck_active_tasks) > 0",
                for_="10m",
                summary="Asynq tasks are marked active but no worker holds a valid lease on them.",
                description="{{ $value }} active tasks of queue {{ $labels.queue }} have an expired lease (their "
                "worker died) or no lease at all; Asynq's recoverer only re-queues expired leases. Restart the "
                "worker; leaseless tasks need re-enqueueing by hand.",
            ),
            Alert(
                name="AsynqCronEntryStopped",
                severity="warning",
                expr="(time() - honeydue_asynq_cron_last_enqueue_timestamp_seconds "
                "> 2 * honeydue_asynq_cron_interval_seconds + 300) "
                "and (honeydue_asynq_cron_interval_seconds > 0)",
                for_="5m",
                summary="An Asynq cron entry stopped enqueuing its task.",
                description="Cron entry {{ $labels.task_type }} ({{ $labels.schedule }}) last enqueued "
                "{{ $value | humanizeDuration }} ago, more than twice its interval. Read the worker logs for "
                "enqueue errors.",
            ),
            Alert(
                name="AsynqNoLiveScheduler",
                severity="warning",
                expr="(honeydue_asynq_schedulers_live == 0) and on(instance) (honeydue_asynq_up == 1)",
                for_="10m",
                summary="No Asynq scheduler is alive, so no cron job fires.",
                description="asynq:schedulers has no member with a live heartbeat on {{ $labels.instance }}. "
                "The worker's scheduler is not running: restart deployment/worker in namespace honeydue.",
            ),
            Alert(
                name="AsynqQueuePaused",
                severity="info",
                expr="asynq_queue_paused == 1",
                for_="30m",
                summary="An Asynq queue has been paused for 30 minutes.",
                description="Queue {{ $labels.queue }} is paused (its Asynq paused key exists); its tasks are "
                "not processed until someone unpauses it (asynq queue unpause).",
            ),
            Alert(
                name="AsynqQueueUnreadable",
                severity="warning",
                expr="honeydue_asynq_queue_read_ok == 0",
                for_="10m",
                summary="An Asynq queue has malformed keys in Redis.",
                description="Some keys of queue {{ $labels.queue }} have the wrong type or undecodable values "
                "(see honeydue_asynq_queue_error_info); the worker may fail on this queue too.",
            ),
        ),
        panels=(
            Panel(
                title="Asynq pending backlog by queue",
                queries=(Query('asynq_tasks{state="pending"}', "{{queue}}"),),
                description="Pending only: retained completed tasks are not backlog.",
            ),
            Panel(
                title="Asynq oldest pending task age",
                queries=(Query("asynq_queue_latency_seconds", "{{queue}}"),),
                unit="s",
            ),
            Panel(
                title="Asynq tasks processed and failed per minute",
                queries=(
                    Query("sum by (queue) (rate(asynq_tasks_processed_total[5m])) * 60", "processed {{queue}}"),
                    Query("sum by (queue) (rate(asynq_tasks_failed_total[5m])) * 60", "failed {{queue}}"),
                ),
            ),
            Panel(
                title="Asynq live worker servers and busy workers",
                queries=(
                    Query('sum(honeydue_asynq_servers_live{status="active"})', "live servers"),
                    Query("sum(honeydue_asynq_server_active_workers)", "busy workers"),
                    Query("sum(honeydue_asynq_server_concurrency)", "concurrency"),
                ),
            ),
            Panel(
                title="Asynq stuck active tasks",
                queries=(Query("honeydue_asynq_stuck_active_tasks", "{{queue}} {{reason}}"),),
                description="Active tasks with an expired lease (worker died) or no lease (never recovered).",
            ),
            Panel(
                title="Asynq cron: time since last enqueue",
                queries=(
                    Query("time() - honeydue_asynq_cron_last_enqueue_timestamp_seconds", "{{task_type}}"),
                    Query("honeydue_asynq_schedulers_live", "live schedulers"),
                ),
                unit="s",
            ),
        ),
    ),
    FailureMode(
        id="redis-pod-dies",
        heading="redis pod dies + node is different",
        layer="app",
        signals=("honeydue_redis_up", "honeydue_redis_uptime_seconds", "honeydue_redis_asynq_queues",
                 "asynq_tasks_processed_total", "honeydue_asynq_queues", "asynq_queue_size",
                 "honeydue_asynq_servers_live", "honeydue_asynq_schedulers_live", "honeydue_kube_redis_nodes",
                 "honeydue_kube_redis_node_ready"),
        probes=("redis", "asynq", "kubernetes_nodes"),
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
                expr=unless_not_theirs("honeydue_redis_up == 0", "redis")
                + f" unless on ({BY}) {REDIS_NODE_IN_MAINTENANCE} unless on ({BY}) ({QUORUM_LOST})"
                + f" unless on () {blocked_somewhere('redis')}",
                for_="2m",
                summary="Redis does not answer: Asynq jobs and the auth caches are unavailable.",
                description="The exporter {{ $labels.instance }} could not reach Redis for 2 minutes: Asynq jobs stop "
                "and the auth caches fall back to the database. Quiet while the name does not resolve, while the "
                "overlay or kube-proxy is broken, while a node other than the exporter's reaches Redis (a blocked "
                "path pages instead), in the first 30 minutes of a cordon of the Redis node and while etcd has "
                "lost quorum. Check the redis pod and the node labelled honeydue/redis=true: move the "
                "label only if that node is gone (Redis then starts empty).",
                user_facing=True,
            ),
            Alert(
                name="RedisRestartedEmpty",
                severity="warning",
                expr=REDIS_RESTARTED_EMPTY,
                for_="1m",
                summary="Redis restarted without its data: Asynq queue state was lost.",
                description="Redis, as {{ $labels.instance }} reads it, restarted within the last hour and Asynq's data "
                "went with the restart (its queue registry emptied, or its processed counters started again from "
                "zero). In-flight jobs were lost; cron re-schedules on its next tick. Make sure the "
                "honeydue/redis=true label is on a healthy node.",
            ),
        ),
        panels=(
            Panel(
                title="Redis up and uptime",
                queries=(Query("honeydue_redis_up", "up"), Query("honeydue_redis_uptime_seconds", "uptime")),
                description="A restart (uptime back near zero) with the Asynq registry emptied or its counters back "
                "at zero means Redis restarted empty.",
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
                    Query("resets(asynq_tasks_processed_total[1h])", "processed counter resets {{queue}}"),
                ),
            ),
            Panel(
                title="Asynq state after a Redis restart",
                queries=(
                    Query("honeydue_asynq_queues", "queues"),
                    Query("sum(asynq_queue_size)", "tasks"),
                    Query('sum(honeydue_asynq_servers_live{status="active"})', "live servers"),
                    Query("honeydue_asynq_schedulers_live", "live schedulers"),
                ),
                description="After an empty restart the queues come back as the worker re-registers; "
                "in-flight tasks are gone, cron fires again on its next tick.",
            ),
        ),
    ),
    FailureMode(
        id="stale-residence-ids-cache",
        row="Worker and queues",
        heading="Stale residence-IDs cache (data freshness bug)",
        layer="app",
        chapter17="§23 Invalidate residence-IDs cache for a user",
        signals=("honeydue_residence_ids_cache_entries_checked", "honeydue_residence_ids_cache_entries_stale",
                 "honeydue_residence_ids_cache_oldest_stale_age_seconds",
                 "honeydue_residence_ids_cache_entries_without_ttl", "honeydue_residence_ids_cache_up"),
        probes=("residence_cache",),
        alerts=(
            Alert(
                name="ResidenceIdsCacheStale",
                severity="warning",
                expr="max_over_time(honeydue_residence_ids_cache_entries_stale[15m]) > 0",
                for_="1m",
                summary="Residence-IDs cache entries disagree with the database: a mutation skipped invalidation.",
                description="{{ $value }} sampled residence-IDs cache entries held memberships the database no "
                "longer has (confirmed by a second read). A membership-changing code path does not call "
                "cache.InvalidateResidenceIDsForUsers; flush the affected users' keys.",
            ),
            Alert(
                name="ResidenceIdsCacheEntryWithoutTtl",
                severity="warning",
                expr="honeydue_residence_ids_cache_entries_without_ttl > 0",
                for_="15m",
                summary="Residence-IDs cache entries have no expiry, so a stale one never heals.",
                description="{{ $value }} sampled residence-IDs cache entries have no TTL (the service sets "
                "5 minutes). Find the code path that writes them without expiry.",
            ),
        ),
        panels=(
            Panel(
                title="Residence-IDs cache: entries checked and stale",
                queries=(
                    Query("honeydue_residence_ids_cache_entries_checked", "checked"),
                    Query("honeydue_residence_ids_cache_entries_stale", "stale"),
                    Query("honeydue_residence_ids_cache_entries_without_ttl", "without TTL"),
                    Query("honeydue_residence_ids_cache_entries_undecodable", "undecodable"),
                ),
                description="Each run samples up to K cached users and compares with residence_residence "
                "(owner) and residence_residence_users (member).",
            ),
            Panel(
                title="Residence-IDs cache: oldest stale entry",
                queries=(
                    Query("honeydue_residence_ids_cache_oldest_stale_age_seconds", "age"),
                    Query("honeydue_residence_ids_cache_oldest_stale_ttl_seconds", "remaining TTL"),
                ),
                unit="s",
            ),
        ),
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
                expr=f'({REDIS_RATIO} > 0.95) and ignoring (policy) '
                f'(honeydue_redis_maxmemory_policy_info{{policy="noeviction"}} == 1)',
                for_="2m",
                summary="Redis is almost full and will not evict: writes are about to fail with OOM.",
                description="Redis uses {{ $value | humanizePercentage }} of maxmemory with policy "
                "noeviction. Set maxmemory-policy allkeys-lru now.",
            ),
            Alert(
                name="RedisRejectingWritesOOM",
                severity="critical",
                expr=grew("honeydue_redis_oom_errors_total", "5m"),
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
