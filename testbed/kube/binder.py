"""The scheduler's one decision, made simply: bind each pending pod to a node (pods/binding).

kube-scheduler is not run (binding pods here is simpler and deterministic, which exact-value tests
need). The filters are the scheduler's that matter for honeyDue's workloads: a cordoned node
(NodeUnschedulable), taints with NoSchedule/NoExecute the pod does not tolerate (TaintToleration:
not-ready, unreachable, disk-pressure, unschedulable), nodeSelector and required node affinity
(NodeAffinity, which DaemonSet pods use to name their node). Among the nodes left it picks the one
with the fewest pods of the same owner, then the fewest pods, then the first by name.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from testbed.kube.rest import JSON, ApiError, Rest

log = logging.getLogger("testbed.kube.binder")


def tolerates(tolerations: list[JSON], taint: JSON) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _expression(expr: JSON, values: dict[str, str]) -> bool:
    key, op, wanted = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    present = key in values
    if op == "In":
        return present and values[key] in wanted
    if op == "NotIn":
        return not present or values[key] not in wanted
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    return False


def fits(pod: JSON, node: JSON) -> bool:
    spec, meta = pod.get("spec") or {}, node.get("metadata") or {}
    labels: dict[str, str] = meta.get("labels") or {}
    tolerations = spec.get("tolerations") or []
    if (node.get("spec") or {}).get("unschedulable") and not tolerates(
            tolerations, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}):
        return False
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return False
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if terms:
        fields = {"metadata.name": str(meta.get("name", ""))}
        return any(
            all(_expression(e, labels) for e in term.get("matchExpressions") or [])
            and all(_expression(e, fields) for e in term.get("matchFields") or [])
            for term in terms
        )
    return True


def _owner(pod: JSON) -> str:
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    return str(next((o.get("uid") for o in owners if o.get("controller")), ""))


def choose(pod: JSON, nodes: list[JSON], pods: list[JSON]) -> str | None:
    """The node for one pending pod, or None when no node fits."""
    owner = _owner(pod)

    def load(node: str) -> tuple[int, int, str]:
        here = [p for p in pods if (p.get("spec") or {}).get("nodeName") == node
                and (p.get("status") or {}).get("phase") in ("Pending", "Running")
                and not p["metadata"].get("deletionTimestamp")]
        return sum(1 for p in here if owner and _owner(p) == owner), len(here), node

    names = [str(n["metadata"]["name"]) for n in nodes if fits(pod, n)]
    return min(names, key=load) if names else None


class Binder:
    """Binds pending pods every `interval` seconds on its own thread, with the admin's credentials."""

    def __init__(self, rest: Rest, interval: float = 0.3) -> None:
        self.rest = rest
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="binder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.rest.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.bind_pending()
            except Exception as exc:  # noqa: BLE001 - API unavailable (quorum lost): try again next pass
                log.debug("binder: %s: %s", type(exc).__name__, exc)

    def bind_pending(self) -> int:
        pending = self.rest.items("/api/v1/pods", fieldSelector="spec.nodeName=,status.phase=Pending")
        if not pending:
            return 0
        nodes = self.rest.items("/api/v1/nodes")
        pods = self.rest.items("/api/v1/pods")
        bound = 0
        for pod in sorted(pending, key=lambda p: str(p["metadata"].get("creationTimestamp", ""))):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            node = choose(pod, nodes, pods)
            if node is None:
                continue
            meta = pod["metadata"]
            body: dict[str, Any] = {"apiVersion": "v1", "kind": "Binding",
                                    "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                                    "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
            try:
                self.rest.create(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body)
            except ApiError as exc:
                log.debug("binder: %s/%s: %s", meta["namespace"], meta["name"], exc)
                continue
            pod.setdefault("spec", {})["nodeName"] = node
            pods.append(pod)
            bound += 1
        return bound
