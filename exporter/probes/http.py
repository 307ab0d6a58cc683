"""HTTP probes: one configured URL per probe, a fresh connection every run, timed per phase.

Feeds the Cloudflare entries (public URL through Cloudflare vs the origin directly, the `cf-ray`
colo), "api deadlocks" (shallow /api/health/ passes while a deep request hangs), admin, Backblaze
B2, the Gitea registry `/v2/` (401 means reachable) and the obs ingest `/health`. Each run builds
its own connector with keep-alive and the DNS cache off, so DNS, TCP connect and TLS are measured
every time instead of being hidden by a reused connection.

Phases (non-overlapping, seconds): `dns` (name resolution; 0 for an IP literal), `connect` (TCP),
`tls` (handshake; 0 for http), `first_byte` (request sent -> response headers), `transfer` (body
read) and `total`. A target that answers with an unexpected status or body is a value
(`honeydue_http_up` 0 with the status), a target that does not answer fails the run (engine reason).
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohappyeyeballs import AddrInfoType

from exporter.config import Config, HttpTarget
from exporter.engine import Probe
from exporter.probes.deps import Dependencies
from exporter.samples import Samples, gauge, info

LABELS = ("target", "role", "node")
PHASES = ("dns", "connect", "tls", "first_byte", "transfer", "total")
MAX_BODY_BYTES = 64 * 1024

UP = gauge(
    "honeydue_http_up",
    "Whether the target answered with an expected status (and body, when checked).",
    *LABELS,
)
STATUS_CODE = gauge("honeydue_http_status_code", "HTTP status of the last answer (0 = no answer).", *LABELS)
STATUS_OK = gauge("honeydue_http_status_expected", "Whether the last status was one of the expected ones.", *LABELS)
BODY_OK = gauge(
    "honeydue_http_body_matched", "Whether the body contained the expected text (1 when no body check).", *LABELS
)
PHASE_SECONDS = gauge(
    "honeydue_http_phase_duration_seconds",
    "Seconds spent in each phase of the last request: dns, connect, tls, first_byte, transfer, total.",
    *LABELS,
    "phase",
)
CF_RAY = info(
    "honeydue_http_cf_ray_info",
    "The Cloudflare colo (IATA code after the dash in cf-ray) that served the last answer.",
    *LABELS,
    "colo",
)

_COLO = re.compile(r"-([A-Z]{3})$")


def cf_colo(cf_ray: str | None) -> str | None:
    """The colo from a `cf-ray` header ("8a1b2c3d4e5f6a7b-AMS" -> "AMS"); None when absent or odd."""
    if not cf_ray:
        return None
    match = _COLO.search(cf_ray.strip())
    return match.group(1) if match else None


class _TimedSocket(socket.socket):
    """Records when the TCP connect completed, so connect and TLS can be told apart."""

    connected_at: float | None = None

    def connect(self, address: Any) -> None:
        super().connect(address)  # non-blocking: usually raises BlockingIOError, finished below
        self.connected_at = time.monotonic()

    def getsockopt(self, *args: Any) -> Any:
        value = super().getsockopt(*args)
        # asyncio reads SO_ERROR once the socket is writable: that is the connect finishing.
        if args[:2] == (socket.SOL_SOCKET, socket.SO_ERROR) and value == 0 and self.connected_at is None:
            self.connected_at = time.monotonic()
        return value


@dataclass
class _Timings:
    """Monotonic marks collected by the trace callbacks and the socket factory of one run."""

    request_start: float = 0.0
    dns_start: float | None = None
    dns_end: float | None = None
    conn_start: float | None = None
    conn_end: float | None = None
    headers: float | None = None
    sockets: list[_TimedSocket] = field(default_factory=list)

    def socket_factory(self, addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, _ = addr_info
        sock = _TimedSocket(family, type_, proto)
        self.sockets.append(sock)
        return sock

    def trace_config(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()

        def mark(attr: str) -> Any:
            async def callback(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
                if getattr(self, attr) in (None, 0.0):
                    setattr(self, attr, time.monotonic())

            return callback

        trace.on_request_start.append(mark("request_start"))
        trace.on_dns_resolvehost_start.append(mark("dns_start"))
        trace.on_dns_resolvehost_end.append(mark("dns_end"))
        trace.on_connection_create_start.append(mark("conn_start"))
        trace.on_connection_create_end.append(mark("conn_end"))
        trace.on_request_end.append(mark("headers"))
        return trace

    def phases(self, tls: bool, done: float) -> dict[str, float]:
        conn_start = self.conn_start or self.request_start
        conn_end = self.conn_end or conn_start
        dns = (self.dns_end - self.dns_start) if self.dns_start and self.dns_end else 0.0
        tcp_from = self.dns_end or conn_start
        connected = next((s.connected_at for s in reversed(self.sockets) if s.connected_at), None)
        if tls and connected is not None:
            connect, handshake = connected - tcp_from, conn_end - connected
        else:
            connect, handshake = conn_end - tcp_from, 0.0
        headers = self.headers or done
        return {
            "dns": dns,
            "connect": max(connect, 0.0),
            "tls": max(handshake, 0.0),
            "first_byte": max(headers - conn_end, 0.0),
            "transfer": max(done - headers, 0.0),
            "total": done - self.request_start,
        }


class HttpProbe(Probe):
    """One HTTP(S) target."""

    family = kind = "http"

    def __init__(self, cfg: HttpTarget, deps: Dependencies) -> None:
        super().__init__(f"http_{cfg.name}", cfg.interval, cfg.timeout)
        self._cfg = cfg
        self._deps = deps
        self._labels = {"target": cfg.name, "role": cfg.role, "node": cfg.node}
        headers = {"User-Agent": "honeydue-exporter", **cfg.headers}
        if cfg.bearer_token is not None:
            headers["Authorization"] = f"Bearer {cfg.bearer_token.get_secret_value()}"
        self._headers = headers

    async def collect(self) -> Samples:
        cfg = self._cfg
        timings = _Timings(request_start=time.monotonic())
        connector = aiohttp.TCPConnector(
            force_close=True,  # no keep-alive: the next run connects again
            use_dns_cache=False,
            limit=1,
            ssl=cfg.tls_verify,
            socket_factory=timings.socket_factory,
        )
        # The engine's deadline (cfg.timeout) ends a hung run; aiohttp's own total is a backstop.
        client_timeout = aiohttp.ClientTimeout(total=cfg.timeout + 1.0)
        async with (
            self._deps.throttle("http"),
            aiohttp.ClientSession(
                connector=connector,
                timeout=client_timeout,
                trace_configs=[timings.trace_config()],
                auto_decompress=True,
            ) as session,
            session.request(
                cfg.method, cfg.url, headers=self._headers, allow_redirects=cfg.follow_redirects
            ) as response,
        ):
            body = b"" if cfg.method == "HEAD" else await response.content.read(MAX_BODY_BYTES)
            done = time.monotonic()
            status = response.status
            colo = cf_colo(response.headers.get("cf-ray"))
        status_ok = status in cfg.expected_status
        body_ok = cfg.body_contains is None or cfg.body_contains.encode() in body
        s = Samples()
        s.add(UP, 1.0 if status_ok and body_ok else 0.0, **self._labels)
        s.add(STATUS_CODE, status, **self._labels)
        s.add(STATUS_OK, 1.0 if status_ok else 0.0, **self._labels)
        s.add(BODY_OK, 1.0 if body_ok else 0.0, **self._labels)
        for phase, seconds in timings.phases(cfg.url.startswith("https:"), done).items():
            s.add(PHASE_SECONDS, seconds, phase=phase, **self._labels)
        if colo is not None:
            s.add(CF_RAY, 1.0, colo=colo, **self._labels)
        return s

    def failed(self, reason: str) -> Samples:
        s = Samples()
        s.add(UP, 0, **self._labels)
        s.add(STATUS_CODE, 0, **self._labels)
        return s


def build(config: Config, deps: Dependencies) -> list[Probe]:
    return [HttpProbe(target, deps) for target in config.http.targets]
