"""The Asynq and cache probes' exposition passes `promtool check metrics`.

That every alert has promtool cases both ways and uses declared metrics is checked for all
families in tests/test_rules.py."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import psycopg
import redis

from exporter.config import Config
from exporter.engine import Engine
from exporter.exposition import Exposition
from exporter.probes.asynq import AsynqProbe
from exporter.probes.cache import ResidenceCacheProbe
from exporter.probes.deps import Dependencies
from tests.helpers.asynq_peer import AsynqPeer
from tests.helpers.servers import RedisServer

REPO = Path(__file__).resolve().parent.parent


async def test_exposition_passes_promtool_check_metrics(
    promtool: str, redis_server: RedisServer, pg_database: str
) -> None:
    # The real Asynq: a pending email, a live worker (serving another queue), a cron entry that has enqueued.
    peer = AsynqPeer(f"127.0.0.1:{redis_server.port}")
    r = redis.Redis(port=redis_server.port)
    try:
        peer.enqueue("email", 1)
        peer.start("worker", "-queues", "default=1")
        peer.start("scheduler", "-heartbeat", "1s", "-entry", "@every 1s|reminders:scan|default")
        deadline = time.monotonic() + 30
        while not ((t := peer.inspect())["servers"] and t["scheduler_entries"]
                   and t["scheduler_entries"][0]["events"] and t["scheduler_entries"][0]["prev"]):
            assert time.monotonic() < deadline, t
            time.sleep(0.2)
        body = await _render(redis_server, pg_database, r)
    finally:
        peer.stop_all()
        r.close()
    for name in (b"asynq_tasks_processed_total", b"honeydue_residence_ids_cache_entries_stale 1.0",
                 b"honeydue_asynq_server_concurrency{", b"honeydue_asynq_cron_last_enqueue_timestamp_seconds{"):
        assert name in body, name
    out = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert out.returncode == 0 and out.stdout == b"" and out.stderr == b"", out.stdout + out.stderr


async def _render(redis_server: RedisServer, pg_database: str, r: redis.Redis) -> bytes:
    r.set("residence_ids:1", json.dumps([10]), ex=300)
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={pg_database}", autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS residence_residence (id bigint PRIMARY KEY, owner_id bigint)")
        conn.execute("CREATE TABLE IF NOT EXISTS residence_residence_users (residence_id bigint, user_id bigint)")
    config = Config(  # type: ignore[arg-type]
        redis={"url": redis_server.url},
        postgres={"pooler": {"dbname": pg_database, "sslmode": "disable"}},
        residence_cache={"enabled": True, "interval": 2, "timeout": 1.5},
    )
    probes = [AsynqProbe(config.asynq, config, Dependencies()),
              ResidenceCacheProbe(config.residence_cache, config, Dependencies())]
    engine = Engine(probes)
    for probe in probes:
        assert (await engine.run_once(probe)).status == "ok"
    body = Exposition(engine).render()
    await engine.stop()
    return body
