"""Asynq's queues, workers and cron read straight from Redis, so they stay visible when the worker is dead.

Feeds "worker stops processing jobs", the Asynq part of "redis pod dies + node is different" and
the retry/archived pile-up of "Fastmail SMTP unreachable". Supports Asynq's key layout of v0.22 and
later; every metric is checked against Asynq's own Inspector for v0.25.1 and v0.26.0 (tests/test_asynq.py),
and follows it: a queue's size includes its aggregating tasks, heartbeat and lease scores (unix seconds)
are compared with whole seconds, a server counts as live only while its ServerInfo key is there and a
scheduler only while its entries are.

Queues: those listed in `asynq:queues` and those configured in `asynq.queues`. An Asynq client adds a
queue to `asynq:queues` once per process, so after Redis restarted empty the queues of long-lived clients
(honeyDue's API, the scheduler) stay unlisted, for Asynq's own Inspector too, until a new process enqueues.

Cost: two round trips per cycle whatever the queue count: `SMEMBERS asynq:queues`, then one
pipeline holding every queue's counters plus three small read-only Lua scripts (EVAL) for the reads
that need a first reply to know the next key: the oldest pending task's `pending_since`
(LINDEX then HGET), its active ids without a lease and its aggregation groups (up to
`max_groups_checked`), the live servers' ServerInfo, and the live schedulers' cron entries with the
newest score of each entry's history. No KEYS, no SCAN; every range read is bounded. The scripts use
`redis.pcall`, so a malformed key shows up as an error for its queue only.

The scripts run with EVAL_RO (Redis >= 7.0): the server refuses any write they might attempt, and
an ACL user with read-only key permissions (`%R~asynq:*`) may run them, which plain EVAL (whose
keys count as read-write) would not allow. On a server without EVAL_RO the probe falls back to EVAL
once and stays there; see deploy/least-privilege/redis-acl.conf.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from exporter.asynq import proto
from exporter.config import AsynqConfig, Config
from exporter.engine import Probe
from exporter.probes.deps import Dependencies
from exporter.probes.redis_conn import client
from exporter.samples import Samples, counter, gauge, info

# --- Asynq's own collector names (where they pass `promtool check metrics`) -----------------------
QUEUE_SIZE = gauge("asynq_queue_size", "Tasks in the queue in every state (Asynq's definition).", "queue")
LATENCY = gauge(
    "asynq_queue_latency_seconds",
    "Seconds the oldest pending task has waited (0 when none pending or pending_since is missing).",
    "queue",
)
PROCESSED = counter(
    "asynq_tasks_processed_total", "Tasks processed (succeeded or failed), Asynq's running total.", "queue"
)
FAILED = counter("asynq_tasks_failed_total", "Tasks that failed, Asynq's running total.", "queue")
# --- Asynq names that break the lint (gauges ending in _total), renamed -----------------------------
TASKS = gauge(
    "asynq_tasks",
    "Tasks in the queue by state (Asynq's asynq_tasks_enqueued_total, renamed: it is a gauge).",
    "queue", "state",
)
PAUSED = gauge(
    "asynq_queue_paused", "1 while the queue is paused (Asynq's asynq_queue_paused_total, renamed).", "queue"
)
# --- ours ------------------------------------------------------------------------------------------
UP = gauge("honeydue_asynq_up", "Whether Asynq's state could be read from Redis (1) or not (0).")
QUEUES = gauge("honeydue_asynq_queues", "Queues listed in asynq:queues.")
QUEUE_LISTED = gauge(
    "honeydue_asynq_queue_listed",
    "1 when asynq:queues lists the queue, 0 for a configured queue (asynq.queues) it does not list.",
    "queue",
)
QUEUE_READ_OK = gauge(
    "honeydue_asynq_queue_read_ok", "1 when every key of the queue was readable, 0 when one is malformed.", "queue"
)
QUEUE_ERROR = info(
    "honeydue_asynq_queue_error_info",
    "Present for each malformed key of a queue: which key and why (wrong_type, bad_value).",
    "queue", "key", "reason",
)
PROCESSED_TODAY = gauge(
    "honeydue_asynq_tasks_processed_today", "Tasks processed since 00:00 UTC (Asynq's daily counter).", "queue"
)
FAILED_TODAY = gauge(
    "honeydue_asynq_tasks_failed_today", "Tasks failed since 00:00 UTC (Asynq's daily counter).", "queue"
)
GROUPS = gauge(
    "honeydue_asynq_queue_groups",
    "Task aggregation groups of the queue; above asynq.max_groups_checked the aggregating count is not read.",
    "queue",
)
STUCK = gauge(
    "honeydue_asynq_stuck_active_tasks",
    "Active tasks nobody works on: lease expired (holder died) or no lease at all (never recovered).",
    "queue", "reason",
)
SERVERS_REGISTERED = gauge(
    "honeydue_asynq_servers_registered", "Members of asynq:servers, dead ones included (until pruned)."
)
SERVERS_LIVE = gauge(
    "honeydue_asynq_servers_live", "Worker servers whose heartbeat has not expired, by ServerInfo status.", "status"
)
SERVER_CONCURRENCY = gauge(
    "honeydue_asynq_server_concurrency", "Concurrency of a live worker server (from its ServerInfo).", "server"
)
SERVER_ACTIVE = gauge(
    "honeydue_asynq_server_active_workers", "Tasks a live worker server is processing now.", "server"
)
SERVER_QUEUE = gauge(
    "honeydue_asynq_server_queue_priority", "Queues a live worker server serves, with their priority.",
    "server", "queue",
)
SERVERS_UNDECODABLE = gauge(
    "honeydue_asynq_servers_undecodable", "Live server entries whose ServerInfo is not protobuf."
)
SCHEDULERS_REGISTERED = gauge("honeydue_asynq_schedulers_registered", "Members of asynq:schedulers.")
SCHEDULERS_LIVE = gauge(
    "honeydue_asynq_schedulers_live", "Schedulers (cron) whose heartbeat and entries have not expired."
)
CRON_LAST = gauge(
    "honeydue_asynq_cron_last_enqueue_timestamp_seconds",
    "Unix time of a cron entry's newest enqueue in its scheduler_history (newest across schedulers).",
    "task_type", "schedule",
)
CRON_INTERVAL = gauge(
    "honeydue_asynq_cron_interval_seconds",
    "Seconds between a cron entry's previous and next run (0 until it has run once).",
    "task_type", "schedule",
)
CRON_UNDECODABLE = gauge(
    "honeydue_asynq_scheduler_entries_undecodable", "Cron entries of live schedulers that are not protobuf."
)
REGISTRY_READ_OK = gauge(
    "honeydue_asynq_registry_read_ok", "1 when asynq:servers / asynq:schedulers could be read.", "registry"
)

STORED_STATES = ("pending", "active", "scheduled", "retry", "archived", "completed")  # one key each
STATES = (*STORED_STATES, "aggregating")  # aggregating: the sum of the queue's group zsets
SERVER_STATUSES = ("new", "active", "stopped", "closed")

# Oldest pending task's pending_since, active ids with no lease entry, and the aggregation groups.
# KEYS: pending, active, lease, groups. ARGV: task key prefix, max active ids to check,
# max groups to sum, group key prefix. Returns {'ok', pending_since, no lease, groups, aggregating}
# with aggregating -1 when the queue has more groups than the bound (Asynq walks every group).
QUEUE_SCRIPT = """
local id = redis.pcall('LINDEX', KEYS[1], -1)
if type(id) == 'table' and id.err then return {'err', 'pending', id.err} end
local since = ''
if id then
  local v = redis.pcall('HGET', ARGV[1] .. id, 'pending_since')
  if type(v) == 'table' and v.err then return {'err', 'task', v.err} end
  if v then since = v end
