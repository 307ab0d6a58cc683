"""The dashboard as data: every panel's id, queries, thresholds and state texts, and the panel each alert opens.

Kept apart from the Grafana SDK code (exporter/render/dashboards.py) so the rules renderer can ask
"which panel shows this alert" without building the dashboard, and the drill and the tests can run
the very queries the dashboard ships.

Everything is derived from the catalog:
- an alert's threshold is its first top-level comparison that a panel of the catalog shows
  (exporter/promql.py); the panel draws it (a dashed line, or the state's colour for a 0/1
  signal) and is the alert's `dashboard_url`. An alert no panel shows gets a panel of its own with
  what it compares; one without a comparison (absence, Watchdog) opens its failure mode's first
  panel, else its layer's line in the "Now" row.
- a query is a 0/1 signal when it selects (at most through min/max) a metric whose declaration says
  so ("Whether ...", "1 when ..."): such queries go to a state timeline with value texts.
- panel ids are stable hashes of what they show, so a page sent before a dashboard change still opens
  the same panel after it.
"""

from __future__ import annotations

import functools
import re
import zlib
from dataclasses import dataclass, field, replace
from typing import Literal

import exporter.probes  # noqa: F401 - registers every probe's metric declarations
from exporter.catalog import CATALOG, LAYERS
from exporter.catalog.model import ROWS, Alert, FailureMode, Layer, Severity
from exporter.promql import (
    Comparison,
    comparisons,
    core,
    metric_names,
    normalize,
    selector,
    shows,
    with_matcher,
)
from exporter.samples import declared_metrics

DASHBOARD_UID = "honeydue-failure-modes"
DASHBOARD_SLUG = "honeydue-failure-modes"
NOW_ROW = "Now"
PAGES_PANEL_ID = 1
NODE_VARIABLE = "node"
NODE_MATCHER = 'node=~"$node"'

# The "Now" row: each failure mode's worst firing severity, 0 when nothing fires (-1: no alert exists).
STATE_OK, STATE_INFO, STATE_WARNING, STATE_CRITICAL, STATE_UNWATCHED = 0, 1, 2, 3, -1
SEVERITY_STATE: dict[str, int] = {"info": STATE_INFO, "warning": STATE_WARNING, "critical": STATE_CRITICAL}
SEVERITY_COLOR: dict[str, str] = {"info": "blue", "warning": "orange", "critical": "red"}
PAGES_EXPR = 'count(ALERTS{alertstate="firing",severity="critical"}) or vector(0)'

PanelKind = Literal["state", "timeseries", "stat"]


def now_expr(failure_mode: str) -> str:
    """The failure mode's state now: 3 critical, 2 warning, 1 info firing, else 0 (never an empty result)."""
    def alerts(severity: str) -> str:
        return f'ALERTS{{alertstate="firing",failure_mode="{failure_mode}",severity="{severity}"}}'

    return (f'max(3 * {alerts("critical")} or 2 * {alerts("warning")} or {alerts("info")}) '
            "or vector(0)")


@dataclass(frozen=True)
class Threshold:
    """One alert's comparison drawn on a panel: a constant (`comparison.value`) or a series (`comparison.rhs`)."""

    alert: str
    severity: Severity
    comparison: Comparison

    @property
    def color(self) -> str:
        return SEVERITY_COLOR[self.severity]

    def describe(self) -> str:
        return f"{self.alert} ({self.severity}) fires when {self.comparison.op} {self.comparison.rhs}"


