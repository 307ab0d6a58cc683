"""A stand-in Kubernetes API server (aiohttp) that the real `kubernetes` client talks to over HTTP.

Scenarios run against the real control plane (testbed/kube); this stand-in remains only for what a
real API server cannot be made to send: oversized, non-JSON or wrongly shaped bodies
(tests/test_bad_replies.py), a hostile server echoing the credentials it receives
(tests/test_secret_scan.py), and the fault matrix's per-cell API behind a fault proxy
(tests/test_fault_matrix.py).

It serves the paths the exporter reads, with the query parameters the client sends, object JSON
in the shapes a k3s v1.35 cluster returns (3 server nodes running honeyDue's workloads), and real
error responses (401 and 403 with a Status body, 500, a hung connection). Each node's API server
(/readyz/etcd) listens on its own loopback address (127.0.0.2-4) like a node's InternalIP.
It runs on its own thread and event loop so synchronous tests and subprocesses can use it alike.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from testbed.kubeconfig import write_kubeconfig
from testbed.loop import LoopThread, bind_on_one_port, serve
from testbed.procs import free_port

NODE_IP = web.AppKey("node_ip", str)
TOKEN = "standin-token-4f1c"
K3S_VERSION = "v1.35.1+k3s1"
NODE_NAMES = ("ubuntu-8gb-nbg1-1", "ubuntu-8gb-nbg1-2", "ubuntu-8gb-nbg1-3")
NODE_IPS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
CREATED = "2026-04-20T09:12:44Z"
ROLLOUT = "2026-04-25T17:40:02Z"


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def node(name: str, ip: str, redis: bool = False) -> dict[str, Any]:
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": "k3s",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node-role.kubernetes.io/control-plane": "true",
        "node-role.kubernetes.io/etcd": "true",
        "node.kubernetes.io/instance-type": "k3s",
    }
    if redis:
        labels["honeydue/redis"] = "true"

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "lastHeartbeatTime": "2026-04-25T17:55:01Z",
            "lastTransitionTime": CREATED,
            "reason": reason,
            "message": message,
        }

    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "912733",
            "creationTimestamp": CREATED,
            "labels": labels,
            "annotations": {
                "flannel.alpha.coreos.com/public-ip": ip,
                "k3s.io/node-args": '["server"]',
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
            "finalizers": ["wrangler.cattle.io/node"],
        },
        "spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"], "providerID": f"k3s://{name}"},
        "status": {
            "capacity": {"cpu": "4", "ephemeral-storage": "157197504Ki", "memory": "7934180Ki", "pods": "110"},
            "allocatable": {"cpu": "4", "ephemeral-storage": "152920578009", "memory": "7934180Ki", "pods": "110"},
            "conditions": [
                condition(
                    "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"
                ),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "a1b2c3",
                "systemUUID": "d4e5f6",
                "bootID": "0a1b2c",
                "kernelVersion": "6.8.0-60-generic",
                "osImage": "Ubuntu 24.04.3 LTS",
                "containerRuntimeVersion": "containerd://2.1.5-k3s1",
                "kubeletVersion": K3S_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def pod(
    namespace: str,
    deployment: str,
    suffix: str,
    node_name: str,
    app_label: str | None = None,
    template_hash: str = "5d8f7c9b4",
    kind: str = "ReplicaSet",
) -> dict[str, Any]:
    """A Running, Ready pod of a Deployment (or DaemonSet) in k3s' JSON shape."""
    if kind == "ReplicaSet":
        name, owner = f"{deployment}-{template_hash}-{suffix}", f"{deployment}-{template_hash}"
        labels = {"app.kubernetes.io/name": app_label or deployment, "pod-template-hash": template_hash}
    else:
        name, owner = f"{deployment}-{suffix}", deployment
        labels = {"app.kubernetes.io/name": app_label or deployment, "controller-revision-hash": "6c9f8d7b5"}
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "resourceVersion": "913001",
            "creationTimestamp": ROLLOUT,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": kind,
                    "name": owner,
                    "uid": f"uid-{owner}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": deployment, "image": f"git.example.com/honeydue/{deployment}:3f9a1c2"}],
            "restartPolicy": "Always",
            "serviceAccountName": "default",
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": ROLLOUT},
                {"type": "Initialized", "status": "True", "lastTransitionTime": ROLLOUT},
                {"type": "Ready", "status": "True", "lastTransitionTime": ROLLOUT},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": ROLLOUT},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": ROLLOUT},
            ],
            "hostIP": "10.0.0.2",
            "podIP": "10.42.0.17",
            "startTime": ROLLOUT,
            "qosClass": "Burstable",
            "containerStatuses": [
                {
                    "name": deployment,
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "image": f"git.example.com/honeydue/{deployment}:3f9a1c2",
                    "imageID": f"git.example.com/honeydue/{deployment}@sha256:9d2c",
                    "containerID": "containerd://7f3e",
                    "state": {"running": {"startedAt": ROLLOUT}},
                    "lastState": {},
                }
            ],
        },
    }


