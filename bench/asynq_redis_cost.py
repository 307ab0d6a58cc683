"""Redis CPU per cycle of the Asynq probe vs Debian's prometheus-redis-exporter --check-keys.

Run from the repository root:  .venv/bin/python bench/asynq_redis_cost.py [--queues 5] [--tasks 1000]

A private redis-server (free loopback port) gets N queues x M pending tasks written the way Asynq
writes them, plus a live worker server and a scheduler. Each contender runs CYCLES times between a
CONFIG RESETSTAT and an INFO commandstats; the table shows Redis CPU (sum of usec) and commands per
cycle. prometheus-redis-exporter's default scrape also runs INFO, CONFIG GET, SLOWLOG, LATENCY and
CLIENT LIST; its per-scrape cost is shown whole and split into key checks and the rest.
Prints numbers; asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.config import Config
from exporter.drill.asynq_state import AsynqState, CronEntry
from exporter.probes.asynq import AsynqProbe
from exporter.probes.deps import Dependencies
from tests.helpers.servers import RedisServer, free_port, stop_process, wait_for_port

STATES = ("pending", "active", "scheduled", "retry", "archived", "completed", "processed", "failed")
KEY_CHECK_COMMANDS = ("scan", "type", "llen", "zcard", "scard", "hlen", "strlen", "get", "xlen", "pfcount",
                      "memory|usage", "select", "exists")
SETUP = ("config|resetstat", "client|setname", "client|setinfo", "hello")


def write_state(r: redis.Redis, queues: int, tasks: int) -> None:
    state = AsynqState(r)
    now = time.time()
    for q in range(queues):
        for i in range(tasks):
            state.enqueue(f"queue{q}", now - tasks + i)
    state.heartbeat("worker-0", 1, "bench", at=now + 3600, concurrency=10,
                    queues={f"queue{q}": 1 for q in range(queues)}, ttl=3600)
    entry = CronEntry("@every 1m", "bench:tick", next_at=now + 30, prev_at=now - 30)
    state.scheduler_heartbeat("bench", [entry], at=now + 3600, ttl=3600)
    state.record_enqueue(entry, now - 30)


def commandstats(r: redis.Redis) -> dict[str, tuple[int, int]]:
    stats = r.info("commandstats")
    return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for name, v in stats.items()
            if name.removeprefix("cmdstat_") not in SETUP}


def summarize(stats: dict[str, tuple[int, int]], cycles: int) -> tuple[float, float, float, float]:
    """usec and calls per cycle: total, and the key-check part."""
    total_us = sum(us for _, us in stats.values()) / cycles
    total_calls = sum(c for c, _ in stats.values()) / cycles
    keys_us = sum(us for n, (_, us) in stats.items() if n in KEY_CHECK_COMMANDS) / cycles
    keys_calls = sum(c for n, (c, _) in stats.items() if n in KEY_CHECK_COMMANDS) / cycles
    return total_us, total_calls, keys_us, keys_calls


async def run_probe(server: RedisServer, r: redis.Redis, cycles: int) -> tuple[dict[str, tuple[int, int]], float]:
    config = Config(redis={"url": server.url})  # type: ignore[arg-type]
    probe = AsynqProbe(config.asynq, config, Dependencies())
    await probe.collect()  # connect outside the measurement
    r.config_resetstat()
    started = time.perf_counter()
    for _ in range(cycles):
        await probe.collect()
    wall = (time.perf_counter() - started) / cycles
    stats = commandstats(r)
    await probe.close()
    return stats, wall


def run_redis_exporter(binary: str, server: RedisServer, r: redis.Redis, cycles: int, flag: str,
                       keys: list[str]) -> tuple[dict[str, tuple[int, int]], float]:
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"-redis.addr=redis://127.0.0.1:{server.port}", f"-web.listen-address=127.0.0.1:{port}",
         f"-{flag}={','.join(keys)}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}/metrics"
        urllib.request.urlopen(url, timeout=30).read()
        r.config_resetstat()
        started = time.perf_counter()
        for _ in range(cycles):
            urllib.request.urlopen(url, timeout=30).read()
        wall = (time.perf_counter() - started) / cycles
        return commandstats(r), wall
    finally:
        stop_process(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=20)
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    try:
        r = redis.Redis(port=server.port)
        write_state(r, args.queues, args.tasks)
        keys = [f"asynq:{{queue{q}}}:{s}" for q in range(args.queues) for s in STATES]
        rows = [("honeydue asynq probe (SMEMBERS + 1 pipeline)", *asyncio.run(run_probe(server, r, args.cycles)))]
        binary = shutil.which("prometheus-redis-exporter") or "/usr/bin/prometheus-redis-exporter"
        if Path(binary).exists():
            for flag in ("check-keys", "check-single-keys"):
                stats, wall = run_redis_exporter(binary, server, r, args.cycles, flag, keys)
                rows.append((f"prometheus-redis-exporter --{flag} ({len(keys)} keys)", stats, wall))
        else:
            print(f"({binary} not found: apt-get install prometheus-redis-exporter)")
        dbsize = r.dbsize()
        r.close()
    finally:
        server.stop()
    print(f"{args.queues} queues x {args.tasks} pending tasks, {dbsize} keys in Redis, {args.cycles} cycles each\n")
    header = f"{'contender':<58} {'redis usec/cycle':>16} {'cmds/cycle':>10} {'key-check usec':>14} " \
             f"{'key-check cmds':>14} {'wall ms/cycle':>13}"
    print(header)
    print("-" * len(header))
    for name, stats, wall in rows:
        total_us, calls, keys_us, key_calls = summarize(stats, args.cycles)
        print(f"{name:<58} {total_us:>16.1f} {calls:>10.1f} {keys_us:>14.1f} {key_calls:>14.1f} {wall * 1000:>13.2f}")
    print("\nEVAL's usec already includes the commands its script runs, which commandstats lists again, so the")
    print("probe's figure is an upper bound. Key-check columns: the commands that read the listed keys.")
    print("\nTop commands per cycle (calls, usec):")
    for name, stats, _ in rows:
        top = sorted(stats.items(), key=lambda kv: -kv[1][1])[:6]
        print(f"  {name}: " + ", ".join(f"{n} {c / args.cycles:g}x {us / args.cycles:.0f}us" for n, (c, us) in top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
