"""Kubernetes deploy artefacts: the RBAC manifest and the Alertmanager inhibit rule, checked offline
(kubernetes-validate against the 1.35 schema, amtool) and against what the probe really calls; the
exporter process keeps serving /metrics fast while the API server hangs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from exporter.drill.kubeapi import NODE_NAMES, Fault, KubeAPI
from exporter.engine import Engine
from exporter.probes import kubernetes as kube
from exporter.probes.deps import Dependencies
from tests.helpers.exporter import value
from tests.helpers.servers import free_port, require_binary, stop_process, wait_for_port
from tests.test_kubernetes import kube_config

REPO = Path(__file__).resolve().parent.parent
RBAC = REPO / "deploy" / "base" / "rbac.yaml"
ALERTMANAGER = REPO / "deploy" / "alertmanager"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "escalate", "bind", "impersonate", "*"}


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    server = KubeAPI()
    server.start()
    yield server
    server.stop()


def rbac_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RBAC.read_text()) if d]


def test_rbac_validates_against_kubernetes_1_35() -> None:
    docs = rbac_docs()
    assert [d["kind"] for d in docs] == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.35", strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):  # the validator does reject a broken role
        kubernetes_validate.validate({**docs[1], "rules": [{"apiGroups": [""], "verb": ["list"]}]}, "1.35", strict=True)


def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    found = set()
    for rule in rules:
        for verb in rule["verbs"]:
            for url in rule.get("nonResourceURLs", []):
                found.add(("url", url, verb))
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    found.add((group, resource, verb))
    return found


def needed(path: str) -> tuple[str, str, str]:
    """The RBAC grant one GET request needs (list for collections, get for one object)."""
    parts = [p for p in path.split("/") if p]
    if parts[0] in ("version", "readyz"):
        return ("url", path, "get")
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if rest[0] == "namespaces":
        rest = rest[2:]
    return (group, rest[0], "list" if len(rest) == 1 else "get")


async def test_rbac_grants_exactly_what_the_probe_calls(api: KubeAPI, tmp_path: Path) -> None:
    role = rbac_docs()[1]
    probes = kube.build(kube_config(api, tmp_path), Dependencies())
    engine = Engine(probes)
    await asyncio.gather(*(engine.run_once(p) for p in probes))
    await engine.stop()
    assert {s.status for s in engine.states.values()} == {"ok"}
    # readyz requests are logged as "<node ip>/readyz/etcd"
    used = {needed(path if path.startswith("/") else "/" + path.split("/", 1)[1]) for _, path, _, _ in api.requests}
    assert used == grants(role["rules"])
    assert {v for _, _, v in used} == {"get", "list"}
    assert not any(rule.get("resources") and "secrets" in rule["resources"] for rule in role["rules"])
    assert not {v for rule in role["rules"] for v in rule["verbs"]} & (WRITE_VERBS | {"watch"})
    names = {r for rule in role["rules"] for r in rule.get("resourceNames", [])}
    assert names == {"v1beta1.metrics.k8s.io"}
    binding = rbac_docs()[2]
    assert binding["subjects"][0]["name"] == rbac_docs()[0]["metadata"]["name"]


def test_alertmanager_config_checks(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    out = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER / "alertmanager.yml")], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stdout + out.stderr
    full = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text())
    alone = yaml.safe_load((ALERTMANAGER / "inhibit-rules.yml").read_text())
    assert alone["inhibit_rules"] == full["inhibit_rules"]


def _post(url: str, body: Any) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_cordoned_node_inhibits_its_node_alerts(tmp_path: Path) -> None:
    """A real Alertmanager with the shipped config: a cordoned node's NotReady is muted, others are not."""
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={ALERTMANAGER / 'alertmanager.yml'}",
            f"--storage.path={tmp_path}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 15)
        n1, n2, _ = NODE_NAMES

        def alert(name: str, layer: str, **labels: str) -> dict[str, Any]:
            return {
                "labels": {"alertname": name, "layer": layer, "severity": "warning", **labels},
                "annotations": {"summary": name},
            }

        _post(
            f"http://127.0.0.1:{port}/api/v2/alerts",
            [
                alert("KubeNodeCordoned", "planned", node=n1),
                alert("KubeNodeNotReady", "node", node=n1),
                alert("KubeApiserverEtcdCheckFailing", "k3s", node=n1),
                alert("KubeNodeNotReady", "node", node=n2),
                # (not KubeEtcdQuorumLost: since issue 11 it mutes the cluster's other alerts itself)
                alert("KubeAPIUnreachable", "node"),
                alert("KubeNodeCordonedTooLong", "planned", node=n1),
            ],
        )
        deadline = time.monotonic() + 10
        state: dict[tuple[str, str], str] = {}
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/alerts", timeout=5) as response:
                alerts = json.loads(response.read())
            state = {(a["labels"]["alertname"], a["labels"].get("node", "")): a["status"]["state"] for a in alerts}
            if len(state) == 6 and "unprocessed" not in state.values():
                break
            time.sleep(0.2)
        assert state == {
            ("KubeNodeCordoned", n1): "active",
            ("KubeNodeNotReady", n1): "suppressed",
            ("KubeApiserverEtcdCheckFailing", n1): "suppressed",
            ("KubeNodeNotReady", n2): "active",
            ("KubeAPIUnreachable", ""): "active",
            ("KubeNodeCordonedTooLong", n1): "active",
        }
    finally:
        stop_process(proc)


def test_exporter_keeps_serving_while_api_hangs(api: KubeAPI, tmp_path: Path, exporter_factory: Any) -> None:
    api.faults["*"] = Fault("hang")
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    exporter = exporter_factory(
        env={
            "HONEYDUE_REDIS__ENABLED": "false",
            "HONEYDUE_POSTGRES__POOLER__ENABLED": "false",
            "HONEYDUE_POSTGRES__DIRECT__ENABLED": "false",
            "HONEYDUE_KUBERNETES__SOURCE": "kubeconfig",
            "HONEYDUE_KUBERNETES__KUBECONFIG": str(kubeconfig),
            "HONEYDUE_KUBERNETES__APISERVER_PORT": str(api.node_port),
            "HONEYDUE_KUBERNETES__INTERVAL": "3",
            "HONEYDUE_KUBERNETES__TIMEOUT": "2",
            "HONEYDUE_KUBERNETES__CONNECT_TIMEOUT": "0.5",
            "HONEYDUE_KUBERNETES__READ_TIMEOUT": "1",
        }
    )
    exporter.start()
    exporter.wait_for("honeydue_kube_api_up", 0, 10)
    # Scrapes are answered from memory while every API call hangs.
    slowest = 0.0
    for _ in range(20):
        started = time.monotonic()
        samples = exporter.metrics()
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 1.0, slowest
    assert value(samples, "honeydue_kube_config_info", source="kubeconfig") == 1
    assert value(samples, "honeydue_probe_error_info", probe="kubernetes_nodes", reason="timeout") == 1
    assert value(samples, "honeydue_kube_resource_error_info", resource="nodes", reason="timeout") == 1
    assert value(samples, "honeydue_exporter_build_info") == 1
    # The API comes back: the next run reports it.
    api.faults.clear()
    exporter.wait_for("honeydue_kube_api_up", 1, 10)
    exporter.wait_for("honeydue_kube_control_plane_nodes_ready", 3, 10)
    assert exporter.get("/healthz")[0] == 200
