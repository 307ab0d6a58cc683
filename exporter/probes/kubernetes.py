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
import calendar
import logging
import time
from collections.abc import Iterable
from typing import Any
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
from exporter.probes.kube_probe import KubeProbe, object_name
from exporter.samples import Samples, counter, gauge, info

log = logging.getLogger("exporter.probes.kubernetes")

# --- metrics ---------------------------------------------------------------------------------
CONFIG_INFO = info(
    "honeydue_kube_config_info",
    "Where the Kubernetes credentials come from: in-cluster, kubeconfig, or none (probes off).",
    "source",
)
API_UP = gauge("honeydue_kube_api_up", "Whether the Kubernetes API server answered GET /version (1) or not (0).")
APISERVER_VERSION = info("honeydue_kube_apiserver_version_info", "The API server's version.", "version")
NODE_CONDITION = gauge(
    "honeydue_kube_node_status_condition",
    "Node condition (kube-state-metrics shape): 1 on the series whose status matches.",
    "node", "condition", "status",
)
NODE_UNSCHEDULABLE = gauge(
    "honeydue_kube_node_spec_unschedulable", "Whether the node is cordoned (1) or not (0).", "node"
)
NODE_INFO = info(
    "honeydue_kube_node_info",
    "Node versions and address (kube-state-metrics shape).",
    "node", "kubelet_version", "container_runtime_version", "kernel_version", "os_image", "internal_ip",
)
NODE_ROLE = gauge("honeydue_kube_node_role", "1 per node role from node-role.kubernetes.io/* labels.", "node", "role")
CP_NODES = gauge("honeydue_kube_control_plane_nodes", "Nodes carrying the control-plane label (k3s servers).")
CP_READY = gauge("honeydue_kube_control_plane_nodes_ready", "Control-plane nodes whose Ready condition is True.")
ETCD_QUORUM = gauge("honeydue_kube_etcd_quorum", "Server nodes etcd needs for quorum (a majority, or configured).")
REDIS_NODES = gauge("honeydue_kube_redis_nodes", "Nodes carrying the Redis node label (must be exactly 1).")
REDIS_NODE_READY = gauge("honeydue_kube_redis_node_ready", "Whether the node labelled for Redis is Ready.", "node")
READYZ_UP = gauge(
    "honeydue_kube_apiserver_readyz_up",
    "Whether this server node's API server answered GET /readyz/etcd (with a verdict) (1) or not (0).",
    "node",
)
ETCD_READY = gauge(
    "honeydue_kube_apiserver_etcd_ready",
    "Whether this server node's API server reports its etcd check ok (1) or not (0, also when unreachable).",
    "node",
)
READYZ_ERROR = info(
    "honeydue_kube_apiserver_readyz_error_info",
    "Present while this server node's /readyz/etcd gives no verdict: the reason.",
    "node", "reason",
)
POD_INFO = info(
    "honeydue_kube_pod_info",
    "Pod placement and owning workload (Deployment/DaemonSet/StatefulSet name).",
    "namespace", "pod", "node", "workload_kind", "workload",
)
RESTARTS = counter(
    "honeydue_kube_pod_container_status_restarts_total",
    "Container restarts as counted by the kubelet (kube-state-metrics shape).",
    "namespace", "pod", "container",
)
WAITING = gauge(
    "honeydue_kube_pod_container_status_waiting_reason",
    "1 while the container waits, labelled with why (CrashLoopBackOff, ImagePullBackOff, ...).",
    "namespace", "pod", "container", "reason",
)
TERMINATED = gauge(
    "honeydue_kube_pod_container_status_last_terminated_reason",
    "1 for the reason the container last terminated (OOMKilled, Error, ...).",
    "namespace", "pod", "container", "reason",
)
TERMINATED_AT = gauge(
    "honeydue_kube_pod_container_status_last_terminated_timestamp_seconds",
    "When the container last terminated (lastState.terminated.finishedAt), in Unix seconds.",
    "namespace", "pod", "container",
)
POD_REASON = gauge(
    "honeydue_kube_pod_status_reason",
    "1 for a pod whose status carries a reason (Evicted, NodeLost, ...).",
    "namespace", "pod", "reason",
)
EVICTED = gauge("honeydue_kube_evicted_pods", "Evicted pods still present, per node.", "namespace", "node")
WORKLOAD_PODS = gauge(
    "honeydue_kube_workload_pods",
    "Pods of a per-node workload (api, traefik) on each node, by readiness.",
    "namespace", "workload", "node", "ready",
)
DEPLOYMENT_EXISTS = gauge("honeydue_kube_deployment_exists", "Whether the configured deployment exists.",
                          "namespace", "deployment")
