"""Application-level failure modes: api, admin, worker, Redis and the residence-IDs cache."""

from exporter.catalog.model import Alert, FailureMode, Panel, Query

REDIS_RATIO = "honeydue_redis_memory_used_bytes / (honeydue_redis_memory_max_bytes > 0)"

ENTRIES = (
    FailureMode(
        id="api-pod-oom",
        heading="api pod OOM",
        layer="app",
        planned="issue 4: last terminated reason OOMKilled, container restarts",
    ),
    FailureMode(
        id="api-pod-panics",
        heading="api pod panics",
        layer="app",
        planned="issue 4: restarts, CrashLoopBackOff; all api replicas crash-looping is its own critical alert",
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
                expr='honeydue_http_up{role="api_deep"} == 0 '
                'and on (instance) (max by (instance) (honeydue_http_up{role="api_shallow"}) == 1)',
                for_="3m",
                summary="The api's shallow health check passes while a real request fails or hangs.",
                description="The deep request {{ $labels.target }} has failed or timed out for 3 minutes while "
                "/api/health/ answers, so readiness and liveness see nothing. Likely a deadlock: "
                "kubectl rollout restart deployment/api -n honeydue.",
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
        signals=("honeydue_http_up", "honeydue_http_status_code"),
        probes=("http",),
        planned="issue 4: admin replicas available, CrashLoopBackOff",
        alerts=(
            Alert(
                name="AdminUnreachable",
                severity="warning",
                expr='honeydue_http_up{role="admin"} == 0',
                for_="5m",
                summary="The admin site does not answer as expected.",
                description="The admin target {{ $labels.target }} has failed for 5 minutes (502 at Cloudflare "
                "when the admin pod is down). Only admins are affected; check the admin pod's restarts and logs.",
            ),
        ),
        panels=(
            Panel(
                title="admin HTTP status",
                queries=(Query('honeydue_http_status_code{role="admin"}', "{{target}}"),),
                description="0 means no answer.",
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
                 "honeydue_redis_restarted_empty"),
        probes=("redis",),
        planned="issue 4: the honeydue/redis=true node exists, is unique and Ready",
        alerts=(
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
