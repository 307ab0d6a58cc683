"""One module per probe family, each behind the same shape (see exporter.engine.Probe).

`build_probes` is the only place that knows which probes exist; a new probe family adds its
module here and nothing else in the engine or the server changes.

A family's module is imported only when the config enables the family: importing it imports its
client library (the Kubernetes client ~11 MiB of RSS, psycopg ~10 MiB, redis ~6 MiB, ...), so the
netcheck DaemonSet, which runs TCP probes only, never pays for the others.
`python -m bench import_cost` measures each import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import import_module
from types import ModuleType
from typing import get_args

from exporter.config import Config, Family
from exporter.engine import Probe
from exporter.probes.deps import Dependencies
from exporter.status import Absence

FAMILIES: tuple[str, ...] = get_args(Family)

# family -> (module, whether the config gives the family anything to run). Each module's build()
# still decides what it builds; tests/test_series_limit.py checks these agree with it.
_MODULES: dict[str, tuple[str, Callable[[Config], bool]]] = {
    "redis": ("redis", lambda c: c.redis.enabled),
    "postgres": ("postgres", lambda c: c.postgres.pooler.enabled or c.postgres.direct.enabled),
    "asynq": ("asynq", lambda c: c.redis.enabled if c.asynq.enabled is None else c.asynq.enabled),
    "residence_cache": ("cache", lambda c: c.residence_cache.enabled),
    "kubernetes": ("kubernetes", lambda c: True),  # off still publishes honeydue_kube_config_info{source="none"}
    "http": ("http", lambda c: bool(c.http.targets)),
    "dns": ("dns", lambda c: bool(c.dns.lookups)),
    "smtp": ("smtp", lambda c: bool(c.smtp.targets)),
    "tcp": ("tcp", lambda c: bool(c.tcp.targets or c.tcp.discover)),
    "vmagent": ("vmagent", lambda c: c.vmagent.url is not None),
    "nodata": ("nodata", lambda c: c.nodata.query_url is not None),
}
# `mode: netcheck` (the per-node DaemonSet) runs only these.
NETCHECK_FAMILIES = ("tcp",)


def module_name(family: str) -> str:
    """The module of a family, without importing it (`residence_cache` -> cache)."""
    return _MODULES[family][0]


def module(family: str) -> ModuleType:
    return import_module(f"exporter.probes.{module_name(family)}")


def all_modules() -> tuple[ModuleType, ...]:
    """Every probe module, imported (for metric declarations: render, lint tests)."""
    return tuple(module(family) for family in _MODULES)


def enabled_families(config: Config) -> list[str]:
    families: Iterable[str] = NETCHECK_FAMILIES if config.mode == "netcheck" else _MODULES
    return [family for family in families if _MODULES[family][1](config)]


# Why a probe family builds no probe, for the status page (exporter.status): "off" when switched off,
# "not configured" when it has nothing to probe. Keyed by the family names of catalog `probes=`; a key
# covers the families that start with it (`kubernetes` covers `kubernetes_nodes`).
_ABSENT: dict[str, Callable[[Config], Absence]] = {
    "redis": lambda c: Absence("off", "redis.enabled is false"),
    "postgres": lambda c: Absence("off", "postgres.pooler and postgres.direct are disabled"),
    "asynq": lambda c: Absence("off", "asynq.enabled is false" if c.asynq.enabled is False
                               else "asynq follows redis.enabled, which is false"),
    "residence_cache": lambda c: Absence("off", "residence_cache.enabled is false (it needs honeyDue's schema)"),
    "kubernetes": lambda c: Absence("off", import_module("exporter.probes.kube_client").off_reason(c.kubernetes)),
    "http": lambda c: Absence("not configured", "no http.targets"),
    "dns": lambda c: Absence("not configured", "no dns.lookups"),
    "smtp": lambda c: Absence("not configured", "no smtp.targets"),
    "tcp": lambda c: Absence("not configured", "no tcp.targets or tcp.discover"),
    "vmagent": lambda c: Absence("not configured", "vmagent.url is not set"),
    "nodata": lambda c: Absence("not configured", "nodata.query_url is not set"),
}


def absences(config: Config) -> dict[str, Absence]:
    """Why each family that may build no probe would be missing (asked only for families that are)."""
    if config.mode == "netcheck":
        netcheck = Absence("off", "mode netcheck runs only the TCP probes (the per-node DaemonSet)")
        return {family: netcheck if family != "tcp" else why(config) for family, why in _ABSENT.items()}
    return {family: why(config) for family, why in _ABSENT.items()}


def build_probes(config: Config, deps: Dependencies | None = None) -> list[Probe]:
    deps = deps or Dependencies.from_config(config)
    probes: list[Probe] = []
    for family in enabled_families(config):
        probes.extend(module(family).build(config, deps))
    return probes


def family_of(probe_name: str) -> str:
    """The family a probe belongs to, from its name (`postgres_pooler` -> postgres, `http_www` -> http)."""
    if probe_name.startswith("netcheck_"):  # netcheck's discovered paths (tcp.discover) are TCP probes
        return "tcp"
    for family in FAMILIES:
        if probe_name == family or probe_name.startswith(f"{family}_"):
            return family
    raise ValueError(f"probe {probe_name!r} belongs to no family")


def series_limits(config: Config, probes: Iterable[Probe]) -> dict[str, int]:
    """Each probe's series_limit (its family's, else the default)."""
    return {p.name: config.series_limit.of(family_of(p.name)) for p in probes}
