"""An API server stand-in for list-heavy work: any number of nodes, pods and deployments, paged like kube-apiserver.

What it does like kube-apiserver: list replies in the JSON shape k3s v1.35 sends (managedFields
included, pods about 3 KB each), objects in name order, `limit`/`continue` paging with an opaque token
and `remainingItemCount`, `limit` ignored when resourceVersion=0 (the watch cache answers those whole),
`fieldSelector` on metadata.name/metadata.namespace/spec.nodeName/status.phase and equality
`labelSelector`s, per-namespace lists that never touch other namespaces, /version/, /readyz/etcd and
GET of an APIService, and metrics.k8s.io PodMetrics of a namespace's pods (whole, as metrics-server answers a
list whatever its `limit`); it counts requests and response bytes. What it does not: authentication beyond
a bearer token, RBAC, TLS, watch, Table or protobuf replies, etcd. Used by `python -m bench scale`
(bench/_kube.py) and by the paging tests; the failure scenarios use the real control plane or the drill's
stand-in.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from testbed.loop import LoopThread, serve, stop_served
from testbed.procs import free_port, wait_for_port

TOKEN = "bench-scale-token"
NAMESPACE = "honeydue"
OTHER_NAMESPACE = "batch-jobs"  # pods nobody watches: merely stored
WATCHED = ("api", "admin", "worker", "redis", "vmagent")
VERSION = "v1.35.1+k3s1"
STAMP = "2026-04-25T17:40:02Z"


@dataclass(frozen=True)
class ClusterSize:
    nodes: int = 3
    pods: int = 30  # in the watched namespace
    deployments: int = 5  # in the watched namespace; the exporter watches WATCHED only
    other_pods: int = 0  # in OTHER_NAMESPACE


# --- objects in k3s' JSON shape -------------------------------------------------------------------
def _hash(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()[:10]


def _managed(manager: str, operation: str, fields: dict[str, Any], subresource: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {"manager": manager, "operation": operation, "apiVersion": "v1", "time": STAMP,
                             "fieldsType": "FieldsV1", "fieldsV1": fields}
    if subresource:
        entry["subresource"] = subresource
    return entry


def node(i: int, control_plane: bool) -> dict[str, Any]:
    name = f"node-{i:03d}"
    labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "k3s"}
    if control_plane:
        labels |= {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/etcd": "true"}
    if i == 1:
        labels["honeydue/redis"] = "true"
    ip = "127.0.0.1" if control_plane else f"10.0.{i // 250}.{i % 250 + 2}"
    conditions = [
        {"type": kind, "status": status, "lastHeartbeatTime": STAMP, "lastTransitionTime": STAMP,
         "reason": reason, "message": message}
        for kind, status, reason, message in (
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        )
    ]
    return {
        "metadata": {
            "name": name, "uid": f"uid-{_hash('node', i)}", "resourceVersion": str(900000 + i),
            "creationTimestamp": STAMP, "labels": labels,
            "annotations": {"flannel.alpha.coreos.com/public-ip": ip, "k3s.io/node-args": '["server"]',
                            "node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            "finalizers": ["wrangler.cattle.io/node"],
            "managedFields": [
                _managed("k3s", "Update", {"f:metadata": {"f:labels": {f"f:{k}": {} for k in labels}}}),
                _managed("k3s", "Update", {"f:status": {"f:conditions": {}, "f:nodeInfo": {}}}, "status"),
            ],
        },
        "spec": {"podCIDR": f"10.42.{i}.0/24", "podCIDRs": [f"10.42.{i}.0/24"], "providerID": f"k3s://{name}"},
        "status": {
            "capacity": {"cpu": "4", "ephemeral-storage": "157197504Ki", "memory": "7934180Ki", "pods": "110"},
            "allocatable": {"cpu": "4", "ephemeral-storage": "152920578009", "memory": "7934180Ki", "pods": "110"},
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": _hash("m", i), "systemUUID": _hash("s", i), "bootID": _hash("b", i),
                         "kernelVersion": "6.8.0-60-generic", "osImage": "Ubuntu 24.04.3 LTS",
                         "containerRuntimeVersion": "containerd://2.1.5-k3s1", "kubeletVersion": VERSION,
                         "operatingSystem": "linux", "architecture": "amd64"},
            "images": [{"names": [f"git.example.com/honeydue/{d}@sha256:{_hash('img', d)}"], "sizeBytes": 31457280}
                       for d in WATCHED],
        },
    }


def pod(namespace: str, deployment: str, i: int, node_name: str) -> dict[str, Any]:
    template = _hash("rs", namespace, deployment)[:9]
    name = f"{deployment}-{template}-{_hash('pod', namespace, i)[:5]}"
    image = f"git.example.com/honeydue/{deployment}:3f9a1c2"
    crashing = i % 97 == 13  # a few pods in back-off, as a real cluster has
    return {
        "metadata": {
            "name": name, "generateName": f"{deployment}-{template}-", "namespace": namespace,
            "uid": f"uid-{_hash('pod', namespace, i)}", "resourceVersion": str(910000 + i), "creationTimestamp": STAMP,
            "labels": {"app.kubernetes.io/name": deployment, "pod-template-hash": template},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{deployment}-{template}",
                                 "uid": f"uid-{_hash('rs', namespace, deployment)}", "controller": True,
                                 "blockOwnerDeletion": True}],
            "managedFields": [
                _managed("kube-controller-manager", "Update", {
                    "f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app.kubernetes.io/name": {},
                                   "f:pod-template-hash": {}}, "f:ownerReferences": {".": {}}},
                    "f:spec": {"f:containers": {f'k:{{"name":"{deployment}"}}': {".": {}, "f:image": {},
                               "f:imagePullPolicy": {}, "f:name": {}, "f:ports": {}, "f:resources": {}}},
                               "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {}}}),
                _managed("k3s", "Update", {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:hostIP": {},
                                                        "f:phase": {}, "f:podIP": {}, "f:startTime": {}}}, "status"),
            ],
        },
        "spec": {
            "nodeName": node_name, "restartPolicy": "Always", "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
            "containers": [{"name": deployment, "image": image, "imagePullPolicy": "IfNotPresent",
                            "ports": [{"containerPort": 8000, "protocol": "TCP"}],
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                          "limits": {"memory": "256Mi"}},
                            "volumeMounts": [{"name": "kube-api-access", "readOnly": True,
                                              "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
            "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300},
                            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300}],
        },
        "status": {
            "phase": "Running", "hostIP": "10.0.0.2", "podIP": f"10.42.{i // 250}.{i % 250 + 2}", "startTime": STAMP,
            "qosClass": "Burstable",
            "conditions": [{"type": kind, "status": "False" if crashing and kind in ("Ready", "ContainersReady")
                            else "True", "lastTransitionTime": STAMP}
                           for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                        "PodScheduled")],
            "containerStatuses": [{
                "name": deployment, "ready": not crashing, "started": not crashing, "restartCount": 7 if crashing else 0,
                "image": image, "imageID": f"git.example.com/honeydue/{deployment}@sha256:{_hash('img', deployment)}",
                "containerID": f"containerd://{_hash('c', namespace, i)}",
                "state": ({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting"}}
                          if crashing else {"running": {"startedAt": STAMP}}),
                "lastState": ({"terminated": {"exitCode": 2, "reason": "Error", "startedAt": STAMP,
                                              "finishedAt": STAMP}} if crashing else {}),
            }],
        },
    }


def deployment(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{_hash('deploy', namespace, name)}",
                     "generation": 4, "resourceVersion": "913050", "creationTimestamp": STAMP,
                     "annotations": {"deployment.kubernetes.io/revision": "4"},
                     "managedFields": [_managed("kubectl", "Apply", {"f:spec": {"f:replicas": {}, "f:template": {}}}),
                                       _managed("kube-controller-manager", "Update",
                                                {"f:status": {"f:conditions": {}}}, "status")]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                 "template": {"metadata": {"labels": {"app.kubernetes.io/name": name}},
                              "spec": {"containers": [{"name": name, "image": f"git.example.com/honeydue/{name}:3f9a1c2"}]}}},
        "status": {"observedGeneration": 4, "replicas": replicas, "updatedReplicas": replicas,
                   "readyReplicas": replicas, "availableReplicas": replicas,
                   "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": STAMP,
                                   "lastTransitionTime": STAMP, "reason": "MinimumReplicasAvailable",
                                   "message": "Deployment has minimum availability."},
                                  {"type": "Progressing", "status": "True", "lastUpdateTime": STAMP,
                                   "lastTransitionTime": STAMP, "reason": "NewReplicaSetAvailable",
                                   "message": f'ReplicaSet "{name}" has successfully progressed.'}]},
    }


def apiservice(name: str) -> dict[str, Any]:
    return {"kind": "APIService", "apiVersion": "apiregistration.k8s.io/v1",
            "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "900", "creationTimestamp": STAMP},
            "spec": {"service": {"namespace": "kube-system", "name": "metrics-server", "port": 443},
                     "group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                     "versionPriority": 100},
            "status": {"conditions": [{"type": "Available", "status": "True", "lastTransitionTime": STAMP,
                                       "reason": "Passed", "message": "all checks passed"}]}}


def pod_metrics(pod: dict[str, Any]) -> dict[str, Any]:
    """metrics-server's PodMetrics for a pod: a few millicores and 48 MiB per container."""
    meta = pod["metadata"]
    return {"metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": meta.get("labels") or {},
                         "creationTimestamp": "2026-11-30T08:00:00Z"},
            "timestamp": "2026-11-30T08:00:00Z", "window": "10.012s",
            "containers": [{"name": c["name"], "usage": {"cpu": f"{3_000_000 + i}n", "memory": "49152Ki"}}
                           for i, c in enumerate(pod["spec"]["containers"])]}