def deployment(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-deploy-{name}",
            "generation": 4,
            "resourceVersion": "913050",
            "creationTimestamp": CREATED,
            "annotations": {"deployment.kubernetes.io/revision": "4"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        },
        "status": {
            "observedGeneration": 4,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "lastUpdateTime": ROLLOUT,
                    "lastTransitionTime": ROLLOUT,
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "lastUpdateTime": ROLLOUT,
                    "lastTransitionTime": CREATED,
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{name}-5d8f7c9b4" has successfully progressed.',
                },
            ],
        },
    }


def apiservice(name: str, available: bool = True) -> dict[str, Any]:
    condition = (
        {
            "type": "Available",
            "status": "True",
            "lastTransitionTime": CREATED,
            "reason": "Passed",
            "message": "all checks passed",
        }
        if available
        else {
            "type": "Available",
            "status": "False",
            "lastTransitionTime": ROLLOUT,
            "reason": "FailedDiscoveryCheck",
            "message": "failing or missing response from https://10.42.1.5:10250/apis/metrics.k8s.io/v1beta1: "
            'Get "https://10.42.1.5:10250/apis/metrics.k8s.io/v1beta1": dial tcp 10.42.1.5:10250: '
            "connect: connection refused",
        }
    )
    return {
        "kind": "APIService",
        "apiVersion": "apiregistration.k8s.io/v1",
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "900",
            "creationTimestamp": CREATED,
            "labels": {"k8s-app": "metrics-server", "objectset.rio.cattle.io/hash": "a1"},
        },
        "spec": {
            "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443},
            "group": "metrics.k8s.io",
            "version": "v1beta1",
            "insecureSkipTLSVerify": True,
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
        "status": {"conditions": [condition]},
    }


