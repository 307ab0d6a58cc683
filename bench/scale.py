"""Cost as the work grows: every probe family, from honeyDue's size to far beyond it.

    .venv/bin/python -m bench scale                 # or: python -m bench.scale [--cycles 5] [--only asynq,kubernetes]
    .venv/bin/python -m bench.scale --kube-backend package.module:function   # another Kubernetes back end

For each family the bench grows one dimension of the watched system at a time and measures, per point,
in a fresh process that runs the exporter's own engine and /metrics renderer (bench/_scale_worker.py):
cycle wall time, CPU seconds per cycle (every thread of the process), RSS idle (probes built, before
the first cycle), steady (after the cycles) and peak (VmHWM), /metrics size and render time (text and
gzip), and the load on the watched system during the measured cycles: Redis commands, their CPU
(INFO commandstats) and the server's CPU (INFO cpu); API server requests and bytes; Postgres
transactions and tuples (pg_stat_database of the bench's own database); HTTP requests, DNS queries
(dnsmasq's statistics on SIGUSR1) and TCP accepts.

Sweeps: Asynq 1 -> 1,000 queues, 10 -> 1,000,000 pending tasks, 1 -> 50 worker servers, 1 -> 500 cron
entries; HTTP, DNS and TCP 5 -> 500 targets; residence cache 10 -> 1,000,000 keys; Kubernetes 3 -> 100
nodes, 30 -> 10,000 pods, 5 -> 500 deployments (5 watched) and 100 -> 10,000 pods in a namespace
nobody watches. Each sweep is "exported" (what grows becomes series) or "stored" (it only sits in the
watched system). The bound: cost (CPU per cycle, and the watched system's commands, server CPU,
queries, requests and bytes) grows at most linearly with what is exported and not at all with what is
stored. For an exported sweep it is judged by the growth exponent at the top of the range (between the
two largest points, where growth matters and timing noise weighs least), of what each point adds over
the smallest one against the series it adds (<= 1.15; fixed costs would bend a plain fit). For a stored
sweep, by the exponent of the whole cost against the stored count over the whole range (<= 0.1:
100,000x the keys, under 3.2x the cost; the residence cache from its sample size up). Redis CPU is
INFO cpu (what the server spent); commandstats usec is printed but not bounded; the exporter's CPU in
an exported sweep is judged only when it reaches 20 ms per cycle (below, two figures' exponent is
scheduling noise; the exact counts of commands, requests and bytes are judged always). The points run with
series_limit raised out of the way, so the curves show the full cost; one more Kubernetes point shows
10,000 pods under the default limit.

Kubernetes runs against `--kube-backend` (default `real`: the control plane of testbed/kube, etcd x3,
kube-apiserver per node with TLS, kube-controller-manager, one cluster for the whole run grown to each size,
see bench/_kube_real.py). Redis is a private
redis-server on a free port (never the machine's 6379), seeded with Asynq's real key layout;
Postgres is a database created for the run on the machine's server and dropped after.

Writes one PNG per family into docs/ (matplotlib, the `bench` extra) and prints every table, the
growth fits and the bounds; `--no-plots` skips the PNGs. Timing figures are only as quiet as the
machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
import yaml

from testbed.procs import RedisServer, free_port, stop_process, wait_for_port

from bench import _bounds, _kube, _seed
from bench._peers import REPO, table
from bench._runtime import blocked_modules, image_environment, production_config_text

MiB = 2**20
EXPORTED_SLOPE = 1.15  # cost grows at most linearly with exported series (a little noise allowed)
STORED_SLOPE = 0.10  # ... and not with what is merely stored: 10x the keys, under 1.26x the cost
K8S_PEAK_OVER_IDLE = 64 * MiB
K8S_CPU = 2.0
RSS_BUDGET = 64 * MiB
NO_LIMIT = {"default": 10_000_000}
PG_DSN = os.environ.get("HONEYDUE_BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


# --- one measured point ------------------------------------------------------------------------------
@dataclass
class Point:
    size: int
    series: int
    dropped: int
    wall: float
    cpu: float
    render: float
    gzip: float
    body: int
    gzip_body: int
    rss_idle: int
    rss_steady: int
    rss_peak: int
    load: dict[str, float]
    failing: list[str]


@dataclass
class Sweep:
    family: str
    dimension: str
    kind: str  # exported | stored
    load_keys: tuple[str, ...]
    points: list[Point] = field(default_factory=list)
    flat_from: int = 0  # stored sweeps: the size from which the probe's own bound (a sample size) is reached
    flat_note: str = ""


Load = Callable[[], dict[str, float]]


class Worker:
    """bench/_scale_worker.py in a fresh process, through the runtime import blocker."""

    def __init__(self, blocked: str, workdir: Path) -> None:
        self.blocked = blocked
        self.workdir = workdir

    def run(self, config: dict[str, Any], cycles: int, family: str, reset: Callable[[], None], read: Load,
            size: int) -> Point:
        log = self.workdir / "worker.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYDUE_")} | {"PYTHONPATH": str(REPO)}
        with log.open("w") as err:
            proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "_runtime.py"), self.blocked,
                                     "bench._scale_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err, text=True, env=env, cwd=REPO)
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps({"config": config, "cycles": cycles}) + "\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line.startswith("ready"):
                    raise RuntimeError(f"worker did not start: {line!r} {log.read_text()[-2000:]}")
                reset()
                proc.stdin.write("go\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line.startswith("result"):
                    raise RuntimeError(f"worker failed: {line!r} {log.read_text()[-2000:]}")
                result = json.loads(line.split(" ", 1)[1])
                load = {k: v / cycles for k, v in read().items()}
            finally:
                proc.wait(60)
                if proc.returncode is None:
                    stop_process(proc)  # type: ignore[arg-type]
        cycles_ = result["cycles"]

        def median(key: str) -> float:
            values = sorted(c[key] for c in cycles_)
            return values[len(values) // 2]

        series = result["series_by_family"].get(family, 0)
        return Point(size, series, result["dropped"], median("wall"), median("cpu"), median("render"),
                     median("gzip"), int(median("bytes")), int(median("gzip_bytes")), result["idle"]["VmRSS"],
                     result["end"]["VmRSS"], result["end"]["VmHWM"], load, result["failing"])


def base_config(**sections: Any) -> dict[str, Any]:
    """Every family off, then `sections` (series_limit out of the way unless given)."""
    config: dict[str, Any] = {
        "redis": {"enabled": False}, "asynq": {"enabled": False},
        "postgres": {"pooler": {"enabled": False}, "direct": {"enabled": False}},
        "kubernetes": {"source": "off"}, "series_limit": NO_LIMIT,
        "rate_limits": {"postgres_per_second": 5, "kubernetes_per_second": 20},
    }
    return config | sections


# --- watched systems and their load ---------------------------------------------------------------------
class RedisLoad:
    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self._cpu = 0.0

    def _server_cpu(self) -> float:
        info = self.r.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def reset(self) -> None:
        self.r.config_resetstat()
        self._cpu = self._server_cpu()

    def read(self) -> dict[str, float]:
        cpu = self._server_cpu() - self._cpu
        stats = self.r.info("commandstats")
        own = ("cmdstat_config|resetstat", "cmdstat_info")
        calls = sum(int(v["calls"]) for k, v in stats.items() if k not in own)
        usec = sum(int(v["usec"]) for k, v in stats.items() if k not in own)
        return {"redis_cmds": calls, "redis_cmd_ms": usec / 1000, "redis_cpu_ms": cpu * 1000}


class PostgresLoad:
    def __init__(self, dsn: str, dbname: str) -> None:
        self.dsn, self.dbname = dsn, dbname
        self._start = (0, 0)

    def _counters(self) -> tuple[int, int]:
        time.sleep(1.2)  # backends publish their statistics at most once a second
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute("SELECT xact_commit + xact_rollback, tup_returned + tup_fetched "
                               "FROM pg_stat_database WHERE datname = %s", (self.dbname,)).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def reset(self) -> None:
        self._start = self._counters()

    def read(self) -> dict[str, float]:
        xacts, tuples = self._counters()
        # the two reads here are transactions of their own, in another database: not counted
        return {"pg_xacts": xacts - self._start[0], "pg_tuples": tuples - self._start[1]}


class ApiLoad:
    """Requests and response bytes the API server served (the back end counts them)."""

    def __init__(self, target: _kube.KubeTarget) -> None:
        self.target = target
        self._start = target.load()

    def reset(self) -> None:
        self._start = self.target.load()

    def read(self) -> dict[str, float]:
        requests, sent = self.target.load()
        return {"api_requests": requests - self._start[0], "api_bytes": sent - self._start[1]}


class Counters:
    """Counts for the stand-in servers (HTTP requests and bytes, TCP accepts), reset per point."""

    def __init__(self, *names: str) -> None:
        self.values = dict.fromkeys(names, 0)
        self._start = dict(self.values)
        self.lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.values[name] += n

    def reset(self) -> None:
        with self.lock:
            self._start = dict(self.values)

    def read(self) -> dict[str, float]:
        with self.lock:
            return {k: v - self._start[k] for k, v in self.values.items()}


@contextlib.contextmanager
def http_server() -> Iterator[tuple[int, Counters]]:
    """An aiohttp server on its own thread answering 200 to every path: the HTTP targets."""
    from aiohttp import web

    counts = Counters("http_requests", "http_bytes")
    port = free_port()
    loop = asyncio.new_event_loop()
    body = b'{"status":"ok"}'

    async def ok(request: web.Request) -> web.Response:
        counts.add("http_requests")
        counts.add("http_bytes", len(body))
        return web.Response(body=body, content_type="application/json")

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/{tail:.*}", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        return runner

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield port, counts
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@contextlib.contextmanager
def tcp_listener() -> Iterator[tuple[int, Counters]]:
    """A port that accepts and closes at once (what the TCP probe needs), counting accepts."""
    counts = Counters("tcp_accepts")
    server = socket.create_server(("127.0.0.1", 0), backlog=1024)
    server.settimeout(0.2)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.close()
            counts.add("tcp_accepts")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], counts
    finally:
        stopping.set()
        thread.join(5)
        server.close()


@contextlib.contextmanager
def dns_server(workdir: Path) -> Iterator[tuple[int, Callable[[], None], Load]]:
    """dnsmasq (the real one) answering every *.bench.test name; its SIGUSR1 statistics count the queries.

    (Not --log-queries: logging every query slows dnsmasq enough to drop some of a 500-query burst.)
    """
    import signal

    from testbed.edge import Dnsmasq

    logfile = workdir / "dnsmasq.log"
    server = Dnsmasq("--address=/bench.test/10.43.0.7", f"--log-facility={logfile}")
    server.start()
    mark = [0]

    def answered() -> int:
        assert server.proc is not None
        before = logfile.read_text(errors="replace").count("queries answered locally") if logfile.exists() else 0
        server.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            text = logfile.read_text(errors="replace") if logfile.exists() else ""
            found = re.findall(r"queries answered locally (\d+)", text)
            if len(found) > before:
                return int(found[-1])
            time.sleep(0.05)
        raise TimeoutError("dnsmasq wrote no statistics")

    def reset() -> None:
        mark[0] = answered()

    def read() -> dict[str, float]:
        return {"dns_queries": answered() - mark[0]}

    try:
        yield server.port, reset, read
    finally:
        server.stop()


@contextlib.contextmanager
def bench_database() -> Iterator[tuple[str, str]]:
    """A database of its own on the machine's PostgreSQL (uniquely named, dropped at the end)."""
    name = f"honeydue_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, PG_DSN.replace("dbname=postgres", f"dbname={name}")
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the families ------------------------------------------------------------------------------------------
REDIS_KEYS = ("redis_cmds", "redis_cmd_ms", "redis_cpu_ms")


