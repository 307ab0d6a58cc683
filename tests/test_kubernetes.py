"""The Kubernetes probes against a real control plane (etcd x3, kube-apiserver per server node,
kube-controller-manager; testbed/kube), with the exporter running in-cluster as in production.

Each scenario breaks the cluster the way chapter 16 describes and lets the real controllers do the
rest; the test waits (with a deadline) until the exporter shows exact values, and asserts what the API
itself shows as the cause. Placement is the binder's, so where a pod runs is read from the API.

Only what a real control plane shows is tested here: how states follow from a failure (node loss, quorum,
rollouts, crash loops, evictions, the aggregator). What an object of a given shape turns into (an
OOMKilled container, a kubelet version, the Redis label on two nodes or none, a NotReady node) is
tests/test_kube_transforms.py's tables, and what the rules make of it the incident suite's.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from testbed.exporter import Metrics
from testbed.kube import workloads
from testbed.kube.cluster import KubeCluster
from testbed.kube.control_plane import K3S_VERSION, NODE_IPS, NODE_NAMES, wait_until
from testbed.kube.rest import JSON, ApiError

from exporter.config import Config
from exporter.probes import kubernetes as kube_probe
from exporter.probes.deps import Dependencies
from exporter.probes.kube_metrics import RESOURCE as METRICS_RESOURCE
from tests.helpers import kube_alerts
from tests.helpers.kube import Expect, Kube, select, wait_metrics
from tests.helpers.kube_alerts import Recorder

N1, N2, N3 = NODE_NAMES
CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
REDIS_NODE = N2
NEW_API_IMAGE = f"{workloads.REGISTRY}/api:1.4.3"
PROBE_INTERVAL = 2.0  # the session exporter's (tests/helpers/kube.py)


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


# --- the alerts the incident suite expects -----------------------------------------------------------
@pytest.fixture
def recording(kube: Kube) -> Iterator[Recorder]:
    """The exporter's series, scraped every probe run from before the failure (kube_alerts.Recorder), once
    the exporter shows the reset cluster healthy (its view lags the cluster's by up to a probe run)."""
    def settled(m: Metrics) -> bool:
        spec = select(m, "honeydue_kube_deployment_spec_replicas")
        return bool(spec) and spec == select(m, "honeydue_kube_deployment_status_replicas_available") and not select(
            m, "honeydue_kube_pod_container_status_waiting_reason") and not any(
            select(m, "honeydue_kube_node_spec_unschedulable").values())

    wait_metrics(kube.exporter, Expect().value("honeydue_kube_control_plane_nodes_ready", 3).value(
        "honeydue_kube_apiservice_available", 1, apiservice=workloads.METRICS_API).holds(
        "every deployment available, no container waiting, no node cordoned", settled), 60)
    recorder = kube_alerts.record(kube.exporter, every=PROBE_INTERVAL)
    try:
        yield recorder
    finally:
        recorder.stop()


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory) -> kube_alerts.Replays:
    """Each scenario's recording, evaluated with the others at the end of the module (test_the_rules_...)."""
    return kube_alerts.Replays(tmp_path_factory.mktemp("kube-alerts"))


# --- healthy ------------------------------------------------------------------------------------
def test_healthy_cluster(kube: Kube, recording: Recorder, replays: kube_alerts.Replays) -> None:
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
    recording.mark_steady()
    replays.add(recording, "healthy-day", "5m")  # only the Watchdog


# --- node loss ----------------------------------------------------------------------------------
def test_node_nic_fails(kube: Kube, recording: Recorder, replays: kube_alerts.Replays) -> None:
    """N3's kubelet goes silent and its etcd member and API server stop answering."""
    cluster = kube.cluster
    api_n3 = next(name_of(p) for p in pods(cluster, "honeydue", "api") if node_of(p) == N3)
    started = time.monotonic()
    recording.inject()
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
    recording.mark_steady()
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
    replays.add(recording, "one-node-nic", "15m")


