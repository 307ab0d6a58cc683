"""Real servers for the edge and external-service probes: HTTP(S), DNS and SMTP, all on loopback.

- `http_target`: an aiohttp server with the behaviours a target can have (ok, slow, hung, 5xx, wrong
  body, 401 registry, bearer-protected health), over plain HTTP or TLS with a self-signed certificate
  generated here with `cryptography`.
- `Dnsmasq`: the real dnsmasq, unprivileged on a free port, answering fixed addresses.
- `dns_responder`: a tiny UDP DNS server built on dnspython that answers a fixed rcode (exact SERVFAIL).
- `silent_udp`: a UDP port that never answers.
- `smtp_server`: aiosmtpd with or without STARTTLS; `raw_tcp_server`: a server sending a fixed greeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testbed.procs import Daemon, free_port, require_binary

CF_RAY = "8f0a1b2c3d4e5f60-AMS"
TOKEN_HEADER_OK = "health ok"


@dataclass
class SelfSigned:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def self_signed(directory: Path) -> SelfSigned:
    """A certificate for 127.0.0.1 and localhost that no client trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return SelfSigned(cert_path, key_path)


def registry_unauthorized() -> web.Response:
    """What a Docker registry's /v2/ answers a client without credentials: the registry is up."""
    headers = {"Docker-Distribution-API-Version": "registry/2.0"}
    return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401, headers=headers)


def _app(token: str, hold: asyncio.Event) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"cf-ray": CF_RAY})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("delay", "0.3")))
        return web.Response(text="ok")

    async def hang(request: web.Request) -> web.Response:
        await hold.wait()  # never set: the request hangs like a deadlocked handler
        return web.Response(text="late")

    async def error(request: web.Request) -> web.Response:
        return web.Response(status=503, text="upstream connect error")

    async def wrong_body(request: web.Request) -> web.Response:
        return web.Response(text="maintenance page")

    async def registry(request: web.Request) -> web.Response:
        return registry_unauthorized()

    async def health(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.Response(status=401, text="unauthorized")
        return web.Response(text=TOKEN_HEADER_OK)

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/slow", slow)
    app.router.add_get("/hang", hang)
    app.router.add_get("/error", error)
    app.router.add_get("/wrong-body", wrong_body)
    app.router.add_get("/v2/", registry)
    app.router.add_get("/health", health)
    return app


@dataclass
class HttpTargetServer:
    port: int
    scheme: str

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


@contextlib.asynccontextmanager
async def http_target(tls: SelfSigned | None = None, token: str = "") -> AsyncIterator[HttpTargetServer]:
    """The aiohttp target server in the test's event loop, on a free loopback port."""
    hold = asyncio.Event()
    runner = web.AppRunner(_app(token, hold), shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls.server_context() if tls else None)
    await site.start()
    try:
        yield HttpTargetServer(port, "https" if tls else "http")
    finally:
        hold.set()
        await runner.cleanup()


class Dnsmasq(Daemon):
    """dnsmasq as an authoritative-ish local resolver: fixed answers, no upstream, no hosts file."""

    def __init__(self, *options: str) -> None:
        self.port = free_port()
        self.options = options
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = require_binary("dnsmasq", "/usr/sbin")
        self._spawn(  # dnsmasq listens on TCP too: the port answers once it is up
            [binary, "--no-daemon", f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
             "--no-resolv", "--no-hosts", "--cache-size=0", "--pid-file=", "--user=" + _user(), *self.options],
            ready_timeout=5,
        )


def _user() -> str:
    import os
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


@contextlib.contextmanager
def dnsmasq(*options: str) -> Iterator[Dnsmasq]:
    server = Dnsmasq(*options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class _FixedRcode(asyncio.DatagramProtocol):
    def __init__(self, rcode: dns.rcode.Rcode) -> None:
        self.rcode = rcode
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        reply.set_rcode(self.rcode)
        assert self.transport is not None
        self.transport.sendto(reply.to_wire(), addr)


@contextlib.asynccontextmanager
async def dns_responder(rcode: dns.rcode.Rcode) -> AsyncIterator[int]:
    """A UDP DNS server answering every query with `rcode` and no records; yields its port."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _FixedRcode(rcode), local_addr=("127.0.0.1", 0))
    try:
        yield int(transport.get_extra_info("sockname")[1])
    finally:
        transport.close()


@contextlib.contextmanager
def silent_udp() -> Iterator[int]:
    """A bound UDP port that reads nothing and answers nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


class _Sink:
    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        return "250 OK"


@contextlib.contextmanager
def smtp_server(tls: SelfSigned | None = None) -> Iterator[int]:
    """aiosmtpd on a free port, offering STARTTLS only when given a certificate; yields the port."""
    port = free_port()
    kwargs: dict[str, Any] = {"require_starttls": False}
    if tls is not None:
        kwargs["tls_context"] = tls.server_context()
    controller = Controller(_Sink(), hostname="127.0.0.1", port=port, ready_timeout=5, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@contextlib.asynccontextmanager
async def raw_tcp_server(greeting: bytes) -> AsyncIterator[int]:
    """A TCP server that sends `greeting` and closes: e.g. an SMTP server refusing service."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            await asyncio.sleep(0.2)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def tempdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="edge-"))
