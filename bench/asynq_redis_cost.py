"""Redis CPU per cycle of the Asynq probe: against the queue's size, and vs Debian's prometheus-redis-exporter.

Run from the repository root:  .venv/bin/python -m bench.asynq_redis_cost [--queues 5] [--tasks 1000] [--window 10]
                               [--pending 10,100000] [--pending-only]

First, the probe's cost against the backlog: for each --pending size, a fresh private redis-server holds one
queue with that many pending tasks (written by the real Asynq, tests/peers/bin/asynqpeer), nothing else
running; the table gives round trips, Redis commands and Redis CPU (INFO commandstats usec) per probe
cycle, the median of ROUNDS rounds of PENDING_CYCLES cycles, and each size's ratio to the first; a control
row puts the smallest backlog beside --other-keys unrelated keys (the keyspace alone, without the backlog).

Then, against prometheus-redis-exporter: a private redis-server gets N queues x M pending tasks, plus a
live worker server and a scheduler. Each contender runs CYCLES times between a CONFIG RESETSTAT and an
INFO commandstats; the table shows Redis CPU (sum of usec) and commands per cycle.
prometheus-redis-exporter's default scrape also runs INFO, CONFIG GET, SLOWLOG, LATENCY and CLIENT LIST;
its per-scrape cost is shown whole and split into key checks and the rest.
Then the growth table: each contender alone against the Redis, scraped by 1, 10 and 100 scrapers
(each once a second); Redis commands and CPU per second from INFO commandstats.
Asynq's own processes are frozen (SIGSTOP) while anything is measured, so Redis' counters hold only the
contenders' commands. Prints numbers; asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._peers import REPO, ours_env, seed_asynq, table
from exporter.config import Config
from exporter.probes.asynq import AsynqProbe
from exporter.probes.deps import Dependencies
from tests.helpers.asynq_peer import count_round_trips, cycle_cost
from tests.helpers.servers import RedisServer, free_port, stop_process, wait_for_port

STATES = ("pending", "active", "scheduled", "retry", "archived", "completed", "processed", "failed")
KEY_CHECK_COMMANDS = ("scan", "type", "llen", "zcard", "scard", "hlen", "strlen", "get", "xlen", "pfcount",
                      "memory|usage", "select", "exists")
SETUP = ("config|resetstat", "client|setname", "client|setinfo", "hello")
SCRAPERS = (1, 10, 100)


def redis_cpu(r: redis.Redis) -> float:
    """redis-server's own CPU seconds (INFO cpu: getrusage, microsecond resolution), background work included."""
    cpu = r.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def pending_cost(sizes: list[int], cycles: int, rounds: int, other_keys: int) -> list[tuple[object, ...]]:
    """Per size: round trips, commands and Redis usec per probe cycle, ratio to the first size; then the first
    size again beside `other_keys` unrelated keys (a keyspace as big, without the backlog).

    Every case has its own redis-server, all up at once; the rounds alternate between them so the load of
    the machine weighs on each alike, and each figure is the median of `rounds`."""
    cases = [(f"{size:,}", size, 0) for size in sizes]
    if other_keys:
        cases.append((f"{sizes[0]:,} + {other_keys:,} other keys", sizes[0], other_keys))
    servers: list[RedisServer] = []
    peers = []
    probes: list[AsynqProbe] = []
    clients: list[redis.Redis] = []
    costs: dict[str, list[tuple[float, float, float, float]]] = {label: [] for label, _, _ in cases}
    try:
        for _, size, others in cases:
            server = RedisServer()
            server.start()
            servers.append(server)
            _, peer = seed_asynq(server.port, 1, size, live=False)
            peers.append(peer)
            with redis.Redis(port=server.port) as r:
                for start in range(0, others, 10_000):  # hashes the size of a task's, outside asynq:*
                    pipe = r.pipeline(transaction=False)
                    for i in range(start, min(others, start + 10_000)):
                        pipe.hset(f"other:{i}", mapping={"msg": "x" * 200, "state": "pending"})
                    pipe.execute()
            config = Config(redis={"url": server.url})  # type: ignore[arg-type]
            probe = AsynqProbe(config.asynq, config, Dependencies())
            count_round_trips(probe)
            probes.append(probe)
            clients.append(redis.Redis(port=server.port))
            await probe.collect()  # connect outside the measurement
        with contextlib.ExitStack() as frozen:
            for peer in peers:
                frozen.enter_context(peer.frozen())
            for _ in range(rounds):
                for (label, _, _), probe, r in zip(cases, probes, clients, strict=True):
                    before = redis_cpu(r)
                    cost = await cycle_cost(probe, r, cycles)
                    cpu = redis_cpu(r) - before
                    costs[label].append((cost.round_trips / cycles, sum(cost.calls.values()) / cycles,
                                        cost.usec / cycles, cpu * 1e6 / cycles))
    finally:
        for probe in probes:
            await probe.close()
        for r in clients:
            r.close()
        for peer in peers:
            peer.stop_all()
        for server in servers:
            server.stop()
    rows: list[tuple[object, ...]] = []
    first: list[float] | None = None
    for label, _, _ in cases:
        median = [statistics.median(c[i] for c in costs[label]) for i in range(4)]
        first = first or median
        rows.append((label, f"{median[0]:g}", f"{median[1]:g}", f"{median[2]:.1f}", f"{median[3]:.0f}",
                     *(f"{m / f:.2f}" for m, f in zip(median, first, strict=True))))
    return rows


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