@dataclass(frozen=True)
class Target:
    """One query of a panel. `signal` is the catalog's spelling (before the node variable is added)."""

    ref: str
    expr: str
    legend: str
    signal: str
    boolean: bool = False
    thresholds: tuple[Threshold, ...] = ()
    threshold_of: Threshold | None = None  # this query draws another one's threshold series

    def states(self) -> tuple[str, str]:
        """The texts of 1 and 0 for a 0/1 signal."""
        sel = selector(core(self.signal))
        name = sel[0] if sel else ""
        labels = {label: value for label, _, value in (sel[1] if sel else [])}
        for pattern, one, zero in _STATE_TEXTS:
            if re.search(pattern, name) and (pattern != "status_condition$" or labels.get("condition") != "Ready"):
                return one, zero
        return ("ready", "not ready") if labels.get("condition") == "Ready" else ("yes", "no")

    def bad_values(self) -> dict[int, str]:
        """0/1 values that mean trouble, with the colour to show them in."""
        for t in self.thresholds:
            value = t.comparison.value
            if value is not None:
                return {v: t.color for v in (0, 1) if t.comparison.holds(v, value)}
        sel = selector(core(self.signal))
        if sel and re.search(r"_up$|_success$|_ready$|_available$|_exists$|_read_ok$", sel[0]):
            return {0: "red"}
        return {}


_STATE_TEXTS = (
    (r"_up$|_success$", "up", "down"),
    (r"status_condition$", "true", "false"),
    (r"_ready$", "ready", "not ready"),
    (r"_exists$", "exists", "missing"),
    (r"_unschedulable$", "cordoned", "schedulable"),
    (r"_paused$", "paused", "running"),
    (r"_read_ok$", "readable", "malformed"),
    (r"_missing$", "missing", "present"),
    (r"_available$", "available", "unavailable"),
    (r"_info$|_reason$|_result$", "present", "absent"),
)


@dataclass(frozen=True)
class PanelPlan:
    id: int
    row: str
    entry: FailureMode | None
    title: str
    description: str
    kind: PanelKind
    unit: str
    targets: tuple[Target, ...]
    alerts: tuple[str, ...] = ()  # alerts that open this panel


@dataclass(frozen=True)
class RowPlan:
    title: str
    id: int
    text_id: int | None  # the row's text panel (failure modes and runbooks)
    entries: tuple[FailureMode, ...]
    panels: tuple[PanelPlan, ...]


@dataclass(frozen=True)
class Plan:
    now: tuple[PanelPlan, ...]  # the pages stat, then one state timeline per layer
    rows: tuple[RowPlan, ...]
    alert_panel: dict[str, int] = field(default_factory=dict)  # alert name -> panel id it opens
    entry_panel: dict[str, int] = field(default_factory=dict)  # failure mode id -> its own panel

    def panels(self) -> list[PanelPlan]:
        return [*self.now, *(p for row in self.rows for p in row.panels)]

    def panel(self, panel_id: int) -> PanelPlan:
        return next(p for p in self.panels() if p.id == panel_id)

    def ids(self) -> set[int]:
        ids = {p.id for p in self.panels()} | {r.id for r in self.rows} | {r.text_id for r in self.rows if r.text_id}
        return ids | {now_row_id()}


def stable_id(key: str) -> int:
    return 100 + zlib.crc32(key.encode()) % 999_900


def now_row_id() -> int:
    return stable_id("row/" + NOW_ROW)


def now_panel_id(layer: Layer) -> int:
    return 2 + [lay.id for lay in LAYERS].index(layer.id)


def dashboard_url(grafana_base: str, panel_id: int) -> str:
    """The dashboard opened on one panel (`viewPanel` takes the numeric id in Grafana 11, scenes or not)."""
    return f"{grafana_base.rstrip('/')}/d/{DASHBOARD_UID}/{DASHBOARD_SLUG}?viewPanel={panel_id}"


def alert_dashboard_url(grafana_base: str, alert_name: str) -> str:
    return dashboard_url(grafana_base, build_plan().alert_panel[alert_name])


# --- building the plan -------------------------------------------------------------------------------
@functools.cache
def _boolean_metrics() -> frozenset[str]:
    """Metrics whose declaration says they are 0/1 (or info metrics, always 1)."""
    return frozenset(
        name for name, spec in declared_metrics().items()
        if spec.kind == "info" or re.search(r"^Whether |\b1 (when|while|for|on|per) |\(1 = ", spec.help)
    )


