"""Combined failures: symptoms that point at several layers at once."""

from exporter.catalog.model import FailureMode

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
        planned="issue 4: ready api and traefik pods per node",
    ),
    FailureMode(
        id="worked-5-minutes-ago",
        heading='"It worked 5 minutes ago, now it doesn\'t"',
        layer="combined",
        planned="issue 4: deployment last rollout time and updated replicas",
    ),
)
