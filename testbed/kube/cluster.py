"""The whole test cluster: the control plane, a fake kubelet per server node, the binder, honeyDue's
workloads, and the exporter's identity from deploy/base/rbac.yaml (applied as written).

Shared by the tests (tests/test_kubernetes*.py) and `honeydue-exporter drill`. `start()` returns once
every node is Ready, every deployment available and the metrics APIService Available; `stop()`
ends every process and thread it started. Failures are injected through the methods at the end,
each with its way back.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.kube import workloads
from testbed.kube.binder import Binder
from testbed.kube.control_plane import (
    AUDIENCE,
    K3S_VERSION,
    NODE_IPS,
    NODE_NAMES,
    ControlPlane,
    ControlPlaneTiming,
    wait_until,
)
from testbed.kube.kubelet import FakeKubelet, Runtime
from testbed.kube.metrics_server import MetricsServer
from testbed.kube.rest import JSON, ApiError, Rest, object_path
from testbed.kube.tunnel import Tunnel
from testbed.paths import REPO

log = logging.getLogger("testbed.kube")

RBAC = REPO / "deploy" / "base" / "rbac.yaml"
NETCHECK_RBAC = REPO / "deploy" / "base" / "netcheck-rbac.yaml"
EXPORTER_NAMESPACE = "honeydue"
EXPORTER_SERVICE_ACCOUNT = "honeydue-exporter"
NETCHECK_SERVICE_ACCOUNT = "honeydue-netcheck"
NAMESPACED_KINDS = ("ServiceAccount", "Role", "RoleBinding")
# Where every single-replica workload without a nodeSelector runs after start() and reset(): N1, the node
# no scenario fails (NIC failures hit N3 and the Redis node N2, drains N3). A scenario's incident then
# knows what the failed node carried (CoreDNS on a failed node is a page of its own: coredns-down).
HOME_NODE = 0


@dataclass(frozen=True)
class ClusterTiming:
    control_plane: ControlPlaneTiming = field(default_factory=ControlPlaneTiming)
    progress_deadline: int = 12  # the Deployment's progressDeadlineSeconds (default 600)
    lease_interval: float = 1.0  # kubelet Lease renewal (default 10 s)


def load_manifests(path: Path) -> list[JSON]:
    """The documents of a manifest file, in namespace honeydue where they name none, as deploy/base's
    kustomization (`namespace: honeydue`) puts them: namespaced objects and their ServiceAccount subjects."""
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for doc in docs:
        if doc.get("kind") in NAMESPACED_KINDS:
            doc["metadata"].setdefault("namespace", EXPORTER_NAMESPACE)
        for subject in doc.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                subject.setdefault("namespace", EXPORTER_NAMESPACE)
    return docs


class KubeCluster:
    """Start with `start()`, inject failures through the methods, `stop()` in a finally."""

    def __init__(self, workdir: Path | None = None, timing: ClusterTiming | None = None,
                 honeydue: bool = True) -> None:
        """`honeydue=False`: an empty cluster (nodes only, no honeydue namespace, workloads or RBAC), for applying
        the deploy overlay to it from nothing (tests/test_kube_overlay.py)."""
        self.honeydue = honeydue
        self.timing = timing or ClusterTiming()
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="honeydue-kube-"))
        self._own_dir = workdir is None
        self.runtime = Runtime()
        self.tunnel = Tunnel(self.runtime)
        self.control_plane = ControlPlane(self.dir / "control-plane", self.timing.control_plane, self.tunnel.socket)
        cert = self.control_plane.ca.issue("metrics-server", "metrics-server", dns=("metrics-server.kube-system.svc",),
                                           server=True)
        admin_kubeconfig = self.control_plane.kubeconfig(self.dir / "metrics-server.kubeconfig",
                                                         self.control_plane.admin_cert)
        self.runtime.servers[workloads.METRICS_SERVER_IMAGE] = lambda: MetricsServer(
            cert, admin_kubeconfig, self.dir / "metrics-server")
        self.kubelets: list[FakeKubelet] = []
        self.binder: Binder | None = None
        self._admin: Rest | None = None
        self._stopped = False
        self.started_in = 0.0

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def admin(self) -> Rest:
        if self._admin is None:
            self._admin = self.control_plane.admin()
        return self._admin

    @property
    def api_port(self) -> int:
        return self.control_plane.api_port

    def start(self, progress: Callable[[str], None] = lambda _: None) -> None:
        started = time.monotonic()
        try:
            self.control_plane.start(progress)
            progress("fake kubelets on the three server nodes, the binder")
            for i, (name, ip) in enumerate(zip(NODE_NAMES, NODE_IPS, strict=True)):
                cert = self.control_plane.client_cert(f"kubelet-{i}", f"system:node:{name}", ("system:nodes",))
                rest = Rest(self.control_plane.api_url(i), self.control_plane.ca.cert_path, cert.cert, cert.key,
                            timeout=2.0)
                serving = self.control_plane.ca.issue(f"kubelet-{i}-serving", name, ips=(ip,), dns=(name,),
                                                      server=True)
                kubelet = FakeKubelet(name, ip, i, rest, self.runtime, K3S_VERSION,
                                      lease_interval=self.timing.lease_interval, serving_cert=serving)
                self.kubelets.append(kubelet)
                kubelet.start()
            self._label_servers()
            self.binder = Binder(self.control_plane.admin())
            self.binder.start()
            if not self.honeydue:
                wait_until(lambda: all(self.node_condition(i) == "True" for i in range(len(NODE_NAMES))), 180,
                           "nodes Ready")
                self.started_in = time.monotonic() - started
                return
            progress("honeyDue's workloads and the exporter's RBAC")
            for obj in workloads.honeydue(self.timing.progress_deadline):
                self.apply(obj)
            self.apply_rbac(load_manifests(RBAC))
            self.apply_rbac(load_manifests(NETCHECK_RBAC))
            self.wait_healthy(180)
            self._home_singles(180)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started

    def stop(self) -> None:
        """Stop the kubelets, binder and control plane (never raises); remove the directory if ours."""
        if self._stopped:
            return
        self._stopped = True
        for kubelet in self.kubelets:
            with contextlib.suppress(Exception):
                kubelet.close()
        if self.binder is not None:
            with contextlib.suppress(Exception):
                self.binder.stop()
        if self._admin is not None:
            self._admin.close()
        self.control_plane.stop()
        self.tunnel.close()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _label_servers(self) -> None:
        """What k3s' supervisor does for a server node (a kubelet may not set node-role labels itself)."""
        for i, name in enumerate(NODE_NAMES):
            labels = {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/etcd": "true"}
            if i == 1:
                labels[workloads.REDIS_LABEL[0]] = workloads.REDIS_LABEL[1]
            path = f"/api/v1/nodes/{name}"
            wait_until(lambda path=path: bool(self.admin.get(path)), 30, f"node {name} registered")  # type: ignore[misc]
            self.admin.patch(path, {"metadata": {"labels": labels}})

    # --- objects --------------------------------------------------------------------------------
    def apply(self, manifest: JSON, dry_run: bool = False, field_manager: str = "honeydue-drill") -> JSON:
        """Server-side apply of one object as the admin."""
        return self.admin.apply(object_path(manifest), manifest, field_manager, dry_run=dry_run)

    def apply_rbac(self, docs: list[JSON]) -> None:
        """deploy/base/rbac.yaml as written (or a variant of it), as `kubectl apply --server-side` does."""
        for doc in docs:
            self.apply(doc, field_manager="kubectl")

    def exporter_token(self, expiration: int = 3600, service_account: str = EXPORTER_SERVICE_ACCOUNT) -> str:
        """A token of the exporter's (or netcheck's) ServiceAccount, as the kubelet projects into its pod."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [AUDIENCE], "expirationSeconds": expiration}}
        path = f"/api/v1/namespaces/{EXPORTER_NAMESPACE}/serviceaccounts/{service_account}/token"
        return str(self.admin.create(path, body)["status"]["token"])

    def service_account_dir(self, directory: Path, service_account: str = EXPORTER_SERVICE_ACCOUNT) -> Path:
        """The files a pod of the ServiceAccount finds in /var/run/secrets/kubernetes.io/serviceaccount."""
        directory.mkdir(parents=True, exist_ok=True)
        token = self.exporter_token(service_account=service_account)
        for name, data in (("token", token), ("ca.crt", self.control_plane.ca.pem.decode()),
                           ("namespace", EXPORTER_NAMESPACE)):
            path = directory / name
            path.touch(mode=0o600, exist_ok=True)
            path.write_text(data)
        return directory

    # --- reading --------------------------------------------------------------------------------
    def node(self, index: int) -> JSON:
        return self.admin.get(f"/api/v1/nodes/{NODE_NAMES[index]}")

    def node_condition(self, index: int, kind: str = "Ready") -> str:
        conditions = (self.node(index).get("status") or {}).get("conditions") or []
        return str(next((c.get("status") for c in conditions if c.get("type") == kind), "Unknown"))

    def pods(self, namespace: str, **params: str) -> list[JSON]:
        return self.admin.items(f"/api/v1/namespaces/{namespace}/pods", **params)

    def deployment(self, namespace: str, name: str) -> JSON:
        return self.admin.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")

    def apiservice_available(self) -> bool:
        body = self.admin.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{workloads.METRICS_API}")
        return any(c.get("type") == "Available" and c.get("status") == "True"
                   for c in (body.get("status") or {}).get("conditions") or [])

    def healthy(self) -> bool:
        """Every node Ready and untainted, every deployment complete and available, metrics API Available."""
        for i in range(len(NODE_NAMES)):
            node = self.node(i)
            if self.node_condition(i) != "True" or (node.get("spec") or {}).get("taints"):
                return False
            if (node.get("spec") or {}).get("unschedulable"):
                return False
        for ns, name, _, replicas in workloads.DEPLOYMENTS:
            status = self.deployment(ns, name).get("status") or {}
            if any(status.get(k) != replicas for k in ("availableReplicas", "updatedReplicas", "readyReplicas",
                                                          "replicas")):
                return False
        for ns in ("honeydue", "kube-system"):
            for pod in self.pods(ns):
                status = pod.get("status") or {}
                if pod["metadata"].get("deletionTimestamp") or status.get("phase") != "Running":
                    return False
        return self.apiservice_available()

    def wait_healthy(self, timeout: float) -> float:
        return wait_until(self.healthy, timeout, "cluster healthy", step=0.5)

    def reset(self, timeout: float = 120) -> float:
        """Back to the healthy cluster `start()` made, whatever a scenario left: every process running,
        kubelets as started, nodes uncordoned and labelled as at start, images and the registry as
        released, Failed pods deleted, restarted containers replaced. Returns the seconds it took."""
        started = time.monotonic()
        with self.runtime.lock:
            self.runtime.crashing.clear()
            self.runtime.unpullable.clear()
            self.runtime.cpu.clear()
        for i, etcd in enumerate(self.control_plane.etcd):
            if not etcd.running:
                self.control_plane.start_etcd(i)
        for i, kubelet in enumerate(self.kubelets):
            self.control_plane.thaw_node(i)
            kubelet.free_disk()
            kubelet.set_version(K3S_VERSION)
            kubelet.start()
        for i in range(len(self.control_plane.etcd)):
            self.control_plane.wait_etcd_healthy(i, 60)
        wait_until(lambda: all(self.node_condition(i) == "True" for i in range(len(NODE_NAMES))), timeout,
                   "nodes Ready again")
        for i in range(len(NODE_NAMES)):
            node = self.node(i)
            if (node.get("spec") or {}).get("unschedulable"):
                self.cordon(i, False)
            redis = workloads.REDIS_LABEL[1] if i == 1 else None
            if (node["metadata"].get("labels") or {}).get(workloads.REDIS_LABEL[0]) != redis:
                self.label_node(i, workloads.REDIS_LABEL[0], redis)
        for ns, name, image, _ in workloads.DEPLOYMENTS:
            template = self.deployment(ns, name)["spec"]["template"]["spec"]["containers"][0]
            if template["image"] != image:
                self.set_image(ns, name, image)
        for ns in ("honeydue", "kube-system"):
            self.delete_failed_pods(ns)
            for pod in self.pods(ns):
                statuses = (pod.get("status") or {}).get("containerStatuses") or []
                if any(c.get("restartCount") for c in statuses):
                    with contextlib.suppress(ApiError):
                        self.admin.delete(f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}")
        self.wait_healthy(timeout)
        self._home_singles(timeout)
        self._spread_api(timeout)
        return time.monotonic() - started

    def _away_singles(self) -> list[JSON]:
        """Pods of single-replica Deployments (no nodeSelector) that run elsewhere than HOME_NODE."""
        home = NODE_NAMES[HOME_NODE]
        away = []
        for ns, name, _, replicas in workloads.DEPLOYMENTS:
            if replicas != 1:
                continue
            for pod in self.pods(ns, labelSelector=f"app.kubernetes.io/name={name}"):
                spec = pod.get("spec") or {}
                if not spec.get("nodeSelector") and spec.get("nodeName") != home:
                    away.append(pod)
        return away

    def _home_singles(self, timeout: float) -> None:
        """Every single replica back on HOME_NODE: cordon the other nodes, delete the pods away from it (their
        ReplicaSets replace them and the binder has one node left), wait for them there, uncordon."""
        away = self._away_singles()
        if not away:
            return
        others = [i for i in range(len(NODE_NAMES)) if i != HOME_NODE]
        for i in others:
            self.cordon(i)
        try:
            for pod in away:
                meta = pod["metadata"]
                with contextlib.suppress(ApiError):
                    self.admin.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}")

            def home() -> bool:
                if self._away_singles():
                    return False
                return all((self.deployment(ns, name).get("status") or {}).get("availableReplicas") == replicas
                           for ns, name, _, replicas in workloads.DEPLOYMENTS)
            wait_until(home, timeout, f"single replicas running on {NODE_NAMES[HOME_NODE]}", step=0.5)
        finally:
            for i in others:
                self.cordon(i, False)
        self.wait_healthy(timeout)

    def _spread_api(self, timeout: float) -> None:
        """One api pod per node again (as at start) after a scenario moved them: delete a doubled one, the
        ReplicaSet replaces it and the binder puts it on the node without one."""
        for _ in range(len(NODE_NAMES)):
            by_node: dict[str, list[str]] = {}
            for pod in self.pods("honeydue", labelSelector="app.kubernetes.io/name=api"):
                by_node.setdefault(str(pod["spec"].get("nodeName")), []).append(pod["metadata"]["name"])
            doubled = [names for names in by_node.values() if len(names) > 1]
            if not doubled:
                return
            with contextlib.suppress(ApiError):
                self.admin.delete(f"/api/v1/namespaces/honeydue/pods/{doubled[0][0]}")
            self.wait_healthy(timeout)

    # --- failures and their way back -------------------------------------------------------------
    def nic_down(self, index: int) -> None:
        """The node's NIC fails: its kubelet goes silent, its etcd member and API server stop answering."""
        self.kubelets[index].stop()
        self.control_plane.freeze_node(index)

    def nic_up(self, index: int) -> None:
        self.control_plane.thaw_node(index)
        self.kubelets[index].start()

    def lose_quorum(self, members: tuple[int, ...] = (1, 2)) -> None:
        """Two of three etcd members die: the survivor cannot elect a leader, writes and quorum reads fail."""
        self.control_plane.kill_etcd(*members)

    def restore_quorum(self, members: tuple[int, ...] = (1, 2)) -> None:
        for i in members:
            self.control_plane.start_etcd(i)
        for i in members:
            self.control_plane.wait_etcd_healthy(i, 60)

    def use_cpu(self, image: str, cores: float | None) -> None:
        """Every container of `image` uses `cores` of CPU (a hot loop, a traffic spike); None: idle again."""
        self.runtime.use_cpu(image, cores)

    def cordon(self, index: int, on: bool = True) -> None:
        self.admin.patch(f"/api/v1/nodes/{NODE_NAMES[index]}", {"spec": {"unschedulable": on or None}})

    def drain(self, index: int) -> list[str]:
        """`kubectl drain`: cordon, then evict every pod on the node (DaemonSet pods excepted) via the eviction API."""
        self.cordon(index)
        evicted = []
        for ns in ("honeydue", "kube-system"):
            for pod in self.pods(ns, fieldSelector=f"spec.nodeName={NODE_NAMES[index]}"):
                owners = pod["metadata"].get("ownerReferences") or []
                if any(o.get("kind") == "DaemonSet" for o in owners):
                    continue
                name = pod["metadata"]["name"]
                body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}}
                self.admin.create(f"/api/v1/namespaces/{ns}/pods/{name}/eviction", body)
                evicted.append(f"{ns}/{name}")
        return evicted

    def set_image(self, namespace: str, deployment: str, image: str) -> None:
        """A rollout: the Deployment's pod template gets a new image (`kubectl set image`)."""
        self.admin.patch(
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}",
            {"spec": {"template": {"spec": {"containers": [{"name": deployment, "image": image}]}}}},
        )

    def label_node(self, index: int, key: str, value: str | None) -> None:
        self.admin.patch(f"/api/v1/nodes/{NODE_NAMES[index]}", {"metadata": {"labels": {key: value}}})

    def delete_failed_pods(self, namespace: str) -> None:
        """`kubectl delete pod --field-selector=status.phase=Failed` (what the runbook says after evictions)."""
        for pod in self.pods(namespace, fieldSelector="status.phase=Failed"):
            with contextlib.suppress(ApiError):
                self.admin.delete(f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}")

    def restart_rollout(self, namespace: str, deployment: str) -> None:
        """`kubectl rollout restart`: a new template annotation, so every pod is replaced."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        patch: dict[str, Any] = {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": stamp}}}}}
        self.admin.patch(f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}", patch)
