"""The fault matrix: 8 dependencies x 5 faults, each cell a test of its own (40 cells).

Every cell runs the real probe family against a real server behind a fault injector
(testbed/faults.py), inside a real Engine served over real HTTP, next to a healthy bystander
probe, and checks:

1. /metrics keeps answering quickly (every scrape during the fault under 1 s, a generous bound);
2. the dependency's up-style metric is 0 with the expected reason (honeydue_probe_error_info{reason},
   or the family's own reason when the server answered: an HTTP status, a DNS rcode, an SMTP code);
3. no traceback and no ERROR record is logged, and nothing is printed to stderr;
4. the bystander probe keeps running and succeeding;
5. the probe is back at 1 once the dependency returns (same port, same configuration).

The faults:
- refused: nothing listens on the port (TCP RST; ICMP port unreachable for DNS over UDP);
- silent: the server accepts and never answers (a blackholed or wedged server);
- slow: the server answers, but only after a delay longer than the probe's timeout;
- garbage: another protocol answers (an SSH banner: someone pointed the config at the wrong port);
- auth: the server rejects the exporter's credentials. Where the protocol has no login step, the
  closest real refusal stands in: Postgres direct -> the role may not log in (SQLSTATE 28000, the
  machine's cluster trusts loopback so a password cannot be rejected); Kubernetes -> 401 for the
  bearer token (token revoked); HTTP target -> 401 from a bearer-protected endpoint (like the obs
  ingest /health); DNS -> the resolver answers REFUSED (policy refusal, what a resolver says to a
  client it does not serve); SMTP -> the relay rejects the client in its greeting
  (554 5.7.1, a client-access restriction: the probe never logs in); vmagent -> /metrics behind
  -metricsAuthKey (401; vmagent 1.79's -httpAuth.* does not guard /metrics).

A subprocess test at the end runs the real `honeydue-exporter run` with every dependency broken at
once and checks its log for tracebacks and its /metrics for every up-style series.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import dns.message
import dns.rcode
import psycopg
import pytest
import yaml
from aiohttp import web

from testbed.edge import Dnsmasq, smtp_server
from testbed.exporter import Metrics, parse_metrics, value
from testbed.faults import FaultProxy, UdpFault, eventually
from testbed.kubeapi import TOKEN as KUBE_TOKEN
from testbed.kubeapi import Fault, KubeAPI
from testbed.kubeconfig import write_kubeconfig
from testbed.vm import Vmagent

from exporter.config import Config
from exporter.engine import Engine
from exporter.probes import dns as dns_probe
from exporter.probes import http as http_probe
from exporter.probes import kubernetes as kube_probe
from exporter.probes import postgres as pg_probe
from exporter.probes import redis as redis_probe
from exporter.probes import smtp as smtp_probe
from exporter.probes import tcp as tcp_probe
from exporter.probes import vmagent as vmagent_probe
from exporter.probes.deps import Dependencies
from exporter.server import make_app
from tests.conftest import PG_DSN
from tests.helpers.servers import PgBouncer, RedisServer, SilentPort, free_port, require_binary

DEPENDENCIES = ("redis", "postgres_pooler", "postgres_direct", "kubernetes", "http", "dns", "smtp", "vmagent")
FAULTS = ("refused", "silent", "slow", "garbage", "auth")
# Most probes: a run every half second, abandoned after 0.4 s; the slow server answers after 2.5 s.
INTERVAL, TIMEOUT, DELAY = 0.5, 0.4, 2.5
SCRAPE_BOUND = 1.0  # seconds; /metrics is served from memory, so this is very generous
EXPECTED_REASON = {"refused": "refused", "silent": "timeout", "slow": "timeout", "garbage": "protocol"}


def error_reason(m: Metrics, probe: str) -> str | None:
    for (name, labels), _ in m.items():
        labels_d = dict(labels)
        if name == "honeydue_probe_error_info" and labels_d.get("probe") == probe:
            return labels_d["reason"]
    return None


class Scenario:
    """One dependency: its real server behind a fault injector, its config and its up/reason series."""

    module: ModuleType
    probe: str  # the probe whose up-style series the cell watches
    auth_reason = "auth"
    timeout = TIMEOUT
    interval = INTERVAL

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.proxy: FaultProxy | None = None

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.close()

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def up(self, m: Metrics) -> float | None:
        raise NotImplementedError

    def reason(self, m: Metrics) -> str | None:
        return error_reason(m, self.probe)

    async def inject(self, fault: str) -> None:
        assert self.proxy is not None
        self.proxy.set_mode(fault)

    async def recover(self, fault: str) -> None:
        assert self.proxy is not None
        self.proxy.set_mode("pass")

    def secrets(self) -> list[str]:
        return []


class RedisScenario(Scenario):
    """redis-server with requirepass; auth = the password rotated and clients disconnected."""

    module = redis_probe
    probe = "redis"
    password = "fm-redis-" + uuid.uuid4().hex[:8]

    async def start(self) -> None:
        self.server = RedisServer(args=("--requirepass", self.password))
        self.server.start()
        self.proxy = FaultProxy(("127.0.0.1", self.server.port), delay=DELAY)

    async def stop(self) -> None:
        await super().stop()
        self.server.stop()

    def _cli(self, password: str, *command: str) -> None:
        subprocess.run(
            [require_binary("redis-cli"), "-p", str(self.server.port), "--no-auth-warning", "-a", password, *command],
            check=True, capture_output=True, timeout=10,
        )

    def config(self) -> dict[str, Any]:
        assert self.proxy is not None
        return {"redis": {"url": f"redis://{self.proxy.address}/0", "password": self.password,
                          "interval": self.interval, "timeout": self.timeout}}

    def up(self, m: Metrics) -> float | None:
        return value(m, "honeydue_redis_up")

    async def inject(self, fault: str) -> None:
        if fault != "auth":
            return await super().inject(fault)
        self._cli(self.password, "CONFIG", "SET", "requirepass", "rotated-elsewhere")
        self._cli("rotated-elsewhere", "CLIENT", "KILL", "TYPE", "normal")

    async def recover(self, fault: str) -> None:
        if fault != "auth":
            return await super().recover(fault)
        self._cli("rotated-elsewhere", "CONFIG", "SET", "requirepass", self.password)

    def secrets(self) -> list[str]:
        return [self.password]


class PoolerScenario(Scenario):
    """pgbouncer (md5 auth against its userlist) in front of the machine's PostgreSQL."""

    module = pg_probe
    probe = "postgres_pooler"
    password = "fm-pooler-" + uuid.uuid4().hex[:8]
    timeout, interval = 1.0, 1.5  # libpq's connect_timeout counts whole seconds

    def __init__(self, tmp: Path, dbname: str) -> None:
        super().__init__(tmp)
        self.dbname = dbname

    def _write(self, password: str) -> None:
        assert self.bouncer.workdir is not None
        (self.bouncer.workdir / "userlist.txt").write_text(f'"postgres" "{password}"\n')

    async def start(self) -> None:
        require_binary("pgbouncer", "/usr/sbin")
        self.bouncer = PgBouncer()
        self.bouncer.start()  # writes its trust config; switch it to md5 and restart
        assert self.bouncer.workdir is not None
        ini = self.bouncer.workdir / "pgbouncer.ini"
        ini.write_text(ini.read_text().replace("auth_type = trust", "auth_type = md5"))
        self._write(self.password)
        self.bouncer.stop()
        self.bouncer.start()
        self.proxy = FaultProxy(("127.0.0.1", self.bouncer.port), delay=DELAY)

    async def stop(self) -> None:
        await super().stop()
        self.bouncer.cleanup()

    def config(self) -> dict[str, Any]:
        assert self.proxy is not None
        endpoint = {"host": "127.0.0.1", "port": self.proxy.port, "dbname": self.dbname, "user": "postgres",
                    "password": self.password, "sslmode": "disable", "interval": self.interval,
                    "timeout": self.timeout, "connect_timeout": 1.0}
        return {"postgres": {"pooler": endpoint, "direct": {"enabled": False}}}

    def up(self, m: Metrics) -> float | None:
        return value(m, "honeydue_postgres_up", endpoint="pooler")

    async def _restart(self, password: str) -> None:
        self._write(password)
        await asyncio.to_thread(self.bouncer.stop)
        await asyncio.to_thread(self.bouncer.start)

    async def inject(self, fault: str) -> None:
        if fault != "auth":
            return await super().inject(fault)
        await self._restart("rotated-elsewhere")

    async def recover(self, fault: str) -> None:
        if fault != "auth":
            return await super().recover(fault)
        await self._restart(self.password)

    def secrets(self) -> list[str]:
        return [self.password]