def quorum_evidence(e: Expect) -> Expect:
    """What KubeEtcdQuorumLost needs, in every scrape: each server answers its etcd check failing (500 after
    kube-apiserver's etcd check timeout), and the quorum the last good node list gave."""
    e.value("honeydue_kube_api_up", 1).value("honeydue_kube_etcd_quorum", 2)
    for node in NODE_NAMES:
        e.value("honeydue_kube_apiserver_readyz_up", 1, node=node).value("honeydue_kube_apiserver_etcd_ready", 0,
                                                                          node=node)
    # The node list failed: no node status at all (not stale values).
    e.holds("no node conditions", lambda m: not select(m, "honeydue_kube_node_status_condition"))
    e.value("honeydue_kube_control_plane_nodes_ready", None)
    return e


def test_two_etcd_members_lost(kube: Kube, recording: Recorder, replays: kube_alerts.Replays) -> None:
    """Quorum lost: /version answers, the lists cannot, the servers' etcd checks say why."""
    cluster = kube.cluster
    started = time.monotonic()
    recording.inject()
    cluster.lose_quorum()
    # Phase 1: every list is a consistent read (no resourceVersion=0), which waits on etcd until the read
    # timeout; so does the APIService GET.
    e = quorum_evidence(Expect())
    for resource, ns in (("nodes", ""), ("pods", "honeydue"), ("pods", "kube-system"), ("deployments", "honeydue"),
                         ("deployments", "kube-system"), ("apiservices", "")):
        e.value("honeydue_kube_resource_up", 0, resource=resource, namespace=ns)
        e.value("honeydue_kube_resource_error_info", 1, resource=resource, namespace=ns, reason="timeout")
    wait_metrics(kube.exporter, e, 30)
    phase1 = time.monotonic() - started
    # Phase 2: the watch caches cannot re-list from etcd and go back to initializing: the lists they serve
    # (deployments by name) answer 429 "storage is (re)initializing" at once, reason storage_unavailable
    # (not APF's throttling); the others keep timing out. The evidence stays.
    e = quorum_evidence(Expect())
    for resource, ns in (("nodes", ""), ("pods", "honeydue"), ("apiservices", "")):
        e.value("honeydue_kube_resource_error_info", 1, resource=resource, namespace=ns, reason="timeout")
    for ns in ("honeydue", "kube-system"):
        e.value("honeydue_kube_resource_error_info", 1, resource="deployments", namespace=ns,
                reason="storage_unavailable")
    wait_metrics(kube.exporter, e, 90)
    phase2 = time.monotonic() - started
    phase2_from = recording.mark()
    wait_until(lambda: recording.mark() >= phase2_from + 3, 30, "three recorded probe runs of phase 2")
    recording.mark_steady()
    print(f"\nquorum lost: lists timing out, etcd checks failing after {phase1:.1f}s, "
          f"429 storage_unavailable after {phase2:.1f}s")
    cluster.restore_quorum()
    restored = time.monotonic()
    e = Expect().value("honeydue_kube_resource_up", 1, resource="nodes", namespace="")
    e.value("honeydue_kube_resource_up", 1, resource="apiservices", namespace="")
    for node in NODE_NAMES:
        e.value("honeydue_kube_apiserver_etcd_ready", 1, node=node)
    wait_metrics(kube.exporter, e, 60)
    print(f"quorum back: etcd checks and lists ok after {time.monotonic() - restored:.1f}s")
    replays.add(recording, "two-nodes-down", "15m")
    replays.add(recording, "two-nodes-down", "15m", since=phase2_from, name="two-nodes-down-phase2")


# --- application pods ---------------------------------------------------------------------------
def test_all_api_pods_crash_looping(kube: Kube, recording: Recorder, promtool: str,
                                    replays: kube_alerts.Replays) -> None:
    """The api process panics at start-up on every replica (a bad config value, say)."""
    cluster = kube.cluster
    recording.inject()
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
    recording.mark_steady()
    # The exposition of a broken cluster is still valid Prometheus text.
    status, body = kube.exporter.get("/metrics")
    out = subprocess.run([promtool, "check", "metrics"], input=body.decode(), capture_output=True, text=True,
                         timeout=30)
    assert status == 200 and out.returncode == 0 and out.stdout == "" and out.stderr == "", out.stdout + out.stderr
    replays.add(recording, "api-all-crashloop", "10m")


