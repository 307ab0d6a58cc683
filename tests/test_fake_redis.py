"""The fake Redis of the bad-reply tests answers the handshake exactly as a real redis-server does.

The same commands go to a private redis-server and to `FakeRedis`, each on its own connection, and the
replies must match: type for type, key for key, value for value except what differs between any two servers
(the connection id, the version, INFO's text). A redis-server with HELLO renamed away is what a server older
than Redis 6 looks like to a client, and is compared with the fake's `before_6` mode. redis-py 8.2 opens
every connection with `HELLO 3`; a fake that answered it with `+OK` broke every bad-reply test.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers.resp import FakeRedis, command, read_reply, serve
from tests.helpers.servers import RedisServer

# Map keys (HELLO) whose values are this server's, not the protocol's.
PER_SERVER = {b"id", b"version"}

MODERN = [
    (b"HELLO", b"3"), (b"INFO", b"default"), (b"SCARD", b"asynq:queues"), (b"PING",), (b"HELLO",),
    (b"HELLO", b"2"), (b"INFO", b"default"), (b"HELLO",), (b"HELLO", b"4"), (b"CLIENT", b"SETNAME", b"honeydue-exporter"),
    (b"SELECT", b"0"), (b"NOSUCHCMD", b"x", b"y"),
]
BEFORE_6 = [(b"HELLO", b"3"), (b"HELLO", b"3", b"AUTH", b"default", b"pw"), (b"PING",), (b"INFO", b"default"),
            (b"CLIENT", b"SETNAME", b"honeydue-exporter")]


def normalize(reply: Any, key: bytes | None = None) -> Any:
    """The reply with per-server values blanked: HELLO's id and version, INFO's text (its type stays)."""
    kind, value = reply
    if kind == b"%":
        return kind, [(normalize(k), normalize(v, k[1])) for k, v in value]
    if kind in (b"*", b"~") and value and len(value) % 2 == 0 and value[0] == (b"$", b"server"):
        pairs = list(zip(value[::2], value[1::2], strict=True))  # HELLO's RESP2 form: key, value, key, value
        return kind, [x for k, v in pairs for x in (normalize(k), normalize(v, k[1]))]
    if key in PER_SERVER:
        return kind, "<per server>"
    if kind in (b"$", b"=") and value is not None and b"# Server" in value:
        return kind, value[:4] if kind == b"=" else "<INFO text>"  # verbatim strings keep their "txt:" format
    return kind, value


async def replies(port: int, commands: list[tuple[bytes, ...]]) -> list[Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        out = []
        for args in commands:
            writer.write(command(*args))
            await writer.drain()
            out.append(normalize(await asyncio.wait_for(read_reply(reader), 5)))
        return out
    finally:
        writer.close()


@pytest.mark.parametrize(("server_args", "fake", "commands"), [
    ((), FakeRedis(scard=b":0\r\n"), MODERN),
    (("--rename-command", "HELLO", ""), FakeRedis(before_6=True), BEFORE_6),
], ids=["redis-7", "before-redis-6"])
async def test_fake_answers_as_redis_server_does(server_args: tuple[str, ...], fake: FakeRedis,
                                                 commands: list[tuple[bytes, ...]]) -> None:
    real = RedisServer(args=server_args)
    real.start()
    try:
        expected = await replies(real.port, commands)
    finally:
        real.stop()
    async with serve(fake) as port:
        got = await replies(port, commands)
    for args, want, have in zip(commands, expected, got, strict=True):
        assert have == want, b" ".join(args)


async def test_the_comparison_catches_a_fake_that_answers_ok_to_hello() -> None:
    """The check above is not vacuous: the old fake's `+OK` to HELLO differs from the real reply."""

    class OkToHello(FakeRedis):
        def hello(self, args: list[bytes], session: dict[str, int]) -> bytes:
            return b"+OK\r\n"

    real = RedisServer()
    real.start()
    try:
        expected = await replies(real.port, [(b"HELLO", b"3")])
    finally:
        real.stop()
    async with serve(OkToHello()) as port:
        assert await replies(port, [(b"HELLO", b"3")]) != expected
