"""What each import costs the running exporter: import time (-X importtime) and RSS, package by package.

    .venv/bin/python -m bench import_cost

Step 1: a fresh interpreter does what `honeydue-exporter run` does before serving, on
deploy/overlays/example/config.yml (every family on; secrets at temporary files; the Kubernetes client pointed at
a kubeconfig of its own, nothing contacted): load the config, tune malloc, build every probe, build
the engine and the HTTP app, import uvloop. `-X importtime` records every module it imports, in order.
Step 2: a second fresh interpreter imports exactly those modules again, one at a time in the order
their imports finished (so each module's dependencies are already there), reads its RSS after each
and charges the growth to the module's top-level package: what each package adds to the exporter.
Step 3: each of the largest packages alone in a fresh interpreter (after asyncio and ssl, which everything uses).
Both run through bench/_runtime.py, so only what the production image installs can be imported, with
the image's Python settings (PYTHONOPTIMIZE, from deploy/Dockerfile).
Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from testbed.kubeconfig import write_kubeconfig

from bench._peers import REPO, table
from bench._runtime import blocked_modules, image_environment, production_config_text

MiB = 2**20
# What needs each package (families are config sections; "core" runs whatever is enabled).
NEEDED_BY = {
    "kubernetes": "kubernetes", "urllib3": "kubernetes (its HTTP client)", "requests": "kubernetes (config loader)",
    "requests_oauthlib": "kubernetes (config loader)", "oauthlib": "kubernetes (config loader)",
    "websocket": "kubernetes (stream module)", "dateutil": "kubernetes", "durationpy": "kubernetes",
    "certifi": "kubernetes, aiohttp", "psycopg": "postgres, residence_cache", "psycopg_binary": "postgres (libpq)",
    "redis": "redis, asynq, residence_cache", "dns": "dns", "aiosmtplib": "smtp", "google": "asynq (protobuf)",
    "aiohttp": "core (/metrics server), http, vmagent, nodata", "yarl": "aiohttp", "multidict": "aiohttp",
    "pydantic": "core (config), kubernetes client", "pydantic_core": "pydantic",
    "pydantic_settings": "core (HONEYDUE_* environment overlay)", "dotenv": "pydantic_settings",
    "yaml": "core (config file)",
    "prometheus_client": "core (exposition)", "uvloop": "core (event loop)", "pythonjsonlogger": "core (JSON logs)",
    "asyncio_throttle": "core (rate limits)", "exporter": "the exporter itself",
}


# What one could drop: packages grouped by the need they serve.
GROUPS = {
    "Kubernetes client stack (kubernetes family)": {"kubernetes", "urllib3", "requests", "requests_oauthlib",
                                                    "oauthlib", "websocket", "dateutil", "durationpy", "certifi",
                                                    "charset_normalizer", "six"},
    "pydantic (config; the Kubernetes client needs it too)": {"pydantic", "pydantic_core", "annotated_types",
                                                              "typing_inspection", "typing_extensions"},
    "pydantic-settings (HONEYDUE_* environment overlay)": {"pydantic_settings", "dotenv"},
    "aiohttp (/metrics server, http, vmagent, nodata)": {"aiohttp", "yarl", "multidict", "frozenlist", "aiosignal",
                                                         "aiohappyeyeballs", "propcache", "attrs", "idna"},
    "psycopg (postgres, residence_cache)": {"psycopg", "psycopg_binary"},
    "redis (redis, asynq, residence_cache)": {"redis"},
    "protobuf (asynq)": {"google"},
    "dnspython (dns)": {"dns"},
    "aiosmtplib (smtp)": {"aiosmtplib"},
    "prometheus_client, yaml, uvloop, json logs, throttle": {"prometheus_client", "yaml", "uvloop",
                                                              "pythonjsonlogger", "asyncio_throttle"},
    "the exporter's own modules": {"exporter"},
}


def _startup_script(config: Path, kubeconfig: Path) -> str:
    return f"""
import sys
from exporter.config import load_config
from exporter.memory import tune_malloc
from exporter.probes import build_probes, series_limits
from exporter.engine import Engine
from exporter.server import make_app
from exporter.logs import setup_logging
import uvloop
config = load_config({str(config)!r})
config = config.model_copy(update={{"kubernetes": config.kubernetes.model_copy(
    update={{"source": "kubeconfig", "kubeconfig": __import__("pathlib").Path({str(kubeconfig)!r})}})}})
setup_logging("json", "error")
tune_malloc()
probes = build_probes(config)
engine = Engine(probes, series_limits=series_limits(config, probes))
make_app(engine, config.runbook.base_url, config.server.auth)
print("started")
"""


_MEASURE = """
import importlib, json, sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) * 1024
added = {}
before = start = rss()
for module in json.loads(sys.argv[1]):
    try:
        importlib.import_module(module)
    except Exception:
        pass
    now = rss()
    top = module.split('.')[0]
    added[top] = added.get(top, 0) + now - before
    before = now
print(json.dumps({"python": start, "total": before, "added": added}))
"""

_ALONE = """
import asyncio, ssl, importlib, json, sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) * 1024
before = rss()
for module in json.loads(sys.argv[1]):
    try:
        importlib.import_module(module)
    except Exception:
        pass
