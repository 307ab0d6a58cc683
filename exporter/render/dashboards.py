"""Grafana dashboards built with grafana-foundation-sdk (Grafana 11.6 schema), from the plan in panels.py.

Screen order: the "Now" row (pages firing, then one state timeline per chapter layer with each failure
mode's worst firing severity, each line linking to its runbook and its panel), then one row per
catalog layer (some layers split by the system watched). Each row opens with a text panel listing its
failure modes with their runbook links and coverage, so a failure mode the cluster cannot see still
has a place on the screen; then each entry's panels: 0/1 signals as state timelines with texts
(up/down, ready/not ready) and the alert's bad value in its severity's colour, values as graphs with
the alert's threshold as a dashed line. Annotations mark api rollouts, exporter restarts and node
cordons; a node variable filters the per-node queries.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, text, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as gmodel
from grafana_foundation_sdk.models.text import TextMode

from exporter.catalog import CATALOG, LAYER_BY_ID
from exporter.catalog.model import FailureMode
from exporter.render.panels import (
    DASHBOARD_UID,
    NODE_MATCHER,
    NODE_VARIABLE,
    NOW_ROW,
    STATE_CRITICAL,
    STATE_INFO,
    STATE_OK,
    STATE_UNWATCHED,
    STATE_WARNING,
    PanelPlan,
    Plan,
    Target,
    Threshold,
    build_plan,
    dashboard_url,
    now_row_id,
)

DASHBOARD_FILE = "honeydue-failure-modes.json"
DATASOURCE = gmodel.DataSourceRef(type_val="prometheus", uid="${datasource}")
TIME_RANGE = "${__url_time_range}"

# Annotations: what changed, drawn across every graph. Each is a plain PromQL query (MetricsQL-safe).
ANNOTATIONS: tuple[tuple[str, str, str], ...] = (
    ("api rollouts", "blue",
     'changes(honeydue_kube_deployment_last_rollout_timestamp_seconds{namespace="honeydue",deployment="api"}[2m]) > 0'),
    ("exporter restarts", "purple", "time() - honeydue_exporter_start_time_seconds < 90"),
    ("node cordons", "orange", f"honeydue_kube_node_spec_unschedulable{{{NODE_MATCHER}}} == 1"),
)
NODE_QUERY = "label_values(honeydue_kube_node_status_condition, node)"

_NOW_STATES = (
    (STATE_UNWATCHED, "no alert", "text"),
    (STATE_OK, "ok", "green"),
    (STATE_INFO, "info", "blue"),
    (STATE_WARNING, "warning", "orange"),
    (STATE_CRITICAL, "critical", "red"),
)


def _value_map(states: list[tuple[int, str, str]]) -> gmodel.ValueMap:
    return gmodel.ValueMap(options={
        str(value): gmodel.ValueMappingResult(text=label, color=color, index=i)
        for i, (value, label, color) in enumerate(states)
    })


def _threshold_steps(thresholds: tuple[Threshold, ...]) -> gmodel.ThresholdsConfig:
    """Colour steps whose edges are the alerts' constants (Grafana draws a line at each step).

    Above a `>` threshold is the alert's side; below a `<` one, and at or below a `<=` or `==` one (an
    `== 0` alert watches a count or a ratio that cannot go below 0). A value takes the colour of the
    highest step at or below it, so "at c" is a second step just above c.
    """
    constants = [t for t in thresholds if t.comparison.value is not None]
    first = constants[0]
    value = first.comparison.value
    assert value is not None
    op = first.comparison.op
    if op in (">", ">="):
        steps = [gmodel.Threshold(None, "green")] + [
            gmodel.Threshold(t.comparison.value, t.color)
            for t in sorted(constants, key=lambda t: t.comparison.value or 0.0) if t.comparison.op in (">", ">=")
        ]
    elif op == "!=":
        steps = [gmodel.Threshold(None, first.color), gmodel.Threshold(value, "green"),
                 gmodel.Threshold(_just_above(value), first.color)]
    elif op == "<":
        steps = [gmodel.Threshold(None, first.color), gmodel.Threshold(value, "green")]
    else:
        steps = [gmodel.Threshold(None, first.color), gmodel.Threshold(_just_above(value), "green")]
    return gmodel.ThresholdsConfig(mode=gmodel.ThresholdsMode.ABSOLUTE, steps=steps)


def _just_above(value: float) -> float:
    return value + 1e-9 * max(1.0, abs(value))


def _links(entry: FailureMode | None, base_url: str) -> list[cogbuilder.Builder[gmodel.DashboardLink]]:
    if entry is None:
        return []
    return [gdash.DashboardLink(f"Runbook: {entry.heading}").url(entry.runbook_url(base_url)).target_blank(True)]


def _description(panel: PanelPlan, base_url: str) -> str:
    parts = [panel.description]
    if panel.entry is not None:
        parts.insert(0, f"{panel.entry.heading}.")
    drawn = [t.describe() for target in panel.targets for t in target.thresholds]
    drawn += [f"{target.threshold_of.alert}'s threshold is the dashed series" for target in panel.targets
              if target.threshold_of is not None]
    if drawn:
        parts.append("Thresholds: " + "; ".join(drawn) + ".")
    if panel.entry is not None:
        parts.append(f"Runbook: {panel.entry.runbook_url(base_url)}")
    return " ".join(p for p in parts if p).replace("  ", " ")


def _query(target: Target) -> prometheus.Dataquery:
    return (prometheus.Dataquery().expr(target.expr).legend_format(target.legend).ref_id(target.ref)
            .datasource(DATASOURCE))


def _state_overrides(builder: Any, targets: tuple[Target, ...]) -> Any:
    for target in targets:
        one, zero = target.states()
        bad = target.bad_values()
        good = "green" if bad else "blue"
        states = [(1, one, bad.get(1, good if 1 not in bad and bad else "blue")),
                  (0, zero, bad.get(0, "green" if bad else "text"))]
        builder = builder.override_by_query(target.ref, [gmodel.DynamicConfigValue("mappings", [_value_map(states)])])
    return builder


def _graph_overrides(builder: Any, targets: tuple[Target, ...]) -> Any:
    for target in targets:
        if any(t.comparison.value is not None for t in target.thresholds):
            builder = builder.override_by_query(target.ref, [
                gmodel.DynamicConfigValue("thresholds", _threshold_steps(target.thresholds)),
                gmodel.DynamicConfigValue("custom.thresholdsStyle", {"mode": common.GraphThresholdsStyleMode.DASHED}),
            ])
        if target.threshold_of is not None:
            builder = builder.override_by_query(target.ref, [
                gmodel.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
                gmodel.DynamicConfigValue("color", {"mode": "fixed", "fixedColor": target.threshold_of.color}),
            ])
    return builder


def _panel(panel: PanelPlan, base_url: str) -> cogbuilder.Builder[gmodel.Panel]:
    builder: Any
    if panel.kind == "stat":
        builder = stat.Panel()
    elif panel.kind == "state":
        builder = (statetimeline.Panel().show_value(common.VisibilityMode.AUTO).merge_values(True)
                   .row_height(0.8).fill_opacity(80))
        builder = _state_overrides(builder, panel.targets)
    else:
        builder = timeseries.Panel().fill_opacity(0)
        builder = _graph_overrides(builder, panel.targets)
    builder = (
        builder.id(panel.id).title(panel.title).description(_description(panel, base_url))
        .datasource(DATASOURCE).unit(panel.unit).height(8).span(12).links(_links(panel.entry, base_url))
    )
    for target in panel.targets:
        builder = builder.with_target(_query(target))
    return builder  # type: ignore[no-any-return]


def _now_panel(panel: PanelPlan, plan: Plan, base_url: str, grafana_url: str) -> cogbuilder.Builder[gmodel.Panel]:
    """A layer's failure modes, one line each: worst severity firing, linked to the runbook and the panel."""
    if panel.kind == "stat":
        return (
            stat.Panel().id(panel.id).title(panel.title).description(panel.description).datasource(DATASOURCE)
            .with_target(_query(panel.targets[0])).height(4).span(24)
            .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
            .thresholds(gdash.ThresholdsConfig().mode(gmodel.ThresholdsMode.ABSOLUTE).steps(
                [gmodel.Threshold(None, "green"), gmodel.Threshold(1, "red")]))
        )
    builder: Any = (
        statetimeline.Panel().id(panel.id).title(panel.title).description(panel.description)
        .datasource(DATASOURCE).height(max(4, len(panel.targets) + 2)).span(12)
        .show_value(common.VisibilityMode.AUTO).merge_values(True).row_height(0.8).fill_opacity(90)
        .mappings([_value_map(list(_NOW_STATES))])
    )
    entries = {e.heading: e for e in CATALOG}
    for target in panel.targets:
        entry = entries[target.legend]
        builder = builder.override_by_name(target.legend, [gmodel.DynamicConfigValue("links", [
            {"title": f"Runbook: {entry.heading}", "url": entry.runbook_url(base_url), "targetBlank": True},
            {"title": "Its panel", "url": f"{dashboard_url(grafana_url, plan.entry_panel[entry.id])}&{TIME_RANGE}"},
        ])])
        builder = builder.with_target(_query(target))
    return builder  # type: ignore[no-any-return]


