"""Postgres reachability per endpoint: Neon's pooler and the direct compute endpoint.

Feeds "Neon Postgres outage" and "Neon pooler endpoint unreachable but direct endpoint up". Each
run opens a fresh connection (so DNS, TCP, TLS and auth are measured, not hidden by reuse) and
sends one simple-protocol message: a READ ONLY transaction with a transaction-local statement
timeout around `SELECT 1`. Nothing is left set on a pooled server connection.
"""

from __future__ import annotations

import time

import psycopg

from exporter.config import Config, PostgresEndpoint
from exporter.engine import Probe
from exporter.probes.deps import Dependencies
from exporter.samples import Samples, gauge

UP = gauge("honeydue_postgres_up", "Whether the endpoint accepted a connection and ran SELECT 1.", "endpoint")
CONNECT_SECONDS = gauge(
    "honeydue_postgres_connect_duration_seconds", "Seconds to connect and authenticate.", "endpoint"
)
QUERY_SECONDS = gauge("honeydue_postgres_query_duration_seconds", "Seconds for the SELECT 1 round trip.", "endpoint")


class PostgresProbe(Probe):
    """Connect + SELECT 1 against one endpoint."""

    family = kind = "postgres"

    def __init__(self, endpoint: str, cfg: PostgresEndpoint, deps: Dependencies) -> None:
        super().__init__(f"postgres_{endpoint}", cfg.interval, cfg.timeout)
        self.endpoint = endpoint
        self._cfg = cfg
        self._deps = deps
        self._conn: psycopg.AsyncConnection[tuple[int]] | None = None
        statement_ms = max(1, int(cfg.timeout * 1000))
        self._query = f"BEGIN READ ONLY; SET LOCAL statement_timeout = {statement_ms}; SELECT 1; COMMIT"

    async def _connect(self) -> psycopg.AsyncConnection[tuple[int]]:
        cfg = self._cfg
        return await psycopg.AsyncConnection.connect(
            host=cfg.host,
            port=cfg.port,
            dbname=cfg.dbname,
            user=cfg.user,
            password=cfg.password.get_secret_value() if cfg.password else None,
            sslmode=cfg.sslmode,
            connect_timeout=max(1, round(cfg.connect_timeout)),
            application_name="honeydue-exporter",
            autocommit=True,
        )

    async def collect(self) -> Samples:
        async with self._deps.throttle("postgres"):
            started = time.monotonic()
            conn = self._conn
            fresh = conn is None or conn.closed
            try:
                if fresh:
                    conn = await self._connect()
                assert conn is not None
                connected = time.monotonic()
                cur = conn.cursor()
                await cur.execute(self._query.encode())
                value = None
                while True:
                    if cur.description is not None:
                        row = await cur.fetchone()
                        value = row[0] if row else None
                    if not cur.nextset():
                        break
                done = time.monotonic()
                if value != 1:
                    raise psycopg.DataError("unexpected reply to SELECT 1")
            except BaseException:
                if conn is not None:
                    await conn.close()
                self._conn = None
                raise
        if self._cfg.reuse_connection:
            self._conn = conn
        else:
            await conn.close()
        s = Samples()
        s.add(UP, 1, endpoint=self.endpoint)
        s.add(CONNECT_SECONDS, connected - started if fresh else 0.0, endpoint=self.endpoint)
        s.add(QUERY_SECONDS, done - connected, endpoint=self.endpoint)
        return s

    def failed(self, reason: str) -> Samples:
        return Samples.of(UP, 0, endpoint=self.endpoint)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


def build(config: Config, deps: Dependencies) -> list[Probe]:
    endpoints = {"pooler": config.postgres.pooler, "direct": config.postgres.direct}
    return [PostgresProbe(name, cfg, deps) for name, cfg in endpoints.items() if cfg.enabled]
