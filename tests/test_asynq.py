"""Asynq probe against a real redis-server holding state written the way Asynq writes it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from redis.asyncio.connection import Connection

from exporter.config import AsynqConfig, Config
from exporter.drill.asynq_state import AsynqState, CronEntry, key
from exporter.engine import Engine
from exporter.probes.asynq import AsynqProbe
from exporter.probes.deps import Dependencies
from exporter.samples import Samples
from tests.helpers.asynq_peer import AsynqPeer
from tests.helpers.servers import RedisServer


class CountingConnection(Connection):
    """Counts writes to the socket: one per command sent alone, one per pipeline."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        await super().send_packed_command(command, check_health)


@pytest.fixture
def state(redis_server: RedisServer) -> Iterator[AsynqState]:
    client = redis.Redis(port=redis_server.port)
    yield AsynqState(client)
    client.close()


@pytest.fixture
async def probe(redis_server: RedisServer) -> AsyncIterator[AsynqProbe]:
    p = make_probe(redis_server)
    yield p
    await p.close()


def make_probe(server: RedisServer, **kw: Any) -> AsynqProbe:
    config = Config(redis={"url": server.url})  # type: ignore[arg-type]
    return AsynqProbe(AsynqConfig(interval=2, timeout=1.5, **kw), config, Dependencies())


def v(s: Samples, name: str, **labels: str) -> float | None:
    return s.value(name, **labels)


async def test_healthy_worker_every_metric_equals_what_was_written(state: AsynqState, probe: AsynqProbe) -> None:
    now = time.time()
    # email: 3 pending (oldest enqueued 120 s ago), 2 active with live leases, 1 done, 1 retry, 1 archived.
    ids = [state.enqueue("email", now - 120 + i) for i in range(8)]
    taken = [state.dequeue("email", lease_expiry=now + 30) for _ in range(5)]
    assert taken == ids[:5]
    state.done("email", ids[0], now - 10)
    state.retry("email", ids[1], now - 5, retry_at=now + 60)
    state.archive("email", ids[2], now - 4)
    state.schedule("email", now + 3600)
    # default: 1 pending just now, nothing else; critical: empty but registered.
    state.enqueue("default", now - 2)
    state.r.sadd("asynq:queues", "critical")
    state.heartbeat("worker-7d9f", 1, "a1b2", at=now - 1, concurrency=10,
                    queues={"critical": 6, "default": 3, "email": 1}, active_workers=2)
    daily = CronEntry(spec="0 9 * * *", task_type="digest:daily", next_at=now + 600, prev_at=now - 86400 + 600)
    state.scheduler_heartbeat("sched-1", [daily], at=now - 1)
    state.record_enqueue(daily, now - 86400 + 600)

    s = await probe.collect()

    assert v(s, "honeydue_asynq_up") == 1
    assert v(s, "honeydue_asynq_queues") == 3
    expected = {"pending": 3, "active": 2, "scheduled": 1, "retry": 1, "archived": 1, "completed": 0}
    for st, count in expected.items():
        assert v(s, "asynq_tasks", queue="email", state=st) == count, st
    assert v(s, "asynq_queue_size", queue="email") == sum(expected.values())
    # The oldest pending task is ids[5], enqueued at now - 115.
    assert v(s, "asynq_queue_latency_seconds", queue="email") == pytest.approx(115, abs=1)
    # The cron enqueue pushed a second task to default after the first: the oldest by position (index -1,
    # as Asynq measures) is still the one enqueued 2 s ago.
    assert v(s, "asynq_tasks", queue="default", state="pending") == 2
    assert v(s, "asynq_queue_latency_seconds", queue="default") == pytest.approx(2, abs=1)
    assert v(s, "asynq_queue_latency_seconds", queue="critical") == 0
    assert v(s, "asynq_tasks_processed_total", queue="email") == 3  # done + retry + archive
    assert v(s, "asynq_tasks_failed_total", queue="email") == 2
    assert v(s, "honeydue_asynq_tasks_processed_today", queue="email") == 3
    assert v(s, "honeydue_asynq_tasks_failed_today", queue="email") == 2
    assert v(s, "asynq_tasks_processed_total", queue="critical") == 0
    assert v(s, "asynq_queue_paused", queue="email") == 0
    assert v(s, "honeydue_asynq_stuck_active_tasks", queue="email", reason="lease_expired") == 0
    assert v(s, "honeydue_asynq_stuck_active_tasks", queue="email", reason="no_lease") == 0
    assert v(s, "honeydue_asynq_queue_read_ok", queue="email") == 1
    assert v(s, "honeydue_asynq_servers_registered") == 1
    assert v(s, "honeydue_asynq_servers_live", status="active") == 1
    assert v(s, "honeydue_asynq_servers_live", status="stopped") == 0
    assert v(s, "honeydue_asynq_server_concurrency", server="worker-7d9f:1:a1b2") == 10
    assert v(s, "honeydue_asynq_server_active_workers", server="worker-7d9f:1:a1b2") == 2
    assert v(s, "honeydue_asynq_server_queue_priority", server="worker-7d9f:1:a1b2", queue="critical") == 6
    assert v(s, "honeydue_asynq_server_queue_priority", server="worker-7d9f:1:a1b2", queue="email") == 1
    assert v(s, "honeydue_asynq_servers_undecodable") == 0
    assert v(s, "honeydue_asynq_schedulers_live") == 1
    labels = {"task_type": "digest:daily", "schedule": "0 9 * * *"}
    assert v(s, "honeydue_asynq_cron_last_enqueue_timestamp_seconds", **labels) == int(now - 86400 + 600)
    assert v(s, "honeydue_asynq_cron_interval_seconds", **labels) == pytest.approx(86400, abs=1)


