"""/metrics latency and throughput at 1, 10 and 50 concurrent scrapers, beside the peers.

Starts the real exporter (default config: the machine's Redis and PostgreSQL), Debian's
prometheus-redis-exporter (--check-keys on Asynq's keys) and prometheus-blackbox-exporter (its own
/metrics), and scrapes each the same way. Budget from the design: p99 under 10 ms at 50 scrapers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.helpers.servers import free_port, stop_process, wait_for_port

CONCURRENCY = (1, 10, 50)
REQUESTS_PER_SCRAPER = int(os.environ.get("BENCH_REQUESTS", "200"))


async def _scrape(url: str, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def scraper() -> None:
            for _ in range(REQUESTS_PER_SCRAPER):
                started = time.perf_counter()
                async with session.get(url, headers={"Accept-Encoding": "gzip"}) as response:
                    await response.read()
                    assert response.status == 200
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(scraper() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, len(latencies) / elapsed


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _start(args: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wait_for_port(port, 20)
    return proc


def main(argv: list[str] | None = None) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-scrape-"))
    try:
        ours = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYDUE_")}
        env |= {"HONEYDUE_SERVER__PORT": str(ours), "HONEYDUE_SERVER__LISTEN_ADDRESS": "127.0.0.1"}
        procs.append(_start([sys.executable, "-m", "exporter", "run"], ours, env))
        time.sleep(1.0)  # first probe cycle
        targets = {"honeydue-exporter": f"http://127.0.0.1:{ours}/metrics"}
        redis_exporter = shutil.which("prometheus-redis-exporter")
        if redis_exporter:
            port = free_port()
            procs.append(_start([redis_exporter, "-redis.addr", "redis://127.0.0.1:6379",
                                 "-web.listen-address", f"127.0.0.1:{port}",
                                 "-check-keys", "asynq:{*}:pending,asynq:{*}:active"], port))
            targets["redis_exporter"] = f"http://127.0.0.1:{port}/metrics"
        blackbox = shutil.which("prometheus-blackbox-exporter")
        if blackbox:
            port = free_port()
            (tmp / "blackbox.yml").write_text("modules:\n  tcp:\n    prober: tcp\n")
            procs.append(_start([blackbox, f"--config.file={tmp / 'blackbox.yml'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], port))
            targets["blackbox_exporter"] = f"http://127.0.0.1:{port}/metrics"

        rows = []
        for concurrency in CONCURRENCY:
            for name, url in targets.items():
                latencies, rate = asyncio.run(_scrape(url, concurrency))
                rows.append((name, concurrency, _percentile(latencies, 50), _percentile(latencies, 99), rate))
        ours_p99 = {c: p99 for name, c, _, p99, _ in rows if name == "honeydue-exporter"}
        print(f"{REQUESTS_PER_SCRAPER} requests per scraper, gzip accepted")
        print(f"{'target':<20} {'scrapers':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p99 vs ours':>12}")
        for name, concurrency, p50, p99, rate in rows:
            ratio = p99 / ours_p99[concurrency]
            print(f"{name:<20} {concurrency:>8} {p50 * 1000:>8.2f} {p99 * 1000:>8.2f} {rate:>8.0f} {ratio:>11.2f}x")
        print(f"budget: p99 < 10 ms at 50 scrapers -> ours {ours_p99[50] * 1000:.2f} ms")
    finally:
        for proc in procs:
            stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