def asynq_sweeps(worker: Worker, cycles: int, quick: bool) -> list[Sweep]:
    sizes = {
        "queues": [1, 10, 100, 1000], "pending tasks": [10, 1000, 100_000, 1_000_000],
        "worker servers": [1, 5, 20, 50], "cron entries": [1, 10, 100, 500],
    }
    if quick:
        sizes = {k: v[:3] for k, v in sizes.items()}
    kinds = {"queues": "exported", "pending tasks": "stored", "worker servers": "exported", "cron entries": "exported"}
    server = RedisServer()
    server.start()
    sweeps = []
    try:
        r = redis.Redis(port=server.port)
        load = RedisLoad(r)
        config = base_config(redis={"enabled": False, "url": server.url},
                             asynq={"enabled": True, "max_scheduler_entries": 1000})
        for dimension, points in sizes.items():
            _seed.stop_peers()
            r.flushall()
            _seed.pending_tasks(r, "default", 10)
            _seed.workers(r, 1)
            _seed.cron_entries(r, 1)
            sweep = Sweep("asynq", dimension, kinds[dimension], REDIS_KEYS)
            have = 1 if dimension != "pending tasks" else 10
            for n in points:
                if dimension == "queues":
                    for q in range(have, n):
                        _seed.pending_tasks(r, f"queue{q:04d}", 10)
                elif dimension == "pending tasks":
                    _seed.pending_tasks(r, "default", n - have) if n > have else None
                elif dimension == "worker servers":
                    _seed.workers(r, n)
                else:
                    _seed.cron_entries(r, n)
                have = n
                sweep.points.append(worker.run(config, cycles, "asynq", load.reset, load.read, n))
                progress(sweep)
            sweeps.append(sweep)
        r.close()
    finally:
        _seed.stop_peers()
        server.stop()
    return sweeps