async def test_worker_dies_heartbeats_expire_and_backlog_grows(state: AsynqState, probe: AsynqProbe) -> None:
    now = time.time()
    for i in range(3):
        state.enqueue("default", now - 60 + i)
    task = state.dequeue("default", lease_expiry=now + 30)
    assert task is not None
    state.done("default", task, now - 30)
    # The last heartbeat was 25 s ago: its 10 s expiry passed, but the member is still in the zset.
    state.heartbeat("worker-1", 1, "dead", at=now - 25, concurrency=10, queues={"default": 1})
    s1 = await probe.collect()
    assert v(s1, "honeydue_asynq_servers_registered") == 1
    assert v(s1, "honeydue_asynq_servers_live", status="active") == 0
    assert v(s1, "honeydue_asynq_server_concurrency", server="worker-1:1:dead") is None
    assert v(s1, "asynq_tasks", queue="default", state="pending") == 2
    for i in range(4):
        state.enqueue("default", time.time() + i * 0.001)
    s2 = await probe.collect()
    assert v(s2, "asynq_tasks", queue="default", state="pending") == 6
    assert v(s2, "asynq_tasks_processed_total", queue="default") == 1
    assert v(s2, "asynq_queue_latency_seconds", queue="default") == pytest.approx(time.time() - (now - 59), abs=1)


async def test_crashed_worker_leaves_expired_leases_and_leaseless_tasks(state: AsynqState, probe: AsynqProbe) -> None:
    now = time.time()
    for i in range(5):
        state.enqueue("email", now - 300 + i)
    expired = [state.dequeue("email", lease_expiry=now - 90) for _ in range(3)]  # lease ran out 90 s ago
    state.dequeue("email", lease_expiry=now + 25)  # still held by a live worker
    leaseless = state.dequeue("email", lease_expiry=now + 25)
    state.r.zrem(key("email", "lease"), leaseless)  # an active id the recoverer can never see
    s = await probe.collect()
    assert len(expired) == 3
    assert v(s, "asynq_tasks", queue="email", state="active") == 5
    assert v(s, "honeydue_asynq_stuck_active_tasks", queue="email", reason="lease_expired") == 3
    assert v(s, "honeydue_asynq_stuck_active_tasks", queue="email", reason="no_lease") == 1


