"""The HTTP surface, in process and as the real command: formats, health, shutdown, secrets."""

from __future__ import annotations

import gzip
import subprocess
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from testbed.exporter import value

from exporter.engine import Engine
from exporter.server import make_app
from tests.helpers.servers import PgBouncer, RedisServer
from tests.test_engine import ScriptedProbe

BASE = "https://runbooks.example.org/docs"


async def client_for(engine: Engine) -> TestClient:  # type: ignore[type-arg]
    client = TestClient(TestServer(make_app(engine, BASE)))
    await client.start_server()
    return client


async def test_metrics_formats_and_cache() -> None:
    probe = ScriptedProbe("redis")
    engine = Engine([probe])
    client = await client_for(engine)
    try:
        assert (await client.get("/readyz")).status == 503
        await engine.run_once(probe)
        engine._first_cycle.set()
        plain = await client.get("/metrics")
        assert plain.status == 200
        assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = await plain.text()
        assert 'honeydue_probe_success{probe="redis"} 1.0' in body
        om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert om.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await om.text()).endswith("# EOF\n")
        gz = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
        assert gz.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(await gz.read()).decode() == body
        probe.outcome = 42.0
        await engine.run_once(probe)
        assert 'honeydue_test_target_detail{target="redis"} 42.0' in await (await client.get("/metrics")).text()
        assert (await client.get("/readyz")).status == 200
        assert (await client.get("/healthz")).status == 200
    finally:
        await client.close()


async def test_landing_page_lists_probes_and_runbooks() -> None:
    probe = ScriptedProbe("postgres_pooler", kind="postgres")
    probe.outcome = ConnectionRefusedError(111, "refused")
    engine = Engine([probe])
    await engine.run_once(probe)
    client = await client_for(engine)
    try:
        page = await (await client.get("/")).text()
    finally:
        await client.close()
    assert 'id="neon-pooler-endpoint-unreachable-but-direct-endpoint-up"' not in page  # ids are the catalog's
    assert 'id="neon-pooler-down-direct-up" data-state="failing"' in page
    assert "postgres_pooler: refused" in page
    assert f"{BASE}/16-failure-modes.md#neon-pooler-endpoint-unreachable-but-direct-endpoint-up" in page


def test_real_exporter_on_this_machine(exporter_factory, promtool: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The acceptance run: no config file, the machine's Redis and PostgreSQL, promtool-clean output."""
    exporter = exporter_factory()
    exporter.start()
    samples = exporter.metrics()
    assert value(samples, "honeydue_redis_up") == 1
    assert value(samples, "honeydue_postgres_up", endpoint="pooler") == 1
    assert value(samples, "honeydue_postgres_up", endpoint="direct") == 1
    assert value(samples, "honeydue_exporter_build_info") == 1
    _status, body = exporter.get("/metrics")
    lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert lint.returncode == 0 and lint.stdout == b"" and lint.stderr == b"", lint.stdout + lint.stderr
    took = exporter.terminate()
    assert took < 5, f"SIGTERM took {took:.1f}s"
    assert exporter.proc.returncode == 0
    logs = exporter.logs()
    assert '"message": "stopped"' in logs and "Traceback" not in logs


def test_metrics_keep_answering_while_dependencies_fail(exporter_factory, redis_server: RedisServer,
                                                        pgbouncer: PgBouncer, pg_database: str) -> None:  # type: ignore[no-untyped-def]
    exporter = exporter_factory(env={
        "HONEYDUE_REDIS__URL": redis_server.url, "HONEYDUE_REDIS__INTERVAL": "1", "HONEYDUE_REDIS__TIMEOUT": "0.5",
        "HONEYDUE_POSTGRES__POOLER__PORT": str(pgbouncer.port), "HONEYDUE_POSTGRES__POOLER__DBNAME": pg_database,
        "HONEYDUE_POSTGRES__POOLER__INTERVAL": "1", "HONEYDUE_POSTGRES__POOLER__TIMEOUT": "0.8",
        "HONEYDUE_POSTGRES__POOLER__CONNECT_TIMEOUT": "0.5", "HONEYDUE_POSTGRES__DIRECT__ENABLED": "false",
    })
    exporter.start()
    redis_server.stop()
    pgbouncer.stop()
    slowest = 0.0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        started = time.monotonic()
        samples = exporter.metrics()
        slowest = max(slowest, time.monotonic() - started)
    assert value(samples, "honeydue_redis_up") == 0
    assert value(samples, "honeydue_postgres_up", endpoint="pooler") == 0
    assert value(samples, "honeydue_probe_error_info", probe="redis", reason="refused") == 1
    assert slowest < 1.0
    assert "Traceback" not in exporter.logs()


def test_no_secret_anywhere(exporter_factory, tmp_path: Path, pg_database: str) -> None:  # type: ignore[no-untyped-def]
    """Passwords given by env and by file never appear in /metrics, the landing page, logs or check-config."""
    redis_pw, pg_pw = "Redis-Pw-4e1b9", "Pg-Pw-77c2d0"
    server = RedisServer(args=("--requirepass", redis_pw))
    server.start()
    try:
        pw_file = tmp_path / "pg-pw"
        pw_file.write_text(pg_pw)
        env = {
            "HONEYDUE_REDIS__URL": server.url, "HONEYDUE_REDIS__PASSWORD": redis_pw,
            "HONEYDUE_POSTGRES__POOLER__PASSWORD_FILE": str(pw_file),
            "HONEYDUE_POSTGRES__POOLER__DBNAME": pg_database,
            "HONEYDUE_POSTGRES__DIRECT__PORT": "1",  # refused: its error text gets logged
            "HONEYDUE_POSTGRES__DIRECT__PASSWORD": pg_pw,
            "HONEYDUE_LOG__LEVEL": "debug",
        }
        exporter = exporter_factory(env=env)
        exporter.start()
        samples = exporter.metrics()
        assert value(samples, "honeydue_redis_up") == 1
        assert value(samples, "honeydue_postgres_up", endpoint="direct") == 0
        server.cli("-a", redis_pw, "--no-auth-warning", "CONFIG", "SET", "requirepass", "rotated-" + redis_pw)
        server.cli("-a", "rotated-" + redis_pw, "--no-auth-warning", "CLIENT", "KILL", "TYPE", "normal")
        exporter.wait_for("honeydue_redis_up", 0, 20)  # auth failure now logged with its error text
        outputs = [exporter.get("/metrics")[1].decode(), exporter.get("/")[1].decode()]
        outputs.append(subprocess.run(
            [*exporter_cmd(), "check-config"], capture_output=True, text=True, timeout=60,
            env=exporter_env(env)).stdout)
        exporter.terminate()
        outputs.append(exporter.logs())
        for text in outputs:
            assert redis_pw not in text and pg_pw not in text
        assert "failing: auth" in exporter.logs()
    finally:
        server.stop()


def exporter_cmd() -> list[str]:
    import sys
    return [sys.executable, "-m", "exporter"]


def exporter_env(extra: dict[str, str]) -> dict[str, str]:
    import os
    return {k: v for k, v in os.environ.items() if not k.startswith("HONEYDUE_")} | extra
