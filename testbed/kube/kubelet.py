"""Fake kubelets: the node agents of the test cluster, written here (no container runtime can run).

Each one talks to its own node's API server with a node client certificate (CN system:node:<name>,
so the real Node authorizer and NodeRestriction admission limit it to what a kubelet may do). It
registers its Node, renews its Lease in kube-node-lease, posts NodeStatus, and runs the pods bound to
it through a simulated runtime, posting their status the way the kubelet does:

- a container runs and is Ready; the first restart after an exit is immediate, later ones wait a
  back-off of 10 s doubling to 300 s (CrashLoopBackOff), like the kubelet's;
- an image marked crashing exits with Error right after it starts; `oom_kill` ends one container
  with OOMKilled (exit 137); an image the node does not have and cannot pull (registry unreachable)
  waits in ErrImagePull / ImagePullBackOff, pull retries backing off the same way;
- under DiskPressure the kubelet evicts pods one at a time (phase Failed, reason Evicted);
- a pod being deleted is confirmed (deleted with grace 0) once its containers are stopped;
- a running container uses CPU (cores, per image: `Runtime.use_cpu`) and memory, served at the
  kubelet's HTTPS `/metrics/resource` for metrics-server (kubelet_metrics.py).

`stop()` ends the agent: no more leases or status, its pods keep their last status. Everything that
follows (NotReady, taints, pods marked NotReady, eviction) comes from the real controllers.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from testbed.kube.kubelet_metrics import ContainerUsage, ResourceMetricsEndpoint, render
from testbed.kube.pki import CertFiles
from testbed.kube.rest import JSON, ApiError, Rest

log = logging.getLogger("testbed.kube.kubelet")

RUNTIME_VERSION = "containerd://2.1.5-k3s1"
KERNEL = "6.8.0-60-generic"
OS_IMAGE = "Ubuntu 24.04.3 LTS"
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0
IDLE_CPU, WORKING_SET = 0.004, 48 * 1024 * 1024  # what a container uses unless told otherwise
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def micro_time(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Serving(Protocol):
    """A container that really serves: where it listens on loopback, and how to stop it."""

    address: tuple[str, int]

    def close(self) -> None: ...


@dataclass
class Runtime:
    """What images do on every node: the registry's reachability and each image's behaviour."""

    crashing: set[str] = field(default_factory=set)  # images whose process exits right after it starts
    unpullable: set[str] = field(default_factory=set)  # images the registry cannot serve
    # image -> start(): a container that really serves; its pod IP and port are routed to it (tunnel.py)
    servers: dict[str, Callable[[], Serving]] = field(default_factory=dict)
    routes: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # image -> cores each of its containers uses
    lock: threading.Lock = field(default_factory=threading.Lock)

    def use_cpu(self, image: str, cores: float | None) -> None:
        """Every container of `image` uses `cores` of CPU from now on (None: back to idle)."""
        with self.lock:
            if cores is None:
                self.cpu.pop(image, None)
            else:
                self.cpu[image] = cores

    def cpu_of(self, image: str) -> float:
        with self.lock:
            return self.cpu.get(image, IDLE_CPU)

    def route(self, ip: str, port: int) -> tuple[str, int] | None:
        """Where the container serving pod address ip:port listens, or None (nothing runs there)."""
        with self.lock:
            return self.routes.get((ip, port))

    def crash(self, image: str, on: bool = True) -> None:
        with self.lock:
            (self.crashing.add if on else self.crashing.discard)(image)

    def registry_serves(self, image: str, on: bool = True) -> None:
        with self.lock:
            (self.unpullable.discard if on else self.unpullable.add)(image)


@dataclass
class Container:
    """One container of one pod as the kubelet tracks it."""

    name: str
    image: str
    port: int = 0
    restarts: int = 0
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    started: float = 0.0
    next_try: float = 0.0
    backoff: float = 0.0  # 0: the next restart is immediate (the kubelet's first restart)
    pull_backoff: float = 0.0
    pull_failed: float = 0.0
    last: JSON | None = None
    container_id: str = ""
    oom: bool = False
    server: Serving | None = None
    pod_ip: str = ""
    cpu_seconds: float = 0.0  # cumulative CPU of the current run, as of cpu_at
    cpu_at: float = 0.0

    def status(self) -> JSON:
        repo = self.image.rsplit(":", 1)[0]
        doc: JSON = {"name": self.name, "image": self.image, "imageID": "", "ready": self.ready,
                     "started": self.state == "running", "restartCount": self.restarts, "lastState": {}}
        if self.container_id:
            doc["containerID"] = f"containerd://{self.container_id}"
            doc["imageID"] = f"{repo}@sha256:{_digest(self.image)}"
        if self.state == "running":
            doc["state"] = {"running": {"startedAt": rfc3339(self.started)}}
        elif self.state == "terminated":
            doc["state"] = {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": rfc3339(self.started),
                                           "finishedAt": rfc3339(time.time())}}
        else:
            message = {"CrashLoopBackOff": f"back-off {self.backoff / 2 or BACKOFF_START:g}s restarting failed "
                                           f"container={self.name}",
                       "ImagePullBackOff": f'Back-off pulling image "{self.image}"',
                       "ErrImagePull": f"failed to pull image {self.image}: dial tcp: i/o timeout"}
            waiting: JSON = {"reason": self.reason}
            if self.reason in message:
                waiting["message"] = message[self.reason]
            doc["state"] = {"waiting": waiting}
        if self.last:
            doc["lastState"] = {"terminated": dict(self.last)}
        return doc

    @property
    def ready(self) -> bool:
        return self.state == "running"


@dataclass
class PodRun:
    uid: str
    namespace: str
    name: str
    ip: str
    containers: list[Container]
    started: float


class FakeKubelet:
    """One node's agent. `start()` registers and runs it on a thread; `stop()` is the node gone silent."""

    def __init__(self, name: str, ip: str, index: int, rest: Rest, runtime: Runtime, version: str,
                 lease_interval: float = 1.0, status_interval: float = 10.0, tick: float = 0.5,
                 serving_cert: CertFiles | None = None) -> None:
        self.name, self.ip, self.index = name, ip, index
        self.rest = rest
        self.runtime = runtime
        self.version = version
        self.lease_interval, self.status_interval, self.tick = lease_interval, status_interval, tick
        self.images: set[str] = set()  # images present on the node (IfNotPresent pulls)
        self.pods: dict[str, PodRun] = {}
        self.disk_pressure = False
        self.evict_left = 0
        self.boot_id = _digest(f"{name}-{time.time()}")[:32]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_lease = self._next_status = 0.0
        self._lease_rv = ""
        self._node_uid = ""
        self._status_dirty = True
        self._last_eviction = 0.0
        self._pod_seq = 10
        self._booted = time.time()
        # /metrics/resource on the node's IP (when given a serving certificate), for metrics-server
        self.metrics = ResourceMetricsEndpoint(ip, serving_cert, self.resource_metrics) if serving_cert else None

    # --- control ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._status_dirty = True
        self._next_lease = self._next_status = 0.0
        self._register()
        self._thread = threading.Thread(target=self._run, name=f"kubelet-{self.name}", daemon=True)
        self._thread.start()
        if self.metrics is not None:
            self.metrics.serving.set()

    def stop(self) -> None:
        if self.metrics is not None:
            self.metrics.serving.clear()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def close(self) -> None:
        self.stop()
        for pod in self.pods.values():
            for c in pod.containers:
                self._stop_server(c)
        if self.metrics is not None:
            self.metrics.close()
        self.rest.close()

    def resource_metrics(self) -> str:
        """The text of /metrics/resource: every running container's CPU and memory as of its last tick."""
        with self._lock:
            usages = [ContainerUsage(run.namespace, run.name, c.name, c.cpu_seconds, WORKING_SET, c.started,
                                     c.cpu_at)
                      for run in self.pods.values() for c in run.containers if c.state == "running"]
        return render(usages, self._booted, time.time())

    def set_version(self, version: str) -> None:
        """An upgraded (or downgraded) kubelet: the next NodeStatus carries the version."""
        with self._lock:
            self.version = version
            self._status_dirty = True

    def fill_disk(self, evict: int) -> None:
        """The node's disk fills: DiskPressure, and the kubelet evicts `evict` pods to relieve it."""
        with self._lock:
            self.disk_pressure, self.evict_left = True, evict
            self._status_dirty = True

    def free_disk(self) -> None:
        with self._lock:
            self.disk_pressure, self.evict_left = False, 0
            self._status_dirty = True

    def oom_kill(self, namespace: str, pod: str, container: str) -> None:
        """The kernel kills this container for exceeding its memory limit, once."""
        with self._lock:
            for run in self.pods.values():
                if (run.namespace, run.name) == (namespace, pod):
                    for c in run.containers:
                        if c.name == container:
                            c.oom = True
                            return
        raise KeyError(f"{namespace}/{pod}/{container} does not run on {self.name}")

    # --- the agent loop ---------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for step in (self._lease, self._node_status, self._sync_pods):
                try:
                    step(now)
                except ApiError as exc:
                    log.debug("kubelet %s: %s", self.name, exc)
                except Exception as exc:  # noqa: BLE001 - API unreachable (quorum lost, server down): retry
                    log.debug("kubelet %s: %s: %s", self.name, type(exc).__name__, exc)
            self._stop.wait(self.tick)

    def _node_doc(self) -> JSON:
        labels = {
            "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": "k3s", "beta.kubernetes.io/instance-type": "k3s",
        }
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.name, "labels": labels,
                             "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                             "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
                "spec": {"providerID": f"k3s://{self.name}"},
                "status": self._node_status_doc(time.time())}

    def _register(self) -> None:
        try:
            node = self.rest.create("/api/v1/nodes", self._node_doc())
        except ApiError as exc:
            if exc.reason != "AlreadyExists":
                raise
            node = self.rest.get(f"/api/v1/nodes/{self.name}")
        self._node_uid = str(node["metadata"]["uid"])

    def _node_status_doc(self, now: float) -> JSON:
        beat = rfc3339(now)

        def condition(kind: str, status: str, reason: str, message: str) -> JSON:
            return {"type": kind, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": beat, "lastTransitionTime": beat}

        disk = ("True", "KubeletHasDiskPressure", "kubelet has disk pressure") if self.disk_pressure else (
            "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure")
        resources = {"cpu": "4", "memory": "7934180Ki", "pods": "110", "ephemeral-storage": "157197504Ki"}
        return {
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                          "kubelet has sufficient memory available"),
                condition("DiskPressure", *disk),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": self.ip}, {"type": "Hostname", "address": self.name}],
            "capacity": resources, "allocatable": resources,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.metrics.port if self.metrics else 10250}},
            "nodeInfo": {"machineID": _digest(self.name)[:32], "systemUUID": _digest(self.name)[32:64],
                         "bootID": self.boot_id, "kernelVersion": KERNEL, "osImage": OS_IMAGE,
                         "containerRuntimeVersion": RUNTIME_VERSION, "kubeletVersion": self.version,
                         "operatingSystem": "linux", "architecture": "amd64"},
        }

    def _lease(self, now: float) -> None:
        if now < self._next_lease:
            return
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        body: JSON = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": "kube-node-lease",
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": self.name,
                                              "uid": self._node_uid}]},
            "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": micro_time(now)},
        }
        try:
            if self._lease_rv:
                body["metadata"]["resourceVersion"] = self._lease_rv
                lease = self.rest.put(path, body)
            else:
                lease = self.rest.create("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", body)
        except ApiError as exc:
            if exc.reason in ("Conflict", "AlreadyExists"):
                self._lease_rv = str(self.rest.get(path)["metadata"]["resourceVersion"])
            raise
        self._lease_rv = str(lease["metadata"]["resourceVersion"])
        self._next_lease = now + self.lease_interval

    def _node_status(self, now: float) -> None:
        with self._lock:
            dirty = self._status_dirty
        if not dirty and now < self._next_status:
            return
        self.rest.patch(f"/api/v1/nodes/{self.name}/status", {"status": self._node_status_doc(now)})
        with self._lock:
            self._status_dirty = False
        self._next_status = now + self.status_interval

    # --- pods -------------------------------------------------------------------------------------
    def _sync_pods(self, now: float) -> None:
        pods = self.rest.items("/api/v1/pods", fieldSelector=f"spec.nodeName={self.name}")
        seen = set()
        for pod in pods:
            meta, status = pod["metadata"], pod.get("status") or {}
            uid = str(meta["uid"])
            seen.add(uid)
            if meta.get("deletionTimestamp"):
                self._confirm_deletion(pod)
                continue
            if status.get("phase") in ("Failed", "Succeeded"):
                continue
            with self._lock:
                run = self.pods.get(uid) or self._admit(pod, now)
                self._step(run, now)
            desired = self._pod_status(pod, run, now)
            if _differs(status, desired):
                pod["status"] = desired
                self.rest.put(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", pod)
        self._evict_if_needed(pods, now)
        with self._lock:
            for uid in [u for u in self.pods if u not in seen]:
                for c in self.pods.pop(uid).containers:
                    self._stop_server(c)

    def _admit(self, pod: JSON, now: float) -> PodRun:
        spec = pod["spec"]
        if spec.get("hostNetwork"):
            ip = self.ip
        else:
            self._pod_seq += 1
            ip = f"10.42.{self.index}.{self._pod_seq}"
        containers = [
            Container(str(c["name"]), str(c["image"]), port=int(((c.get("ports") or [{}])[0]).get("containerPort", 0)))
            for c in spec.get("containers") or []
        ]
        run = PodRun(str(pod["metadata"]["uid"]), str(pod["metadata"]["namespace"]), str(pod["metadata"]["name"]),
                     ip, containers, now)
        self.pods[run.uid] = run
        return run

    def _step(self, run: PodRun, now: float) -> None:
        with self.runtime.lock:
            crashing, unpullable = set(self.runtime.crashing), set(self.runtime.unpullable)
        for c in run.containers:
            if c.state == "running":
                c.cpu_seconds += self.runtime.cpu_of(c.image) * max(now - c.cpu_at, 0.0)
                c.cpu_at = now
                if c.oom:
                    self._terminate(c, now, "OOMKilled", 137)
                elif c.image in crashing and now - c.started >= 0.5:
                    self._terminate(c, now, "Error", 2)
            if c.state != "running" and now >= c.next_try:
                if c.image not in self.images and c.image in unpullable:
                    c.reason, c.pull_failed = "ErrImagePull", now
                    c.pull_backoff = min(c.pull_backoff * 2 or BACKOFF_START, BACKOFF_MAX)
                    c.next_try = now + c.pull_backoff
                else:
                    self.images.add(c.image)
                    c.state, c.reason, c.started = "running", "", now
                    c.cpu_seconds, c.cpu_at = 0.001, now  # a new run: the kubelet's counter starts again
                    c.container_id = _digest(f"{run.uid}/{c.name}/{c.restarts}")
                    self._start_server(run, c)
            elif c.state != "running" and c.reason == "ErrImagePull" and now - c.pull_failed >= 1.0:
                c.reason = "ImagePullBackOff"

    def _terminate(self, c: Container, now: float, reason: str, code: int) -> None:
        self._stop_server(c)
        c.last = {"exitCode": code, "reason": reason, "startedAt": rfc3339(c.started), "finishedAt": rfc3339(now),
                  "containerID": f"containerd://{c.container_id}"}
        c.oom = False
        c.restarts += 1
        c.state, c.reason = "waiting", "CrashLoopBackOff"
        c.next_try = now + c.backoff
        c.backoff = min(c.backoff * 2 or BACKOFF_START, BACKOFF_MAX)

    def _start_server(self, run: PodRun, c: Container) -> None:
        start = self.runtime.servers.get(c.image)
        if start is None or not c.port:
            return
        c.server, c.pod_ip = start(), run.ip
        with self.runtime.lock:
            self.runtime.routes[(run.ip, c.port)] = c.server.address

    def _stop_server(self, c: Container) -> None:
        if c.server is not None:
            with self.runtime.lock:
                self.runtime.routes.pop((c.pod_ip, c.port), None)
            c.server.close()
            c.server = None

    def _pod_status(self, pod: JSON, run: PodRun, now: float) -> JSON:
        old = pod.get("status") or {}
        started_any = any(c.state == "running" or c.restarts for c in run.containers)
        ready = all(c.ready for c in run.containers)
        not_ready = [c.name for c in run.containers if not c.ready]

        def condition(kind: str, ok: bool, reason: str = "", message: str = "") -> JSON:
            previous: JSON = next((x for x in old.get("conditions") or [] if x.get("type") == kind), {})
            status = "True" if ok else "False"
            doc: JSON = {"type": kind, "status": status, "lastProbeTime": None,
                         "lastTransitionTime": previous.get("lastTransitionTime") if previous.get("status") == status
                         else rfc3339(now)}
            if not ok:
                doc |= {"reason": reason, "message": message}
            return doc

        missing = f"containers with unready status: [{' '.join(not_ready)}]"
        conditions = [
            condition("PodReadyToStartContainers", True),
            condition("Initialized", True),
            condition("Ready", ready, "ContainersNotReady", missing),
            condition("ContainersReady", ready, "ContainersNotReady", missing),
            condition("PodScheduled", True),
        ]
        conditions += [x for x in old.get("conditions") or [] if x.get("type") not in KUBELET_CONDITIONS]
        status: JSON = {
            "phase": "Running" if started_any else "Pending",
            "conditions": conditions,
            "hostIP": self.ip, "hostIPs": [{"ip": self.ip}],
            "podIP": run.ip, "podIPs": [{"ip": run.ip}],
            "startTime": rfc3339(run.started),
            "containerStatuses": [c.status() for c in run.containers],
        }
        if old.get("qosClass"):
            status["qosClass"] = old["qosClass"]
        return status

    def _confirm_deletion(self, pod: JSON) -> None:
        meta = pod["metadata"]
        with self._lock:
            run = self.pods.pop(str(meta["uid"]), None)
        for c in run.containers if run else []:
            self._stop_server(c)
        try:
            self.rest.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", gracePeriodSeconds=0,
                             preconditions={"uid": meta["uid"]})
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    def _evict_if_needed(self, pods: list[JSON], now: float) -> None:
        """The eviction manager: one pod per pass while the disk is short, lowest priority first."""
        with self._lock:
            if not self.disk_pressure or self.evict_left <= 0 or now - self._last_eviction < 1.0:
                return
        candidates = [
            p for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") in ("Running", "Pending")
            and not str(p["spec"].get("priorityClassName", "")).startswith("system-")
        ]
        if not candidates:
            return
        candidates.sort(key=lambda p: (int(p["spec"].get("priority", 0)),
                                       (p.get("status") or {}).get("qosClass") != "BestEffort",
                                       p["metadata"]["namespace"], p["metadata"]["name"]))
        victim = candidates[0]
        meta = victim["metadata"]
        with self._lock:
            run = self.pods.get(str(meta["uid"]))
            for c in run.containers if run else []:
                self._stop_server(c)
                c.state = "terminated"
        message = ("The node was low on resource: ephemeral-storage. Threshold quantity: 15%, "
                   "available: 9216Ki. ")
        victim["status"] = {
            **(victim.get("status") or {}),
            "phase": "Failed", "reason": "Evicted", "message": message,
            "conditions": [
                {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                 "message": message, "lastTransitionTime": rfc3339(now), "lastProbeTime": None},
                {"type": "Ready", "status": "False", "reason": "PodFailed", "lastTransitionTime": rfc3339(now),
                 "lastProbeTime": None},
            ],
            "containerStatuses": [c.status() for c in (run.containers if run else [])],
        }
        self.rest.put(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", victim)
        with self._lock:
            self.evict_left -= 1
            self._last_eviction = now


def _differs(current: JSON, desired: JSON) -> bool:
    """Whether the posted status differs from the kubelet's view in anything the kubelet owns."""

    def conditions(status: JSON) -> set[tuple[str, str]]:
        return {(str(c.get("type")), str(c.get("status"))) for c in status.get("conditions") or []
                if c.get("type") in KUBELET_CONDITIONS}

    def containers(status: JSON) -> list[tuple[Any, ...]]:
        out = []
        for c in status.get("containerStatuses") or []:
            state = c.get("state") or {}
            kind = next(iter(state), "")
            last = ((c.get("lastState") or {}).get("terminated") or {}).get("reason")
            out.append((c.get("name"), c.get("ready"), c.get("restartCount"), kind,
                        (state.get(kind) or {}).get("reason"), last))
        return out

    return (
        current.get("phase") != desired.get("phase")
        or current.get("podIP") != desired.get("podIP")
        or conditions(current) != conditions(desired)
        or containers(current) != containers(desired)
    )
