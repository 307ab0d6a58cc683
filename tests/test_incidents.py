"""The incident suite: every incident of rules/incidents/ through promtool, vmalert-tool and Alertmanager.

One promtool run and one vmalert-tool run evaluate all incidents (one test group each); one real
Alertmanager, running the shipped config with receivers on loopback, gets every step of every incident
in one push (each step isolated by its own `incident_step` label, see suite.isolated_config). Takes
about a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    workdir = tmp_path_factory.mktemp("incidents")
    promtool = require_binary("promtool")
    vmalert_tool = require_binary("vmalert-tool", str(VMALERT_TOOL))
    with ThreadPoolExecutor(2) as pool:  # the two engines side by side: the CI machine has 2 cores
        promql_run = pool.submit(suite.evaluate, "promtool", promtool, workdir, INCIDENTS, RULE_FILES)
        metricsql = suite.evaluate("vmalert-tool", vmalert_tool, workdir, INCIDENTS, RULE_FILES)
        promql = promql_run.result()
    points = {(engine, i.id): suite.checkpoints(i, firing, engine)
              for engine, firing in (("promql", promql), ("metricsql", metricsql)) for i in INCIDENTS}
    suite.deliver(workdir, [p for ps in points.values() for p in ps], RULE_FILES)
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
