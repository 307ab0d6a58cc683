"""RSS after start and after a soak at a 1 s probe interval, beside the peers' RSS.

Our exporter runs every probe it has a target for (redis, asynq, postgres pooler and direct) every
second against a private Redis holding Asynq state; each contender is scraped once a second for
the whole soak (a Prometheus at scrape_interval 1s). RSS is read from /proc at start (after the
first probe cycle and a warm-up scrape) and every minute after. Growth, not the absolute size, is
the figure that matters: a leak grows with every cycle.

    .venv/bin/python -m bench.rss_soak [--seconds 600]   # default: $BENCH_SOAK_SECONDS or 600
"""

from __future__ import annotations

import argparse
import os
import time
import urllib.request

from bench import _bounds
from bench._peers import cpu_seconds, lineup, rss_bytes, table


def _scrape(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SOAK_SECONDS", "600")),
                        help="soak duration (default $BENCH_SOAK_SECONDS or 600)")
    parser.add_argument("--interval", type=float, default=1.0, help="probe and scrape interval, seconds")
    args = parser.parse_args(argv)
    with lineup(interval=args.interval) as up:
        for c in up.contenders.values():
            _scrape(c.url)
        time.sleep(2 * args.interval)
        start = {name: rss_bytes(c.proc.pid) for name, c in up.contenders.items()}
        cpu0 = {name: cpu_seconds(c.proc.pid) for name, c in up.contenders.items()}
        samples: dict[str, list[int]] = {name: [v] for name, v in start.items()}
        began = time.monotonic()
        next_tick = began
        next_sample = began + 60
        scrapes = 0
        while time.monotonic() - began < args.seconds:
            for c in up.contenders.values():
                _scrape(c.url)
            scrapes += 1
            now = time.monotonic()
            if now >= next_sample:
                for name, c in up.contenders.items():
                    samples[name].append(rss_bytes(c.proc.pid))
                next_sample += 60
            next_tick += args.interval
            time.sleep(max(0.0, next_tick - time.monotonic()))
        elapsed = time.monotonic() - began
        end = {name: rss_bytes(c.proc.pid) for name, c in up.contenders.items()}
        cpu = {name: (cpu_seconds(c.proc.pid) - cpu0[name]) / elapsed for name, c in up.contenders.items()}
    rows = []
    for name in start:
        peak = max(samples[name] + [end[name]])
        growth = end[name] - start[name]
        rows.append((name, f"{start[name] / 2**20:.1f}", f"{end[name] / 2**20:.1f}", f"{peak / 2**20:.1f}",
                     f"{growth / 2**20:+.1f}", f"{100 * growth / start[name]:+.1f}%", f"{cpu[name] * 100:.1f}%"))
    print(f"soak: {elapsed:.0f} s, probes every {args.interval:g} s, {scrapes} scrapes of each contender "
          f"(one per {args.interval:g} s)")
    print(table(("contender", "RSS start MiB", "RSS end MiB", "peak MiB", "growth MiB", "growth", "CPU"), rows))
    ours = "honeydue-exporter"
    growth_mib = (end[ours] - start[ours]) / 2**20
    _bounds.record("RSS growth over the soak (leaks)", f"{growth_mib:+.1f} MiB in {elapsed:.0f} s "
                   f"({start[ours] / 2**20:.1f} -> {end[ours] / 2**20:.1f} MiB)", "no growth (<= +2 MiB)",
                   growth_mib <= 2.0, "redis, asynq, postgres probes every second; scraped every second")
    print("\nRSS per minute (MiB): " + "; ".join(
        f"{name}: " + " ".join(f"{v / 2**20:.1f}" for v in samples[name]) for name in samples))
    return 0


if __name__ == "__main__":
    code = main()
    print("\n" + _bounds.closing_note(_bounds.load_average()))
    raise SystemExit(code)
