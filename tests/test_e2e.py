"""End to end: real failures through exporter -> vmagent -> VictoriaMetrics -> vmalert -> Alertmanager -> webhook.

One pipeline (testbed.drill.pipeline) serves the whole module; scenarios that share no resource run in
the same wave. For each scenario the Alertmanager notification must carry the alert name, the catalog's
severity and the runbook_url of the right chapter-16 section, and a resolved notification must follow
the recovery. Before any injection, a healthy period in which only the Watchdog fires (and the
dashboard's "Now" row shows only its info).

The dashboard is read from the same VictoriaMetrics while each wave's alerts fire (testbed.drill.
dashboard_check, run by the Runner): the "Now" row shows the scenario's failure modes and none beyond the
wave's, and each expected alert's panel shows a series past the threshold it draws. Every notification
carries a `dashboard_url` opening that panel.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.drill.pipeline import Pipeline
from testbed.drill.scenarios import SCENARIOS, WATCHDOG, Result, Runner, catalog_index, table

from exporter.catalog import CATALOG
from exporter.config import DEFAULT_RUNBOOK_BASE_URL
from exporter.render.panels import DASHBOARD_UID, build_plan
from tests.helpers.kube import require_kube
from tests.helpers.servers import require_binary

pytestmark = pytest.mark.slow

BINARIES = ("redis-server", "redis-cli", "victoria-metrics", "vmagent", "vmalert", "prometheus-alertmanager")


@pytest.fixture(scope="module")
def pipeline(pg_database: str) -> Iterator[Pipeline]:
    """pg_database proves the machine's PostgreSQL is reachable (skip-or-fail otherwise)."""
    for name in BINARIES:
        require_binary(name, "/usr/bin")
    require_binary("pgbouncer", "/usr/sbin")
    require_kube()
    p = Pipeline()
    try:
        p.start()
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def runner(pipeline: Pipeline) -> Runner:
    r = Runner(pipeline, progress=print)
    r.warm_up()
    return r


@pytest.fixture(scope="module")
def healthy(runner: Runner) -> set[str]:
    return runner.healthy_period(20)


@pytest.fixture(scope="module")
def results(runner: Runner, healthy: set[str]) -> dict[str, Result]:
    done = runner.run(SCENARIOS, parallel=True)
    print("\n" + table(done, runner.p.timing.fire_bound))
    return {r.scenario.id: r for r in done}


def test_healthy_period_only_watchdog(healthy: set[str], pipeline: Pipeline) -> None:
    assert healthy == set()
    firing = {n.name for n in pipeline.webhook.firing_now().values()}
    assert WATCHDOG in firing


def test_vmagent_scrapes_the_exporter_over_tls_with_basic_auth(pipeline: Pipeline, healthy: set[str]) -> None:
    """The pipeline's exporter serves TLS with a bcrypt user (a web config file, --web.config.file's format);
    vmagent scrapes it with `scheme: https`, the CA and basic auth, and every series of the run came that way."""
    job = json.loads((pipeline.vmagent.workdir / "scrape.yml").read_text())["scrape_configs"][0]
    assert job["scheme"] == "https" and job["basic_auth"]["username"] == pipeline.web.user
    assert Path(job["basic_auth"]["password_file"]).read_text() == pipeline.web.password
    [up] = pipeline.vm.query('up{job="honeydue-exporter"}')
    assert up["value"][1] == "1"
    assert pipeline.vm.query("honeydue_exporter_build_info")
    # The listener refuses what vmagent does not do: no credentials, plain HTTP.
    assert pipeline.exporter.get("/metrics", headers={"Authorization": ""})[0] == 401
    plain = subprocess.run([require_binary("curl"), "-sS", "--max-time", "5",
                            f"http://127.0.0.1:{pipeline.exporter_port}/metrics"], capture_output=True, text=True,
                           timeout=30)
    assert plain.returncode != 0 and "honeydue_" not in plain.stdout
    assert "Traceback" not in pipeline.exporter.logs()


def test_scenarios_cover_the_issue() -> None:
    ids = {s.id for s in SCENARIOS}
    assert ids == {
        "pooler-down", "postgres-down", "worker-dead", "cron-stopped", "redis-noeviction", "redis-restarted-empty",
        "residence-cache-stale", "smtp-down", "b2-down", "api-deadlock", "cloudflare-down",
        "kube-nic-failure", "kube-quorum-lost", "kube-bad-rollout", "kube-api-crashloop", "kube-api-cpu-bound",
        "obs-unreachable",
    }
    known = catalog_index()
    for s in SCENARIOS:
        assert set(s.expected) <= set(known), s.id
        assert set(s.tolerated) - {WATCHDOG} <= set(known), s.id


@pytest.mark.parametrize("scenario", [s.id for s in SCENARIOS])
def test_alert_fires_and_resolves(scenario: str, results: dict[str, Result]) -> None:
    r = results[scenario]
    index = catalog_index()
    assert set(r.fired) == set(r.scenario.expected), r.problems
    assert set(r.resolved) == set(r.scenario.expected), r.problems
    for name in r.scenario.expected:
        severity, runbook = index[name]
        entry = next(e for e in CATALOG if any(a.name == name for a in e.alerts))
        # the notification's runbook_url is the chapter-16 section of the failure mode the alert belongs to
        assert r.runbook[name] == runbook == entry.runbook_url(DEFAULT_RUNBOOK_BASE_URL)
        assert r.runbook[name].endswith("#" + entry.anchor)
        assert r.severity[name] == severity
    assert r.problems == []
    assert r.wrong == set()


@pytest.mark.parametrize("scenario", [s.id for s in SCENARIOS])
def test_dashboard_shows_the_failure(scenario: str, results: dict[str, Result], runner: Runner) -> None:
    r = results[scenario]
    assert r.dashboard is not None, f"not every expected alert fired, so the dashboard was not read: {r.problems}"
    assert r.dashboard == []
    modes = {runner.index_failure_mode[name] for name in r.scenario.expected}
    assert modes <= set(r.now_row)


def test_every_dashboard_query_runs_on_the_drill_data(runner: Runner, results: dict[str, Result]) -> None:
    assert results
    assert runner.dashboard.failing_queries(window=900) == []


def test_every_notification_opens_its_panel(pipeline: Pipeline, results: dict[str, Result]) -> None:
    plan = build_plan()
    ids = {p.id for p in plan.panels()}
    firing = [n for n in pipeline.webhook.notifications if n.status == "firing"]
    assert {n.name for n in firing} >= {name for s in SCENARIOS for name in s.expected}
    for n in firing:
        url = n.annotations.get("dashboard_url", "")
        assert f"/d/{DASHBOARD_UID}/" in url, n.name
        panel = int(url.rsplit("viewPanel=", 1)[1])
        assert panel in ids and panel == plan.alert_panel[n.name], n.name
