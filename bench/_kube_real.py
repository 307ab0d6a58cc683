"""The real Kubernetes back end of `python -m bench scale`: the control plane of testbed/kube, grown
to each ClusterSize.

One cluster serves the whole sweep (about 10 s to start, ~1.1 GiB): etcd x3, a kube-apiserver per server
node on 127.0.0.2-4 with TLS, kube-controller-manager, the three fake kubelets and the binder, with
honeyDue's workloads and deploy/base/rbac.yaml applied. Each point reconciles it to its size with
concurrent plain POSTs and DELETEs as the admin (one worker thread per connection, spread over the
three API servers), so only what changes between points is written:

- nodes: the three server nodes plus synthetic worker nodes `bench-node-NNN`, registered as a kubelet
  registers (Node with its status: conditions, addresses, nodeInfo) and kept alive by a Lease in
  kube-node-lease renewed every 10 s by one thread, as kubelets renew theirs. No kubelet process or
  pod loop per synthetic node (100 pod loops polling every 0.5 s would load the machine more than the
  exporter does); the controllers run with their default clocks (node-monitor grace 50 s,
  toleration 300 s), so a synthetic node stays Ready as long as its Lease is renewed. The svclb
  DaemonSet's pod on a synthetic node gets a Running status from the bench, as its kubelet would post.
- pods in `honeydue` (counting the seven pods of honeyDue's own deployments) and in `batch-jobs` (the
  namespace nobody watches): bound at creation (spec.nodeName, round robin over the nodes), then
  Running/Ready through the status subresource. The three fake kubelets list only their own cluster's
  pods (a label selector excluding the bench's), so 10,000 pods on their nodes do not cost a
  10,000-pod LIST every 0.5 s in this process.
- deployments in `honeydue`: honeyDue's five (the ones the exporter watches) plus `bench-svc-NNN` with
  0 replicas (the deployment controller still makes their ReplicaSets and status).

Load: the exporter talks to the first node's API server (and /readyz/etcd on all three) with the token
of its ServiceAccount, bound by deploy/base/rbac.yaml. The API server's metrics carry no user label,
so `load()` counts requests from the audit logs (the control plane audits exactly the honeydue
service accounts' requests) and bytes from apiserver_response_sizes_sum of the request shapes only the
exporter makes (namespaced LIST of pods and deployments, LIST of nodes, GET of the APIService), summed
over the three API servers' /metrics.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import urllib3

from testbed.kube import workloads
from testbed.kube.cluster import ClusterTiming, KubeCluster
from testbed.kube.control_plane import K3S_VERSION, NODE_IPS, NODE_NAMES, ControlPlaneTiming, wait_until
from testbed.kube.kubelet import micro_time, rfc3339
from testbed.kube.rest import JSON, MERGE, ApiError, Rest
from testbed.kubeconfig import write_kubeconfig

from bench._kube import NAMESPACE, OTHER_NAMESPACE, ClusterSize, KubeTarget

log = logging.getLogger("bench.kube")

BENCH_LABEL = "honeydue.bench/synthetic"
EXPORTER_USER = "system:serviceaccount:honeydue:honeydue-exporter"
# The controllers' default clocks: synthetic nodes live by their Lease alone, renewed every LEASE_RENEW.
TIMING = ClusterTiming(
    control_plane=ControlPlaneTiming(node_monitor_period=5.0, node_monitor_grace_period=50.0,
                                     node_startup_grace_period=60.0, toleration_seconds=300),
    lease_interval=10.0,
)
LEASE_RENEW = 10.0
THREADS = 12
RETRIED = (429, 500, 503, 504)
# apiserver_response_sizes series that, while the bench measures, only the exporter's requests produce:
# (verb, resource, scope, subresource); non-resource paths (/readyz/etcd, /version) are in `subresource`
EXPORTER_SHAPES = {("LIST", "pods", "namespace", ""), ("LIST", "deployments", "namespace", ""),
                   ("LIST", "nodes", "cluster", ""), ("GET", "apiservices", "resource", ""),
                   ("GET", "", "", "/readyz"), ("GET", "", "", "/version")}
IMAGE = "git.example.com/honeydue/{app}:3f9a1c2"


class _OwnPodsOnly(Rest):
    """A fake kubelet's client that lists only the cluster's own pods (not the bench's synthetic ones)."""

    def items(self, path: str, **params: str) -> list[JSON]:
        if path == "/api/v1/pods":
            params["labelSelector"] = f"!{BENCH_LABEL}"
        return super().items(path, **params)


class RealCluster:
    """The control plane, grown or shrunk to each ClusterSize; `close()` stops it (scale.main does)."""

    def __init__(self) -> None:
        self.cluster: KubeCluster | None = None
        self.nodes: list[str] = []  # synthetic nodes present
        self.pods: dict[str, dict[str, str]] = {NAMESPACE: {}, OTHER_NAMESPACE: {}}  # name -> node
        self.deployments: set[str] = set()
        self.own_pods = 0  # honeyDue's own pods in the watched namespace
        self._local = threading.local()
        self._clients: list[Rest] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="bench-kube")
        self._stop = threading.Event()
        self._leases: threading.Thread | None = None
        self._kubeconfig: Path | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="bench-kube-"))

    # --- lifecycle ---------------------------------------------------------------------------------
    def _start(self) -> KubeCluster:
        started = time.monotonic()
        cluster = KubeCluster(timing=TIMING)
        cluster.start(lambda step: print(f"  kube cluster: {step}", flush=True))
        self.cluster = cluster
        for i, kubelet in enumerate(cluster.kubelets):
            cert = cluster.control_plane.client_cert(f"bench-kubelet-{i}", f"system:node:{NODE_NAMES[i]}",
                                                     ("system:nodes",))
            kubelet.rest = _OwnPodsOnly(cluster.control_plane.api_url(i), cluster.control_plane.ca.cert_path,
                                        cert.cert, cert.key, timeout=2.0)
        self.own_pods = len(cluster.pods(NAMESPACE))
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OTHER_NAMESPACE}})
        wait_until(lambda: bool(cluster.admin.get(f"/api/v1/namespaces/{OTHER_NAMESPACE}/serviceaccounts/default")),
                   60, f"ServiceAccount default in {OTHER_NAMESPACE}")
        self._kubeconfig = self._write_kubeconfig(cluster)
        self._leases = threading.Thread(target=self._renew_leases, name="bench-leases", daemon=True)
        self._leases.start()
        print(f"  kube cluster: started in {time.monotonic() - started:.1f} s", flush=True)
        return cluster

    def close(self) -> None:
        self._stop.set()
        if self._leases is not None:
            self._leases.join(15)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for rest in self._clients:
            rest.close()
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None

    def _write_kubeconfig(self, cluster: KubeCluster) -> Path:
        """The exporter's identity: its ServiceAccount's token (rbac.yaml's grants), the run's CA, node 1's API."""
        return write_kubeconfig(self._dir / "kubeconfig", cluster.control_plane.api_url(0),
                                ca=cluster.control_plane.ca.cert_path,
                                token=cluster.exporter_token(expiration=6 * 3600), namespace=NAMESPACE)

    # --- one admin connection per worker thread ----------------------------------------------------
    def _rest(self) -> Rest:
        rest: Rest | None = getattr(self._local, "rest", None)
        if rest is None:
            assert self.cluster is not None
            with self._lock:
                rest = self.cluster.control_plane.admin(len(self._clients) % len(NODE_IPS), timeout=60)
                self._clients.append(rest)
            self._local.rest = rest
        return rest

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
              ok: tuple[str, ...] = ()) -> JSON:
        """One request with retries on overload; `ok` reasons (AlreadyExists, NotFound) count as done."""
        for attempt in range(6):
            try:
                return self._rest().request(method, path, body, content_type=content_type)
            except ApiError as exc:
                if exc.reason in ok:
                    return {}
                if exc.status not in RETRIED or attempt == 5:
                    raise
            except (OSError, urllib3.exceptions.HTTPError):
                if attempt == 5:
                    raise
            time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _each(self, fn: Callable[[Any], object], items: Iterable[Any]) -> int:
        done = 0
        for _ in self._pool.map(fn, list(items)):
            done += 1
        return done

    # --- reconciling to a size ---------------------------------------------------------------------
    def reconcile(self, size: ClusterSize) -> float:
        """Grow or shrink the cluster to `size`; returns the seconds it took."""
        started = time.monotonic()
        cluster = self.cluster or self._start()
        want_nodes = [f"bench-node-{i:03d}" for i in range(len(NODE_NAMES), size.nodes)]
        all_nodes = [*NODE_NAMES[:size.nodes], *want_nodes]
        gone = [n for n in self.nodes if n not in want_nodes]
        # pods first: nothing stays bound to a node about to go, every pod on its round-robin node
        targets = {NAMESPACE: max(0, size.pods - self.own_pods), OTHER_NAMESPACE: size.other_pods}
        for ns, count in targets.items():
            want = {f"bench-{i:05d}": all_nodes[i % len(all_nodes)] for i in range(count)}
            have = self.pods[ns]
            stale = [name for name, node in have.items() if want.get(name) != node]
            self._each(self._delete_pod, [f"/api/v1/namespaces/{ns}/pods/{name}" for name in stale])
            for name in stale:
                del have[name]
        for node in gone:  # the svclb DaemonSet pod bound there, then the node and its Lease
            for pod in cluster.admin.items("/api/v1/pods", fieldSelector=f"spec.nodeName={node}"):
                meta = pod["metadata"]
                self._delete_pod(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}")
        self._each(lambda node: (self._call("DELETE", f"/api/v1/nodes/{node}", ok=("NotFound",)),
                                 self._call("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/"
                                                      f"leases/{node}", ok=("NotFound",))), gone)
        with self._lock:
            self.nodes = [n for n in self.nodes if n in want_nodes]
        new_nodes = [n for n in want_nodes if n not in self.nodes]
        self._each(self._create_node, new_nodes)
        with self._lock:
            self.nodes += new_nodes
        # deployments: honeyDue's five plus 0-replica ones nobody watches
        want_deploy = {f"bench-svc-{i:03d}" for i in range(max(0, size.deployments - 5))}
        self._each(lambda name: self._call("DELETE", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}",
                                           {"kind": "DeleteOptions", "apiVersion": "v1",
                                            "propagationPolicy": "Background"}, ok=("NotFound",)),
                   self.deployments - want_deploy)
        self._each(self._create_deployment, want_deploy - self.deployments)
        self.deployments = want_deploy
        for ns, count in targets.items():
            want = {f"bench-{i:05d}": all_nodes[i % len(all_nodes)] for i in range(count)}
            missing = [(ns, name, node) for name, node in want.items() if name not in self.pods[ns]]
            self._each(self._create_pod, missing)
            self.pods[ns].update({name: node for _, name, node in missing})
        self._settle(cluster, size)
        return time.monotonic() - started

    def _delete_pod(self, path: str) -> None:
        """At once (grace 0): no kubelet of a synthetic node would confirm a graceful deletion."""
        self._call("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
                   ok=("NotFound",))

    def _create_node(self, name: str) -> None:
        index = int(name.rsplit("-", 1)[1])
        ip = f"10.0.{index // 250}.{index % 250 + 2}"
        now = time.time()
        beat = rfc3339(now)
        conditions = [{"type": kind, "status": status, "reason": reason, "message": message,
                       "lastHeartbeatTime": beat, "lastTransitionTime": beat}
                      for kind, status, reason, message in (
                          ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                          ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                          ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                          ("Ready", "True", "KubeletReady", "kubelet is posting ready status"))]
        resources = {"cpu": "4", "memory": "7934180Ki", "pods": "110", "ephemeral-storage": "157197504Ki"}
        node = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "k3s",
                BENCH_LABEL: "true"},
                "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": {"providerID": f"k3s://{name}"},
            "status": {"conditions": conditions, "capacity": resources, "allocatable": resources,
                       "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                       "nodeInfo": {"machineID": f"{index:032x}", "systemUUID": f"{index:032x}",
                                    "bootID": f"{index:032x}", "kernelVersion": "6.8.0-60-generic",
                                    "osImage": "Ubuntu 24.04.3 LTS", "containerRuntimeVersion": "containerd://2.1.5-k3s1",
                                    "kubeletVersion": K3S_VERSION, "operatingSystem": "linux",
                                    "architecture": "amd64"}},
        }
        created = self._call("POST", "/api/v1/nodes", node, ok=("AlreadyExists",))
        uid = created.get("metadata", {}).get("uid") or self._rest().get(f"/api/v1/nodes/{name}")["metadata"]["uid"]
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": name, "namespace": "kube-node-lease",
                              "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]},
                 "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro_time(now)}}
        self._call("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease,
                   ok=("AlreadyExists",))

    def _renew_leases(self) -> None:
        """What each synthetic node's kubelet does every 10 s: renew its Lease (the node's heartbeat)."""
        while not self._stop.wait(LEASE_RENEW):
            with self._lock:
                nodes = list(self.nodes)
            if self.cluster is None:
                continue
            rest = self.cluster.control_plane.admin(2, timeout=10)
            try:
                for node in nodes:
                    if self._stop.is_set():
                        break
                    with contextlib.suppress(ApiError, OSError, urllib3.exceptions.HTTPError):
                        rest.patch(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}",
                                   {"spec": {"renewTime": micro_time(time.time())}}, content_type=MERGE)
            finally:
                rest.close()

    def _create_deployment(self, name: str) -> None:
        labels = {"app.kubernetes.io/name": name}
        self._call("POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {**labels, BENCH_LABEL: "true"}},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "containers": [{"name": name, "image": IMAGE.format(app=name)}]}}},
        }, ok=("AlreadyExists",))

    def _create_pod(self, item: tuple[str, str, str]) -> None:
        ns, name, node = item
        index = int(name.rsplit("-", 1)[1])
        app = f"svc-{index % 50:02d}" if ns == NAMESPACE else f"job-{index % 40:02d}"
        image = IMAGE.format(app=app)
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns,
                         "labels": {"app.kubernetes.io/name": app, BENCH_LABEL: "true"}},
            "spec": {"nodeName": node, "automountServiceAccountToken": False, "containers": [{
                "name": app, "image": image, "ports": [{"containerPort": 8000, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}}]},
        }
        self._call("POST", f"/api/v1/namespaces/{ns}/pods", pod, ok=("AlreadyExists",))
        self._call("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status",
                   {"status": running_status(app, image, self._node_ip(node), f"10.42.{index // 250}.{index % 250 + 2}",
                                             f"{ns}/{name}")}, content_type=MERGE)

    @staticmethod
    def _node_ip(node: str) -> str:
        if node in NODE_NAMES:
            return NODE_IPS[NODE_NAMES.index(node)]
        index = int(node.rsplit("-", 1)[1])
        return f"10.0.{index // 250}.{index % 250 + 2}"

    def _settle(self, cluster: KubeCluster, size: ClusterSize) -> None:
        """The svclb DaemonSet's pods on synthetic nodes Running (as their kubelets would post), and every
        deployment's status observed by the controller, before the exporter measures."""
        def daemonset_placed() -> bool:
            ds = cluster.admin.get(f"/apis/apps/v1/namespaces/kube-system/daemonsets/{workloads.SVCLB}")
            status = ds.get("status") or {}
            return bool(status.get("desiredNumberScheduled") == size.nodes
                        and status.get("currentNumberScheduled") == size.nodes)

        wait_until(daemonset_placed, 180, "svclb DaemonSet on every node", step=0.5)

        def pending_bound() -> bool:
            pending = cluster.admin.items("/api/v1/namespaces/kube-system/pods", fieldSelector="status.phase=Pending")
            if any(not (p.get("spec") or {}).get("nodeName") for p in pending):
                return False  # the binder has not bound them yet
            for pod in pending:
                node = pod["spec"]["nodeName"]
                if node in NODE_NAMES:
                    continue  # a fake kubelet runs it
                container = pod["spec"]["containers"][0]
                meta = pod["metadata"]
                self._call("PATCH", f"/api/v1/namespaces/kube-system/pods/{meta['name']}/status",
                           {"status": running_status(container["name"], container["image"], self._node_ip(node),
                                                     self._node_ip(node), meta["name"])}, content_type=MERGE)
            return True

        wait_until(pending_bound, 180, "svclb pods bound and Running", step=0.5)

        def deployments_observed() -> bool:
            items = cluster.admin.items(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")
            return len(items) == len(self.deployments) + 5 and all(
                (d.get("status") or {}).get("observedGeneration") == d["metadata"].get("generation") for d in items)

        wait_until(deployments_observed, 300, "deployments observed", step=1.0)

    # --- load ----------------------------------------------------------------------------------------
    def load(self) -> tuple[int, int]:
        """(requests by the exporter's ServiceAccount, bytes of the responses to the exporter's request shapes)."""
        assert self.cluster is not None
        cp = self.cluster.control_plane
        requests = 0
        for i in range(len(NODE_IPS)):
            with contextlib.suppress(OSError), cp.audit_log(i).open() as audit:
                for line in audit:
                    if EXPORTER_USER in line and '"ResponseComplete"' in line:
                        event = json.loads(line)
                        requests += (event.get("user") or {}).get("username") == EXPORTER_USER
        sent = 0.0
        for i in range(len(NODE_IPS)):
            pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(cp.ca.cert_path),
                                       cert_file=str(cp.admin_cert.cert), key_file=str(cp.admin_cert.key))
            text = pool.request("GET", f"{cp.api_url(i)}/metrics", timeout=30).data.decode()
            pool.clear()
            for name, labels, value in parse_metrics(text):
                shape = (labels.get("verb"), labels.get("resource"), labels.get("scope"), labels.get("subresource"))
                if name == "apiserver_response_sizes_sum" and shape in EXPORTER_SHAPES:
                    sent += value
        return requests, int(sent)

    def target(self) -> KubeTarget:
        assert self.cluster is not None and self._kubeconfig is not None
        return KubeTarget(self._kubeconfig, self.cluster.api_port, self.load,
                          "the real control plane (testbed/kube: etcd x3, kube-apiserver v1.35.4 per node, "
                          "kube-controller-manager); synthetic nodes by Node + Lease; pods bound and Running via "
                          "the status subresource; load: exporter's requests from the audit log, bytes from "
                          "apiserver_response_sizes_sum of its request shapes")


