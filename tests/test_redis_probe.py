"""Redis probe against a private redis-server: memory, policy, OOM replies, restart-empty, outage."""

from __future__ import annotations

import pytest
import redis as syncredis

from exporter.config import RedisConfig
from exporter.engine import Engine
from exporter.probes.deps import Dependencies
from exporter.probes.redis import RedisProbe
from tests.conftest import BOTH_PROTOCOLS
from tests.helpers.servers import RedisServer, silent_port


def make_probe(url: str, **kw: object) -> tuple[RedisProbe, Engine]:
    probe = RedisProbe(RedisConfig(url=url, interval=2, timeout=1, **kw), Dependencies())  # type: ignore[arg-type]
    return probe, Engine([probe])


@BOTH_PROTOCOLS
async def test_healthy_redis_reports_memory_and_policy(redis_server: RedisServer) -> None:
    redis_server.cli("CONFIG", "SET", "maxmemory", str(64 * 1024 * 1024))
    redis_server.cli("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    probe, engine = make_probe(redis_server.url)
    state = await engine.run_once(probe)
    s = state.snapshot
    assert state.status == "ok"
    assert s.value("honeydue_redis_up") == 1
    assert s.value("honeydue_redis_memory_max_bytes") == 64 * 1024 * 1024
    assert 0 < (s.value("honeydue_redis_memory_used_bytes") or 0) < 64 * 1024 * 1024
    assert s.value("honeydue_redis_maxmemory_policy_info", policy="allkeys-lru") == 1
    assert s.value("honeydue_redis_oom_errors_total") == 0
    # The protocol the probe's connection speaks, as the server reports it: RESP3 unless HELLO is unknown.
    ours = [line for line in redis_server.cli("CLIENT", "LIST").splitlines() if "name=honeydue-exporter" in line]
    assert len(ours) == 1 and f"resp={2 if redis_server.before_6 else 3}" in ours[0].split()
    await engine.stop()


@BOTH_PROTOCOLS
async def test_noeviction_near_maxmemory_shows_policy_ratio_and_oom(redis_server: RedisServer) -> None:
    limit = 4 * 1024 * 1024
    client = syncredis.Redis(port=redis_server.port)
    base = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", base + limit)
    client.config_set("maxmemory-policy", "noeviction")
    blob = b"x" * 16 * 1024
    refused = 0
    for i in range(400):  # 6.4 MB of writes against a 4 MB budget: the tail is refused
        try:
            client.set(f"fill:{i}", blob)
        except syncredis.exceptions.OutOfMemoryError:
            refused += 1
    assert refused > 0
    probe, engine = make_probe(redis_server.url)
    state = await engine.run_once(probe)
    s = state.snapshot
    used, maximum = s.value("honeydue_redis_memory_used_bytes"), s.value("honeydue_redis_memory_max_bytes")
    assert used is not None and maximum is not None
    assert used / maximum > 0.95
    assert s.value("honeydue_redis_maxmemory_policy_info", policy="noeviction") == 1
    assert s.value("honeydue_redis_oom_errors_total") == refused
    await engine.stop()


@BOTH_PROTOCOLS
async def test_restart_without_data_shows_in_uptime_and_registry(redis_server: RedisServer) -> None:
    """What RedisRestartedEmpty reads from the TSDB: uptime back near zero and Asynq's registry emptied. The
    probe keeps nothing between runs, so a probe created after the restart (an exporter restart) sees the same."""
    redis_server.cli("SADD", "asynq:queues", "default", "email")
    probe, engine = make_probe(redis_server.url)
    first = await engine.run_once(probe)
    assert first.snapshot.value("honeydue_redis_asynq_queues") == 2
    redis_server.stop()
    down = await engine.run_once(probe)
    assert down.status == "failing" and down.reason == "refused"
    assert down.snapshot.value("honeydue_redis_up") == 0
    assert down.snapshot.value("honeydue_redis_memory_used_bytes") is None  # nothing half-left
    redis_server.start()  # --save "": it comes back empty, like a pod on a node without its PVC
    back = await engine.run_once(probe)
    assert back.status == "ok"
    assert back.snapshot.value("honeydue_redis_asynq_queues") == 0
    assert (back.snapshot.value("honeydue_redis_uptime_seconds") or 0) < 10
    fresh, fresh_engine = make_probe(redis_server.url)  # a new exporter process sees the same values
    again = await fresh_engine.run_once(fresh)
    assert again.snapshot.value("honeydue_redis_asynq_queues") == 0
    assert (again.snapshot.value("honeydue_redis_uptime_seconds") or 0) < 10
    assert "honeydue_redis_restarted_empty" not in {f.name for f in again.snapshot.families()}
    await engine.stop()
    await fresh_engine.stop()


async def test_silent_redis_times_out() -> None:
    with silent_port() as silent:
        probe, engine = make_probe(f"redis://127.0.0.1:{silent.port}/0")
        state = await engine.run_once(probe)
    assert state.status == "failing" and state.reason == "timeout"
    assert state.duration < 1.5
    await engine.stop()


@pytest.mark.parametrize("before_6", [False, True], ids=["resp3", "resp2"])
async def test_wrong_password_is_an_auth_failure(before_6: bool) -> None:
    server = RedisServer(args=("--requirepass", "s3cret-redis-pw"), before_6=before_6)
    server.start()
    try:
        probe, engine = make_probe(server.url, password="wrong-password")
        state = await engine.run_once(probe)
        assert state.status == "failing" and state.reason == "auth"
        assert "wrong-password" not in state.detail
        probe2, engine2 = make_probe(server.url, password="s3cret-redis-pw")
        assert (await engine2.run_once(probe2)).status == "ok"
        await engine.stop()
        await engine2.stop()
    finally:
        server.stop()


async def test_protocol_2_can_be_set_for_a_proxy_that_mishandles_hello(redis_server: RedisServer) -> None:
    probe, engine = make_probe(redis_server.url, protocol=2)
    state = await engine.run_once(probe)
    assert state.status == "ok", state.detail
    ours = [line for line in redis_server.cli("CLIENT", "LIST").splitlines() if "name=honeydue-exporter" in line]
    assert len(ours) == 1 and "resp=2" in ours[0].split()
    assert state.snapshot.value("honeydue_redis_maxmemory_policy_info", policy="noeviction") == 1
    await engine.stop()
