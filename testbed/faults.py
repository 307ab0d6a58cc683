"""Fault injection in front of real servers: a TCP proxy and a UDP relay whose behaviour a test switches.

Each runs on its own thread and event loop (like the Kubernetes stand-in), so it keeps serving while
a test blocks on a subprocess or polls /metrics synchronously. The port never changes, so the probe
under test keeps its configuration and sees the dependency fail and come back:

- pass      forward every byte to the real server (the dependency is healthy);
- refused   nothing listens on the port (the kernel answers RST / ICMP port unreachable);
- silent    accept (TCP) or read (UDP) and never answer: a blackholed or wedged server;
- slow      forward, but hold every reply for `delay` seconds (longer than the probe's timeout);
- garbage   answer with `garbage` bytes: another service on the port or a corrupted reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

from testbed.loop import LoopThread
from testbed.procs import free_port

MODES = ("pass", "refused", "silent", "slow", "garbage")
# What an SSH server sends first: a real "wrong service on this port" reply for any client protocol.
SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


class _Switchable(LoopThread):
    """A fault injector on its own loop: `set_mode` picks one of MODES, closing it refuses first."""

    async def _switch(self, mode: str) -> None:
        raise NotImplementedError

    def set_mode(self, mode: str) -> None:
        """Switch behaviour; open connections are dropped so clients see the change at once."""
        assert mode in MODES, mode
        self.run(self._switch(mode))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self._switch("refused"))
        super().close()


class FaultProxy(_Switchable):
    """A TCP proxy on 127.0.0.1:`port` in front of `upstream`, switchable between MODES."""

    def __init__(
        self, upstream: tuple[str, int], delay: float = 3.0, garbage: bytes = SSH_BANNER, port: int | None = None
    ) -> None:
        super().__init__("fault-proxy")
        self.upstream = upstream
        self.delay = delay
        self.garbage = garbage
        self.port = port or free_port()
        self.mode = "pass"
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.run(self._listen())

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_upstream(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.run(self._drop_all())

    async def _switch(self, mode: str) -> None:
        self.mode = mode
        await self._drop_all()
        if mode == "refused" and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif mode != "refused" and self._server is None:
            await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        mode = self.mode
        try:
            if mode == "silent":
                while await reader.read(65536):
                    pass
            elif mode == "garbage":
                writer.write(self.garbage)
                await writer.drain()
                # Read what the client says, then hang up: garbage followed by EOF.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.read(65536), 0.2)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
                self._writers.add(up_writer)
                delay = self.delay if mode == "slow" else 0.0
                await asyncio.gather(_pipe(reader, up_writer, 0.0), _pipe(up_reader, writer, delay))
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # shutdown: end quietly (a cancelled handler is logged by asyncio)
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while data := await reader.read(65536):
            if delay:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


class _Relay(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpFault) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        owner = self.owner
        owner.queries += 1
        if owner.mode == "silent":
            return
        if owner.mode == "garbage":
            assert self.transport is not None
            self.transport.sendto(owner.garbage(data), addr)
            return
        delay = owner.delay if owner.mode == "slow" else 0.0
        task = asyncio.ensure_future(self._forward(data, addr, delay))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _forward(self, data: bytes, addr: tuple[str, int], delay: float) -> None:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, self.owner.upstream)
            await loop.sock_sendall(sock, data)
            try:
                answer = await asyncio.wait_for(loop.sock_recv(sock, 65535), 2.0)
            except TimeoutError:
                return
        if delay:
            await asyncio.sleep(delay)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(answer, addr)


class UdpFault(_Switchable):
    """A UDP relay on 127.0.0.1:`port` in front of a DNS server, switchable between MODES.

    `garbage(query)` builds the bad reply (default: the SSH banner, which is not a DNS message).
    """

    def __init__(
        self, upstream: tuple[str, int], delay: float = 3.0, garbage: Callable[[bytes], bytes] | None = None
    ) -> None:
        super().__init__("udp-fault")
        self.upstream = upstream
        self.delay = delay
        self.garbage = garbage or (lambda _query: SSH_BANNER)
        self.port = free_port()
        self.mode = "pass"
        self.queries = 0
        self._transport: asyncio.DatagramTransport | None = None
        self.run(self._bind())

    async def _switch(self, mode: str) -> None:
        self.mode = mode
        if mode == "refused" and self._transport is not None:
            self._transport.close()
            self._transport = None
        elif mode != "refused" and self._transport is None:
            await self._bind()

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Relay(self), local_addr=("127.0.0.1", self.port), reuse_port=False
        )
        self._transport = transport


@contextlib.contextmanager
def fault_proxy(upstream: tuple[str, int], **kwargs: Any) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, **kwargs)
    try:
        yield proxy
    finally:
        proxy.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, step: float = 0.05) -> bool:
    """Poll an async condition until it holds or `timeout` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(step)
    return await check()