def running_status(container: str, image: str, host_ip: str, pod_ip: str, seed: str) -> JSON:
    """A Running, Ready pod's status as a kubelet posts it."""
    now = rfc3339(time.time())
    return {
        "phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}], "startTime": now,
        "conditions": [{"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                       for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                    "PodScheduled")],
        "containerStatuses": [{
            "name": container, "ready": True, "started": True, "restartCount": 0, "image": image,
            "imageID": f"{image.split(':')[0]}@sha256:{abs(hash(image)):064x}"[:200],
            "containerID": f"containerd://{abs(hash(seed)):064x}", "state": {"running": {"startedAt": now}},
            "lastState": {}}],
    }


def parse_metrics(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition (enough for the API server's own metrics)."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels: dict[str, str] = {}
        for part in rest.rstrip("}").split('",'):
            key, _, raw = part.partition('="')
            if key:
                labels[key.strip(",")] = raw.rstrip('"')
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number):
            yield name, labels, number


_CLUSTER: RealCluster | None = None


@contextlib.contextmanager
def real(size: ClusterSize, workdir: Path) -> Iterator[KubeTarget]:
    """One real cluster for the whole run, reconciled to `size`; stopped by `close()` at the end of the bench."""
    global _CLUSTER
    if _CLUSTER is None:
        _CLUSTER = RealCluster()
    took = _CLUSTER.reconcile(size)
    print(f"  kube cluster: {size} in {took:.1f} s", flush=True)
    yield _CLUSTER.target()


def close() -> None:
    global _CLUSTER
    if _CLUSTER is not None:
        _CLUSTER.close()
        _CLUSTER = None