SPEC_REPLICAS = gauge("honeydue_kube_deployment_spec_replicas", "Desired replicas.", "namespace", "deployment")
AVAILABLE = gauge(
    "honeydue_kube_deployment_status_replicas_available", "Available replicas.", "namespace", "deployment"
)
UPDATED = gauge("honeydue_kube_deployment_status_replicas_updated", "Replicas at the current template.",
                "namespace", "deployment")
READY = gauge("honeydue_kube_deployment_status_replicas_ready", "Ready replicas.", "namespace", "deployment")
LAST_ROLLOUT = gauge(
    "honeydue_kube_deployment_last_rollout_timestamp_seconds",
    "Unix time of the deployment's last rollout progress (Progressing condition lastUpdateTime).",
    "namespace", "deployment",
)
RESOURCE_LIMITS = gauge(
    "honeydue_kube_pod_container_resource_limits",
    "A container's CPU (cores) and memory (bytes) limit from its pod spec (kube-state-metrics shape).",
    "namespace", "pod", "container", "resource", "unit",
)
RESOURCE_REQUESTS = gauge(
    "honeydue_kube_pod_container_resource_requests",
    "A container's CPU (cores) and memory (bytes) request from its pod spec (kube-state-metrics shape).",
    "namespace", "pod", "container", "resource", "unit",
)
APISERVICE_AVAILABLE = gauge(
    "honeydue_kube_apiservice_available",
    "Whether the APIService's Available condition is True (0 also when it is missing).",
    "apiservice",
)


CONDITION_STATUSES = ("true", "false", "unknown")
MAJOR_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


