"""The incident suite: every incident of rules/incidents/ through promtool, vmalert-tool and Alertmanager.

One promtool run and one vmalert-tool run evaluate all incidents (one test group each); one real
Alertmanager, running the shipped config with receivers on loopback, gets every step of every incident
in one push (each step isolated by its own `incident_step` label, see suite.isolated_config). Takes
about a minute.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers.alertmanager import EXAMPLE, Alertmanager, WebhookReceiver, local_config
from tests.helpers.servers import require_binary
from tests.incidents import suite

REPO = Path(__file__).resolve().parent.parent
VMALERT_TOOL = REPO / "tests" / "peers" / "bin"
INCIDENTS = suite.load_all()
RULE_FILES = sorted((REPO / "rules").glob("honeydue-*.rules.yml"))


@dataclass
class Results:
    promql: dict[tuple[str, int], set[suite.Alert]]
    metricsql: dict[tuple[str, int], set[suite.Alert]]
    points: dict[tuple[str, str], list[suite.Checkpoint]]  # (engine, incident) -> checkpoints


def evaluate(tool: str, binary: str, workdir: Path, incidents: list[suite.Incident],
             rule_files: list[Path], identity: str = "stable") -> dict[tuple[str, int], set[suite.Alert]]:
    """Every incident's firing alerts at every queried step, as `tool` evaluates the rules."""
    path = workdir / f"incidents.{tool}.test.yml"
    doc = suite.rule_test_file(incidents, tool, rule_files, identity)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=100_000), encoding="utf-8")
    output = suite.run_tool(tool, binary, path)
    (workdir / f"incidents.{tool}.out").write_text(output, encoding="utf-8")
    firing = suite.firing_alerts(output)
    missing = [(i.id, k) for i in incidents for k in i.query_steps if (i.id, k) not in firing]
    assert not missing, f"{tool} reported no result for {missing[:5]}...: {output[-3000:]}"
    return firing


def deliver(workdir: Path, points: list[suite.Checkpoint], rule_files: list[Path], example: Path = EXAMPLE) -> None:
    """Push every checkpoint's alerts through one real Alertmanager; record what each receiver got."""
    webhook = WebhookReceiver()
    webhook.start()
    # group_wait 2 s (production: 10-30 s) gives the inhibitor time to see a source that arrived in the
    # same request as its targets, as the production group_wait does; 0 s would race.
    config = local_config(webhook.url, timings={"group_wait": "2s", "group_interval": "1s", "repeat_interval": "1h"},
                          example=example)
    manager = Alertmanager(suite.isolated_config(config), workdir)
    try:
        manager.start()
        alerts = suite.push_alerts(points, suite.rule_annotations(rule_files))
        for start in range(0, len(alerts), 2000):
            manager.post(alerts[start:start + 2000])
        # Every step's Watchdog reaches the dead-man's switch: once all have, every group has flushed.
        wanted = {p.label for p in points if any(dict(a).get("alertname") == "Watchdog" for a in p.alerts)}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen = {a["labels"].get("incident_step") for r, body in list(webhook.posts) if r == "deadmansswitch"
                    for a in body["alerts"]}
            if wanted <= seen:
                break
            time.sleep(0.5)
        time.sleep(3)  # groups whose group_wait ended with the Watchdog's: let them land
        suite.collect(points, list(webhook.posts))
    finally:
        manager.stop()
        webhook.stop()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    workdir = tmp_path_factory.mktemp("incidents")
    promtool = require_binary("promtool")
    vmalert_tool = require_binary("vmalert-tool", str(VMALERT_TOOL))
    with ThreadPoolExecutor(2) as pool:  # the two engines side by side: the CI machine has 2 cores
        promql_run = pool.submit(evaluate, "promtool", promtool, workdir, INCIDENTS, RULE_FILES)
        metricsql = evaluate("vmalert-tool", vmalert_tool, workdir, INCIDENTS, RULE_FILES)
        promql = promql_run.result()
    points = {(engine, i.id): suite.checkpoints(i, firing, engine)
              for engine, firing in (("promql", promql), ("metricsql", metricsql)) for i in INCIDENTS}
    deliver(workdir, [p for ps in points.values() for p in ps], RULE_FILES)
    yield Results(promql, metricsql, points)


def test_at_least_25_incidents_each_with_expectations() -> None:
    assert len(INCIDENTS) >= 25, len(INCIDENTS)
    assert len({i.id for i in INCIDENTS}) == len(INCIDENTS)
    for incident in INCIDENTS:
        assert incident.expect, f"{incident.id}: no expected notifications"
        assert incident.title and incident.duration > suite.WARMUP


def _names(alerts: set[suite.Alert]) -> list[str]:
    return sorted(f"{dict(a)['alertname']}{{{','.join(f'{k}={v}' for k, v in sorted(a) if k != 'alertname')}}}"
                  for a in alerts)


@pytest.mark.parametrize("incident", INCIDENTS, ids=lambda i: i.id)
def test_promql_and_metricsql_fire_the_same_alerts(incident: suite.Incident, results: Results) -> None:
    assert not suite.engine_differences(incident, results.promql, results.metricsql)


ENGINES = ("promql", "metricsql")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("incident", INCIDENTS, ids=lambda i: i.id)
def test_alertmanager_delivers_exactly_the_expected_notifications(
    incident: suite.Incident, engine: str, results: Results,
) -> None:
    by_step = {p.step: p for p in results.points[(engine, incident.id)]}
    for at, expected in sorted(incident.expect.items()):
        point = by_step[at // incident.step]
        got = {d for d in point.delivered if d.receiver != "deadmansswitch"}
        assert got == expected, (
            f"{incident.id} at {suite.duration(at)} ({engine}):\n  missing: {sorted(map(str, expected - got))}\n"
            f"  unexpected: {sorted(map(str, got - expected))}\n  firing: {_names(point.alerts)}")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("incident", INCIDENTS, ids=lambda i: i.id)
def test_page_budget(incident: suite.Incident, engine: str, results: Results) -> None:
    assert not suite.budget_problems(incident, results.points[(engine, incident.id)])
