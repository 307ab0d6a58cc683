"""External service failures: Neon Postgres, Backblaze B2, Fastmail SMTP, Gitea, Cloudflare DNS."""

from exporter.catalog.gates import BY, OBS_PUBLIC_UP, blocked_somewhere, grew, unless_not_theirs
from exporter.catalog.model import Alert, FailureMode, Panel, Query

RETRY = 'asynq_tasks{state="retry"}'

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
                expr=unless_not_theirs("max without (endpoint) (honeydue_postgres_up) == 0", "postgres_.+")
                + f" unless on () {blocked_somewhere('postgres-pooler|postgres-direct')}",
                for_="2m",
                summary="Neither the Neon pooler nor the direct endpoint accepts connections.",
                description="Every Postgres endpoint probed by {{ $labels.instance }} failed connect + "
                "SELECT 1 for 2 minutes, and no node's path to them is blocked while another's works. Mutating API "
                "calls fail; check the Neon status page.",
                user_facing=True,
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
                expr=unless_not_theirs('honeydue_postgres_up{endpoint="pooler"} == 0 '
                                       'and ignoring (endpoint) honeydue_postgres_up{endpoint="direct"} == 1',
                                       "postgres_.+") + f" unless on () {blocked_somewhere('postgres-pooler')}",
                for_="3m",
                summary="The Neon pooler endpoint is unreachable while the direct endpoint works.",
                description="The -pooler endpoint failed connect + SELECT 1 from {{ $labels.instance }} for 3 "
                "minutes while the direct compute endpoint answers. Switch DB_HOST to the direct endpoint and "
                "roll api and worker.",
                user_facing=True,
            ),
            Alert(
                name="NeonDirectEndpointDown",
                severity="warning",
                expr=unless_not_theirs('honeydue_postgres_up{endpoint="direct"} == 0 '
                                       'and ignoring (endpoint) honeydue_postgres_up{endpoint="pooler"} == 1',
                                       "postgres_.+") + f" unless on () {blocked_somewhere('postgres-direct')}",
                for_="15m",
                summary="The Neon direct endpoint is unreachable, so the emergency fallback is gone.",
                description="The direct compute endpoint failed connect + SELECT 1 from {{ $labels.instance }} "
                "for 15 minutes while the pooler works. Nothing is broken now, but the pooler-down switchover "
                "would fail.",
            ),
        ),
    ),
    FailureMode(
        id="b2-outage",
        heading="Backblaze B2 outage",
        layer="external",
        signals=("honeydue_http_up", "honeydue_http_status_code", "honeydue_http_phase_duration_seconds"),
        probes=("http",),
        alerts=(
            Alert(
                name="BackblazeB2Unreachable",
                severity="warning",
                expr=unless_not_theirs('honeydue_http_up{role="b2"} == 0', "http_b2"),
                for_="5m",
                summary="Backblaze B2 does not answer the probe as expected.",
                description="The B2 target {{ $labels.target }} has failed for 5 minutes. Image uploads fail and "
                "downloads not cached by Cloudflare fail. Check status.backblaze.com; recovery is to wait.",
            ),
        ),
        panels=(
            Panel(
                title="External HTTP endpoints up (B2, registry)",
                queries=(Query('honeydue_http_up{role=~"b2|registry"}', "{{role}} {{target}}"),),
            ),
            Panel(
                title="External HTTP endpoint latency",
                queries=(
                    Query('honeydue_http_phase_duration_seconds{role=~"b2|registry",phase="total"}', "{{target}}"),
                ),
                unit="s",
            ),
        ),
    ),
    FailureMode(
        id="fastmail-smtp-unreachable",
        heading="Fastmail SMTP unreachable",
        layer="external",
        signals=("honeydue_smtp_up", "honeydue_smtp_banner_code", "honeydue_smtp_starttls_advertised",
                 "honeydue_smtp_tls_handshake_success", "honeydue_smtp_phase_duration_seconds",
                 "asynq_tasks", "asynq_tasks_failed_total"),
        probes=("smtp", "asynq"),
        alerts=(
            Alert(
                name="FastmailSmtpUnreachable",
                severity="warning",
                expr=unless_not_theirs("honeydue_smtp_up == 0", "smtp_.+"),
                for_="10m",
                summary="The outbound SMTP relay fails its banner, EHLO or STARTTLS check.",
                description="The SMTP target {{ $labels.target }} has failed the banner 220 / EHLO / STARTTLS check "
                "for 10 minutes. Transactional email is not sent; Asynq retries the jobs. Check Fastmail's status "
                "page and honeydue_smtp_banner_code.",
            ),
            Alert(
                name="AsynqTasksPilingUpInRetry",
                severity="warning",
                expr=f"({RETRY} > 10) and {grew(RETRY, '30m')}",
                for_="15m",
                summary="Asynq tasks are piling up in retry (often emails Fastmail will not take).",
                description="Queue {{ $labels.queue }} holds {{ $value }} tasks waiting to retry and the number "
                "keeps rising. Email tasks retry while Fastmail SMTP is unreachable; check the SMTP probe.",
            ),
            Alert(
                name="AsynqTasksArchived",
                severity="warning",
                expr='asynq_tasks{state="archived"} - asynq_tasks{state="archived"} offset 1h > 0',
                for_="5m",
                summary="Asynq gave up on tasks and archived them after their last retry.",
                description="Queue {{ $labels.queue }} archived {{ $value | humanize }} tasks in the last hour: "
                "they will not run again (for email: not sent). Re-enqueue them once the cause is fixed.",
            ),
        ),
        panels=(
            Panel(
                title="SMTP relay: up, STARTTLS, TLS handshake",
                queries=(
                    Query("honeydue_smtp_up", "up {{target}}"),
                    Query("honeydue_smtp_starttls_advertised", "STARTTLS offered {{target}}"),
                    Query("honeydue_smtp_tls_handshake_success", "TLS ok {{target}}"),
                ),
            ),
            Panel(
                title="SMTP session timings",
                queries=(Query("honeydue_smtp_phase_duration_seconds", "{{target}} {{phase}}"),),
                unit="s",
            ),
            Panel(
                title="Asynq tasks in retry and archived",
                queries=(Query('asynq_tasks{state=~"retry|archived"}', "{{queue}} {{state}}"),),
                description="Email tasks retry while Fastmail is unreachable and are archived when they give up.",
            ),
        ),
    ),
    FailureMode(
        id="gitea-registry-unreachable",
        heading="Gitea registry unreachable",
        layer="external",
        signals=("honeydue_http_up", "honeydue_http_status_code",
                 "honeydue_kube_pod_container_status_waiting_reason"),
        probes=("http", "kubernetes_pods"),
        alerts=(
            Alert(
                name="GiteaRegistryUnreachable",
                severity="warning",
                expr=unless_not_theirs('honeydue_http_up{role="registry"} == 0', "http_registry"),
                for_="10m",
                summary="The Gitea container registry does not answer on /v2/.",
                description="The registry target {{ $labels.target }} has failed for 10 minutes. Running pods are "
                "fine, but new pods (rollouts, rescheduling) stick at pulling their image until it is back.",
            ),
            Alert(
                name="KubePodImagePullBackOff",
                severity="warning",
                # One alert per container, whichever of the two reasons: the kubelet shows ErrImagePull only
                # for a moment at each pull attempt (back-off up to 5 minutes), so a per-reason alert flaps.
                expr='max without (reason) (max_over_time(honeydue_kube_pod_container_status_waiting_reason{'
                'reason=~"ImagePullBackOff|ErrImagePull"}[5m])) >= 1',
                for_="10m",
                summary="A pod cannot pull its image, so its rollout is stuck.",
                description="{{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) has been waiting on "
                "its image pull (ImagePullBackOff, ErrImagePull) for 10 minutes. Existing pods keep running; check "
                "that the Gitea registry answers.",
            ),
        ),
        panels=(
            Panel(
                title="Gitea registry /v2/ status code",
                queries=(Query('honeydue_http_status_code{role="registry"}', "{{target}}"),),
                description="200 or 401 means the registry answers; 0 means no answer.",
            ),
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
        row="Edge and DNS",
        heading="Cloudflare DNS failure",
        layer="external",
        signals=("honeydue_dns_up", "honeydue_dns_result", "honeydue_dns_lookup_duration_seconds"),
        probes=("dns",),
        alerts=(
            Alert(
                name="PublicDnsResolutionDown",
                severity="critical",
                # Quiet while the obs box reaches the site by its name: then the exporter's node cannot reach
                # the resolvers (its DNS egress), and users can (ClusterDnsUpstreamFailing pages that).
                expr=f'(max by ({BY}, domain) (honeydue_dns_up{{role="public"}}) == 0) unless on () {OBS_PUBLIC_UP}',
                for_="3m",
                summary="No configured resolver resolves a public name.",
                description="{{ $labels.domain }} has not resolved through any configured resolver for 3 minutes "
                "(SERVFAIL, NXDOMAIN or timeout: see honeydue_dns_result), and the obs box does not reach the site "
                "either. Users cannot reach the site; check cloudflarestatus.com and the zone in the Cloudflare "
                "dashboard.",
                user_facing=True,
            ),
            Alert(
                name="PublicDnsLookupFailing",
                severity="warning",
                expr='honeydue_dns_up{role="public"} == 0',
                for_="10m",
                summary="A resolver fails to resolve a public name.",
                description="{{ $labels.resolver }} has not resolved {{ $labels.domain }} for 10 minutes "
                "(see honeydue_dns_result for SERVFAIL, NXDOMAIN or timeout). Users of that resolver cannot "
                "reach the site.",
            ),
        ),
        panels=(
            Panel(
                title="Public DNS lookups by result",
                queries=(Query('honeydue_dns_result{role="public"} == 1', "{{domain}} via {{resolver}}: {{result}}"),),
            ),
            Panel(
                title="Public DNS lookup latency",
                queries=(Query('honeydue_dns_lookup_duration_seconds{role="public"}', "{{domain}} via {{resolver}}"),),
                unit="s",
            ),
        ),
        blind_spot="Only the resolvers we query are checked; a user's ISP resolver failing is invisible here.",
    ),
)
