"""Write Asynq state into Redis the way Asynq v0.22+ does (its Lua scripts, keys and protobuf bytes).

Each method mirrors one operation of Asynq's internal/rdb package: enqueue, dequeue (lease),
done, retry, archive, schedule, pause, the server heartbeat and the scheduler's entries and
enqueue history. Times are explicit so a test can write a heartbeat that has already expired.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis

from exporter.asynq import proto

MAX_INT64 = 9223372036854775807

# rdb.enqueueCmd: the task hash with nanosecond pending_since, then LPUSH (oldest at index -1).
_ENQUEUE = """
if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
redis.call("HSET", KEYS[1], "msg", ARGV[1], "state", "pending", "pending_since", ARGV[3])
redis.call("LPUSH", KEYS[2], ARGV[2])
return 1
"""
# rdb.dequeueCmd: pending -> active, lease score = lease expiry in unix seconds.
_DEQUEUE = """
if redis.call("EXISTS", KEYS[2]) == 0 then
  local id = redis.call("RPOPLPUSH", KEYS[1], KEYS[3])
  if id then
    local key = ARGV[2] .. id
    redis.call("HSET", key, "state", "active")
    redis.call("HDEL", key, "pending_since")
    redis.call("ZADD", KEYS[4], ARGV[1], id)
    return id
  end
end
return nil
"""
# rdb.doneCmd: drop from active and lease, delete the task, count processed (daily + running total).
_DONE = """
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then return redis.error_reply("NOT FOUND") end
if redis.call("ZREM", KEYS[2], ARGV[1]) == 0 then return redis.error_reply("NOT FOUND") end
if redis.call("DEL", KEYS[3]) == 0 then return redis.error_reply("NOT FOUND") end
local n = redis.call("INCR", KEYS[4])
if tonumber(n) == 1 then redis.call("EXPIREAT", KEYS[4], ARGV[2]) end
local total = redis.call("GET", KEYS[5])
if tonumber(total) == tonumber(ARGV[3]) then redis.call("SET", KEYS[5], 1) else redis.call("INCR", KEYS[5]) end
return redis.status_reply("OK")
"""
# rdb.retryCmd (isFailure): active -> retry zset, processed and failed counted.
_RETRY = """
if redis.call("LREM", KEYS[2], 0, ARGV[1]) == 0 then return redis.error_reply("NOT FOUND") end
if redis.call("ZREM", KEYS[3], ARGV[1]) == 0 then return redis.error_reply("NOT FOUND") end
redis.call("ZADD", KEYS[4], ARGV[3], ARGV[1])
redis.call("HSET", KEYS[1], "msg", ARGV[2], "state", "retry")
for i = 5, 6 do
  local n = redis.call("INCR", KEYS[i])
  if tonumber(n) == 1 then redis.call("EXPIREAT", KEYS[i], ARGV[4]) end
end
for i = 7, 8 do
  local total = redis.call("GET", KEYS[i])
  if tonumber(total) == tonumber(ARGV[5]) then redis.call("SET", KEYS[i], 1) else redis.call("INCR", KEYS[i]) end
end
return redis.status_reply("OK")
"""
# rdb.archiveCmd: active -> archived zset (score = now), trimmed, counted as processed and failed.
_ARCHIVE = """
if redis.call("LREM", KEYS[2], 0, ARGV[1]) == 0 then return redis.error_reply("NOT FOUND") end
if redis.call("ZREM", KEYS[3], ARGV[1]) == 0 then return redis.error_reply("NOT FOUND") end
redis.call("ZADD", KEYS[4], ARGV[3], ARGV[1])
redis.call("ZREMRANGEBYSCORE", KEYS[4], "-inf", ARGV[4])
redis.call("ZREMRANGEBYRANK", KEYS[4], 0, -ARGV[5])
redis.call("HSET", KEYS[1], "msg", ARGV[2], "state", "archived")
for i = 5, 6 do
  local n = redis.call("INCR", KEYS[i])
  if tonumber(n) == 1 then redis.call("EXPIREAT", KEYS[i], ARGV[6]) end
end
for i = 7, 8 do
  local total = redis.call("GET", KEYS[i])
  if tonumber(total) == tonumber(ARGV[7]) then redis.call("SET", KEYS[i], 1) else redis.call("INCR", KEYS[i]) end
