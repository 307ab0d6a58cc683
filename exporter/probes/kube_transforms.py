"""Kubernetes API objects to samples: pure functions, no I/O (kube-state-metrics keeps its generators the
same way: object -> metric family).

The probes in exporter.probes.kubernetes read the API (paged, bounded, with timeouts) and hand each object,
or page of objects, to these functions; tests/test_kube_transforms.py checks them against tables of JSON
objects and the exposition they must give, so a shape (a missing field, an odd owner, an evicted pod) is
proven without a cluster. What only a real control plane shows (how states follow one another, RBAC, TLS,
paging, quorum, eviction) stays with the tests that run one (tests/test_kubernetes*.py).
"""

from __future__ import annotations

import calendar
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from exporter.samples import Samples, counter, gauge, info

JSON = dict[str, Any]

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



CPU_USAGE = gauge(
    "honeydue_kube_pod_container_cpu_usage_cores",
    "CPU the container used over metrics-server's last window, in cores (kubectl top pods).",
    "namespace", "pod", "container",
)
MEMORY_USAGE = gauge(
    "honeydue_kube_pod_container_memory_working_set_bytes",
    "The container's memory working set as metrics-server last read it from the kubelet.",
    "namespace", "pod", "container",
)
WINDOW = gauge(
    "honeydue_kube_pod_metrics_window_seconds",
    "The longest window metrics-server averaged a pod's CPU over (its metric resolution).",
    "namespace",
)

_SUFFIXES = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")


def parse_quantity(value: object) -> float:
    """A Kubernetes resource quantity ("12345678n", "250m", "64Mi", "1.5") as a plain number.

    Raises ValueError for anything else (the probe reports that as a protocol error).
    """
    match = _QUANTITY.match(str(value).strip()) if isinstance(value, str | int | float) else None
    if match is None:
        raise ValueError(f"not a resource quantity: {str(value)[:40]!r}")
    try:
        number = Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""]
    except InvalidOperation:
        raise ValueError(f"not a resource quantity: {str(value)[:40]!r}") from None
    result = float(number)
    if result < 0 or result != result or result == float("inf"):
        raise ValueError(f"not a usable resource quantity: {str(value)[:40]!r}")
    return result


def parse_duration(value: object) -> float | None:
    """A metav1.Duration as metrics-server writes the window ("10.5s", "1m0s"); None if absent or odd."""
    if not isinstance(value, str) or not value:
        return None
    match = _DURATION.match(value)
    if match is None:
        return None
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def pod_usage_samples(namespace: str, items: Iterable[JSON]) -> tuple[Samples, float]:
    """Each container's CPU (cores) and memory working set from PodMetrics (metrics.k8s.io), and the longest
    window metrics-server averaged over (0 when none says). A container that is not an object is a protocol
    error of the reply (TypeError)."""
    s = Samples()
    window = 0.0
    for item in items:
        pod = object_name(item)
        if not pod:
            continue
        seconds = parse_duration(item.get("window"))
        if seconds is not None:
            window = max(window, seconds)
        for container in item.get("containers") or []:
            if not isinstance(container, dict):
                raise TypeError("a PodMetrics container is not an object")
            usage = container.get("usage") or {}
            labels = {"namespace": namespace, "pod": pod, "container": str(container.get("name", ""))}
            if "cpu" in usage:
                s.add(CPU_USAGE, parse_quantity(usage["cpu"]), **labels)
            if "memory" in usage:
                s.add(MEMORY_USAGE, parse_quantity(usage["memory"]), **labels)
    return s, window


def window_samples(namespace: str, window: float) -> Samples:
    """The metrics window of the namespace, when metrics-server said one."""
    return Samples.of(WINDOW, window, namespace=namespace) if window else Samples()


# --- nodes ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodesView:
    """What one node list gives: its samples, and the server nodes (name, InternalIP) and quorum the
    nodes probe keeps for the /readyz/etcd checks of later runs."""

    samples: Samples
    servers: list[tuple[str, str]]
    quorum: int


