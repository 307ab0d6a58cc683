"""The Asynq probe against the real Asynq: the state comes from Asynq's own client, worker server and scheduler
(tests/peers/cmd/asynqpeer, built for every supported Asynq version), and in every scenario each Asynq metric
must equal what Asynq's own Inspector says (tests/helpers/asynq_peer.py: exact for counts, within 1 s for
latency and timestamps). Only state that real Asynq cannot produce is written by hand (malformed keys).

Asynq's clocks are real here: a server's heartbeat is written every 5 s and expires after 10 s; a lease lasts
30 s; the recoverer takes tasks whose lease expired at least 30 s ago (at a server's start, then every minute).
The SIGKILL scenario waits for exactly those moments, for both Asynq versions at once. Where a scheduler's
heartbeat or a worker's retry delay is an option of Asynq's, the tests set it short.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from testbed import asynq_state

from exporter.config import AsynqConfig, Config
from exporter.engine import Engine
from exporter.probes.asynq import AsynqProbe, queue_key
from exporter.probes.deps import Dependencies
from exporter.samples import Samples
from tests.helpers.asynq_peer import VERSIONS, AsynqPeer, check, count_round_trips, cycle_cost, snapshot, write_table
from tests.helpers.servers import RedisServer

Truth = dict[str, Any]


def make_probe(server: RedisServer, **kw: Any) -> AsynqProbe:
    config = Config(redis={"url": server.url})  # type: ignore[arg-type]
    return AsynqProbe(AsynqConfig(interval=2, timeout=1.5, **kw), config, Dependencies())


@pytest.fixture(scope="module", autouse=True)
def _table() -> Iterator[None]:
    """The metric-vs-Inspector table of every scenario, to $HONEYDUE_ASYNQ_TABLE when set."""
    yield
    write_table()


@pytest.fixture
async def probe(redis_server: RedisServer) -> AsyncIterator[AsynqProbe]:
    p = make_probe(redis_server)
    yield p
    await p.close()


@pytest.fixture(params=list(VERSIONS))
def peer(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[AsynqPeer]:
    p = AsynqPeer(f"127.0.0.1:{redis_server.port}", request.param)
    assert p.run("version").strip() == request.param  # the binary is built against the version it claims
    yield p
    p.stop_all()


def until(peer: AsynqPeer, cond: Callable[[Truth], bool], what: str, timeout: float = 40.0) -> Truth:
    """Poll the Inspector until `cond` holds; fail with the last view after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        truth = peer.inspect()
        if cond(truth):
            return truth
        if time.monotonic() > deadline:
            raise AssertionError(f"Asynq {peer.version}: not within {timeout:g}s: {what}\n{truth}")
        time.sleep(0.2)


def q(truth: Truth, name: str) -> dict[str, Any]:
    """One queue of the Inspector's view (empty counts when Asynq does not list it)."""
    for queue in truth["queues"]:
        if queue["queue"] == name:
            return dict(queue)
    return {"states": {}, "processed_total": 0, "failed_total": 0, "groups": 0, "orphaned": 0}


def state(truth: Truth, name: str, st: str) -> int:
    return int(q(truth, name)["states"].get(st, 0))


async def compare(scenario: str, peer: AsynqPeer, probe: AsynqProbe, frozen: bool = False) -> tuple[Samples, Truth]:
    """Snapshot (every peer process SIGSTOPped while `frozen`) and check every metric against the Inspector."""
    if frozen:
        with peer.frozen():
            samples, truth = await snapshot(peer, probe)
    else:
        samples, truth = await snapshot(peer, probe)
    check(scenario, peer, samples, truth)
    return samples, truth


# --- the scenarios: every Asynq metric equals Asynq's own Inspector ---------------------------------------

