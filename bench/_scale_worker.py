"""One point of `python -m bench scale`, in its own process so its CPU time and RSS are the exporter's alone.

Reads a job (JSON, one line on stdin): the exporter config and how many cycles to measure. Builds the
probes, the engine (with its series limits) and the /metrics renderer exactly as `serve` does (malloc
tuned the same way), freezes
the start-up heap like `serve`, and records the idle RSS. Runs one warm-up cycle (connections, first
allocations), prints `ready`, waits for `go` (the bench resets the watched system's counters then), and
runs the measured cycles. A cycle is every probe of the config once, concurrently, as the engine runs
them; after each, /metrics is rendered (text, then gzip) as the first scrape after a new snapshot does.
Prints `result` with per-cycle figures and the process's RSS (idle, after the cycles, peak = VmHWM).
Imports nothing the exporter would not: run through bench/_runtime.py.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any


def _status() -> dict[str, int]:
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            found[key] = int(rest.split()[0]) * 1024
    return found


async def _run(job: dict[str, Any]) -> dict[str, Any]:
    from exporter.config import Config
    from exporter.engine import Engine
    from exporter.exposition import Exposition
    from exporter.memory import tune_malloc
    from exporter.probes import build_probes, series_limits

    tune_malloc()
    config = Config(**job["config"])
    probes = build_probes(config)
    engine = Engine(probes, series_limits=series_limits(config, probes))
    exposition = Exposition(engine)
    gc.collect()
    gc.freeze()
    idle = _status()

    async def cycle() -> None:
        await asyncio.gather(*(engine.run_once(p) for p in probes))

    await cycle()
    exposition.render()
    print("ready", json.dumps(_status()), flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")
    cycles = []
    for _ in range(int(job["cycles"])):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await cycle()
        wall1, cpu1 = time.perf_counter(), time.process_time()
        text = exposition.render()
        wall2 = time.perf_counter()
        gz = exposition.render(compress=True)
        wall3 = time.perf_counter()
        cycles.append({"wall": wall1 - wall0, "cpu": cpu1 - cpu0, "render": wall2 - wall1, "gzip": wall3 - wall2,
                       "bytes": len(text), "gzip_bytes": len(gz), "rss": _status()["VmRSS"]})
    states = engine.states.values()
    result = {
        "cycles": cycles, "idle": idle, "end": _status(),
        "probes": len(probes),
        "series_by_family": _by_family(probes, engine), "dropped": sum(s.dropped for s in states),
        "failing": sorted(f"{s.name}: {s.reason} ({s.detail})" for s in states if s.status != "ok"),
    }
    await engine.stop()
    return result


def _by_family(probes: list[Any], engine: Any) -> dict[str, int]:
    """Series each probe family published in the last cycle (Probe.family)."""
    found: dict[str, int] = {}
    for probe in probes:
        found[probe.family] = found.get(probe.family, 0) + engine.states[probe.name].series
    return found


def main() -> None:
    job = json.loads(sys.stdin.readline())
    try:
        import uvloop  # the exporter's own loop

        result = uvloop.run(_run(job))
    except ImportError:
        result = asyncio.run(_run(job))
    print("result", json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
