"""Shared fixtures: private servers on free ports, a fresh PostgreSQL database, the exporter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from testbed.edge import SelfSigned, self_signed
from testbed.exporter import ExporterProcess
from testbed.residence import admin_dsn
from testbed.vm import VictoriaMetrics

from tests.helpers.kube import kube, kube_cluster, kube_exporter, kube_netcheck  # noqa: F401 - the Kubernetes fixtures
from tests.helpers.servers import IN_CI, PgBouncer, RedisServer, require_binary, skip_or_fail

REPO = Path(__file__).resolve().parent.parent
PG_DSN = admin_dsn("HONEYDUE_TEST_PG_DSN")


# `@BOTH_PROTOCOLS` on a test that takes `redis_server` runs it against a Redis 7 (the client negotiates RESP3)
# and against one that plays a server older than Redis 6 (the client falls back to RESP2).
BOTH_PROTOCOLS = pytest.mark.parametrize("redis_server", ["resp3", "resp2"], indirect=True)


@pytest.fixture
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    server = RedisServer(before_6=getattr(request, "param", "resp3") == "resp2")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL for this test session; dropped at the end."""
    name = f"honeydue_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        skip_or_fail(f"the machine's PostgreSQL is not reachable ({PG_DSN}): {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pgbouncer() -> Iterator[PgBouncer]:
    bouncer = PgBouncer()
    bouncer.start()
    yield bouncer
    bouncer.cleanup()


@pytest.fixture
def exporter_factory(tmp_path: Path) -> Iterator[type[ExporterProcess]]:
    started: list[ExporterProcess] = []

    class Factory(ExporterProcess):
        def __init__(self, env: dict[str, str] | None = None, config_path: Path | None = None) -> None:
            super().__init__(env=env or {}, config_path=config_path, log_path=tmp_path / f"exporter-{len(started)}.log")
            started.append(self)

    yield Factory
    for proc in started:
        proc.stop()


@pytest.fixture
def victoria() -> Iterator[VictoriaMetrics]:
    """A private victoria-metrics (tests stop it, fill it, query it)."""
    vm = VictoriaMetrics()
    vm.start()
    yield vm
    vm.cleanup()


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    """A self-signed server certificate for localhost (TLS targets: HTTP, SMTP STARTTLS)."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")




_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI a skipped test is a failure: CI must never go green by not running something."""
    if IN_CI and _skipped:
        print(f"\nCI: {len(_skipped)} test(s) skipped, which CI does not allow: {_skipped[:10]}")
        session.exitstatus = 1
