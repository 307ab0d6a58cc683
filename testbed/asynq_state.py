"""Asynq state that real Asynq cannot produce: what the probe must survive, written straight into Redis.

Everything Asynq can write (tasks in every state, servers, schedulers, their history) comes from the real
Asynq peer (testbed/asynqpeer.py). What is left here cannot come from it: an active task with no
lease (Asynq's scripts add both atomically), a ServerInfo or SchedulerEntry that is not protobuf, keys of
the wrong type, counters that are not integers. Used by the tests of the probe's per-queue error reporting.
"""

from __future__ import annotations

import redis

from exporter.probes.asynq import queue_key


def active_without_lease(r: redis.Redis, queue: str, task_id: str) -> None:
    """An active task id with no lease entry: Asynq's recoverer never sees it (it only reads the lease zset)."""
    r.sadd("asynq:queues", queue)
    r.hset(queue_key(queue, f"t:{task_id}"), mapping={"msg": b"", "state": "active"})
    r.lpush(queue_key(queue, "active"), task_id)


def undecodable_server(r: redis.Redis, server: str, data: bytes, expiry: float) -> None:
    """A live asynq:servers member (`host:pid:id`) whose ServerInfo is not protobuf."""
    member = f"asynq:servers:{{{server}}}"
    r.set(member, data)
    r.zadd("asynq:servers", {member: int(expiry)})


def undecodable_scheduler_entry(r: redis.Redis, scheduler_id: str, data: bytes, expiry: float) -> None:
    """A live scheduler whose entries list holds something that is not a SchedulerEntry."""
    member = f"asynq:schedulers:{{{scheduler_id}}}"
    r.rpush(member, data)
    r.zadd("asynq:schedulers", {member: int(expiry)})


def wrong_type(r: redis.Redis, queue: str, suffix: str) -> None:
    """The queue's `suffix` key replaced by a value of another type (a string, or a list for a string key)."""
    key = queue_key(queue, suffix)
    r.sadd("asynq:queues", queue)
    r.delete(key)
    if suffix in ("processed", "failed", "paused"):
        r.rpush(key, "x")
    else:
        r.set(key, "not what Asynq writes here")