class DirectScenario(Scenario):
    """The machine's PostgreSQL, as a role of our own; auth = the role may not log in (NOLOGIN)."""

    module = pg_probe
    probe = "postgres_direct"
    timeout, interval = 1.0, 1.5

    def __init__(self, tmp: Path, dbname: str) -> None:
        super().__init__(tmp)
        self.dbname = dbname
        self.role = f"honeydue_fm_{uuid.uuid4().hex[:8]}"
        self.password = uuid.uuid4().hex  # the test cluster trusts only the postgres role from loopback

    def _admin(self, sql: str) -> None:
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.encode())

    async def start(self) -> None:
        self._admin(f"CREATE ROLE {self.role} LOGIN PASSWORD '{self.password}'")
        self.proxy = FaultProxy(("127.0.0.1", 5432), delay=DELAY)

    async def stop(self) -> None:
        await super().stop()
        self._admin(f"DROP ROLE IF EXISTS {self.role}")

    def config(self) -> dict[str, Any]:
        assert self.proxy is not None
        endpoint = {"host": "127.0.0.1", "port": self.proxy.port, "dbname": self.dbname, "user": self.role,
                    "password": self.password, "sslmode": "disable", "interval": self.interval, "timeout": self.timeout,
                    "connect_timeout": 1.0}
        return {"postgres": {"direct": endpoint, "pooler": {"enabled": False}}}

    def up(self, m: Metrics) -> float | None:
        return value(m, "honeydue_postgres_up", endpoint="direct")

    async def inject(self, fault: str) -> None:
        if fault != "auth":
            return await super().inject(fault)
        self._admin(f"ALTER ROLE {self.role} NOLOGIN")

    async def recover(self, fault: str) -> None:
        if fault != "auth":
            return await super().recover(fault)
        self._admin(f"ALTER ROLE {self.role} LOGIN")

    def secrets(self) -> list[str]:
        return [self.password]