async def test_idle(peer: AsynqPeer, probe: AsynqProbe) -> None:
    """Work done, nothing waiting; a cron entry that has not fired yet (no history, interval 0)."""
    peer.enqueue("default", 2)
    peer.enqueue("critical", 1)
    peer.start("worker", "-queues", "critical=6,default=3,email=1", "-concurrency", "3")
    peer.start("scheduler", "-heartbeat", "1s", "-entry", "0 3 * * *|digest:nightly|default")
    truth = until(peer, lambda t: q(t, "default")["processed_total"] == 2 and q(t, "critical")["processed_total"] == 1
                  and len(t["servers"]) == 1 and len(t["scheduler_entries"]) == 1, "tasks processed, worker and cron up")
    assert truth["scheduler_entries"][0]["prev"] == 0  # never ran
    s, truth = await compare("idle", peer, probe)
    assert s.value("honeydue_asynq_servers_live", status="active") == 1
    assert s.value("honeydue_asynq_cron_interval_seconds", task_type="digest:nightly", schedule="0 3 * * *") == 0
    assert s.value("honeydue_asynq_cron_last_enqueue_timestamp_seconds", task_type="digest:nightly") is None


async def test_steady_load(peer: AsynqPeer, probe: AsynqProbe) -> None:
    """Clients enqueue all the time, tasks succeed, fail, panic, retry and get archived; compared frozen."""
    peer.start("worker", "-queues", "critical=3,default=2,email=1", "-concurrency", "4", "-delayed-check", "1s")
    peer.start("enqueue", "-queue", "email", "-every", "50ms", "-count", "2")
    peer.start("enqueue", "-queue", "email", "-every", "100ms", "-do", "block", "-for", "300ms")
    peer.start("enqueue", "-queue", "default", "-every", "100ms", "-do", "fail", "-max-retry", "1")
    peer.start("enqueue", "-queue", "critical", "-every", "200ms", "-do", "panic", "-max-retry", "0")
    until(peer, lambda t: q(t, "email")["processed_total"] >= 40 and state(t, "default", "archived") >= 3
          and state(t, "critical", "archived") >= 2, "processed, failed, panicked, archived under load")
    _, truth = await compare("steady load", peer, probe, frozen=True)
    assert q(truth, "default")["failed_total"] >= 3 and q(truth, "email")["processed_total"] >= 40


@dataclass
class Env:
    """One Asynq version against its own Redis: the SIGKILL scenario runs every version at once."""

    peer: AsynqPeer
    probe: AsynqProbe
    redis: RedisServer


@pytest.fixture
async def envs() -> AsyncIterator[list[Env]]:
    out: list[Env] = []
    try:
        for version in VERSIONS:
            server = RedisServer()
            server.start()
            out.append(Env(AsynqPeer(f"127.0.0.1:{server.port}", version), make_probe(server), server))
        yield out
    finally:
        for env in out:
            env.peer.stop_all()
            await env.probe.close()
            env.redis.stop()


