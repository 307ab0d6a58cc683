"""Planned outages: node and k3s upgrades. Node alerts are inhibited while a node is cordoned."""

from exporter.catalog.model import FailureMode

ENTRIES = (
    FailureMode(
        id="node-upgrades",
        heading="Node upgrades (OS patches)",
        layer="planned",
        planned="issue 4: cordoned nodes (inhibit node alerts while draining), long cordons as tickets",
    ),
    FailureMode(
        id="k3s-upgrades",
        heading="k3s upgrades",
        layer="planned",
        planned="issue 4: kubelet version per node, version skew as a ticket",
    ),
)