async def test_cron_entry_that_stopped_firing_keeps_its_old_last_enqueue(state: AsynqState, probe: AsynqProbe) -> None:
    now = time.time()
    every_minute = CronEntry(spec="@every 1m", task_type="reminders:scan", next_at=now + 20, prev_at=now - 40)
    hourly = CronEntry(spec="0 * * * *", task_type="cleanup:tokens", next_at=now + 1800, prev_at=now - 1800)
    for minutes_ago in (63, 62, 61):  # it enqueued every minute, then stopped an hour ago
        state.record_enqueue(every_minute, now - minutes_ago * 60)
    state.record_enqueue(hourly, now - 1800)
    state.scheduler_heartbeat("sched-a", [every_minute, hourly], at=now - 2)
    # A second scheduler (e.g. a second worker replica) registered the same entry under another id.
    twin = CronEntry(spec="@every 1m", task_type="reminders:scan", next_at=now + 20, prev_at=now - 40)
    state.record_enqueue(twin, now - 3 * 3600)
    state.scheduler_heartbeat("sched-b", [twin], at=now - 2)
    # A dead scheduler's entries are not read.
    state.scheduler_heartbeat("sched-dead", [CronEntry("@every 1s", "gone:task", next_at=now)], at=now - 60)
    s = await probe.collect()
    assert v(s, "honeydue_asynq_schedulers_registered") == 3
    assert v(s, "honeydue_asynq_schedulers_live") == 2
    m = "honeydue_asynq_cron_last_enqueue_timestamp_seconds"
    assert v(s, m, task_type="reminders:scan", schedule="@every 1m") == int(now - 61 * 60)
    assert v(s, m, task_type="cleanup:tokens", schedule="0 * * * *") == int(now - 1800)
    assert v(s, m, task_type="gone:task", schedule="@every 1s") is None
    assert v(s, "honeydue_asynq_cron_interval_seconds", task_type="reminders:scan", schedule="@every 1m") == 60
    assert v(s, "honeydue_asynq_scheduler_entries_undecodable") == 0


async def test_paused_queue(state: AsynqState, probe: AsynqProbe) -> None:
    now = time.time()
    state.enqueue("email", now - 30)
    state.enqueue("default", now - 30)
    state.pause("email", now - 20)
    assert state.dequeue("email", lease_expiry=now + 30) is None  # Asynq does not hand out paused tasks
    s = await probe.collect()
    assert v(s, "asynq_queue_paused", queue="email") == 1
    assert v(s, "asynq_queue_paused", queue="default") == 0
    assert v(s, "asynq_tasks", queue="email", state="pending") == 1


async def test_malformed_queue_is_reported_alone(state: AsynqState, probe: AsynqProbe) -> None:
    now = time.time()
    state.enqueue("good", now - 10)
    state.r.sadd("asynq:queues", "broken", "badcount", "badtask")
    state.r.set(key("broken", "pending"), "not a list")  # WRONGTYPE for LLEN and LINDEX
    state.r.rpush(key("broken", "archived"), "x")  # a list where a zset belongs
    state.r.set(key("badcount", "processed"), "many")  # not an integer
    state.r.lpush(key("badtask", "pending"), "t1")
    state.r.set(key("badtask", "t:t1"), "not a hash")  # the task hash is a string
    # A live server whose ServerInfo is not protobuf, next to a good one.
    state.r.set("asynq:servers:{h:1:garbage}", b"\xff\xff\xff")
    state.r.zadd("asynq:servers", {"asynq:servers:{h:1:garbage}": now + 10})
    state.heartbeat("h", 2, "good", at=now, concurrency=4, queues={"good": 1})
    s = await probe.collect()
    assert v(s, "honeydue_asynq_up") == 1
    assert v(s, "honeydue_asynq_queue_read_ok", queue="good") == 1
    assert v(s, "asynq_tasks", queue="good", state="pending") == 1
    assert v(s, "asynq_queue_latency_seconds", queue="good") == pytest.approx(10, abs=1)
    assert v(s, "honeydue_asynq_queue_read_ok", queue="broken") == 0
    assert v(s, "honeydue_asynq_queue_error_info", queue="broken", key="pending", reason="wrong_type") == 1
    assert v(s, "honeydue_asynq_queue_error_info", queue="broken", key="archived", reason="wrong_type") == 1
    assert v(s, "asynq_tasks", queue="broken", state="pending") is None
    assert v(s, "asynq_tasks", queue="broken", state="retry") == 0  # the readable keys still report
    assert v(s, "asynq_queue_size", queue="broken") is None
    assert v(s, "honeydue_asynq_queue_read_ok", queue="badcount") == 0
    assert v(s, "honeydue_asynq_queue_error_info", queue="badcount", key="processed", reason="bad_value") == 1
    assert v(s, "asynq_tasks_processed_total", queue="badcount") is None
    assert v(s, "honeydue_asynq_queue_error_info", queue="badtask", key="task", reason="wrong_type") == 1
    assert v(s, "asynq_tasks", queue="badtask", state="pending") == 1
    assert v(s, "honeydue_asynq_servers_undecodable") == 1
    assert v(s, "honeydue_asynq_servers_live", status="active") == 1