async def test_worker_sigkilled_mid_task(envs: list[Env]) -> None:
    """SIGKILL with tasks in hand: the heartbeat expires (no live worker), then the lease (stuck active tasks),
    then a new worker's recoverer moves them to retry. Real Asynq timings: about a minute."""
    for e in envs:
        e.peer.start("worker", "-queues", "email=1", "-concurrency", "5")
        e.peer.enqueue("email", 3, do="block")
        e.peer.enqueue("email", 2, do="block", delay="1h")
    workers = {}
    for e in envs:
        until(e.peer, lambda t: state(t, "email", "active") == 3 and len(t["servers"][0]["active_workers"]) == 3,
              "three tasks in hand")
        await compare("sigkill: busy worker", e.peer, e.probe)
        workers[e.peer.version] = e.peer.started[0]
    for e in envs:
        e.peer.kill(workers[e.peer.version])
    for e in envs:  # heartbeat expiry: 10 s after the last one (written every 5 s)
        until(e.peer, lambda t: not t["servers"], "the killed worker's heartbeat expired", timeout=30)
        s, truth = await compare("sigkill: heartbeat expired", e.peer, e.probe)
        if q(truth, "email")["orphaned"] == 0:  # leases still valid: the worker is gone, its tasks not yet stuck
            assert s.value("honeydue_asynq_stuck_active_tasks", queue="email", reason="lease_expired") == 0
        assert s.value("honeydue_asynq_servers_live", status="active") == 0
        assert s.value("asynq_tasks", queue="email", state="active") == 3
    expired_at: dict[str, float] = {}
    for e in envs:  # lease expiry: 30 s after the last extension
        until(e.peer, lambda t: q(t, "email")["orphaned"] == 3, "the leases expired", timeout=60)
        s, _ = await compare("sigkill: lease expired", e.peer, e.probe)
        assert s.value("honeydue_asynq_stuck_active_tasks", queue="email", reason="lease_expired") == 3
        with redis.Redis(port=e.redis.port) as r:
            expired_at[e.peer.version] = max(score for _, score in r.zrange(queue_key("email", "lease"), 0, -1,
                                                                            withscores=True))
    # The recoverer (at a server's start, then every minute) takes leases expired at least 30 s ago: start the
    # new worker as soon as that holds. Its retry delay is long so the recovered tasks stay where we look.
    wait = max(expired_at.values()) + 31 - time.time()
    if wait > 0:
        time.sleep(wait)
    for e in envs:
        e.peer.start("worker", "-queues", "email=1", "-concurrency", "5", "-retry-delay", "1h")
    for e in envs:
        until(e.peer, lambda t: state(t, "email", "retry") == 3 and len(t["servers"]) == 1, "recovered into retry")
        s, truth = await compare("sigkill: recovered by a new worker", e.peer, e.probe)
        assert s.value("honeydue_asynq_stuck_active_tasks", queue="email", reason="lease_expired") == 0
        assert s.value("asynq_tasks", queue="email", state="active") == 0
        assert q(truth, "email")["failed_total"] == 3  # Asynq counts a lease expiry as a failure


async def test_graceful_stop(peer: AsynqPeer, probe: AsynqProbe) -> None:
    """SIGTSTP: status "stopped", no new tasks taken; SIGTERM: Asynq's Shutdown requeues the unfinished tasks
    (without pending_since, so Asynq's latency is 0) and removes the server."""
    worker = peer.start("worker", "-queues", "email=1", "-concurrency", "2", "-shutdown-timeout", "1s")
    peer.enqueue("email", 2, do="block")
    until(peer, lambda t: state(t, "email", "active") == 2, "both workers busy")
    peer.enqueue("email", 3)
    peer.signal(worker, signal.SIGTSTP)
    until(peer, lambda t: t["servers"] and t["servers"][0]["status"] == "stopped", "status stopped (next heartbeat)")
    s, _ = await compare("graceful stop: stopped", peer, probe)
    assert s.value("honeydue_asynq_servers_live", status="stopped") == 1
    assert s.value("asynq_tasks", queue="email", state="pending") == 3
    peer.stop(worker)
    s, truth = await compare("graceful stop: shut down", peer, probe)
    assert truth["servers"] == [] and state(truth, "email", "pending") == 5
    assert q(truth, "email")["latency_seconds"] == 0  # the requeued tasks, oldest by position, carry none
    assert s.value("honeydue_asynq_servers_registered") == 0  # Shutdown removed it, nothing to expire


async def test_scheduler_killed(peer: AsynqPeer, probe: AsynqProbe) -> None:
    """A running cron, then its scheduler SIGKILLed: the entries expire with its heartbeat and cron stops.
    The exporter then has no cron series (the entries are gone), only schedulers_live 0."""
    peer.start("worker", "-queues", "default=1")
    sched = peer.start("scheduler", "-heartbeat", "1s", "-entry", "@every 1s|cron:tick|default")
    until(peer, lambda t: len(t["scheduler_entries"]) == 1 and len(t["scheduler_entries"][0]["events"]) >= 2
          and q(t, "default")["processed_total"] >= 2, "cron enqueuing, worker processing")
    s, _ = await compare("scheduler running", peer, probe, frozen=True)
    assert s.value("honeydue_asynq_schedulers_live") == 1
    assert s.value("honeydue_asynq_cron_interval_seconds", task_type="cron:tick", schedule="@every 1s") == 1
    peer.kill(sched)
    until(peer, lambda t: not t["scheduler_entries"], "the killed scheduler's entries expired", timeout=15)
    s, _ = await compare("scheduler killed", peer, probe)
    assert s.value("honeydue_asynq_schedulers_live") == 0
    assert s.value("honeydue_asynq_cron_last_enqueue_timestamp_seconds", task_type="cron:tick") is None


