"""Bench: one probe cycle with every target of every probe family blackholed.

Goal (design budget): the cycle finishes within 1.2x the largest probe timeout, because probes run
concurrently and each ends at its own timeout. Blackholed, all on loopback:
- a TCP port that accepts and never answers: HTTP, HTTPS, SMTP, Redis (redis, asynq, residence
  cache), PostgreSQL (pooler, direct), the Kubernetes API, vmagent and the no-data TSDB;
- a TCP port whose accept queue is full, so the kernel drops new SYNs (a filtered port): TCP probes;
- a UDP port that never answers: DNS.

    .venv/bin/python -m bench.blackholed_cycle [--targets N] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from testbed.kubeconfig import write_kubeconfig

from bench._peers import table
from exporter.config import Config
from exporter.engine import Engine
from exporter.exposition import Exposition
from exporter.probes import build_probes


@dataclass
class Result:
    probes: int
    largest_timeout: float
    cycle_seconds: float
    exposition_max_seconds: float
    reasons: dict[str, int]
    families: list[str]

    @property
    def ratio(self) -> float:
        return self.cycle_seconds / self.largest_timeout


@contextlib.contextmanager
def _blackholes() -> Iterator[tuple[int, int, int]]:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1024)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    full = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    for _ in range(4):  # fill the accept queue (never accepted): later SYNs are dropped, connects hang
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", full.getsockname()[1]))
        fillers.append(filler)
    try:
        yield int(tcp.getsockname()[1]), int(udp.getsockname()[1]), int(full.getsockname()[1])
    finally:
        for sock in (tcp, udp, full, *fillers):
            sock.close()


def blackholed_config(tcp_port: int, udp_port: int, targets: int, timeout: float, filtered_port: int = 0,
                      kubeconfig: str | None = None) -> Config:
    """`targets` of each kind, timeouts spread between timeout/2 and timeout; one of each single-target family."""

    def schedule(i: int) -> dict[str, float]:
        return {"interval": timeout * 4, "timeout": round(timeout * (0.5 + 0.5 * i / max(targets - 1, 1)), 3)}

    roles = ["public", "origin", "api_shallow", "api_deep", "admin", "b2", "registry", "obs_ingest"]
    http = [
        {"name": f"t{i}", "role": roles[i % len(roles)],
         "url": f"{'https' if i % 2 else 'http'}://127.0.0.1:{tcp_port}/", **schedule(i)}
        for i in range(targets)
    ]
    dns = {
        "resolvers": {"blackhole": {"address": "127.0.0.1", "port": udp_port}},
        "lookups": [{"name": f"n{i}.example.test", "resolvers": ["blackhole"], **schedule(i)} for i in range(targets)],
    }
    smtp = [{"name": f"s{i}", "host": "127.0.0.1", "port": tcp_port, **schedule(i)} for i in range(targets)]
    if not filtered_port:  # only the edge families (HTTP, DNS, SMTP), as issue 5 measured
        return Config(  # type: ignore[arg-type]
            redis={"enabled": False},
            postgres={"pooler": {"enabled": False}, "direct": {"enabled": False}},
            kubernetes={"source": "off"},
            http={"targets": http},
            dns=dns,
            smtp={"targets": smtp},
        )
    whole = {"interval": timeout * 4, "timeout": timeout}
    endpoint = {"port": tcp_port, "sslmode": "disable", "connect_timeout": timeout * 0.75, **whole}
    kube = {"source": "kubeconfig", "kubeconfig": kubeconfig, "connect_timeout": timeout * 0.3,
            "read_timeout": timeout * 0.5, "readyz_timeout": timeout * 0.5, **whole}
    return Config(  # type: ignore[arg-type]
        redis={"url": f"redis://127.0.0.1:{tcp_port}/0", **whole},
        asynq=whole,
        residence_cache={"enabled": True, **whole},
        postgres={"pooler": endpoint, "direct": endpoint},
        kubernetes=kube,
        http={"targets": http},
        dns=dns,
        smtp={"targets": smtp},
        tcp={"targets": [{"name": f"c{i}", "address": f"127.0.0.1:{filtered_port}"} for i in range(targets)],
             **whole},
        vmagent={"url": f"http://127.0.0.1:{tcp_port}/metrics", **whole},
        nodata={"query_url": f"http://127.0.0.1:{tcp_port}", **whole},
    )


async def run(targets: int = 8, timeout: float = 2.0, every_family: bool = False) -> Result:
    with _blackholes() as (tcp_port, udp_port, filtered_port), tempfile.TemporaryDirectory() as tmp:
        kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", f"http://127.0.0.1:{tcp_port}", token="bench")
        config = blackholed_config(tcp_port, udp_port, targets, timeout, filtered_port if every_family else 0,
                                   str(kubeconfig))
        probes = build_probes(config)
        if not every_family:
            probes = [p for p in probes if p.name.startswith(("http_", "dns_", "smtp_"))]
        engine = Engine(probes)
        exposition: list[float] = []
        renderer = Exposition(engine)
        started = time.monotonic()
        cycle = asyncio.gather(*(engine.run_once(p) for p in probes))
        while not cycle.done():  # scrape while every probe hangs
            t = time.monotonic()
            renderer.render()
            exposition.append(time.monotonic() - t)
            await asyncio.sleep(0.05)
        states = await cycle
        elapsed = time.monotonic() - started
        await engine.stop()
    bad = [s.name for s in states if s.status != "failing"]
    if bad:
        raise RuntimeError(f"probes that did not fail: {bad}")
    reasons: dict[str, int] = {}
    for s in states:
        reasons[s.reason] = reasons.get(s.reason, 0) + 1
    families = sorted({p.name.split("_")[0] for p in probes})
    return Result(len(probes), max(p.timeout for p in probes), elapsed, max(exposition, default=0.0),
                  reasons, families)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=8, help="targets of each kind (HTTP, DNS, SMTP)")
    parser.add_argument("--timeout", type=float, default=2.0, help="largest probe timeout, seconds")
    parser.add_argument("--edge-only", action="store_true", help="only HTTP, DNS and SMTP (issue 5's measurement)")
    args = parser.parse_args(argv)
    logging.getLogger("exporter").setLevel(logging.CRITICAL)  # one "failing" line per probe is expected here
    logging.getLogger("kubernetes").setLevel(logging.CRITICAL)
    result = asyncio.run(run(args.targets, args.timeout, every_family=not args.edge_only))
    goal = 1.2 * result.largest_timeout
    verdict = "PASS" if result.cycle_seconds <= goal else "MISS"
    print(table(("probes", "families", "reasons", "largest timeout s", "cycle s", "cycle / timeout",
                 "max /metrics render ms during the cycle", "goal <= 1.2x"),
                [(result.probes, " ".join(result.families),
                  " ".join(f"{k}={v}" for k, v in sorted(result.reasons.items())),
                  f"{result.largest_timeout:.3f}", f"{result.cycle_seconds:.3f}", f"{result.ratio:.3f}x",
                  f"{result.exposition_max_seconds * 1000:.2f}", verdict)]))
    return 0 if result.cycle_seconds <= goal else 1


if __name__ == "__main__":
    sys.exit(main())
