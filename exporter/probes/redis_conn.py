"""One way to open the exporter's Redis clients, so every probe connects with the same limits."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from exporter.config import RedisConfig


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
    return aioredis.Redis.from_url(
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
    )