async def test_cron_entry_whose_handler_keeps_failing(peer: AsynqPeer, probe: AsynqProbe) -> None:
    """Two failing cron entries: one keeps enqueuing (its tasks fail into the archive); one is unique, so its
    first failed task holds the lock in retry and every later enqueue is a duplicate: it stopped enqueuing
    while the scheduler keeps running it (prev advances, the history does not)."""
    peer.start("worker", "-queues", "default=1", "-retry-delay", "1h")
    peer.start("scheduler", "-heartbeat", "1s",
               "-entry", "@every 1s|cron:flaky|default|fail|max-retry=0",
               "-entry", "@every 1s|cron:locked|default|fail|unique=1h,max-retry=100")

    def settled(t: Truth) -> bool:
        by_type = {e["type"]: e for e in t["scheduler_entries"]}
        locked = by_type.get("cron:locked")
        return (len(by_type) == 2 and len(by_type["cron:flaky"]["events"]) >= 3 and locked is not None
                and len(locked["events"]) == 1 and locked["prev"] - locked["events"][0]["enqueued_at"] >= 2
                and state(t, "default", "retry") == 1 and state(t, "default", "archived") >= 2)

    until(peer, settled, "one entry failing on, one stopped by its unique lock")
    s, truth = await compare("cron handler keeps failing", peer, probe, frozen=True)
    locked = next(e for e in truth["scheduler_entries"] if e["type"] == "cron:locked")
    last = s.value("honeydue_asynq_cron_last_enqueue_timestamp_seconds", task_type="cron:locked", schedule="@every 1s")
    assert last is not None and locked["prev"] - last >= 2  # ran, but enqueued nothing since
    assert q(truth, "default")["failed_total"] >= 3


async def test_paused_queue(peer: AsynqPeer, probe: AsynqProbe) -> None:
    peer.enqueue("email", 3)
    peer.pause("email")
    peer.start("worker", "-queues", "email=1,default=1")
    peer.enqueue("default", 2)
    until(peer, lambda t: q(t, "default")["processed_total"] == 2 and len(t["servers"]) == 1, "default drained")
    s, _ = await compare("paused queue", peer, probe)
    assert s.value("asynq_queue_paused", queue="email") == 1 and s.value("asynq_queue_paused", queue="default") == 0
    assert s.value("asynq_tasks", queue="email", state="pending") == 3
    peer.unpause("email")
    until(peer, lambda t: q(t, "email")["processed_total"] == 3, "email drained once unpaused")
    s, _ = await compare("paused queue: unpaused", peer, probe)
    assert s.value("asynq_queue_paused", queue="email") == 0


async def test_retries_exhausted_into_archived(peer: AsynqPeer, probe: AsynqProbe) -> None:
    peer.enqueue("email", 3, do="fail", max_retry=2)
    peer.start("worker", "-queues", "email=1", "-delayed-check", "1s")
    until(peer, lambda t: state(t, "email", "archived") == 3, "three tasks archived after their retries")
    s, truth = await compare("retries exhausted", peer, probe)
    assert q(truth, "email")["failed_total"] == 9  # 1 try + 2 retries each
    assert s.value("asynq_tasks_failed_total", queue="email") == 9


