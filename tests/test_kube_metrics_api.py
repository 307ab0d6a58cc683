"""CPU-bound pods from the metrics API ("Everything is slow": kubectl top pods), end to end on real parts:
the fake kubelets' /metrics/resource -> the real metrics-server (scraping every 10 s) -> the
v1beta1.metrics.k8s.io APIService on the real kube-apiserver aggregator -> the exporter in its pod with
deploy/base/rbac.yaml's grants -> honeydue_kube_pod_container_cpu_usage_cores and the CPU limits the pods
probe reads. The expected values are read from the API itself (PodMetrics as kubectl top reads them, pod
specs), never written here.
"""

from __future__ import annotations

import math

from testbed.exporter import Metrics
from testbed.kube import workloads
from testbed.kube.cluster import KubeCluster
from testbed.kube.rest import ApiError

from exporter.probes.kube_metrics import RESOURCE
from exporter.probes.kube_transforms import parse_quantity
from tests.helpers.kube import Expect, Kube, select, wait_metrics

NS = "honeydue"
PODS_PATH = f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods"
BUSY = 0.95  # cores the api containers use in the CPU-bound scenario (their limit is 1 core)


def top_pods(cluster: KubeCluster) -> dict[tuple[str, str], tuple[float, float]]:
    """(pod, container) -> (cpu cores, memory bytes) as `kubectl top pods -n honeydue --containers` reads them."""
    out = {}
    for item in cluster.admin.items(PODS_PATH):
        for c in item.get("containers") or []:
            out[(item["metadata"]["name"], c["name"])] = (parse_quantity(c["usage"]["cpu"]),
                                                          parse_quantity(c["usage"]["memory"]))
    return out


def exported(m: Metrics, name: str) -> dict[tuple[str, str], float]:
    return {(dict(k)["pod"], dict(k)["container"]): v for k, v in select(m, name, namespace=NS).items()}


def running_pods(cluster: KubeCluster, app: str | None = None) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.pods(NS)
            if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
            and (app is None or (p["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == app)}


def same_as_the_api(cluster: KubeCluster) -> Expect:
    """The exporter's CPU and memory per container equal what the metrics API serves right now."""
    try:
        truth = top_pods(cluster)
    except (ApiError, OSError):
        truth = {}
    expect = Expect().holds("the metrics API serves every running honeydue pod",
                            lambda _: bool(truth) and {p for p, _ in truth} == running_pods(cluster))
    expect.holds("the exporter's CPU per container equals the metrics API's", lambda m: exported(
        m, "honeydue_kube_pod_container_cpu_usage_cores") == {k: cpu for k, (cpu, _) in truth.items()})
    expect.holds("the exporter's memory per container equals the metrics API's", lambda m: exported(
        m, "honeydue_kube_pod_container_memory_working_set_bytes") == {k: mem for k, (_, mem) in truth.items()})
    return expect.value("honeydue_kube_resource_up", 1, resource=RESOURCE, namespace=NS)


def test_pod_usage_and_limits_equal_the_api(kube: Kube) -> None:
    cluster = kube.cluster
    m, took = wait_metrics(kube.exporter, lambda: same_as_the_api(cluster), 90)
    print(f"\nmetrics API: exporter equal to kubectl top pods after {took:.1f}s")
    # Idle containers use a little CPU, never none (metrics-server drops a container with zero CPU).
    assert all(0 < v < 0.5 for v in exported(m, "honeydue_kube_pod_container_cpu_usage_cores").values())
    window = select(m, "honeydue_kube_pod_metrics_window_seconds", namespace=NS)
    assert list(window.values()) and all(5 <= v <= 30 for v in window.values()), window
    # The limits and requests are the pods' spec, for every container of every honeydue pod.
    specs = {(p["metadata"]["name"], c["name"]): c.get("resources") or {} for p in cluster.pods(NS)
             for c in p["spec"]["containers"]}
    for family, key in (("honeydue_kube_pod_container_resource_limits", "limits"),
                        ("honeydue_kube_pod_container_resource_requests", "requests")):
        got = {(dict(k)["pod"], dict(k)["container"]): v
               for k, v in select(m, family, namespace=NS, resource="cpu", unit="core").items()}
        want = {k: parse_quantity(r[key]["cpu"]) for k, r in specs.items() if "cpu" in (r.get(key) or {})}
        assert got == want and want, (family, got, want)


def test_cpu_bound_api_pods_near_their_limit(kube: Kube) -> None:
    """The api containers burn 0.95 cores against a 1-core limit: the ratio the alert reads crosses 0.9 for
    the api pods only, with the CPU computed by metrics-server from the kubelets' counters."""
    cluster = kube.cluster
    cluster.use_cpu(workloads.API_IMAGE, BUSY)
    api = running_pods(cluster, "api")

    def ratios(m: Metrics) -> dict[str, float]:
        usage = exported(m, "honeydue_kube_pod_container_cpu_usage_cores")
        limits = {(dict(k)["pod"], dict(k)["container"]): v for k, v in select(
            m, "honeydue_kube_pod_container_resource_limits", namespace=NS, resource="cpu").items()}
        return {pod: usage[(pod, c)] / limits[(pod, c)] for (pod, c) in usage if limits.get((pod, c))}

    expect = Expect().holds("api pods at 0.95 of their limit, the others far below", lambda m: bool(ratios(m)) and all(
        (math.isclose(r, BUSY, abs_tol=0.01) if pod in api else r < 0.5) for pod, r in ratios(m).items())
        and api <= set(ratios(m)))
    _, took = wait_metrics(kube.exporter, expect.holds("same as the API", lambda m: not same_as_the_api(
        cluster).problems(m)), 90)
    print(f"\nmetrics API: CPU-bound api pods seen after {took:.1f}s")
    cluster.use_cpu(workloads.API_IMAGE, None)
    wait_metrics(kube.exporter, Expect().holds("api pods idle again", lambda m: bool(ratios(m)) and all(
        r < 0.5 for r in ratios(m).values())), 90)
