"""`honeydue-exporter drill`: start the pipeline, inject every scenario, print the table, exit 1 on a miss.

Its options are parsed here: exporter/cli.py hands over whatever follows `drill` on its command line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from exporter.cli import EXIT_MISSING, NEEDS_DRILL_EXTRA

EXIT_FAILED = 1


def parser() -> argparse.ArgumentParser:
    drill = argparse.ArgumentParser(prog="honeydue-exporter drill",
                                    description="run the whole alert pipeline locally and inject every failure mode")
    drill.add_argument("--only", action="append", metavar="ID", help="run only this scenario (repeatable)")
    drill.add_argument("--parallel", action="store_true",
                       help="run scenarios that share no resource together (faster; timings overlap)")
    drill.add_argument("--list", action="store_true",
                       help="list the scenarios and exit (needs neither the drill extra nor any server)")
    drill.add_argument("--healthy-seconds", type=float, default=20.0,
                       help="healthy period before the first injection, in which only the Watchdog may fire")
    drill.add_argument("--workdir", type=Path, metavar="DIR",
                       help="keep every component's config and log in DIR (default: a temp dir, removed at the end)")
    return drill


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from testbed.drill.scenarios import SCENARIOS  # imports no part of the pipeline: works without the extra

    if args.list:
        for s in SCENARIOS:
            print(f"{s.id:26} {s.failure}  ->  {', '.join(s.expected)}")
        return 0
    return run(args)


def run(args: argparse.Namespace) -> int:
    try:
        from testbed.drill.pipeline import Pipeline
        from testbed.drill.scenarios import SCENARIOS, Runner, table
        from testbed.procs import MissingBinary
    except ModuleNotFoundError as exc:  # one of the drill extra's packages is not installed
        missing = (exc.name or "").split(".")[0]
        if missing not in ("aiosmtpd", "cryptography"):
            raise
        print(f"honeydue-exporter drill: {missing} is not installed; {NEEDS_DRILL_EXTRA}", file=sys.stderr)
        return EXIT_MISSING

    chosen = [s for s in SCENARIOS if not args.only or s.id in args.only]
    if args.only and len(chosen) != len(set(args.only)):
        print(f"unknown scenario in {args.only}; see --list", file=sys.stderr)
        return 2
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(workdir=args.workdir)
    try:
        progress(f"starting the pipeline in {pipeline.workdir}")
        pipeline.start(progress)
        runner = Runner(pipeline, progress)
        progress("warming up: waiting for the Watchdog and a quiet Alertmanager")
        runner.warm_up()
        progress(f"healthy period: {args.healthy_seconds:g}s in which only the Watchdog may fire")
        healthy_wrong = runner.healthy_period(args.healthy_seconds)
        results = runner.run(chosen, parallel=args.parallel)
        progress("dashboard: every panel, annotation and variable query against VictoriaMetrics")
        query_errors = runner.dashboard.failing_queries()
    except MissingBinary as exc:
        print(f"honeydue-exporter drill: {exc}", file=sys.stderr)
        return EXIT_MISSING
    finally:
        progress("stopping the pipeline")
        pipeline.stop()
    t = pipeline.timing
    print()
    print(table(results, t.fire_bound))
    print()
    print(f"bound on time to fire: for {t.for_seconds:g}s + 2 scrapes x {t.scrape_interval:g}s + 1 evaluation "
          f"{t.evaluation_interval:g}s + VM latency offset {t.latency_offset:g}s = {t.fire_bound:g}s; "
          f"range windows shortened to [{t.range_window}]")
    failed = False
    if healthy_wrong:
        print(f"healthy period: unexpected alerts {sorted(healthy_wrong)}")
        failed = True
    else:
        print("healthy period: only the Watchdog fired")
    for error in query_errors:
        print(f"dashboard query failed: {error}")
    print(f"dashboard: {len(runner.dashboard.queries())} queries, {len(query_errors)} failed")
    failed = failed or bool(query_errors)
    for r in results:
        for problem in r.dashboard or []:
            print(f"{r.scenario.id}: dashboard: {problem}")
        failed = failed or bool(r.dashboard)
        for problem in r.problems:
            print(f"{r.scenario.id}: {problem}")
        if r.wrong:
            print(f"{r.scenario.id}: wrong alerts fired: {sorted(r.wrong)}")
        if r.scenario.note:
            print(f"{r.scenario.id}: note: {r.scenario.note}")
        failed = failed or not r.ok
    print(f"drill {'FAILED' if failed else 'passed'} in {time.monotonic() - started:.0f}s")
    return EXIT_FAILED if failed else 0
