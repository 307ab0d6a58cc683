"""Least privilege, proven: the probes under the documented Redis ACL user and Postgres role.

The ACL and the role come from deploy/least-privilege/ (the files are applied as written). Every
Redis-side probe must produce the same metrics as under the default user, the ACL log must stay
empty while they run (no probe silently relies on a denied command), and writes must be refused.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from redis.exceptions import NoPermissionError, ResponseError

from testbed.least_privilege import (
    ACL_USER,
    PgRole,
    apply_redis_acl,
    create_pg_role,
    create_residence_schema,
    dsn,
)

from exporter.config import Config
from exporter.probes.asynq import AsynqProbe
from exporter.probes.cache import ResidenceCacheProbe
from exporter.probes.deps import Dependencies
from exporter.probes.postgres import PostgresProbe
from exporter.probes.redis import RedisProbe
from exporter.samples import Samples
from tests.conftest import BOTH_PROTOCOLS
from tests.helpers.asynq_peer import AsynqPeer
from tests.helpers.servers import PgBouncer, RedisServer

PASSWORD = "acl-test-password-5f1c"
# Values that legitimately differ between two back-to-back runs (clock, allocator, extra client).
VOLATILE = {"honeydue_redis_uptime_seconds", "honeydue_redis_memory_used_bytes", "asynq_queue_latency_seconds",
            "honeydue_residence_ids_cache_oldest_stale_ttl_seconds", "honeydue_residence_ids_cache_oldest_stale_age_seconds"}


def seed(r: redis.Redis, port: int) -> AsynqPeer:
    """The real Asynq (pending, active, scheduled tasks, a paused queue, a live worker and scheduler) and
    residence-ID cache entries (one stale). The caller stops the returned peer's processes."""
    peer = AsynqPeer(f"127.0.0.1:{port}")
    try:
        peer.enqueue("email", 1)  # the worker processes this one, then takes the next two and holds them
        peer.enqueue("email", 2, do="block")
        peer.enqueue("email", 4)
        peer.enqueue("default", 1, delay="10m")
        peer.pause("default")
        peer.start("worker", "-queues", "email=1", "-concurrency", "2", "-shutdown-timeout", "1s")
        peer.start("scheduler", "-heartbeat", "1s", "-entry", "@every 1h|digest:tick|default")
        deadline = time.monotonic() + 30
        while True:
            t = peer.inspect()
            email = next(q for q in t["queues"] if q["queue"] == "email")
            if (email["states"]["active"] == 2 and email["processed_total"] == 1 and t["servers"]
                    and t["scheduler_entries"]):
                break
            assert time.monotonic() < deadline, t
            time.sleep(0.2)
    except BaseException:
        peer.stop_all()
        raise
    r.set("residence_ids:1", json.dumps([10, 12]), ex=300)
    r.set("residence_ids:2", json.dumps([11]), ex=300)  # stale: user 2 is also a member of 10
    r.set("residence_ids:4", json.dumps([12]), ex=300)
    return peer


@pytest.fixture
def acl_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    admin = redis.Redis(port=redis_server.port)
    peer = seed(admin, redis_server.port)
    apply_redis_acl(admin, PASSWORD)
    admin.execute_command("ACL", "LOG", "RESET")
    yield admin
    peer.stop_all()
    admin.close()


@pytest.fixture
def pg_role(pg_database: str) -> Iterator[PgRole]:
    create_residence_schema(pg_database)
    role = create_pg_role(pg_database, "role-test-password-91ab")
    yield role
    role.drop()


def config(server: RedisServer, dbname: str, *, acl: bool, role: PgRole | None = None, pooler_port: int = 5432) -> Config:
    redis_cfg: dict[str, Any] = {"url": server.url, "interval": 5, "timeout": 3}
    if acl:
        redis_cfg |= {"username": ACL_USER, "password": PASSWORD}
    endpoint: dict[str, Any] = {"dbname": dbname, "sslmode": "disable", "interval": 5, "timeout": 3}
    if role is not None:
        endpoint |= {"user": role.name, "password": role.password}
    return Config(  # type: ignore[arg-type]
        redis=redis_cfg,
        postgres={"pooler": endpoint | {"port": pooler_port}, "direct": endpoint},
        asynq={"interval": 5, "timeout": 3},
        residence_cache={"enabled": True, "interval": 5, "timeout": 3},
    )


async def run_redis_side(cfg: Config) -> dict[str, Samples]:
    deps = Dependencies()
    probes = [RedisProbe(cfg.redis, deps), AsynqProbe(cfg.asynq, cfg, deps),
              ResidenceCacheProbe(cfg.residence_cache, cfg, deps)]
    try:
        return {p.name: await p.collect() for p in probes}
    finally:
        for p in probes:
            await p.close()