# --- the API server ---------------------------------------------------------------------------
@dataclass
class _Stored:
    obj: dict[str, Any]
    raw: bytes  # the object's JSON, encoded once


@dataclass
class Collection:
    kind: str
    api_version: str
    items: list[_Stored] = field(default_factory=list)

    @classmethod
    def of(cls, kind: str, api_version: str, objects: list[dict[str, Any]]) -> Collection:
        ordered = sorted(objects, key=lambda o: o["metadata"]["name"])
        return cls(kind, api_version, [_Stored(o, json.dumps(o, separators=(",", ":")).encode()) for o in ordered])


def _field(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part, {}) if isinstance(value, dict) else {}
    return value if isinstance(value, str) else ""


def _matches(obj: dict[str, Any], field_selector: str, label_selector: str) -> bool:
    for term in filter(None, field_selector.split(",")):
        negate = "!=" in term
        key, _, wanted = term.partition("!=") if negate else term.replace("==", "=").partition("=")
        if key not in ("metadata.name", "metadata.namespace", "spec.nodeName", "status.phase"):
            raise ValueError(f"field label not supported: {key}")
        if (_field(obj, key) == wanted) == negate:
            return False
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, label_selector.split(",")):
        key, _, wanted = term.replace("==", "=").partition("=")
        if labels.get(key) != wanted:
            return False
    return True


