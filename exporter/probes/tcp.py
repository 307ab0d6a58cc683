"""TCP connect probes: essential paths, and per node a backend's pod IPs against its Service ClusterIP.

Feeds "UFW rule accidentally blocks essential traffic", "Flannel broken on one node" and "Kube-proxy
broken on one node". Run on every node (`mode: netcheck`, a DaemonSet) the `node` label tells the
failures apart: Flannel broken on X = X reaches no *remote* pod IP; kube-proxy broken on X = X cannot
reach a ClusterIP while the pod IPs behind it answer. A connect that completes proves the path; the
connection is closed at once (nothing is sent), so the probe costs the backend one accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from exporter.config import Config, TcpConfig, TcpTarget, split_address
from exporter.engine import Probe
from exporter.probes.deps import Dependencies
from exporter.samples import Samples, gauge, info

LABELS = ("target", "role", "backend", "path", "node")

UP = gauge(
    "honeydue_tcp_up",
    "Whether a TCP connection to the target completed (1) or not (0). path: local/remote pod, '' otherwise.",
    *LABELS,
)
CONNECT_SECONDS = gauge(
    "honeydue_tcp_connect_duration_seconds", "Seconds the last successful TCP connect took.", *LABELS
)
FAILURE = info(
    "honeydue_tcp_failure_info", "Present while the target is unreachable: why (refused, timeout, ...).",
    *LABELS, "reason",
)


def path_of(target: TcpTarget, node: str) -> str:
    """`local`/`remote` for a pod target (does the connect cross the overlay?), '' for the other roles."""
    if target.role != "pod":
        return ""
    if not target.node or not node:
        return "unknown"
    return "local" if target.node == node else "remote"


class TcpProbe:
    """Connect to one host:port within the probe timeout; raise when it does not complete."""

    def __init__(self, target: TcpTarget, cfg: TcpConfig, deps: Dependencies) -> None:
        self.name = f"tcp_{target.name}"
        self.interval = cfg.interval
        self.timeout = cfg.timeout
        self._host, self._port = split_address(target.address)
        self._deps = deps
        self.labels = {
            "target": target.name,
            "role": target.role,
            "backend": target.backend,
            "path": path_of(target, cfg.node_name),
            "node": cfg.node_name,
        }

    async def collect(self) -> Samples:
        async with self._deps.throttle("tcp"):
            started = time.monotonic()
            _, writer = await asyncio.open_connection(self._host, self._port)
            elapsed = time.monotonic() - started
            writer.close()
            with contextlib.suppress(OSError):
                await asyncio.wait_for(writer.wait_closed(), timeout=0.5)
        s = Samples()
        s.add(UP, 1, **self.labels)
        s.add(CONNECT_SECONDS, elapsed, **self.labels)
        return s

    def failed(self, reason: str) -> Samples:
        s = Samples()
        s.add(UP, 0, **self.labels)
        s.add(FAILURE, 1, **self.labels, reason=reason)
        return s

    async def close(self) -> None:
        return None


def build(config: Config, deps: Dependencies) -> list[Probe]:
    return [TcpProbe(target, config.tcp, deps) for target in config.tcp.targets]
