"""The scrape job an operator's scrape object stands for, as the operators generate it for vmagent or Prometheus.

No operator runs here, so its translation is written out from what both operators document and do: a
ServiceMonitor / VMServiceScrape is a job on kubernetes_sd role `endpoints` in the object's namespace that keeps
the endpoints of Services matching the selector and the named port, then sets target labels of its own
(namespace, service, pod, container, endpoint, node for node-backed endpoints; job = the Service's name) before
the object's relabelings; a PodMonitor / VMPodScrape is a job on role `pod` that keeps the selected pods' named
container port, drops finished pods, sets namespace, container, pod and endpoint, and job = `<namespace>/<name>`,
before the object's relabelings. The object's metric relabelings become metric_relabel_configs.

tests/test_operator_objects.py runs the result through a real vmagent (strict parse, and scraping a real
exporter with discovered-target labels) to show the shipped objects keep the raw jobs' series identity.
"""

from __future__ import annotations

import re
from typing import Any

SERVICE_KINDS = {"ServiceMonitor", "VMServiceScrape"}
POD_KINDS = {"PodMonitor", "VMPodScrape"}
_SNAKE = {"sourceLabels": "source_labels", "targetLabel": "target_label"}


def _label(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def snake(rule: dict[str, Any]) -> dict[str, Any]:
    return {_SNAKE.get(key, key): value for key, value in rule.items()}


def _endpoints(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]
    return list(spec.get("endpoints") or spec.get("podMetricsEndpoints") or [])


def _relabelings(endpoint: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    relabel = endpoint.get("relabelings") or endpoint.get("relabelConfigs") or []
    metric = endpoint.get("metricRelabelings") or endpoint.get("metricRelabelConfigs") or []
    return [snake(r) for r in relabel], [snake(r) for r in metric]


def scrape_jobs(obj: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """One scrape_config per endpoint of the object."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    selector = obj["spec"]["selector"]["matchLabels"]
    jobs = []
    for index, endpoint in enumerate(_endpoints(obj)):
        relabel, metric = _relabelings(endpoint)
        port = endpoint["port"]
        if kind in SERVICE_KINDS:
            prefix = "serviceMonitor" if kind == "ServiceMonitor" else "serviceScrape"
            own = [{"source_labels": [f"__meta_kubernetes_service_label_{_label(k)}"], "regex": v, "action": "keep"}
                   for k, v in selector.items()]
            own += [
                {"source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": port, "action": "keep"},
                {"source_labels": ["__meta_kubernetes_endpoint_address_target_kind",
                                   "__meta_kubernetes_endpoint_address_target_name"],
                 "separator": ";", "regex": "Node;(.*)", "replacement": "${1}", "target_label": "node"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
                {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"},
                {"target_label": "endpoint", "replacement": port},
            ]
            role = "endpoints"
        else:
            prefix = "podMonitor" if kind == "PodMonitor" else "podScrape"
            own = [{"source_labels": [f"__meta_kubernetes_pod_label_{_label(k)}"], "regex": v, "action": "keep"}
                   for k, v in selector.items()]
            own += [
                {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)", "action": "drop"},
                {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": port, "action": "keep"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"target_label": "job", "replacement": f"{namespace}/{name}"},
                {"target_label": "endpoint", "replacement": port},
            ]
            role = "pod"
        job: dict[str, Any] = {
            "job_name": f"{prefix}/{namespace}/{name}/{index}",
            "honor_labels": bool(endpoint.get("honorLabels", False)),
            "kubernetes_sd_configs": [{"role": role, "namespaces": {"names": [namespace]}}],
            "metrics_path": endpoint.get("path", "/metrics"),
            "relabel_configs": own + relabel,
            "metric_relabel_configs": metric,
        }
        for source, target in (("interval", "scrape_interval"), ("scrapeTimeout", "scrape_timeout"),
                               ("scheme", "scheme")):
            if endpoint.get(source):
                job[target] = endpoint[source]
        jobs.append(job)
    return jobs
