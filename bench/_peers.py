"""Shared bench fixtures: a private Redis seeded with Asynq state, our exporter and the two Debian peers.

Everything listens on free loopback ports; the machine's own Redis is never touched. Our exporter
reads the private Redis (redis + asynq probes) and the machine's PostgreSQL (pooler and direct
probes, SELECT 1 only), the same as the test suite does. The peers: prometheus-redis-exporter with
--check-keys on the same Asynq keys, and prometheus-blackbox-exporter serving its own /metrics.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from testbed.asynqpeer import AsynqPeer

from tests.helpers.servers import RedisServer, free_port, stop_process, wait_for_port

STATES = ("pending", "active", "scheduled", "retry", "archived", "completed", "processed", "failed")
REPO = Path(__file__).resolve().parent.parent


def seed_asynq(port: int, queues: int = 5, tasks: int = 1000, live: bool = True) -> tuple[list[str], AsynqPeer]:
    """`queues` x `tasks` pending tasks written by the real Asynq (tests/peers/bin/asynqpeer) and, if `live`, a
    worker serving those queues (paused, so the backlog stays) and a scheduler with one cron entry. Returns the
    queue keys and the peer, whose processes the caller stops (`stop_all`)."""
    peer = AsynqPeer(f"127.0.0.1:{port}")
    names = [f"queue{q}" for q in range(queues)]
    keys = [f"asynq:{{{name}}}:{s}" for name in names for s in STATES]
    try:
        for name in names:
            peer.enqueue(name, tasks, parallel=8, timeout=600)
            peer.pause(name)
        if not live:
            return keys, peer
        peer.start("worker", "-queues", ",".join(f"{name}=1" for name in names))
        peer.start("scheduler", "-heartbeat", "2s", "-entry", "@every 1m|bench:tick|default")
        deadline = time.monotonic() + 30
        while not ((view := peer.inspect())["servers"] and view["scheduler_entries"]):
            if time.monotonic() > deadline:
                raise TimeoutError("the Asynq worker and scheduler did not register within 30 s")
            time.sleep(0.2)
    except BaseException:
        peer.stop_all()
        raise
    return keys, peer


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Contender:
    name: str
    url: str
    proc: subprocess.Popen[bytes]


@dataclass
class Lineup:
    redis: RedisServer
    keys: list[str]
    contenders: dict[str, Contender] = field(default_factory=dict)


def _start(args: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    wait_for_port(port, 20)
    return proc


def ours_env(port: int, redis_url: str, interval: float, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for our exporter: private Redis, machine PostgreSQL, every probe on `interval`."""
    timeout = str(min(5.0, interval * 0.8))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYDUE_")}
    env |= {
        "HONEYDUE_SERVER__PORT": str(port), "HONEYDUE_SERVER__LISTEN_ADDRESS": "127.0.0.1",
        "HONEYDUE_LOG__LEVEL": "warning", "HONEYDUE_KUBERNETES__SOURCE": "off",
        "HONEYDUE_REDIS__URL": redis_url,
        "HONEYDUE_POSTGRES__POOLER__SSLMODE": "disable", "HONEYDUE_POSTGRES__DIRECT__SSLMODE": "disable",
        "HONEYDUE_POSTGRES__POOLER__CONNECT_TIMEOUT": str(min(3.0, float(timeout))),
        "HONEYDUE_POSTGRES__DIRECT__CONNECT_TIMEOUT": str(min(3.0, float(timeout))),
    }
    for section in ("REDIS", "ASYNQ", "POSTGRES__POOLER", "POSTGRES__DIRECT"):
        env[f"HONEYDUE_{section}__INTERVAL"] = str(interval)
        env[f"HONEYDUE_{section}__TIMEOUT"] = timeout
    return env | (extra or {})


@contextlib.contextmanager
def lineup(interval: float = 15.0, queues: int = 5, tasks: int = 1000, peers: bool = True) -> Iterator[Lineup]:
    """Private Redis with Asynq state, our exporter and (if installed) the two peers, all on loopback."""
    server = RedisServer()
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    peer: AsynqPeer | None = None
    try:
        keys, peer = seed_asynq(server.port, queues, tasks)
        up = Lineup(server, keys)
        port = free_port()
        proc = _start([sys.executable, "-m", "exporter", "run"], port, ours_env(port, server.url, interval))
        procs.append(proc)
        up.contenders["honeydue-exporter"] = Contender("honeydue-exporter", f"http://127.0.0.1:{port}/metrics", proc)
        binary = shutil.which("prometheus-redis-exporter")
        if peers and binary:
            port = free_port()
            proc = _start([binary, f"-redis.addr=redis://127.0.0.1:{server.port}",
                           f"-web.listen-address=127.0.0.1:{port}", f"-check-keys={','.join(keys)}"], port)
            procs.append(proc)
            up.contenders["redis_exporter"] = Contender("redis_exporter", f"http://127.0.0.1:{port}/metrics", proc)
        elif peers:
            print("(prometheus-redis-exporter not installed: apt-get install prometheus-redis-exporter)")
        binary = shutil.which("prometheus-blackbox-exporter")
        if peers and binary:
            port = free_port()
            (tmp / "blackbox.yml").write_text("modules:\n  tcp:\n    prober: tcp\n    timeout: 2s\n")
            proc = _start([binary, f"--config.file={tmp / 'blackbox.yml'}",
                           f"--web.listen-address=127.0.0.1:{port}"], port)
            procs.append(proc)
            up.contenders["blackbox_exporter"] = Contender("blackbox_exporter", f"http://127.0.0.1:{port}/metrics", proc)
        elif peers:
            print("(prometheus-blackbox-exporter not installed: apt-get install prometheus-blackbox-exporter)")
        _wait_ready(up.contenders["honeydue-exporter"].url.replace("/metrics", "/readyz"))
        yield up
    finally:
        for proc in procs:
            stop_process(proc)
        if peer is not None:
            peer.stop_all()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_ready(url: str, timeout: float = 30.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} never answered 200")


def table(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    """A plain fixed-width table (the README quotes it as is)."""
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
