"""Oversized and malformed server replies: every probe reads a bounded amount and reports `protocol`.

Real servers on loopback send the bad replies (a raw RESP server, aiohttp servers, raw TCP, UDP);
the real probe runs inside the real Engine. A bounded read must also be a fast one: a huge reply
fails as soon as its size is known, well before the probe's timeout.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import dns.message
import pytest
from aiohttp import web
from redis._parsers import _AsyncRESP2Parser, _AsyncRESP3Parser

from testbed.edge import raw_tcp_server
from testbed.faults import UdpFault
from testbed.kubeapi import K3S_VERSION, TOKEN
from testbed.kubeconfig import write_kubeconfig

from exporter.config import Config, RedisConfig
from exporter.engine import Engine, ProbeState
from exporter.probes import asynq as asynq_probe
from exporter.probes import dns as dns_probe
from exporter.probes import http as http_probe
from exporter.probes import kubernetes as kube_probe
from exporter.probes import nodata as nodata_probe
from exporter.probes import redis as redis_probe
from exporter.probes import smtp as smtp_probe
from exporter.probes import vmagent as vmagent_probe
from exporter.probes.deps import Dependencies
from exporter.probes.redis_conn import MAX_REPLY_BYTES, BoundedRESP2Parser, BoundedRESP3Parser, client
from tests.helpers.resp import FakeRedis
from tests.helpers.resp import serve as serve_fake_redis
from tests.helpers.servers import RedisServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OFF = {"redis": {"enabled": False}, "postgres": {"pooler": {"enabled": False}, "direct": {"enabled": False}},
       "kubernetes": {"source": "off"}}


async def run_probe(module: Any, data: dict[str, Any], name: str | None = None) -> tuple[ProbeState, Engine]:
    config = Config(**(OFF | data))
    probes = module.build(config, Dependencies())
    engine = Engine(probes)
    probe = next(p for p in probes if name is None or p.name == name)
    state = await engine.run_once(probe)
    for p in probes:
        await p.close()
    return state, engine


@contextlib.asynccontextmanager
async def http_server(routes: dict[str, Handler]) -> AsyncIterator[int]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def endless(request: web.Request, chunk: bytes = b"x" * 65536) -> web.StreamResponse:
    """A body that never ends (until the client hangs up)."""
    response = web.StreamResponse()
    await response.prepare(request)
    with contextlib.suppress(ConnectionError, RuntimeError):
        while True:
            await response.write(chunk)
    return response


# --- Redis ------------------------------------------------------------------------------------
# Each case runs against a modern server (the client speaks RESP3) and one older than Redis 6 (the client falls
# back to RESP2 and swaps its parser): the size limits must hold in both.
SERVERS = pytest.mark.parametrize("before_6", [False, True], ids=["resp3", "resp2-fallback"])


@SERVERS
@pytest.mark.parametrize(
    ("raw_info", "scard"),
    [
        (b"$1000000000\r\n", b":1\r\n"),  # a 1 GB INFO: refused before it is read
        (b":42\r\n", b":1\r\n"),  # INFO answered with an integer
        (b"$%d\r\n%s\r\n" % (len(b"nonsense"), b"nonsense"), b":1\r\n"),  # INFO without its fields
        (None, b"$3\r\nabc\r\n"),  # a good INFO, SCARD answered with text
        (b"*99999999999\r\n", b":1\r\n"),  # an array claiming 100 billion elements
    ],
    ids=["huge-info", "info-integer", "info-nonsense", "scard-text", "huge-array"],
)
async def test_redis_bad_replies_are_protocol(raw_info: bytes | None, scard: bytes, before_6: bool) -> None:
    server = FakeRedis(raw_info=raw_info, scard=scard, before_6=before_6)
    async with serve_fake_redis(server) as port:
        state, _ = await run_probe(redis_probe, {"redis": {"url": f"redis://127.0.0.1:{port}/0", "timeout": 3,
                                                           "interval": 5}})
    assert (state.status, state.reason) == ("failing", "protocol"), state.detail
    assert state.duration < 2.0  # bounded: failed on the declared size, not by the timeout
    assert server.sent < 4 * MAX_REPLY_BYTES
    assert server.protocols == ([] if before_6 else [3])


@SERVERS
async def test_redis_good_fake_reply_is_read(before_6: bool) -> None:
    """The fake server itself is sound: a well-formed reply makes the probe succeed, in the protocol negotiated."""
    server = FakeRedis(before_6=before_6)
    async with serve_fake_redis(server) as port:
        state, _ = await run_probe(redis_probe, {"redis": {"url": f"redis://127.0.0.1:{port}/0"}})
    assert state.status == "ok", state.detail
    assert state.snapshot.value("honeydue_redis_uptime_seconds") == 5
    assert server.protocols == ([] if before_6 else [3])


# --- vmagent and no-data (HTTP bodies with a size limit) ----------------------------------------
async def test_vmagent_endless_metrics_body_is_cut_at_max_bytes() -> None:
    async with http_server({"/metrics": endless}) as port:
        state, _ = await run_probe(vmagent_probe, {"vmagent": {"url": f"http://127.0.0.1:{port}/metrics",
                                                               "max_bytes": 1_000_000, "timeout": 3}})
    assert (state.status, state.reason) == ("failing", "protocol"), state.detail
    assert state.duration < 2.0


@pytest.mark.parametrize("body", [b"vmagent_remotewrite_pending_data_bytes{url=\"1\" 5\n", b"\xff\xfe{{{ 1 2 3\n",
                                  b"vmagent_remotewrite_errors_total abc\n"])
async def test_vmagent_malformed_exposition_is_protocol(body: bytes) -> None:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    async with http_server({"/metrics": metrics}) as port:
        state, _ = await run_probe(vmagent_probe, {"vmagent": {"url": f"http://127.0.0.1:{port}/metrics"}})
    assert (state.status, state.reason) == ("failing", "protocol"), state.detail


@pytest.mark.parametrize(
    "reply",
    [b"<html>gateway</html>", b"[1, 2]", b'{"status": "success", "data": [1]}',
     b'{"status": "success", "data": {"resultType": "vector", "result": 5}}',
     b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"__name__": "x"}}]}}',
     b'{"status": "error", "errorType": "bad_data\\nInjected: line"}'],
    ids=["html", "list", "data-list", "result-int", "sample-no-value", "error-type-free-text"],
)
async def test_nodata_malformed_query_reply_is_protocol(reply: bytes) -> None:
    async def query(request: web.Request) -> web.Response:
        return web.Response(body=reply, content_type="application/json")

    async with http_server({"/api/v1/query": query}) as port:
        state, _ = await run_probe(nodata_probe, {"nodata": {"query_url": f"http://127.0.0.1:{port}"}})
    assert (state.status, state.reason) == ("failing", "protocol"), state.detail
    assert "\n" not in state.detail and "Injected" not in state.detail


async def test_nodata_endless_reply_is_cut_at_max_bytes() -> None:
    async with http_server({"/api/v1/query": endless}) as port:
        state, _ = await run_probe(nodata_probe, {"nodata": {"query_url": f"http://127.0.0.1:{port}",
                                                             "max_bytes": 1_000_000}})
    assert (state.status, state.reason) == ("failing", "protocol"), state.detail
    assert state.duration < 5.0


# --- HTTP targets ------------------------------------------------------------------------------
async def test_http_endless_body_reads_64_kib_and_succeeds() -> None:
    async with http_server({"/big": endless}) as port:
        state, _ = await run_probe(http_probe, {"http": {"targets": [
            {"name": "big", "role": "other", "url": f"http://127.0.0.1:{port}/big", "timeout": 3}]}})
    assert state.status == "ok", state.detail
    assert state.duration < 2.0


async def test_http_gzip_bomb_is_bounded() -> None:
    bomb = gzip.compress(b"\0" * (256 * 1024 * 1024), compresslevel=9)  # 256 MiB of zeros in ~250 KiB

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    async with http_server({"/bomb": handler}) as port:
        state, _ = await run_probe(http_probe, {"http": {"targets": [
            {"name": "bomb", "role": "other", "url": f"http://127.0.0.1:{port}/bomb", "body_contains": "ok",
             "timeout": 3}]}})
    # The first 64 KiB are read (and lack "ok"): a value, not a hang or a 256 MiB allocation.
    assert state.status == "ok", state.detail
    assert state.snapshot.value("honeydue_http_body_matched", target="bomb") == 0
    assert state.duration < 2.0


async def test_http_header_flood_is_protocol() -> None:
    flood = b"HTTP/1.1 200 OK\r\nX-Flood: " + b"a" * 200_000 + b"\r\n\r\nok"
    async with raw_tcp_server(flood) as port:
        state, _ = await run_probe(http_probe, {"http": {"targets": [
            {"name": "flood", "role": "other", "url": f"http://127.0.0.1:{port}/", "timeout": 3}]}})
    assert (state.status, state.reason) == ("failing", "protocol"), state.detail


# --- SMTP --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "greeting",
    [b"220 " + b"x" * 100_000 + b"\r\n", b"".join(b"220-line %d\r\n" % i for i in range(20_000)), b"HELLO THERE\r\n"],
    ids=["long-line", "endless-continuation", "no-code"],
)
async def test_smtp_bad_greeting_is_protocol(greeting: bytes) -> None:
    async with raw_tcp_server(greeting) as port:
        state, _ = await run_probe(smtp_probe, {"smtp": {"targets": [
            {"name": "bad", "host": "127.0.0.1", "port": port, "require_starttls": False, "tls_handshake": False,
             "timeout": 3}]}})
    assert (state.status, state.reason) == ("failing", "protocol"), state.detail
    assert state.duration < 2.0


# --- Kubernetes --------------------------------------------------------------------------------
def kube_routes(nodes: Handler) -> dict[str, Handler]:
    async def version(request: web.Request) -> web.Response:
        return web.json_response({"gitVersion": K3S_VERSION})

    return {"/version": version, "/api/v1/nodes": nodes}


@pytest.mark.parametrize(
    "reply",
    [b"<html>502 Bad Gateway</html>", b'{"kind": "NodeList", "items": 7}', b'{"kind": "NodeList", "items": ["x"]}',
     b'{"kind": "NodeList", "items": [{"metadata": "oops", "status": {"conditions": 3}}]}', b"[]", b"\xff\xfe",
     # a server that hands out the same continue token for every page would be listed forever
     b'{"kind": "NodeList", "metadata": {"continue": "c2FtZQ=="}, "items": []}'],
    ids=["html", "items-int", "items-strings", "node-wrong-shapes", "list", "not-utf8", "continue-repeats"],
)
async def test_kubernetes_malformed_list_is_protocol(reply: bytes, tmp_path: Path) -> None:
    async def nodes(request: web.Request) -> web.Response:
        return web.Response(body=reply, content_type="application/json")

    await _kube_case(tmp_path, nodes, expect_ok=reply == b'{"kind": "NodeList", "items": ["x"]}')


async def test_kubernetes_endless_list_is_cut_at_max_bytes(tmp_path: Path) -> None:
    await _kube_case(tmp_path, endless, max_bytes=1_000_000)


async def _kube_case(tmp_path: Path, nodes: Handler, max_bytes: int | None = None, expect_ok: bool = False) -> None:
    async with http_server(kube_routes(nodes)) as port:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}", token=TOKEN)
        cfg: dict[str, Any] = {"source": "kubeconfig", "kubeconfig": str(kubeconfig), "deployments": {},
                               "apiservices": [], "timeout": 4, "interval": 10, "read_timeout": 2,
                               "connect_timeout": 1}
        if max_bytes:
            cfg["max_bytes"] = max_bytes
        state, _ = await run_probe(kube_probe, {"kubernetes": cfg}, name="kubernetes_nodes")
    if expect_ok:  # items that are not objects are skipped, the list itself is fine
        assert state.status == "ok", state.detail
        return
    assert (state.status, state.reason) == ("failing", "protocol"), state.detail
    assert state.snapshot.value("honeydue_kube_resource_error_info", resource="nodes", reason="protocol") == 1
    assert state.duration < 3.0


# --- DNS ---------------------------------------------------------------------------------------
def _other_question(query: bytes) -> bytes:
    """A well-formed answer, but to another question (another id and name): not our answer."""
    other = dns.message.make_query("elsewhere.test", "A")
    other.id = (dns.message.from_wire(query).id + 1) % 65536
    return dns.message.make_response(other).to_wire()


@pytest.mark.parametrize("garbage", [_other_question, lambda q: q[:3], lambda q: q[:2] + b"\x81\x80" + b"\xff" * 40],
                         ids=["other-question", "short-header", "bad-body"])
async def test_dns_reply_that_is_not_our_answer_is_protocol(garbage: Callable[[bytes], bytes]) -> None:
    relay = UdpFault(("127.0.0.1", 9), garbage=garbage)
    try:
        relay.set_mode("garbage")
        state, _ = await run_probe(dns_probe, {"dns": {
            "resolvers": {"r": {"address": "127.0.0.1", "port": relay.port}},
            "lookups": [{"name": "fault.test", "resolvers": ["r"], "timeout": 2}]}})
    finally:
        relay.close()
    assert (state.status, state.reason) == ("failing", "protocol"), state.detail
    assert state.duration < 1.5


async def test_redis_key_of_the_wrong_type_is_protocol(redis_server: RedisServer) -> None:
    """Asynq's registry set replaced by a string: a real WRONGTYPE reply, for both Redis-reading families."""
    redis_server.cli("SET", "asynq:queues", "not-a-set")
    data = {"redis": {"url": redis_server.url, "timeout": 2, "interval": 5}, "asynq": {"timeout": 2, "interval": 5}}
    for module in (redis_probe, asynq_probe):
        state, _ = await run_probe(module, data)
        assert (state.status, state.reason) == ("failing", "protocol"), (module.__name__, state.detail)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "rediss://127.0.0.1:1/0", "unix:///run/redis.sock?db=0"])
def test_redis_parsers_are_bounded_for_every_url_scheme(url: str) -> None:
    """Whatever connection class the URL picks (TCP, TLS, unix socket), both protocols' parsers keep the limit."""
    pool = client(RedisConfig(url=url), 1.0).connection_pool
    connection = pool.make_connection()
    assert isinstance(connection._parser, BoundedRESP3Parser)
    connection.set_parser(_AsyncRESP2Parser)  # what redis-py does when HELLO is unknown
    assert isinstance(connection._parser, BoundedRESP2Parser)
    connection.set_parser(_AsyncRESP3Parser)
    assert isinstance(connection._parser, BoundedRESP3Parser)