class StandinAPI:
    """Serves list, get and the non-resource paths the exporter reads; counts requests and bytes."""

    def __init__(self, size: ClusterSize) -> None:
        self.port = free_port()
        self.requests = 0
        self.bytes = 0
        nodes = [node(i, control_plane=i < 3) for i in range(size.nodes)]
        self.nodes = Collection.of("NodeList", "v1", nodes)
        names = [n["metadata"]["name"] for n in nodes]
        owners = [*WATCHED, *(f"svc-{i:03d}" for i in range(max(0, size.deployments - len(WATCHED))))]
        self.pods = {
            NAMESPACE: Collection.of("PodList", "v1", [pod(NAMESPACE, owners[i % min(len(owners), 50)], i,
                                                           names[i % len(names)]) for i in range(size.pods)]),
            OTHER_NAMESPACE: Collection.of("PodList", "v1", [pod(OTHER_NAMESPACE, f"job-{i % 40:02d}", i,
                                                                 names[i % len(names)]) for i in range(size.other_pods)]),
        }
        replicas = {d: sum(1 for i in range(size.pods) if owners[i % min(len(owners), 50)] == d) for d in owners}
        self.deployments = {NAMESPACE: Collection.of("DeploymentList", "apps/v1", [
            deployment(NAMESPACE, d, replicas[d]) for d in owners[:size.deployments]])}
        self.apiservice = json.dumps(apiservice("v1beta1.metrics.k8s.io")).encode()
        self.pod_metrics = {ns: Collection.of("PodMetricsList", "metrics.k8s.io/v1beta1", [
            pod_metrics(s.obj) for s in pods.items]) for ns, pods in self.pods.items()}
        self.revision = 913377
        self._thread: LoopThread | None = None
        self._runner: web.AppRunner | None = None

    def load(self) -> tuple[int, int]:
        return self.requests, self.bytes

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = LoopThread("kube-standin")
        self._runner = self._thread.run(self._start(), timeout=30)
        wait_for_port(self.port)

    async def _start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        return await serve(app, self.port)

    def stop(self) -> None:
        stop_served(self._thread, self._runner)
        self._thread, self._runner = None, None

    # --- handlers ------------------------------------------------------------------------------------
    def _reply(self, body: bytes, status: int = 200, content_type: str = "application/json") -> web.Response:
        self.bytes += len(body)
        return web.Response(body=body, status=status, content_type=content_type)

    def _status(self, code: int, reason: str, message: str) -> web.Response:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                "reason": reason, "code": code}
        return self._reply(json.dumps(body).encode(), code)

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.path == "/readyz/etcd":
            return self._reply(b"ok", content_type="text/plain")
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._status(401, "Unauthorized", "Unauthorized")
        parts = [p for p in request.path.split("/") if p]
        if parts == ["version"]:
            return self._reply(json.dumps({"major": "1", "minor": "35", "gitVersion": VERSION,
                                           "platform": "linux/amd64"}).encode())
        if parts == ["api", "v1", "nodes"]:
            return self._list(self.nodes, request)
        if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
            return self._list(self.pods.get(parts[3]) or Collection("PodList", "v1"), request)
        if len(parts) == 6 and parts[:4] == ["apis", "apps", "v1", "namespaces"] and parts[5] == "deployments":
            return self._list(self.deployments.get(parts[4]) or Collection("DeploymentList", "apps/v1"), request)
        if parts == ["apis", "apiregistration.k8s.io", "v1", "apiservices", "v1beta1.metrics.k8s.io"]:
            return self._reply(self.apiservice)
        if len(parts) == 6 and parts[:4] == ["apis", "metrics.k8s.io", "v1beta1", "namespaces"] and parts[5] == "pods":
            metrics = self.pod_metrics.get(parts[4]) or Collection("PodMetricsList", "metrics.k8s.io/v1beta1")
            head = json.dumps({"kind": metrics.kind, "apiVersion": metrics.api_version, "metadata": {}})
            return self._reply(head[:-1].encode() + b',"items":[' + b",".join(s.raw for s in metrics.items) + b"]}")
        return self._status(404, "NotFound", "the server could not find the requested resource")

    def _list(self, collection: Collection, request: web.Request) -> web.Response:
        query = request.query
        try:
            items = [s for s in collection.items
                     if _matches(s.obj, query.get("fieldSelector", ""), query.get("labelSelector", ""))]
        except ValueError as exc:
            return self._status(400, "BadRequest", str(exc))
        start = 0
        if query.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(query["continue"]))
                start = int(token["start"])
            except (ValueError, KeyError, TypeError):
                return self._status(400, "BadRequest", "invalid continue token")
        # resourceVersion=0 is answered by the watch cache, which ignores limit (cacher.computeListLimit).
        limit = int(query.get("limit", "0") or 0) if query.get("resourceVersion") != "0" else 0
        end = min(len(items), start + limit) if limit > 0 else len(items)
        meta: dict[str, Any] = {"resourceVersion": str(self.revision)}
        if end < len(items):
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"rv": self.revision, "start": end}).encode()).decode()
            if not query.get("fieldSelector") and not query.get("labelSelector"):
                meta["remainingItemCount"] = len(items) - end
        head = json.dumps({"kind": collection.kind, "apiVersion": collection.api_version, "metadata": meta})
        body = head[:-1].encode() + b',"items":[' + b",".join(s.raw for s in items[start:end]) + b"]}"
        return self._reply(body)


