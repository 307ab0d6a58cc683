"""The failure-mode catalog: every heading of chapter 16, the single source of rules and dashboards.

One module per layer of the chapter holds that layer's entries; this package joins them in the
chapter's order and answers the questions the renderers and the server ask.
"""

from __future__ import annotations

from exporter.catalog import app, cloudflare, combined, dr, external, k3s, network, node, planned
from exporter.catalog.model import LAYER_BY_ID, LAYERS, ROWS, Alert, FailureMode, Layer, heading_anchor

CATALOG: tuple[FailureMode, ...] = (
    *cloudflare.ENTRIES,
    *node.ENTRIES,
    *k3s.ENTRIES,
    *network.ENTRIES,
    *app.ENTRIES,
    *external.ENTRIES,
    *combined.ENTRIES,
    *planned.ENTRIES,
    *dr.ENTRIES,
)

__all__ = ["CATALOG", "LAYERS", "LAYER_BY_ID", "ROWS", "Alert", "FailureMode", "Layer", "alerts", "by_layer",
           "heading_anchor"]


def by_layer(layer: Layer) -> list[FailureMode]:
    return [entry for entry in CATALOG if entry.layer == layer.id]


def alerts() -> list[tuple[FailureMode, Alert]]:
    return [(entry, alert) for entry in CATALOG for alert in entry.alerts]