end
local ids = redis.pcall('LRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1)
if ids.err then return {'err', 'active', ids.err} end
local nolease = 0
for _, tid in ipairs(ids) do
  local sc = redis.pcall('ZSCORE', KEYS[3], tid)
  if type(sc) == 'table' and sc.err then return {'err', 'lease', sc.err} end
  if not sc then nolease = nolease + 1 end
end
local ngroups = redis.pcall('SCARD', KEYS[4])
if type(ngroups) == 'table' and ngroups.err then return {'err', 'groups', ngroups.err} end
local aggregating = 0
if ngroups > tonumber(ARGV[3]) then
  aggregating = -1
elseif ngroups > 0 then
  for _, g in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    local n = redis.pcall('ZCARD', ARGV[4] .. g)
    if type(n) == 'table' and n.err then return {'err', 'group', n.err} end
    aggregating = aggregating + n
  end
end
return {'ok', since, nolease, ngroups, aggregating}
"""

# Live servers with their ServerInfo, as Asynq's Inspector lists them: score >= now (whole seconds)
# and the ServerInfo key still there (it expires with the heartbeat). KEYS: asynq:servers. ARGV: now.
SERVERS_SCRIPT = """
local out = {redis.call('ZCARD', KEYS[1])}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'LIMIT', 0, 1000)) do
  local v = redis.pcall('GET', m)
  if type(v) == 'table' and v.err then v = '' end
  if v then
    table.insert(out, m)
    table.insert(out, v)
  end
