"""Bench: one probe cycle with every HTTP, DNS and SMTP target blackholed.

Goal (issue 5): the cycle finishes within 1.2x the largest probe timeout, because probes run
concurrently and each ends at its own timeout. Blackholed = a TCP port that accepts and never answers
(HTTP, HTTPS, SMTP) and a UDP port that never answers (DNS), all on loopback.

    .venv/bin/python -m bench.blackholed_cycle [--targets N] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

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

    @property
    def ratio(self) -> float:
        return self.cycle_seconds / self.largest_timeout


@contextlib.contextmanager
def _blackholes() -> Iterator[tuple[int, int]]:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1024)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        yield int(tcp.getsockname()[1]), int(udp.getsockname()[1])
    finally:
        tcp.close()
        udp.close()


def blackholed_config(tcp_port: int, udp_port: int, targets: int, timeout: float) -> Config:
    """`targets` of each kind, timeouts spread between timeout/2 and timeout."""

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
    return Config(  # type: ignore[arg-type]
        redis={"enabled": False},
        postgres={"pooler": {"enabled": False}, "direct": {"enabled": False}},
        kubernetes={"source": "off"},
        http={"targets": http},
        dns=dns,
        smtp={"targets": smtp},
    )


async def run(targets: int = 8, timeout: float = 2.0) -> Result:
    with _blackholes() as (tcp_port, udp_port):
        config = blackholed_config(tcp_port, udp_port, targets, timeout)
        probes = [p for p in build_probes(config) if p.name.startswith(("http_", "dns_", "smtp_"))]
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
    bad = [s.name for s in states if s.status != "failing" or s.reason != "timeout"]
    if bad:
        raise RuntimeError(f"probes that did not end in timeout: {bad}")
    return Result(len(probes), max(p.timeout for p in probes), elapsed, max(exposition, default=0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=8, help="targets of each kind (HTTP, DNS, SMTP)")
    parser.add_argument("--timeout", type=float, default=2.0, help="largest probe timeout, seconds")
    args = parser.parse_args(argv)
    logging.getLogger("exporter").setLevel(logging.ERROR)  # one "failing" line per probe is expected here
    result = asyncio.run(run(args.targets, args.timeout))
    goal = 1.2 * result.largest_timeout
    print(f"probes: {result.probes} (all blackholed, all ended in timeout)")
    print(f"largest timeout: {result.largest_timeout:.3f}s")
    print(f"cycle: {result.cycle_seconds:.3f}s = {result.ratio:.3f}x the largest timeout (goal <= 1.2x, {goal:.3f}s)")
    print(f"/metrics render during the cycle: max {result.exposition_max_seconds * 1000:.2f} ms")
    print("PASS" if result.cycle_seconds <= goal else "MISS")
    return 0 if result.cycle_seconds <= goal else 1


if __name__ == "__main__":
    sys.exit(main())
