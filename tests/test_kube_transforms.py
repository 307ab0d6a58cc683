"""The Kubernetes transforms (exporter/probes/kube_transforms.py) against tables of API objects and the exact
exposition each must give (tests/kube_tables/*.yml), as kube-state-metrics tests its generators: object in,
every sample out, nothing else. The objects are in the JSON shape k3s v1.35 lists them (trimmed to what
the case is about, plus some of what real replies carry beside it).

What a real control plane shows beyond shapes (how a state follows from a failure, RBAC, TLS, paging,
quorum, eviction) is tested on one in tests/test_kubernetes*.py.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.exporter import Metrics, parse_metrics

from exporter.config import KubernetesConfig
from exporter.probes import kube_transforms as t
from exporter.samples import Samples

TABLES = Path(__file__).resolve().parent / "kube_tables"
DEFAULTS = KubernetesConfig()
NAMESPACE = "honeydue"


def per_node(namespace: str) -> list[str]:
    """The shipped node_workloads of `namespace`, as the pods probe reads them."""
    return sorted(wl for ns, _, wl in (item.partition("/") for item in DEFAULTS.node_workloads) if ns == namespace)


def table(name: str) -> list[Any]:
    cases = yaml.safe_load((TABLES / f"{name}.yml").read_text(encoding="utf-8"))
    return [pytest.param(case, id=case["case"]) for case in cases]


def exposed(*parts: Samples) -> Metrics:
    """Every sample of `parts` as the exposition gives it; a series twice is an error of the transform."""
    out: Metrics = {}
    for samples in parts:
        for family in samples.families():
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in out, f"{key} exposed twice"
                out[key] = sample.value
    return out


def expected(case: dict[str, Any]) -> Metrics:
    return parse_metrics(case["want"])


def test_the_shipped_config_is_what_the_tables_assume() -> None:
    assert DEFAULTS.control_plane_label == "node-role.kubernetes.io/control-plane"
    assert DEFAULTS.redis_node_label == "honeydue/redis=true"
    assert DEFAULTS.workload_label == "app.kubernetes.io/name"
    assert (per_node("honeydue"), per_node("kube-system")) == (["api"], ["traefik"])


@pytest.mark.parametrize("case", table("nodes"))
def test_nodes(case: dict[str, Any]) -> None:
    view = t.nodes_samples(case["objects"], DEFAULTS.control_plane_label, DEFAULTS.redis_node_label,
                           case.get("etcd_quorum"))
    assert exposed(view.samples) == expected(case)
    assert view.servers == [tuple(s) for s in case["servers"]]
    assert view.quorum == case["quorum"]


@pytest.mark.parametrize("case", table("pods"))
def test_pods(case: dict[str, Any]) -> None:
    ns = case.get("namespace", NAMESPACE)
    samples, tally = t.pods_samples(ns, case["objects"], DEFAULTS.workload_label, per_node(ns))
    assert exposed(samples, t.pod_totals(ns, tally, per_node(ns))) == expected(case)
    # Read a pod per page (the probe turns each page into samples before reading the next): the same result.
    paged, total = Samples(), t.PodTally()
    for pod in case["objects"]:
        page, counted = t.pods_samples(ns, [pod], DEFAULTS.workload_label, per_node(ns))
        paged.extend(page)
        total.update(counted)
    assert exposed(paged, t.pod_totals(ns, total, per_node(ns))) == expected(case)


@pytest.mark.parametrize("case", table("deployments"))
def test_deployments(case: dict[str, Any]) -> None:
    assert exposed(t.deployment_samples(NAMESPACE, case["name"], case["object"])) == expected(case)


@pytest.mark.parametrize("case", table("apiservices"))
def test_apiservices(case: dict[str, Any]) -> None:
    assert exposed(t.apiservice_samples(case["name"], case["object"])) == expected(case)


@pytest.mark.parametrize("case", table("pod_metrics"))
def test_pod_metrics(case: dict[str, Any]) -> None:
    samples, window = t.pod_usage_samples(NAMESPACE, case["objects"])
    assert exposed(samples, t.window_samples(NAMESPACE, window)) == expected(case)


def test_a_pod_metrics_container_that_is_not_an_object_is_a_protocol_error() -> None:
    """The probe base turns the TypeError into resource_up 0, reason protocol (tests/test_bad_replies.py)."""
    with pytest.raises(TypeError):
        t.pod_usage_samples(NAMESPACE, [{"metadata": {"name": "p"}, "containers": ["api"]}])


def test_readyz_answers() -> None:
    servers = [("n1", "10.0.0.2"), ("n2", "10.0.0.3"), ("n3", "10.0.0.4")]
    answers = [(True, True, ""), (True, False, ""), (False, False, "timeout")]
    assert exposed(t.readyz_samples(servers, answers)) == parse_metrics("""
        honeydue_kube_apiserver_readyz_up{node="n1"} 1
        honeydue_kube_apiserver_etcd_ready{node="n1"} 1
        honeydue_kube_apiserver_readyz_up{node="n2"} 1
        honeydue_kube_apiserver_etcd_ready{node="n2"} 0
        honeydue_kube_apiserver_readyz_up{node="n3"} 0
        honeydue_kube_apiserver_etcd_ready{node="n3"} 0
        honeydue_kube_apiserver_readyz_error_info{node="n3",reason="timeout"} 1
    """.replace("        ", ""))


def test_version() -> None:
    body = {"major": "1", "minor": "35", "gitVersion": "v1.35.4+k3s1", "gitCommit": "4d2a0b6c", "platform": "linux/amd64"}
    assert exposed(t.version_samples("in-cluster", body)) == parse_metrics(
        'honeydue_kube_config_info{source="in-cluster"} 1\nhoneydue_kube_api_up 1\n'
        'honeydue_kube_apiserver_version_info{version="v1.35.4+k3s1"} 1\n')
    assert exposed(t.version_samples("kubeconfig", {})) == parse_metrics(
        'honeydue_kube_config_info{source="kubeconfig"} 1\nhoneydue_kube_api_up 1\n'
        'honeydue_kube_apiserver_version_info{version="unknown"} 1\n')


@pytest.mark.parametrize(("text", "value"), [
    ("123456789n", 0.123456789), ("250m", 0.25), ("1", 1.0), ("1.5", 1.5), ("64Mi", 64 * 2**20),
    ("50331648", 50331648.0), ("7934180Ki", 7934180 * 1024), ("2k", 2000.0), ("1e3", 1000.0), ("0", 0.0),
])
def test_parse_quantity(text: str, value: float) -> None:
    assert math.isclose(t.parse_quantity(text), value, rel_tol=1e-12)


@pytest.mark.parametrize("text", ["", "m", "12x", "-1", "1.2.3", "NaN", "inf", "12 m", None, {"cpu": 1}])
def test_parse_quantity_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        t.parse_quantity(text)


def test_parse_duration() -> None:
    assert t.parse_duration("10.5s") == 10.5
    assert t.parse_duration("1m0s") == 60
    assert t.parse_duration("1h2m3s") == 3723
    assert t.parse_duration("250ms") == 0.25
    assert t.parse_duration("soon") is None and t.parse_duration(None) is None
