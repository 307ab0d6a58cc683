"""The real Asynq in tests: the peer per Asynq version, and the differential check of the exporter's Asynq
metrics against Asynq's own Inspector view (names mapped as in docs/asynq.md).

Every sample the probe publishes is either compared with the Inspector's value (exact for counts, within
1 s for latency and timestamps), checked as an invariant real Asynq always keeps (nothing undecodable,
no active task without a lease), or listed in NO_COUNTERPART with the reason the Inspector cannot say.
A sample the Inspector implies but the probe lacks fails just the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.asyncio.connection import Connection

from testbed.asynqpeer import VERSIONS, AsynqPeer, Started, binary

import tests.helpers.servers  # noqa: F401 - installs the skip-or-fail hook for a peer that is not built
from exporter.probes.asynq import SERVER_STATUSES, AsynqProbe
from exporter.samples import Samples

__all__ = ["VERSIONS", "AsynqPeer", "CycleCost", "Row", "Started", "binary", "check", "cycle_cost", "differential",
           "snapshot", "write_table"]

Key = tuple[str, tuple[tuple[str, str], ...]]

# Published, but nothing in the Inspector's view says what they should be.
NO_COUNTERPART = {
    "honeydue_asynq_servers_registered": "members of asynq:servers incl. dead ones; the Inspector prunes them",
    "honeydue_asynq_schedulers_registered": "members of asynq:schedulers incl. dead ones; the Inspector prunes them",
}
TIME_TOLERANCE = 1.0  # seconds, for latency and timestamps


@dataclass(frozen=True)
class Row:
    scenario: str
    version: str
    metric: str
    labels: str
    exporter: float | None
    inspector: float | None
    tolerance: float
    source: str  # inspector | invariant | none

    @property
    def ok(self) -> bool:
        if self.source == "none":
            return self.exporter is not None
        if self.exporter is None or self.inspector is None:
            return False
        return abs(self.exporter - self.inspector) <= self.tolerance


def _key(name: str, **labels: str) -> Key:
    return name, tuple(sorted(labels.items()))


def _published(samples: Samples) -> dict[Key, float]:
    return {(x.name, tuple(sorted(x.labels.items()))): float(x.value) for f in samples.families() for x in f.samples}


def expected(truth: dict[str, Any], live_schedulers: int | None) -> dict[Key, tuple[float, float, str]]:
    """What the Inspector's view says each sample must be: key -> (value, tolerance, source)."""
    out: dict[Key, tuple[float, float, str]] = {}

    def put(name: str, value: float, tolerance: float = 0.0, source: str = "inspector", **labels: str) -> None:
        out[_key(name, **labels)] = (float(value), tolerance, source)

    put("honeydue_asynq_up", 1)  # the Inspector read Asynq's state
    put("honeydue_asynq_queues", len(truth["queues"]))
    for q in truth["queues"]:
        name = q["queue"]
        put("honeydue_asynq_queue_read_ok", 1, queue=name)
        put("honeydue_asynq_queue_listed", 1, queue=name)  # the Inspector lists exactly asynq:queues
        for state, count in q["states"].items():
            put("asynq_tasks", count, queue=name, state=state)
        put("asynq_queue_size", q["size"], queue=name)
        put("asynq_queue_latency_seconds", q["latency_seconds"], TIME_TOLERANCE, queue=name)
        put("asynq_tasks_processed_total", q["processed_total"], queue=name)
        put("asynq_tasks_failed_total", q["failed_total"], queue=name)
        put("honeydue_asynq_tasks_processed_today", q["processed"], queue=name)
        put("honeydue_asynq_tasks_failed_today", q["failed"], queue=name)
        put("asynq_queue_paused", 1 if q["paused"] else 0, queue=name)
        put("honeydue_asynq_queue_groups", q["groups"], queue=name)
        put("honeydue_asynq_stuck_active_tasks", q["orphaned"], queue=name, reason="lease_expired")
        put("honeydue_asynq_stuck_active_tasks", 0, source="invariant", queue=name, reason="no_lease")
    statuses = dict.fromkeys(SERVER_STATUSES, 0)
    for srv in truth["servers"]:
        statuses[srv["status"]] = statuses.get(srv["status"], 0) + 1
        server = f"{srv['host']}:{srv['pid']}:{srv['id']}"
        put("honeydue_asynq_server_concurrency", srv["concurrency"], server=server)
        put("honeydue_asynq_server_active_workers", len(srv["active_workers"]), server=server)
        for queue, priority in srv["queues"].items():
            put("honeydue_asynq_server_queue_priority", priority, server=server, queue=queue)
    for status, count in statuses.items():
        put("honeydue_asynq_servers_live", count, status=status)
    put("honeydue_asynq_servers_undecodable", 0, source="invariant")
    put("honeydue_asynq_scheduler_entries_undecodable", 0, source="invariant")
    for registry in ("servers", "schedulers"):
        put("honeydue_asynq_registry_read_ok", 1, source="invariant", registry=registry)
    if live_schedulers is not None:
        put("honeydue_asynq_schedulers_live", live_schedulers)
    interval: dict[tuple[str, str], float] = {}
    last: dict[tuple[str, str], float] = {}
    for e in truth["scheduler_entries"]:
        key = (e["type"], e["spec"])
        ran = e["prev"] > 0 and e["next"] > e["prev"]
        interval[key] = max(interval.get(key, 0.0), e["next"] - e["prev"] if ran else 0.0)
        if e["events"]:
            last[key] = max(last.get(key, 0.0), e["events"][0]["enqueued_at"])  # newest first
    for (task_type, spec), value in interval.items():
        put("honeydue_asynq_cron_interval_seconds", value, TIME_TOLERANCE, task_type=task_type, schedule=spec)
    for (task_type, spec), value in last.items():
        put("honeydue_asynq_cron_last_enqueue_timestamp_seconds", value, TIME_TOLERANCE,
            task_type=task_type, schedule=spec)
    return out


