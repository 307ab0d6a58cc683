"""The probe families: one record each, the only list of them.

Read by the config (a family's name is its config section and its `series_limit.families` key), the probe
loader (exporter.probes: which module builds it and whether the config enables it), the catalog (`catalog
--id`: the catalog's names for its probes, `kinds`) and the status page (why it builds no probe, `absent`).
Each probe says which family and kind it is (exporter.engine.Probe.family, .kind); nothing reads them from
a probe's name. It imports neither the config nor a probe module when imported, so every reader may import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from exporter.config import Config


@dataclass(frozen=True)
class Absence:
    """Why no probe of a family runs: switched off, or nothing configured for it to probe."""

    state: Literal["off", "not configured"]
    reason: str


@dataclass(frozen=True)
class Family:
    """A probe family: `name` is its config section; `module` (exporter/probes/<module>.py) has its build().

    `kinds`: the names catalog entries give its probes (FailureMode.probes), each some probe's `kind`.
    `enabled`: whether the config gives it anything to run (its build() still decides what it builds;
    tests/test_series_limit.py checks the two agree). `absent`: why it builds no probe, for the status page.
    """

    name: str
    module: str
    kinds: tuple[str, ...]
    enabled: Callable[[Config], bool]
    absent: Callable[[Config], Absence]


def _kube_off(config: Config) -> Absence:
    return Absence("off", import_module("exporter.probes.kube_client").off_reason(config.kubernetes))


FAMILIES: tuple[Family, ...] = (
    Family("redis", "redis", ("redis",), lambda c: c.redis.enabled,
           lambda c: Absence("off", "redis.enabled is false")),
    Family("postgres", "postgres", ("postgres",), lambda c: c.postgres.pooler.enabled or c.postgres.direct.enabled,
           lambda c: Absence("off", "postgres.pooler and postgres.direct are disabled")),
    Family("asynq", "asynq", ("asynq",),
           lambda c: c.redis.enabled if c.asynq.enabled is None else c.asynq.enabled,
           lambda c: Absence("off", "asynq.enabled is false" if c.asynq.enabled is False
                             else "asynq follows redis.enabled, which is false")),
    Family("residence_cache", "cache", ("residence_cache",), lambda c: c.residence_cache.enabled,
           lambda c: Absence("off", "residence_cache.enabled is false (it needs honeyDue's schema)")),
    # Always enabled: off, it still publishes honeydue_kube_config_info{source="none"} (kubernetes.DisabledProbe).
    Family("kubernetes", "kubernetes",
           ("kubernetes_api", "kubernetes_nodes", "kubernetes_pods", "kubernetes_deployments", "kubernetes_apiservices",
            "kubernetes_pod_metrics"),
           lambda c: True, _kube_off),
    Family("http", "http", ("http",), lambda c: bool(c.http.targets),
           lambda c: Absence("not configured", "no http.targets")),
    Family("dns", "dns", ("dns",), lambda c: bool(c.dns.lookups),
           lambda c: Absence("not configured", "no dns.lookups")),
    Family("smtp", "smtp", ("smtp",), lambda c: bool(c.smtp.targets),
           lambda c: Absence("not configured", "no smtp.targets")),
    Family("tcp", "tcp", ("tcp",), lambda c: bool(c.tcp.targets or c.tcp.discover),
           lambda c: Absence("not configured", "no tcp.targets or tcp.discover")),
    Family("vmagent", "vmagent", ("vmagent",), lambda c: c.vmagent.url is not None,
           lambda c: Absence("not configured", "vmagent.url is not set")),
    Family("nodata", "nodata", ("nodata",), lambda c: c.nodata.query_url is not None,
           lambda c: Absence("not configured", "nodata.query_url is not set")),
)
NAMES: tuple[str, ...] = tuple(f.name for f in FAMILIES)
# `mode: netcheck` (the per-node DaemonSet) runs only these.
NETCHECK: tuple[str, ...] = ("tcp",)
NETCHECK_ABSENCE = Absence("off", "mode netcheck runs only the TCP probes (the per-node DaemonSet)")

_BY_NAME = {f.name: f for f in FAMILIES}
_BY_KIND = {kind: f for f in FAMILIES for kind in f.kinds}


def family(name: str) -> Family:
    """The family of this name (a config section); KeyError when there is none."""
    return _BY_NAME[name]


def of_kind(kind: str) -> Family:
    """The family whose probes catalog entries call `kind` (`kubernetes_pod_metrics` -> kubernetes)."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise KeyError(f"no probe family has the kind {kind!r}") from None
