"""Postgres probe against real endpoints: pgbouncer as the pooler, the machine's PostgreSQL as direct."""

from __future__ import annotations

import asyncio
import time

import pytest

from exporter.config import Config, PostgresEndpoint, PostgresEndpoints
from exporter.engine import Engine
from exporter.probes.deps import Dependencies
from exporter.probes.postgres import PostgresProbe
from tests.helpers.servers import PgBouncer, silent_port


def endpoint(port: int, dbname: str, **kw: object) -> PostgresEndpoint:
    return PostgresEndpoint(host="127.0.0.1", port=port, dbname=dbname, interval=2, timeout=1.5,
                            connect_timeout=1, sslmode="disable", **kw)


async def test_both_endpoints_up(pgbouncer: PgBouncer, pg_database: str) -> None:
    probes = [PostgresProbe("pooler", endpoint(pgbouncer.port, pg_database), Dependencies()),
              PostgresProbe("direct", endpoint(5432, pg_database), Dependencies())]
    engine = Engine(probes)
    for probe in probes:
        state = await engine.run_once(probe)
        assert state.status == "ok", state.detail
        assert state.snapshot.value("honeydue_postgres_up", endpoint=probe.endpoint) == 1
        connect = state.snapshot.value("honeydue_postgres_connect_duration_seconds", endpoint=probe.endpoint)
        assert 0 < (connect or 0) < 1.5
    await engine.stop()


async def test_pooler_stopped_turns_only_pooler_down(pgbouncer: PgBouncer, pg_database: str) -> None:
    pooler = PostgresProbe("pooler", endpoint(pgbouncer.port, pg_database), Dependencies())
    direct = PostgresProbe("direct", endpoint(5432, pg_database), Dependencies())
    engine = Engine([pooler, direct])
    assert (await engine.run_once(pooler)).status == "ok"
    pgbouncer.stop()
    state = await engine.run_once(pooler)
    assert state.status == "failing"
    assert state.reason == "refused"
    assert state.snapshot.value("honeydue_postgres_up", endpoint="pooler") == 0
    # The failed run publishes only the up series: nothing half-left from the last good run.
    assert state.snapshot.value("honeydue_postgres_connect_duration_seconds", endpoint="pooler") is None
    assert (await engine.run_once(direct)).snapshot.value("honeydue_postgres_up", endpoint="direct") == 1
    pgbouncer.start()
    assert (await engine.run_once(pooler)).status == "ok"
    await engine.stop()


async def test_silent_endpoint_ends_at_timeout(pg_database: str) -> None:
    with silent_port() as silent:
        probe = PostgresProbe("pooler", endpoint(silent.port, pg_database), Dependencies())
        engine = Engine([probe])
        started = time.monotonic()
        state = await engine.run_once(probe)
        elapsed = time.monotonic() - started
    assert state.status == "failing" and state.reason == "timeout"
    assert elapsed < probe.timeout + 0.5
    assert state.snapshot.value("honeydue_postgres_up", endpoint="pooler") == 0


async def test_reused_connection_survives_runs(pg_database: str) -> None:
    probe = PostgresProbe("direct", endpoint(5432, pg_database, reuse_connection=True), Dependencies())
    engine = Engine([probe])
    await engine.run_once(probe)
    first = probe._conn
    state = await engine.run_once(probe)
    assert state.status == "ok" and probe._conn is first and first is not None
    assert state.snapshot.value("honeydue_postgres_connect_duration_seconds", endpoint="direct") == 0
    await engine.stop()
    assert probe._conn is None


async def test_throttle_limits_queries_across_probes(pg_database: str) -> None:
    config = Config(rate_limits={"postgres_per_second": 2})  # type: ignore[arg-type]
    deps = Dependencies.from_config(config)
    probes = [PostgresProbe(f"e{i}", endpoint(5432, pg_database), deps) for i in range(4)]
    engine = Engine(probes)
    started = time.monotonic()
    await asyncio.gather(*(engine.run_once(p) for p in probes))
    # 4 queries at 2 per second: the last two wait for the next one-second window.
    assert time.monotonic() - started >= 0.9
    await engine.stop()


def test_endpoints_default_to_local_postgres() -> None:
    cfg = PostgresEndpoints()
    assert (cfg.pooler.host, cfg.pooler.port, cfg.direct.port) == ("127.0.0.1", 5432, 5432)


@pytest.mark.slow
def test_exporter_reports_pooler_down_within_one_interval(
    exporter_factory, pgbouncer: PgBouncer, pg_database: str
) -> None:
    exporter = exporter_factory(env={
        "HONEYDUE_REDIS__ENABLED": "false",
        "HONEYDUE_POSTGRES__POOLER__PORT": str(pgbouncer.port),
        "HONEYDUE_POSTGRES__POOLER__DBNAME": pg_database,
        "HONEYDUE_POSTGRES__POOLER__INTERVAL": "2",
        "HONEYDUE_POSTGRES__POOLER__TIMEOUT": "1",
        "HONEYDUE_POSTGRES__POOLER__CONNECT_TIMEOUT": "1",
        "HONEYDUE_POSTGRES__DIRECT__DBNAME": pg_database,
        "HONEYDUE_POSTGRES__DIRECT__INTERVAL": "2",
        "HONEYDUE_POSTGRES__DIRECT__TIMEOUT": "1",
        "HONEYDUE_POSTGRES__DIRECT__CONNECT_TIMEOUT": "1",
    })
    exporter.start()
    exporter.wait_for("honeydue_postgres_up", 1, 5, endpoint="pooler")
    pgbouncer.stop()
    took = exporter.wait_for("honeydue_postgres_up", 0, 2 + 1 + 1, endpoint="pooler")
    samples = exporter.metrics()
    from testbed.exporter import value
    assert value(samples, "honeydue_postgres_up", endpoint="direct") == 1
    assert value(samples, "honeydue_probe_error_info", probe="postgres_pooler", reason="refused") == 1
    assert took <= 3.5
    pgbouncer.start()
    exporter.wait_for("honeydue_postgres_up", 1, 4, endpoint="pooler")
    log = exporter.logs()
    assert log.count("probe postgres_pooler failing") == 1
