"""The shipped dashboard: Grafana 11.6's types, the "Now" row, thresholds and states from the alerts,
context, pages that open the alert's panel, and every query running on VictoriaMetrics 1.79."""

from __future__ import annotations

import copy
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from testbed.drill.dashboard_check import EMPTY_DURING_FAILURE, DashboardCheck
from testbed.vm import VictoriaMetrics

from exporter.catalog import CATALOG, LAYERS
from exporter.config import DEFAULT_GRAFANA_BASE_URL, GrafanaConfig
from exporter.promql import comparisons, core, metric_names, shows, with_matcher
from exporter.render.dashboards import ANNOTATIONS, DASHBOARD_FILE
from exporter.render.panels import (
    DASHBOARD_UID,
    NOW_ROW,
    PAGES_PANEL_ID,
    build_plan,
    dashboard_url,
    now_panel_id,
)
from exporter.samples import declared_metrics
from tests.helpers.grafana_schema import dashboard_errors
from tests.helpers.servers import require_binary

REPO = Path(__file__).resolve().parent.parent
BOARD: dict[str, Any] = json.loads((REPO / "dashboards" / DASHBOARD_FILE).read_text())
PANELS = {p["id"]: p for p in BOARD["panels"]}


def _rules() -> list[dict[str, Any]]:
    return [rule for path in sorted((REPO / "rules").glob("*.rules.yml"))
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def _override(panel: dict[str, Any], ref: str, prop: str) -> Any:
    for override in panel["fieldConfig"]["overrides"]:
        if override["matcher"] == {"id": "byFrameRefID", "options": ref}:
            for p in override["properties"]:
                if p["id"] == prop:
                    return p["value"]
    return None


# --- Grafana's schema -----------------------------------------------------------------------------------
def test_dashboard_conforms_to_grafana_11_6_types() -> None:
    assert dashboard_errors(BOARD) == []


def _first(kind: str) -> int:
    return next(i for i, p in enumerate(BOARD["panels"]) if p["type"] == kind and p["id"] > 100)


def _memory_panel(board: dict[str, Any]) -> dict[str, Any]:
    panel_id = build_plan().alert_panel["RedisNearLimitWithoutEviction"]
    return next(p for p in board["panels"] if p["id"] == panel_id)


def _memory_up(board: dict[str, Any]) -> dict[str, Any]:
    panel_id = build_plan().alert_panel["RedisDown"]
    return next(p for p in board["panels"] if p["id"] == panel_id)


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "unknown panel key": lambda b: b["panels"][_first("timeseries")].update(bogus=1),
    "unknown state-timeline option": lambda b: b["panels"][_first("state-timeline")]["options"].update(bogus=1),
    "string grid height": lambda b: b["panels"][_first("timeseries")]["gridPos"].update(h="8"),
    "unknown enum value": lambda b: b["panels"][_first("state-timeline")]["options"].update(showValue="often"),
    "unknown threshold key": lambda b: _override(_memory_panel(b), "A", "thresholds").update(x=1),
    "unknown value-mapping key": lambda b: _override(_memory_up(b), "A", "mappings")[0].update(x=1),
    "unknown query key": lambda b: b["panels"][_first("timeseries")]["targets"][0].update(bogus=1),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_schema_check_catches_a_broken_dashboard(mutation: str) -> None:
    board = copy.deepcopy(BOARD)
    MUTATIONS[mutation](board)
    assert dashboard_errors(board) != []


# --- the "Now" row ----------------------------------------------------------------------------------------
def test_now_row_is_on_top_with_every_failure_mode_grouped_by_layer() -> None:
    panels = BOARD["panels"]
    assert panels[0]["type"] == "row" and panels[0]["title"] == NOW_ROW
    assert panels[1]["id"] == PAGES_PANEL_ID and panels[1]["type"] == "stat"
    assert "ALERTS" in panels[1]["targets"][0]["expr"] and 'severity="critical"' in panels[1]["targets"][0]["expr"]
    timelines = panels[2:2 + len(LAYERS)]
    assert [p["title"] for p in timelines] == [layer.title for layer in LAYERS]
    assert panels[2 + len(LAYERS)]["type"] == "row"
    seen = []
    for layer, panel in zip(LAYERS, timelines, strict=True):
        assert panel["type"] == "state-timeline" and panel["id"] == now_panel_id(layer)
        entries = [e for e in CATALOG if e.layer == layer.id]
        assert [t["legendFormat"] for t in panel["targets"]] == [e.heading for e in entries]
        texts = {opt["text"] for m in panel["fieldConfig"]["defaults"]["mappings"] for opt in m["options"].values()}
        assert {"ok", "info", "warning", "critical"} <= texts
        links = {o["matcher"]["options"]: o["properties"][0]["value"] for o in panel["fieldConfig"]["overrides"]}
        for entry, target in zip(entries, panel["targets"], strict=True):
            if entry.alerts:
                assert f'failure_mode="{entry.id}"' in target["expr"]
            runbook, own = links[entry.heading]
            assert runbook["url"] == entry.runbook_url("https://git.example.com/honeyDue/honeyDueAPI/src/branch/"
                                                       "main/docs/deployment")
            panel_id = int(re.search(r"viewPanel=(\d+)", own["url"]).group(1))  # type: ignore[union-attr]
            assert panel_id in PANELS and panel_id == build_plan().entry_panel[entry.id]
            seen.append(entry.id)
    assert seen == [e.id for layer in LAYERS for e in CATALOG if e.layer == layer.id]
    assert len(seen) == len(CATALOG)


# --- signals at a glance -----------------------------------------------------------------------------------
def test_zero_one_signals_are_state_timelines_with_texts() -> None:
    plan = build_plan()
    states = [p for row in plan.rows for p in row.panels if p.kind == "state"]
    assert len(states) >= 20
    for panel in states:
        board = PANELS[panel.id]
        assert board["type"] == "state-timeline", panel.title
        for target in panel.targets:
            [mapping] = _override(board, target.ref, "mappings")
            assert set(mapping["options"]) == {"0", "1"}, panel.title
    up = PANELS[plan.alert_panel["NeonPoolerDownDirectUp"]]
    [mapping] = _override(up, "A", "mappings")
    assert mapping["options"]["0"] == {"color": "red", "index": 1, "text": "down"}
    assert mapping["options"]["1"]["text"] == "up"
    ready = PANELS[plan.alert_panel["HoneydueNodeNotReady"]]
    [mapping] = _override(ready, "A", "mappings")
    assert (mapping["options"]["1"]["text"], mapping["options"]["0"]["text"]) == ("ready", "not ready")
    assert mapping["options"]["0"]["color"] == "orange"  # HoneydueNodeNotReady is a warning


def test_graphs_carry_the_alert_threshold_dashed_and_their_unit() -> None:
    plan = build_plan()
    memory = PANELS[plan.alert_panel["RedisNearLimitWithoutEviction"]]
    steps = _override(memory, "A", "thresholds")["steps"]
    assert [(s["value"], s["color"]) for s in steps] == [(None, "green"), (0.9, "orange"), (0.95, "red")]
    assert _override(memory, "A", "custom.thresholdsStyle") == {"mode": "dashed"}
    assert memory["fieldConfig"]["defaults"]["unit"] == "percentunit"
    latency = PANELS[plan.alert_panel["AsynqQueueLatencyHigh"]]
    assert [s["value"] for s in _override(latency, "A", "thresholds")["steps"]] == [None, 300]
    assert latency["fieldConfig"]["defaults"]["unit"] == "s"
    # a threshold that is itself a query is drawn as a dashed series
    cron = PANELS[plan.alert_panel["AsynqCronEntryStopped"]]
    [line] = [t for t in cron["targets"] if t["expr"] == "2 * honeydue_asynq_cron_interval_seconds + 300"]
    assert _override(cron, line["refId"], "custom.lineStyle")["fill"] == "dash"
    # every graph with an alert threshold dashes it
    for panel in (p for row in plan.rows for p in row.panels if p.kind == "timeseries"):
        for target in panel.targets:
            if any(t.comparison.value is not None for t in target.thresholds):
                assert _override(PANELS[panel.id], target.ref, "custom.thresholdsStyle") == {"mode": "dashed"}
    # units follow the metric names where the catalog says `short`
    for panel in (p for row in plan.rows for p in row.panels if p.kind == "timeseries" and p.targets):
        names = [n for t in panel.targets for n in re.findall(r"[a-z_]+_bytes\b", t.expr)]
        if names and len(names) == len(panel.targets):
            assert PANELS[panel.id]["fieldConfig"]["defaults"]["unit"] == "bytes", panel.title


def test_per_failure_mode_panels_keep_description_and_runbook() -> None:
    for row in build_plan().rows:
        for panel in row.panels:
            board = PANELS[panel.id]
            assert panel.entry is not None
            assert panel.entry.runbook_url("https://git.example.com/honeyDue/honeyDueAPI/src/branch/main/docs/"
                                           "deployment") == board["links"][0]["url"]
            assert board["description"].startswith(panel.entry.heading)
            assert "Runbook: " in board["description"]


# --- context --------------------------------------------------------------------------------------------------
def test_annotations_and_the_node_variable() -> None:
    names = [a["name"] for a in BOARD["annotations"]["list"]]
    assert names == ["api rollouts", "exporter restarts", "node cordons"]
    exprs = {a["name"]: a["expr"] for a in BOARD["annotations"]["list"]}
    assert "honeydue_kube_deployment_last_rollout_timestamp_seconds" in exprs["api rollouts"]
    assert "honeydue_exporter_start_time_seconds" in exprs["exporter restarts"]
    assert "honeydue_kube_node_spec_unschedulable" in exprs["node cordons"]
    declared = declared_metrics()
    for _, _, expr in ANNOTATIONS:
        assert all(name in declared for name in re.findall(r"honeydue_[a-z_]+", expr))
    node = next(v for v in BOARD["templating"]["list"] if v["name"] == "node")
    assert node["multi"] and node["includeAll"] and node["allValue"] == ".*"
    node_metrics = {name for name, spec in declared.items() if "node" in spec.labels}
    for panel in build_plan().panels():
        for target in panel.targets:
            for name in set(re.findall(r"\b(honeydue_[a-z_]+)\b", target.expr)) & node_metrics:
                assert re.search(rf'{name}\{{node=~"\$node"', target.expr), target.expr


# --- every panel reads something that exists ------------------------------------------------------------------
# Series that the exporter does not declare but that exist in production's TSDB: vmalert writes ALERTS, vmagent
# writes `up` for each scrape target. Any other name a panel reads must be declared by a probe (rules/ has no
# recording rules), or the panel can never show data.
WRITTEN_BY_OTHERS = {"ALERTS": "vmalert", "up": "vmagent"}
_LABEL_VALUES = re.compile(r"^label_values\(\s*(?P<expr>.+),\s*\w+\s*\)$")


def _queries(node: Any, where: str) -> Iterator[tuple[str, str]]:
    """(where, query) of every target, annotation and query variable of a dashboard's JSON."""
    if isinstance(node, dict):
        here = f"{where} {node['title']!r}" if isinstance(node.get("title"), str) else where
        if isinstance(node.get("expr"), str):
            yield here, node["expr"]
        if node.get("type") == "query":
            query = node.get("query")
            text = query.get("query", "") if isinstance(query, dict) else query
            if isinstance(text, str) and text:
                match = _LABEL_VALUES.match(text)
                yield f"variable {node.get('name')}", match.group("expr") if match else text
        for value in node.values():
            yield from _queries(value, here)
    elif isinstance(node, list):
        for value in node:
            yield from _queries(value, where)


def unknown_metrics(board: dict[str, Any]) -> list[str]:
    """Every (place, metric) a dashboard reads that no probe declares and no other component writes."""
    known = set(declared_metrics()) | set(WRITTEN_BY_OTHERS)
    return sorted(f"{where}: {name}" for where, expr in _queries(board, "dashboard")
                  for name in metric_names(expr) if name not in known)


@pytest.mark.parametrize("path", sorted((REPO / "dashboards").glob("*.json")), ids=lambda p: p.name)
def test_every_panel_reads_metrics_that_exist(path: Path) -> None:
    board = json.loads(path.read_text())
    assert len(list(_queries(board, "dashboard"))) > 100
    assert unknown_metrics(board) == []


def test_a_panel_reading_an_unknown_metric_fails() -> None:
    board = copy.deepcopy(BOARD)
    row = next(p for p in board["panels"] if p.get("panels") or p.get("targets"))
    target = (row.get("targets") or row["panels"][0]["targets"])[0]
    target["expr"] = target["expr"] + " or honeydue_no_such_metric"
    assert [line.endswith(": honeydue_no_such_metric") for line in unknown_metrics(board)] == [True]


# --- pages open the panel -------------------------------------------------------------------------------------
def test_every_alert_carries_a_dashboard_url_to_a_panel_that_shows_it() -> None:
    plan = build_plan()
    rules = _rules()
    assert len(rules) == sum(len(e.alerts) for e in CATALOG)
    for rule in rules:
        url = rule["annotations"]["dashboard_url"]
        parts = urllib.parse.urlsplit(url)
        assert url.startswith(DEFAULT_GRAFANA_BASE_URL + f"/d/{DASHBOARD_UID}/")
        [panel_id] = urllib.parse.parse_qs(parts.query)["viewPanel"]
        assert int(panel_id) in PANELS, rule["alert"]
        panel = plan.panel(int(panel_id))
        alert = next(a for e in CATALOG for a in e.alerts if a.name == rule["alert"])
        if comparisons(alert.expr):
            assert rule["alert"] in panel.alerts, f"{rule['alert']} opens {panel.title!r}, which draws none of it"


def test_grafana_base_url_must_be_http() -> None:
    with pytest.raises(pydantic.ValidationError):
        GrafanaConfig(base_url="grafana.local")
    assert GrafanaConfig(base_url="https://g.example.org/").base_url == "https://g.example.org"
    assert dashboard_url("https://g.example.org/", 7) == f"https://g.example.org/d/{DASHBOARD_UID}/{DASHBOARD_UID}?viewPanel=7"


# --- reading the alerts ----------------------------------------------------------------------------------------
def test_comparisons_of_an_alert() -> None:
    [c] = comparisons("asynq_queue_latency_seconds > 300 unless on(instance, queue) (asynq_queue_paused == 1)")
    assert (c.lhs, c.op, c.value) == ("asynq_queue_latency_seconds", ">", 300.0)
    first, guard = comparisons("(time() - a > 2 * b + 300) and (b > 0)")
    assert (first.lhs, first.rhs, first.value) == ("time() - a", "2 * b + 300", None)
    assert (guard.lhs, guard.value) == ("b", 0.0)
    [ratio] = comparisons("used / (max > 0) > 0.9")
    assert (ratio.lhs, ratio.value) == ("used / (max > 0)", 0.9)
    assert comparisons("absent_over_time(x[3m])") == [] and comparisons("vector(1)") == []
    # a label_replace around the whole alert only adds a label: its threshold is the inner comparison's
    [renamed] = comparisons('label_replace(updated < spec, "workload", "$1", "deployment", "(.+)")')
    assert (renamed.lhs, renamed.op, renamed.rhs) == ("updated", "<", "spec")


def test_which_query_shows_a_signal() -> None:
    assert core("sum by (ns, pod) (max_over_time(w{r=\"x\"}[5m]))") == 'w{r="x"}'
    assert shows('honeydue_http_up{role=~"b2|registry"}', 'honeydue_http_up{role="b2"}')
    assert not shows('honeydue_http_up{role=~"b2|registry"}', 'honeydue_http_up{role="admin"}')
    assert not shows('d{phase!="total"}', 'avg_over_time(d{phase="total",role=~"a|b"}[5m])')
    assert shows('d{phase="total"}', 'avg_over_time(d{phase="total",role=~"a|b"}[5m])')
    assert shows("count(x and on (a) y)", "count by (ns) (x and on (a) y)")
    assert with_matcher("sum by (node) (m) + m{a=\"b\"} + mm", {"m"}, 'node=~"$node"') == (
        'sum by (node) (m{node=~"$node"}) + m{node=~"$node",a="b"} + mm')


# --- every query on Debian's VictoriaMetrics ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def vm() -> Iterator[VictoriaMetrics]:
    require_binary("victoria-metrics", "/usr/bin")
    server = VictoriaMetrics()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def test_every_dashboard_query_parses_on_victoria_metrics(vm: VictoriaMetrics) -> None:
    check = DashboardCheck(vm.url)
    assert len(check.queries()) > 100
    assert check.failing_queries() == []
    broken = DashboardCheck(vm.url)
    broken.queries = lambda: [("a broken query", "sum(")]  # type: ignore[method-assign]
    assert broken.failing_queries() != []


def test_a_failure_modes_panels_with_no_series_are_reported(vm: VictoriaMetrics) -> None:
    """On an empty TSDB every panel of the failure mode is empty, except the ones allowed with a reason."""
    entry = next(e for e in CATALOG if e.id == "neon-postgres-outage")
    plan = build_plan()
    titles = {p.title for p in plan.panels() if p.entry is entry}
    allowed = {title for fm, title in EMPTY_DURING_FAILURE if fm == entry.id}
    assert allowed < titles
    empty = DashboardCheck(vm.url).empty_panels({entry.id}, time.time())
    assert {line.split("'")[1] for line in empty} == titles - allowed


def test_now_row_reads_alerts_from_victoria_metrics(vm: VictoriaMetrics) -> None:
    """ALERTS series as vmalert writes them: the row shows each failure mode's worst firing severity."""
    now = int(time.time() * 1000)
    series = [
        ("HoneydueNodeNotReady", "firing", "one-node-nic-fails", "warning"),
        ("KubeAPIUnreachable", "firing", "two-nodes-fail", "critical"),
        ("KubeExporterAccessDenied", "firing", "two-nodes-fail", "warning"),
        ("Watchdog", "firing", "complete-cluster-loss", "info"),
        ("RedisDown", "pending", "redis-pod-dies", "critical"),
    ]
    lines = [f'ALERTS{{alertname="{a}",alertstate="{s}",failure_mode="{fm}",severity="{sev}"}} 1 {ts}'
             for ts in range(now - 60_000, now + 1, 10_000) for a, s, fm, sev in series]
    vm.import_prometheus("\n".join(lines) + "\n")
    check = DashboardCheck(vm.url)
    deadline = time.monotonic() + 40  # VictoriaMetrics 1.79 makes new series searchable within ~10 s
    shown: dict[str, int] = {}
    while time.monotonic() < deadline and len(shown) < 3:
        shown = check.shown(check.now())
        time.sleep(0.5)
    assert shown == {"one-node-nic-fails": 2, "two-nodes-fail": 3, "complete-cluster-loss": 1}
    assert check.pages() == 1
    states = check.now()
    unwatched = {e.id for e in CATALOG if not e.alerts}
    assert {fm for fm, state in states.items() if state == -1} == unwatched