def nodes_samples(nodes: Iterable[JSON], control_plane_label: str, redis_node_label: str,
                  etcd_quorum: int | None = None) -> NodesView:
    """Conditions, cordon, versions and roles of each node (by name); control-plane and Redis-node counts."""
    s = Samples()
    redis_key, _, redis_value = redis_node_label.partition("=")
    cp_total = cp_ready = redis_nodes = 0
    servers: list[tuple[str, str]] = []
    for node in sorted(nodes, key=object_name):
        name = object_name(node)
        labels = node.get("metadata", {}).get("labels") or {}
        status = node.get("status") or {}
        conditions = {c.get("type"): str(c.get("status", "Unknown")).lower() for c in status.get("conditions") or []}
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
        if control_plane_label in labels:
            cp_total += 1
            cp_ready += int(ready)
            if internal_ip:
                servers.append((name, internal_ip))
        if labels.get(redis_key) == redis_value:
            redis_nodes += 1
            s.add(REDIS_NODE_READY, 1 if ready else 0, node=name)
    quorum = etcd_quorum or (cp_total // 2 + 1 if cp_total else 1)
    s.add(CP_NODES, cp_total)
    s.add(CP_READY, cp_ready)
    s.add(ETCD_QUORUM, quorum)
    s.add(REDIS_NODES, redis_nodes)
    return NodesView(s, servers, quorum)


Readyz = tuple[bool, bool, str]  # (answered with a verdict, etcd ok, reason when no verdict)


def readyz_samples(servers: Sequence[tuple[str, str]], results: Sequence[Readyz]) -> Samples:
    """Each server node's /readyz/etcd answer."""
    s = Samples()
    for (name, _), (answered, ok, reason) in zip(servers, results, strict=True):
        s.add(READYZ_UP, 1 if answered else 0, node=name)
        s.add(ETCD_READY, 1 if ok else 0, node=name)
        if reason:
            s.add(READYZ_ERROR, node=name, reason=reason)
    return s


# --- pods ----------------------------------------------------------------------------------------
@dataclass
class PodTally:
    """What a namespace's pods add up to, over every page of its list: the nodes they run on, evicted pods
    per node, and pods of each per-node workload by node and readiness."""

    nodes: set[str] = field(default_factory=set)
    evicted: Counter[str] = field(default_factory=Counter)
    workload_pods: Counter[tuple[str, str, bool]] = field(default_factory=Counter)

    def update(self, other: PodTally) -> None:
        self.nodes |= other.nodes
        self.evicted.update(other.evicted)
        self.workload_pods.update(other.workload_pods)


def pods_samples(namespace: str, pods: Iterable[JSON], workload_label: str,
                 per_node: Sequence[str]) -> tuple[Samples, PodTally]:
    """Each pod's own series (placement and owner, status reason, container restarts, waiting and
    last-terminated reasons, resources) and its part of the namespace's totals (`pod_totals`)."""
    s = Samples()
    tally = PodTally()
    for pod in pods:
        name = object_name(pod)
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if node:
            tally.nodes.add(node)
        kind, workload = pod_workload(meta)
        s.add(POD_INFO, namespace=namespace, pod=name, node=node, workload_kind=kind, workload=workload)
        reason = status.get("reason")
        if reason:
            s.add(POD_REASON, 1, namespace=namespace, pod=name, reason=str(reason))
            if reason == "Evicted":
                tally.evicted[node] += 1
        for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            container = str(cs.get("name", ""))
            s.add(RESTARTS, float(cs.get("restartCount", 0)), namespace=namespace, pod=name, container=container)
            waiting = (cs.get("state") or {}).get("waiting")
            if isinstance(waiting, dict) and waiting.get("reason"):
                s.add(WAITING, 1, namespace=namespace, pod=name, container=container, reason=str(waiting["reason"]))
            terminated = (cs.get("lastState") or {}).get("terminated")
            if isinstance(terminated, dict) and terminated.get("reason"):
                s.add(TERMINATED, 1, namespace=namespace, pod=name, container=container,
                      reason=str(terminated["reason"]))
                finished = _timestamp(terminated.get("finishedAt"))
                if finished is not None:
                    s.add(TERMINATED_AT, finished, namespace=namespace, pod=name, container=container)
        _add_resources(s, namespace, name, pod.get("spec") or {})
        label = (meta.get("labels") or {}).get(workload_label)
        if label in per_node and node and status.get("phase") in ("Running", "Pending"):
            tally.workload_pods[(str(label), node, _pod_ready(status))] += 1
    return s, tally


def pod_totals(namespace: str, tally: PodTally, per_node: Sequence[str]) -> Samples:
    """Per node with pods: evicted pods, and each per-node workload's pods by readiness (0 included)."""
    s = Samples()
    for node in sorted(tally.nodes):
        s.add(EVICTED, tally.evicted[node], namespace=namespace, node=node)
        for wl in sorted(per_node):
            for ready in (True, False):
                s.add(WORKLOAD_PODS, tally.workload_pods[(wl, node, ready)], namespace=namespace, workload=wl,
                      node=node, ready=str(ready).lower())
    return s


def pod_workload(meta: JSON) -> tuple[str, str]:
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


def _add_resources(s: Samples, ns: str, pod: str, spec: JSON) -> None:
    """CPU and memory limits and requests of the pod's containers (the CPU-bound ratio's denominator)."""
    for c in spec.get("containers") or []:
        resources = c.get("resources") or {}
        for family, key in ((RESOURCE_LIMITS, "limits"), (RESOURCE_REQUESTS, "requests")):
            values = resources.get(key) or {}
            for resource, unit in (("cpu", "core"), ("memory", "byte")):
                if resource in values:
                    s.add(family, parse_quantity(values[resource]), namespace=ns, pod=pod,
                          container=str(c.get("name", "")), resource=resource, unit=unit)


def _pod_ready(status: JSON) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


# --- deployments and APIServices -----------------------------------------------------------------
def deployment_samples(namespace: str, name: str, deployment: JSON | None) -> Samples:
    """A watched deployment's replicas and last rollout time; `exists` 0 alone when it is not there (None)."""
    s = Samples()
    s.add(DEPLOYMENT_EXISTS, 1 if deployment else 0, namespace=namespace, deployment=name)
    if deployment is None:
        return s
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    labels = {"namespace": namespace, "deployment": name}
    s.add(SPEC_REPLICAS, float(spec.get("replicas", 1)), **labels)
    s.add(AVAILABLE, float(status.get("availableReplicas", 0)), **labels)
    s.add(UPDATED, float(status.get("updatedReplicas", 0)), **labels)
    s.add(READY, float(status.get("readyReplicas", 0)), **labels)
    progressing = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None)
    stamp = _timestamp((progressing or {}).get("lastUpdateTime"))
    if stamp is not None:
        s.add(LAST_ROLLOUT, stamp, **labels)
    return s


def apiservice_samples(name: str, apiservice: JSON | None) -> Samples:
    """Whether the APIService's Available condition is True (0 when it is False, missing, or not found: None)."""
    conditions = ((apiservice or {}).get("status") or {}).get("conditions") or []
    available = any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions)
    return Samples.of(APISERVICE_AVAILABLE, 1 if available else 0, apiservice=name)


def version_samples(source: str, version: JSON) -> Samples:
    """GET /version answered: where the credentials came from, the API up, its version."""
    s = Samples()
    s.add(CONFIG_INFO, source=source)
    s.add(API_UP, 1)
    s.add(APISERVER_VERSION, version=str(version.get("gitVersion", "unknown")))
    return s


# --- helpers -------------------------------------------------------------------------------------
def object_name(obj: JSON) -> str:
    """metadata.name of an API object ("" when the reply lacks it)."""
    return str((obj.get("metadata") or {}).get("name", ""))


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None
