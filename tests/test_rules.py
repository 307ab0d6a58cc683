"""The shipped rules: valid for promtool, unit-tested both ways, and within the team's rule standards."""

from __future__ import annotations

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

import exporter.probes  # noqa: F401 - registers every probe's metric declarations
from exporter.catalog import CATALOG, alerts
from exporter.samples import declared_metrics
from tests.helpers.servers import require_binary
from tests.incidents import suite

REPO = Path(__file__).resolve().parent.parent
RULE_FILES = sorted((REPO / "rules").glob("*.rules.yml"))
TEST_FILES = sorted((REPO / "rules" / "tests").glob("*.test.yml"))
OUR_METRIC = re.compile(r"\b((?:honeydue|asynq)_[a-zA-Z0-9_]+)\b")
DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
SHARD_GROUPS = 14  # test groups per promtool or vmalert-tool run


def test_rule_files_exist() -> None:
    assert RULE_FILES, "no rules rendered"
    assert TEST_FILES, "no rule unit tests"


def test_promtool_check_rules(promtool: str) -> None:
    out = subprocess.run([promtool, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_unit_tests_pass_on_promql_and_metricsql(promtool: str, tmp_path: Path) -> None:
    """rules/tests/ as committed (dashboard_url included) with promtool (PromQL) and with vmalert-tool (MetricsQL,
    what production runs). What a user runs is `cd rules/tests && promtool test rules *.test.yml`.

    Both tools evaluate one test group after another on one core, so every file's groups are cut into shards of
    at most SHARD_GROUPS (the groups are independent: each has its own input series) and the shards of both tools
    run side by side on as many workers as the machine has cores. Every shard is its own run, so every failing
    group is shown (vmalert-tool stops at the first failing file). Shards name the shipped rule files by path."""
    vmalert_tool = require_binary("vmalert-tool", str(REPO / "tests" / "peers" / "bin"))
    runs: list[tuple[str, list[str]]] = []
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text())
        doc["rule_files"] = [str((path.parent / f).resolve()) for f in doc.get("rule_files", [])]
        converted = suite.for_vmalert_tool(doc, path.parent)
        for i in range(0, len(doc["tests"]), SHARD_GROUPS):
            part = {"tests": doc["tests"][i:i + SHARD_GROUPS]}
            promql = tmp_path / f"{path.stem}.{i // SHARD_GROUPS}.promtool.yml"
            promql.write_text(yaml.safe_dump(doc | part, sort_keys=False, width=100_000))
            runs.append((promql.name, [promtool, "test", "rules", promql.name]))
            metricsql = tmp_path / f"{path.stem}.{i // SHARD_GROUPS}.vmalert-tool.yml"
            metricsql.write_text(yaml.safe_dump(converted | {"tests": converted["tests"][i:i + SHARD_GROUPS]},
                                                sort_keys=False, width=100_000))
            runs.append((metricsql.name, [vmalert_tool, "unittest", "--disableAlertgroupLabel",
                                          f"--files={metricsql}"]))

    def run(item: tuple[str, list[str]]) -> tuple[str, str | None]:
        name, args = item
        out = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        return name, None if out.returncode == 0 else (out.stdout + out.stderr)[-3000:]

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        failures = {name: output for name, output in pool.map(run, runs) if output is not None}
    assert len(runs) >= 2 * len(TEST_FILES) and not failures, failures


def test_vmalert_tool_clock_shift_moves_only_start_values() -> None:
    assert suite.shift_values("0+60x3 _ 5x2 stale 7", 10) == "10+60x3 _ 15x2 stale 17"
    assert suite.shift_values("1200-1x5 _x3", 946684800) == "946686000-1x5 _x3"


def _tested() -> tuple[set[str], set[str]]:
    firing, quiet = set(), set()
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text())
        for group in doc.get("tests", []):
            assert "interval" in group, f"{path.name}: every test group needs interval: (promtool 2.42)"
            for case in group.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    return firing, quiet


@pytest.mark.parametrize("alert", [a for _, a in alerts()], ids=lambda a: a.name)
def test_every_alert_has_a_firing_and_a_quiet_test(alert) -> None:  # type: ignore[no-untyped-def]
    firing, quiet = _tested()
    assert alert.name in firing, f"{alert.name}: no promtool case where it fires"
    assert alert.name in quiet, f"{alert.name}: no promtool case where it stays quiet"


def _shipped_rules() -> list[dict[str, object]]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def test_rule_standards() -> None:
    names = [r["alert"] for r in _shipped_rules()]
    assert len(names) == len(set(names)), "alert names must be unique"
    assert len(names) == len(alerts())
    for rule in _shipped_rules():
        name = str(rule["alert"])
        assert re.fullmatch(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*", name), f"{name}: not CamelCase"
        labels, ann = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict) and isinstance(ann, dict)
        assert labels["severity"] in ("critical", "warning", "info"), name
        summary = ann["summary"]
        assert summary.endswith(".") and "{{" not in summary, f"{name}: summary must be a plain sentence"
        assert "{{" in ann["description"], f"{name}: description must be templated"
        assert ann["runbook_url"].startswith("http") and "#" in ann["runbook_url"], name
        match = DURATION.match(str(rule["for"]))
        assert match and int(match.group(1)) > 0, f"{name}: for must be a positive duration"


def test_runbook_links_point_at_catalog_headings() -> None:
    anchors = {entry.anchor for entry in CATALOG}
    for rule in _shipped_rules():
        anchor = str(rule["annotations"]["runbook_url"]).split("#", 1)[1]  # type: ignore[index]
        assert anchor in anchors


def _used_metrics() -> dict[str, str]:
    used: dict[str, str] = {}
    for entry in CATALOG:
        for alert in entry.alerts:
            for name in OUR_METRIC.findall(alert.expr):
                used[name] = f"alert {alert.name}"
        for panel in entry.panels:
            for query in panel.queries:
                for name in OUR_METRIC.findall(query.expr):
                    used[name] = f"panel {panel.title}"
        for name in entry.signals:
            used[name] = f"signal of {entry.id}"
    return used


def test_every_metric_used_is_emitted() -> None:
    declared = declared_metrics()
    missing = {name: where for name, where in _used_metrics().items() if name not in declared}
    assert not missing, f"rules/panels use metrics the exporter does not declare: {missing}"


def test_no_alert_reuses_a_peer_rule_sets_name() -> None:
    """kubernetes-mixin and kube-prometheus run beside this on many clusters: an alert of ours under one of their
    names (with another expression) would be two different alerts under one name. Watchdog means the same."""
    lines = (REPO / "tests" / "data" / "peer-alert-names.txt").read_text().splitlines()
    peers = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert len(peers) > 40
    shared = {a.name for _, a in alerts()} & peers
    assert shared == {"Watchdog"}, sorted(shared - {"Watchdog"})


def test_no_rule_reads_the_scraped_pods_labels() -> None:
    """vmagent's kubernetes_pod_name and kubernetes_node change with every restart and reschedule: a rule that
    reads them would restart its `for` (and the incident model leaves them out, tests/incidents/cluster.py)."""
    for _, alert in alerts():
        assert "kubernetes_pod_name" not in alert.expr and "kubernetes_node" not in alert.expr, alert.name
