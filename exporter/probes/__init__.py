"""One module per probe family, each behind the same shape (see exporter.engine.Probe).

The families are the records of exporter.families; this package builds the probes of those the config
enables. A new family touches two places besides its own module: its record in exporter/families.py
(module, config section, the catalog's names for its probes, when it is enabled, why it is absent) and
its config section in exporter/config.py (`Config`). Its probes set `family` and `kind`; the engine,
the server, the catalog report and the status page then need nothing new.

A family's module is imported only when the config enables the family: importing it imports its
client library (the Kubernetes client ~11 MiB of RSS, psycopg ~10 MiB, redis ~6 MiB, ...), so the
netcheck DaemonSet, which runs TCP probes only, never pays for the others.
`python -m bench import_cost` measures each import.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from types import ModuleType

from exporter.config import Config
from exporter.engine import Probe
from exporter.families import FAMILIES, NETCHECK, NETCHECK_ABSENCE, Absence, family
from exporter.probes.deps import Dependencies


def module(name: str) -> ModuleType:
    """The module that builds the family `name`, imported."""
    return import_module(f"exporter.probes.{family(name).module}")


def all_modules() -> tuple[ModuleType, ...]:
    """Every probe module, imported (for metric declarations: render, lint tests)."""
    return tuple(module(f.name) for f in FAMILIES)


def enabled_families(config: Config) -> list[str]:
    names: Iterable[str] = NETCHECK if config.mode == "netcheck" else (f.name for f in FAMILIES)
    return [name for name in names if family(name).enabled(config)]


def absences(config: Config) -> dict[str, Absence]:
    """Why each family that may build no probe would be missing (asked only for families that are)."""
    if config.mode == "netcheck":
        return {f.name: f.absent(config) if f.name in NETCHECK else NETCHECK_ABSENCE for f in FAMILIES}
    return {f.name: f.absent(config) for f in FAMILIES}


def build_probes(config: Config, deps: Dependencies | None = None) -> list[Probe]:
    deps = deps or Dependencies.from_config(config)
    probes: list[Probe] = []
    for name in enabled_families(config):
        probes.extend(module(name).build(config, deps))
    return probes


def series_limits(config: Config, probes: Iterable[Probe]) -> dict[str, int]:
    """Each probe's series_limit (its family's, else the default)."""
    return {p.name: config.series_limit.of(p.family) for p in probes}
