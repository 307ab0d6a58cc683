"""Cloudflare-level failure modes. Signals arrive with the edge/DNS probes (issue 5)."""

from exporter.catalog.model import FailureMode

ENTRIES = (
    FailureMode(
        id="cf-edge-pop-outage",
        heading="CF edge POP outage",
        layer="cloudflare",
        planned="issue 5: HTTP probe of the public URL through Cloudflare vs the origin, cf-ray colo info",
        blind_spot="One vantage point sees one POP: an outage of another region's POP is visible only to "
        "an external multi-region probe or Cloudflare's status page.",
    ),
    FailureMode(
        id="cf-global-outage",
        heading="CF global outage (rare but has happened)",
        layer="cloudflare",
        planned="issue 5: public URL through Cloudflare down while the origin answers",
    ),
    FailureMode(
        id="dns-hijacking",
        heading="DNS hijacking",
        layer="cloudflare",
        planned="issue 5: public names resolved via configured resolvers, answers outside expected CIDRs",
        blind_spot="Hijacks at a user's own resolver are invisible from the cluster; only resolvers we query "
        "are checked.",
    ),
)
