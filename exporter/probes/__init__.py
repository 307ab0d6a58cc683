"""One module per probe, each behind the same shape (see exporter.engine.Probe).

`build_probes` is the only place that knows which probes exist; a new probe family adds its
module here and nothing else in the engine or the server changes.
"""

from __future__ import annotations

from exporter.config import Config
from exporter.engine import Probe
from exporter.probes import asynq, cache, dns, http, kubernetes, nodata, postgres, redis, smtp, tcp, vmagent
from exporter.probes.deps import Dependencies

MODULES = (redis, postgres, asynq, cache, kubernetes, http, dns, smtp, tcp, vmagent, nodata)
# `mode: netcheck` (the per-node DaemonSet) runs only these.
NETCHECK_MODULES = (tcp,)


def build_probes(config: Config, deps: Dependencies | None = None) -> list[Probe]:
    deps = deps or Dependencies.from_config(config)
    probes: list[Probe] = []
    for module in NETCHECK_MODULES if config.mode == "netcheck" else MODULES:
        probes.extend(module.build(config, deps))
    return probes