def cache_sweeps(worker: Worker, cycles: int, quick: bool) -> list[Sweep]:
    sizes = [10, 1000, 100_000, 1_000_000][: 3 if quick else 4]
    server = RedisServer()
    server.start()
    sweep = Sweep("residence_cache", "cache keys", "stored", (*REDIS_KEYS, "pg_xacts", "pg_tuples"),
                  flat_from=50, flat_note="below sample_size, 50, every key is checked")
    try:
        r = redis.Redis(port=server.port)
        with bench_database() as (dbname, dsn):
            redis_load, pg_load = RedisLoad(r), PostgresLoad(PG_DSN, dbname)
            config = base_config(
                redis={"enabled": False, "url": server.url},
                residence_cache={"enabled": True, "database": "pooler"},
                postgres={"pooler": {"enabled": False, "host": "127.0.0.1", "port": 5432, "dbname": dbname,
                                     "user": "postgres", "sslmode": "disable"}, "direct": {"enabled": False}},
                rate_limits={"postgres_per_second": None},
            )
            have = 0
            for n in sizes:
                _seed.cache_keys(r, n)  # keys 1..n (rewrites the first `have`: same values)
                _seed.residence_truth(dsn, n)
                have = n

                def reset() -> None:
                    redis_load.reset()
                    pg_load.reset()

                def read() -> dict[str, float]:
                    return redis_load.read() | pg_load.read()

                sweep.points.append(worker.run(config, cycles, "residence_cache", reset, read, have))
                progress(sweep)
        r.close()
    finally:
        server.stop()
    return [sweep]