async def test_two_round_trips_per_cycle_whatever_the_queue_count(
    redis_server: RedisServer, state: AsynqState
) -> None:
    now = time.time()
    sends: dict[int, int] = {}
    evals: dict[int, int] = {}
    for n in (1, 5, 25):
        state.r.flushdb()
        for q in range(n):
            for i in range(3):
                state.enqueue(f"q{q}", now - i)
        probe = make_probe(redis_server)
        probe._client.connection_pool.connection_class = CountingConnection
        await probe.collect()  # first cycle also opens the connection (HELLO / CLIENT SETNAME)
        state.r.config_resetstat()
        CountingConnection.sends = 0
        s = await probe.collect()
        sends[n] = CountingConnection.sends
        stats = state.r.info("commandstats")
        evals[n] = stats["cmdstat_eval_ro"]["calls"]  # read-only scripts (Redis >= 7.0)
        assert stats["cmdstat_smembers"]["calls"] == 1
        assert "cmdstat_keys" not in stats and "cmdstat_scan" not in stats
        assert v(s, "honeydue_asynq_queues") == n
        await probe.close()
    assert sends == {1: 2, 5: 2, 25: 2}  # SMEMBERS + one pipeline
    assert evals == {1: 3, 5: 7, 25: 27}  # one per queue + servers + schedulers, all inside that pipeline


async def test_redis_down_is_a_value(redis_server: RedisServer) -> None:
    probe = make_probe(redis_server)
    engine = Engine([probe])  # type: ignore[list-item]
    assert (await engine.run_once(probe)).snapshot.value("honeydue_asynq_up") == 1
    redis_server.stop()
    state = await engine.run_once(probe)
    assert state.status == "failing" and state.reason in ("unavailable", "refused")  # pooled socket, then port
    assert state.snapshot.value("honeydue_asynq_up") == 0
    assert state.snapshot.value("asynq_tasks") is None
    redis_server.start()
    assert (await engine.run_once(probe)).snapshot.value("honeydue_asynq_up") == 1
    await engine.stop()


def test_asynq_follows_redis_enabled_unless_set() -> None:
    from exporter.probes import asynq
    deps = Dependencies()
    assert [p.name for p in asynq.build(Config(), deps)] == ["asynq"]
    assert asynq.build(Config(redis={"enabled": False}), deps) == []  # type: ignore[arg-type]
    cfg = Config(redis={"enabled": False}, asynq={"enabled": True})  # type: ignore[arg-type]
    assert [p.name for p in asynq.build(cfg, deps)] == ["asynq"]


