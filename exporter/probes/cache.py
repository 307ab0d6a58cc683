"""Residence-IDs cache staleness: sampled cache entries compared with the database's membership truth.

Feeds "Stale residence-IDs cache (data freshness bug)". The Go service caches, per user, the IDs of
the residences the user may see (owner via residence_residence.owner_id, member via
residence_residence_users.user_id) for 5 minutes; a mutation that forgets to invalidate leaves a
stale entry until it expires. Each run:

1. a bounded SCAN (at most `max_scan_calls` calls, resuming where the last run stopped so the
   sample walks the whole keyspace over time) collects up to `sample_size` cache keys;
2. one pipeline reads their values and remaining TTLs;
3. one READ ONLY transaction with a transaction-local statement timeout (SET LOCAL, safe behind a
   transaction-mode pooler) loads the truth for those users in a single query, throttled by the
   shared Postgres rate limit;
4. entries that differ are read again in one pipeline and count as stale only if unchanged, so a
   mutation whose invalidation lands while the probe runs is not reported.

User ids and residence ids never leave the probe: every metric is a plain count or duration.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import psycopg
from redis.exceptions import ResponseError

from exporter.config import Config, PostgresEndpoint, ResidenceCacheConfig
from exporter.engine import Probe
from exporter.probes.deps import Dependencies
from exporter.probes.redis_conn import client
from exporter.samples import Samples, gauge

UP = gauge("honeydue_residence_ids_cache_up", "Whether the last check could read both Redis and Postgres.")
CHECKED = gauge("honeydue_residence_ids_cache_entries_checked", "Cache entries compared with the database last run.")
STALE = gauge(
    "honeydue_residence_ids_cache_entries_stale",
    "Sampled entries whose residence IDs differ from the database (confirmed by a second read).",
)
UNDECODABLE = gauge(
    "honeydue_residence_ids_cache_entries_undecodable",
    "Sampled entries whose value is not in the configured encoding (or is the wrong Redis type).",
)
NO_TTL = gauge(
    "honeydue_residence_ids_cache_entries_without_ttl",
    "Sampled entries with no expiry: if stale, they never heal by themselves.",
)
OLDEST_STALE_TTL = gauge(
    "honeydue_residence_ids_cache_oldest_stale_ttl_seconds",
    "Remaining TTL of the oldest stale entry: how long users keep seeing it (0 when none is stale).",
)
OLDEST_STALE_AGE = gauge(
    "honeydue_residence_ids_cache_oldest_stale_age_seconds",
    "Age of the oldest stale entry, cache_ttl minus its remaining TTL (0 when none is stale).",
)

TRUTH_SQL = (
    "SELECT owner_id, id FROM residence_residence WHERE owner_id = ANY('{{{ids}}}'::bigint[]) "
    "UNION SELECT user_id, residence_id FROM residence_residence_users WHERE user_id = ANY('{{{ids}}}'::bigint[])"
)


@dataclass
class Entry:
    key: str
    user_id: int
    raw: Any
    ids: frozenset[int]
    ttl_ms: int  # -1: no expiry


def decode(raw: Any, encoding: str) -> frozenset[int]:
    """Residence ids from a cache value; ValueError when the value is not in `encoding`."""
    if encoding == "set":
        return frozenset(int(m) for m in raw)
    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    if encoding == "json":
        value = json.loads(text)
        if value is None:
            return frozenset()
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError("not a JSON array of integers")
        return frozenset(value)
    return frozenset(int(part) for part in text.split(",") if part.strip())


class ResidenceCacheProbe(Probe):
    """Samples the cache, loads the truth in one query, counts stale entries."""

    family = kind = "residence_cache"

    def __init__(self, cfg: ResidenceCacheConfig, config: Config, deps: Dependencies,
                 name: str = "residence_cache") -> None:
        super().__init__(name, cfg.interval, cfg.timeout)
        self._cfg = cfg
        self._db: PostgresEndpoint = getattr(config.postgres, cfg.database)
        self._deps = deps
        self._client = client(config.redis, cfg.timeout, cfg.db)
        prefix, suffix = cfg.key_pattern.split("{user_id}")
        self._match = f"{prefix}*{suffix}"
        self._key_re = re.compile(re.escape(prefix) + r"(\d{1,18})" + re.escape(suffix))
        self._cursor = 0
        # The database cancels the query before the engine abandons the run, so nothing is left running.
        self._statement_ms = max(1, int(cfg.timeout * 800))

    async def collect(self) -> Samples:
        try:
            async with self._deps.throttle("redis"):
                keys = await self._scan()
                entries, undecodable = await self._read(keys)
        except BaseException:
            await self._client.connection_pool.disconnect()
            raise
        stale: list[Entry] = []
        if entries:
            truth = await self._truth(sorted({e.user_id for e in entries}))
            candidates = [e for e in entries if e.ids != truth.get(e.user_id, frozenset())]
            stale = await self._confirm(candidates) if candidates else []
        s = Samples()
        s.add(UP, 1)
        s.add(CHECKED, len(entries))
        s.add(STALE, len(stale))
        s.add(UNDECODABLE, undecodable)
        s.add(NO_TTL, sum(1 for e in entries if e.ttl_ms < 0))
        with_ttl = [e for e in stale if e.ttl_ms >= 0]
        if with_ttl:
            oldest = min(with_ttl, key=lambda e: e.ttl_ms)
            s.add(OLDEST_STALE_TTL, oldest.ttl_ms / 1000)
            s.add(OLDEST_STALE_AGE, max(0.0, self._cfg.cache_ttl - oldest.ttl_ms / 1000))
        else:
            s.add(OLDEST_STALE_TTL, 0)
            s.add(OLDEST_STALE_AGE, 0)
        return s

    async def _scan(self) -> list[str]:
        """Up to sample_size matching keys in at most max_scan_calls SCAN calls, resuming last run's cursor."""
        found: dict[str, None] = {}
        for _ in range(self._cfg.max_scan_calls):
            self._cursor, batch = await self._client.scan(self._cursor, match=self._match, count=self._cfg.scan_count)
            for raw in batch:
                name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
                if self._key_re.fullmatch(name):
                    found[name] = None
            if len(found) >= self._cfg.sample_size or self._cursor == 0:
                break
        return list(found)[: self._cfg.sample_size]

    async def _read(self, keys: list[str]) -> tuple[list[Entry], int]:
        if not keys:
            return [], 0
        values = await self._values(keys, with_ttl=True)
        entries, undecodable = [], 0
        for name, (raw, ttl) in zip(keys, values, strict=True):
            if ttl == -2 or raw is None:  # expired between SCAN and read
                continue
            if isinstance(raw, ResponseError):
                undecodable += 1
                continue
            try:
                ids = decode(raw, self._cfg.encoding)
            except (ValueError, TypeError, UnicodeDecodeError):
                undecodable += 1
                continue
            match = self._key_re.fullmatch(name)
            assert match is not None
            entries.append(Entry(name, int(match.group(1)), raw, ids, int(ttl)))
        return entries, undecodable

    async def _values(self, keys: list[str], with_ttl: bool) -> list[tuple[Any, int]]:
        pipe = self._client.pipeline(transaction=False)
        for name in keys:
            if self._cfg.encoding == "set":
                pipe.smembers(name)
            else:
                pipe.get(name)
            if with_ttl:
                pipe.pttl(name)
        replies = await pipe.execute(raise_on_error=False)
        if not with_ttl:
            return [(r, 0) for r in replies]
        return list(zip(replies[0::2], replies[1::2], strict=True))

    def truth_query(self, user_ids: list[int], select: str | None = None) -> str:
        """One simple-protocol message: READ ONLY transaction, transaction-local timeout, the query."""
        ids = ",".join(str(int(u)) for u in user_ids)  # integers only: nothing from Redis reaches SQL as text
        body = select if select is not None else TRUTH_SQL.format(ids=ids)
        return f"BEGIN READ ONLY; SET LOCAL statement_timeout = {self._statement_ms}; {body}; COMMIT"

    async def _truth(self, user_ids: list[int]) -> dict[int, frozenset[int]]:
        query = self.truth_query(user_ids)
        db = self._db
        rows: list[tuple[int, int]] = []
        async with self._deps.throttle("postgres"):
            conn = await psycopg.AsyncConnection.connect(
                host=db.host, port=db.port, dbname=db.dbname, user=db.user,
                password=db.password.get_secret_value() if db.password else None,
                sslmode=db.sslmode, connect_timeout=max(1, round(db.connect_timeout)),
                application_name="honeydue-exporter", autocommit=True,
            )
            try:
                cur = conn.cursor()
                await cur.execute(query.encode())
                while True:
                    if cur.description is not None:
                        rows.extend(await cur.fetchall())
                    if not cur.nextset():
                        break
            finally:
                await conn.close()
        truth: dict[int, set[int]] = {}
        for user_id, residence_id in rows:
            truth.setdefault(int(user_id), set()).add(int(residence_id))
        return {u: frozenset(r) for u, r in truth.items()}

    async def _confirm(self, candidates: list[Entry]) -> list[Entry]:
        """Keep only the candidates whose value is still what was compared (not invalidated meanwhile)."""
        async with self._deps.throttle("redis"):
            again = await self._values([e.key for e in candidates], with_ttl=False)
        return [e for e, (raw, _) in zip(candidates, again, strict=True) if raw is not None and raw == e.raw]

    def failed(self, reason: str) -> Samples:
        return Samples.of(UP, 0)

    async def close(self) -> None:
        await self._client.aclose()


def build(config: Config, deps: Dependencies) -> list[Probe]:
    cfg = config.residence_cache
    return [ResidenceCacheProbe(cfg, config, deps)] if cfg.enabled else []