async def _scrapers(url: str, n: int, window: float) -> int:
    """`n` scrapers, each scraping once a second (a Prometheus at scrape_interval 1s) for `window` seconds."""
    import aiohttp

    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def scraper(offset: float) -> None:
            nonlocal done
            await asyncio.sleep(offset)
            deadline = time.monotonic() + window - offset
            while time.monotonic() < deadline:
                started = time.monotonic()
                async with session.get(url) as response:
                    await response.read()
                done += 1
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))

        await asyncio.gather(*(scraper(i / n) for i in range(n)))
    return done


def growth(server: RedisServer, r: redis.Redis, keys: list[str], window: float) -> list[tuple[object, ...]]:
    """Redis commands and CPU per second while 1, 10, 100 scrapers scrape each contender, one contender at a time."""
    rows: list[tuple[object, ...]] = []
    contenders: list[tuple[str, list[str], dict[str, str] | None]] = []
    port = free_port()
    contenders.append(("honeydue-exporter (probes every 1 s)", [sys.executable, "-m", "exporter", "run"],
                       ours_env(port, server.url, 1.0, {"HONEYDUE_POSTGRES__POOLER__ENABLED": "false",
                                                        "HONEYDUE_POSTGRES__DIRECT__ENABLED": "false"})))
    binary = shutil.which("prometheus-redis-exporter")
    if binary:
        contenders.append(("prometheus-redis-exporter --check-keys", [
            binary, f"-redis.addr=redis://127.0.0.1:{server.port}", f"-check-keys={','.join(keys)}"], None))
    for name, command, env in contenders:
        own = port if env is not None else free_port()
        if env is None:
            command = [*command, f"-web.listen-address=127.0.0.1:{own}"]
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(own, 20)
            url = f"http://127.0.0.1:{own}/metrics"
            time.sleep(2)
            urllib.request.urlopen(url, timeout=30).read()
            for n in SCRAPERS:
                r.config_resetstat()
                started = time.monotonic()
                scrapes = asyncio.run(_scrapers(url, n, window))
                elapsed = time.monotonic() - started
                stats = commandstats(r)
                calls = sum(c for c, _ in stats.values()) / elapsed
                usec = sum(us for _, us in stats.values()) / elapsed
                rows.append((name, n, f"{scrapes / elapsed:.1f}", f"{calls:.0f}", f"{usec / 1000:.2f}",
                             f"{100 * usec / 1e6:.2f}%"))
        finally:
            stop_process(proc)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--window", type=float, default=10.0, help="seconds of each scraper-growth run")
    parser.add_argument("--pending", default="10,100000", help="backlog sizes to compare the probe's cost at")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per backlog size (median)")
    parser.add_argument("--pending-cycles", type=int, default=200,
                        help="probe cycles per round")
    parser.add_argument("--other-keys", type=int, default=100_000,
                        help="control: the smallest backlog beside this many unrelated keys (0: none)")
    parser.add_argument("--pending-only", action="store_true", help="only the backlog-size comparison")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.pending.split(",") if x]
    by_size = asyncio.run(pending_cost(sizes, args.pending_cycles, args.rounds, args.other_keys))
    print(f"The probe against one queue's backlog ({args.rounds} alternating rounds x {args.pending_cycles} cycles, "
          "median):")
    print(table(("pending tasks", "round trips/cycle", "cmds/cycle", "cmdstats usec/cycle", "process CPU usec/cycle",
                 "x trips", "x cmds", "x usec", "x CPU"), by_size))
    print("cmdstats usec counts a script's inner commands twice (EVAL's own figure includes them): an upper bound;")
    print("process CPU is redis-server's user+system time (INFO cpu), background work included. The same commands")
    print("run whatever the backlog; a bigger keyspace makes each key lookup a little slower (the control row).\n")
    if args.pending_only:
        return 0
    server = RedisServer()
    server.start()
    peer = None
    try:
        r = redis.Redis(port=server.port)
        keys, peer = seed_asynq(server.port, args.queues, args.tasks)
        with peer.frozen():
            rows = [("honeydue asynq probe (SMEMBERS + 1 pipeline)", *asyncio.run(run_probe(server, r, args.cycles)))]
            binary = shutil.which("prometheus-redis-exporter") or "/usr/bin/prometheus-redis-exporter"
            if Path(binary).exists():
                for flag in ("check-keys", "check-single-keys"):
                    stats, wall = run_redis_exporter(binary, server, r, args.cycles, flag, keys)
                    rows.append((f"prometheus-redis-exporter --{flag} ({len(keys)} keys)", stats, wall))
            else:
                print(f"({binary} not found: apt-get install prometheus-redis-exporter)")
            dbsize = r.dbsize()
            grown = growth(server, r, keys, args.window)
        r.close()
    finally:
        if peer is not None:
            peer.stop_all()
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
    print(f"\nGrowth with scrapers (each scrapes once a second, {args.window:g} s per run, one contender at a time):")
    print(table(("contender", "scrapers", "scrapes/s", "Redis cmds/s", "Redis CPU ms/s", "Redis CPU"), grown))
    print("Ours stays flat: probes run on their own schedule and every scrape is served from memory.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