def test_bad_image_rollout(kube: Kube, recording: Recorder, replays: kube_alerts.Replays) -> None:
    """A new api image the registry cannot serve: a new ReplicaSet's pod waits, the old pods keep serving."""
    cluster = kube.cluster
    old = {name_of(p) for p in pods(cluster, "honeydue", "api")}
    cluster.runtime.registry_serves(NEW_API_IMAGE, False)
    started = time.monotonic()
    recording.inject()
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
    recording.mark_steady()
    print(f"\nbad rollout: Progressing=False after {time.monotonic() - started:.1f}s (deadline {deadline}s)")
    cluster.set_image("honeydue", "api", workloads.API_IMAGE)  # kubectl rollout undo
    e = Expect().value("honeydue_kube_deployment_status_replicas_updated", 3, namespace="honeydue", deployment="api")
    e.series("honeydue_kube_pod_container_status_waiting_reason", ("pod",), {}, namespace="honeydue")
    wait_metrics(kube.exporter, e, 40)
    replays.add(recording, "bad-image-rollout", "25m")


def test_metrics_server_crash_looping(kube: Kube, recording: Recorder, replays: kube_alerts.Replays) -> None:
    """metrics-server crash-loops: its Service has no ready backend, the aggregator marks the APIService and
    answers 503 for metrics.k8s.io; the exporter says so (resource up 0, reason server_error) instead of
    losing the CPU series silently."""
    cluster = kube.cluster
    wait_metrics(kube.exporter, Expect().value("honeydue_kube_resource_up", 1, resource=METRICS_RESOURCE,
                                               namespace="honeydue"), 90)
    recording.inject()
    cluster.runtime.crash(workloads.METRICS_SERVER_IMAGE)
    pod = name_of(pods(cluster, "kube-system", "metrics-server")[0])
    e = Expect().value("honeydue_kube_apiservice_available", 0, apiservice=workloads.METRICS_API)
    e.value("honeydue_kube_deployment_status_replicas_available", 0, namespace="kube-system",
            deployment="metrics-server")
    e.value("honeydue_kube_pod_container_status_waiting_reason", 1, namespace="kube-system", pod=pod,
            container="metrics-server", reason="CrashLoopBackOff")
    e.value("honeydue_kube_resource_up", 1, resource="apiservices", namespace="")
    wait_metrics(kube.exporter, e, 40)
    recording.mark_steady()
    body = cluster.admin.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{workloads.METRICS_API}")
    available = next(c for c in body["status"]["conditions"] if c["type"] == "Available")
    assert (available["status"], available["reason"]) == ("False", "MissingEndpoints"), available
    e = (Expect().value("honeydue_kube_resource_up", 0, resource=METRICS_RESOURCE, namespace="honeydue")
         .value("honeydue_kube_resource_error_info", 1, resource=METRICS_RESOURCE, namespace="honeydue",
                reason="server_error")
         .value("honeydue_probe_success", 0, probe="kubernetes_pod_metrics_honeydue")
         .holds("no CPU series", lambda m: not select(m, "honeydue_kube_pod_container_cpu_usage_cores")))
    _, took = wait_metrics(kube.exporter, e, 90)
    print(f"\nmetrics API: unavailable seen after {took:.1f}s")
    with pytest.raises(ApiError) as raised:
        cluster.admin.items("/apis/metrics.k8s.io/v1beta1/namespaces/honeydue/pods")
    assert raised.value.status == 503
    replays.add(recording, "metrics-server-down", "25m")


