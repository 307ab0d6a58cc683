"""SMTP probe against real servers on loopback: aiosmtpd with and without STARTTLS, a server that
refuses service in its greeting, and a port that accepts and never answers."""

from __future__ import annotations

import time
from typing import Any

from testbed.edge import SelfSigned, raw_tcp_server, smtp_server

from exporter.config import SmtpTarget
from exporter.engine import Engine, ProbeState
from exporter.probes.deps import Dependencies
from exporter.probes.smtp import SmtpProbe
from tests.helpers.servers import silent_port


async def run(port: int, **kw: Any) -> ProbeState:
    cfg = SmtpTarget(**({"name": "fastmail", "host": "127.0.0.1", "port": port, "interval": 5, "timeout": 1.5} | kw))
    probe = SmtpProbe(cfg, Dependencies())
    engine = Engine([probe])
    state = await engine.run_once(probe)
    await engine.stop()
    return state


async def test_starttls_offered_and_handshake_completes(cert: SelfSigned) -> None:
    with smtp_server(cert) as port:
        state = await run(port, tls_verify=False)
    assert state.status == "ok", state.detail
    assert state.snapshot.value("honeydue_smtp_up", target="fastmail") == 1
    assert state.snapshot.value("honeydue_smtp_banner_code", target="fastmail") == 220
    assert state.snapshot.value("honeydue_smtp_starttls_advertised", target="fastmail") == 1
    assert state.snapshot.value("honeydue_smtp_tls_handshake_success", target="fastmail") == 1
    phases = {p: state.snapshot.value("honeydue_smtp_phase_duration_seconds", target="fastmail", phase=p)
              for p in ("connect", "banner", "ehlo", "starttls", "total")}
    assert all(v is not None and 0 < v < 1.5 for v in phases.values()), phases
    assert sum(v for p, v in phases.items() if p != "total") <= phases["total"]  # type: ignore[misc,operator]


async def test_untrusted_certificate_fails_the_handshake_as_a_value(cert: SelfSigned) -> None:
    with smtp_server(cert) as port:
        state = await run(port, tls_verify=True)
    assert state.status == "ok"
    assert state.snapshot.value("honeydue_smtp_starttls_advertised", target="fastmail") == 1
    assert state.snapshot.value("honeydue_smtp_tls_handshake_success", target="fastmail") == 0
    assert state.snapshot.value("honeydue_smtp_up", target="fastmail") == 0


async def test_no_starttls_offered() -> None:
    with smtp_server(None) as port:
        state = await run(port)
        lenient = await run(port, require_starttls=False, tls_handshake=False)
    assert state.snapshot.value("honeydue_smtp_banner_code", target="fastmail") == 220
    assert state.snapshot.value("honeydue_smtp_starttls_advertised", target="fastmail") == 0
    assert state.snapshot.value("honeydue_smtp_tls_handshake_success", target="fastmail") == 0
    assert state.snapshot.value("honeydue_smtp_up", target="fastmail") == 0
    # a relay configured not to need STARTTLS is fine without it, and no handshake series is published
    assert lenient.snapshot.value("honeydue_smtp_up", target="fastmail") == 1
    assert lenient.snapshot.value("honeydue_smtp_tls_handshake_success", target="fastmail") is None
    assert lenient.snapshot.value("honeydue_smtp_phase_duration_seconds", target="fastmail", phase="starttls") is None


async def test_greeting_refusing_service() -> None:
    async with raw_tcp_server(b"554 5.3.2 service not available\r\n") as port:
        state = await run(port)
    assert state.status == "ok"
    assert state.snapshot.value("honeydue_smtp_banner_code", target="fastmail") == 554
    assert state.snapshot.value("honeydue_smtp_up", target="fastmail") == 0


async def test_silent_server_ends_at_timeout() -> None:
    with silent_port() as silent:
        started = time.monotonic()
        state = await run(silent.port, timeout=0.8)
        elapsed = time.monotonic() - started
    assert state.status == "failing" and state.reason == "timeout"
    assert state.snapshot.value("honeydue_smtp_up", target="fastmail") == 0
    assert state.snapshot.value("honeydue_smtp_banner_code", target="fastmail") == 0
    assert 0.8 <= elapsed < 0.8 + 0.5


async def test_refused() -> None:
    with silent_port() as closed:
        port = closed.port
    state = await run(port)
    assert state.status == "failing" and state.reason == "refused"
    assert state.snapshot.value("honeydue_smtp_up", target="fastmail") == 0