@dataclass
class Cluster:
    """The cluster's state the stand-in serves (the fault tests inject through `KubeAPI.faults`)."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    pods: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    deployments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    apiservices: dict[str, dict[str, Any]] = field(default_factory=dict)
    readyz: dict[str, str] = field(default_factory=dict)  # node IP -> ok | fail | hang | forbidden

    @classmethod
    def honeydue(cls) -> Cluster:
        """The healthy production shape: 3 servers, honeyDue workloads, k3s system pods."""
        c = cls()
        c.nodes = [node(n, ip, redis=(i == 1)) for i, (n, ip) in enumerate(zip(NODE_NAMES, NODE_IPS, strict=True))]
        n1, n2, n3 = NODE_NAMES
        c.pods["honeydue"] = [
            pod("honeydue", "api", "x7k2p", n1),
            pod("honeydue", "api", "m4q9z", n2),
            pod("honeydue", "api", "c8w3t", n3),
            pod("honeydue", "admin", "r5t6y", n1, template_hash="7b6c5d4f8"),
            pod("honeydue", "worker", "h2j3k", n2, template_hash="6f5e4d3c2"),
            pod("honeydue", "redis", "p9o8i", n2, template_hash="58d7c6b5a"),
            pod("honeydue", "vmagent", "u7y6t", n3, template_hash="9a8b7c6d5"),
        ]
        c.pods["kube-system"] = [
            pod("kube-system", "coredns", "v4b5n", n1, app_label="coredns", template_hash="697968c856"),
            pod("kube-system", "metrics-server", "l2k3j", n2, template_hash="7bf7d58749"),
            pod("kube-system", "traefik", "q1w2e", n3, template_hash="c98fdf6fb"),
            pod("kube-system", "local-path-provisioner", "z9x8c", n1, template_hash="774c6665dc"),
            *(
                pod("kube-system", "svclb-traefik-4d6a1f2e", s, n, kind="DaemonSet", app_label="svclb-traefik")
                for s, n in zip(("a1b2c", "d3e4f", "g5h6i"), NODE_NAMES, strict=True)
            ),
        ]
        c.deployments["honeydue"] = [deployment("honeydue", "api", 3)] + [
            deployment("honeydue", name, 1) for name in ("admin", "worker", "redis", "vmagent")
        ]
        c.deployments["kube-system"] = [
            deployment("kube-system", name, 1)
            for name in ("coredns", "metrics-server", "traefik", "local-path-provisioner")
        ]
        c.apiservices["v1beta1.metrics.k8s.io"] = apiservice("v1beta1.metrics.k8s.io")
        c.readyz = dict.fromkeys(NODE_IPS, "ok")
        return c


@dataclass
class Fault:
    """How the stand-in answers one resource: an HTTP error with a Status body, or never."""

    kind: str  # "401" | "403" | "500" | "hang"


class KubeAPI:
    """The stand-in: API on 127.0.0.1:port, each node's /readyz/etcd on its InternalIP:node_port."""

    def __init__(self, cluster: Cluster | None = None) -> None:
        self.cluster = cluster or Cluster.honeydue()
        self.port = free_port()
        self.node_port = 0  # picked at start, free on every node IP
        self.faults: dict[str, Fault] = {}  # key: version | nodes | pods/<ns> | deployments/<ns> | apiservices | *
        self.requests: list[tuple[str, str, dict[str, str], bool]] = []  # method, path, query, bearer ok
        self._thread: LoopThread | None = None
        self._runners: list[web.AppRunner] = []
        self._release: asyncio.Event | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = LoopThread("kubeapi-standin")
        self._thread.run(self._start())

    async def _start(self) -> None:
        self._release = asyncio.Event()
        api = web.Application()
        api.router.add_route("*", "/{tail:.*}", self._handle)
        await self._serve(api, "127.0.0.1", self.port)

        async def readyz(ip: str, port: int) -> web.AppRunner:
            app = web.Application()
            app[NODE_IP] = ip
            app.router.add_route("*", "/{tail:.*}", self._readyz)
            return await serve(app, port, ip)

        async def cleanup(runner: web.AppRunner) -> None:
            await runner.cleanup()

        self.node_port, runners = await bind_on_one_port(sorted(self.cluster.readyz), readyz, cleanup)
        self._runners.extend(runners)

    async def _serve(self, app: web.Application, host: str, port: int) -> None:
        self._runners.append(await serve(app, port, host))

    async def _stop(self) -> None:
        if self._release is not None:
            self._release.set()
        for runner in self._runners:
            await runner.cleanup()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.run(self._stop())
            self._runners.clear()
            self._thread.close()
            self._thread = None

    def kubeconfig(self, path: Path, token: str = TOKEN) -> Path:
        return write_kubeconfig(path, self.url, token=token)

    # --- handlers -------------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {TOKEN}"

    async def _fault(self, key: str, verb: str, resource: str, namespace: str) -> web.Response | None:
        fault = self.faults.get(key) or self.faults.get("*")
        if fault is None:
            return None
        if fault.kind == "hang":
            assert self._release is not None
            await self._release.wait()
            raise web.HTTPServiceUnavailable()
        if fault.kind == "401":
            return web.json_response(status_body(401, "Unauthorized", "Unauthorized"), status=401)
        if fault.kind == "403":
            scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
            group = {"deployments": "apps", "apiservices": "apiregistration.k8s.io"}.get(resource, "")
            message = (
                f'{resource} is forbidden: User "system:serviceaccount:honeydue:honeydue-exporter" '
                f'cannot {verb} resource "{resource}" in API group "{group}" {scope}'
            )
            return web.json_response(status_body(403, "Forbidden", message, {"kind": resource}), status=403)
        return web.json_response(
            status_body(500, "InternalError", "Internal error occurred: etcdserver: request timed out"), status=500
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ok = self._authorized(request)
        self.requests.append((request.method, request.path, dict(request.query), ok))
        if not ok:
            return web.json_response(status_body(401, "Unauthorized", "Unauthorized"), status=401)
        parts = [p for p in request.path.split("/") if p]
        c = self.cluster
        if request.method != "GET":
            return web.json_response(
                status_body(405, "MethodNotAllowed", "the server does not allow this method"), status=405
            )
        if parts == ["version"]:
            return await self._fault("version", "get", "version", "") or web.json_response(
                {
                    "major": "1",
                    "minor": "35",
                    "emulationMajor": "1",
                    "emulationMinor": "35",
                    "minCompatibilityMajor": "1",
                    "minCompatibilityMinor": "34",
                    "gitVersion": K3S_VERSION,
                    "gitCommit": "4d2a0b6c",
                    "gitTreeState": "clean",
                    "buildDate": "2026-01-21T10:11:12Z",
                    "goVersion": "go1.25.6",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                }
            )
        if parts == ["api", "v1", "nodes"]:
            return await self._fault("nodes", "list", "nodes", "") or self._list("NodeList", "v1", c.nodes)
        if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
            ns = parts[3]
            return await self._fault(f"pods/{ns}", "list", "pods", ns) or self._list(
                "PodList", "v1", c.pods.get(ns, [])
            )
        if len(parts) == 6 and parts[:4] == ["apis", "apps", "v1", "namespaces"] and parts[5] == "deployments":
            ns = parts[4]
            return await self._fault(f"deployments/{ns}", "list", "deployments", ns) or self._list(
                "DeploymentList", "apps/v1", c.deployments.get(ns, [])
            )
        if len(parts) == 5 and parts[:4] == ["apis", "apiregistration.k8s.io", "v1", "apiservices"]:
            fault = await self._fault("apiservices", "get", "apiservices", "")
            if fault is not None:
                return fault
            with self._lock:
                obj = copy.deepcopy(c.apiservices.get(parts[4]))
            if obj is None:
                return web.json_response(
                    status_body(
                        404,
                        "NotFound",
                        f'apiservices.apiregistration.k8s.io "{parts[4]}" not found',
                        {"name": parts[4], "group": "apiregistration.k8s.io", "kind": "apiservices"},
                    ),
                    status=404,
                )
            return web.json_response(obj)
        return web.json_response(
            status_body(404, "NotFound", "the server could not find the requested resource"), status=404
        )

    def _list(self, kind: str, api_version: str, items: list[dict[str, Any]]) -> web.Response:
        with self._lock:
            body = {
                "kind": kind,
                "apiVersion": api_version,
                "metadata": {"resourceVersion": "913377"},
                "items": copy.deepcopy(items),
            }
        return web.json_response(body)

    async def _readyz(self, request: web.Request) -> web.StreamResponse:
        ip = request.app[NODE_IP]
        self.requests.append((request.method, f"{ip}{request.path}", dict(request.query), self._authorized(request)))
        if request.path != "/readyz/etcd":
            return web.Response(status=404, text="404 page not found\n")
        state = self.cluster.readyz.get(ip, "ok")
        if state == "hang":
            assert self._release is not None
            await self._release.wait()
        if state == "forbidden":
            return web.json_response(
                status_body(403, "Forbidden", 'forbidden: User "system:anonymous" cannot get path "/readyz/etcd"'),
                status=403,
            )
        if state == "fail":
            return web.Response(status=500, text="internal server error: etcd client connection not yet established\n")
        return web.Response(text="ok")