# --- nodes: cordon, disk -------------------------------------------------------
def test_cordon_and_drain(kube: Kube, recording: Recorder, replays: kube_alerts.Replays) -> None:
    """`kubectl drain` N3: cordoned, its pods evicted through the eviction API (PDBs respected)."""
    cluster = kube.cluster
    recording.inject()
    evicted = cluster.drain(2)
    assert any(name.startswith("honeydue/api-") for name in evicted), evicted
    e = Expect().value("honeydue_kube_node_spec_unschedulable", 1, node=N3)
    e.value("honeydue_kube_node_spec_unschedulable", 0, node=N1).value("honeydue_kube_node_spec_unschedulable", 0,
                                                                       node=N2)
    condition(e, N3, "Ready", "true")
    e.holds("no honeydue pod on N3", lambda m: not select(m, "honeydue_kube_pod_info", namespace="honeydue", node=N3))
    for name, replicas in (("api", 3), ("admin", 1), ("worker", 1), ("vmagent", 1)):
        e.value("honeydue_kube_deployment_status_replicas_available", replicas, namespace="honeydue", deployment=name)
    e.series("honeydue_kube_workload_pods", ("node",), {(N1,): 0.0, (N2,): 0.0}, workload="api", ready="false")
    wait_metrics(kube.exporter, e, 40)
    recording.mark_steady()
    taints = {(t["key"], t["effect"]) for t in cluster.node(2)["spec"].get("taints") or []}
    assert taints == {("node.kubernetes.io/unschedulable", "NoSchedule")}
    replays.add(recording, "node-drain", "7m30s")  # cordoned and drained, not yet rebooted


def test_disk_pressure_with_evicted_pods(kube: Kube, recording: Recorder, replays: kube_alerts.Replays) -> None:
    """N2's disk fills: DiskPressure, the disk-pressure taint, and the kubelet evicts two pods."""
    cluster = kube.cluster
    recording.inject()
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
    recording.mark_steady()
    taints = {(t["key"], t["effect"]) for t in cluster.node(1)["spec"].get("taints") or []}
    assert ("node.kubernetes.io/disk-pressure", "NoSchedule") in taints
    print(f"\ndisk pressure: evicted {sorted(name_of(p) for p in evicted())}")
    replays.add(recording, "node-disk-pressure", "15m")


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


# --- what the rules make of the recordings ------------------------------------------------------------
def quorum_page_holds(verdict: kube_alerts.Verdict) -> None:
    """The rules over every recorded probe run (one per 30 s step), `for` as shipped: the quorum page fires
    3 minutes into phase 1 and stays through phase 2 (a single run without its evidence would reset it).
    Phase 1 is 15-18 probe runs (7.5-9 minutes on the rules' clock), so the page comes in phase 1; phase 2
    is also evaluated on its own, as if the lists had answered 429 from the start (in production phase 1 is
    the same ~30 s: about one probe run): the page must come from it alone too."""
    for engine in ("promql", "metricsql"):
        # KubeAPIUnreachable stays quiet while quorum is lost (the quorum page says it all)
        for alert, hold in (("KubeEtcdQuorumLost", 3),):
            steps = range(verdict.fault_step, verdict.last_step + 1)
            on = [k for k in steps if alert in verdict.firing(engine, k)]
            assert on, f"{engine}: {alert} never fired"
            # fires within its `for` + 2 steps of the injection (the failing state shows within a probe run)
            assert on[0] - verdict.fault_step <= hold * 60 // kube_alerts.STEP + 2, (engine, alert, on[0])
            assert on == list(range(on[0], verdict.last_step + 1)), f"{engine}: {alert} reset: {on}"


RECORDED = {"healthy-day": None, "one-node-nic": None, "two-nodes-down": quorum_page_holds,
            "two-nodes-down-phase2": quorum_page_holds, "api-all-crashloop": None, "bad-image-rollout": None,
            "metrics-server-down": None, "node-drain": None, "node-disk-pressure": None}


@pytest.mark.parametrize("name", RECORDED)
def test_the_rules_deliver_what_the_incident_expects(replays: kube_alerts.Replays, name: str) -> None:
    """Every scenario's recording through promtool, vmalert-tool and a real Alertmanager (all of them in one
    run of each, at the first of these tests): exactly the notifications its incident in rules/incidents/
    expects, at the time the scenario names, within its page budget."""
    verdict = replays.verdict(name)
    kube_alerts.assert_as_expected(verdict, f"{name} at {kube_alerts.suite.duration(verdict.at)}")
    check = RECORDED[name]
    if check is not None:
        check(verdict)