end
return out
"""

# Live schedulers' cron entries, each with the newest score of asynq:scheduler_history:<entry id>.
# A scheduler is live while its score >= now (whole seconds) and its entries list is there (both expire
# with its heartbeat; Asynq's Inspector knows a scheduler only through its entries).
# The entry id is protobuf field 1 of SchedulerEntry, read here with a minimal wire-format walk.
# KEYS: asynq:schedulers. ARGV: now, max entries. Returns {registered, live, entry, newest score, ...}.
SCHEDULERS_SCRIPT = """
local function field1(s)
  local i, n = 1, #s
  local function varint()
    local v, mul = 0, 1
    while i <= n do
      local b = string.byte(s, i)
      i = i + 1
      v = v + (b % 128) * mul
      if b < 128 then return v end
      mul = mul * 128
    end
    return nil
  end
  while i <= n do
    local tag = varint()
    if not tag then return nil end
    local f, wt = math.floor(tag / 8), tag % 8
    if wt == 0 then
      if not varint() then return nil end
    elseif wt == 1 then i = i + 8
    elseif wt == 5 then i = i + 4
    elseif wt == 2 then
      local len = varint()
      if not len then return nil end
      if f == 1 then return string.sub(s, i, i + len - 1) end
      i = i + len
    else return nil end
  end
  return nil
end
local live = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'LIMIT', 0, 100)
local out = {redis.call('ZCARD', KEYS[1]), 0}
local budget = tonumber(ARGV[2])
for _, s in ipairs(live) do
  local entries = redis.pcall('LRANGE', s, 0, math.max(budget, 1) - 1)
  if type(entries) == 'table' and entries.err then
    out[2] = out[2] + 1
    table.insert(out, '')
    table.insert(out, 'err')
  else
    if #entries > 0 then out[2] = out[2] + 1 end
    for _, e in ipairs(entries) do
      if budget <= 0 then break end
      budget = budget - 1
      local id = field1(e)
      local newest = ''
      if id then
        local h = redis.pcall('ZREVRANGE', 'asynq:scheduler_history:' .. id, 0, 0, 'WITHSCORES')
        if type(h) == 'table' and not h.err and h[2] then newest = h[2] end
      end
      table.insert(out, e)
      table.insert(out, newest)
    end
  end
end
return out
"""

# Per queue, in pipeline order: (key suffix or metric key, command).
_QUEUE_COMMANDS: tuple[tuple[str, str], ...] = (
    ("pending", "LLEN"),
    ("active", "LLEN"),
    ("scheduled", "ZCARD"),
    ("retry", "ZCARD"),
    ("archived", "ZCARD"),
    ("completed", "ZCARD"),
    ("paused", "EXISTS"),
    ("processed", "GET"),
    ("failed", "GET"),
    ("processed_today", "GET"),
    ("failed_today", "GET"),
    ("lease", "ZCOUNT"),
)


def queue_key(queue: str, suffix: str) -> str:
    """Asynq's key for a queue: the name in braces is a Redis Cluster hash tag."""
    return f"asynq:{{{queue}}}:{suffix}"


@dataclass
class QueueReading:
    """What one queue's replies said; `errors` maps key -> reason for the keys that were malformed."""

    name: str
    values: dict[str, float] = field(default_factory=dict)
    latency: float | None = None
    no_lease: float | None = None
    groups: float | None = None
    errors: dict[str, str] = field(default_factory=dict)


