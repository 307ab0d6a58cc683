"""honeyDue's cluster as manifests: the k3s system workloads and the honeydue namespace's deployments.

Placement is left to the binder and the controllers; only the shapes the exporter reads are k3s' own
(the `app.kubernetes.io/name` labels, the svclb-traefik DaemonSet, the metrics-server APIService).
metrics-server's container really serves its discovery (the fake kubelet starts it), and the
aggregator reaches it at the pod's IP through the API servers' egress tunnel.
"""

from __future__ import annotations

from typing import Any

from testbed.kube.rest import JSON

REGISTRY = "git.example.com/honeydue"  # the Gitea registry
RELEASE = "1.4.2"
API_IMAGE = f"{REGISTRY}/api:{RELEASE}"
METRICS_SERVER_IMAGE = "rancher/mirrored-metrics-server:v0.8.0"
REDIS_LABEL = ("honeydue/redis", "true")
METRICS_API = "v1beta1.metrics.k8s.io"

# namespace, deployment, image, replicas
DEPLOYMENTS: tuple[tuple[str, str, str, int], ...] = (
    ("honeydue", "api", API_IMAGE, 3),
    ("honeydue", "admin", f"{REGISTRY}/admin:{RELEASE}", 1),
    ("honeydue", "worker", f"{REGISTRY}/worker:{RELEASE}", 1),
    ("honeydue", "redis", "redis:7.4-alpine", 1),
    ("honeydue", "vmagent", "victoriametrics/vmagent:v1.130.0", 1),
    ("kube-system", "coredns", "rancher/mirrored-coredns-coredns:1.12.3", 1),
    ("kube-system", "metrics-server", METRICS_SERVER_IMAGE, 1),
    ("kube-system", "traefik", "rancher/mirrored-library-traefik:3.5.1", 1),
    ("kube-system", "local-path-provisioner", "rancher/local-path-provisioner:v0.0.32", 1),
)
SVCLB_IMAGE = "rancher/klipper-lb:v0.4.13"
SVCLB = "svclb-traefik-4d6a1f2e"
CRITICAL_TOLERATIONS: list[JSON] = [
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
]


def namespace(name: str) -> JSON:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


METRICS_PORT = 10250  # k3s' metrics-server listens on 10250 in its pod


def deployment(ns: str, name: str, image: str, replicas: int, progress_deadline: int) -> JSON:
    labels = {"app.kubernetes.io/name": name}
    container: JSON = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                       "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}}
    pod: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 30}
    if ns == "honeydue":  # honeyDue's own containers have a CPU limit (the CPU-bound ratio's denominator)
        container["resources"]["limits"]["cpu"] = "1"
    if ns == "kube-system":
        pod |= {"priorityClassName": "system-cluster-critical", "tolerations": CRITICAL_TOLERATIONS}
    if name == "redis":
        pod["nodeSelector"] = dict([REDIS_LABEL])
    if name == "metrics-server":
        labels["k8s-app"] = "metrics-server"
        container["ports"] = [{"name": "https", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    if name == "coredns":
        labels["k8s-app"] = "kube-dns"
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": replicas, "progressDeadlineSeconds": progress_deadline, "revisionHistoryLimit": 3,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def svclb_daemonset() -> JSON:
    labels = {"app": SVCLB, "svccontroller.k3s.cattle.io/svcname": "traefik"}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": SVCLB, "namespace": "kube-system", "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "priorityClassName": "system-node-critical", "tolerations": CRITICAL_TOLERATIONS,
                "containers": [{"name": "lb-tcp-80", "image": SVCLB_IMAGE}],
            }},
        },
    }


def metrics_server_api() -> list[JSON]:
    """The Service in front of metrics-server and the APIService that aggregates it (k3s' manifests)."""
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "metrics-server", "namespace": "kube-system", "labels": {"k8s-app": "metrics-server"}},
        "spec": {"selector": {"k8s-app": "metrics-server"},
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}]},
    }
    apiservice = {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": METRICS_API, "labels": {"k8s-app": "metrics-server"}},
        "spec": {"service": {"name": "metrics-server", "namespace": "kube-system", "port": 443},
                 "group": "metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": True,
                 "groupPriorityMinimum": 100, "versionPriority": 100},
    }
    return [service, apiservice]


API_PORT = 8000


def api_service() -> JSON:
    """honeyDue's api Service: the endpoint slice controller keeps its EndpointSlices, which netcheck reads
    to find the api pods and their nodes (tcp.discover)."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "api", "namespace": "honeydue", "labels": {"app.kubernetes.io/name": "api"}},
        "spec": {"selector": {"app.kubernetes.io/name": "api"},
                 "ports": [{"name": "http", "port": API_PORT, "targetPort": API_PORT, "protocol": "TCP"}]},
    }


def api_pdb() -> JSON:
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "api", "namespace": "honeydue"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "api"}}},
    }


def honeydue(progress_deadline: int) -> list[JSON]:
    """Every object of the healthy cluster, in the order to create them."""
    objects = [namespace("honeydue")]
    objects += [deployment(ns, name, image, replicas, progress_deadline)
                for ns, name, image, replicas in DEPLOYMENTS]
    objects += [svclb_daemonset(), api_pdb(), api_service(), *metrics_server_api()]
    return objects
