"""The HTTP listener: plain TCP, or TLS from the web config file with every refused handshake logged.

For TLS the listener accepts plain TCP and runs the handshake itself (`loop.start_tls`), handing the TLS
transport to aiohttp's protocol only once it succeeded. The event loop's own TLS server would drop a failed
handshake without a word (asyncio and uvloop log it only in debug mode); here a client with an expired or
foreign certificate, a plaintext request on the TLS port, or a handshake that stalls is refused and logged
(exporter.refusals) with the peer and the TLS alert, while the server keeps serving everyone else. Each
connection gets the context in force at that moment, so a renewed certificate applies to the next one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from exporter.refusals import RefusalLog
from exporter.webconfig import WebConfigSource

log = logging.getLogger("exporter.web")

HANDSHAKE_TIMEOUT = 10.0


class ListenError(Exception):
    """The listen address is taken (or not ours to bind): phrased for the operator, naming the settings."""


def describe_bind_error(host: str, port: int, exc: OSError) -> str:
    why = os.strerror(exc.errno).lower() if exc.errno else type(exc).__name__  # asyncio's strerror repeats the address
    return (f"cannot listen on {host}:{port}: {why} (set server.port / server.listen_address in the config, "
            "HONEYDUE_SERVER__PORT / HONEYDUE_SERVER__LISTEN_ADDRESS, or --web.listen-address)")


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "unknown"


def tls_refusal(exc: BaseException) -> str | None:
    """Why a handshake failed, in words that carry no secret; None when the client just went away."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"client certificate rejected: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or exc.strerror or "handshake failed")
        if reason == "HTTP_REQUEST":
            return "plain HTTP sent to the TLS port"
        if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "no client certificate"
        if reason.startswith(("TLSV1_ALERT_", "SSLV3_ALERT_")):  # the client ended it, e.g. it does not trust us
            return f"the client aborted the handshake: {reason}"
        return f"TLS handshake failed: {reason}"
    if isinstance(exc, ConnectionAbortedError | TimeoutError):
        return "TLS handshake timed out"
    return None


class _Handover(asyncio.Protocol):
    """Holds what the TLS connection delivers between the end of the handshake and aiohttp's protocol taking it.

    The loop's TLS protocol may pass data (or the peer's close) on as soon as the handshake completes, before
    the coroutine that awaited it runs again: that is kept here and replayed once the real protocol has had
    its connection_made, after which the transport talks to the real protocol directly.
    """

    def __init__(self) -> None:
        self._data: list[bytes] = []
        self._eof = False
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self._data.append(data)

    def eof_received(self) -> bool:
        self._eof = True
        return True  # keep the transport open until the real protocol has seen the data and decided

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def attach(self, real: asyncio.Protocol, transport: asyncio.Transport) -> None:
        real.connection_made(transport)
        transport.set_protocol(real)
        for data in self._data:
            real.data_received(data)
        if self._eof and not real.eof_received():
            transport.close()


def _feed(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Hand `data` to a protocol as its transport would (the loops' TLS protocols are buffered protocols)."""
    if isinstance(protocol, asyncio.Protocol) and not hasattr(protocol, "get_buffer"):
        protocol.data_received(data)
        return
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view)))  # type: ignore[attr-defined]
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        protocol.buffer_updated(n)  # type: ignore[attr-defined]
        view = view[n:]


class _TlsAcceptor(asyncio.Protocol):
    """One accepted TCP connection until its handshake is done; then aiohttp's protocol owns the connection.

    The client's first bytes (its ClientHello) may arrive here before start_tls has taken the transport over
    (uvloop reads as soon as the connection is made; pausing it here stalls uvloop's handshake): they are kept
    and handed to the TLS protocol right after its connection_made, before the transport reads again.
    """

    def __init__(self, factory: Callable[[], asyncio.Protocol], context: Callable[[], ssl.SSLContext],
                 refusals: RefusalLog, tasks: set[asyncio.Task[None]]) -> None:
        self._factory, self._context, self._refusals, self._tasks = factory, context, refusals, tasks
        self._early: list[bytes] = []
        self._peer = "unknown"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._peer = _peer(transport)
        task = asyncio.get_running_loop().create_task(self._handshake(transport))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def data_received(self, data: bytes) -> None:
        self._early.append(data)

    async def _handshake(self, raw: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        peer = self._peer
        transport = cast(asyncio.Transport, raw)  # uvloop's transports are not asyncio.Transport subclasses
        handover = _Handover()
        try:
            starting = loop.create_task(loop.start_tls(transport, handover, self._context(), server_side=True,
                                                       ssl_handshake_timeout=HANDSHAKE_TIMEOUT))
            # One step later start_tls has run up to its wait: the transport is paused and now feeds the TLS
            # protocol, whose connection_made and resume_reading are queued. Queued after them, the early bytes
            # reach the TLS protocol first, before the transport reads anything new.
            await asyncio.sleep(0)
            if self._early:
                early, self._early = b"".join(self._early), []
                loop.call_soon(lambda: _feed(transport.get_protocol(), early))
            tls = await starting
            if tls is None or handover.lost or tls.is_closing():
                log.debug("connection from %s closed during the TLS handshake", peer)
                transport.abort()
                return
            handover.attach(self._factory(), tls)
        except (OSError, TimeoutError, ConnectionError) as exc:
            why = tls_refusal(exc)
            if why is None:
                log.debug("connection from %s closed during the TLS handshake", peer)
            else:
                self._refusals.refused("TLS", peer, why)
            transport.abort()
        except Exception as exc:  # noqa: BLE001 - one connection's failure must not end up as a task traceback
            log.warning("TLS connection from %s dropped: %s", peer, type(exc).__name__)
            transport.abort()


class TlsSite(web.BaseSite):
    """aiohttp's TCPSite, with the handshake done by _TlsAcceptor and the context taken per connection."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, source: WebConfigSource,
                 refusals: RefusalLog) -> None:
        super().__init__(runner)
        self._host, self._port, self._source, self._refusals = host, port, source, refusals
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    def _context(self) -> ssl.SSLContext:
        self._source.refresh()
        assert self._source.context is not None
        return self._source.context

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        factory: Callable[[], Any] = server
        self._server = await loop.create_server(
            lambda: _TlsAcceptor(factory, self._context, self._refusals, self._tasks),
            self._host, self._port, reuse_address=True, backlog=self._backlog)


async def open_site(runner: web.AppRunner, host: str, port: int, source: WebConfigSource | None) -> str:
    """Start listening (TLS when the web config has tls_server_config); return the URL scheme."""
    site: web.BaseSite
    if source is not None and source.context is not None:
        site, scheme = TlsSite(runner, host, port, source, RefusalLog(log)), "https"
    else:
        site, scheme = web.TCPSite(runner, host, port, reuse_address=True), "http"
    try:
        await site.start()
    except OSError as exc:
        raise ListenError(describe_bind_error(host, port, exc)) from None
    return scheme