class KubernetesScenario(Scenario):
    """The stand-in API behind the proxy; auth = every request answered 401 (token revoked)."""

    module = kube_probe
    probe = "kubernetes_api"
    timeout, interval = 0.8, 1.0  # a request's connect (0.2 s) and read (0.4 s) timeouts fit in the run

    async def start(self) -> None:
        self.api = KubeAPI()
        self.api.start()
        self.proxy = FaultProxy(("127.0.0.1", self.api.port), delay=DELAY)
        self.kubeconfig = write_kubeconfig(self.tmp / "kubeconfig", f"http://{self.proxy.address}", token=KUBE_TOKEN)

    async def stop(self) -> None:
        await super().stop()
        self.api.stop()

    def config(self) -> dict[str, Any]:
        return {"kubernetes": {
            "source": "kubeconfig", "kubeconfig": str(self.kubeconfig), "interval": self.interval,
            "timeout": self.timeout, "connect_timeout": 0.2, "read_timeout": 0.4, "readyz_timeout": 0.3,
            "apiserver_port": self.api.node_port, "deployments": {"honeydue": ["api"]}, "apiservices": [],
        }}

    def up(self, m: Metrics) -> float | None:
        return value(m, "honeydue_kube_api_up")

    async def inject(self, fault: str) -> None:
        if fault != "auth":
            return await super().inject(fault)
        self.api.faults["*"] = Fault("401")

    async def recover(self, fault: str) -> None:
        if fault != "auth":
            return await super().recover(fault)
        self.api.faults.clear()