def edge_sweeps(worker: Worker, cycles: int, quick: bool, workdir: Path) -> list[Sweep]:
    sizes = [5, 50, 200, 500][: 3 if quick else 4]
    sweeps = []
    with http_server() as (port, counts):
        sweep = Sweep("http", "targets", "exported", ("http_requests", "http_bytes"))
        for n in sizes:
            targets = [{"name": f"t{i:03d}", "role": "other", "url": f"http://127.0.0.1:{port}/t{i}"} for i in range(n)]
            sweep.points.append(worker.run(base_config(http={"targets": targets}), cycles, "http", counts.reset,
                                           counts.read, n))
            progress(sweep)
        sweeps.append(sweep)
    with dns_server(workdir) as (port, reset, read):
        sweep = Sweep("dns", "lookups", "exported", ("dns_queries",))
        for n in sizes:
            dns = {"resolvers": {"local": {"address": "127.0.0.1", "port": port}},
                   "lookups": [{"name": f"n{i}.bench.test", "role": "cluster", "resolvers": ["local"],
                                "expected_cidrs": ["10.43.0.0/16"]} for i in range(n)]}
            sweep.points.append(worker.run(base_config(dns=dns), cycles, "dns", reset, read, n))
            progress(sweep)
        sweeps.append(sweep)
    with tcp_listener() as (port, counts):
        sweep = Sweep("tcp", "targets", "exported", ("tcp_accepts",))
        for n in sizes:
            tcp = {"targets": [{"name": f"t{i:03d}", "address": f"127.0.0.1:{port}"} for i in range(n)]}
            sweep.points.append(worker.run(base_config(tcp=tcp), cycles, "tcp", counts.reset, counts.read, n))
            progress(sweep)
        sweeps.append(sweep)
    return sweeps


def kube_config(target: _kube.KubeTarget, limit: dict[str, Any] | None = None) -> dict[str, Any]:
    return base_config(
        kubernetes={"source": "kubeconfig", "kubeconfig": str(target.kubeconfig),
                    "deployments": {_kube.NAMESPACE: list(_kube.WATCHED)},
                    "node_workloads": [f"{_kube.NAMESPACE}/api"], "apiserver_port": target.apiserver_port},
        series_limit=limit or NO_LIMIT,
    )


def kube_sweeps(worker: Worker, cycles: int, quick: bool, backend: _kube.Backend,
                workdir: Path) -> tuple[list[Sweep], Point | None, str]:
    grid: dict[str, tuple[str, list[_kube.ClusterSize]]] = {
        "nodes": ("exported", [_kube.ClusterSize(nodes=n) for n in (3, 10, 30, 100)]),
        "pods": ("exported", [_kube.ClusterSize(nodes=10, pods=n) for n in (30, 300, 3000, 10_000)]),
        "deployments (5 watched)": ("stored", [_kube.ClusterSize(deployments=n) for n in (5, 50, 500)]),
        "pods in an unwatched namespace": ("stored", [_kube.ClusterSize(other_pods=n) for n in (100, 1000, 10_000)]),
    }
    sweeps, limited, describe = [], None, ""
    for dimension, (kind, sizes) in grid.items():
        sweep = Sweep("kubernetes", dimension, kind, ("api_requests", "api_bytes"))
        for size in sizes[: 3 if quick else None]:
            with backend(size, workdir) as target:
                describe = target.describe
                load = ApiLoad(target)
                n = {"nodes": size.nodes, "pods": size.pods, "deployments (5 watched)": size.deployments}.get(
                    dimension, size.other_pods)
                sweep.points.append(worker.run(kube_config(target), cycles, "kubernetes", load.reset, load.read, n))
                progress(sweep)
                if dimension == "pods" and size.pods == 10_000:
                    limited = worker.run(kube_config(target, {"default": 5000}), cycles, "kubernetes", load.reset,
                                         load.read, n)
        sweeps.append(sweep)
    return sweeps, limited, describe


