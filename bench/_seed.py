"""Fast seeding of large states in a private redis-server (never the machine's 6379) and a private database.

Millions of keys cannot go through one command per key from Python in bench time, so the bulk writes
run as Lua inside Redis, in batches, doing per key exactly what Asynq's own scripts do
(testbed/asynq_state.py mirrors them; shared/reference/asynq-redis-layout.md lists the keys):
enqueueCmd's HSET of the task hash (msg = a real protobuf TaskMessage, state, pending_since in unix
nanoseconds) and LPUSH of its id; tests/test_asynq.py checks the probe against the real Asynq at 100,000
such tasks. Worker servers and cron entries are the real Asynq's (the Go peer, testbed/asynqpeer.py):
real processes heartbeating into the bench's private Redis, stopped by stop_peers().
"""

from __future__ import annotations

import time
import uuid

import psycopg
import redis

from testbed.asynqpeer import AsynqPeer, Started

from exporter.asynq import proto

IDLE_QUEUE = "bench-idle"  # what the bench's workers serve: they must not consume the tasks being measured
_peers: dict[int, tuple[AsynqPeer, list[Started], list[Started]]] = {}  # redis port -> peer, workers, schedulers


def key(queue: str, suffix: str) -> str:
    """An Asynq key of a queue (hash-tagged, as Asynq v0.22+ writes them)."""
    return f"asynq:{{{queue}}}:{suffix}"

# enqueueCmd for ARGV[3] tasks: ids <prefix>-<n>, msg = TaskMessage without its id field + field 3 (id),
# which is valid protobuf in any field order. KEYS: pending list, task key prefix. ARGV: msg prefix,
# id prefix, count, first n, pending_since of the first (ns), step between tasks (ns).
_BULK_ENQUEUE = """
local count, first = tonumber(ARGV[3]), tonumber(ARGV[4])
local since, step = tonumber(ARGV[5]), tonumber(ARGV[6])
for n = first, first + count - 1 do
  local id = ARGV[2] .. string.format('%012d', n)
  local msg = ARGV[1] .. string.char(26, #id) .. id
  redis.call('HSET', KEYS[2] .. id, 'msg', msg, 'state', 'pending', 'pending_since',
             string.format('%.0f', since + (n - first) * step))
  redis.call('LPUSH', KEYS[1], id)
end
return count
"""

# The residence-IDs cache: `<prefix><user id>` = JSON array of the user's residence ids, with a TTL.
# ARGV: key prefix, first user id, count, ttl seconds.
_BULK_CACHE = """
local first, count, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for u = first, first + count - 1 do
  redis.call('SET', ARGV[1] .. u, '[' .. u .. ']', 'EX', ttl)
end
return count
"""

BATCH = 50_000


def pending_tasks(r: redis.Redis, queue: str, count: int, oldest_age: float = 600.0) -> None:
    """`count` pending tasks in `queue`, the oldest enqueued `oldest_age` seconds ago."""
    r.sadd("asynq:queues", queue)
    prefix = proto.TaskMessage(type="email:send", payload=b'{"to":"user@example.com"}', queue=queue, retry=25,
                               timeout=1800).SerializeToString()
    id_prefix = f"{uuid.uuid4().hex[:8]}-bench-"
    started_ns = (time.time() - oldest_age) * 1e9
    step = oldest_age * 1e9 / max(count, 1)
    script = r.register_script(_BULK_ENQUEUE)
    for first in range(0, count, BATCH):
        n = min(BATCH, count - first)
        script(keys=[key(queue, "pending"), key(queue, "t:")],
               args=[prefix, id_prefix, n, first, started_ns + first * step, step])


def queues(r: redis.Redis, count: int, tasks_each: int = 10) -> None:
    for q in range(count):
        pending_tasks(r, f"queue{q:04d}", tasks_each)


def _peer(r: redis.Redis) -> tuple[AsynqPeer, list[Started], list[Started]]:
    port = int(r.connection_pool.connection_kwargs["port"])
    if port not in _peers:
        _peers[port] = (AsynqPeer(f"127.0.0.1:{port}"), [], [])
    return _peers[port]


def workers(r: redis.Redis, count: int) -> None:
    """`count` real Asynq worker servers (started as needed). They serve only the idle queue: a worker on a
    measured queue would consume the very tasks whose cost is being measured."""
    peer, running, _ = _peer(r)
    while len(running) < count:
        running.append(peer.start("worker", "-queues", f"{IDLE_QUEUE}=1", "-concurrency", "10"))


def cron_entries(r: redis.Redis, count: int) -> None:
    """One real Asynq scheduler with `count` entries (replacing the previous scheduler)."""
    peer, _, schedulers = _peer(r)
    for started in schedulers:
        peer.stop(started)
    schedulers.clear()
    entries = [arg for i in range(count) for arg in ("-entry", f"@every 1m|cron:task{i:03d}|{IDLE_QUEUE}")]
    schedulers.append(peer.start("scheduler", *entries))


def stop_peers() -> None:
    """Stop every worker and scheduler the seeding started (call before flushing or stopping Redis)."""
    for peer, _, _ in _peers.values():
        peer.stop_all()
    _peers.clear()


def cache_keys(r: redis.Redis, count: int, prefix: str = "residence_ids:", ttl: int = 3600) -> None:
    script = r.register_script(_BULK_CACHE)
    for first in range(1, count + 1, BATCH):
        script(args=[prefix, first, min(BATCH, count + 1 - first), ttl])


def residence_truth(dsn: str, users: int) -> None:
    """honeyDue's two membership tables, one residence per user (the truth every seeded entry matches)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS residence_residence_users, residence_residence")
        conn.execute("CREATE TABLE residence_residence (id bigint PRIMARY KEY, owner_id bigint NOT NULL)")
        conn.execute("CREATE TABLE residence_residence_users (residence_id bigint NOT NULL, user_id bigint NOT NULL)")
        conn.execute("CREATE INDEX ON residence_residence (owner_id)")
        conn.execute("CREATE INDEX ON residence_residence_users (user_id)")
        conn.execute("INSERT INTO residence_residence SELECT u, u FROM generate_series(1, %s) AS u", (users,))
        conn.execute("ANALYZE residence_residence")
