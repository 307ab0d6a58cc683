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
        planned="issue 4: CPU-bound pods",
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
        planned="issue 4: ready api and traefik pods per node",
    ),
    FailureMode(
        id="worked-5-minutes-ago",
        heading='"It worked 5 minutes ago, now it doesn\'t"',
        layer="combined",
        planned="issue 4: deployment last rollout time and updated replicas",
    ),
)
