"""The status page's model and rendering, in process: each state from the engine's signals, the order, the cache."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient, TestServer

from exporter.catalog import CATALOG
from exporter.config import Config
from exporter.engine import Engine
from exporter.families import FAMILIES, Absence, of_kind
from exporter.probes import absences
from exporter.server import make_app
from exporter.status import grouped, row, rows
from exporter.statuspage import StatusPage
from tests.test_engine import ScriptedProbe

BASE = "https://runbooks.example.org/docs"
ENTRY = {e.id: e for e in CATALOG}


class OffProbe(ScriptedProbe):
    """Like kubernetes.DisabledProbe: it runs and succeeds, but only to say it is off."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.off = "no credentials"


async def _engine(*probes: ScriptedProbe) -> Engine:
    engine = Engine(list(probes))
    for probe in probes:
        await engine.run_once(probe)
    return engine


async def test_each_state_comes_from_the_probes_and_the_config() -> None:
    redis = ScriptedProbe("redis")
    pooler, direct = ScriptedProbe("postgres_pooler", kind="postgres"), ScriptedProbe("postgres_direct", kind="postgres")
    redis.outcome = ConnectionRefusedError(111, "Connection refused")
    engine = await _engine(redis, pooler, direct, OffProbe("kubernetes_api"))
    missing = {"kubernetes": Absence("off", "no credentials"), "http": Absence("not configured", "no http.targets")}

    failing = row(ENTRY["redis-at-maxmemory"], engine, missing)
    assert (failing.state, failing.probes) == ("failing", ("redis",))
    assert failing.reason == "redis: refused (ConnectionRefusedError: [Errno 111] Connection refused)"
    assert row(ENTRY["neon-postgres-outage"], engine, missing).state == "ok"
    off = row(ENTRY["two-nodes-fail"], engine, missing)  # kubernetes_nodes (absent) and kubernetes_api (off)
    assert off.state == "off"
    assert off.reason == "kubernetes_nodes: off (no credentials); kubernetes_api: off (no credentials)"
    unset = row(ENTRY["b2-outage"], engine, missing)
    assert (unset.state, unset.reason) == ("not configured", "http: not configured (no http.targets)")
    blind = row(ENTRY["complete-cluster-loss"], engine, missing)
    assert blind.state == "blind spot" and blind.reason == ENTRY["complete-cluster-loss"].blind_spot
    partly = row(ENTRY["redis-pod-dies"], engine, missing)  # redis fails, asynq absent, kubernetes off
    assert partly.state == "failing" and "kubernetes_nodes: off (no credentials)" in partly.gaps


async def test_a_probe_not_run_yet_is_pending_and_a_recovered_one_ok() -> None:
    redis = ScriptedProbe("redis")
    engine = Engine([redis])
    assert row(ENTRY["redis-at-maxmemory"], engine, {}).state == "pending"
    await engine.run_once(redis)
    assert row(ENTRY["redis-at-maxmemory"], engine, {}).state == "ok"


async def test_failing_layers_and_entries_come_first() -> None:
    tcp = ScriptedProbe("tcp_api", kind="tcp")
    tcp.outcome = TimeoutError()
    engine = await _engine(ScriptedProbe("redis"), tcp)
    layers = grouped(rows(engine, absences(Config())))
    assert layers[0][0].id == "network"  # the chapter has it fourth; it holds the failing entries
    assert [r.state for r in layers[0][1]] == ["failing"] * 3
    app = next(group for layer, group in layers if layer.id == "app")
    assert [r.state for r in app][:2] == ["ok", "ok"] and app[0].entry.id in ("redis-pod-dies", "redis-at-maxmemory")
    assert sum(len(group) for _, group in layers) == len(CATALOG)


def test_every_catalog_probe_family_has_a_reason_for_being_absent() -> None:
    """A catalog name that is no family's kind would show as 'no probe of this kind runs'."""
    found = absences(Config())
    assert set(found) == {f.name for f in FAMILIES}
    for entry in CATALOG:
        for kind in entry.probes:
            assert of_kind(kind).name in found, f"{entry.id}: {kind}"


def test_netcheck_mode_says_why_everything_but_tcp_is_off() -> None:
    found = absences(Config(mode="netcheck"))
    assert found["redis"] == Absence("off", "mode netcheck runs only the TCP probes (the per-node DaemonSet)")
    assert found["tcp"] == Absence("not configured", "no tcp.targets or tcp.discover")


async def test_the_page_is_rendered_once_per_snapshot_and_served_from_memory() -> None:
    redis = ScriptedProbe("redis")
    engine = await _engine(redis)
    page = StatusPage(engine, BASE, {})
    calls = []
    original = page.html
    page.html = lambda now: calls.append(now) or original(now)  # type: ignore[method-assign]
    first = page.render()
    assert page.render() is first and len(calls) == 1  # no new snapshot: the same bytes, not re-rendered
    redis.outcome = ConnectionRefusedError(111, "Connection refused")
    await engine.run_once(redis)
    second = page.render()
    assert len(calls) == 2 and b'id="redis-at-maxmemory" data-state="failing"' in second

    client = TestClient(TestServer(make_app(engine, BASE)))
    await client.start_server()
    try:
        response = await client.get("/")
        body = await response.text()
    finally:
        await client.close()
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in body
    assert "<script" not in body and not re.search(r"\son[a-z]+=", body)
    assert body.count('class="fm ') == len(CATALOG)


async def test_reasons_are_escaped() -> None:
    redis = ScriptedProbe("redis")
    redis.outcome = ValueError("<b>not html</b>")
    engine = await _engine(redis)
    body = StatusPage(engine, BASE, {}).html(0)
    assert "<b>not html</b>" not in body and "&lt;b&gt;not html&lt;/b&gt;" in body
