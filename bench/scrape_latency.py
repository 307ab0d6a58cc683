"""/metrics latency and throughput at 1, 10 and 50 concurrent scrapers, beside the peers.

Starts the lineup of bench/_peers.py (a private Redis holding Asynq state; our exporter; Debian's
prometheus-redis-exporter with --check-keys on the same Asynq keys; prometheus-blackbox-exporter
serving its own /metrics) and drives each with `wrk` (C, event loop: it leaves the 2 cores to the
servers, unlike a Python client) at each concurrency, gzip accepted as Prometheus and vmagent ask.
Budget from the design: p99 under 10 ms at 50 concurrent scrapers.

    .venv/bin/python -m bench.scrape_latency [--seconds 5]

`wrk` is a bench-only tool (Debian package wrk); `make bench` installs it. Without it the bench
falls back to an aiohttp client, whose own CPU use inflates every figure (the table says so).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import time
import urllib.request

import aiohttp

from bench import _bounds
from bench._peers import lineup, table

CONCURRENCY = (1, 10, 50)
BUDGET_P99 = 0.010
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _duration(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unparsable wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(binary: str, url: str, concurrency: int, seconds: float) -> tuple[float, float, float, int]:
    """(p50, p99, requests/s, errors) from one wrk run."""
    out = subprocess.run(
        [binary, "-t", str(min(2, concurrency)), "-c", str(concurrency), "-d", f"{seconds:g}s", "--latency",
         "-H", "Accept-Encoding: gzip", url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|Socket errors:.*?timeout):?\s+(\d+)", out))
    return _duration(pct["50"]), _duration(pct["99"]), rate, errors


async def _aiohttp(url: str, concurrency: int, seconds: float) -> tuple[float, float, float, int]:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        deadline = time.perf_counter() + seconds

        async def scraper() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(url, headers={"Accept-Encoding": "gzip"}) as response:
                    await response.read()
                    errors += response.status != 200
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(scraper() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return q[49], q[98], len(latencies) / elapsed, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each run")
    args = parser.parse_args(argv)
    binary = shutil.which("wrk")
    client = "wrk" if binary else "aiohttp (wrk not installed: figures include the Python client's CPU)"
    results: dict[tuple[str, int], tuple[float, float, float, int]] = {}
    with lineup() as up:
        sizes = {name: len(urllib.request.urlopen(
            urllib.request.Request(c.url, headers={"Accept-Encoding": "gzip"}), timeout=10).read())
            for name, c in up.contenders.items()}
        for concurrency in CONCURRENCY:
            for name, c in up.contenders.items():
                if binary:
                    results[name, concurrency] = wrk(binary, c.url, concurrency, args.seconds)
                else:
                    results[name, concurrency] = asyncio.run(_aiohttp(c.url, concurrency, args.seconds))
        names = list(up.contenders)
    print(f"client: {client}; {args.seconds:g} s per run; gzip accepted; body bytes (gzip): "
          + ", ".join(f"{n} {sizes[n]}" for n in names))
    rows = []
    for concurrency in CONCURRENCY:
        ours = results["honeydue-exporter", concurrency]
        for name in names:
            p50, p99, rate, errors = results[name, concurrency]
            rows.append((name, concurrency, f"{p50 * 1000:.2f}", f"{p99 * 1000:.2f}", f"{rate:.0f}", errors,
                         f"{p99 / ours[1]:.2f}x", f"{rate / ours[2]:.2f}x"))
    print(table(("target", "scrapers", "p50 ms", "p99 ms", "req/s", "errors", "p99 vs ours", "req/s vs ours"), rows))
    ours_p99 = results["honeydue-exporter", 50][1]
    verdict = "MEETS" if ours_p99 <= BUDGET_P99 else "MISSES"
    print(f"design budget: p99 <= {BUDGET_P99 * 1000:.0f} ms at 50 concurrent scrapers -> ours "
          f"{ours_p99 * 1000:.2f} ms: {verdict} the budget")
    peers = ", ".join(f"{n} {results[n, 50][1] * 1000:.0f} ms" for n in names if n != "honeydue-exporter")
    _bounds.record("/metrics p99 at 50 concurrent scrapers", f"{ours_p99 * 1000:.2f} ms ({client})", "<= 10 ms",
                   ours_p99 <= BUDGET_P99,
                   ("" if ours_p99 <= BUDGET_P99 else f"run under {_bounds.load_average()}; ") + f"peers: {peers}")
    return 0


if __name__ == "__main__":
    code = main()
    print("\n" + _bounds.closing_note(_bounds.load_average()))
    raise SystemExit(code)