def live_schedulers(peer: AsynqPeer, truth: dict[str, Any]) -> int:
    """Schedulers this peer started whose entries the Inspector lists (it knows schedulers only that way)."""
    shown = {e["id"] for e in truth["scheduler_entries"]}
    return sum(1 for s in peer.started if s.kind == "scheduler" and shown & set(s.entries))


def differential(scenario: str, peer: AsynqPeer, samples: Samples, truth: dict[str, Any]) -> list[Row]:
    """One row per sample published or implied; `Row.ok` says whether it matched."""
    want = expected(truth, live_schedulers(peer, truth))
    got = _published(samples)
    rows = []
    for key in sorted(set(want) | set(got)):
        name, labels = key
        text = ",".join(f"{k}={v}" for k, v in labels)
        if key in want:
            value, tolerance, source = want[key]
            rows.append(Row(scenario, peer.version, name, text, got.get(key), value, tolerance, source))
        elif name in NO_COUNTERPART:
            rows.append(Row(scenario, peer.version, name, text, got[key], None, 0.0, "none"))
        else:  # published, but the Inspector's view has no such thing
            rows.append(Row(scenario, peer.version, name, text, got[key], None, 0.0, "inspector"))
    return rows


def _stable(view: dict[str, Any]) -> Any:
    """The view without what changes by itself (the clock, latency, sampled memory), in a fixed order."""
    queues = [{k: v for k, v in q.items() if k not in ("latency_seconds", "memory_usage_bytes")} for q in view["queues"]]
    servers = [dict(s, active_workers=sorted(w["task_id"] for w in s["active_workers"])) for s in view["servers"]]
    return queues, servers, view["scheduler_entries"]


async def snapshot(peer: AsynqPeer, probe: AsynqProbe, attempts: int = 8) -> tuple[Samples, dict[str, Any]]:
    """The probe's samples bracketed by two equal Inspector views: nothing changed while it read Redis."""
    for _ in range(attempts):
        before = peer.inspect()
        samples = await probe.collect()
        after = peer.inspect()
        if _stable(before) == _stable(after):
            return samples, after
    raise AssertionError(f"Asynq's state kept changing over {attempts} snapshots (freeze the peers first)")


def failures(rows: Iterable[Row]) -> list[str]:
    return [f"{r.metric}{{{r.labels}}}: exporter {r.exporter} != inspector {r.inspector} (±{r.tolerance:g}, {r.source})"
            for r in rows if not r.ok]


TABLE: list[Row] = []


def check(scenario: str, peer: AsynqPeer, samples: Samples, truth: dict[str, Any]) -> list[Row]:
    """differential() + assert every row matched; the rows go to the table (write_table)."""
    rows = differential(scenario, peer, samples, truth)
    TABLE.extend(rows)
    bad = failures(rows)
    assert not bad, f"{scenario} (Asynq {peer.version}):\n" + "\n".join(bad)
    return rows


def write_table(path: Path | None = None) -> None:
    """The table of every compared sample, to $HONEYDUE_ASYNQ_TABLE (if set) or `path`."""
    target = path or (Path(os.environ["HONEYDUE_ASYNQ_TABLE"]) if os.environ.get("HONEYDUE_ASYNQ_TABLE") else None)
    if target is None or not TABLE:
        return

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.0f}" if float(x).is_integer() else f"{x:.3f}"

    lines = ["scenario\tasynq\tmetric\tlabels\texporter\tinspector\ttolerance\tsource\tok"]
    lines += [f"{r.scenario}\t{r.version}\t{r.metric}\t{r.labels}\t{fmt(r.exporter)}\t{fmt(r.inspector)}\t"
              f"{r.tolerance:g}\t{r.source}\t{'yes' if r.ok else 'NO'}" for r in TABLE]
    target.write_text("\n".join(lines) + "\n")


# --- what one probe cycle costs Redis (the tests count, bench/asynq_redis_cost.py also times) ----------------

class CountingConnection(Connection):
    """Counts writes to the socket: one per command sent alone, one per pipeline (= round trips)."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        await super().send_packed_command(command, check_health)


def count_round_trips(probe: AsynqProbe) -> None:
    """From now on the probe's connections count their round trips in CountingConnection.sends."""
    probe._client.connection_pool.connection_class = CountingConnection


@dataclass(frozen=True)
class CycleCost:
    round_trips: int
    calls: dict[str, int]  # Redis command -> calls (INFO commandstats; a script's inner commands included)
    usec: int  # Redis CPU: sum of commandstats usec (EVAL's own figure already includes its inner commands)


async def cycle_cost(probe: AsynqProbe, r: redis.Redis, cycles: int = 1) -> CycleCost:
    """Round trips, Redis commands and Redis CPU of `cycles` probe cycles (count_round_trips first), with
    nothing else talking to that Redis (freeze the peers)."""
    r.config_resetstat()
    CountingConnection.sends = 0
    for _ in range(cycles):
        await probe.collect()
    sends = CountingConnection.sends
    stats = {name.removeprefix("cmdstat_"): stat for name, stat in r.info("commandstats").items()}
    stats.pop("config|resetstat", None)
    return CycleCost(sends, {name: int(stat["calls"]) for name, stat in stats.items()},
                     sum(int(stat["usec"]) for stat in stats.values()))