# --- the whole exporter on the production-shaped config --------------------------------------------------
def production_rss(blocked: str, backend: _kube.Backend, workdir: Path, seconds: float) -> dict[str, Any]:
    """`honeydue-exporter run` on deploy/overlays/example/config.yml, every family on, as the image runs it.

    Secrets point at temporary files; Redis is a private server with Asynq state; both Postgres
    endpoints are the machine's server; Kubernetes is the back end at honeyDue's size (3 nodes);
    the other targets (public HTTPS, DNS resolvers, SMTP, vmagent, the obs box) are what the file
    names, unreachable from here, so they fail as values: the RSS of failing runs, not of TLS sessions.
    Also the netcheck DaemonSet's config (deploy/overlays/example/netcheck.yml, TCP probes only) for a third of the time.
    """
    text = production_config_text(workdir)
    data = yaml.safe_load(text)
    data["redis"].pop("password_file")
    for endpoint in ("pooler", "direct"):
        data["postgres"][endpoint] |= {"host": "127.0.0.1", "port": 5432, "dbname": "postgres", "user": "postgres",
                                       "sslmode": "disable"}
        data["postgres"][endpoint].pop("password_file")
    server = RedisServer()
    server.start()
    try:
        with redis.Redis(port=server.port) as r:
            _seed.queues(r, 5, 100)
            _seed.workers(r, 2)
            _seed.cron_entries(r, 10)
        with backend(_kube.ClusterSize(nodes=3, pods=15, deployments=5), workdir) as target:
            data["redis"]["url"] = server.url
            data["kubernetes"] = {**data["kubernetes"], "source": "kubeconfig", "kubeconfig": str(target.kubeconfig),
                                  "apiserver_port": target.apiserver_port}
            full = _run_exporter(blocked, data, workdir / "config.yml", seconds)
    finally:
        _seed.stop_peers()
        server.stop()
    netcheck = yaml.safe_load((REPO / "deploy" / "overlays" / "example" / "netcheck.yml").read_text())
    return {"full": full, "netcheck": _run_exporter(blocked, netcheck, workdir / "netcheck.yml", seconds / 3)}


def _run_exporter(blocked: str, data: dict[str, Any], path: Path, seconds: float) -> dict[str, Any]:
    """Run the exporter on `data` for `seconds`, scraping it every 5 s; its RSS at each scrape."""
    data["server"] = {**data.get("server", {}), "listen_address": "127.0.0.1", "port": free_port()}
    data["log"] = {**data.get("log", {}), "level": "error"}
    path.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYDUE_")} | {"PYTHONPATH": str(REPO)}
    env |= image_environment()
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "_runtime.py"), blocked, "exporter",
                             "--config", str(path), "run"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{data['server']['port']}"
        wait_for_port(data["server"]["port"], 60)
        samples = []
        began = time.monotonic()
        while True:
            with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
                body = response.read().decode()
            samples.append(_proc_status(proc.pid))
            left = seconds - (time.monotonic() - began)
            if left <= 0:
                break
            time.sleep(min(5.0, left))
        probes = [line for line in body.splitlines() if line.startswith("honeydue_probe_success{")]
        return {"samples": samples, "probes": len(probes), "ok": sum(1 for line in probes if line.endswith(" 1.0")),
                "seconds": seconds, "env": " ".join(f"{k}={v}" for k, v in image_environment().items())}
    finally:
        stop_process(proc)  # type: ignore[arg-type]


