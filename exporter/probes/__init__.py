"""One module per probe, each behind the same shape (see exporter.engine.Probe).

`build_probes` is the only place that knows which probes exist; a new probe family adds its
module here and nothing else in the engine or the server changes.
"""

from __future__ import annotations

from collections.abc import Callable

from exporter.config import Config
from exporter.engine import Probe
from exporter.probes import asynq, cache, dns, http, kubernetes, nodata, postgres, redis, smtp, tcp, vmagent
from exporter.probes.deps import Dependencies
from exporter.status import Absence

MODULES = (redis, postgres, asynq, cache, kubernetes, http, dns, smtp, tcp, vmagent, nodata)
# `mode: netcheck` (the per-node DaemonSet) runs only these.
NETCHECK_MODULES = (tcp,)


# Why a probe family builds no probe, for the status page (exporter.status): "off" when switched off,
# "not configured" when it has nothing to probe. Keyed by the family names of catalog `probes=`; a key
# covers the families that start with it (`kubernetes` covers `kubernetes_nodes`).
_ABSENT: dict[str, Callable[[Config], Absence]] = {
    "redis": lambda c: Absence("off", "redis.enabled is false"),
    "postgres": lambda c: Absence("off", "postgres.pooler and postgres.direct are disabled"),
    "asynq": lambda c: Absence("off", "asynq.enabled is false" if c.asynq.enabled is False
                               else "asynq follows redis.enabled, which is false"),
    "residence_cache": lambda c: Absence("off", "residence_cache.enabled is false (it needs honeyDue's schema)"),
    "kubernetes": lambda c: Absence("off", kubernetes.off_reason(c.kubernetes)),
    "http": lambda c: Absence("not configured", "no http.targets"),
    "dns": lambda c: Absence("not configured", "no dns.lookups"),
    "smtp": lambda c: Absence("not configured", "no smtp.targets"),
    "tcp": lambda c: Absence("not configured", "no tcp.targets"),
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
    for module in NETCHECK_MODULES if config.mode == "netcheck" else MODULES:
        probes.extend(module.build(config, deps))
    return probes