print(rss() - before)
"""


def _config(workdir: Path) -> tuple[Path, Path]:
    text = production_config_text(workdir)
    (workdir / "config.yml").write_text(text)
    return workdir / "config.yml", write_kubeconfig(workdir / "kubeconfig", "https://127.0.0.1:1", token="bench")


def _run(blocked: str, code: str, *args: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYDUE_")} | {"PYTHONPATH": str(REPO)}
    env |= image_environment()  # PYTHONOPTIMIZE as the image runs it
    script = Path(tempfile.mkdtemp(prefix="bench-import-")) / "script.py"
    script.write_text(code)
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, str(REPO / "bench" / "_runtime.py"), blocked, str(script), *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env=env, check=False)


def measure() -> dict[str, object]:
    blocked = ",".join(blocked_modules())
    with tempfile.TemporaryDirectory() as tmp:
        config, kubeconfig = _config(Path(tmp))
        started = _run(blocked, _startup_script(config, kubeconfig), importtime=True)
    if started.returncode != 0:
        raise RuntimeError(f"start-up failed: {started.stderr[-1500:]}")
    # -X importtime prints a module when its import finishes, so dependencies come before their users:
    # importing the packages in that order charges each one mostly with what is its own.
    order: list[str] = []
    self_us: dict[str, int] = defaultdict(int)
    for line in started.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            order.append(match.group(4))
            self_us[match.group(4).split(".")[0]] += int(match.group(1))
    groups: dict[str, list[str]] = {}
    for module in order:
        top = module.split(".")[0]
        if top not in ("bench", "runpy", "encodings", "site"):
            groups.setdefault(top, []).append(module)
    wanted = [m for m in order if m.split(".")[0] in groups]
    measured = _run(blocked, _MEASURE, json.dumps(wanted))
    if measured.returncode != 0:
        raise RuntimeError(f"measurement failed: {measured.stderr[-1500:]}")
    result = json.loads(measured.stdout.strip().splitlines()[-1])
    deltas: dict[str, int] = result["added"]
    biggest = sorted(deltas, key=lambda n: -deltas[n])[:12]
    alone = {}
    for name in biggest:
        one = _run(blocked, _ALONE, json.dumps(groups[name]))
        if one.returncode == 0:
            alone[name] = int(one.stdout.strip().splitlines()[-1])
    return {"python": result["python"], "total": result["total"], "deltas": deltas, "alone": alone,
            "self_us": dict(self_us), "modules": {name: len(mods) for name, mods in groups.items()},
            "stdlib": set(sys.stdlib_module_names)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25, help="packages listed (largest RSS first)")
    rows_wanted = parser.parse_args(argv).rows
    found = measure()
    deltas: dict[str, int] = found["deltas"]  # type: ignore[assignment]
    alone: dict[str, int] = found["alone"]  # type: ignore[assignment]
    self_us: dict[str, int] = found["self_us"]  # type: ignore[assignment]
    count: dict[str, int] = found["modules"]  # type: ignore[assignment]
    stdlib: set[str] = found["stdlib"]  # type: ignore[assignment]
    python, total = int(found["python"]), int(found["total"])  # type: ignore[call-overload]
    rows = []
    for name in sorted(deltas, key=lambda n: -deltas[n])[:rows_wanted]:
        kind = "stdlib" if name in stdlib else NEEDED_BY.get(name, "-")
        rows.append((name, count[name], f"{self_us.get(name, 0) / 1000:.0f}", f"{deltas[name] / MiB:.1f}",
                     f"{alone[name] / MiB:.1f}" if name in alone else "", kind))
    stdlib_total = sum(v for n, v in deltas.items() if n in stdlib)
    print(f"Start-up imports of `honeydue-exporter run` on deploy/overlays/example/config.yml (every family on), "
          f"runtime packages only: {len(deltas)} top-level packages, {sum(count.values())} modules; RSS "
          f"{python / MiB:.1f} MiB for the bare interpreter, {total / MiB:.1f} MiB after every import "
          f"(stdlib packages {stdlib_total / MiB:.1f} MiB of it).")
    print(table(("package", "modules", "import ms (self)", "RSS added in order MiB", "RSS alone MiB", "needed by"),
                rows))
    print("RSS added in order: what the package's own modules add, imported in the exporter's order after their "
          "dependencies. Alone: the package with everything it pulls in, in a fresh interpreter after asyncio "
          "and ssl.")
    grouped = [(group, sum(deltas.get(n, 0) for n in names), sum(self_us.get(n, 0) for n in names))
               for group, names in GROUPS.items()]
    named = set().union(*GROUPS.values())
    grouped.append(("Python's standard library", stdlib_total, sum(v for n, v in self_us.items() if n in stdlib)))
    rest = sum(v for n, v in deltas.items() if n not in named and n not in stdlib)
    grouped.append(("everything else", rest, 0))
    print("\nBy what needs it (RSS added in order):")
    print(table(("need", "RSS MiB", "import ms (self)"),
                [(g, f"{v / MiB:.1f}", f"{us / 1000:.0f}") for g, v, us in sorted(grouped, key=lambda r: -r[1])]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
