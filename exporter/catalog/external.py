"""External service failures: Neon Postgres, Backblaze B2, Fastmail SMTP, Gitea, Cloudflare DNS."""

from exporter.catalog.model import Alert, FailureMode, Panel, Query

ENTRIES = (
    FailureMode(
        id="neon-postgres-outage",
        heading="Neon Postgres outage",
        layer="external",
        signals=("honeydue_postgres_up", "honeydue_postgres_connect_duration_seconds"),
        probes=("postgres",),
        alerts=(
            Alert(
                name="NeonPostgresDown",
                severity="critical",
                expr="max without (endpoint) (honeydue_postgres_up) == 0",
                for_="2m",
                summary="Neither the Neon pooler nor the direct endpoint accepts connections.",
                description="Every Postgres endpoint probed by {{ $labels.instance }} failed connect + "
                "SELECT 1 for 2 minutes. Mutating API calls fail; check the Neon status page.",
            ),
        ),
        panels=(
            Panel(
                title="Postgres endpoints up",
                queries=(Query("honeydue_postgres_up", "{{endpoint}}"),),
            ),
            Panel(
                title="Postgres connect and query latency",
                queries=(
                    Query("honeydue_postgres_connect_duration_seconds", "connect {{endpoint}}"),
                    Query("honeydue_postgres_query_duration_seconds", "query {{endpoint}}"),
                ),
                unit="s",
            ),
        ),
    ),
    FailureMode(
        id="neon-pooler-down-direct-up",
        heading="Neon pooler endpoint unreachable but direct endpoint up",
        layer="external",
        signals=("honeydue_postgres_up",),
        probes=("postgres",),
        chapter17="§25 Switch DB host between pooler and direct endpoints",
        alerts=(
            Alert(
                name="NeonPoolerDownDirectUp",
                severity="critical",
                expr='honeydue_postgres_up{endpoint="pooler"} == 0 '
                'and ignoring (endpoint) honeydue_postgres_up{endpoint="direct"} == 1',
                for_="3m",
                summary="The Neon pooler endpoint is unreachable while the direct endpoint works.",
                description="The -pooler endpoint failed connect + SELECT 1 for 3 minutes while the direct "
                "compute endpoint answers. Switch DB_HOST to the direct endpoint and roll api and worker.",
            ),
            Alert(
                name="NeonDirectEndpointDown",
                severity="warning",
                expr='honeydue_postgres_up{endpoint="direct"} == 0 '
                'and ignoring (endpoint) honeydue_postgres_up{endpoint="pooler"} == 1',
                for_="15m",
                summary="The Neon direct endpoint is unreachable, so the emergency fallback is gone.",
                description="The direct compute endpoint failed for 15 minutes while the pooler works. "
                "Nothing is broken now, but the pooler-down switchover would fail.",
            ),
        ),
    ),
    FailureMode(
        id="b2-outage",
        heading="Backblaze B2 outage",
        layer="external",
        planned="issue 5: HTTP probe of the B2 endpoint",
    ),
    FailureMode(
        id="fastmail-smtp-unreachable",
        heading="Fastmail SMTP unreachable",
        layer="external",
        planned="issue 5: SMTP banner, EHLO and STARTTLS probe; issue 3: email tasks piling up in retry",
    ),
    FailureMode(
        id="gitea-registry-unreachable",
        heading="Gitea registry unreachable",
        layer="external",
        signals=("honeydue_kube_pod_container_status_waiting_reason",),
        probes=("kubernetes_pods",),
        planned="issue 5: registry /v2/ probe",
        alerts=(
            Alert(
                name="KubePodImagePullBackOff",
                severity="warning",
                expr='max_over_time(honeydue_kube_pod_container_status_waiting_reason{'
                'reason=~"ImagePullBackOff|ErrImagePull"}[5m]) >= 1',
                for_="10m",
                summary="A pod cannot pull its image, so its rollout is stuck.",
                description="{{ $labels.namespace }}/{{ $labels.pod }} has been waiting with {{ $labels.reason }} "
                "for 10 minutes. Existing pods keep running; check that the Gitea registry answers.",
            ),
        ),
        panels=(
            Panel(
                title="Containers waiting on an image pull",
                queries=(
                    Query('max_over_time(honeydue_kube_pod_container_status_waiting_reason{'
                          'reason=~"ImagePullBackOff|ErrImagePull"}[5m])', "{{namespace}}/{{pod}} {{reason}}"),
                ),
            ),
        ),
    ),
    FailureMode(
        id="cloudflare-dns-failure",
        heading="Cloudflare DNS failure",
        layer="external",
        planned="issue 5: public names via configured resolvers, SERVFAIL / timeout",
    ),
)
