"""TCP connect probes: essential paths, and per node a backend's pod IPs against its Service ClusterIP.

The pod IPs come from the Service's EndpointSlices on every run (`tcp.discover`): static pod IPs all
die at the first rollout, and after a node-by-node drain a pod that kept its IP would look reachable
from the wrong node. One series per (backend, node hosting pods): up when any of that node's pods answers.

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

from exporter.config import Config, TcpConfig, TcpDiscovery, TcpTarget, split_address
from exporter.engine import Probe
from exporter.probes.deps import Dependencies
from exporter.probes.kube_client import KubeClient, resolve_source
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


class TcpProbe(Probe):
    """Connect to one host:port within the probe timeout; raise when it does not complete."""

    family = kind = "tcp"

    def __init__(self, target: TcpTarget, cfg: TcpConfig, deps: Dependencies) -> None:
        super().__init__(f"tcp_{target.name}", cfg.interval, cfg.timeout)
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


class PodPathsProbe(Probe):
    """Connect to every ready pod of a Service, found in its EndpointSlices this run."""

    family = kind = "tcp"

    def __init__(self, spec: TcpDiscovery, cfg: TcpConfig, kube: KubeClient | None,
                 deps: Dependencies) -> None:
        super().__init__(f"netcheck_pods_{spec.backend.replace('-', '_')}", cfg.interval, cfg.timeout)
        self._spec, self._node, self._kube, self._deps = spec, cfg.node_name, kube, deps

    async def endpoints(self) -> dict[str, list[str]]:
        """Pod node -> addresses of the ready endpoints on it."""
        spec, kube = self._spec, self._kube
        if kube is None:
            raise RuntimeError("tcp.discover needs Kubernetes credentials (kubernetes.source)")
        slices = kube.list_pages(
            "endpointslices", spec.namespace, "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            [("labelSelector", f"kubernetes.io/service-name={spec.service}")],
        )
        found: dict[str, list[str]] = {}
        async for item in (item async for page in slices for item in page):
            for endpoint in item.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") is False or not endpoint.get("addresses"):
                    continue
                found.setdefault(str(endpoint.get("nodeName") or ""), []).append(str(endpoint["addresses"][0]))
        return found

    async def _reaches(self, address: str, budget: float) -> bool:
        try:
            async with self._deps.throttle("tcp"), asyncio.timeout(budget):
                _, writer = await asyncio.open_connection(address, self._spec.port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), timeout=0.5)
        return True

    async def collect(self) -> Samples:
        started = time.monotonic()
        by_node = await self.endpoints()
        budget = max(self.timeout - (time.monotonic() - started) - 0.2, 0.1)
        s = Samples()
        for pod_node, addresses in sorted(by_node.items()):
            answers = await asyncio.gather(*(self._reaches(a, budget) for a in addresses))
            path = "unknown" if not pod_node or not self._node else ("local" if pod_node == self._node else "remote")
            s.add(UP, 1 if any(answers) else 0, target=f"{self._spec.backend}-pod-{pod_node or 'unknown'}",
                  role="pod", backend=self._spec.backend, path=path, node=self._node)
        return s

    def failed(self, reason: str) -> Samples:
        return Samples()  # no pod list, no paths: honeydue_probe_success and HoneydueProbeFailing say so

    async def close(self) -> None:
        if self._kube is not None:
            self._kube.close()


def build(config: Config, deps: Dependencies) -> list[Probe]:
    probes: list[Probe] = [TcpProbe(target, config.tcp, deps) for target in config.tcp.targets]
    if config.tcp.discover:
        source, path = resolve_source(config.kubernetes)
        kube = None if source == "none" else KubeClient(config.kubernetes, source, path, deps)
        probes += [PodPathsProbe(spec, config.tcp, kube, deps) for spec in config.tcp.discover]
    return probes
