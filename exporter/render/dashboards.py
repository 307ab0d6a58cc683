"""Grafana dashboards built with grafana-foundation-sdk (Grafana 11.6 schema).

One dashboard, one row per catalog layer (some layers split by the system watched). Each row opens
with a text panel listing the layer's failure modes with their runbook links and coverage, so a
failure mode the cluster cannot see still has a place on the screen;
then each entry's panels, each linked to its runbook section.
"""

from __future__ import annotations

import json

from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import prometheus, stat, text, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as gmodel
from grafana_foundation_sdk.models.text import TextMode

from exporter.catalog import CATALOG, LAYER_BY_ID
from exporter.catalog.model import ROWS, FailureMode, Panel

DASHBOARD_UID = "honeydue-failure-modes"
DASHBOARD_FILE = "honeydue-failure-modes.json"
DATASOURCE = gmodel.DataSourceRef(type_val="prometheus", uid="${datasource}")


def _row_text(entries: list[FailureMode], base_url: str) -> str:
    lines = ["The chapter 16 failure modes this row watches, with their runbook sections:", ""]
    for entry in entries:
        layer = LAYER_BY_ID[entry.layer].title
        line = f"- [{entry.heading}]({entry.runbook_url(base_url)}) ({layer}): {entry.status}"
        if entry.planned:
            line += f" ({entry.planned})"
        if entry.blind_spot:
            line += f". Blind spot: {entry.blind_spot}"
        lines.append(line)
    return "\n".join(lines)


def _panel(entry: FailureMode, panel: Panel, base_url: str) -> gdash.Panel:
    url = entry.runbook_url(base_url)
    builder = stat.Panel() if panel.kind == "stat" else timeseries.Panel()
    description = f"{entry.heading}. {panel.description} Runbook: {url}".replace("  ", " ")
    builder = (
        builder.title(panel.title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(panel.unit)
        .height(8)
        .span(12)
        .links([gdash.DashboardLink(f"Runbook: {entry.heading}").url(url).target_blank(True)])
    )
    for index, query in enumerate(panel.queries):
        builder = builder.with_target(
            prometheus.Dataquery()
            .expr(query.expr)
            .legend_format(query.legend or "__auto")
            .ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
        )
    return builder  # type: ignore[return-value]


def build_dashboard(base_url: str) -> gmodel.Dashboard:
    builder = (
        gdash.Dashboard("honeyDue failure modes")
        .uid(DASHBOARD_UID)
        .tags(["honeydue", "generated"])
        .description("Generated from honeydue-exporter's failure-mode catalog; every panel links to its runbook.")
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
        .readonly()
        .with_variable(gdash.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    for row in ROWS:
        entries = [entry for entry in CATALOG if entry.dashboard_row == row]
        if not entries:
            continue
        builder = builder.with_row(gdash.Row(row))
        builder = builder.with_panel(
            text.Panel()
            .title(f"{row}: failure modes and runbooks")
            .content(_row_text(entries, base_url))
            .mode(TextMode.MARKDOWN)
            .height(max(4, len(entries) + 3))
            .span(24)
        )
        for entry in entries:
            for panel in entry.panels:
                builder = builder.with_panel(_panel(entry, panel, base_url))
    return builder.build()


def render_dashboards(base_url: str) -> dict[str, str]:
    board = build_dashboard(base_url)
    return {DASHBOARD_FILE: json.dumps(board, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"}
