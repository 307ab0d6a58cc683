"""Cloudflare-level failure modes, watched by the HTTP probes (public URL vs origin) and DNS probes."""

from exporter.catalog.gates import BY, unless_not_theirs
from exporter.catalog.model import Alert, FailureMode, Panel, Query

# Every node's origin answers when probed directly by node IP (one exporter's view; `instance` is the
# exporter): Cloudflare is then the only thing between users and the site. A failing origin explains a
# failing public URL (OriginFailingOnNode says which).
ORIGIN_UP = f'on ({BY}) (min by ({BY}) (honeydue_http_up{{role="origin"}}) == 1)'
# The public URL fails from the obs box too: a second vantage point, outside the cluster and usually routed
# to another Cloudflare POP. Both failing while the origin answers is Cloudflare everywhere, not one POP.
OBS_PUBLIC_DOWN = (
    'on () ((max(honeydue_http_up{job="honeydue-obs-probe",role="public"}) == 0) '
    'or absent(up{job="honeydue-obs-probe"} == 1))'
)

# The exporter is not being scraped (crash loop, not running): its vantage point is gone, the obs box's remains.
EXPORTER_UNSCRAPED = (
    '((max(avg_over_time(up{job="honeydue-exporter"}[3m])) < 0.5) or absent(up{job="honeydue-exporter"} == 1))'
)
# The obs box alone: its public URL fails while every node's origin answers it (one vantage point, used only
# while the exporter's is gone).
OBS_ALONE = (
    'max by (job, instance) (honeydue_http_up{job="honeydue-obs-probe",role="public"}) == 0 '
    'and on (job, instance) (min by (job, instance) (honeydue_http_up{job="honeydue-obs-probe",role="origin"}) == 1) '
    f"and on () {EXPORTER_UNSCRAPED}"
)

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
                expr=unless_not_theirs(f'honeydue_http_up{{job="honeydue-exporter",role="public"}} == 0 and {ORIGIN_UP}',
                                       "http_www"),
                for_="3m",
                summary="A public URL fails through Cloudflare while the origin answers directly.",
                description="{{ $labels.target }} has failed through Cloudflare for 3 minutes while every node's "
                "origin answers when probed directly, so the edge is at fault. honeydue_http_cf_ray_info names the "
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
        signals=("honeydue_http_up", "honeydue_dns_origin_answers"),
        probes=("http", "dns"),
        alerts=(
            Alert(
                name="CloudflareDownOriginUp",
                severity="critical",
                expr=unless_not_theirs(
                    f'max by ({BY}) (honeydue_http_up{{job="honeydue-exporter",role="public"}}) == 0 and {ORIGIN_UP} '
                    f"and {OBS_PUBLIC_DOWN}", "http_www") + f" or ({OBS_ALONE})",
                for_="2m",
                summary="The public URL fails through Cloudflare from inside and outside the cluster while the origin "
                "answers directly.",
                description="For 2 minutes the public URL has failed through Cloudflare as {{ $labels.job }} sees it (the "
                "exporter in the cluster and the obs box are two vantage points, usually two POPs, and both fail; one "
                "pages alone while the other is down) while every node's origin answers when probed directly. If "
                "cloudflarestatus.com confirms a global outage, turn the proxy off (grey cloud) on each A record so "
                "users reach the nodes directly.",
                user_facing=True,
            ),
            Alert(
                name="PublicNameServedByOrigin",
                severity="info",
                expr='max by (job, instance, domain) (honeydue_dns_origin_answers{role="public"}) > 0',
                for_="5m",
                summary="A public name resolves to the node IPs: its Cloudflare proxy is off (grey cloud).",
                description="{{ $labels.domain }} answers with the origin's own addresses, so users bypass "
                "Cloudflare and TLS breaks (SSL Flexible). Expected while Cloudflare is down (chapter 16 \"CF global "
                "outage\"); turn the proxy back on (orange cloud) once Cloudflare recovers.",
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
        signals=("honeydue_dns_unexpected_answers", "honeydue_dns_origin_answers", "honeydue_dns_answers"),
        probes=("dns",),
        alerts=(
            Alert(
                name="DnsAnswerOutsideExpectedRanges",
                severity="critical",
                expr='honeydue_dns_unexpected_answers{role="public"} > 0',
                for_="3m",
                summary="A resolver returns addresses for a public name outside Cloudflare's and the origin's ranges.",
                description="{{ $labels.resolver }} has answered {{ $labels.domain }} with {{ $value }} address(es) "
                "outside the expected CIDRs and the origin's own addresses for 3 minutes. Either DNS is hijacked or "
                "the expected ranges are out of date (cloudflare.com/ips): compare with the Cloudflare dashboard "
                "before anything else.",
                user_facing=True,
            ),
        ),
        panels=(
            Panel(
                title="DNS answers outside the expected ranges",
                queries=(Query("honeydue_dns_unexpected_answers", "{{domain}} via {{resolver}}"),
                         Query("honeydue_dns_origin_answers", "origin {{domain}} via {{resolver}}")),
            ),
        ),
        blind_spot="Hijacks at a user's own resolver (ISP, router, malware) are invisible from the cluster; only "
        "the resolvers configured under dns.resolvers are checked.",
    ),
)
