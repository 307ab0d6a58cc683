"""Networking failure modes. Signals arrive with the TCP/netcheck probes (issue 5)."""

from exporter.catalog.model import FailureMode

ENTRIES = (
    FailureMode(
        id="ufw-blocks-traffic",
        heading="UFW rule accidentally blocks essential traffic",
        layer="network",
        planned="issue 5: TCP probes to essential endpoints (Postgres, Redis, API server)",
    ),
    FailureMode(
        id="flannel-broken",
        heading="Flannel broken on one node",
        layer="network",
        planned="issue 5: per-node netcheck: pod IP of a remote backend unreachable",
    ),
    FailureMode(
        id="kube-proxy-broken",
        heading="Kube-proxy broken on one node",
        layer="network",
        planned="issue 5: per-node netcheck: Service ClusterIP unreachable while pod IPs answer",
    ),
)
