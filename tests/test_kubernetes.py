"""Kubernetes probes against the stand-in API server, through the real `kubernetes` client.

Each scenario injects one failure from chapter 16 into the stand-in cluster, runs every probe once
through the engine, renders /metrics as a scraper sees it and asserts exact values.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.config import Config, KubernetesConfig
from exporter.drill.kubeapi import K3S_VERSION, NODE_NAMES, Cluster, Fault, KubeAPI
from exporter.engine import Engine
from exporter.exposition import Exposition
from exporter.probes import kubernetes as kube
from exporter.probes.deps import Dependencies
from tests.helpers.exporter import parse_metrics

N1, N2, N3 = NODE_NAMES
Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    server = KubeAPI()
    server.start()
    yield server
    server.stop()


def kube_config(api: KubeAPI, tmp_path: Path, **overrides: Any) -> Config:
    settings: dict[str, Any] = {
        "source": "kubeconfig",
        "kubeconfig": str(api.kubeconfig(tmp_path / "kubeconfig")),
        "apiserver_port": api.node_port,
        "interval": 5,
        "timeout": 3,
        "connect_timeout": 0.5,
        "read_timeout": 1.5,
        "readyz_timeout": 0.5,
    } | overrides
    return Config(
        kubernetes=KubernetesConfig(**settings),
        redis={"enabled": False},  # type: ignore[arg-type]
        postgres={"pooler": {"enabled": False}, "direct": {"enabled": False}},
    )


async def scrape(api: KubeAPI, tmp_path: Path, **overrides: Any) -> tuple[Metrics, Engine, str]:
    """Run every Kubernetes probe once (concurrently) and return the parsed exposition."""
    probes = kube.build(kube_config(api, tmp_path, **overrides), Dependencies())
    engine = Engine(probes)
    await asyncio.gather(*(engine.run_once(p) for p in probes))
    text = Exposition(engine).render().decode()
    await engine.stop()
    return parse_metrics(text), engine, text


def get(metrics: Metrics, name: str, **labels: str) -> float | None:
    """The value of the one sample with exactly these labels (None when absent)."""
    return metrics.get((name, frozenset(labels.items())))


def series(metrics: Metrics, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    return {lab: v for (n, lab), v in metrics.items() if n == name and set(labels.items()) <= set(lab)}


def condition(metrics: Metrics, node: str, cond: str) -> str:
    """Which status series of the node condition is 1."""
    on = [
        st
        for st in ("true", "false", "unknown")
        if get(metrics, "honeydue_kube_node_status_condition", node=node, condition=cond, status=st) == 1
    ]
    assert len(on) == 1, on
    return on[0]


def probe_ok(engine: Engine) -> dict[str, str]:
    return {name: state.status for name, state in engine.states.items()}


# --- scenarios -------------------------------------------------------------------------------
async def test_healthy_cluster(api: KubeAPI, tmp_path: Path) -> None:
    m, engine, _ = await scrape(api, tmp_path)
    assert set(probe_ok(engine).values()) == {"ok"}, probe_ok(engine)
    assert get(m, "honeydue_kube_api_up") == 1
    assert get(m, "honeydue_kube_config_info", source="kubeconfig") == 1
    assert get(m, "honeydue_kube_apiserver_version_info", version=K3S_VERSION) == 1
    for node in NODE_NAMES:
        assert condition(m, node, "Ready") == "true"
        for cond in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            assert condition(m, node, cond) == "false"
        assert get(m, "honeydue_kube_node_spec_unschedulable", node=node) == 0
        assert get(m, "honeydue_kube_apiserver_readyz_up", node=node) == 1
        assert get(m, "honeydue_kube_apiserver_etcd_ready", node=node) == 1
        assert get(m, "honeydue_kube_node_role", node=node, role="control-plane") == 1
    assert len(series(m, "honeydue_kube_node_status_condition")) == 3 * 4 * 3
    assert (
        get(
            m,
            "honeydue_kube_node_info",
            node=N1,
            kubelet_version=K3S_VERSION,
            container_runtime_version="containerd://2.1.5-k3s1",
            kernel_version="6.8.0-60-generic",
            os_image="Ubuntu 24.04.3 LTS",
            internal_ip="127.0.0.2",
        )
        == 1
    )
    assert (
        get(m, "honeydue_kube_control_plane_nodes"),
        get(m, "honeydue_kube_control_plane_nodes_ready"),
        get(m, "honeydue_kube_etcd_quorum"),
    ) == (3, 3, 2)
    assert get(m, "honeydue_kube_redis_nodes") == 1
    assert series(m, "honeydue_kube_redis_node_ready") == {frozenset({("node", N2)}): 1}
    expected = {
        ("honeydue", "api", 3),
        ("honeydue", "admin", 1),
        ("honeydue", "worker", 1),
        ("honeydue", "redis", 1),
        ("honeydue", "vmagent", 1),
        ("kube-system", "coredns", 1),
        ("kube-system", "metrics-server", 1),
        ("kube-system", "traefik", 1),
    }
    for ns, name, replicas in expected:
        labels = {"namespace": ns, "deployment": name}
        assert get(m, "honeydue_kube_deployment_exists", **labels) == 1
        for metric in (
            "spec_replicas",
            "status_replicas_available",
            "status_replicas_updated",
            "status_replicas_ready",
        ):
            assert get(m, f"honeydue_kube_deployment_{metric}", **labels) == replicas, (metric, labels)
        assert get(m, "honeydue_kube_deployment_last_rollout_timestamp_seconds", **labels) == 1777138802
    # local-path-provisioner is in the namespace but not configured: not reported.
    assert not series(m, "honeydue_kube_deployment_exists", deployment="local-path-provisioner")
    assert get(m, "honeydue_kube_apiservice_available", apiservice="v1beta1.metrics.k8s.io") == 1
    assert sum(series(m, "honeydue_kube_pod_container_status_restarts_total").values()) == 0
    assert not series(m, "honeydue_kube_pod_container_status_waiting_reason")
    assert not series(m, "honeydue_kube_pod_container_status_last_terminated_reason")
    assert not series(m, "honeydue_kube_pod_status_reason")
    for node in NODE_NAMES:
        assert get(m, "honeydue_kube_evicted_pods", namespace="honeydue", node=node) == 0
        assert get(m, "honeydue_kube_workload_pods", namespace="honeydue", workload="api", node=node, ready="true") == 1
        assert (
            get(m, "honeydue_kube_workload_pods", namespace="honeydue", workload="api", node=node, ready="false") == 0
        )
    assert (
        get(m, "honeydue_kube_workload_pods", namespace="kube-system", workload="traefik", node=N3, ready="true") == 1
    )
    assert (
        get(m, "honeydue_kube_workload_pods", namespace="kube-system", workload="traefik", node=N1, ready="true") == 0
    )
    assert (
        get(
            m,
            "honeydue_kube_pod_info",
            namespace="honeydue",
            pod="api-5d8f7c9b4-x7k2p",
            node=N1,
            workload_kind="Deployment",
            workload="api",
        )
        == 1
    )
    assert (
        get(
            m,
            "honeydue_kube_pod_info",
            namespace="kube-system",
            pod="svclb-traefik-4d6a1f2e-a1b2c",
            node=N1,
            workload_kind="DaemonSet",
            workload="svclb-traefik-4d6a1f2e",
        )
        == 1
    )
    for resource, ns in (
        ("nodes", ""),
        ("pods", "honeydue"),
        ("pods", "kube-system"),
        ("deployments", "honeydue"),
        ("deployments", "kube-system"),
        ("apiservices", ""),
    ):
        assert get(m, "honeydue_kube_resource_up", resource=resource, namespace=ns) == 1
    assert not series(m, "honeydue_kube_resource_error_info")
    # Every list is paginated (limit, never resourceVersion=0, which makes the API server ignore limit), with
    # the bearer token; deployments are listed by name, one list per watched deployment.
    lists = [r for r in api.requests if r[1].endswith(("/nodes", "/pods", "/deployments"))]
    assert all(r[2].get("limit") == "500" and "resourceVersion" not in r[2] and r[3] for r in lists), lists
    watched = sorted(f"metadata.name={name}" for names in Config().kubernetes.deployments.values() for name in names)
    assert sorted(r[2]["fieldSelector"] for r in lists if r[1].endswith("/deployments")) == watched
    assert len(lists) == 3 + len(watched)
    assert all(r[0] == "GET" for r in api.requests)


async def test_one_node_not_ready(api: KubeAPI, tmp_path: Path) -> None:
    api.mutate(lambda c: c.node_not_ready(N3))
    m, engine, _ = await scrape(api, tmp_path)
    assert condition(m, N3, "Ready") == "unknown"
    assert condition(m, N1, "Ready") == "true"
    assert (get(m, "honeydue_kube_control_plane_nodes_ready"), get(m, "honeydue_kube_etcd_quorum")) == (2, 2)
    assert get(m, "honeydue_kube_apiserver_readyz_up", node=N3) == 0
    assert get(m, "honeydue_kube_apiserver_etcd_ready", node=N3) == 0
    assert get(m, "honeydue_kube_apiserver_readyz_error_info", node=N3, reason="timeout") == 1
    assert get(m, "honeydue_kube_apiserver_etcd_ready", node=N1) == 1
    assert engine.states["kubernetes_nodes"].status == "ok"


async def test_two_nodes_not_ready_quorum_lost(api: KubeAPI, tmp_path: Path) -> None:
    def fail(c: Cluster) -> None:
        c.node_not_ready(N2)
        c.node_not_ready(N3)
        c.readyz[c.ip(N1)] = "fail"  # the survivor's etcd has no quorum

    api.mutate(fail)
    m, _, _ = await scrape(api, tmp_path)
    assert (
        get(m, "honeydue_kube_control_plane_nodes"),
        get(m, "honeydue_kube_control_plane_nodes_ready"),
        get(m, "honeydue_kube_etcd_quorum"),
    ) == (3, 1, 2)
    assert get(m, "honeydue_kube_apiserver_readyz_up", node=N1) == 1
    assert sum(series(m, "honeydue_kube_apiserver_etcd_ready").values()) == 0
    assert get(m, "honeydue_kube_redis_node_ready", node=N2) == 0


async def test_disk_pressure_with_evicted_pods(api: KubeAPI, tmp_path: Path) -> None:
    def fill(c: Cluster) -> None:
        c.set_condition(N2, "DiskPressure", "True", "KubeletHasDiskPressure")
        c.node(N2)["spec"]["taints"] = [{"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"}]
        c.evict(c.pod("honeydue", "worker-"))
        c.evict(c.pod("kube-system", "metrics-server-"))

    api.mutate(fill)
    m, _, _ = await scrape(api, tmp_path)
    assert condition(m, N2, "DiskPressure") == "true"
    assert condition(m, N2, "Ready") == "true"
    assert get(m, "honeydue_kube_evicted_pods", namespace="honeydue", node=N2) == 1
    assert get(m, "honeydue_kube_evicted_pods", namespace="kube-system", node=N2) == 1
    assert get(m, "honeydue_kube_evicted_pods", namespace="honeydue", node=N1) == 0
    assert (
        get(m, "honeydue_kube_pod_status_reason", namespace="honeydue", pod="worker-6f5e4d3c2-h2j3k", reason="Evicted")
        == 1
    )
    assert len(series(m, "honeydue_kube_pod_status_reason")) == 2


async def test_api_container_oom_killed(api: KubeAPI, tmp_path: Path) -> None:
    api.mutate(lambda c: c.oom_killed(c.pod("honeydue", "api-5d8f7c9b4-m4q9z"), restarts=4))
    m, _, _ = await scrape(api, tmp_path)
    labels = {"namespace": "honeydue", "pod": "api-5d8f7c9b4-m4q9z", "container": "api"}
    assert get(m, "honeydue_kube_pod_container_status_restarts_total", **labels) == 4
    assert get(m, "honeydue_kube_pod_container_status_last_terminated_reason", reason="OOMKilled", **labels) == 1
    assert len(series(m, "honeydue_kube_pod_container_status_last_terminated_reason")) == 1
    assert not series(m, "honeydue_kube_pod_container_status_waiting_reason")


async def test_all_api_pods_crash_looping(api: KubeAPI, tmp_path: Path) -> None:
    def panic(c: Cluster) -> None:
        for p in c.pods["honeydue"]:
            if p["metadata"]["name"].startswith("api-"):
                c.crashloop(p, restarts=7)
        d = c.deployment("honeydue", "api")
        d["status"].update(availableReplicas=0, readyReplicas=0, unavailableReplicas=3)

    api.mutate(panic)
    m, _, _ = await scrape(api, tmp_path)
    waiting = series(m, "honeydue_kube_pod_container_status_waiting_reason", reason="CrashLoopBackOff")
    assert len(waiting) == 3 and set(waiting.values()) == {1}
    assert sum(series(m, "honeydue_kube_pod_container_status_restarts_total", namespace="honeydue").values()) == 21
    assert len(series(m, "honeydue_kube_pod_container_status_last_terminated_reason", reason="Error")) == 3
    assert get(m, "honeydue_kube_deployment_status_replicas_available", namespace="honeydue", deployment="api") == 0
    assert get(m, "honeydue_kube_deployment_spec_replicas", namespace="honeydue", deployment="api") == 3
    for node in NODE_NAMES:
        assert (
            get(m, "honeydue_kube_workload_pods", namespace="honeydue", workload="api", node=node, ready="false") == 1
        )
        assert get(m, "honeydue_kube_workload_pods", namespace="honeydue", workload="api", node=node, ready="true") == 0


async def test_image_pull_backoff(api: KubeAPI, tmp_path: Path) -> None:
    def stuck(c: Cluster) -> None:
        new = c.pod("honeydue", "api-5d8f7c9b4-x7k2p")
        c.image_pull_backoff(new)
        d = c.deployment("honeydue", "api")
        d["status"].update(updatedReplicas=1, availableReplicas=2, readyReplicas=2)

    api.mutate(stuck)
    m, _, _ = await scrape(api, tmp_path)
    assert (
        get(
            m,
            "honeydue_kube_pod_container_status_waiting_reason",
            namespace="honeydue",
            pod="api-5d8f7c9b4-x7k2p",
            container="api",
            reason="ImagePullBackOff",
        )
        == 1
    )
    assert get(m, "honeydue_kube_deployment_status_replicas_updated", namespace="honeydue", deployment="api") == 1
    assert get(m, "honeydue_kube_workload_pods", namespace="honeydue", workload="api", node=N1, ready="false") == 1


async def test_metrics_server_apiservice_unavailable(api: KubeAPI, tmp_path: Path) -> None:
    def down(c: Cluster) -> None:
        c.apiservices["v1beta1.metrics.k8s.io"]["status"]["conditions"] = [
            {
                "type": "Available",
                "status": "False",
                "reason": "FailedDiscoveryCheck",
                "message": "connection refused",
                "lastTransitionTime": "2026-04-25T17:50:00Z",
            }
        ]
        c.deployment("kube-system", "metrics-server")["status"].update(availableReplicas=0, readyReplicas=0)

    api.mutate(down)
    m, _, _ = await scrape(api, tmp_path)
    assert get(m, "honeydue_kube_apiservice_available", apiservice="v1beta1.metrics.k8s.io") == 0
    assert (
        get(
            m,
            "honeydue_kube_deployment_status_replicas_available",
            namespace="kube-system",
            deployment="metrics-server",
        )
        == 0
    )
    # The APIService deleted entirely is also "not available", not a probe failure.
    api.mutate(lambda c: c.apiservices.clear())
    m, engine, _ = await scrape(api, tmp_path)
    assert get(m, "honeydue_kube_apiservice_available", apiservice="v1beta1.metrics.k8s.io") == 0
    assert engine.states["kubernetes_apiservices"].status == "ok"


async def test_redis_label_on_not_ready_node(api: KubeAPI, tmp_path: Path) -> None:
    api.mutate(lambda c: c.node_not_ready(N2))
    m, _, _ = await scrape(api, tmp_path)
    assert get(m, "honeydue_kube_redis_nodes") == 1
    assert get(m, "honeydue_kube_redis_node_ready", node=N2) == 0
    # The label moved to a second node without being removed from the first: not unique.
    api.mutate(lambda c: c.node(N3)["metadata"]["labels"].update({"honeydue/redis": "true"}))
    m, _, _ = await scrape(api, tmp_path)
    assert get(m, "honeydue_kube_redis_nodes") == 2
    assert series(m, "honeydue_kube_redis_node_ready") == {frozenset({("node", N2)}): 0, frozenset({("node", N3)}): 1}
    # No node carries it.
    api.mutate(lambda c: [n["metadata"]["labels"].pop("honeydue/redis", None) for n in c.nodes])
    m, _, _ = await scrape(api, tmp_path)
    assert get(m, "honeydue_kube_redis_nodes") == 0
    assert not series(m, "honeydue_kube_redis_node_ready")


async def test_cordoned_node(api: KubeAPI, tmp_path: Path) -> None:
    api.mutate(lambda c: c.cordon(N1))
    m, _, _ = await scrape(api, tmp_path)
    assert get(m, "honeydue_kube_node_spec_unschedulable", node=N1) == 1
    assert get(m, "honeydue_kube_node_spec_unschedulable", node=N2) == 0
    assert condition(m, N1, "Ready") == "true"


async def test_kubelet_versions_differ(api: KubeAPI, tmp_path: Path) -> None:
    api.mutate(lambda c: c.node(N1)["status"]["nodeInfo"].update(kubeletVersion="v1.35.2+k3s1"))
    m, _, _ = await scrape(api, tmp_path)
    versions = {dict(lab)["node"]: dict(lab)["kubelet_version"] for lab in series(m, "honeydue_kube_node_info")}
    assert versions == {N1: "v1.35.2+k3s1", N2: K3S_VERSION, N3: K3S_VERSION}


# --- errors ----------------------------------------------------------------------------------
async def test_forbidden_is_a_permission_error_for_that_resource(api: KubeAPI, tmp_path: Path) -> None:
    api.faults["nodes"] = Fault("403")
    api.faults["deployments/kube-system"] = Fault("403")
    m, engine, _ = await scrape(api, tmp_path)
    assert get(m, "honeydue_kube_resource_up", resource="nodes", namespace="") == 0
    assert get(m, "honeydue_kube_resource_error_info", resource="nodes", namespace="", reason="forbidden") == 1
    assert (
        get(m, "honeydue_kube_resource_error_info", resource="deployments", namespace="kube-system", reason="forbidden")
        == 1
    )
    assert engine.states["kubernetes_nodes"].status == "failing"
    assert engine.states["kubernetes_nodes"].reason == "auth"
    assert get(m, "honeydue_probe_success", probe="kubernetes_nodes") == 0
    # No node series pretend the cluster is healthy; the other resources still report.
    assert not series(m, "honeydue_kube_node_status_condition")
    assert get(m, "honeydue_kube_control_plane_nodes_ready") is None
    assert get(m, "honeydue_kube_resource_up", resource="deployments", namespace="honeydue") == 1
    assert get(m, "honeydue_kube_deployment_spec_replicas", namespace="honeydue", deployment="api") == 3
    assert get(m, "honeydue_kube_resource_up", resource="pods", namespace="kube-system") == 1
    assert get(m, "honeydue_kube_api_up") == 1


@pytest.mark.parametrize(("fault", "reason"), [("401", "unauthorized"), ("500", "server_error")])
async def test_http_errors_are_named(api: KubeAPI, tmp_path: Path, fault: str, reason: str) -> None:
    api.faults["pods/honeydue"] = Fault(fault)
    m, _, _ = await scrape(api, tmp_path)
    assert get(m, "honeydue_kube_resource_up", resource="pods", namespace="honeydue") == 0
    assert get(m, "honeydue_kube_resource_error_info", resource="pods", namespace="honeydue", reason=reason) == 1
    assert get(m, "honeydue_kube_resource_up", resource="pods", namespace="kube-system") == 1


async def test_wrong_token_is_unauthorized(api: KubeAPI, tmp_path: Path) -> None:
    config = kube_config(api, tmp_path)
    api.kubeconfig(Path(str(config.kubernetes.kubeconfig)), token="not-the-token")
    probes = kube.build(config, Dependencies())
    engine = Engine(probes)
    await asyncio.gather(*(engine.run_once(p) for p in probes))
    m = parse_metrics(Exposition(engine).render().decode())
    await engine.stop()
    assert get(m, "honeydue_kube_api_up") == 0
    assert get(m, "honeydue_kube_resource_error_info", resource="nodes", namespace="", reason="unauthorized") == 1


async def test_api_server_hung(api: KubeAPI, tmp_path: Path) -> None:
    api.faults["*"] = Fault("hang")
    started = time.monotonic()
    m, engine, _ = await scrape(api, tmp_path)
    elapsed = time.monotonic() - started
    assert elapsed < 3 + 1.5  # every probe ends within its timeout (3 s), concurrently
    assert get(m, "honeydue_kube_api_up") == 0
    assert get(m, "honeydue_kube_resource_error_info", resource="nodes", namespace="", reason="timeout") == 1
    assert {s.reason for s in engine.states.values()} == {"timeout"}


async def test_api_server_down(tmp_path: Path) -> None:
    server = KubeAPI()  # never started: the port refuses connections
    m, engine, _ = await scrape(server, tmp_path)
    assert get(m, "honeydue_kube_api_up") == 0
    assert get(m, "honeydue_kube_resource_error_info", resource="pods", namespace="honeydue", reason="refused") == 1
    assert engine.states["kubernetes_api"].reason == "refused"


def test_no_credentials_disables_with_info_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    caplog.set_level("INFO", logger="exporter.probes.kubernetes")
    probes = kube.build(Config(), Dependencies())
    assert [p.name for p in probes] == ["kubernetes_api"]
    samples = asyncio.run(probes[0].collect())
    assert samples.value("honeydue_kube_config_info", source="none") == 1
    assert [r.message for r in caplog.records if "disabled" in r.message] == [
        "kubernetes probes disabled (not running in a pod and no kubeconfig found); "
        'honeydue_kube_config_info{source="none"} says so'
    ]


def test_exposition_passes_promtool(api: KubeAPI, tmp_path: Path, promtool: str) -> None:
    def broken(c: Cluster) -> None:
        c.node_not_ready(N3)
        c.crashloop(c.pod("honeydue", "admin-"), restarts=3)
        c.evict(c.pod("honeydue", "worker-"))

    api.mutate(broken)
    api.faults["deployments/kube-system"] = Fault("403")
    _, _, text = asyncio.run(scrape(api, tmp_path))
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == "", out.stdout + out.stderr
