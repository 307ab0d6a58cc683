"""SMTP probe: the outbound mail relay (Fastmail) greets, accepts EHLO and offers STARTTLS.

Feeds "Fastmail SMTP unreachable". Each run opens a fresh TCP connection (timed on its own), hands
the socket to aiosmtplib, which reads the banner, sends EHLO and, when enabled, runs STARTTLS and the
TLS handshake; then QUIT. No mail is sent and no login is attempted. aiosmtplib does the SMTP side
(multi-line replies, extension parsing, upgrading the live asyncio transport to TLS) with a timeout
on every command. A server that answers wrongly (banner not 220, no STARTTLS, failed handshake) is a
value; one that does not answer fails the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time

import aiosmtplib

from exporter.config import Config, SmtpTarget
from exporter.engine import Probe
from exporter.probes.deps import Dependencies
from exporter.samples import Samples, gauge

PHASES = ("connect", "banner", "ehlo", "starttls", "total")

UP = gauge(
    "honeydue_smtp_up",
    "Whether the server sent a 220 banner, accepted EHLO and (as configured) offered and completed STARTTLS.",
    "target",
)
BANNER_CODE = gauge("honeydue_smtp_banner_code", "Reply code of the greeting (220 expected; 0 = none).", "target")
STARTTLS = gauge("honeydue_smtp_starttls_advertised", "Whether EHLO advertised STARTTLS.", "target")
TLS_OK = gauge(
    "honeydue_smtp_tls_handshake_success",
    "Whether STARTTLS and the TLS handshake succeeded (present when the handshake is enabled).",
    "target",
)
PHASE_SECONDS = gauge(
    "honeydue_smtp_phase_duration_seconds",
    "Seconds spent in each step of the last session: connect, banner, ehlo, starttls, total.",
    "target",
    "phase",
)


async def _connect(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket to the first address that accepts."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: OSError = OSError(f"no address for {host}")
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise last


class SmtpProbe(Probe):
    """One SMTP server."""

    family = kind = "smtp"

    def __init__(self, cfg: SmtpTarget, deps: Dependencies) -> None:
        super().__init__(f"smtp_{cfg.name}", cfg.interval, cfg.timeout)
        self._cfg = cfg
        self._deps = deps

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self._cfg.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def collect(self) -> Samples:
        cfg = self._cfg
        phases: dict[str, float] = {}
        started = time.monotonic()
        async with self._deps.throttle("smtp"):
            sock = await _connect(cfg.host, cfg.port)
            mark = time.monotonic()
            phases["connect"] = mark - started
            client = aiosmtplib.SMTP(
                hostname=cfg.host,
                sock=sock,
                local_hostname=cfg.ehlo_hostname,
                timeout=cfg.timeout,
                start_tls=False,
                tls_context=self._tls_context(),
            )
            try:
                banner, advertised, tls_ok = await self._session(client, phases)
            finally:
                client.close()
        phases["total"] = time.monotonic() - started
        up = banner == 220 and (advertised or not cfg.require_starttls) and tls_ok is not False
        s = Samples()
        s.add(UP, 1.0 if up else 0.0, target=cfg.name)
        s.add(BANNER_CODE, banner, target=cfg.name)
        if banner == 220:
            s.add(STARTTLS, 1.0 if advertised else 0.0, target=cfg.name)
        if tls_ok is not None:
            s.add(TLS_OK, 1.0 if tls_ok else 0.0, target=cfg.name)
        for phase, seconds in phases.items():
            s.add(PHASE_SECONDS, seconds, target=cfg.name, phase=phase)
        return s

    async def _session(self, client: aiosmtplib.SMTP, phases: dict[str, float]) -> tuple[int, bool, bool | None]:
        """Banner, EHLO, STARTTLS: (banner code, STARTTLS advertised, handshake ok or None if not tried)."""
        cfg = self._cfg
        mark = time.monotonic()
        try:
            await client.connect()
        except aiosmtplib.SMTPConnectResponseError as exc:
            phases["banner"] = time.monotonic() - mark
            return exc.code, False, (False if cfg.tls_handshake else None)
        now = time.monotonic()
        phases["banner"], mark = now - mark, now
        await client.ehlo()
        now = time.monotonic()
        phases["ehlo"], mark = now - mark, now
        advertised = client.supports_extension("starttls")
        tls_ok: bool | None = None
        if cfg.tls_handshake:
            tls_ok = False
            if advertised:
                try:
                    await client.starttls()
                    tls_ok = True
                except (ssl.SSLError, ssl.CertificateError, aiosmtplib.SMTPException, ConnectionError):
                    tls_ok = False
                phases["starttls"] = time.monotonic() - mark
                if tls_ok:
                    await client.ehlo()  # RFC 3207: forget what was learned before the handshake
        if client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit(timeout=min(2.0, cfg.timeout))
        return 220, advertised, tls_ok

    def failed(self, reason: str) -> Samples:
        s = Samples()
        s.add(UP, 0, target=self._cfg.name)
        s.add(BANNER_CODE, 0, target=self._cfg.name)
        return s


def build(config: Config, deps: Dependencies) -> list[Probe]:
    return [SmtpProbe(target, deps) for target in config.smtp.targets]