async def test_hundred_thousand_pending(peer: AsynqPeer, probe: AsynqProbe, redis_server: RedisServer) -> None:
    """100,000 pending tasks cost the probe the same round trips and Redis commands as 10 (bench/ times them)."""
    peer.enqueue("bulk", 10)
    count_round_trips(probe)
    r = redis.Redis(port=redis_server.port)
    try:
        await probe.collect()  # connects (HELLO, CLIENT SETNAME) outside the count
        small = await cycle_cost(probe, r)
        await compare("10 pending", peer, probe)
        assert peer.enqueue("bulk", 99_990, parallel=8, timeout=300)["enqueued"] == 99_990
        large = await cycle_cost(probe, r)
        s, _ = await compare("100,000 pending", peer, probe)
    finally:
        r.close()
    assert s.value("asynq_tasks", queue="bulk", state="pending") == 100_000
    assert (small.round_trips, small.calls) == (large.round_trips, large.calls)
    assert small.round_trips == 2  # SMEMBERS, then one pipeline
    assert "keys" not in small.calls and "scan" not in small.calls


async def test_task_groups(peer: AsynqPeer, probe: AsynqProbe, redis_server: RedisServer) -> None:
    """Tasks waiting in aggregation groups (state aggregating), then aggregated by a worker."""
    peer.enqueue("batch", 4, group="digest:u1")
    peer.enqueue("batch", 2, group="digest:u2")
    truth = until(peer, lambda t: state(t, "batch", "aggregating") == 6, "six tasks aggregating")
    assert q(truth, "batch")["groups"] == 2
    s, _ = await compare("task groups: aggregating", peer, probe)
    assert s.value("asynq_tasks", queue="batch", state="aggregating") == 6
    # Past the bound the groups are not walked: aggregating (and the size that includes it) is not published.
    bounded = make_probe(redis_server, max_groups_checked=1)
    try:
        b = await bounded.collect()
    finally:
        await bounded.close()
    assert b.value("honeydue_asynq_queue_groups", queue="batch") == 2
    assert b.value("asynq_tasks", queue="batch", state="aggregating") is None
    assert b.value("asynq_queue_size", queue="batch") is None
    assert b.value("asynq_tasks", queue="batch", state="pending") == 0
    peer.start("worker", "-queues", "batch=1", "-group-grace", "1s")
    until(peer, lambda t: state(t, "batch", "aggregating") == 0 and q(t, "batch")["processed_total"] == 2,
          "both groups aggregated into one task each and processed")
    await compare("task groups: aggregated", peer, probe)


async def test_redis_restarted_empty_under_a_live_worker(peer: AsynqPeer, probe: AsynqProbe,
                                                         redis_server: RedisServer) -> None:
    """Redis restarts without its data under a live worker, scheduler and client. They reconnect and carry on,
    but no queue is listed in asynq:queues again: a client registers a queue once per process, so Asynq's
    Inspector (and the exporter, which reads the same registry) lists nothing until a new process enqueues."""
    peer.start("worker", "-queues", "default=1,email=1")
    peer.start("scheduler", "-heartbeat", "1s", "-entry", "@every 1s|cron:tick|default")
    peer.start("enqueue", "-queue", "email", "-every", "200ms")
    until(peer, lambda t: q(t, "email")["processed_total"] >= 5 and q(t, "default")["processed_total"] >= 1,
          "worker processing email and cron")
    await compare("redis restart: before", peer, probe, frozen=True)
    redis_server.stop()
    redis_server.start()
    truth = until(peer, lambda t: len(t["servers"]) == 1 and len(t["scheduler_entries"]) == 1,
                  "worker heartbeat and scheduler entries back")
    assert truth["queues"] == []
    for _ in range(2):  # the first run after the restart finds its pooled connection dead (honeydue_asynq_up 0)
        try:
            await probe.collect()
            break
        except RedisConnectionError:
            continue
    s, _ = await compare("redis restart: after", peer, probe, frozen=True)
    assert s.value("honeydue_asynq_queues") == 0
    assert s.value("honeydue_asynq_servers_live", status="active") == 1
    # The worker goes on processing the unlisted queues: only a probe told the queues (asynq.queues) sees them.
    configured = make_probe(redis_server, queues=["default", "email"])
    try:
        with redis.Redis(port=redis_server.port) as r:
            until(peer, lambda t: int(r.get(queue_key("email", "processed")) or 0) >= 3, "unlisted email processed")
        c = await configured.collect()
        assert c.value("honeydue_asynq_queues") == 0
        assert c.value("honeydue_asynq_queue_listed", queue="email") == 0
        assert (c.value("asynq_tasks_processed_total", queue="email") or 0) >= 3
        peer.enqueue("email", 1)  # a new process registers the queue again
        until(peer, lambda t: [x["queue"] for x in t["queues"]] == ["email"], "email listed again")
        with peer.frozen():
            s, truth = await snapshot(peer, probe)
            c = await configured.collect()
        check("redis restart: a new client", peer, s, truth)
    finally:
        await configured.close()
    assert c.value("honeydue_asynq_queue_listed", queue="email") == 1
    assert c.value("honeydue_asynq_queue_listed", queue="default") == 0  # the scheduler's client never re-registers
    mine = {(x.name, tuple(sorted(x.labels.items()))): x.value for f in c.families() for x in f.samples
            if x.labels.get("queue") == "email"}
    truth_rows = {(x.name, tuple(sorted(x.labels.items()))): x.value for f in s.families() for x in f.samples
                  if x.labels.get("queue") == "email"}
    assert mine.keys() == truth_rows.keys()
    for key, value in mine.items():  # equal to the probe whose samples just equalled the Inspector's
        assert value == pytest.approx(truth_rows[key], abs=1 if key[0] == "asynq_queue_latency_seconds" else 0), key