def assert_same(full: Samples, least: Samples) -> None:
    a, b = full.flat(), least.flat()
    assert a.keys() == b.keys()
    for key in a:
        if key[0] in VOLATILE:
            assert b[key] == pytest.approx(a[key], rel=0.5, abs=2), key
        else:
            assert b[key] == a[key], key


def acl_log(admin: redis.Redis) -> list[Any]:
    return list(admin.execute_command("ACL", "LOG"))


@BOTH_PROTOCOLS  # the client authenticates inside HELLO 3, or with AUTH after falling back to RESP2
async def test_redis_probes_under_the_acl_user_equal_the_default_user(
    redis_server: RedisServer, acl_redis: redis.Redis, pg_database: str
) -> None:
    create_residence_schema(pg_database)
    full = await run_redis_side(config(redis_server, pg_database, acl=False))
    least = await run_redis_side(config(redis_server, pg_database, acl=True))

    assert acl_log(acl_redis) == []  # no command the probes sent was denied, not even inside a script
    for name in full:
        assert_same(full[name], least[name])
    s = least["asynq"]
    assert s.value("honeydue_asynq_up") == 1
    assert s.value("honeydue_asynq_queue_read_ok", queue="email") == 1
    assert s.value("honeydue_asynq_registry_read_ok", registry="servers") == 1
    assert s.value("honeydue_asynq_registry_read_ok", registry="schedulers") == 1
    assert s.value("asynq_tasks", queue="email", state="active") == 2
    assert s.value("honeydue_asynq_stuck_active_tasks", queue="email", reason="lease_expired") == 0
    assert s.value("honeydue_asynq_servers_live", status="active") == 1
    assert s.value("asynq_queue_paused", queue="default") == 1
    assert least["redis"].value("honeydue_redis_asynq_queues") == 2
    assert least["residence_cache"].value("honeydue_residence_ids_cache_entries_checked") == 3
    assert least["residence_cache"].value("honeydue_residence_ids_cache_entries_stale") == 1


@BOTH_PROTOCOLS  # the client authenticates inside HELLO 3, or with AUTH after falling back to RESP2
async def test_the_acl_refuses_writes_config_and_other_info_sections(
    redis_server: RedisServer, acl_redis: redis.Redis, pg_database: str
) -> None:
    cfg = config(redis_server, pg_database, acl=True)
    probe = AsynqProbe(cfg.asynq, cfg, Dependencies())
    c = probe._client  # the probe's own connection, with the probe's credentials
    try:
        assert await c.get("asynq:{email}:processed") is not None  # reads work
        with pytest.raises(NoPermissionError):
            await c.set("asynq:{email}:processed", 0)
        with pytest.raises(NoPermissionError):
            await c.delete("asynq:queues")
        with pytest.raises(NoPermissionError):  # plain EVAL: its keys count as read-write
            await c.execute_command("EVAL", "return redis.call('DEL', KEYS[1])", 1, "asynq:queues")
        with pytest.raises(ResponseError, match="can't run this command"):  # a write from inside a script
            await c.execute_command("EVAL_RO", "return redis.call('DEL', KEYS[1])", 1, "asynq:queues")
        with pytest.raises(ResponseError, match="can't access at least one of the keys"):  # a key outside the patterns
            await c.execute_command("EVAL_RO", "return redis.call('GET', 'session:abc')", 0)
        with pytest.raises(NoPermissionError):
            await c.execute_command("CONFIG", "GET", "maxmemory")
        with pytest.raises(NoPermissionError):
            await c.execute_command("INFO", "commandstats")
        with pytest.raises(NoPermissionError):
            await c.get("session:abc")  # a key outside asynq:* and residence_ids:*
        with pytest.raises(NoPermissionError):
            await c.execute_command("KEYS", "*")
    finally:
        await probe.close()
    # EVAL_RO itself refuses writes, whoever runs it (here the default user): a second, independent lock.
    with pytest.raises(ResponseError, match=r"(?i)write commands are not allowed"):
        acl_redis.execute_command("EVAL_RO", "return redis.call('DEL', KEYS[1])", 1, "asynq:queues")
    assert acl_redis.scard("asynq:queues") == 2  # nothing was written
    assert acl_redis.get("asynq:{email}:processed") is not None
    assert len(acl_log(acl_redis)) >= 6  # the refusals were the ACL's doing