def _row_text(entries: tuple[FailureMode, ...], base_url: str) -> str:
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


def build_dashboard(base_url: str, grafana_url: str) -> gmodel.Dashboard:
    plan = build_plan()
    builder = (
        gdash.Dashboard("honeyDue failure modes")
        .uid(DASHBOARD_UID)
        .tags(["honeydue", "generated"])
        .description("Generated from honeydue-exporter's failure-mode catalog. Top: what fires now, per failure "
                     "mode; below, each failure mode's signals with its alerts' thresholds and runbook links.")
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
        .readonly()
        .with_variable(gdash.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            gdash.QueryVariable(NODE_VARIABLE).label("Node").datasource(DATASOURCE).query(NODE_QUERY)
            .multi(True).include_all(True).all_value(".*").current(
                gmodel.VariableOption(selected=True, text="All", value="$__all"))
            .refresh(gmodel.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(gmodel.VariableSort.ALPHABETICAL_ASC)
        )
    )
    for name, color, expr in ANNOTATIONS:
        builder = builder.annotation(
            gdash.AnnotationQuery().name(name).datasource(DATASOURCE).enable(True).icon_color(color).expr(expr)
        )
    builder = builder.with_row(gdash.Row(NOW_ROW).id(now_row_id()))
    for panel in plan.now:
        builder = builder.with_panel(_now_panel(panel, plan, base_url, grafana_url))
    for row in plan.rows:
        builder = builder.with_row(gdash.Row(row.title).id(row.id))
        builder = builder.with_panel(
            text.Panel().id(row.text_id or 0)
            .title(f"{row.title}: failure modes and runbooks")
            .content(_row_text(row.entries, base_url))
            .mode(TextMode.MARKDOWN)
            .height(max(4, len(row.entries) + 3))
            .span(24)
        )
        for panel in row.panels:
            builder = builder.with_panel(_panel(panel, base_url))
    return builder.build()


def dashboard_json(base_url: str, grafana_url: str) -> str:
    board = build_dashboard(base_url, grafana_url)
    return json.dumps(board, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def render_dashboards(base_url: str, grafana_url: str) -> dict[str, str]:
    return {DASHBOARD_FILE: dashboard_json(base_url, grafana_url)}