# --- what real Asynq cannot write: malformed state (testbed/asynq_state.py) -------------------------

async def test_malformed_queue_is_reported_alone(redis_server: RedisServer, probe: AsynqProbe) -> None:
    peer = AsynqPeer(f"127.0.0.1:{redis_server.port}")
    r = redis.Redis(port=redis_server.port)
    try:
        peer.enqueue("good", 1)
        peer.enqueue("broken", 1, delay="1h")
        peer.enqueue("badcount", 1)
        peer.enqueue("badtask", 1)
        peer.start("worker", "-queues", "good=1")  # a live server next to a garbage one
        until(peer, lambda t: len(t["servers"]) == 1 and q(t, "good")["processed_total"] == 1, "worker up")
        s = await _malformed(r, probe)
    finally:
        peer.stop_all()
        r.close()
    _checks_of_malformed(s)


async def _malformed(r: redis.Redis, probe: AsynqProbe) -> Samples:
    """Real Asynq state, then what it cannot write: wrong types, bad values, garbage protobuf, no lease."""
    now = time.time()
    asynq_state.wrong_type(r, "broken", "pending")  # WRONGTYPE for LLEN and LINDEX
    asynq_state.wrong_type(r, "broken", "archived")  # a string where a zset belongs
    r.set(queue_key("badcount", "processed"), "many")  # not an integer
    task = r.lindex(queue_key("badtask", "pending"), -1)
    r.delete(queue_key("badtask", f"t:{task.decode()}"))
    r.set(queue_key("badtask", f"t:{task.decode()}"), "not a hash")
    asynq_state.active_without_lease(r, "good", "lost-1")
    asynq_state.undecodable_server(r, "h:1:garbage", b"\xff\xff\xff", now + 10)
    asynq_state.undecodable_scheduler_entry(r, "garbage-scheduler", b"\xff\x01", now + 10)
    return await probe.collect()


def _checks_of_malformed(s: Samples) -> None:
    assert s.value("honeydue_asynq_up") == 1
    assert s.value("honeydue_asynq_queue_read_ok", queue="good") == 1
    assert s.value("asynq_tasks", queue="good", state="active") == 1
    assert s.value("honeydue_asynq_stuck_active_tasks", queue="good", reason="no_lease") == 1
    assert s.value("honeydue_asynq_stuck_active_tasks", queue="good", reason="lease_expired") == 0
    assert s.value("honeydue_asynq_queue_read_ok", queue="broken") == 0
    assert s.value("honeydue_asynq_queue_error_info", queue="broken", key="pending", reason="wrong_type") == 1
    assert s.value("honeydue_asynq_queue_error_info", queue="broken", key="archived", reason="wrong_type") == 1
    assert s.value("asynq_tasks", queue="broken", state="pending") is None
    assert s.value("asynq_tasks", queue="broken", state="scheduled") == 1  # the readable keys still report
    assert s.value("asynq_queue_size", queue="broken") is None
    assert s.value("honeydue_asynq_queue_read_ok", queue="badcount") == 0
    assert s.value("honeydue_asynq_queue_error_info", queue="badcount", key="processed", reason="bad_value") == 1
    assert s.value("asynq_tasks_processed_total", queue="badcount") is None
    assert s.value("honeydue_asynq_queue_error_info", queue="badtask", key="task", reason="wrong_type") == 1
    assert s.value("asynq_tasks", queue="badtask", state="pending") == 1
    assert s.value("honeydue_asynq_servers_undecodable") == 1
    assert s.value("honeydue_asynq_servers_live", status="active") == 1
    assert s.value("honeydue_asynq_scheduler_entries_undecodable") == 1