@functools.cache
def _node_metrics() -> frozenset[str]:
    return frozenset(name for name, spec in declared_metrics().items() if "node" in spec.labels)


def _is_boolean(expr: str) -> bool:
    """A query whose values stay 0/1: a 0/1 metric through nothing but min/max and filters."""
    text = normalize(expr)
    sel = selector(core(text))
    if sel is None or sel[0] not in _boolean_metrics():
        return False
    return not re.search(r"\b(sum|count|avg|rate|increase|delta|deriv|changes)\b|[-+*/]", text)


def _unit(declared: str, exprs: list[str]) -> str:
    """The catalog's unit, or one read from the metric names (`_seconds`, `_bytes`) when it says `short`."""
    if declared != "short" or not exprs:
        return declared
    names = [n for e in exprs for n in metric_names(e)]
    if names and all(n.endswith("_bytes") for n in names):
        return "bytes"
    durations = [n.endswith("_seconds") and (not n.endswith("_timestamp_seconds") or "time()" in e)
                 for e in exprs for n in metric_names(e)]
    if durations and all(durations):
        return "s"
    return declared


def _with_node(expr: str) -> str:
    return with_matcher(expr, set(_node_metrics()), NODE_MATCHER)


def _targets(queries: list[tuple[str, str]]) -> tuple[Target, ...]:
    return tuple(
        Target(chr(ord("A") + i), _with_node(expr), legend or "__auto", expr, _is_boolean(expr))
        for i, (expr, legend) in enumerate(queries)
    )


def _catalog_panels(entry: FailureMode) -> list[PanelPlan]:
    """An entry's panels; a panel mixing 0/1 signals and values becomes a state timeline and a graph."""
    out: list[PanelPlan] = []
    for panel in entry.panels:
        queries = [(q.expr, q.legend) for q in panel.queries]
        flags = [_is_boolean(expr) for expr, _ in queries]
        kind: PanelKind = "stat" if panel.kind == "stat" else "state" if all(flags) else "timeseries"
        parts: list[tuple[str, PanelKind, list[tuple[str, str]]]]
        if kind == "timeseries" and any(flags):
            values = [q for q, flag in zip(queries, flags, strict=True) if not flag]
            states = [q for q, flag in zip(queries, flags, strict=True) if flag]
            parts = [(panel.title, "state", states), (f"{panel.title} (values)", "timeseries", values)]
        else:
            parts = [(panel.title, kind, queries)]
        for title, part_kind, part in parts:
            out.append(PanelPlan(
                id=stable_id(f"{entry.id}/{title}"), row=entry.dashboard_row, entry=entry, title=title,
                description=panel.description, kind=part_kind,
                unit=_unit(panel.unit, [e for e, _ in part]), targets=_targets(part),
            ))
    return out


def _own_panel(entry: FailureMode, alert: Alert, comparison: Comparison) -> PanelPlan:
    """A panel for an alert no catalog panel shows: what it compares, against what."""
    queries = [(comparison.lhs, "")]
    title = f"{alert.name}: what it compares"
    return PanelPlan(
        id=stable_id(f"{entry.id}/{title}"), row=entry.dashboard_row, entry=entry, title=title,
        description=f"No other panel shows this alert's signal: {alert.summary}",
        kind="state" if _is_boolean(comparison.lhs) else "timeseries",
        unit=_unit("short", [comparison.lhs]), targets=_targets(queries),
    )


def _draw(panel: PanelPlan, threshold: Threshold) -> PanelPlan:
    """`panel` with `threshold` on every query showing its signal (and its series when it is a query)."""
    targets = [
        replace(t, thresholds=(*t.thresholds, threshold))
        if t.threshold_of is None and shows(t.signal, threshold.comparison.lhs) else t
        for t in panel.targets
    ]
    if threshold.comparison.value is None:
        rhs = threshold.comparison.rhs
        targets.append(Target(chr(ord("A") + len(targets)), _with_node(rhs), f"{threshold.alert} threshold", rhs,
                              threshold_of=threshold))
    kind = panel.kind
    if kind == "state" and threshold.comparison.value is not None and threshold.comparison.value not in (0, 1):
        kind = "timeseries"
    return replace(panel, kind=kind, targets=tuple(targets), alerts=(*panel.alerts, threshold.alert))