def _proc_status(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            found[key] = int(rest.split()[0]) * 1024
    return found


# --- reporting ------------------------------------------------------------------------------------------------
def progress(sweep: Sweep) -> None:
    p = sweep.points[-1]
    print(f"  {sweep.family} {sweep.dimension} = {p.size}: cpu {p.cpu * 1000:.1f} ms/cycle, "
          f"{p.series} series, peak RSS {p.rss_peak / MiB:.1f} MiB" + (f", FAILING {p.failing[:3]}" if p.failing else ""),
          flush=True)


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log y against log x (the exponent b of y ~ x^b)."""
    pairs = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pairs) < 2:
        return None
    mx = sum(x for x, _ in pairs) / len(pairs)
    my = sum(y for _, y in pairs) / len(pairs)
    var = sum((x - mx) ** 2 for x, _ in pairs)
    return sum((x - mx) * (y - my) for x, y in pairs) / var if var else None


def top_exponent(xs: list[float], ys: list[float], marginal: bool) -> float | None:
    """The growth exponent at the top of the range: between the last two points, y ~ x^b.

    `marginal` (exported sweeps): of what each point adds over the smallest one, (y - y0) against
    (x - x0), so fixed costs (the version call, the nodes listed whatever the pod count) do not bend
    it. The top is where growth matters and where timing noise is smallest against the figures.
    """
    if len(xs) < 2 + marginal:
        return None
    if marginal:
        xs, ys = [x - xs[0] for x in xs[1:]], [y - ys[0] for y in ys[1:]]
    (x1, x2), (y1, y2) = xs[-2:], ys[-2:]
    if min(x1, x2, y1, y2) <= 0 or x1 == x2:
        return 0.0 if min(y1, y2) >= 0 and y2 <= y1 else None
    return math.log(y2 / y1) / math.log(x2 / x1)


def fmt_slope(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def sweep_table(sweep: Sweep) -> str:
    header = ("size", "series", "wall ms", "CPU ms", "render ms", "gzip ms", "/metrics KiB", "gzip KiB",
              "RSS idle", "steady", "peak MiB", *(k for k in sweep.load_keys))
    rows = []
    for p in sweep.points:
        rows.append((p.size, p.series, f"{p.wall * 1000:.1f}", f"{p.cpu * 1000:.1f}", f"{p.render * 1000:.2f}",
                     f"{p.gzip * 1000:.2f}", f"{p.body / 1024:.1f}", f"{p.gzip_body / 1024:.1f}",
                     f"{p.rss_idle / MiB:.1f}", f"{p.rss_steady / MiB:.1f}", f"{p.rss_peak / MiB:.1f}",
                     *(_num(p.load.get(k, 0.0)) for k in sweep.load_keys)))
    return table(header, rows)


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}"


MIN_CPU_JUDGED = 0.020  # seconds per cycle at the top of an exported sweep before its CPU exponent counts
INFO_ONLY = ("redis_cmd_ms",)  # commandstats usec: per-command time, which cache misses raise with data size


def growth(sweep: Sweep) -> tuple[str, bool]:
    """The growth exponents and the verdict of the growth bound for one sweep.

    Exported sweeps: at the top of the range, of what each point adds over the smallest one against the
    series it adds. Stored sweeps: over the whole range from `flat_from` (the longest baseline, so timing
    noise weighs least), of the whole cost against the stored count.
    """
    sizes = [float(p.size) for p in sweep.points]
    series = [float(p.series) for p in sweep.points]
    exported = sweep.kind == "exported"
    costs = {"CPU": [p.cpu for p in sweep.points],
             **{k: [p.load.get(k, 0.0) for p in sweep.points] for k in sweep.load_keys}}
    if exported:
        fits = {k: top_exponent(series, ys, True) for k, ys in costs.items()}
        limit, how = EXPORTED_SLOPE, "against added exported series, at the top of the range"
    else:
        keep = [i for i, x in enumerate(sizes) if x >= sweep.flat_from]
        fits = {k: slope([sizes[i] for i in keep], [ys[i] for i in keep]) for k, ys in costs.items()}
        limit, how = STORED_SLOPE, f"against {sweep.dimension}, whole range" + (
            f" from {sweep.flat_from:,} ({sweep.flat_note})" if sweep.flat_from else "")
    unjudged = set(INFO_ONLY)
    if exported and sweep.points[-1].cpu < MIN_CPU_JUDGED:
        unjudged.add("CPU")  # a few ms per cycle: the exponent of two such figures is scheduling noise
    met = all(v is None or v <= limit for k, v in fits.items() if k not in unjudged)
    text = (f"{sweep.family} / {sweep.dimension} ({sweep.kind}), {how}: "
            + ", ".join(f"{k} {fmt_slope(v)}" + (" (not bounded)" if k in INFO_ONLY else
                                                  " (under 20 ms per cycle: not judged)" if k in unjudged else "")
                        for k, v in fits.items())
            + f" -> {'<=' if exported else 'flat, <='} {limit}: {'met' if met else 'MISSED'}"
            + f"\n      (plain log-log over the whole range: CPU {fmt_slope(slope(series if exported else sizes, costs['CPU']))}"
            + f"; wall {fmt_slope(slope(series if exported else sizes, [p.wall for p in sweep.points]))} (not bounded: "
            + f"waits and throttles); series ~ {sweep.dimension}^{fmt_slope(slope(sizes, series))})")
    return text, met


def plot(family: str, sweeps: list[Sweep], out: Path, note: str) -> Path | None:
    """One PNG per family: a column per sweep; time per cycle on top, memory and the watched system's load below."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: pip install -e '.[bench]'; no plot for", family, ")")
        return None
    fig, axes = plt.subplots(2, len(sweeps), figsize=(4.4 * len(sweeps) + 0.6, 7.2), squeeze=False, sharex="col")
    for column, sweep in enumerate(sweeps):
        xs = [p.size for p in sweep.points]
        top, bottom = axes[0][column], axes[1][column]
        top.plot(xs, [p.cpu * 1000 for p in sweep.points], "o-", label="CPU ms / cycle")
        top.plot(xs, [p.wall * 1000 for p in sweep.points], "s--", label="wall ms / cycle")
        top.plot(xs, [max(p.render, 1e-6) * 1000 for p in sweep.points], "^:", label="/metrics render ms")
        top.set_title(f"{sweep.dimension} ({sweep.kind})", fontsize=9)
        bottom.plot(xs, [p.rss_peak / MiB for p in sweep.points], "d-", color="tab:red", label="peak RSS MiB")
        bottom.plot(xs, [p.rss_idle / MiB for p in sweep.points], "d:", color="tab:gray", label="idle RSS MiB")
        bottom.set_ylim(bottom=0)
        bottom.set_xlabel(sweep.dimension)
        load = next((k for k in sweep.load_keys if any(p.load.get(k) for p in sweep.points)), None)
        if load is not None:
            twin = bottom.twinx()
            twin.plot(xs, [max(p.load.get(load, 0.0), 1e-3) for p in sweep.points], "x-", color="tab:purple",
                      label=f"{load} / cycle (watched system)")
            twin.set_yscale("log")
            twin.legend(fontsize=7, loc="lower right")
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.grid(True, which="both", alpha=0.3)
        top.set_yscale("log")
        if column == 0:
            top.set_ylabel("milliseconds per cycle")
            bottom.set_ylabel("MiB")
            top.legend(fontsize=7, loc="upper left")
            bottom.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"honeydue-exporter, {family}: cost per probe cycle as the work grows\n{note}", fontsize=9)
    fig.tight_layout()
    path = out / f"scale-{family.replace('_', '-')}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# --- main ------------------------------------------------------------------------------------------------------
