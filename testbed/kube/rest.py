"""A small JSON client for the test cluster's API servers (urllib3, TLS verified against the run's CA).

The fake kubelets, the binder and the cluster's set-up use it with client certificates, the way a real
kubelet or k3s' supervisor talks to the API: plain JSON objects, strategic-merge or merge patches, and
the API's own Status on errors. The exporter under test never uses it (it has its own client).
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import urllib3

JSON = dict[str, Any]
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


class ApiError(Exception):
    """A non-2xx answer; `status` is the HTTP status, `reason` the Status reason (NotFound, Conflict, ...)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


class Rest:
    """One API server endpoint with one identity (client certificate or bearer token)."""

    def __init__(self, server: str, ca: Path, cert: Path | None = None, key: Path | None = None,
                 token: str | None = None, timeout: float = 5.0) -> None:
        self.server = server.rstrip("/")
        self.timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._headers = {"Accept": "application/json", "User-Agent": "honeydue-drill"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._pool = urllib3.PoolManager(
            num_pools=4, maxsize=4, cert_reqs="CERT_REQUIRED", ca_certs=str(ca),
            cert_file=str(cert) if cert else None, key_file=str(key) if key else None, retries=False,
        )

    def request(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None,
                content_type: str = "application/json", timeout: float | None = None) -> JSON:
        url = self.server + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = dict(self._headers)
        data: bytes | None = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        limit = urllib3.Timeout(connect=timeout, read=timeout) if timeout else self.timeout
        response = self._pool.request(method, url, body=data, headers=headers, timeout=limit)
        text = response.data.decode("utf-8", "replace")
        try:
            decoded: Any = json.loads(text) if text else {}
        except ValueError:
            decoded = {"message": text[:200]}
        reply: JSON = decoded if isinstance(decoded, dict) else {"value": decoded}
        if response.status >= 300:
            raise ApiError(response.status, str(reply.get("reason", "")), str(reply.get("message", text[:200])))
        return reply

    def get(self, path: str, **params: str) -> JSON:
        return self.request("GET", path, params=params or None)

    def items(self, path: str, **params: str) -> list[JSON]:
        return list(self.get(path, **params).get("items") or [])

    def create(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body)

    def put(self, path: str, body: JSON) -> JSON:
        return self.request("PUT", path, body)

    def patch(self, path: str, body: JSON, content_type: str = STRATEGIC) -> JSON:
        return self.request("PATCH", path, body, content_type=content_type)

    def delete(self, path: str, **options: Any) -> JSON:
        return self.request("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", **options})

    def apply(self, path: str, manifest: JSON, field_manager: str, dry_run: bool = False,
              strict: bool = False) -> JSON:
        """Server-side apply of one object (PATCH application/apply-patch+yaml; JSON is valid YAML). `strict`: a
        field the object's schema does not know is an error (fieldValidation=Strict), not a warning."""
        params = {"fieldManager": field_manager, "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        if strict:
            params["fieldValidation"] = "Strict"
        return self.request("PATCH", path, manifest, params=params, content_type=APPLY)

    def close(self) -> None:
        self._pool.clear()


def object_path(manifest: JSON, namespace: str | None = None, plural: str | None = None) -> str:
    """The REST path of an object from its apiVersion/kind/name (plural: kind lower-cased + s by default)."""
    api_version = str(manifest["apiVersion"])
    kind = str(manifest["kind"])
    meta = manifest.get("metadata") or {}
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    resource = plural or PLURALS.get(kind, kind.lower() + "s")
    ns = namespace or meta.get("namespace")
    scope = f"/namespaces/{ns}" if ns and kind not in CLUSTER_SCOPED else ""
    return f"{prefix}{scope}/{resource}/{meta['name']}"


PLURALS = {"Endpoints": "endpoints", "PodDisruptionBudget": "poddisruptionbudgets", "APIService": "apiservices",
           "EndpointSlice": "endpointslices"}
CLUSTER_SCOPED = {"Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "APIService", "PriorityClass",
                  "CustomResourceDefinition"}
