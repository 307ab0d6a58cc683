"""Cloudflare-level failure modes, watched by the HTTP probes (public URL vs origin) and DNS probes."""

from exporter.catalog.gates import unless_cluster_dns
from exporter.catalog.model import Alert, FailureMode, Panel, Query

# The origin answers when probed directly (one exporter's view; `instance` is the exporter).
ORIGIN_UP = 'on (job, instance) (max by (job, instance) (honeydue_http_up{role="origin"}) == 1)'

ENTRIES = (
    FailureMode(
        id="cf-edge-pop-outage",
        heading="CF edge POP outage",
        layer="cloudflare",
        signals=("honeydue_http_up", "honeydue_http_cf_ray_info", "honeydue_http_status_code"),
        probes=("http",),
        alerts=(
            Alert(
                name="CloudflareEdgeFailingOriginUp",
                severity="warning",
                expr=unless_cluster_dns(f'honeydue_http_up{{role="public"}} == 0 and {ORIGIN_UP}'),
                for_="3m",
                summary="A public URL fails through Cloudflare while the origin answers directly.",
                description="{{ $labels.target }} has failed through Cloudflare for 3 minutes while the origin "
                "answers when probed directly, so the edge is at fault. honeydue_http_cf_ray_info names the "
                "colo that served the probe; Cloudflare usually reroutes within minutes (cloudflarestatus.com).",
            ),
        ),
        panels=(
            Panel(
                title="Public URLs through Cloudflare vs the origin",
                queries=(Query('honeydue_http_up{role=~"public|origin"}', "{{role}} {{target}}"),),
                description="Public down while origin up = the edge is at fault.",
            ),
            Panel(
                title="Cloudflare colo serving the probe",
                queries=(Query("honeydue_http_cf_ray_info", "{{target}} via {{colo}}"),),
                description="The colo (POP) from the cf-ray header of the last answer; a change means rerouting.",
            ),
        ),
        blind_spot="One vantage point sees one POP: the exporter cannot tell an outage of the POP it is routed "
        "to from a global outage, and cannot see another region's POP at all. An external multi-region "
        "probe or cloudflarestatus.com can.",
    ),
    FailureMode(
        id="cf-global-outage",
        heading="CF global outage (rare but has happened)",
        layer="cloudflare",
        signals=("honeydue_http_up",),
        probes=("http",),
        alerts=(
            Alert(
                name="CloudflareDownOriginUp",
                severity="critical",
                expr=unless_cluster_dns(f'max by (job, instance) (honeydue_http_up{{role="public"}}) == 0 and {ORIGIN_UP}'),
                for_="5m",
                summary="Every public URL fails through Cloudflare while the origin answers directly.",
                description="All public targets probed by {{ $labels.instance }} have failed through Cloudflare "
                "for 5 minutes while the origin answers. If cloudflarestatus.com confirms a global outage, "
                "turn the proxy off (grey cloud) on each A record so users reach the nodes directly.",
            ),
        ),
        panels=(
            Panel(
                title="Share of public and origin targets up",
                queries=(Query('avg by (role) (honeydue_http_up{role=~"public|origin"})', "{{role}}"),),
                unit="percentunit",
            ),
        ),
        blind_spot="From one vantage point an outage of the POP serving the probe looks the same: confirm on "
        "cloudflarestatus.com before changing DNS.",
    ),
    FailureMode(
        id="dns-hijacking",
        heading="DNS hijacking",
        layer="cloudflare",
        signals=("honeydue_dns_unexpected_answers", "honeydue_dns_answers"),
        probes=("dns",),
        alerts=(
            Alert(
                name="DnsAnswerOutsideExpectedRanges",
                severity="critical",
                expr='honeydue_dns_unexpected_answers{role="public"} > 0',
                for_="5m",
                summary="A resolver returns addresses for a public name outside the expected ranges.",
                description="{{ $labels.resolver }} has answered {{ $labels.domain }} with {{ $value }} address(es) "
                "outside the expected CIDRs for 5 minutes. Either DNS is hijacked or the expected ranges are out "
                "of date (cloudflare.com/ips; while a record is grey-clouded, the node IPs belong in the list): "
                "compare with the Cloudflare dashboard before anything else.",
            ),
        ),
        panels=(
            Panel(
                title="DNS answers outside the expected ranges",
                queries=(Query("honeydue_dns_unexpected_answers", "{{domain}} via {{resolver}}"),),
            ),
        ),
        blind_spot="Hijacks at a user's own resolver (ISP, router, malware) are invisible from the cluster; only "
        "the resolvers configured under dns.resolvers are checked.",
    ),
)