class HttpScenario(Scenario):
    """An aiohttp endpoint that wants a bearer token (like the obs ingest /health)."""

    module = http_probe
    probe = "http_fault"
    auth_reason = "status=401"
    token = "fm-http-" + uuid.uuid4().hex[:8]

    async def start(self) -> None:
        self.accepted = self.token

        async def health(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != f"Bearer {self.accepted}":
                return web.Response(status=401, text="unauthorized")
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/health", health)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.proxy = FaultProxy(("127.0.0.1", port), delay=DELAY)

    async def stop(self) -> None:
        await super().stop()
        await self.runner.cleanup()

    def config(self) -> dict[str, Any]:
        assert self.proxy is not None
        return {"http": {"targets": [{
            "name": "fault", "role": "obs_ingest", "url": f"http://{self.proxy.address}/health",
            "bearer_token": self.token, "interval": self.interval, "timeout": self.timeout,
        }]}}

    def up(self, m: Metrics) -> float | None:
        return value(m, "honeydue_http_up", target="fault")

    def reason(self, m: Metrics) -> str | None:
        status = value(m, "honeydue_http_status_code", target="fault")
        return super().reason(m) or (f"status={status:g}" if status else None)

    async def inject(self, fault: str) -> None:
        if fault != "auth":
            return await super().inject(fault)
        self.accepted = "rotated-elsewhere"

    async def recover(self, fault: str) -> None:
        if fault != "auth":
            return await super().recover(fault)
        self.accepted = self.token

    def secrets(self) -> list[str]:
        return [self.token]


def _refused_reply(query: bytes) -> bytes:
    reply = dns.message.make_response(dns.message.from_wire(query))
    reply.set_rcode(dns.rcode.REFUSED)
    return reply.to_wire()


class DnsScenario(Scenario):
    """dnsmasq behind a UDP relay; auth = the resolver answers REFUSED."""

    module = dns_probe
    probe = "dns_r_fault.test_a"
    auth_reason = "result=refused"

    async def start(self) -> None:
        self.dnsmasq = Dnsmasq("--address=/fault.test/127.0.0.9")
        self.dnsmasq.start()
        self.relay = UdpFault(("127.0.0.1", self.dnsmasq.port), delay=DELAY)

    async def stop(self) -> None:
        self.relay.close()
        self.dnsmasq.stop()

    def config(self) -> dict[str, Any]:
        return {"dns": {
            "resolvers": {"r": {"address": "127.0.0.1", "port": self.relay.port}},
            "lookups": [{"name": "fault.test", "resolvers": ["r"], "interval": self.interval, "timeout": self.timeout}],
        }}

    def up(self, m: Metrics) -> float | None:
        return value(m, "honeydue_dns_up", domain="fault.test")

    def reason(self, m: Metrics) -> str | None:
        if (reason := super().reason(m)) is not None:
            return reason
        for (name, labels), v in m.items():
            if name == "honeydue_dns_result" and v == 1:
                return f"result={dict(labels)['result']}"
        return None

    async def inject(self, fault: str) -> None:
        if fault == "auth":
            self.relay.garbage = _refused_reply
            self.relay.set_mode("garbage")
        else:
            self.relay.set_mode(fault)

    async def recover(self, fault: str) -> None:
        self.relay.set_mode("pass")


class SmtpScenario(Scenario):
    """aiosmtpd behind the proxy; auth = the relay rejects this client in its greeting (554 5.7.1)."""

    module = smtp_probe
    probe = "smtp_fault"
    auth_reason = "banner=554"

    async def start(self) -> None:
        self._smtp = smtp_server()
        port = self._smtp.__enter__()
        self.proxy = FaultProxy(("127.0.0.1", port), delay=DELAY)

    async def stop(self) -> None:
        await super().stop()
        self._smtp.__exit__(None, None, None)

    def config(self) -> dict[str, Any]:
        assert self.proxy is not None
        return {"smtp": {"targets": [{
            "name": "fault", "host": "127.0.0.1", "port": self.proxy.port, "require_starttls": False,
            "tls_handshake": False, "interval": self.interval, "timeout": self.timeout,
        }]}}

    def up(self, m: Metrics) -> float | None:
        return value(m, "honeydue_smtp_up", target="fault")

    def reason(self, m: Metrics) -> str | None:
        code = value(m, "honeydue_smtp_banner_code", target="fault")
        return super().reason(m) or (f"banner={code:g}" if code else None)

    async def inject(self, fault: str) -> None:
        assert self.proxy is not None
        if fault == "auth":
            self.proxy.garbage = b"554 5.7.1 <unknown[127.0.0.1]>: Client host rejected: Access denied\r\n"
            self.proxy.set_mode("garbage")
        else:
            self.proxy.set_mode(fault)


class VmagentScenario(Scenario):
    """A real vmagent; auth = its /metrics behind -metricsAuthKey (401; the proxy points at that one).

    vmagent 1.79's -httpAuth.* leaves /metrics open, so the key is the auth that really guards it.
    """

    module = vmagent_probe
    probe = "vmagent"

    async def start(self) -> None:
        dead = f"http://127.0.0.1:{free_port()}/api/v1/write"
        self.open = Vmagent(dead, [])
        self.locked = Vmagent(dead, [], extra_args=("-metricsAuthKey=fm-vmagent-key",))
        await asyncio.gather(asyncio.to_thread(self.open.start), asyncio.to_thread(self.locked.start))
        self.proxy = FaultProxy(("127.0.0.1", self.open.port), delay=DELAY)

    async def stop(self) -> None:
        await super().stop()
        self.open.cleanup()
        self.locked.cleanup()

    def config(self) -> dict[str, Any]:
        assert self.proxy is not None
        return {"vmagent": {"url": f"http://{self.proxy.address}/metrics", "interval": self.interval,
                            "timeout": self.timeout}}

    def up(self, m: Metrics) -> float | None:
        return value(m, "honeydue_vmagent_up")

    async def inject(self, fault: str) -> None:
        assert self.proxy is not None
        if fault != "auth":
            return await super().inject(fault)
        self.proxy.set_upstream(("127.0.0.1", self.locked.port))

    async def recover(self, fault: str) -> None:
        assert self.proxy is not None
        if fault != "auth":
            return await super().recover(fault)
        self.proxy.set_upstream(("127.0.0.1", self.open.port))


def make_scenario(dependency: str, tmp: Path, request: pytest.FixtureRequest) -> Scenario:
    if dependency in ("postgres_pooler", "postgres_direct"):
        dbname = request.getfixturevalue("pg_database")
        return PoolerScenario(tmp, dbname) if dependency == "postgres_pooler" else DirectScenario(tmp, dbname)
    simple: dict[str, type[Scenario]] = {
        "redis": RedisScenario, "kubernetes": KubernetesScenario, "http": HttpScenario,
        "dns": DnsScenario, "smtp": SmtpScenario, "vmagent": VmagentScenario,
    }
    return simple[dependency](tmp)


def base_config() -> dict[str, Any]:
    """Everything off except what a cell turns on (no default Redis/Postgres/kubeconfig lookups)."""
    return {"redis": {"enabled": False}, "postgres": {"pooler": {"enabled": False}, "direct": {"enabled": False}},
            "kubernetes": {"source": "off"}}


class Scraper:
    """GET /metrics over real HTTP, remembering the slowest answer."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url, self.slowest = session, url, 0.0

    async def __call__(self) -> Metrics:
        started = time.monotonic()
        async with self.session.get(self.url, timeout=aiohttp.ClientTimeout(total=5)) as response:
            assert response.status == 200
            text = await response.text()
        self.slowest = max(self.slowest, time.monotonic() - started)
        return parse_metrics(text)


@contextlib.asynccontextmanager
async def serving(engine: Engine) -> AsyncIterator[str]:
    runner = web.AppRunner(make_app(engine, "https://runbooks.invalid"), access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    engine.start()
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        await engine.stop()
        await runner.cleanup()


@pytest.fixture
def bystander() -> Iterator[SilentPort]:
    port = SilentPort()  # accepts connections: the bystander TCP probe succeeds
    yield port
    port.close()


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("dependency", DEPENDENCIES)
async def test_fault_cell(
    dependency: str, fault: str, tmp_path: Path, request: pytest.FixtureRequest,
    bystander: SilentPort, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    scenario = make_scenario(dependency, tmp_path, request)
    await scenario.start()
    try:
        data = base_config() | scenario.config()
        data["tcp"] = {"interval": 0.5, "timeout": 0.3,
                       "targets": [{"name": "bystander", "address": f"127.0.0.1:{bystander.port}"}]}
        config = Config(**data)
        deps = Dependencies()
        engine = Engine(scenario.module.build(config, deps) + tcp_probe.build(config, deps))
        assert scenario.probe in engine.states, list(engine.states)
        budget = 2 * scenario.interval + scenario.timeout + 6.0  # generous: a loaded machine delays runs
        async with serving(engine) as url, aiohttp.ClientSession() as session:
            scrape = Scraper(session, url)

            async def up_is(expected: float) -> bool:
                return scenario.up(await scrape()) == expected

            assert await eventually(lambda: up_is(1), budget), f"{dependency} never healthy: {await scrape()}"
            bystander_runs = engine.states["tcp_bystander"].runs
            await scenario.inject(fault)
            expected = EXPECTED_REASON.get(fault, scenario.auth_reason)

            async def failing() -> bool:
                m = await scrape()
                return scenario.up(m) == 0 and scenario.reason(m) == expected

            reached = await eventually(failing, budget)
            m = await scrape()
            assert reached, (
                f"{dependency}/{fault}: up={scenario.up(m)} reason={scenario.reason(m)!r}, expected 0 / {expected!r}"
            )
            assert value(m, "honeydue_probe_success", probe="tcp_bystander") == 1

            async def bystander_ran() -> bool:  # during the fault, which may show before its next run is due
                return engine.states["tcp_bystander"].runs > bystander_runs

            assert await eventually(bystander_ran, budget), "the bystander probe stopped running"
            assert engine.states["tcp_bystander"].status == "ok"
            await scenario.recover(fault)
            assert await eventually(lambda: up_is(1), budget), f"{dependency} did not recover from {fault}"
            assert scrape.slowest < SCRAPE_BOUND, f"slowest /metrics answer {scrape.slowest:.2f}s"
            exposition = await (await session.get(url)).text()
            for secret in scenario.secrets():
                assert secret not in exposition
    finally:
        await scenario.stop()
    problems = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR or "Traceback" in r.getMessage()]
    assert not problems, [f"{r.name}: {r.getMessage()}" for r in problems]
    for secret in scenario.secrets():
        assert all(secret not in r.getMessage() for r in caplog.records)
    _, err = capfd.readouterr()
    assert "Traceback" not in err, err


def test_real_exporter_with_every_dependency_broken(
    exporter_factory: Any, tmp_path: Path, bystander: SilentPort,
) -> None:
    """The real `honeydue-exporter run`, every dependency broken a different way at once.

    /metrics answers quickly with every family's up-style series at 0 and a reason, the healthy TCP
    bystander is 1, and the JSON log holds no traceback, no ERROR line and none of the secrets.
    """
    redis_password, token = "fm-all-redis-" + uuid.uuid4().hex[:6], "fm-all-token-" + uuid.uuid4().hex[:6]
    api = KubeAPI()
    api.start()
    with contextlib.ExitStack() as stack:
        stack.callback(api.stop)
        silent = SilentPort()
        stack.callback(silent.close)
        kube = FaultProxy(("127.0.0.1", api.port))
        stack.callback(kube.close)
        kube.set_mode("garbage")
        smtp = FaultProxy(("127.0.0.1", free_port()))
        stack.callback(smtp.close)
        smtp.set_mode("garbage")
        dns_relay = UdpFault(("127.0.0.1", free_port()))
        stack.callback(dns_relay.close)
        dns_relay.set_mode("silent")
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://{kube.address}", token=KUBE_TOKEN)
        closed = free_port()  # nothing listens: refused
        config = {
            "log": {"format": "json", "level": "info"},
            "redis": {"url": f"redis://127.0.0.1:{silent.port}/0", "password": redis_password,
                      "interval": INTERVAL, "timeout": TIMEOUT},
            "asynq": {"enabled": False},
            "postgres": {
                "pooler": {"host": "127.0.0.1", "port": closed, "interval": 1.5, "timeout": 1.0, "connect_timeout": 1},
                "direct": {"host": "127.0.0.1", "port": silent.port, "interval": 1.5, "timeout": 1.0,
                           "connect_timeout": 1},
            },
            "kubernetes": {"source": "kubeconfig", "kubeconfig": str(kubeconfig), "interval": 1.0,
                           "timeout": 0.8, "connect_timeout": 0.2, "read_timeout": 0.4,
                           "deployments": {"honeydue": ["api"]}, "apiservices": []},
            "http": {"targets": [{"name": "fault", "role": "obs_ingest", "bearer_token": token,
                                  "url": f"http://127.0.0.1:{silent.port}/health",
                                  "interval": INTERVAL, "timeout": TIMEOUT}]},
            "dns": {"resolvers": {"r": {"address": "127.0.0.1", "port": dns_relay.port}},
                    "lookups": [{"name": "fault.test", "resolvers": ["r"], "interval": INTERVAL, "timeout": TIMEOUT}]},
            "smtp": {"targets": [{"name": "fault", "host": "127.0.0.1", "port": smtp.port, "require_starttls": False,
                                  "tls_handshake": False, "interval": INTERVAL, "timeout": TIMEOUT}]},
            "vmagent": {"url": f"http://127.0.0.1:{closed}/metrics", "interval": INTERVAL, "timeout": TIMEOUT},
            "tcp": {"interval": 0.5, "timeout": 0.3,
                    "targets": [{"name": "bystander", "address": f"127.0.0.1:{bystander.port}"}]},
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        exporter = exporter_factory(config_path=path)
        exporter.start(timeout=30)
        time.sleep(2 * INTERVAL + 1)  # a few failing runs of every probe
        started = time.monotonic()
        status, body = exporter.get("/metrics")
        elapsed = time.monotonic() - started
        assert status == 200 and elapsed < SCRAPE_BOUND, elapsed
        m = parse_metrics(body.decode())
        expected = {
            "redis": ("honeydue_redis_up", {}, "timeout"),
            "postgres_pooler": ("honeydue_postgres_up", {"endpoint": "pooler"}, "refused"),
            "postgres_direct": ("honeydue_postgres_up", {"endpoint": "direct"}, "timeout"),
            "kubernetes_api": ("honeydue_kube_api_up", {}, "protocol"),
            "http_fault": ("honeydue_http_up", {"target": "fault"}, "timeout"),
            "dns_r_fault.test_a": ("honeydue_dns_up", {"domain": "fault.test"}, "timeout"),
            "smtp_fault": ("honeydue_smtp_up", {"target": "fault"}, "protocol"),
            "vmagent": ("honeydue_vmagent_up", {}, "refused"),
        }
        for probe, (metric, labels, reason) in expected.items():
            assert value(m, metric, **labels) == 0, (probe, metric)
            assert error_reason(m, probe) == reason, (probe, error_reason(m, probe))
        assert value(m, "honeydue_probe_success", probe="tcp_bystander") == 1
        status, landing = exporter.get("/")
        exporter.terminate()
        logs = exporter.logs()
        assert "Traceback" not in logs, logs[-3000:]
        for line in logs.splitlines():
            record = json.loads(line)  # every line is a JSON record
            assert record["level"] not in ("ERROR", "CRITICAL"), line
        for secret in (redis_password, token):
            assert secret not in logs and secret not in body.decode() and secret not in landing.decode()