def _now_panels() -> list[PanelPlan]:
    stat = PanelPlan(
        id=PAGES_PANEL_ID, row=NOW_ROW, entry=None, title="Pages firing now",
        description="Critical alerts firing now: each one pages. 0 is the only good value.",
        kind="stat", unit="short", targets=(Target("A", PAGES_EXPR, "pages", PAGES_EXPR),),
    )
    panels = [stat]
    for layer in LAYERS:
        entries = [e for e in CATALOG if e.layer == layer.id]
        targets = tuple(
            Target(chr(ord("A") + i), now_expr(e.id) if e.alerts else f"vector({STATE_UNWATCHED})", e.heading,
                   now_expr(e.id))
            for i, e in enumerate(entries)
        )
        panels.append(PanelPlan(
            id=now_panel_id(layer), row=NOW_ROW, entry=None, title=layer.title,
            description=f"Each failure mode of '{layer.title}' (chapter 16): the worst severity firing now. "
            "Click a line for its runbook and its panel.",
            kind="state", unit="short", targets=targets,
        ))
    return panels


@functools.cache
def build_plan() -> Plan:
    panels: list[PanelPlan] = [p for entry in CATALOG for p in _catalog_panels(entry)]
    alert_panel: dict[str, int] = {}
    for entry in CATALOG:
        for alert in entry.alerts:
            found = _place(entry, alert, panels)
            if found is not None:
                alert_panel[alert.name] = found
    entry_panel: dict[str, int] = {}
    for entry in CATALOG:
        own = [p for p in panels if _entry_id(p) == entry.id]
        layer = next(lay for lay in LAYERS if lay.id == entry.layer)
        entry_panel[entry.id] = own[0].id if own else now_panel_id(layer)
        for alert in entry.alerts:
            alert_panel.setdefault(alert.name, entry_panel[entry.id])
    rows = []
    for title in ROWS:
        entries = tuple(e for e in CATALOG if e.dashboard_row == title)
        if entries:
            rows.append(RowPlan(title, stable_id("row/" + title), stable_id("text/" + title), entries,
                                tuple(p for p in panels if p.row == title)))
    plan = Plan(tuple(_now_panels()), tuple(rows), alert_panel, entry_panel)
    ids = [p.id for p in plan.panels()] + [r.id for r in rows] + [r.text_id for r in rows if r.text_id]
    ids.append(now_row_id())
    if len(ids) != len(set(ids)):
        raise RuntimeError("two dashboard panels got the same id: rename one of them")
    return plan


def _place(entry: FailureMode, alert: Alert, panels: list[PanelPlan]) -> int | None:
    """Draw the alert's threshold on the first panel showing its signal (adding one if none does)."""
    candidates = comparisons(alert.expr)
    ordered = sorted(range(len(panels)), key=lambda i: _entry_id(panels[i]) != entry.id)
    for comparison in candidates:
        for i in ordered:
            if panels[i].kind != "stat" and any(shows(t.signal, comparison.lhs) for t in panels[i].targets):
                panels[i] = _draw(panels[i], Threshold(alert.name, alert.severity, comparison))
                return panels[i].id
    if not candidates:
        return None
    own = _own_panel(entry, alert, candidates[0])
    last = max((i for i, p in enumerate(panels) if _entry_id(p) == entry.id), default=-1)
    if last < 0:
        last = max((i for i, p in enumerate(panels) if p.row == entry.dashboard_row), default=len(panels) - 1)
    panels.insert(last + 1, _draw(own, Threshold(alert.name, alert.severity, candidates[0])))
    return own.id


def _entry_id(panel: PanelPlan) -> str | None:
    return panel.entry.id if panel.entry is not None else None