end
return redis.status_reply("OK")
"""
# rdb.scheduleCmd
_SCHEDULE = """
if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
redis.call("HSET", KEYS[1], "msg", ARGV[1], "state", "scheduled")
redis.call("ZADD", KEYS[2], ARGV[2], ARGV[3])
return 1
"""
# rdb.writeServerStateCmd (then ZADD asynq:servers / asynq:workers with the expiry as score).
_SERVER_STATE = """
redis.call("SETEX", KEYS[1], ARGV[1], ARGV[2])
redis.call("DEL", KEYS[2])
for i = 3, table.getn(ARGV)-1, 2 do
  redis.call("HSET", KEYS[2], ARGV[i], ARGV[i+1])
end
redis.call("EXPIRE", KEYS[2], ARGV[1])
return redis.status_reply("OK")
"""
# rdb.writeSchedulerEntriesCmd (then ZADD asynq:schedulers with the expiry as score).
_SCHEDULER_ENTRIES = """
redis.call("DEL", KEYS[1])
for i = 2, #ARGV do
  redis.call("RPUSH", KEYS[1], ARGV[i])
end
redis.call("EXPIRE", KEYS[1], ARGV[1])
return redis.status_reply("OK")
"""
# rdb.recordSchedulerEnqueueEventCmd
_ENQUEUE_EVENT = """
redis.call("ZREMRANGEBYRANK", KEYS[1], 0, -ARGV[3])
redis.call("ZADD", KEYS[1], ARGV[1], ARGV[2])
return redis.status_reply("OK")
"""


def key(queue: str, suffix: str) -> str:
    return f"asynq:{{{queue}}}:{suffix}"


def _day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def _day_expiry(at: float) -> int:
    """Daily counters expire 90 days after the day they count (statsTTL)."""
    return int(at) + 90 * 24 * 3600


@dataclass
class CronEntry:
    spec: str
    task_type: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    next_at: float = 0.0
    prev_at: float = 0.0


class AsynqState:
    """A Redis holding Asynq state, changed through Asynq's own operations."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._messages: dict[str, bytes] = {}

    def _msg(self, queue: str, task_type: str, task_id: str, retried: int = 0) -> bytes:
        msg = proto.TaskMessage(type=task_type, payload=b'{"to":"user@example.com"}', id=task_id, queue=queue,
                                retry=25, retried=retried, timeout=1800)
        data: bytes = msg.SerializeToString()
        self._messages[task_id] = data
        return data

    def enqueue(self, queue: str, at: float, task_type: str = "email:send") -> str:
        """Client.Enqueue at unix time `at`: SADD asynq:queues, then enqueueCmd."""
        task_id = str(uuid.uuid4())
        self.r.sadd("asynq:queues", queue)
        self.r.eval(_ENQUEUE, 2, key(queue, f"t:{task_id}"), key(queue, "pending"),
                    self._msg(queue, task_type, task_id), task_id, int(at * 1e9))
        return task_id

    def schedule(self, queue: str, process_at: float, task_type: str = "email:send") -> str:
        task_id = str(uuid.uuid4())
        self.r.sadd("asynq:queues", queue)
        self.r.eval(_SCHEDULE, 2, key(queue, f"t:{task_id}"), key(queue, "scheduled"),
                    self._msg(queue, task_type, task_id), int(process_at), task_id)
        return task_id

    def dequeue(self, queue: str, lease_expiry: float) -> str | None:
        """A worker takes the oldest pending task; its lease expires at `lease_expiry` (now + 30 s)."""
        reply = self.r.eval(_DEQUEUE, 4, key(queue, "pending"), key(queue, "paused"), key(queue, "active"),
                            key(queue, "lease"), int(lease_expiry), key(queue, "t:"))
        return reply.decode() if reply else None

    def _counter_keys(self, queue: str, at: float) -> list[str]:
        day = _day(at)
        return [key(queue, f"processed:{day}"), key(queue, f"failed:{day}"), key(queue, "processed"),
                key(queue, "failed")]

    def done(self, queue: str, task_id: str, at: float) -> None:
        day = _day(at)
        self.r.eval(_DONE, 5, key(queue, "active"), key(queue, "lease"), key(queue, f"t:{task_id}"),
                    key(queue, f"processed:{day}"), key(queue, "processed"), task_id, _day_expiry(at), MAX_INT64)

    def retry(self, queue: str, task_id: str, at: float, retry_at: float) -> None:
        data = self._messages[task_id]
        c = self._counter_keys(queue, at)
        self.r.eval(_RETRY, 8, key(queue, f"t:{task_id}"), key(queue, "active"), key(queue, "lease"),
                    key(queue, "retry"), c[0], c[1], c[2], c[3],
                    task_id, data, int(retry_at), _day_expiry(at), MAX_INT64)

    def archive(self, queue: str, task_id: str, at: float) -> None:
        data = self._messages[task_id]
        c = self._counter_keys(queue, at)
        self.r.eval(_ARCHIVE, 8, key(queue, f"t:{task_id}"), key(queue, "active"), key(queue, "lease"),
                    key(queue, "archived"), c[0], c[1], c[2], c[3],
                    task_id, data, int(at), int(at) - 90 * 24 * 3600, 10000, _day_expiry(at), MAX_INT64)

    def pause(self, queue: str, at: float) -> None:
        """Inspector.PauseQueue: SET asynq:{q}:paused <unix time> NX."""
        self.r.set(key(queue, "paused"), int(at), nx=True)

    def heartbeat(self, host: str, pid: int, server_id: str, *, at: float, concurrency: int,
                  queues: dict[str, int], active_workers: int = 0, status: str = "active",
                  started: float | None = None, ttl: float = 10.0) -> str:
        """Server heartbeat at unix time `at` (every 5 s in Asynq): ServerInfo with a 10 s expiry."""
        info: Any = proto.ServerInfo(host=host, pid=pid, server_id=server_id, concurrency=concurrency, queues=queues,
                                strict_priority=False, status=status, active_worker_count=active_workers)
        info.start_time.FromNanoseconds(int((started if started is not None else at) * 1e9))
        qname = f"{host}:{pid}:{server_id}"
        server_key, workers_key = f"asynq:servers:{{{qname}}}", f"asynq:workers:{{{qname}}}"
        self.r.eval(_SERVER_STATE, 2, server_key, workers_key, int(ttl), info.SerializeToString())
        self.r.zadd("asynq:servers", {server_key: int(at + ttl)})
        self.r.zadd("asynq:workers", {workers_key: int(at + ttl)})
        return server_key

    def scheduler_heartbeat(self, scheduler_id: str, entries: list[CronEntry], *, at: float,
                            ttl: float = 20.0) -> str:
        """Scheduler heartbeat (every 10 s): its entries as protobuf, expiry now + 2 x heartbeat."""
        blobs = []
        for e in entries:
            msg: Any = proto.SchedulerEntry(id=e.id, spec=e.spec, task_type=e.task_type, task_payload=b"",
                                       enqueue_options=["Queue(\"default\")"])
            msg.next_enqueue_time.FromNanoseconds(int(e.next_at * 1e9))
            if e.prev_at:
                msg.prev_enqueue_time.FromNanoseconds(int(e.prev_at * 1e9))
            else:  # Go's zero time.Time, as timestamppb.New(time.Time{}) encodes it
                msg.prev_enqueue_time.seconds = -62135596800
            blobs.append(msg.SerializeToString())
        entries_key = f"asynq:schedulers:{{{scheduler_id}}}"
        self.r.eval(_SCHEDULER_ENTRIES, 1, entries_key, int(ttl), *blobs)
        self.r.zadd("asynq:schedulers", {entries_key: int(at + ttl)})
        return entries_key

    def record_event(self, entry: CronEntry, at: float, task_id: str) -> None:
        """Only the history event (the task it names is already gone from the queues)."""
        event: Any = proto.SchedulerEnqueueEvent(task_id=task_id)
        event.enqueue_time.FromNanoseconds(int(at * 1e9))
        self.r.eval(_ENQUEUE_EVENT, 1, f"asynq:scheduler_history:{entry.id}", int(at),
                    event.SerializeToString(), 1000)

    def record_enqueue(self, entry: CronEntry, at: float) -> str:
        """The scheduler enqueued the entry's task at `at`: one SchedulerEnqueueEvent in its history."""
        task_id = self.enqueue("default", at, entry.task_type)
        event: Any = proto.SchedulerEnqueueEvent(task_id=task_id)
        event.enqueue_time.FromNanoseconds(int(at * 1e9))
        self.r.eval(_ENQUEUE_EVENT, 1, f"asynq:scheduler_history:{entry.id}", int(at),
                    event.SerializeToString(), 1000)
        return task_id
