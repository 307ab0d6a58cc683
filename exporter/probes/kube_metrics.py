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

from exporter.probes.kube_client import KubeClient
from exporter.probes.kube_probe import KubeProbe
from exporter.probes.kube_transforms import pod_usage_samples, window_samples
from exporter.samples import Samples

RESOURCE = "pods.metrics.k8s.io"


class PodMetricsProbe(KubeProbe):
    """Per-container CPU (cores) and memory working set of one namespace's pods, from metrics.k8s.io."""

    kind = "kubernetes_pod_metrics"

    def __init__(self, name: str, kube: KubeClient, namespace: str) -> None:
        super().__init__(name, kube)
        self.namespace = namespace
        self.resources = ((RESOURCE, namespace),)

    async def _collect(self) -> Samples:
        s = Samples()
        window = 0.0
        path = "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"
        async for page in self.kube.list_pages(RESOURCE, self.namespace, path):  # a page at a time, like pods
            samples, longest = pod_usage_samples(self.namespace, page)
            s.extend(samples)
            window = max(window, longest)
        s.extend(window_samples(self.namespace, window))
        return s
