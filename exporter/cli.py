"""Command line: `run` (default), `check-config`, `render`, `catalog`, `drill`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from exporter import __version__
from exporter.config import (
    Config,
    ConfigError,
    GrafanaConfig,
    RunbookConfig,
    base_url_option,
    effective_config,
    load_config,
)
from exporter.logs import setup_logging
from exporter.redact import register_secrets

log = logging.getLogger("exporter")

EXIT_CONFIG = 2
EXIT_MISSING = 3
NEEDS_DRILL_EXTRA = ("install the drill extra: pip install 'honeydue-exporter[drill]' "
                     "(from a source checkout: pip install -e '.[drill]')")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="honeydue-exporter", description=__doc__)
    parser.add_argument("--version", action="version", version=f"honeydue-exporter {__version__}")
    parser.add_argument(
        "-c", "--config", default=os.environ.get("HONEYDUE_CONFIG"),
        help="YAML config file (default: $HONEYDUE_CONFIG; none = built-in defaults)",
    )
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="serve /metrics (the default)")
    run.add_argument("--log-format", choices=("json", "text"), help="override log.format")
    run.add_argument(
        "--mode", choices=("full", "netcheck"),
        help="override `mode`: netcheck runs only the TCP probes (the per-node DaemonSet)",
    )
    check = sub.add_parser("check-config", help="validate the config and print it with secrets masked")
    check.add_argument(
        "--syntax-only", action="store_true",
        help="as promtool's: do not read the files the config names (its *_file secrets, mounted only where it "
        "is deployed); every other check still runs",
    )
    render = sub.add_parser("render", help="write rules/ and dashboards/ from the catalog")
    render.add_argument("--out", default=".", help="directory holding rules/ and dashboards/ (default: .)")
    render.add_argument(
        "--base-url", help="runbook base URL (default: runbook.base_url from the config; checked like it)"
    )
    render.add_argument(
        "--grafana-url", help="Grafana base URL for alerts' dashboard_url (default: grafana.base_url; checked like it)"
    )
    render.add_argument("--check", action="store_true", help="write nothing; exit 1 if the files differ")
    # The drill lives in the test bed (testbed/drill) and parses its own options: `drill --help`.
    sub.add_parser("drill", add_help=False,
                   help="run the whole alert pipeline locally and inject every failure mode (the drill extra)")
    catalog = sub.add_parser("catalog", help="print the failure-mode coverage table, or one entry traced (--id)")
    catalog.add_argument("--format", choices=("text", "json"), default="text")
    catalog.add_argument(
        "--id", help="one failure mode: its probe modules, rules, unit tests, incidents, drill scenarios and panels"
    )
    catalog.add_argument("--root", default=".", help="with --id: the repository holding rules/ (default: .)")
    catalog.add_argument(
        "--base-url", help="runbook base URL (default: runbook.base_url from the config; checked like it)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    command = args.command or "run"
    if rest and command != "drill":
        parser.error("unrecognized arguments: " + " ".join(rest))
    try:
        config = load_config(args.config, read_secret_files=not getattr(args, "syntax_only", False))
    except ConfigError as exc:
        print(f"honeydue-exporter: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    register_secrets(config.secrets())
    for option, section, model in (("base_url", "runbook", RunbookConfig), ("grafana_url", "grafana", GrafanaConfig)):
        value = getattr(args, option, None)
        if not value:
            continue
        try:
            config = config.model_copy(update={section: model(base_url=base_url_option(model, value))})
        except ConfigError as exc:
            print(f"honeydue-exporter: config error: --{option.replace('_', '-')}: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    if command == "check-config":
        print(yaml.safe_dump(effective_config(config), sort_keys=False), end="")
        return 0
    if command == "render":
        return _render(args, config)
    if command == "catalog":
        return _catalog(args, config)
    if command == "drill":
        return _drill(rest)
    if getattr(args, "mode", None):
        config = config.model_copy(update={"mode": args.mode})
    fmt = getattr(args, "log_format", None) or config.log.format
    setup_logging(fmt, config.log.level)
    with contextlib.suppress(KeyboardInterrupt):
        _event_loop_run(serve(config))
    return 0


def _drill(argv: list[str]) -> int:
    """Hand the command line after `drill` to the drill, which the test bed holds (not in the image)."""
    try:
        from testbed.drill.command import main as drill
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "testbed":
            raise
        print(f"honeydue-exporter drill: testbed is not installed; {NEEDS_DRILL_EXTRA}", file=sys.stderr)
        return EXIT_MISSING
    setup_logging("text", "warning")
    return drill(argv)


def _event_loop_run(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed (it is on Linux): about 1.3x the scrapes per second of asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop wheels
        asyncio.run(main)
        return
    uvloop.run(main)


def _render(args: argparse.Namespace, config: Config) -> int:
    from exporter.render import render_all, write_all

    base = config.runbook.base_url
    grafana = config.grafana.base_url
    anchors = config.runbook.chapter17_anchors
    root = Path(args.out)
    if args.check:
        rendered = render_all(root, base, grafana_url=grafana, anchors=anchors)
        stale = [
            str(target) for target, text in rendered.items()
            if not target.exists() or target.read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"out of date: {name} (run `honeydue-exporter render`)", file=sys.stderr)
        return 1 if stale else 0
    for written in write_all(root, base, grafana_url=grafana, anchors=anchors):
        print(f"wrote {written}")
    return 0


def _catalog(args: argparse.Namespace, config: Config) -> int:
    from exporter import catalog_report

    if not args.id:
        catalog_report.print_table(config.runbook.base_url, args.format)
        return 0
    try:
        trace = catalog_report.trace(args.id, Path(args.root), config.runbook.base_url)
    except KeyError as exc:
        print(f"honeydue-exporter: catalog: {exc.args[0]}", file=sys.stderr)
        return EXIT_CONFIG
    catalog_report.print_trace(trace, args.format)
    return 0


async def serve(config: Config, ready: asyncio.Event | None = None) -> None:
    """Run probes and the HTTP server until SIGTERM/SIGINT, then stop within the shutdown budget."""
    from exporter.engine import Engine
    from exporter.memory import tune_malloc
    from exporter.probes import absences, build_probes, series_limits
    from exporter.server import make_app

    tune_malloc()
    probes = build_probes(config)
    engine = Engine(probes, series_limits=series_limits(config, probes))
    app = make_app(engine, config.runbook.base_url, config.server.auth, absences(config))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.server.listen_address, config.server.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", config.server.listen_address, config.server.port, exc.strerror)
        await runner.cleanup()
        raise SystemExit(1) from None
    engine.start()
    # Everything allocated so far lives until exit: keep it out of the cyclic GC's full collections,
    # which otherwise add their pause to whichever scrape they interrupt (the p99 tail).
    gc.collect()
    gc.freeze()
    log.info(
        "honeydue-exporter %s (mode %s) listening on %s:%s with probes %s", __version__, config.mode,
        config.server.listen_address, config.server.port, ", ".join(p.name for p in engine.probes) or "none",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down")
    budget = config.server.shutdown_timeout
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(engine.stop(), timeout=budget / 2)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(runner.cleanup(), timeout=budget / 2)
    log.info("stopped")
