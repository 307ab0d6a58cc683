"""Kubernetes: nodes, control-plane quorum, per-server etcd checks, pods, deployments, APIServices.

Feeds the Node, k3s, App, Combined and Planned layers of chapter 16. One probe per API concern
(API reachability, nodes, pods per namespace, deployments per namespace, APIServices), so a 403 on
one resource reports a permission error for that resource and leaves the others' signals intact.
Every request goes through the shared client (exporter.probes.kube_client: credentials, thread pool,
timeouts, bounded replies, pages). Label shapes follow kube-state-metrics where it has the same fact.

Lists grow with the cluster, so they are read in pages (`limit`/`continue`, `list_page_size` objects
each) and each page is turned into samples before the next is read: memory holds one page, never
the collection. They carry no resourceVersion=0, because the API server's watch cache ignores
`limit` for it and sends the whole collection at once. Watched deployments are listed by name
(`fieldSelector=metadata.name=...`, still the `list` verb), so other deployments in the namespace
cost nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from urllib.parse import quote

from exporter.config import Config, KubernetesConfig
from exporter.engine import Probe
from exporter.probes import kube_metrics
from exporter.probes.deps import Dependencies
from exporter.probes.kube_client import (
    KubeClient,
    KubeRequestError,
    off_reason,
    request_reason,
    resolve_source,
    status_reason,
)
from exporter.probes.kube_probe import KubeProbe
from exporter.probes.kube_transforms import (
    API_UP,
    CONFIG_INFO,
    ETCD_QUORUM,
    JSON,
    PodTally,
    Readyz,
    apiservice_samples,
    deployment_samples,
    nodes_samples,
    object_name,
    pod_totals,
    pods_samples,
    readyz_samples,
    version_samples,
)
from exporter.samples import Samples

log = logging.getLogger("exporter.probes.kubernetes")

# --- probes ----------------------------------------------------------------------------------
class ApiProbe(KubeProbe):
    """Did the API server answer at all? Also says where the credentials came from."""

    kind = "kubernetes_api"

    async def _collect(self) -> Samples:
        return version_samples(self.kube.source, await self.kube.read_json("version", "", "/version/"))

    def failed(self, reason: str) -> Samples:
        s = Samples()
        s.add(CONFIG_INFO, source=self.kube.source)
        s.add(API_UP, 0)
        return s


class NodesProbe(KubeProbe):
    """Node conditions, cordons, versions, control-plane quorum, the Redis node, etcd per server."""

    kind = "kubernetes_nodes"

    resources = (("nodes", ""),)

    def __init__(self, name: str, kube: KubeClient) -> None:
        super().__init__(name, kube)
        # The server nodes and quorum of the last good list: when the list fails (an API server without
        # etcd quorum), their /readyz/etcd answers are still published, the evidence KubeEtcdQuorumLost needs.
        self._servers: list[tuple[str, str]] = []
        self._quorum = 0
        self._evidence = Samples()

    async def _collect(self) -> Samples:
        cfg = self.kube.cfg
        self._evidence = Samples()
        known, quorum = self._servers, self._quorum
        # The known servers' /readyz/etcd is asked while the nodes are listed, not after: an API server without
        # etcd quorum holds a list until the read timeout, and the evidence must not wait (or time out) behind it.
        checks = asyncio.ensure_future(self._check_readyz(known)) if known else None
        try:
            # Nodes are few (their count is exported whole): all pages are kept to sort them.
            nodes = [node async for page in self.kube.list_pages("nodes", "", "/api/v1/nodes") for node in page]
        except BaseException as exc:
            results = await self._settle(checks, cancelled=isinstance(exc, asyncio.CancelledError))
            if results is not None:
                self._evidence.add(ETCD_QUORUM, quorum)
                self._evidence.extend(readyz_samples(known, results))
            raise
        view = nodes_samples(nodes, cfg.control_plane_label, cfg.redis_node_label, cfg.etcd_quorum)
        s, servers = view.samples, view.servers
        self._quorum, self._servers = view.quorum, servers
        if checks is not None and servers == known:
            results = await checks
        else:  # the first run, or the servers changed: ask the servers of this list
            if checks is not None:
                checks.cancel()
            results = await self._check_readyz(servers)
        s.extend(readyz_samples(servers, results))
        return s

    async def _check_readyz(self, servers: list[tuple[str, str]]) -> list[Readyz]:
        return list(await asyncio.gather(*(self._readyz(ip) for _, ip in servers)))

    @staticmethod
    async def _settle(checks: asyncio.Future[list[Readyz]] | None, cancelled: bool) -> list[Readyz] | None:
        """The readyz answers to publish when the node list failed: awaited (each check ends by readyz_timeout),
        or, when the run itself is cancelled by its timeout, those already in (never waited for)."""
        if checks is None:
            return None
        if cancelled:
            if checks.done() and not checks.cancelled() and checks.exception() is None:
                return checks.result()
            checks.cancel()
            return None
        return await checks

    def failed(self, reason: str) -> Samples:
        s = super().failed(reason)
        s.extend(self._evidence)
        return s

    async def _readyz(self, ip: str) -> Readyz:
        """(answered with a verdict, etcd ok, reason when no verdict) for one server node."""
        scheme = self.kube.host.split("://", 1)[0]
        host = f"{scheme}://{_bracket(ip)}:{self.kube.cfg.apiserver_port}"
        try:
            status, body = await self.kube.run(lambda: self.kube.readyz_etcd(host))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an unreachable server node is a value
            return False, False, request_reason(exc)
        if status == 200:
            return True, body.strip() == "ok", ""
        if status in (500, 503):  # readyz answers 500 with the failed check listed
            return True, False, ""
        return False, False, status_reason(status)


class PodsProbe(KubeProbe):
    """Container restarts, waiting and last-terminated reasons, evictions, per-node workload readiness."""

    kind = "kubernetes_pods"

    def __init__(self, name: str, kube: KubeClient, namespace: str) -> None:
        super().__init__(name, kube)
        self.namespace = namespace
        self.resources = (("pods", namespace),)
        self.per_node = sorted(
            wl for ns, _, wl in (item.partition("/") for item in kube.cfg.node_workloads) if ns == namespace
        )

    async def _collect(self) -> Samples:
        s = Samples()
        tally = PodTally()
        async for page in self.kube.list_pages("pods", self.namespace, "/api/v1/namespaces/{namespace}/pods"):
            # one page at a time: memory holds a page, not the namespace
            samples, counted = pods_samples(self.namespace, page, self.kube.cfg.workload_label, self.per_node)
            s.extend(samples)
            tally.update(counted)
        s.extend(pod_totals(self.namespace, tally, self.per_node))
        return s


class DeploymentsProbe(KubeProbe):
    """Desired, available, updated and ready replicas and the last rollout time of each deployment."""

    kind = "kubernetes_deployments"

    def __init__(self, name: str, kube: KubeClient, namespace: str, deployments: Iterable[str]) -> None:
        super().__init__(name, kube)
        self.namespace = namespace
        self.deployments = tuple(deployments)
        self.resources = (("deployments", namespace),)

    async def _collect(self) -> Samples:
        ns = self.namespace
        s = Samples()
        for name in self.deployments:
            # Only the watched ones, by name: other deployments in the namespace are never read.
            found = [item async for page in self.kube.list_pages(
                "deployments", ns, "/apis/apps/v1/namespaces/{namespace}/deployments",
                [("fieldSelector", f"metadata.name={name}")]) for item in page]
            s.extend(deployment_samples(ns, name, next((d for d in found if object_name(d) == name), None)))
        return s


class ApiServicesProbe(KubeProbe):
    """The Available condition of aggregated APIs (metrics-server's v1beta1.metrics.k8s.io)."""

    kind = "kubernetes_apiservices"

    def __init__(self, name: str, kube: KubeClient) -> None:
        super().__init__(name, kube)
        self.resources = (("apiservices", ""),)

    async def _collect(self) -> Samples:
        s = Samples()
        for name in self.kube.cfg.apiservices:
            try:
                path = f"/apis/apiregistration.k8s.io/v1/apiservices/{quote(name, safe='')}"
                body: JSON | None = await self.kube.read_json("apiservices", "", path)
            except KubeRequestError as exc:
                if exc.reason != "not_found":
                    raise
                body = None
            s.extend(apiservice_samples(name, body))
        return s


class DisabledProbe(Probe):
    """No credentials anywhere: publish that fact (no I/O) instead of failing every run.

    `off` says why, so the status page shows the probe as off rather than ok (exporter.status.off_reason).
    """

    family = "kubernetes"
    kind = "kubernetes_api"

    def __init__(self, cfg: KubernetesConfig) -> None:
        super().__init__("kubernetes_api", cfg.interval, cfg.timeout)
        self.off = off_reason(cfg)

    async def collect(self) -> Samples:
        return Samples.of(CONFIG_INFO, source="none")

    def failed(self, reason: str) -> Samples:
        return Samples()

    async def close(self) -> None:
        return None


# --- helpers ---------------------------------------------------------------------------------
def _bracket(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _probe_suffix(namespace: str) -> str:
    return namespace.replace("-", "_").replace(".", "_")


def build(config: Config, deps: Dependencies) -> list[Probe]:
    cfg = config.kubernetes
    source, path = resolve_source(cfg)
    if source == "none":
        log.info("kubernetes probes disabled (%s); honeydue_kube_config_info{source=\"none\"} says so",
                 off_reason(cfg))
        return [DisabledProbe(cfg)]
    kube = KubeClient(cfg, source, path, deps)
    probes: list[Probe] = [ApiProbe("kubernetes_api", kube), NodesProbe("kubernetes_nodes", kube)]
    for namespace, deployments in cfg.deployments.items():
        suffix = _probe_suffix(namespace)
        probes.append(PodsProbe(f"kubernetes_pods_{suffix}", kube, namespace))
        probes.append(DeploymentsProbe(f"kubernetes_deployments_{suffix}", kube, namespace, deployments))
    if cfg.apiservices:
        probes.append(ApiServicesProbe("kubernetes_apiservices", kube))
    for namespace in cfg.pod_metrics:
        probes.append(kube_metrics.PodMetricsProbe(f"kubernetes_pod_metrics_{_probe_suffix(namespace)}", kube, namespace))
    log.info("kubernetes probes enabled (credentials: %s, API %s)", source, kube.host)
    return probes