# --- cost, failure as a value, configuration -----------------------------------------------------------------

async def test_two_round_trips_per_cycle_whatever_the_queue_count(redis_server: RedisServer) -> None:
    peer = AsynqPeer(f"127.0.0.1:{redis_server.port}")
    r = redis.Redis(port=redis_server.port)
    sends: dict[int, int] = {}
    evals: dict[int, int] = {}
    made = 0
    for n in (1, 5, 25):
        for i in range(made, n):
            peer.enqueue(f"q{i}", 3)
        made = n
        probe = make_probe(redis_server)
        count_round_trips(probe)
        await probe.collect()  # first cycle also opens the connection (HELLO / CLIENT SETNAME)
        cost = await cycle_cost(probe, r)
        sends[n], evals[n] = cost.round_trips, cost.calls["eval_ro"]  # read-only scripts (Redis >= 7.0)
        assert cost.calls["smembers"] == 1
        assert "keys" not in cost.calls and "scan" not in cost.calls
        await probe.close()
    r.close()
    assert sends == {1: 2, 5: 2, 25: 2}  # SMEMBERS + one pipeline
    assert evals == {1: 3, 5: 7, 25: 27}  # one per queue + servers + schedulers, all inside that pipeline


async def test_redis_down_is_a_value(redis_server: RedisServer) -> None:
    probe = make_probe(redis_server)
    engine = Engine([probe])
    assert (await engine.run_once(probe)).snapshot.value("honeydue_asynq_up") == 1
    redis_server.stop()
    state_ = await engine.run_once(probe)
    assert state_.status == "failing" and state_.reason in ("unavailable", "refused")  # pooled socket, then port
    assert state_.snapshot.value("honeydue_asynq_up") == 0
    assert state_.snapshot.value("asynq_tasks") is None
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
def test_exporter_reports_the_worker_dying_within_one_interval(exporter_factory, redis_server: RedisServer) -> None:  # type: ignore[no-untyped-def]
    """The real `python -m exporter run` and the real worker: SIGKILLed while tasks keep arriving."""
    from testbed.exporter import value

    peer = AsynqPeer(f"127.0.0.1:{redis_server.port}")
    try:
        peer.enqueue("email", 1, delay="1h")
        exporter = exporter_factory(env={
            "HONEYDUE_REDIS__URL": redis_server.url,
            "HONEYDUE_POSTGRES__POOLER__ENABLED": "false",
            "HONEYDUE_POSTGRES__DIRECT__ENABLED": "false",
            "HONEYDUE_ASYNQ__INTERVAL": "1",
            "HONEYDUE_ASYNQ__TIMEOUT": "0.8",
        })
        exporter.start()
        worker = peer.start("worker", "-queues", "email=1")
        exporter.wait_for("honeydue_asynq_servers_live", 1, 10, status="active")
        peer.kill(worker)
        peer.enqueue("email", 3)
        exporter.wait_for("asynq_tasks", 3, 10, queue="email", state="pending")
        exporter.wait_for("honeydue_asynq_servers_live", 0, 20, status="active")  # its heartbeat expired (10 s)
        assert value(exporter.metrics(), "honeydue_asynq_servers_registered") == 1  # nobody pruned it
    finally:
        peer.stop_all()