class AsynqProbe(Probe):
    """Reads every queue, server and scheduler of Asynq in SMEMBERS + one pipeline."""

    family = kind = "asynq"

    def __init__(self, cfg: AsynqConfig, config: Config, deps: Dependencies, name: str = "asynq") -> None:
        super().__init__(name, cfg.interval, cfg.timeout)
        self._cfg = cfg
        self._deps = deps
        self._client = client(config.redis, cfg.timeout, cfg.db)
        self._eval = "EVAL_RO"

    async def collect(self) -> Samples:
        now = time.time()
        try:
            async with self._deps.throttle("redis"):
                raw = await self._client.smembers("asynq:queues")
                listed = {q.decode("utf-8", "replace") if isinstance(q, bytes) else q for q in raw}
                queues = sorted(listed.union(self._cfg.queues))
                replies = await self._read(queues, now)
                if self._eval == "EVAL_RO" and _unknown_command(replies[-1]):  # Redis < 7.0
                    self._eval = "EVAL"
                    replies = await self._read(queues, now)
        except BaseException:
            await self._client.connection_pool.disconnect()
            raise
        return self._samples(queues, listed, replies, now)

    async def _read(self, queues: list[str], now: float) -> list[Any]:
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        second = int(now)  # Asynq compares heartbeat and lease scores (unix seconds) with now.Unix()
        pipe = self._client.pipeline(transaction=False)
        for q in queues:
            for suffix, command in _QUEUE_COMMANDS:
                if suffix.endswith("_today"):
                    pipe.execute_command("GET", queue_key(q, f"{suffix.removesuffix('_today')}:{day}"))
                elif command == "ZCOUNT":  # lease score <= now: Asynq's own test for an expired lease
                    pipe.execute_command("ZCOUNT", queue_key(q, "lease"), "-inf", second)
                else:
                    pipe.execute_command(command, queue_key(q, suffix))
            pipe.execute_command(
                self._eval, QUEUE_SCRIPT, 4, queue_key(q, "pending"), queue_key(q, "active"), queue_key(q, "lease"),
                queue_key(q, "groups"), queue_key(q, "t:"), self._cfg.max_active_checked,
                self._cfg.max_groups_checked, queue_key(q, "g:"),
            )
        pipe.execute_command(self._eval, SERVERS_SCRIPT, 1, "asynq:servers", second)
        pipe.execute_command(self._eval, SCHEDULERS_SCRIPT, 1, "asynq:schedulers", second,
                             self._cfg.max_scheduler_entries)
        return list(await pipe.execute(raise_on_error=False))

    def _samples(self, queues: list[str], listed: set[str], replies: list[Any], now: float) -> Samples:
        s = Samples()
        s.add(UP, 1)
        s.add(QUEUES, len(listed))
        per_queue = len(_QUEUE_COMMANDS) + 1
        for i, q in enumerate(queues):
            reading = _queue(q, replies[i * per_queue:(i + 1) * per_queue], now)
            s.add(QUEUE_LISTED, 1 if q in listed else 0, queue=q)
            _add_queue(s, reading)
        servers_reply, schedulers_reply = replies[-2], replies[-1]
        _add_servers(s, servers_reply)
        _add_schedulers(s, schedulers_reply)
        return s

    def failed(self, reason: str) -> Samples:
        return Samples.of(UP, 0)

    async def close(self) -> None:
        await self._client.aclose()


def _unknown_command(reply: Any) -> bool:
    return isinstance(reply, ResponseError) and "unknown command" in str(reply).lower()


def _reason(reply: Any) -> str:
    return "wrong_type" if "WRONGTYPE" in str(reply) else "error"


def _queue(name: str, replies: list[Any], now: float) -> QueueReading:
    reading = QueueReading(name)
    for (suffix, command), reply in zip(_QUEUE_COMMANDS, replies, strict=False):
        if isinstance(reply, Exception):
            reading.errors[suffix.removesuffix("_today")] = _reason(reply)
            continue
        if command == "GET":
            if reply is None:
                reading.values[suffix] = 0.0
                continue
            try:
                reading.values[suffix] = float(int(reply))
            except ValueError:
                reading.errors[suffix.removesuffix("_today")] = "bad_value"
            continue
        reading.values[suffix] = float(reply)
    script = replies[-1]
    if isinstance(script, Exception):
        reading.errors["pending"] = reading.errors.get("pending", _reason(script))
    elif script[0] == b"err":
        reading.errors[script[1].decode()] = _reason(script[2])
    else:
        since = script[1]
        reading.no_lease = float(script[2])
        reading.groups = float(script[3])
        if int(script[4]) >= 0:  # -1: more groups than the bound, not summed
            reading.values["aggregating"] = float(script[4])
        try:
            reading.latency = max(0.0, now - int(since) / 1e9) if since else 0.0
        except ValueError:
            reading.errors["task"] = "bad_value"
    return reading


