"""Command line: `run` (default), `check-config`, `render`, `catalog`, `drill`.

The global flags (--config, --web.listen-address, --web.config.file, --log.level, --log.format) go before or
after the subcommand: `honeydue-exporter --config F run` and `honeydue-exporter run --config F` are the same.
"""

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
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from exporter.webconfig import WebConfigSource

log = logging.getLogger("exporter")

EXIT_CONFIG = 2
EXIT_MISSING = 3
NEEDS_DRILL_EXTRA = ("install the drill extra: pip install 'honeydue-exporter[drill]' "
                     "(from a source checkout: pip install -e '.[drill]')")
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader went away (`yes | head`)
GLOBAL_FLAGS = ("config", "web_listen_address", "web_config_file", "log_level", "log_format")


def _global_flags(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The flags every subcommand takes, before or after its name. On a subcommand they default to SUPPRESS, so
    one given before the subcommand is not overwritten by the subcommand's default."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "-c", "--config", default=default(os.environ.get("HONEYDUE_CONFIG")),
        help="YAML config file (default: $HONEYDUE_CONFIG; none = built-in defaults)",
    )
    parser.add_argument("--web.listen-address", dest="web_listen_address", metavar="[HOST]:PORT", default=default(None),
                        help="address of /metrics, overriding server.listen_address and server.port (:9817 = 0.0.0.0:9817)")
    parser.add_argument("--web.config.file", dest="web_config_file", metavar="FILE", default=default(None),
                        help="exporter-toolkit web config: TLS and bcrypt basic auth (overrides server.web_config)")
    parser.add_argument("--log.level", dest="log_level", choices=("debug", "info", "warn", "warning", "error"),
                        default=default(None), help="override log.level")
    parser.add_argument("--log.format", "--log-format", dest="log_format", choices=("json", "text"),
                        default=default(None), help="override log.format")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="honeydue-exporter", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"honeydue-exporter {__version__}")
    _global_flags(parser, defaults=True)
    sub = parser.add_subparsers(dest="command")

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        command = sub.add_parser(name, **kwargs)
        _global_flags(command, defaults=False)
        return command

    run = add("run", help="serve /metrics (the default)")
    run.add_argument(
        "--mode", choices=("full", "netcheck"),
        help="override `mode`: netcheck runs only the TCP probes (the per-node DaemonSet)",
    )
    check = add("check-config", help="validate the config (and the web config file) and print it with secrets masked")
    check.add_argument(
        "--syntax-only", action="store_true",
        help="as promtool's: do not read the files the config names (its *_file secrets and the web config, "
        "mounted only where it is deployed); every other check still runs",
    )
    render = add("render", help="write rules/, dashboards/ and the operator objects from the catalog")
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
    catalog = add("catalog", help="print the failure-mode coverage table, or one entry traced (--id)")
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
    try:
        code = _main(argv)
        sys.stdout.flush()  # inside the try: a reader gone before the last write shows here
    except BrokenPipeError:
        # `honeydue-exporter catalog | head`: the reader has what it wanted. Point stdout at /dev/null so the
        # interpreter's final flush cannot raise again, and exit like a tool ended by SIGPIPE, without a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


def listen_address(value: str) -> tuple[str, int]:
    """`[host]:port` (Prometheus' --web.listen-address) -> (host, port); an empty host is 0.0.0.0 (every IPv4 address)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"--web.listen-address {value!r}: must be [host]:port, e.g. :9817 or 127.0.0.1:9817")
    host = host.removeprefix("[").removesuffix("]")
    return host or "0.0.0.0", int(port_text)  # noqa: S104 - the flag's empty host means every address


def apply_flags(config: Config, args: argparse.Namespace) -> Config:
    """The global flags laid over the loaded config (flags win over file and environment)."""
    server: dict[str, Any] = {}
    if args.web_listen_address:
        server["listen_address"], server["port"] = listen_address(args.web_listen_address)
    if args.web_config_file:
        server["web_config"] = Path(args.web_config_file)
    logs: dict[str, Any] = {}
    if args.log_level:
        logs["level"] = "warning" if args.log_level == "warn" else args.log_level
    if args.log_format:
        logs["format"] = args.log_format
    return config.model_copy(update={"server": config.server.model_copy(update=server),
                                     "log": config.log.model_copy(update=logs)})


def load_web_config(config: Config) -> WebConfigSource | None:
    """The web config file in force (server.web_config or --web.config.file), loaded and checked."""
    path = config.server.web_config
    if path is None:
        return None
    from exporter.webconfig import WebConfigSource

    source = WebConfigSource(Path(path))
    if source.config.basic_auth_users and config.server.auth is not None:
        raise ConfigError("server.auth and the web config file's basic_auth_users are both set: keep one")
    register_secrets([h.get_secret_value() for h in source.config.basic_auth_users.values()])
    return source


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    for name in GLOBAL_FLAGS:  # a subcommand's parser leaves out what it was not given (SUPPRESS)
        if not hasattr(args, name):
            setattr(args, name, None)
    command = args.command or "run"
    if rest and command != "drill":
        parser.error("unrecognized arguments: " + " ".join(rest))
    try:
        syntax_only = getattr(args, "syntax_only", False)
        config = apply_flags(load_config(args.config, read_secret_files=not syntax_only), args)
        register_secrets(config.secrets())
        web_config = load_web_config(config) if command in ("run", "check-config") and not syntax_only else None
    except ConfigError as exc:
        print(f"honeydue-exporter: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
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
    setup_logging(config.log.format, config.log.level)
    with contextlib.suppress(KeyboardInterrupt):
        _event_loop_run(serve(config, web_config=web_config))
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


async def serve(config: Config, ready: asyncio.Event | None = None, web_config: WebConfigSource | None = None) -> None:
    """Run probes and the HTTP server until SIGTERM/SIGINT, then stop within the shutdown budget."""
    from exporter.engine import Engine
    from exporter.listener import ListenError, open_site
    from exporter.memory import tune_malloc
    from exporter.probes import absences, build_probes, series_limits
    from exporter.server import make_app

    tune_malloc()
    probes = build_probes(config)
    engine = Engine(probes, series_limits=series_limits(config, probes))
    app = make_app(engine, config.runbook.base_url, config.server.auth, absences(config), web_config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        scheme = await open_site(runner, config.server.listen_address, config.server.port, web_config)
    except ListenError as exc:
        log.error("%s", exc)
        await runner.cleanup()
        raise SystemExit(1) from None
    engine.start()
    # Everything allocated so far lives until exit: keep it out of the cyclic GC's full collections,
    # which otherwise add their pause to whichever scrape they interrupt (the p99 tail).
    gc.collect()
    gc.freeze()
    log.info(
        "honeydue-exporter %s (mode %s) listening on %s://%s:%s with probes %s", __version__, config.mode, scheme,
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
