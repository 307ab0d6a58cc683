"""The example overlay applied for real to an empty test cluster, as `kubectl apply --server-side -k` does.

A cluster of its own (testbed/kube with no honeydue namespace, no workloads, no RBAC: nodes only), the
operators' CRDs (the Prometheus operator's generated from its Go types by controller-gen; the VictoriaMetrics
operator's written from its documented API, tests/helpers/vm_crds.py), then every object `kustomize build` renders
of deploy/overlays/example with all three components opted in, server-side applied with fieldValidation=Strict,
in kustomize's order. Each object must be new (the namespace did not exist) and be there afterwards; the
Deployment and the DaemonSet roll out on the fake kubelets; the scrape objects' selectors and ports find the
Service, its ready endpoints and the netcheck pods the overlay made, on the API server; the rule objects come
back with their rules files' groups. A misspelt field in an operator object is refused by its CRD.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from testbed.kube.cluster import KubeCluster
from testbed.kube.control_plane import NODE_NAMES, wait_until
from testbed.kube.rest import ApiError, object_path
from testbed.paths import PEERS_BIN

from tests.helpers import vm_crds
from tests.helpers.kube import require_kube
from tests.test_deploy_components import RULE_FILES, with_components

pytestmark = pytest.mark.slow

NAMESPACE = "honeydue"
PROM_CRDS = ("podmonitors", "servicemonitors", "prometheusrules")
COMPONENTS = ("victoria-metrics-operator", "prometheus-operator", "grafana-dashboard")


def prometheus_operator_crds() -> list[dict[str, Any]]:
    directory = PEERS_BIN / "prometheus-operator-crds"
    if not directory.is_dir():
        from tests.helpers.servers import skip_or_fail

        skip_or_fail("the Prometheus operator CRDs are not generated (scripts/go-peers.sh generates them)")
    return [yaml.safe_load((directory / f"monitoring.coreos.com_{name}.yaml").read_text()) for name in PROM_CRDS]


@pytest.fixture(scope="module")
def empty_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    require_kube()
    cluster = KubeCluster(tmp_path_factory.mktemp("empty-cluster"), honeydue=False)
    cluster.start()
    print(f"\nempty kube cluster: started in {cluster.started_in:.1f}s")
    try:
        yield cluster
    finally:
        cluster.stop()


def apply(cluster: KubeCluster, obj: dict[str, Any]) -> dict[str, Any]:
    return cluster.admin.apply(object_path(obj), obj, "kubectl", strict=True)


def established(cluster: KubeCluster, name: str) -> bool:
    crd = cluster.admin.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    return any(c["type"] == "Established" and c["status"] == "True" for c in crd.get("status", {}).get("conditions", []))


@pytest.fixture(scope="module")
def applied(empty_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    cluster = empty_cluster
    with pytest.raises(ApiError) as absent:
        cluster.admin.get(f"/api/v1/namespaces/{NAMESPACE}")
    assert absent.value.status == 404  # from nothing
    crds = prometheus_operator_crds() + vm_crds.crds()
    for crd in crds:
        apply(cluster, crd)
    for crd in crds:
        wait_until(lambda name=crd["metadata"]["name"]: established(cluster, name), 60, "CRD established")  # type: ignore[misc]
    objects = with_components(tmp_path_factory.mktemp("deploy"), *COMPONENTS)
    assert objects[0]["kind"] == "Namespace"
    for obj in objects:
        created = apply(cluster, obj)
        # New, not an object that was there: its managed fields are kubectl's apply alone, at generation 1.
        managers = {(m["manager"], m["operation"]) for m in created["metadata"]["managedFields"]}
        assert managers == {("kubectl", "Apply")}, (obj["kind"], managers)
        assert created["metadata"].get("generation", 1) == 1, obj["kind"]

    # The workloads roll out: the exporter's replica and one netcheck pod per node run (fake kubelets).
    def rolled_out() -> bool:
        deployment = cluster.deployment(NAMESPACE, "honeydue-exporter").get("status") or {}
        daemonset = cluster.admin.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/honeydue-netcheck")
        return deployment.get("availableReplicas") == 1 and (daemonset.get("status") or {}).get("numberReady") == len(
            NODE_NAMES)

    wait_until(rolled_out, 120, "the exporter Deployment available and a netcheck pod ready on every node")
    return objects


def test_every_object_of_the_overlay_is_created(empty_cluster: KubeCluster, applied: list[dict[str, Any]]) -> None:
    kinds = sorted({o["kind"] for o in applied})
    assert kinds == sorted({"Namespace", "ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding",
                            "ConfigMap", "Secret", "Service", "Deployment", "DaemonSet", "PodDisruptionBudget",
                            "PrometheusRule", "ServiceMonitor", "PodMonitor", "VMRule", "VMServiceScrape",
                            "VMPodScrape"})
    for obj in applied:
        stored = empty_cluster.admin.get(object_path(obj))
        assert stored["metadata"]["name"] == obj["metadata"]["name"]
        assert stored["metadata"].get("namespace", NAMESPACE) == NAMESPACE
        if obj["kind"] in ("ConfigMap", "Secret"):
            assert stored["data"] == obj["data"], obj["metadata"]["name"]
    # The pods run with the overlay's spec: the image, and the Secret and ConfigMap by their generated names.
    [pod] = empty_cluster.pods(NAMESPACE, labelSelector="app.kubernetes.io/component=exporter")
    deployment = next(o for o in applied if o["kind"] == "Deployment")
    assert pod["spec"]["containers"][0]["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    running = {v["name"]: v for v in pod["spec"]["volumes"]}
    rendered = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert running["config"]["configMap"]["name"] == rendered["config"]["configMap"]["name"]
    assert running["secrets"]["secret"]["secretName"] == rendered["secrets"]["secret"]["secretName"]
    assert pod["spec"]["serviceAccountName"] == "honeydue-exporter"


@pytest.mark.parametrize("kinds", [("ServiceMonitor", "PodMonitor"), ("VMServiceScrape", "VMPodScrape")],
                         ids=["prometheus", "vm"])
def test_scrape_objects_find_the_overlays_service_and_pods(empty_cluster: KubeCluster, applied: list[dict[str, Any]],
                                                           kinds: tuple[str, str]) -> None:
    """On the API server's own objects: the Service the service scrape selects, its endpoints on the named port
    (the exporter pod, ready), and the pods the pod scrape selects (one netcheck pod per node, the port named)."""
    admin = empty_cluster.admin
    service_scrape, pod_scrape = (next(o for o in applied if o["kind"] == kind) for kind in kinds)

    def selector(obj: dict[str, Any]) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(obj["spec"]["selector"]["matchLabels"].items()))

    [endpoint] = service_scrape["spec"]["endpoints"]
    services = admin.items(f"/api/v1/namespaces/{NAMESPACE}/services", labelSelector=selector(service_scrape))
    assert [s["metadata"]["name"] for s in services] == ["honeydue-exporter"]
    assert endpoint["port"] in {p["name"] for p in services[0]["spec"]["ports"]}
    slices = admin.items(f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices",
                         labelSelector="kubernetes.io/service-name=honeydue-exporter")
    ready = [(e["targetRef"]["name"], port["name"]) for s in slices for e in s.get("endpoints") or []
             for port in s.get("ports") or [] if (e.get("conditions") or {}).get("ready")]
    exporter_pods = [p["metadata"]["name"] for p in empty_cluster.pods(
        NAMESPACE, labelSelector="app.kubernetes.io/component=exporter")]
    assert ready == [(exporter_pods[0], endpoint["port"])], (ready, exporter_pods)

    [pod_endpoint] = pod_scrape["spec"]["podMetricsEndpoints"]
    pods = empty_cluster.pods(NAMESPACE, labelSelector=selector(pod_scrape))
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(NODE_NAMES)
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod_endpoint["port"] in {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports") or []}
    # The service scrape does not pick the netcheck pods, nor the pod scrape the exporter's.
    assert not set(exporter_pods) & {p["metadata"]["name"] for p in pods}


@pytest.mark.parametrize("kind", ["PrometheusRule", "VMRule"])
def test_rule_objects_come_back_with_the_rules_files_groups(empty_cluster: KubeCluster,
                                                           applied: list[dict[str, Any]], kind: str) -> None:
    stored = {o["metadata"]["name"]: empty_cluster.admin.get(object_path(o)) for o in applied if o["kind"] == kind}
    assert len(stored) == len(RULE_FILES)
    for path in RULE_FILES:
        name = "honeydue-" + path.name.removesuffix(".rules.yml").removeprefix("honeydue-")
        assert stored[name]["spec"]["groups"] == yaml.safe_load(path.read_text())["groups"], name


@pytest.mark.parametrize(("kind", "where"), [("ServiceMonitor", "endpoints"), ("VMServiceScrape", "endpoints"),
                                              ("VMPodScrape", "podMetricsEndpoints"),
                                              ("PodMonitor", "podMetricsEndpoints")])
def test_a_misspelt_field_is_refused_by_the_crd(empty_cluster: KubeCluster, applied: list[dict[str, Any]],
                                                kind: str, where: str) -> None:
    obj = copy.deepcopy(next(o for o in applied if o["kind"] == kind))
    obj["metadata"]["name"] += "-misspelt"
    obj["spec"][where][0]["scrapeTimout"] = "10s"
    with pytest.raises(ApiError) as refused:
        apply(empty_cluster, obj)
    # Server-side apply reports a field its schema lacks as a failed typed patch (an InternalError, 500).
    assert f"{where}[0].scrapeTimout: field not declared in schema" in refused.value.message, refused.value
    with pytest.raises(ApiError):
        empty_cluster.admin.get(object_path(obj))  # nothing was stored


def test_the_vmrule_schema_refuses_an_unknown_rule_field(empty_cluster: KubeCluster,
                                                          applied: list[dict[str, Any]]) -> None:
    obj = copy.deepcopy(next(o for o in applied if o["kind"] == "VMRule"))
    obj["metadata"]["name"] += "-misspelt"
    obj["spec"]["groups"][0]["rules"][0]["annotation"] = {"summary": "x"}
    with pytest.raises(ApiError) as refused:
        apply(empty_cluster, obj)
    assert "rules[0].annotation: field not declared in schema" in refused.value.message, refused.value


def test_the_pod_scrape_selects_nothing_else(applied: list[dict[str, Any]]) -> None:
    """The components' objects carry the overlay's namespace (kustomize), and their selectors name both labels."""
    for obj in applied:
        if obj["kind"] in ("ServiceMonitor", "PodMonitor", "VMServiceScrape", "VMPodScrape"):
            assert obj["metadata"]["namespace"] == NAMESPACE
            assert set(obj["spec"]["selector"]["matchLabels"]) == {"app.kubernetes.io/name", "app.kubernetes.io/component"}

