"""CPU and memory each honeyDue container uses, from the metrics API (metrics-server's metrics.k8s.io).

Chapter 16's "Everything is slow" asks "kubectl top pods: are we CPU-bound?". `kubectl top` reads
PodMetrics from metrics.k8s.io/v1beta1, the aggregated API metrics-server serves; this probe reads the
same list for one namespace, through the shared KubeClient (paged, bounded, timeouts), and publishes each
container's usage. Whether a container is CPU-bound is its usage against its CPU limit, which the pods
probe publishes from the pods it lists anyway (honeydue_kube_pod_container_resource_limits); the rule
divides the two. The metrics API being unavailable (metrics-server down: the aggregator answers 503) is
honeydue_kube_resource_up{resource="pods.metrics.k8s.io"} 0 with a reason, like any other resource.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from exporter.probes.kube_client import KubeClient, KubeRequestError
from exporter.probes.kube_probe import KubeProbe, object_name
from exporter.samples import Samples, gauge

RESOURCE = "pods.metrics.k8s.io"

CPU_USAGE = gauge(
    "honeydue_kube_pod_container_cpu_usage_cores",
    "CPU the container used over metrics-server's last window, in cores (kubectl top pods).",
    "namespace", "pod", "container",
)
MEMORY_USAGE = gauge(
    "honeydue_kube_pod_container_memory_working_set_bytes",
    "The container's memory working set as metrics-server last read it from the kubelet.",
    "namespace", "pod", "container",
)
WINDOW = gauge(
    "honeydue_kube_pod_metrics_window_seconds",
    "The longest window metrics-server averaged a pod's CPU over (its metric resolution).",
    "namespace",
)

_SUFFIXES = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")


def parse_quantity(value: object) -> float:
    """A Kubernetes resource quantity ("12345678n", "250m", "64Mi", "1.5") as a plain number.

    Raises ValueError for anything else (the probe reports that as a protocol error).
    """
    match = _QUANTITY.match(str(value).strip()) if isinstance(value, str | int | float) else None
    if match is None:
        raise ValueError(f"not a resource quantity: {str(value)[:40]!r}")
    try:
        number = Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""]
    except InvalidOperation:
        raise ValueError(f"not a resource quantity: {str(value)[:40]!r}") from None
    result = float(number)
    if result < 0 or result != result or result == float("inf"):
        raise ValueError(f"not a usable resource quantity: {str(value)[:40]!r}")
    return result


def parse_duration(value: object) -> float | None:
    """A metav1.Duration as metrics-server writes the window ("10.5s", "1m0s"); None if absent or odd."""
    if not isinstance(value, str) or not value:
        return None
    match = _DURATION.match(value)
    if match is None:
        return None
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


class PodMetricsProbe(KubeProbe):
    """Per-container CPU (cores) and memory working set of one namespace's pods, from metrics.k8s.io."""

    kind = "kubernetes_pod_metrics"

    def __init__(self, name: str, kube: KubeClient, namespace: str) -> None:
        super().__init__(name, kube)
        self.namespace = namespace
        self.resources = ((RESOURCE, namespace),)

    async def _collect(self) -> Samples:
        ns = self.namespace
        s = Samples()
        window = 0.0
        path = "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"
        async for page in self.kube.list_pages(RESOURCE, ns, path):
            for item in page:  # one page at a time, like the pods probe
                pod = object_name(item)
                if not pod:
                    continue
                seconds = parse_duration(item.get("window"))
                if seconds is not None:
                    window = max(window, seconds)
                for container in item.get("containers") or []:
                    if not isinstance(container, dict):
                        raise KubeRequestError(RESOURCE, ns, "protocol")
                    usage = container.get("usage") or {}
                    labels = {"namespace": ns, "pod": pod, "container": str(container.get("name", ""))}
                    if "cpu" in usage:
                        s.add(CPU_USAGE, parse_quantity(usage["cpu"]), **labels)
                    if "memory" in usage:
                        s.add(MEMORY_USAGE, parse_quantity(usage["memory"]), **labels)
        if window:
            s.add(WINDOW, window, namespace=ns)
        return s