FAMILIES = ("asynq", "residence_cache", "http", "dns", "tcp", "kubernetes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=5, help="measured cycles per point (the median is shown)")
    parser.add_argument("--only", default="", help=f"comma-separated families of {', '.join(FAMILIES)}")
    parser.add_argument("--kube-backend", default=os.environ.get("BENCH_KUBE_BACKEND", "real"),
                        help="real (default: the control plane of testbed/kube) or module:function, "
                             "see bench/_kube.py")
    parser.add_argument("--quick", action="store_true", help="the first three sizes of every sweep only")
    parser.add_argument("--rss-seconds", type=float, default=60.0,
                        help="how long the whole exporter runs on deploy/overlays/example/config.yml for its steady RSS")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--out", default=str(REPO / "docs"), help="where the PNGs go (default docs/)")
    args = parser.parse_args(argv)
    only = set(filter(None, args.only.split(","))) or set(FAMILIES) | {"rss"}
    backend = _kube.backend(args.kube_backend)
    blocked = ",".join(blocked_modules())
    load_before = _bounds.load_average()
    print(f"scale: {args.cycles} measured cycles per point (median shown), {load_before}; "
          f"Kubernetes back end: {args.kube_backend}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    worker = Worker(blocked, workdir)
    results: dict[str, list[Sweep]] = {}
    limited: Point | None = None
    kube_note = ""
    rss: dict[str, Any] | None = None
    try:
        if "asynq" in only:
            results["asynq"] = asynq_sweeps(worker, args.cycles, args.quick)
        if "residence_cache" in only:
            results["residence_cache"] = cache_sweeps(worker, args.cycles, args.quick)
        if only & {"http", "dns", "tcp"}:
            for sweep in edge_sweeps(worker, args.cycles, args.quick, workdir):
                if sweep.family in only:
                    results[sweep.family] = [sweep]
        if "kubernetes" in only:
            results["kubernetes"], limited, kube_note = kube_sweeps(worker, args.cycles, args.quick, backend, workdir)
        if "rss" in only:
            rss = production_rss(blocked, backend, workdir, args.rss_seconds)
    finally:
        _kube.close()
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, limited, kube_note, rss, args, load_before)
    return 0


def report(results: dict[str, list[Sweep]], limited: Point | None, kube_note: str, rss: dict[str, Any] | None,
           args: argparse.Namespace, load_before: str) -> None:
    load_after = _bounds.load_average()
    note = f"{load_before} at the start, {load_after} at the end"
    for family, sweeps in results.items():
        print(f"\n--- {family} ---")
        if family == "kubernetes":
            print(f"Kubernetes back end: {kube_note}")
        for sweep in sweeps:
            print(f"\n{sweep.dimension} ({sweep.kind}); load columns are per cycle")
            print(sweep_table(sweep))
            failing = sorted({f for p in sweep.points for f in p.failing})
            if failing:
                print("probes failing during the sweep: " + "; ".join(failing[:5]))
    print("\nGrowth exponents (1 = linear, 0 = flat):")
    all_met = True
    worst: list[str] = []
    for sweeps in results.values():
        for sweep in sweeps:
            text, met = growth(sweep)
            print("  " + text)
            all_met &= met
            if not met:
                worst.append(f"{sweep.family}/{sweep.dimension}")
    if results:
        _bounds.record("cost grows <= linearly with exported series, flat with stored data",
                       f"{sum(len(s) for s in results.values())} sweeps, {len(worst)} over",
                       f"exponent <= {EXPORTED_SLOPE} exported, <= {STORED_SLOPE} stored", all_met,
                       "over: " + ", ".join(worst) if worst else "")
    kube = {s.dimension: s for s in results.get("kubernetes", [])}
    pods = next((p for p in kube["pods"].points if p.size == 10_000), None) if "pods" in kube else None
    if pods is not None:
        over = pods.rss_peak - pods.rss_idle
        backend = {"real": "real control plane"}.get(args.kube_backend, args.kube_backend)
        _bounds.record("Kubernetes 10,000 pods: peak RSS over idle", f"{over / MiB:.1f} MiB "
                       f"(idle {pods.rss_idle / MiB:.1f}, steady {pods.rss_steady / MiB:.1f}, peak {pods.rss_peak / MiB:.1f})",
                       "<= 64 MiB", over <= K8S_PEAK_OVER_IDLE, f"on the {backend}; series_limit off")
        _bounds.record("Kubernetes 10,000 pods: CPU per cycle", f"{pods.cpu:.2f} s (wall {pods.wall:.2f} s)",
                       "<= 2 s", pods.cpu <= K8S_CPU, f"on the {backend}; series_limit off")
        if limited is not None:
            print(f"\n10,000 pods under the default series_limit (5000 per probe): {limited.series} series published, "
                  f"{limited.dropped} dropped; CPU {limited.cpu * 1000:.0f} ms/cycle, peak RSS over idle "
                  f"{(limited.rss_peak - limited.rss_idle) / MiB:.1f} MiB, /metrics {limited.body / 1024:.0f} KiB")
    if rss is not None:
        for name, run in rss.items():
            last = run["samples"][-1]
            peak = max(x["VmHWM"] for x in run["samples"])
            what = ("deploy/overlays/example/config.yml, every family on" if name == "full"
                    else "deploy/overlays/example/netcheck.yml (the DaemonSet, TCP probes only)")
            print(f"\nWhole exporter on {what}, runtime imports only, image settings ({run['env']}), "
                  f"{run['seconds']:.0f} s: RSS per scrape (MiB) " + " ".join(f"{x['VmRSS'] / MiB:.1f}" for x in run["samples"])
                  + f"; last {last['VmRSS'] / MiB:.1f} (anon {last['RssAnon'] / MiB:.1f}, file-backed "
                  f"{last['RssFile'] / MiB:.1f}), peak {peak / MiB:.1f}; {run['probes']} probes, {run['ok']} ok"
                  + (" (the others' targets are unreachable from here)" if run["ok"] < run["probes"] else ""))
        last = rss["full"]["samples"][-1]
        _bounds.record("steady RSS, deploy/overlays/example/config.yml, every family on", f"{last['VmRSS'] / MiB:.1f} MiB "
                       f"(anon {last['RssAnon'] / MiB:.1f} + file {last['RssFile'] / MiB:.1f})", "<= 64 MiB",
                       last["VmRSS"] <= RSS_BUDGET,
                       "imported code: `python -m bench import_cost`" if last["VmRSS"] > RSS_BUDGET else "")
    if not args.no_plots and results:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        written = [plot(family, sweeps, out, f"{args.cycles} cycles per point, median; {note}"
                        + ({"real": "; Kubernetes on the real control plane (kube-apiserver v1.35.4)"}.get(
                                args.kube_backend, "") if family == "kubernetes" else "")) for family, sweeps in results.items()]
        print("\nplots: " + ", ".join(str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)
                                       for p in written if p is not None))
    print(f"\n({note})")


if __name__ == "__main__":
    code = main(sys.argv[1:])
    print("\n" + _bounds.closing_note(_bounds.load_average()))
    raise SystemExit(code)