async def test_asynq_probe_falls_back_to_eval_without_eval_ro() -> None:
    server = RedisServer(args=("--rename-command", "EVAL_RO", ""))  # what a Redis 6 server looks like
    server.start()
    try:
        admin = redis.Redis(port=server.port)
        peer = seed(admin, server.port)
        try:
            with peer.frozen():  # Asynq's own scripts run as EVAL/EVALSHA too: count only the probe's
                admin.config_resetstat()
                cfg = Config(redis={"url": server.url})  # type: ignore[arg-type]
                probe = AsynqProbe(cfg.asynq, cfg, Dependencies())
                first = await probe.collect()
                second = await probe.collect()
                await probe.close()
                evals = admin.info("commandstats")["cmdstat_eval"]["calls"]
        finally:
            peer.stop_all()
        assert first.value("honeydue_asynq_queue_read_ok", queue="email") == 1
        assert second.value("asynq_tasks", queue="email", state="pending") == 4
        assert evals == 2 * 4  # 4 scripts x 2 runs: EVAL_RO not tried again
        admin.close()
    finally:
        server.stop()


async def test_postgres_probes_under_the_role_on_pooler_and_direct(
    redis_server: RedisServer, acl_redis: redis.Redis, pg_role: PgRole, pgbouncer: PgBouncer, pg_database: str
) -> None:
    # pgbouncer (auth_type trust) knows only the users in its auth file and logs in to PostgreSQL with the
    # password written there (the test cluster checks it: only the postgres role is trusted): add the role.
    assert pgbouncer.workdir is not None
    pgbouncer.stop()
    with (pgbouncer.workdir / "userlist.txt").open("a") as f:
        f.write(f'"{pg_role.name}" "{pg_role.password}"\n')
    pgbouncer.start()
    cfg = config(redis_server, pg_database, acl=True, role=pg_role, pooler_port=pgbouncer.port)
    deps = Dependencies()
    for endpoint in ("pooler", "direct"):
        probe = PostgresProbe(endpoint, getattr(cfg.postgres, endpoint), deps)
        s = await probe.collect()
        await probe.close()
        assert s.value("honeydue_postgres_up", endpoint=endpoint) == 1
    default = await run_redis_side(config(redis_server, pg_database, acl=False))
    least = await run_redis_side(cfg)
    assert_same(default["residence_cache"], least["residence_cache"])
    assert least["residence_cache"].value("honeydue_residence_ids_cache_entries_stale") == 1


async def test_the_role_can_only_read_the_two_residence_tables(pg_role: PgRole, pg_database: str) -> None:
    with psycopg.connect(dsn(pg_database), user=pg_role.name, password=pg_role.password, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM residence_residence_users").fetchone() == (3,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):  # the role's sessions start read-only
            conn.execute("INSERT INTO residence_residence (owner_id) VALUES (9)")
        conn.execute("SET default_transaction_read_only = off")  # even then the grants refuse writes
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO residence_residence (owner_id) VALUES (9)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM residence_residence_users")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT password FROM auth_user")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE exporter_was_here (id int)")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("10s",)


async def test_probe_queries_run_read_only_with_a_statement_timeout_as_pg_stat_activity_shows(
    redis_server: RedisServer, pg_role: PgRole, pg_database: str
) -> None:
    cfg = config(redis_server, pg_database, acl=False, role=pg_role)
    probe = ResidenceCacheProbe(cfg.residence_cache, cfg, Dependencies())
    slow = probe.truth_query([1], select="SELECT pg_sleep(30)")
    conn = await psycopg.AsyncConnection.connect(dsn(pg_database), user=pg_role.name, password=pg_role.password,
                                                 application_name="honeydue-exporter", autocommit=True)
    started = time.monotonic()
    task = asyncio.create_task(conn.execute(slow.encode()))
    seen: list[tuple[str, str, str]] = []
    with psycopg.connect(dsn(pg_database), autocommit=True) as admin:
        for _ in range(50):
            seen = admin.execute(
                "SELECT usename, query, state FROM pg_stat_activity WHERE application_name = 'honeydue-exporter' "
                "AND usename = %s AND state = 'active'", (pg_role.name,)).fetchall()
            if seen:
                break
            await asyncio.sleep(0.05)
    with pytest.raises(psycopg.errors.QueryCanceled):
        await task
    elapsed = time.monotonic() - started
    await conn.close()
    await probe.close()
    assert seen, "the probe's query never showed in pg_stat_activity"
    query = seen[0][1]
    assert query.startswith("BEGIN READ ONLY; SET LOCAL statement_timeout = 2400;"), query
    assert elapsed < 20  # cancelled by the statement timeout (2.4 s), not by pg_sleep(30) ending
    # The same framing turns a write into an error even for a superuser.
    write = probe.truth_query([1], select="INSERT INTO residence_residence (owner_id) VALUES (9)")
    with psycopg.connect(dsn(pg_database), autocommit=True) as admin, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        admin.execute(write.encode())
    pg = PostgresProbe("direct", cfg.postgres.direct, Dependencies())
    assert pg._query.startswith("BEGIN READ ONLY; SET LOCAL statement_timeout = 3000;")
