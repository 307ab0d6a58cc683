"""The base every Kubernetes probe shares (kubernetes.py, kube_metrics.py): one resource's read either
yields its samples and `resource_up` 1, or `resource_up` 0 with the reason of the request that failed.

Its own module so the probe modules import it without importing each other.
"""

from __future__ import annotations

from exporter.engine import Probe
from exporter.probes.kube_client import KubeClient, KubeRequestError
from exporter.samples import Samples, gauge, info

RESOURCE_UP = gauge(
    "honeydue_kube_resource_up",
    "Whether the exporter could read this resource in its last run (namespace empty = cluster-scoped).",
    "resource", "namespace",
)
RESOURCE_ERROR = info(
    "honeydue_kube_resource_error_info",
    "Present while reading the resource fails: forbidden/unauthorized = RBAC or credentials, not the cluster.",
    "resource", "namespace", "reason",
)


class KubeProbe(Probe):
    """Common shape: remember which request failed so `failed()` names the resource and reason."""

    family = "kubernetes"

    resources: tuple[tuple[str, str], ...] = ()

    def __init__(self, name: str, kube: KubeClient) -> None:
        super().__init__(name, kube.cfg.interval, kube.cfg.timeout)
        self.kube = kube
        self._error: KubeRequestError | None = None

    async def collect(self) -> Samples:
        self._error = None
        try:
            samples = await self._collect()
        except KubeRequestError as exc:
            self._error = exc
            raise
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            # An object of the wrong shape (a string where a mapping belongs, ...): the API's reply
            # is unusable for this resource, which is a protocol problem, not a crash.
            resource, namespace = self.resources[0] if self.resources else ("version", "")
            self._error = KubeRequestError(resource, namespace, "protocol")
            raise self._error from exc
        for resource, namespace in self.resources:
            samples.add(RESOURCE_UP, 1, resource=resource, namespace=namespace)
        return samples

    async def _collect(self) -> Samples:
        raise NotImplementedError

    def failed(self, reason: str) -> Samples:
        s = Samples()
        error = self._error
        for resource, namespace in self.resources:
            s.add(RESOURCE_UP, 0, resource=resource, namespace=namespace)
            if error is not None and (error.resource, error.namespace) == (resource, namespace):
                s.add(RESOURCE_ERROR, resource=resource, namespace=namespace, reason=error.reason)
            elif error is None:
                s.add(RESOURCE_ERROR, resource=resource, namespace=namespace, reason=reason)
            else:
                s.add(RESOURCE_ERROR, resource=resource, namespace=namespace, reason="not_attempted")
        return s

    async def close(self) -> None:
        self.kube.close()