@pytest.mark.slow
def test_exporter_reports_the_worker_dying_within_one_interval(exporter_factory, redis_server: RedisServer,
                                                               state: AsynqState) -> None:
    """The real `python -m exporter run`: a live worker, then its heartbeats stop while tasks arrive."""
    state.enqueue("email", time.time() - 3)
    exporter = exporter_factory(env={
        "HONEYDUE_REDIS__URL": redis_server.url,
        "HONEYDUE_POSTGRES__POOLER__ENABLED": "false",
        "HONEYDUE_POSTGRES__DIRECT__ENABLED": "false",
        "HONEYDUE_ASYNQ__INTERVAL": "1",
        "HONEYDUE_ASYNQ__TIMEOUT": "0.8",
    })
    exporter.start()
    # The heartbeat is written once the exporter runs, so a slow start cannot expire it unseen.
    state.heartbeat("w", 1, "e2e", at=time.time(), ttl=6, concurrency=5, queues={"email": 1})
    exporter.wait_for("honeydue_asynq_servers_live", 1, 5, status="active")
    # No further heartbeat: the score (now + 6 s) passes; meanwhile the backlog grows.
    for i in range(3):
        state.enqueue("email", time.time() + i * 0.001)
    exporter.wait_for("asynq_tasks", 4, 5, queue="email", state="pending")
    exporter.wait_for("honeydue_asynq_servers_live", 0, 20, status="active")
    from tests.helpers.exporter import value
    assert value(exporter.metrics(), "honeydue_asynq_servers_registered") == 1


# --- the real Asynq (tests/peers/cmd/asynqpeer): the exporter's metrics equal Asynq's own Inspector -------

@pytest.fixture
def peer(redis_server: RedisServer) -> Iterator[AsynqPeer]:
    p = AsynqPeer(f"127.0.0.1:{redis_server.port}")
    yield p
    p.stop_all()


async def test_metrics_equal_the_real_asynq_inspector(peer: AsynqPeer, probe: AsynqProbe) -> None:
    """State written by Asynq itself: pending, scheduled, a worker that fails tasks into retry and archive."""
    peer.enqueue("email", 4)
    peer.enqueue("email", 2, delay="1h")
    peer.enqueue("default", 3, do="fail", max_retry=0)  # failed with no retry left: archived
    peer.enqueue("critical", 1, do="fail", max_retry=5)  # failed once: waits in retry
    peer.start("worker", "-queues", "default=2,critical=1", "-concurrency", "2")
    deadline = time.monotonic() + 30
    while True:
        truth = {q["queue"]: q for q in peer.inspect()["queues"]}
        if truth["default"]["states"]["archived"] == 3 and truth["critical"]["failed_total"] >= 1:
            break
        assert time.monotonic() < deadline, truth
        time.sleep(0.2)
    peer.pause("critical")  # the critical task stays in retry (its next run is a second away): stop it there
    peer.stop_all()
    truth = {q["queue"]: q for q in peer.inspect()["queues"]}

    s = await probe.collect()

    assert v(s, "honeydue_asynq_queues") == len(truth)
    for queue, q in truth.items():
        for state, count in q["states"].items():
            if state == "aggregating":
                continue  # not exported (docs/asynq.md)
            assert v(s, "asynq_tasks", queue=queue, state=state) == count, (queue, state)
        assert v(s, "asynq_queue_size", queue=queue) == q["size"] - q["states"]["aggregating"], queue
        assert v(s, "asynq_tasks_processed_total", queue=queue) == q["processed_total"], queue
        assert v(s, "asynq_tasks_failed_total", queue=queue) == q["failed_total"], queue
        assert v(s, "honeydue_asynq_tasks_processed_today", queue=queue) == q["processed"], queue
        assert v(s, "honeydue_asynq_tasks_failed_today", queue=queue) == q["failed"], queue
        assert v(s, "asynq_queue_paused", queue=queue) == (1 if q["paused"] else 0), queue
        assert v(s, "asynq_queue_latency_seconds", queue=queue) == pytest.approx(q["latency_seconds"], abs=1), queue
    assert truth["email"]["states"]["pending"] == 4 and truth["email"]["states"]["scheduled"] == 2
    assert truth["default"]["states"]["archived"] == 3
