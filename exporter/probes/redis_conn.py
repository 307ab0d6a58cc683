"""One way to open the exporter's Redis clients, so every probe connects with the same limits.

The limits are time (socket timeouts) and size: redis-py reads whatever length a reply declares,
so a broken or hostile server answering INFO with a 1 GB bulk string would be read into memory.
The bounded parsers refuse a reply larger than MAX_REPLY_BYTES before reading it (the declared
length is checked first), which makes the run fail fast with reason `protocol`.

redis-py 8.2 opens a connection with `HELLO 3` and, when the server answers "unknown command" (Redis
before 6, or a proxy), falls back to RESP2 by swapping in its own RESP2 parser. The connection classes
here map every parser redis-py asks for to its bounded twin, so the limits hold in either protocol.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis._parsers import _AsyncRESP2Parser, _AsyncRESP3Parser
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse
from redis.maint_notifications import MaintNotificationsConfig

from exporter.config import RedisConfig

# INFO is ~10 KiB; Asynq and cache reads are bounded batches. 16 MiB is far above any real reply.
MAX_REPLY_BYTES = 16 * 1024 * 1024
NO_MAINT_NOTIFICATIONS = MaintNotificationsConfig(enabled=False)


_BULK = (b"$", b"=", b"!")  # bulk string, verbatim string, blob error
_AGGREGATE = (b"*", b"~", b">", b"%", b"|")  # array, set, push, map (2 per entry), attribute


class _Bounded:
    """Counts the bytes of one reply as its lines are read and refuses it past MAX_REPLY_BYTES."""

    max_reply_bytes = MAX_REPLY_BYTES
    _reply_bytes = 0

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        self._reply_bytes = 0
        return await super().read_response(*args, **kwargs)  # type: ignore[misc]

    def _count(self, size: int) -> None:
        self._reply_bytes += size
        if self._reply_bytes > self.max_reply_bytes:
            raise InvalidResponse(f"Protocol Error: reply larger than {self.max_reply_bytes} bytes")

    async def _readline(self) -> bytes:
        try:
            line: bytes = await super()._readline()  # type: ignore[misc]
        except ValueError:  # asyncio's StreamReader limit: a line without CRLF in the first 64 KiB
            raise InvalidResponse("Protocol Error: reply line too long") from None
        self._count(len(line) + 2)
        kind = line[:1]
        if kind in _BULK + _AGGREGATE and line[1:] not in (b"-1", b"?"):
            try:
                length = int(line[1:])
            except ValueError:
                raise InvalidResponse("Protocol Error: invalid length") from None
            if kind in _BULK:
                self._count(length)  # counted before it is read
            elif self._reply_bytes + 3 * length > self.max_reply_bytes:  # an element takes 3 bytes at least
                raise InvalidResponse(f"Protocol Error: reply larger than {self.max_reply_bytes} bytes")
        return line


class BoundedRESP3Parser(_Bounded, _AsyncRESP3Parser):
    """redis-py's RESP3 parser with the size limit."""


class BoundedRESP2Parser(_Bounded, _AsyncRESP2Parser):
    """redis-py's RESP2 parser with the size limit (an explicit `protocol: 2`, or the HELLO fallback)."""


BOUNDED: dict[type[Any], type[Any]] = {_AsyncRESP3Parser: BoundedRESP3Parser, _AsyncRESP2Parser: BoundedRESP2Parser}


_CONNECTIONS: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def bounded_connection(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """`base` (TCP, TLS or unix socket, as the URL chose) whose parser is always a bounded one."""
    if base not in _CONNECTIONS:

        class Bounded(base):  # type: ignore[valid-type,misc]
            def set_parser(self, parser_class: type[Any]) -> None:
                super().set_parser(BOUNDED.get(parser_class, parser_class))

        Bounded.__name__ = Bounded.__qualname__ = f"Bounded{base.__name__}"
        _CONNECTIONS[base] = Bounded
    return _CONNECTIONS[base]


def with_db(url: str, db: int | None) -> str:
    """`url` pointing at database `db` (redis-py lets the URL's database win over a `db=` argument)."""
    if db is None:
        return url
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))]
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{db}"))


def client(cfg: RedisConfig, timeout: float, db: int | None = None) -> aioredis.Redis:
    """A client for `cfg.url` (optionally another database) whose every call ends within `timeout`."""
    extra: dict[str, Any] = {} if cfg.protocol is None else {"protocol": cfg.protocol}
    redis = aioredis.Redis.from_url(
        with_db(cfg.url, db),
        username=cfg.username,
        password=cfg.password.get_secret_value() if cfg.password else None,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry_on_timeout=False,
        # One immediate retry on a dropped connection: an idle socket closed by a Redis restart is
        # not an outage; a refused reconnect still fails the run.
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
        health_check_interval=0,
        client_name="honeydue-exporter",
        # No CLIENT SETINFO on connect: one command fewer for the least-privilege ACL to allow.
        driver_info=None,
        parser_class=BoundedRESP3Parser if cfg.protocol != 2 else BoundedRESP2Parser,
        # redis-py 8 wants a RESP3/hiredis parser for maintenance push notifications (a cloud feature).
        maint_notifications_config=NO_MAINT_NOTIFICATIONS,
        **extra,
    )
    pool = redis.connection_pool
    pool.connection_class = bounded_connection(pool.connection_class)
    return redis