def _add_queue(s: Samples, r: QueueReading) -> None:
    q = r.name
    s.add(QUEUE_READ_OK, 0 if r.errors else 1, queue=q)
    for key, reason in sorted(r.errors.items()):
        s.add(QUEUE_ERROR, queue=q, key=key, reason=reason)
    v = r.values
    for state in STATES:
        if state in v:
            s.add(TASKS, v[state], queue=q, state=state)
    if all(state in v for state in STATES):
        s.add(QUEUE_SIZE, sum(v[state] for state in STATES), queue=q)
    if "paused" in v:
        s.add(PAUSED, 1 if v["paused"] else 0, queue=q)
    for key, spec in (("processed", PROCESSED), ("failed", FAILED),
                      ("processed_today", PROCESSED_TODAY), ("failed_today", FAILED_TODAY)):
        if key in v:
            s.add(spec, v[key], queue=q)
    if r.latency is not None:
        s.add(LATENCY, r.latency, queue=q)
    if r.groups is not None:
        s.add(GROUPS, r.groups, queue=q)
    if "lease" in v:
        s.add(STUCK, v["lease"], queue=q, reason="lease_expired")
    if r.no_lease is not None:
        s.add(STUCK, r.no_lease, queue=q, reason="no_lease")


def _registry_read(s: Samples, reply: Any, registry: str) -> bool:
    """Publish whether a registry's script read succeeded; False when Redis answered with an error."""
    ok = not isinstance(reply, ResponseError)
    s.add(REGISTRY_READ_OK, 1 if ok else 0, registry=registry)
    return ok


def _add_servers(s: Samples, reply: Any) -> None:
    if not _registry_read(s, reply, "servers"):
        return
    s.add(SERVERS_REGISTERED, float(reply[0]))
    statuses = dict.fromkeys(SERVER_STATUSES, 0)
    undecodable = 0
    for member, data in zip(reply[1::2], reply[2::2], strict=False):
        try:
            if not data:
                raise proto.DecodeError("missing")
            msg = proto.decode(proto.ServerInfo, data)
        except proto.DecodeError:
            undecodable += 1
            continue
        server = member.decode("utf-8", "replace").removeprefix("asynq:servers:").strip("{}")
        status = msg.status or "unknown"
        statuses[status] = statuses.get(status, 0) + 1
        s.add(SERVER_CONCURRENCY, msg.concurrency, server=server)
        s.add(SERVER_ACTIVE, msg.active_worker_count, server=server)
        for queue, priority in sorted(msg.queues.items()):
            s.add(SERVER_QUEUE, priority, server=server, queue=queue)
    for status, count in statuses.items():
        s.add(SERVERS_LIVE, count, status=status)
    s.add(SERVERS_UNDECODABLE, undecodable)


def _add_schedulers(s: Samples, reply: Any) -> None:
    if not _registry_read(s, reply, "schedulers"):
        return
    s.add(SCHEDULERS_REGISTERED, float(reply[0]))
    s.add(SCHEDULERS_LIVE, float(reply[1]))
    last: dict[tuple[str, str], float] = {}
    interval: dict[tuple[str, str], float] = {}
    undecodable = 0
    for data, newest in zip(reply[2::2], reply[3::2], strict=False):
        try:
            if newest == b"err":
                raise proto.DecodeError("scheduler list unreadable")
            entry = proto.decode(proto.SchedulerEntry, data)
            if not entry.id:
                raise proto.DecodeError("entry without id")
        except proto.DecodeError:
            undecodable += 1
            continue
        key = (entry.task_type, entry.spec)
        prev, nxt = entry.prev_enqueue_time.seconds, entry.next_enqueue_time.seconds
        interval[key] = max(interval.get(key, 0.0), float(nxt - prev) if prev > 0 and nxt > prev else 0.0)
        if newest:
            last[key] = max(last.get(key, 0.0), float(newest))
    for (task_type, spec), value in sorted(interval.items()):
        s.add(CRON_INTERVAL, value, task_type=task_type, schedule=spec)
    for (task_type, spec), value in sorted(last.items()):
        s.add(CRON_LAST, value, task_type=task_type, schedule=spec)
    s.add(CRON_UNDECODABLE, undecodable)


def build(config: Config, deps: Dependencies) -> list[Probe]:
    enabled = config.redis.enabled if config.asynq.enabled is None else config.asynq.enabled
    return [AsynqProbe(config.asynq, config, deps)] if enabled else []
