"""A RESP server for bad-reply tests, and a RESP reader to compare its replies with a real redis-server's.

`FakeRedis` speaks the connection handshake the way redis-server 7 does (HELLO in both protocols, CLIENT,
AUTH, SELECT, PING, the unknown-command error) so that any redis-py version reaches the command the test is
about; INFO and SCARD answer with what the test chose. `tests/test_fake_redis.py` sends the same commands to
both and compares the replies, so the fake cannot drift from the real server again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

# The INFO fields the Redis probe needs, nothing else.
GOOD_INFO = b"# Server\r\nrun_id:abc\r\nuptime_in_seconds:5\r\n# Memory\r\nused_memory:100\r\n"


def command(*args: bytes) -> bytes:
    """A client command as RESP (an array of bulk strings)."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def unknown_command(args: list[bytes]) -> bytes:
    """redis-server 7's error for a command it does not know (also how it answers HELLO when HELLO is renamed away)."""
    return b"-ERR unknown command '%s', with args beginning with: %s\r\n" % (
        args[0], b"".join(b"'%s' " % a for a in args[1:]))


@dataclass
class FakeRedis:
    """A RESP server: the handshake as redis-server answers it, INFO and SCARD as the test chose.

    `info` is INFO's text, sent as a bulk string under RESP2 and a verbatim string under RESP3, as Redis 7 does;
    `raw_info` replaces the whole reply with exact bytes (bad replies). `before_6` plays a server older than
    Redis 6, which knows no HELLO: the client must fall back to RESP2.
    """

    info: bytes = GOOD_INFO
    scard: bytes = b":1\r\n"
    raw_info: bytes | None = None
    before_6: bool = False
    version: bytes = b"7.0.15"
    sent: int = 0
    protocols: list[int] = field(default_factory=list)  # the protocol of every HELLO answered

    def hello(self, args: list[bytes], session: dict[str, int]) -> bytes:
        if self.before_6:
            return unknown_command(args)
        if len(args) > 1:
            if args[1] not in (b"2", b"3"):
                return b"-NOPROTO unsupported protocol version\r\n"
            session["proto"] = int(args[1])
            self.protocols.append(session["proto"])
        fields = [(b"server", bulk(b"redis")), (b"version", bulk(self.version)), (b"proto", b":%d\r\n" % session["proto"]),
                  (b"id", b":%d\r\n" % session["id"]), (b"mode", bulk(b"standalone")), (b"role", bulk(b"master")),
                  (b"modules", b"*0\r\n")]
        head = b"%%%d\r\n" % len(fields) if session["proto"] == 3 else b"*%d\r\n" % (2 * len(fields))
        return head + b"".join(bulk(key) + value for key, value in fields)

    def reply(self, args: list[bytes], session: dict[str, int]) -> bytes:
        name = args[0].upper()
        if name == b"HELLO":
            return self.hello(args, session)
        if name == b"INFO":
            if self.raw_info is not None:
                return self.raw_info
            if session["proto"] == 3:
                return b"=%d\r\ntxt:%s\r\n" % (len(self.info) + 4, self.info)
            return bulk(self.info)
        if name == b"SCARD":
            return self.scard
        if name == b"PING":
            return b"+PONG\r\n"
        if name in (b"CLIENT", b"AUTH", b"SELECT"):
            return b"+OK\r\n"
        return unknown_command(args)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = {"proto": 2, "id": id(writer) % 1000}
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                args = await read_command(reader)
                if args is None:
                    break
                await self.send(writer, self.reply(args, session))
        writer.close()

    async def send(self, writer: asyncio.StreamWriter, reply: bytes) -> None:
        if reply.startswith(b"$1000000000\r\n"):  # a 1 GB INFO, streamed until the client hangs up
            writer.write(reply)
            while True:
                writer.write(b"# " + b"x" * 65534)
                await writer.drain()
                self.sent += 65536
        writer.write(reply)
        await writer.drain()


@contextlib.asynccontextmanager
async def serve(server: FakeRedis) -> AsyncIterator[int]:
    """Serve `server` on a free loopback port; yields the port."""
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    try:
        yield int(srv.sockets[0].getsockname()[1])
    finally:
        srv.close()


async def read_command(reader: asyncio.StreamReader) -> list[bytes] | None:
    """One client command (an array of bulk strings), or None at the end of the stream."""
    header = await reader.readline()
    if not header.startswith(b"*"):
        return None
    args = []
    for _ in range(int(header[1:])):
        size = int((await reader.readline())[1:])
        args.append((await reader.readexactly(size + 2))[:-2])
    return args


async def read_reply(reader: asyncio.StreamReader) -> Any:
    """One reply as (type byte, value): aggregates hold replies, a map a list of (key, value) pairs."""
    line = (await reader.readline())[:-2]
    kind, rest = line[:1], line[1:]
    if kind in (b"$", b"=", b"!"):
        size = int(rest)
        return kind, None if size < 0 else (await reader.readexactly(size + 2))[:-2]
    if kind in (b"*", b"~", b">"):
        size = int(rest)
        return kind, None if size < 0 else [await read_reply(reader) for _ in range(size)]
    if kind == b"%":
        return kind, [(await read_reply(reader), await read_reply(reader)) for _ in range(int(rest))]
    return kind, rest  # + - : , # _ (simple string, error, integer, double, boolean, null)
