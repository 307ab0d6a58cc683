"""The Kubernetes probes against a real control plane (etcd x3, kube-apiserver per server node,
kube-controller-manager; testbed/kube), with the exporter running in-cluster as in production.

Each scenario breaks the cluster the way chapter 16 describes and lets the real controllers do the
rest; the test waits (with a deadline) until the exporter shows exact values, and asserts what the API
itself shows as the cause. Placement is the binder's, so where a pod runs is read from the API.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import pytest

from testbed.kube import workloads
from testbed.kube.cluster import KubeCluster
from testbed.kube.control_plane import K3S_VERSION, NODE_IPS, NODE_NAMES
from testbed.kube.rest import JSON

from exporter.config import Config
from exporter.probes import kubernetes as kube_probe
from exporter.probes.deps import Dependencies
from tests.helpers.kube import Expect, Kube, Metrics, select, wait_metrics

N1, N2, N3 = NODE_NAMES
CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
REDIS_NODE = N2
OLDER_KUBELET = "v1.35.3+k3s1"
NEW_API_IMAGE = f"{workloads.REGISTRY}/api:1.4.3"


def condition(expect: Expect, node: str, cond: str, status: str) -> Expect:
    """Exactly one of the three status series of a node condition is 1."""
    for st in ("true", "false", "unknown"):
        expect.value("honeydue_kube_node_status_condition", 1 if st == status else 0, node=node, condition=cond,
                     status=st)
    return expect


def pods(cluster: KubeCluster, namespace: str, app: str | None = None) -> list[JSON]:
    found = cluster.pods(namespace)
    if app is not None:
        found = [p for p in found if (p["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == app]
    return found


def node_of(pod: JSON) -> str:
    return str(pod["spec"].get("nodeName") or "")


def name_of(pod: JSON) -> str:
    return str(pod["metadata"]["name"])


def api_truth_restarts(cluster: KubeCluster, app: str, namespace: str = "honeydue") -> dict[tuple[str, ...], float]:
    return {(name_of(p),): float(sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses") or []))
            for p in pods(cluster, namespace, app)}


def progressing(cluster: KubeCluster, namespace: str, name: str) -> JSON:
    conditions = cluster.deployment(namespace, name).get("status", {}).get("conditions") or []
    return next(c for c in conditions if c["type"] == "Progressing")


def stamp(value: str) -> float:
    return float(time.mktime(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone)


def ready_api(m: Metrics, node: str) -> float:
    return sum(select(m, "honeydue_kube_workload_pods", workload="api", node=node, ready="true").values())


# --- healthy ------------------------------------------------------------------------------------
def test_healthy_cluster(kube: Kube) -> None:
    cluster = kube.cluster
    e = Expect().value("honeydue_kube_api_up", 1).value("honeydue_kube_config_info", 1, source="in-cluster")
    e.value("honeydue_kube_apiserver_version_info", 1, version=K3S_VERSION)
    for node, ip in zip(NODE_NAMES, NODE_IPS, strict=True):
        condition(e, node, "Ready", "true")
        for cond in CONDITIONS[1:]:
            condition(e, node, cond, "false")
        e.value("honeydue_kube_node_spec_unschedulable", 0, node=node)
        e.value("honeydue_kube_apiserver_readyz_up", 1, node=node).value("honeydue_kube_apiserver_etcd_ready", 1, node=node)
        e.value("honeydue_kube_node_role", 1, node=node, role="control-plane")
        e.value("honeydue_kube_node_role", 1, node=node, role="etcd")
        e.value("honeydue_kube_node_info", 1, node=node, kubelet_version=K3S_VERSION,
                container_runtime_version="containerd://2.1.5-k3s1", kernel_version="6.8.0-60-generic",
                os_image="Ubuntu 24.04.3 LTS", internal_ip=ip)
    e.series("honeydue_kube_node_status_condition", ("node",), {(n,): 1 for n in NODE_NAMES}, condition="Ready",
             status="true")
    e.value("honeydue_kube_control_plane_nodes", 3).value("honeydue_kube_control_plane_nodes_ready", 3)
    e.value("honeydue_kube_etcd_quorum", 2).value("honeydue_kube_redis_nodes", 1)
    e.series("honeydue_kube_redis_node_ready", ("node",), {(REDIS_NODE,): 1})
    for ns, name, _, replicas in workloads.DEPLOYMENTS:
        if name == "local-path-provisioner":  # in the cluster, not configured: not reported
            e.value("honeydue_kube_deployment_exists", None, namespace=ns, deployment=name)
            continue
        labels = {"namespace": ns, "deployment": name}
        e.value("honeydue_kube_deployment_exists", 1, **labels)
        for metric in ("spec_replicas", "status_replicas_available", "status_replicas_updated",
                       "status_replicas_ready"):
            e.value(f"honeydue_kube_deployment_{metric}", replicas, **labels)
        e.value("honeydue_kube_deployment_last_rollout_timestamp_seconds",
                stamp(progressing(cluster, ns, name)["lastUpdateTime"]), **labels)
    e.value("honeydue_kube_apiservice_available", 1, apiservice=workloads.METRICS_API)
    e.series("honeydue_kube_pod_container_status_waiting_reason", ("pod",), {})
    e.series("honeydue_kube_pod_container_status_last_terminated_reason", ("pod",), {})
    e.series("honeydue_kube_pod_status_reason", ("pod",), {})
    e.series("honeydue_kube_resource_error_info", ("resource",), {})
    for resource, ns in (("nodes", ""), ("pods", "honeydue"), ("pods", "kube-system"), ("deployments", "honeydue"),
                         ("deployments", "kube-system"), ("apiservices", "")):
        e.value("honeydue_kube_resource_up", 1, resource=resource, namespace=ns)
    # Every pod the API lists, on the node the API says, owned by its Deployment or DaemonSet; no restarts.
    for ns in ("honeydue", "kube-system"):
        listed = pods(cluster, ns)
        expected = {}
        for p in listed:
            app = p["metadata"]["labels"].get("app.kubernetes.io/name")
            kind, workload = ("Deployment", app) if app else ("DaemonSet", workloads.SVCLB)
            expected[(name_of(p), node_of(p), kind, workload)] = 1.0
        e.series("honeydue_kube_pod_info", ("pod", "node", "workload_kind", "workload"), expected, namespace=ns)
        e.series("honeydue_kube_pod_container_status_restarts_total", ("pod",),
                 {(name_of(p),): 0.0 for p in listed}, namespace=ns)
        e.series("honeydue_kube_evicted_pods", ("node",), {(n,): 0.0 for n in {node_of(p) for p in listed}},
                 namespace=ns)
    # The binder spreads api's three replicas over the three nodes; traefik's one pod is Ready where it runs.
    e.series("honeydue_kube_workload_pods", ("node", "ready"),
             {(n, r): 1.0 if r == "true" else 0.0 for n in NODE_NAMES for r in ("true", "false")}, workload="api")
    traefik = node_of(pods(cluster, "kube-system", "traefik")[0])
    e.series("honeydue_kube_workload_pods", ("node", "ready"),
             {(n, r): 1.0 if (n, r) == (traefik, "true") else 0.0 for n in NODE_NAMES for r in ("true", "false")},
             workload="traefik")
    wait_metrics(kube.exporter, e, 30)


# --- node loss ----------------------------------------------------------------------------------
def test_node_nic_fails(kube: Kube) -> None:
    """N3's kubelet goes silent and its etcd member and API server stop answering."""
    cluster = kube.cluster
    api_n3 = next(name_of(p) for p in pods(cluster, "honeydue", "api") if node_of(p) == N3)
    started = time.monotonic()
    cluster.nic_down(2)
    # The node lifecycle controller marks the node Unknown after the grace period (8 s here) and the
    # pods on it NotReady; the unreachable N3 answers no /readyz/etcd; quorum (2 of 3) holds.
    e = condition(Expect(), N3, "Ready", "unknown")
    for cond in CONDITIONS[1:]:
        condition(e, N3, cond, "unknown")
    condition(e, N1, "Ready", "true")
    e.value("honeydue_kube_control_plane_nodes_ready", 2).value("honeydue_kube_etcd_quorum", 2)
    e.value("honeydue_kube_apiserver_readyz_up", 0, node=N3).value("honeydue_kube_apiserver_etcd_ready", 0, node=N3)
    e.value("honeydue_kube_apiserver_readyz_error_info", 1, node=N3, reason="timeout")
    for node in (N1, N2):
        e.value("honeydue_kube_apiserver_readyz_up", 1, node=node).value("honeydue_kube_apiserver_etcd_ready", 1,
                                                                          node=node)
    e.value("honeydue_kube_workload_pods", 1, namespace="honeydue", workload="api", node=N3, ready="false")
    e.value("honeydue_kube_workload_pods", 0, namespace="honeydue", workload="api", node=N3, ready="true")
    e.value("honeydue_kube_api_up", 1)
    wait_metrics(kube.exporter, e, 40)
    not_ready_after = time.monotonic() - started
    taints = {(t["key"], t["effect"]) for t in cluster.node(2)["spec"].get("taints") or []}
    assert taints == {("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
    # After the pods' toleration (10 s) the taint eviction controller deletes them; the kubelet cannot
    # confirm, so they stay Terminating on N3 while their replacements run on N1 and N2.
    e = Expect().value("honeydue_kube_deployment_status_replicas_available", 3, namespace="honeydue", deployment="api")
    e.value("honeydue_kube_deployment_status_replicas_ready", 3, namespace="honeydue", deployment="api")
    e.value("honeydue_kube_workload_pods", 1, namespace="honeydue", workload="api", node=N3, ready="false")
    e.holds("3 ready api pods on N1 and N2", lambda m: ready_api(m, N1) + ready_api(m, N2) == 3)
    e.value("honeydue_kube_pod_info", 1, namespace="honeydue", pod=api_n3, node=N3, workload_kind="Deployment",
            workload="api")
    wait_metrics(kube.exporter, e, 60)
    evicted_after = time.monotonic() - started
    terminating = [p for p in pods(cluster, "honeydue") if node_of(p) == N3]
    assert terminating and all(p["metadata"].get("deletionTimestamp") for p in terminating)
    print(f"\nNIC failure: NotReady seen after {not_ready_after:.1f}s, replacements ready after {evicted_after:.1f}s")
    # The NIC comes back: the node is Ready, the kubelet confirms the deletions.
    cluster.nic_up(2)
    e = condition(Expect(), N3, "Ready", "true").value("honeydue_kube_control_plane_nodes_ready", 3)
    e.value("honeydue_kube_apiserver_readyz_up", 1, node=N3).value("honeydue_kube_apiserver_etcd_ready", 1, node=N3)
    e.value("honeydue_kube_pod_info", None, namespace="honeydue", pod=api_n3, node=N3, workload_kind="Deployment",
            workload="api")
    wait_metrics(kube.exporter, e, 40)


def test_two_etcd_members_lost(kube: Kube) -> None:
    """Quorum lost: the survivor's API servers answer from their watch caches until those give up."""
    cluster = kube.cluster
    started = time.monotonic()
    cluster.lose_quorum()
    # Phase 1: lists (resourceVersion=0) are served from the watch cache, stale: nothing can write, so
    # every node stays Ready. No /readyz/etcd passes (it answers 500, within kube-apiserver's 2 s
    # --etcd-readycheck-timeout, so readyz_up flips between 1 and 0/timeout); GETs that need etcd time out.
    e = Expect().value("honeydue_kube_api_up", 1)
    for node in NODE_NAMES:
        e.value("honeydue_kube_apiserver_etcd_ready", 0, node=node)
        condition(e, node, "Ready", "true")
    e.value("honeydue_kube_control_plane_nodes_ready", 3).value("honeydue_kube_etcd_quorum", 2)
    e.value("honeydue_kube_resource_up", 1, resource="nodes", namespace="")
    e.value("honeydue_kube_resource_up", 0, resource="apiservices", namespace="")
    e.value("honeydue_kube_resource_error_info", 1, resource="apiservices", namespace="", reason="timeout")
    wait_metrics(kube.exporter, e, 30)
    phase1 = time.monotonic() - started
    # Phase 2: the watch caches cannot re-list from etcd and stop serving: every list fails with 429
    # (GET /version still answers).
    e = Expect()
    for resource, ns in (("nodes", ""), ("pods", "honeydue"), ("deployments", "kube-system")):
        e.value("honeydue_kube_resource_up", 0, resource=resource, namespace=ns)
        e.value("honeydue_kube_resource_error_info", 1, resource=resource, namespace=ns, reason="throttled")
    wait_metrics(kube.exporter, e, 90)
    phase2 = time.monotonic() - started
    print(f"\nquorum lost: etcd checks failing after {phase1:.1f}s, lists failing (429) after {phase2:.1f}s")
    cluster.restore_quorum()
    restored = time.monotonic()
    e = Expect().value("honeydue_kube_resource_up", 1, resource="nodes", namespace="")
    e.value("honeydue_kube_resource_up", 1, resource="apiservices", namespace="")
    for node in NODE_NAMES:
        e.value("honeydue_kube_apiserver_etcd_ready", 1, node=node)
    wait_metrics(kube.exporter, e, 60)
    print(f"quorum back: etcd checks and lists ok after {time.monotonic() - restored:.1f}s")


# --- application pods ---------------------------------------------------------------------------
def test_all_api_pods_crash_looping(kube: Kube, promtool: str) -> None:
    """The api process panics at start-up on every replica (a bad config value, say)."""
    cluster = kube.cluster
    cluster.runtime.crash(workloads.API_IMAGE)
    names = [name_of(p) for p in pods(cluster, "honeydue", "api")]
    per_node = {n: sum(1 for p in pods(cluster, "honeydue", "api") if node_of(p) == n) for n in NODE_NAMES}

    def expect() -> Expect:
        e = Expect().series("honeydue_kube_pod_container_status_waiting_reason", ("pod", "reason"),
                            {(n, "CrashLoopBackOff"): 1 for n in names}, namespace="honeydue")
        e.series("honeydue_kube_pod_container_status_last_terminated_reason", ("pod", "reason"),
                 {(n, "Error"): 1 for n in names}, namespace="honeydue")
        e.series("honeydue_kube_pod_container_status_restarts_total", ("pod",), api_truth_restarts(cluster, "api"),
                 namespace="honeydue", container="api")
        e.value("honeydue_kube_deployment_status_replicas_available", 0, namespace="honeydue", deployment="api")
        e.value("honeydue_kube_deployment_status_replicas_ready", 0, namespace="honeydue", deployment="api")
        e.value("honeydue_kube_deployment_spec_replicas", 3, namespace="honeydue", deployment="api")
        e.series("honeydue_kube_workload_pods", ("node", "ready"),
                 {(n, r): float(count if r == "false" else 0) for n, count in per_node.items() if count
                  for r in ("true", "false")}, namespace="honeydue", workload="api")
        return e

    wait_metrics(kube.exporter, expect, 40)
    # The exposition of a broken cluster is still valid Prometheus text.
    status, body = kube.exporter.get("/metrics")
    out = subprocess.run([promtool, "check", "metrics"], input=body.decode(), capture_output=True, text=True,
                         timeout=30)
    assert status == 200 and out.returncode == 0 and out.stdout == "" and out.stderr == "", out.stdout + out.stderr


def test_api_container_oom_killed(kube: Kube) -> None:
    cluster = kube.cluster
    victim = next(p for p in pods(cluster, "honeydue", "api") if node_of(p) == N1)
    cluster.kubelets[0].oom_kill("honeydue", name_of(victim), "api")
    e = Expect().value("honeydue_kube_pod_container_status_restarts_total", 1, namespace="honeydue",
                       pod=name_of(victim), container="api")
    e.series("honeydue_kube_pod_container_status_last_terminated_reason", ("pod", "container", "reason"),
             {(name_of(victim), "api", "OOMKilled"): 1})
    e.series("honeydue_kube_pod_container_status_waiting_reason", ("pod",), {})  # restarted at once
    e.value("honeydue_kube_workload_pods", 1, namespace="honeydue", workload="api", node=N1, ready="true")
    wait_metrics(kube.exporter, e, 30)


def test_bad_image_rollout(kube: Kube) -> None:
    """A new api image the registry cannot serve: a new ReplicaSet's pod waits, the old pods keep serving."""
    cluster = kube.cluster
    old = {name_of(p) for p in pods(cluster, "honeydue", "api")}
    cluster.runtime.registry_serves(NEW_API_IMAGE, False)
    started = time.monotonic()
    cluster.set_image("honeydue", "api", NEW_API_IMAGE)

    def expect() -> Expect:
        new = [p for p in pods(cluster, "honeydue", "api") if name_of(p) not in old]
        e = Expect().holds(f"one new api pod (have {len(new)})", lambda _: len(new) == 1)
        e.series("honeydue_kube_pod_container_status_waiting_reason", ("pod", "reason"),
                 {(name_of(p), "ImagePullBackOff"): 1 for p in new}, namespace="honeydue")
        for p in new:
            e.value("honeydue_kube_workload_pods", 1, namespace="honeydue", workload="api", node=node_of(p),
                    ready="false")
            e.value("honeydue_kube_pod_info", 1, namespace="honeydue", pod=name_of(p), node=node_of(p),
                    workload_kind="Deployment", workload="api")
        labels = {"namespace": "honeydue", "deployment": "api"}
        e.value("honeydue_kube_deployment_spec_replicas", 3, **labels)
        e.value("honeydue_kube_deployment_status_replicas_updated", 1, **labels)
        e.value("honeydue_kube_deployment_status_replicas_available", 3, **labels)  # maxUnavailable 0: old pods serve
        e.value("honeydue_kube_deployment_status_replicas_ready", 3, **labels)
        return e

    wait_metrics(kube.exporter, expect, 30)
    # The Deployment controller gives up at progressDeadlineSeconds: Progressing=False; the exporter's
    # "last rollout" time is that condition's lastUpdateTime.
    deadline = cluster.timing.progress_deadline

    def exceeded() -> Expect:
        cond = progressing(cluster, "honeydue", "api")
        e = Expect().holds(f"Progressing {cond['status']} {cond.get('reason')}",
                           lambda _: (cond["status"], cond.get("reason")) == ("False", "ProgressDeadlineExceeded"))
        return e.value("honeydue_kube_deployment_last_rollout_timestamp_seconds", stamp(cond["lastUpdateTime"]),
                       namespace="honeydue", deployment="api")

    wait_metrics(kube.exporter, exceeded, deadline + 30)
    print(f"\nbad rollout: Progressing=False after {time.monotonic() - started:.1f}s (deadline {deadline}s)")
    cluster.set_image("honeydue", "api", workloads.API_IMAGE)  # kubectl rollout undo
    e = Expect().value("honeydue_kube_deployment_status_replicas_updated", 3, namespace="honeydue", deployment="api")
    e.series("honeydue_kube_pod_container_status_waiting_reason", ("pod",), {}, namespace="honeydue")
    wait_metrics(kube.exporter, e, 40)


def test_metrics_server_apiservice_unavailable(kube: Kube) -> None:
    """metrics-server crash-loops: its Service has no ready backend and the aggregator marks the APIService."""
    cluster = kube.cluster
    cluster.runtime.crash(workloads.METRICS_SERVER_IMAGE)
    pod = name_of(pods(cluster, "kube-system", "metrics-server")[0])
    e = Expect().value("honeydue_kube_apiservice_available", 0, apiservice=workloads.METRICS_API)
    e.value("honeydue_kube_deployment_status_replicas_available", 0, namespace="kube-system",
            deployment="metrics-server")
    e.value("honeydue_kube_pod_container_status_waiting_reason", 1, namespace="kube-system", pod=pod,
            container="metrics-server", reason="CrashLoopBackOff")
    e.value("honeydue_kube_resource_up", 1, resource="apiservices", namespace="")
    wait_metrics(kube.exporter, e, 40)
    body = cluster.admin.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{workloads.METRICS_API}")
    available = next(c for c in body["status"]["conditions"] if c["type"] == "Available")
    assert (available["status"], available["reason"]) == ("False", "MissingEndpoints"), available


# --- nodes: labels, cordon, versions, disk -------------------------------------------------------
def test_redis_label_on_not_ready_node_on_two_on_none(kube: Kube) -> None:
    cluster = kube.cluster
    cluster.nic_down(1)
    e = Expect().value("honeydue_kube_redis_nodes", 1).series("honeydue_kube_redis_node_ready", ("node",),
                                                               {(REDIS_NODE,): 0})
    condition(e, REDIS_NODE, "Ready", "unknown")
    wait_metrics(kube.exporter, e, 40)
    # Someone labels a second node without removing the first: not unique.
    cluster.label_node(2, *workloads.REDIS_LABEL)
    e = Expect().value("honeydue_kube_redis_nodes", 2).series("honeydue_kube_redis_node_ready", ("node",),
                                                               {(REDIS_NODE,): 0, (N3,): 1})
    wait_metrics(kube.exporter, e, 20)
    # ... and then no node carries it.
    cluster.label_node(1, workloads.REDIS_LABEL[0], None)
    cluster.label_node(2, workloads.REDIS_LABEL[0], None)
    e = Expect().value("honeydue_kube_redis_nodes", 0).series("honeydue_kube_redis_node_ready", ("node",), {})
    wait_metrics(kube.exporter, e, 20)


def test_cordon_and_drain(kube: Kube) -> None:
    """`kubectl drain` N1: cordoned, its pods evicted through the eviction API (PDBs respected)."""
    cluster = kube.cluster
    evicted = cluster.drain(0)
    assert any(name.startswith("honeydue/api-") for name in evicted), evicted
    e = Expect().value("honeydue_kube_node_spec_unschedulable", 1, node=N1)
    e.value("honeydue_kube_node_spec_unschedulable", 0, node=N2).value("honeydue_kube_node_spec_unschedulable", 0,
                                                                       node=N3)
    condition(e, N1, "Ready", "true")
    e.holds("no honeydue pod on N1", lambda m: not select(m, "honeydue_kube_pod_info", namespace="honeydue", node=N1))
    for name, replicas in (("api", 3), ("admin", 1), ("worker", 1), ("vmagent", 1)):
        e.value("honeydue_kube_deployment_status_replicas_available", replicas, namespace="honeydue", deployment=name)
    e.series("honeydue_kube_workload_pods", ("node",), {(N2,): 0.0, (N3,): 0.0}, workload="api", ready="false")
    wait_metrics(kube.exporter, e, 40)
    taints = {(t["key"], t["effect"]) for t in cluster.node(0)["spec"].get("taints") or []}
    assert taints == {("node.kubernetes.io/unschedulable", "NoSchedule")}


def test_kubelet_version_skew(kube: Kube) -> None:
    kube.cluster.kubelets[0].set_version(OLDER_KUBELET)
    e = Expect().series("honeydue_kube_node_info", ("node", "kubelet_version"),
                        {(N1, OLDER_KUBELET): 1, (N2, K3S_VERSION): 1, (N3, K3S_VERSION): 1})
    wait_metrics(kube.exporter, e, 30)


def test_disk_pressure_with_evicted_pods(kube: Kube) -> None:
    """N2's disk fills: DiskPressure, the disk-pressure taint, and the kubelet evicts two pods."""
    cluster = kube.cluster
    cluster.kubelets[1].fill_disk(evict=2)

    def evicted() -> list[JSON]:
        return [p for ns in ("honeydue", "kube-system") for p in pods(cluster, ns)
                if p["status"].get("reason") == "Evicted"]

    def expect() -> Expect:
        gone = evicted()
        e = condition(Expect(), N2, "DiskPressure", "true")
        condition(e, N2, "Ready", "true")
        e.holds(f"two pods evicted (have {len(gone)})", lambda _: len(gone) == 2)
        e.holds("evicted on N2", lambda _: {node_of(p) for p in gone} == {N2})
        for ns in ("honeydue", "kube-system"):
            e.series("honeydue_kube_pod_status_reason", ("pod", "reason"),
                     {(name_of(p), "Evicted"): 1 for p in gone if p["metadata"]["namespace"] == ns}, namespace=ns)
            count = sum(1 for p in gone if p["metadata"]["namespace"] == ns)
            if count:
                e.value("honeydue_kube_evicted_pods", count, namespace=ns, node=N2)
        return e

    wait_metrics(kube.exporter, expect, 40)
    taints = {(t["key"], t["effect"]) for t in cluster.node(1)["spec"].get("taints") or []}
    assert ("node.kubernetes.io/disk-pressure", "NoSchedule") in taints


# --- the API server ------------------------------------------------------------------------------
def test_no_credentials_disables_with_info_metric(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    caplog.set_level("INFO", logger="exporter.probes.kubernetes")
    probes = kube_probe.build(Config(), Dependencies())
    assert [p.name for p in probes] == ["kubernetes_api"]
    samples = asyncio.run(probes[0].collect())
    assert samples.value("honeydue_kube_config_info", source="none") == 1
    assert [r.message for r in caplog.records if "disabled" in r.message] == [
        "kubernetes probes disabled (not running in a pod and no kubeconfig found); "
        'honeydue_kube_config_info{source="none"} says so'
    ]

