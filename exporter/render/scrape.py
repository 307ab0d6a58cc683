"""How vmagent (or Prometheus) scrapes the exporter and the netcheck DaemonSet: one definition, three shapes.

The same jobs become the raw `scrape_configs` of deploy/vmagent/ (kubernetes_sd on pods), and the operators'
scrape objects of deploy/components/ (VMServiceScrape + VMPodScrape, ServiceMonitor + PodMonitor), so the
series' identity is the same whichever way a cluster scrapes:

- job `honeydue-exporter` (the Deployment, behind its Service) and `honeydue-netcheck` (the DaemonSet's pods);
- a stable `instance` (`honeydue-exporter`; `netcheck-<node>`), so an alert survives a pod being replaced;
- `kubernetes_namespace` on every series, `kubernetes_pod_name` / `kubernetes_node` only on `up` and
  honeydue_exporter_build_info (metric relabeling): a restart or reschedule keeps every other series' identity;
- no target label named node, namespace, pod or container: the exporter's own labels of those names reach the
  TSDB unchanged (a target label of the same name would rename them to exported_<name>). The operators add
  namespace, service, pod, container, endpoint (and node) target labels of their own; the objects drop them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAMESPACE = "honeydue"
PORT = "http-metrics"
INTERVAL, TIMEOUT = "15s", "10s"
APP = "honeydue-exporter"
# Target labels the operators set on every target before the objects' own relabelings (VictoriaMetrics'
# and Prometheus' operators alike; `node` only for an endpoint backed by a Node): dropped, see the module docstring.
OPERATOR_TARGET_LABELS = ("namespace", "service", "pod", "container", "endpoint", "node")
# The only series that keep the pod and node they were scraped from (`up` is the scraper's own, untouched by
# metric relabeling). Regex "^$" matches the empty value only; an empty regex would be dropped by the
# operators' types (omitempty) and fall back to "(.*)".
KEEP_POD = "honeydue_exporter_build_info"


@dataclass(frozen=True)
class Job:
    name: str  # the job label
    component: str  # app.kubernetes.io/component of the pods
    via: str  # "service": the Deployment's Service (endpoints); "pods": the DaemonSet's pods
    description: str

    @property
    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": self.component}


JOBS = (
    Job("honeydue-exporter", "exporter", "service", "the exporter (one replica), through its Service"),
    Job("honeydue-netcheck", "netcheck", "pods", "the netcheck DaemonSet's pod on every node"),
)


def _instance(job: Job) -> dict[str, Any]:
    if job.via == "service":  # one replica: the job is the identity
        return {"target_label": "instance", "replacement": job.name}
    # one pod per node: the node is the stable identity
    return {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "instance", "replacement": "netcheck-$1"}


def identity(job: Job) -> list[dict[str, Any]]:
    """Target relabeling common to every shape (Prometheus' snake_case keys)."""
    return [
        _instance(job),
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "kubernetes_namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "kubernetes_pod_name"},
        {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "kubernetes_node"},
    ]


def metric_relabeling() -> list[dict[str, Any]]:
    """The pod and node stay on `up` and build_info only (`__tmp_keep` marks the series that keep them)."""
    return [
        {"source_labels": ["__name__"], "regex": KEEP_POD, "target_label": "__tmp_keep", "replacement": "1"},
        {"source_labels": ["__tmp_keep"], "regex": "^$", "target_label": "kubernetes_pod_name", "replacement": ""},
        {"source_labels": ["__tmp_keep"], "regex": "^$", "target_label": "kubernetes_node", "replacement": ""},
        {"regex": "__tmp_keep", "action": "labeldrop"},
    ]


def raw_job(job: Job) -> dict[str, Any]:
    """A vmagent/Prometheus scrape job discovering the pods itself (kubernetes_sd, role pod)."""
    keep = [
        {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name",
                           "__meta_kubernetes_pod_label_app_kubernetes_io_component"],
         "regex": f"{APP};{job.component}", "action": "keep"},
        {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": PORT, "action": "keep"},
        {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
    ]
    return {
        "job_name": job.name, "scrape_interval": INTERVAL, "scrape_timeout": TIMEOUT,
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [NAMESPACE]}}],
        "relabel_configs": keep + identity(job),
        "metric_relabel_configs": metric_relabeling(),
    }


def operator_relabeling(job: Job) -> list[dict[str, Any]]:
    """What an operator's scrape object adds after the operator's own target relabeling: the job's name (the
    operators would name it after the Service, or namespace/object for pods), the identity, and the operator's
    default target labels dropped."""
    return [
        {"target_label": "job", "replacement": job.name},
        *identity(job),
        {"regex": "|".join(OPERATOR_TARGET_LABELS), "action": "labeldrop"},
    ]


def camel(rule: dict[str, Any]) -> dict[str, Any]:
    """A relabel rule with the operators' camelCase keys."""
    names = {"source_labels": "sourceLabels", "target_label": "targetLabel"}
    return {names.get(key, key): value for key, value in rule.items()}
