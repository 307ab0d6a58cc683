"""The incident suite: every incident of rules/incidents/ under every placement, through promtool, vmalert-tool
and Alertmanager.

Each incident runs under every placement of the exporter, vmagent, CoreDNS and Redis over n1-n3 that changes
what the obs box sees (suite.variants): the pages must be right in each (exactly the failure modes its faults
give cause to, one page each, within each alert's time to page), and at the incident's own placement the
notifications must be exactly the ones it lists. One promtool run and one vmalert-tool run evaluate every
variant (one test group each); one real Alertmanager, running the shipped config with receivers on loopback,
gets every step of every variant in one push (each step isolated by its own `incident_step` label).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from exporter.catalog import alerts as catalog_alerts
from exporter.render.timing import budgets
from tests.helpers.servers import require_binary
from tests.incidents import suite

REPO = Path(__file__).resolve().parent.parent
VMALERT_TOOL = REPO / "tests" / "peers" / "bin"
INCIDENTS = suite.load_all()
RULE_FILES = sorted((REPO / "rules").glob("honeydue-*.rules.yml"))
ENGINES = ("promql", "metricsql")


@dataclass
class Results:
    cases: dict[str, list[suite.Variant]]  # incident id -> its variants (its own placement first)
    promql: dict[tuple[str, int], set[suite.Alert]]
    metricsql: dict[tuple[str, int], set[suite.Alert]]
    points: dict[tuple[str, str], list[suite.Checkpoint]]  # (engine, variant id) -> checkpoints


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    workdir = tmp_path_factory.mktemp("incidents")
    promtool = require_binary("promtool")
    vmalert_tool = require_binary("vmalert-tool", str(VMALERT_TOOL))
    cases = {incident.id: suite.variants(incident) for incident in INCIDENTS}
    everything = [case for variants in cases.values() for case in variants]
    # Both engines, every file, on two processes at a time: the CI machine has 2 cores
    firing = suite.evaluate_all({"promtool": promtool, "vmalert-tool": vmalert_tool}, workdir, everything, RULE_FILES)
    promql, metricsql = firing["promtool"], firing["vmalert-tool"]
    points = {(engine, case.id): suite.checkpoints(case, firing, engine)
              for engine, firing in (("promql", promql), ("metricsql", metricsql)) for case in everything}
    suite.deliver(workdir, [p for ps in points.values() for p in ps], RULE_FILES)
    yield Results(cases, promql, metricsql, points)


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
    problems = [p for case in results.cases[incident.id]
                for p in suite.engine_differences(case, results.promql, results.metricsql)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("incident", INCIDENTS, ids=lambda i: i.id)
def test_alertmanager_delivers_exactly_the_expected_notifications(
    incident: suite.Incident, engine: str, results: Results,
) -> None:
    """At the incident's own placement (its first variant): exactly the notifications it lists."""
    own = results.cases[incident.id][0]
    assert own.placement == incident.placement
    by_step = {p.step: p for p in results.points[(engine, own.id)]}
    for at, expected in sorted(incident.expect.items()):
        point = by_step[at // incident.step]
        got = {d for d in point.delivered if d.receiver != "deadmansswitch"}
        assert got == expected, (
            f"{incident.id} at {suite.duration(at)} ({engine}):\n  missing: {sorted(map(str, expected - got))}\n"
            f"  unexpected: {sorted(map(str, got - expected))}\n  firing: {_names(point.alerts)}")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("incident", INCIDENTS, ids=lambda i: i.id)
def test_pages_are_right_under_every_placement(incident: suite.Incident, engine: str, results: Results) -> None:
    """Under every placement: the faults' own failure modes page, once each, within their time to page; nothing
    else pages."""
    problems = [p for case in results.cases[incident.id]
                for p in suite.budget_problems(case, results.points[(engine, case.id)], budgets())]
    assert not problems, "\n".join(problems)


def _matches(matchers: list[str], labels: dict[str, str], rule_labels: frozenset[str] | None = None) -> bool:
    """Whether Alertmanager matchers (`name="v"`, `name=~"re"`, `name!="v"`, `name!~"re"`) select `labels`. With
    `rule_labels`, a matcher on any other label (one the series carry: `resolver`, `role`) is left to the
    series: it may select the alert."""
    for matcher in matchers:
        match = re.fullmatch(r'(\w+)(=~|!~|!=|=)"(.*)"', matcher)
        assert match, matcher
        name, op, value = match.groups()
        if rule_labels is not None and name not in rule_labels:
            continue
        actual = labels.get(name, "")
        hit = re.fullmatch(value, actual) is not None if "~" in op else actual == value
        if hit == (op in ("!=", "!~")):
            return False
    return True


def test_every_inhibit_rule_is_scoped_and_no_ticket_mutes_a_page() -> None:
    """Every inhibit rule names what source and target must share (`equal`), and no warning or info alert can
    mute a critical one: maintenance and consequences never silence a page. It is also why the placements other
    than an incident's own may be evaluated against the critical rules alone (suite.Variant.pages_only)."""
    config = yaml.safe_load(suite.EXAMPLE.read_text(encoding="utf-8"))
    shipped = [{"alertname": a.name, "severity": a.severity, "failure_mode": e.id, "layer": e.layer, **dict(a.labels)}
               for e, a in catalog_alerts()]
    rule_labels = frozenset(name for a in shipped for name in a)
    for rule in config["inhibit_rules"]:
        assert rule.get("equal"), f"unscoped inhibit rule: {rule}"
        sources = [a for a in shipped if _matches(rule["source_matchers"], a, rule_labels)]
        targets = [a for a in shipped if _matches(rule["target_matchers"], a, rule_labels)]
        assert sources and targets, rule
        if any(t["severity"] == "critical" for t in targets):
            weak = [s["alertname"] for s in sources if s["severity"] != "critical"]
            assert not weak, f"{weak} could mute a page: {rule}"
