"""The Kubernetes API client every Kubernetes reader shares: the Kubernetes probes, the metrics-API probe
and netcheck's EndpointSlice discovery (tcp.discover).

Where the credentials come from (in-cluster, kubeconfig or none), one ApiClient and one small thread pool:
the official client is synchronous, so every call runs off the event loop with connect/read timeouts and no
retries. Requests are built from API paths on the ApiClient (the same way as /readyz/etcd): the typed API
classes (CoreV1Api, ...) would import some 700 model classes, about 26 MiB of RSS, for replies that are read
as plain JSON anyway. Replies are bounded (`max_bytes`), lists are read in pages, and every failure becomes
a KubeRequestError with a bounded reason, never server text. No metrics are declared here: importing this
module costs the netcheck DaemonSet the client library only, not the Kubernetes family's probes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.client.exceptions import ApiException

from exporter.config import KubernetesConfig
from exporter.errors import MalformedReply, classify
from exporter.probes.deps import Dependencies

T = TypeVar("T")
log = logging.getLogger("exporter.probes.kube_client")

# What kube-apiserver's watch cache answers (429) while it cannot (re)load a resource from etcd.
STORAGE_UNAVAILABLE = "storage is (re)initializing"
# Bytes of a 429's Status body read to tell storage_unavailable from throttled (the message comes early).
ERROR_BODY_BYTES = 1024


# --- errors ----------------------------------------------------------------------------------
class KubeRequestError(Exception):
    """One API request failed; `reason` is a bounded word, the message holds no server text."""

    def __init__(self, resource: str, namespace: str, reason: str) -> None:
        self.resource, self.namespace, self.reason = resource, namespace, reason
        where = f"{resource} in {namespace}" if namespace else resource
        words = {"forbidden": "permission denied", "unauthorized": "authentication failed (unauthorized)"}
        super().__init__(f"reading {where}: {words.get(reason, reason)}")


def request_reason(exc: BaseException) -> str:
    """A bounded reason for one failed request: HTTP statuses by name, the rest via errors.classify.

    A 429 is `throttled` (API Priority and Fairness) unless its Status says the API server's cache of the
    resource cannot load from storage ("storage is (re)initializing"): that is an API server without etcd
    (quorum lost, etcd down), not load, and says `storage_unavailable`.
    """
    if isinstance(exc, KubeRequestError):
        return exc.reason
    if isinstance(exc, ApiException) and exc.status:
        return status_reason(int(exc.status), str(exc.body or ""))
    return classify(exc)


def status_reason(status: int, body: str = "") -> str:
    """The bounded reason of an HTTP error status (`body`: the start of its Status, for a 429)."""
    if status == 429 and STORAGE_UNAVAILABLE in body:
        return "storage_unavailable"
    named = {401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "throttled"}
    if status in named:
        return named[status]
    return "server_error" if status >= 500 else "http_error"


# --- credentials and client ------------------------------------------------------------------
def resolve_source(cfg: KubernetesConfig) -> tuple[str, Path | None]:
    """Which credentials to use: ("in-cluster"|"kubeconfig"|"none", kubeconfig path)."""
    if cfg.source == "off":
        return "none", None
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and Path(
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    ).is_file()
    if cfg.source == "in-cluster" or (cfg.source == "auto" and in_pod):
        return "in-cluster", None
    path = cfg.kubeconfig
    if path is None:
        env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        path = Path(env) if env else Path.home() / ".kube" / "config"
    if cfg.source == "kubeconfig" or path.is_file():
        return "kubeconfig", path
    return "none", None


def off_reason(cfg: KubernetesConfig) -> str:
    """Why the Kubernetes probes are off when resolve_source finds no credentials."""
    return "source: off" if cfg.source == "off" else "not running in a pod and no kubeconfig found"


class KubeClient:
    """One API client and one small thread pool shared by every Kubernetes probe (netcheck's discovery has its own)."""

    def __init__(self, cfg: KubernetesConfig, source: str, path: Path | None, deps: Dependencies) -> None:
        self.cfg = cfg
        self.source = source
        self._deps = deps
        configuration = kclient.Configuration()
        # Credentials that cannot be loaded (no service-account token or KUBERNETES_SERVICE_HOST with
        # `source: in-cluster`, a broken kubeconfig) fail every request as `unauthorized`, a value the
        # probes report and KubeExporterAccessDenied pages on; the exporter keeps serving everything else.
        self.unusable = ""
        try:
            if source == "in-cluster":
                kconfig.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                kconfig.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=str(path), context=cfg.context, client_configuration=configuration
                )
        except Exception as exc:  # noqa: BLE001 - any failure to load credentials is reported, never raised
            self.unusable = (str(exc).splitlines() or [""])[0][:200] or type(exc).__name__
            log.error("kubernetes credentials (%s) cannot be loaded: %s; every Kubernetes read fails as unauthorized",
                      source, self.unusable)
        configuration.retries = False  # a failure is reported, not retried inside the probe's budget
        self.host = configuration.host.rstrip("/")
        self.api = kclient.ApiClient(configuration)
        self.api.user_agent = "honeydue-exporter"
        # A hung API server must never starve other probes' threads: the Kubernetes calls get
        # their own pool, and every call ends by its read timeout, before the probe's timeout.
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kube")
        self._closed = False
        self._lock = threading.Lock()

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.cfg.connect_timeout, self.cfg.read_timeout)

    async def call(self, resource: str, namespace: str, fn: Callable[[], T]) -> T:
        """Run one blocking client call off the event loop; failures become KubeRequestError."""
        if self.unusable:
            raise KubeRequestError(resource, namespace, "unauthorized")
        loop = asyncio.get_running_loop()
        try:
            async with self._deps.throttle("kubernetes"):
                return await loop.run_in_executor(self._pool, fn)
        except (asyncio.CancelledError, KubeRequestError):
            raise
        except Exception as exc:
            raise KubeRequestError(resource, namespace, request_reason(exc)) from exc

    async def read_json(self, resource: str, namespace: str, path: str,
                        query: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        """GET one API path (`{namespace}` filled in) and return its JSON body, at most max_bytes of it."""

        def run() -> dict[str, Any]:
            method, url, headers, body, post = self.api.param_serialize(
                method="GET", resource_path=path, path_params={"namespace": namespace} if namespace else None,
                query_params=list(query), header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            raw = self.api.call_api(method, url, headers, body, post, _request_timeout=self.timeout).response
            try:
                if not 200 <= raw.status <= 299:
                    # An error body of unknown size is not read (a 429's first KiB is: it says why), and the
                    # connection is not reused.
                    detail = raw.read(ERROR_BODY_BYTES, decode_content=True) if raw.status == 429 else b""
                    raw.close()
                    raise ApiException(status=raw.status, reason=raw.reason,
                                       body=detail.decode("utf-8", "replace"))
                data = raw.read(self.cfg.max_bytes + 1, decode_content=True)
            finally:
                raw.release_conn()
            if len(data) > self.cfg.max_bytes:
                raise MalformedReply(f"response body larger than {self.cfg.max_bytes} bytes")
            try:
                body = json.loads(data)
            except ValueError:  # also UnicodeDecodeError
                raise MalformedReply("response body is not JSON") from None
            if not isinstance(body, dict):
                raise MalformedReply("unexpected response body")
            return body

        return await self.call(resource, namespace, run)

    async def list_pages(self, resource: str, namespace: str, path: str,
                         query: Sequence[tuple[str, str]] = ()) -> AsyncIterator[list[dict[str, Any]]]:
        """Each page of a list (limit/continue) in the API server's order (by name within a namespace)."""
        token = ""
        seen: set[str] = set()
        while True:
            page = [*query, ("limit", str(self.cfg.list_page_size))] + ([("continue", token)] if token else [])
            body = await self.read_json(resource, namespace, path, page)
            items = body.get("items") or []
            if not isinstance(items, list):
                raise KubeRequestError(resource, namespace, "protocol")
            yield [item for item in items if isinstance(item, dict)]
            token = str((body.get("metadata") or {}).get("continue") or "")
            if not token:
                return
            if token in seen:  # a server that hands out the same page again would never end
                raise KubeRequestError(resource, namespace, "protocol")
            seen.add(token)

    def readyz_etcd(self, host: str) -> tuple[int, str]:
        """GET /readyz/etcd on one server node's API (blocking); returns (status, body)."""
        method, url, headers, body, post = self.api.param_serialize(
            method="GET", resource_path="/readyz/etcd", auth_settings=["BearerToken"], _host=host
        )
        limit = self.cfg.readyz_timeout
        response = self.api.call_api(method, url, headers, body, post, _request_timeout=(limit, limit))
        raw = response.response
        try:  # the verdict is "ok" or a short list of checks: read 200 bytes at most
            return int(raw.status), raw.read(200, decode_content=True).decode("utf-8", "replace")
        finally:
            raw.release_conn()

    async def run(self, fn: Callable[[], T]) -> T:
        if self.unusable:
            raise KubeRequestError("", "", "unauthorized")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.api.close()  # type: ignore[no-untyped-call]