# --- probes ----------------------------------------------------------------------------------
class ApiProbe(KubeProbe):
    """Did the API server answer at all? Also says where the credentials came from."""

    kind = "kubernetes_api"

    async def _collect(self) -> Samples:
        body = await self.kube.read_json("version", "", "/version/")
        s = Samples()
        s.add(CONFIG_INFO, source=self.kube.source)
        s.add(API_UP, 1)
        s.add(APISERVER_VERSION, version=str(body.get("gitVersion", "unknown")))
        return s

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
                self._add_readyz(self._evidence, known, results)
            raise
        s = Samples()
        redis_key, _, redis_value = cfg.redis_node_label.partition("=")
        cp_total = cp_ready = 0
        redis_nodes = 0
        servers: list[tuple[str, str]] = []
        for node in sorted(nodes, key=object_name):
            name = object_name(node)
            labels = node.get("metadata", {}).get("labels") or {}
            status = node.get("status") or {}
            conditions = {
                c.get("type"): str(c.get("status", "Unknown")).lower() for c in status.get("conditions") or []
            }
            for condition in sorted(set(MAJOR_CONDITIONS) & set(conditions) | {"Ready"}):
                current = conditions.get(condition, "unknown")
                for st in CONDITION_STATUSES:
                    s.add(NODE_CONDITION, 1 if current == st else 0, node=name, condition=condition, status=st)
            ready = conditions.get("Ready") == "true"
            s.add(NODE_UNSCHEDULABLE, 1 if (node.get("spec") or {}).get("unschedulable") else 0, node=name)
            node_info = status.get("nodeInfo") or {}
            internal_ip = next((a.get("address", "") for a in status.get("addresses") or []
                                if a.get("type") == "InternalIP"), "")
            s.add(NODE_INFO, node=name, kubelet_version=str(node_info.get("kubeletVersion", "")),
                  container_runtime_version=str(node_info.get("containerRuntimeVersion", "")),
                  kernel_version=str(node_info.get("kernelVersion", "")),
                  os_image=str(node_info.get("osImage", "")), internal_ip=internal_ip)
            for key in sorted(labels):
                if key.startswith("node-role.kubernetes.io/"):
                    s.add(NODE_ROLE, 1, node=name, role=key.removeprefix("node-role.kubernetes.io/"))
            if cfg.control_plane_label in labels:
                cp_total += 1
                cp_ready += int(ready)
                if internal_ip:
                    servers.append((name, internal_ip))
            if labels.get(redis_key) == redis_value:
                redis_nodes += 1
                s.add(REDIS_NODE_READY, 1 if ready else 0, node=name)
        s.add(CP_NODES, cp_total)
        s.add(CP_READY, cp_ready)
        self._quorum = cfg.etcd_quorum or (cp_total // 2 + 1 if cp_total else 1)
        self._servers = servers
        s.add(ETCD_QUORUM, self._quorum)
        s.add(REDIS_NODES, redis_nodes)
        if checks is not None and servers == known:
            results = await checks
        else:  # the first run, or the servers changed: ask the servers of this list
            if checks is not None:
                checks.cancel()
            results = await self._check_readyz(servers)
        self._add_readyz(s, servers, results)
        return s

    async def _check_readyz(self, servers: list[tuple[str, str]]) -> list[tuple[bool, bool, str]]:
        return list(await asyncio.gather(*(self._readyz(ip) for _, ip in servers)))

    @staticmethod
    async def _settle(checks: asyncio.Future[list[tuple[bool, bool, str]]] | None,
                      cancelled: bool) -> list[tuple[bool, bool, str]] | None:
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

    def _add_readyz(self, s: Samples, servers: list[tuple[str, str]], results: list[tuple[bool, bool, str]]) -> None:
        for (name, _), (answered, ok, reason) in zip(servers, results, strict=True):
            s.add(READYZ_UP, 1 if answered else 0, node=name)
            s.add(ETCD_READY, 1 if ok else 0, node=name)
            if reason:
                s.add(READYZ_ERROR, node=name, reason=reason)

    def failed(self, reason: str) -> Samples:
        s = super().failed(reason)
        s.extend(self._evidence)
        return s

    async def _readyz(self, ip: str) -> tuple[bool, bool, str]:
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
        ns = self.namespace
        s = Samples()
        nodes: set[str] = set()
        evicted: dict[str, int] = {}
        workload_pods: dict[tuple[str, str, bool], int] = {}
        async for pods in self.kube.list_pages("pods", ns, "/api/v1/namespaces/{namespace}/pods"):
            for pod in pods:  # one page at a time: memory holds a page, not the namespace
                name = object_name(pod)
                meta = pod.get("metadata") or {}
                status = pod.get("status") or {}
                node = str((pod.get("spec") or {}).get("nodeName") or "")
                if node:
                    nodes.add(node)
                kind, workload = _workload(meta)
                s.add(POD_INFO, namespace=ns, pod=name, node=node, workload_kind=kind, workload=workload)
                reason = status.get("reason")
                if reason:
                    s.add(POD_REASON, 1, namespace=ns, pod=name, reason=str(reason))
                    if reason == "Evicted":
                        evicted[node] = evicted.get(node, 0) + 1
                for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
                    container = str(cs.get("name", ""))
                    s.add(RESTARTS, float(cs.get("restartCount", 0)), namespace=ns, pod=name, container=container)
                    waiting = (cs.get("state") or {}).get("waiting")
                    if isinstance(waiting, dict) and waiting.get("reason"):
                        s.add(WAITING, 1, namespace=ns, pod=name, container=container, reason=str(waiting["reason"]))
                    terminated = (cs.get("lastState") or {}).get("terminated")
                    if isinstance(terminated, dict) and terminated.get("reason"):
                        s.add(TERMINATED, 1, namespace=ns, pod=name, container=container,
                              reason=str(terminated["reason"]))
                        finished = _timestamp(terminated.get("finishedAt"))
                        if finished is not None:
                            s.add(TERMINATED_AT, finished, namespace=ns, pod=name, container=container)
                _add_resources(s, ns, name, pod.get("spec") or {})
                label = (meta.get("labels") or {}).get(self.kube.cfg.workload_label)
                if label in self.per_node and node and status.get("phase") in ("Running", "Pending"):
                    key = (str(label), node, _pod_ready(status))
                    workload_pods[key] = workload_pods.get(key, 0) + 1
        for node in sorted(nodes):
            s.add(EVICTED, evicted.get(node, 0), namespace=ns, node=node)
            for wl in self.per_node:
                for ready in (True, False):
                    s.add(WORKLOAD_PODS, workload_pods.get((wl, node, ready), 0), namespace=ns, workload=wl,
                          node=node, ready=str(ready).lower())
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
            deployment = next((d for d in found if object_name(d) == name), None)
            s.add(DEPLOYMENT_EXISTS, 1 if deployment else 0, namespace=ns, deployment=name)
            if deployment is None:
                continue
            spec = deployment.get("spec") or {}
            status = deployment.get("status") or {}
            labels = {"namespace": ns, "deployment": name}
            s.add(SPEC_REPLICAS, float(spec.get("replicas", 1)), **labels)
            s.add(AVAILABLE, float(status.get("availableReplicas", 0)), **labels)
            s.add(UPDATED, float(status.get("updatedReplicas", 0)), **labels)
            s.add(READY, float(status.get("readyReplicas", 0)), **labels)
            progressing = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None)
            stamp = _timestamp((progressing or {}).get("lastUpdateTime"))
            if stamp is not None:
                s.add(LAST_ROLLOUT, stamp, **labels)
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
                body = await self.kube.read_json("apiservices", "", path)
            except KubeRequestError as exc:
                if exc.reason != "not_found":
                    raise
                s.add(APISERVICE_AVAILABLE, 0, apiservice=name)
                continue
            conditions = (body.get("status") or {}).get("conditions") or []
            available = any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions)
            s.add(APISERVICE_AVAILABLE, 1 if available else 0, apiservice=name)
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
        s = Samples()
        s.add(CONFIG_INFO, source="none")
        return s

    def failed(self, reason: str) -> Samples:
        return Samples()

    async def close(self) -> None:
        return None


# --- helpers ---------------------------------------------------------------------------------
def _bracket(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _workload(meta: dict[str, Any]) -> tuple[str, str]:
    """The pod's owning workload: a ReplicaSet's Deployment by the pod-template-hash suffix."""
    owners = meta.get("ownerReferences") or []
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if not owner:
        return "Pod", str(meta.get("name", ""))
    kind, name = str(owner.get("kind", "")), str(owner.get("name", ""))
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return "Deployment", name.removesuffix(f"-{template_hash}")
    return kind, name


def _add_resources(s: Samples, ns: str, pod: str, spec: dict[str, Any]) -> None:
    """CPU and memory limits and requests of the pod's containers (the CPU-bound ratio's denominator)."""
    for c in spec.get("containers") or []:
        resources = c.get("resources") or {}
        for family, key in ((RESOURCE_LIMITS, "limits"), (RESOURCE_REQUESTS, "requests")):
            values = resources.get(key) or {}
            for resource, unit in (("cpu", "core"), ("memory", "byte")):
                if resource in values:
                    s.add(family, kube_metrics.parse_quantity(values[resource]), namespace=ns, pod=pod,
                          container=str(c.get("name", "")), resource=resource, unit=unit)


def _pod_ready(status: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


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

