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
from exporter.drill.asynq_state import AsynqState, CronEntry
from exporter.engine import Engine
from exporter.exposition import Exposition
from exporter.probes.asynq import AsynqProbe
from exporter.probes.cache import ResidenceCacheProbe
from exporter.probes.deps import Dependencies
from tests.helpers.servers import RedisServer

REPO = Path(__file__).resolve().parent.parent


async def test_exposition_passes_promtool_check_metrics(
    promtool: str, redis_server: RedisServer, pg_database: str
) -> None:
    now = time.time()
    state = AsynqState(redis.Redis(port=redis_server.port))
    state.enqueue("email", now - 5)
    state.heartbeat("w", 1, "s", at=now, concurrency=2, queues={"email": 1})
    entry = CronEntry("@every 1m", "reminders:scan", next_at=now + 30, prev_at=now - 30)
    state.scheduler_heartbeat("sch", [entry], at=now)
    state.record_enqueue(entry, now - 30)
    state.r.set("residence_ids:1", json.dumps([10]), ex=300)
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
    engine = Engine(probes)  # type: ignore[arg-type]
    for probe in probes:
        assert (await engine.run_once(probe)).status == "ok"
    body = Exposition(engine).render()
    await engine.stop()
    state.r.close()
    assert b"asynq_tasks_processed_total" in body and b"honeydue_residence_ids_cache_entries_stale 1.0" in body
    out = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert out.returncode == 0 and out.stdout == b"" and out.stderr == b"", out.stdout + out.stderr
