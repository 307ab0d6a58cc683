"""Residence-IDs cache probe against a real redis-server and a real PostgreSQL database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
import redis

from testbed.residence import create_residence_tables

from exporter.config import Config, ResidenceCacheConfig
from exporter.engine import Engine
from exporter.probes import cache
from exporter.probes.cache import ResidenceCacheProbe
from exporter.probes.deps import Dependencies
from tests.conftest import PG_DSN
from tests.helpers.servers import RedisServer

# residences: 10 owned by user 1 (member: 2), 11 owned by user 2, 12 owned by user 3 (members: 1, 4)
TRUTH = {1: [10, 12], 2: [10, 11], 3: [12], 4: [12]}


def dsn(dbname: str) -> str:
    return PG_DSN.replace("dbname=postgres", f"dbname={dbname}")


@pytest.fixture
def db(pg_database: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn(pg_database), autocommit=True) as conn:
        create_residence_tables(conn)
        yield conn


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_server.port)
    yield client
    client.close()


def make_probe(server: RedisServer, dbname: str, **kw: Any) -> ResidenceCacheProbe:
    config = Config(  # type: ignore[arg-type]
        redis={"url": server.url},
        postgres={"pooler": {"port": 5432, "dbname": dbname, "sslmode": "disable"}},
        residence_cache={"enabled": True, "interval": 2, "timeout": 1.5, **kw},
    )
    return ResidenceCacheProbe(config.residence_cache, config, Dependencies())


@pytest.fixture
async def probe(redis_server: RedisServer, pg_database: str) -> AsyncIterator[ResidenceCacheProbe]:
    p = make_probe(redis_server, pg_database)
    yield p
    await p.close()


def write_json(r: redis.Redis, user: int, ids: list[int], ttl: int = 300) -> None:
    """What the service's cache writes: the user's residence ids as a JSON array, TTL 5 minutes."""
    r.set(f"residence_ids:{user}", json.dumps(ids), ex=ttl)


async def test_fresh_cache_has_no_stale_entries(db: Any, r: redis.Redis, probe: ResidenceCacheProbe) -> None:
    for user, ids in TRUTH.items():
        write_json(r, user, ids)
    r.set("token:abc", "unrelated")
    s = await probe.collect()
    assert s.value("honeydue_residence_ids_cache_up") == 1
    assert s.value("honeydue_residence_ids_cache_entries_checked") == 4
    assert s.value("honeydue_residence_ids_cache_entries_stale") == 0
    assert s.value("honeydue_residence_ids_cache_entries_undecodable") == 0
    assert s.value("honeydue_residence_ids_cache_entries_without_ttl") == 0
    assert s.value("honeydue_residence_ids_cache_oldest_stale_age_seconds") == 0


async def test_membership_change_without_invalidation_is_stale_until_invalidated(
    db: Any, r: redis.Redis, probe: ResidenceCacheProbe
) -> None:
    for user, ids in TRUTH.items():
        write_json(r, user, ids, ttl=300)
    r.expire("residence_ids:4", 200)  # cached 100 s ago
    # JoinWithCode for user 4 into residence 11, and RemoveUser of user 1 from residence 12, neither invalidating.
    db.execute("INSERT INTO residence_residence_users (residence_id, user_id) VALUES (11, 4)")
    db.execute("DELETE FROM residence_residence_users WHERE residence_id = 12 AND user_id = 1")
    s = await probe.collect()
    assert s.value("honeydue_residence_ids_cache_entries_checked") == 4
    assert s.value("honeydue_residence_ids_cache_entries_stale") == 2
    assert s.value("honeydue_residence_ids_cache_oldest_stale_age_seconds") == pytest.approx(100, abs=2)
    assert s.value("honeydue_residence_ids_cache_oldest_stale_ttl_seconds") == pytest.approx(200, abs=2)
    # cache.InvalidateResidenceIDsForUsers: the keys are deleted, the next request re-fills them.
    r.delete("residence_ids:4", "residence_ids:1")
    s = await probe.collect()
    assert s.value("honeydue_residence_ids_cache_entries_checked") == 2
    assert s.value("honeydue_residence_ids_cache_entries_stale") == 0
    write_json(r, 4, [11, 12])
    write_json(r, 1, [10])
    s = await probe.collect()
    assert s.value("honeydue_residence_ids_cache_entries_checked") == 4
    assert s.value("honeydue_residence_ids_cache_entries_stale") == 0
    assert s.value("honeydue_residence_ids_cache_oldest_stale_ttl_seconds") == 0


async def test_deleted_residence_leaves_members_stale(db: Any, r: redis.Redis, probe: ResidenceCacheProbe) -> None:
    for user, ids in TRUTH.items():
        write_json(r, user, ids)
    db.execute("DELETE FROM residence_residence WHERE id = 12")  # members 1, 3 (owner) and 4 lose it
    s = await probe.collect()
    assert s.value("honeydue_residence_ids_cache_entries_stale") == 3


@pytest.mark.parametrize("encoding", ["set", "csv"])
async def test_other_encodings(db: Any, r: redis.Redis, redis_server: RedisServer, pg_database: str,
                               encoding: str) -> None:
    for user, ids in TRUTH.items():
        key = f"rids:{user}:v2"
        if encoding == "set":
            r.sadd(key, *ids)
        else:
            r.set(key, ",".join(map(str, ids)))
        r.expire(key, 300)
    r.set("rids:9:v2", "[1,2]" if encoding == "csv" else "a string, wrong type")  # undecodable either way
    db.execute("INSERT INTO residence_residence_users (residence_id, user_id) VALUES (11, 3)")
    probe = make_probe(redis_server, pg_database, key_pattern="rids:{user_id}:v2", encoding=encoding)
    s = await probe.collect()
    await probe.close()
    assert s.value("honeydue_residence_ids_cache_entries_checked") == 4
    assert s.value("honeydue_residence_ids_cache_entries_stale") == 1
    assert s.value("honeydue_residence_ids_cache_entries_undecodable") == 1


async def test_pattern_matching_nothing_is_zero_not_an_error(
    db: Any, r: redis.Redis, probe: ResidenceCacheProbe
) -> None:
    r.set("something:else", "1")
    engine = Engine([probe])
    state = await engine.run_once(probe)
    assert state.status == "ok"
    assert state.snapshot.value("honeydue_residence_ids_cache_up") == 1
    assert state.snapshot.value("honeydue_residence_ids_cache_entries_checked") == 0
    assert state.snapshot.value("honeydue_residence_ids_cache_entries_stale") == 0


async def test_sample_is_bounded_and_walks_the_keyspace(
    db: Any, r: redis.Redis, redis_server: RedisServer, pg_database: str
) -> None:
    for user in range(100, 400):
        write_json(r, user, [])
    write_json(r, 2, [11])  # stale (truth: 10, 11)
    probe = make_probe(redis_server, pg_database, sample_size=40, scan_count=20, max_scan_calls=5)
    seen_stale, checked = 0, []
    for _ in range(12):
        s = await probe.collect()
        checked.append(s.value("honeydue_residence_ids_cache_entries_checked"))
        seen_stale += int(s.value("honeydue_residence_ids_cache_entries_stale") or 0)
    await probe.close()
    assert max(c or 0 for c in checked) <= 40
    assert seen_stale >= 1  # the cursor resumes across runs, so the one stale key among 301 is reached


async def test_no_ttl_entry_and_no_user_id_in_labels(db: Any, r: redis.Redis, probe: ResidenceCacheProbe) -> None:
    r.set("residence_ids:3", json.dumps([10]))  # stale and without expiry: never heals
    s = await probe.collect()
    assert s.value("honeydue_residence_ids_cache_entries_without_ttl") == 1
    assert s.value("honeydue_residence_ids_cache_entries_stale") == 1
    assert s.value("honeydue_residence_ids_cache_oldest_stale_ttl_seconds") == 0
    for family in s.families():
        for sample in family.samples:
            assert sample.labels == {}, sample


async def test_database_down_is_a_value(db: Any, r: redis.Redis, redis_server: RedisServer) -> None:
    write_json(r, 1, [10, 12])
    config = Config(  # type: ignore[arg-type]
        redis={"url": redis_server.url},
        postgres={"pooler": {"port": 1, "dbname": "x", "sslmode": "disable", "connect_timeout": 1}},
        residence_cache={"enabled": True, "interval": 2, "timeout": 1.5},
    )
    probe = ResidenceCacheProbe(config.residence_cache, config, Dependencies())
    engine = Engine([probe])
    state = await engine.run_once(probe)
    assert state.status == "failing" and state.reason == "refused"
    assert state.snapshot.value("honeydue_residence_ids_cache_up") == 0
    await engine.stop()


async def test_truth_is_one_read_only_query_with_a_statement_timeout(
    db: Any, r: redis.Redis, pg_database: str, redis_server: RedisServer
) -> None:
    probe = make_probe(redis_server, pg_database)
    truth = await probe._truth([1, 2, 3, 4, 99])
    assert {u: sorted(ids) for u, ids in truth.items()} == TRUTH
    # The wrapper refuses writes...
    with psycopg.connect(dsn(pg_database), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            insert = "INSERT INTO residence_residence (owner_id) VALUES (1)"
            conn.execute(probe.truth_query([1], select=insert).encode())
        conn.execute("ROLLBACK")  # the probe closes its connection instead
        # ...and its SET LOCAL is gone after the transaction (safe on a pooled server connection).
        conn.execute(probe.truth_query([1]).encode())
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
    # A query blocked by a lock is cancelled by the database at 80% of the probe timeout (1.2 s).
    with psycopg.connect(dsn(pg_database)) as locker:
        locker.execute("LOCK TABLE residence_residence IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(psycopg.errors.QueryCanceled):
            await probe._truth([1])
        locker.rollback()
    await probe.close()


def test_disabled_by_default() -> None:
    assert cache.build(Config(), Dependencies()) == []


def test_key_pattern_validation() -> None:
    with pytest.raises(ValueError, match="exactly once"):
        ResidenceCacheConfig(key_pattern="residence_ids:*")
    with pytest.raises(ValueError, match="glob"):
        ResidenceCacheConfig(key_pattern="residence_ids:{user_id}:*")
    assert ResidenceCacheConfig(key_pattern="u:{user_id}:rids").key_pattern == "u:{user_id}:rids"
