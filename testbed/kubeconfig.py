"""The one kubeconfig writer: every client the test bed, the tests and the benchmarks point at an API server
(the exporter, kube-controller-manager, metrics-server) reads a file made here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_kubeconfig(path: Path, server: str, *, token: str | None = None, ca: Path | None = None,
                     client_cert: Path | None = None, client_key: Path | None = None,
                     namespace: str | None = None) -> Path:
    """A kubeconfig with one cluster (`server`, trusting `ca` if given), one user (a bearer `token`, or a client
    certificate and key) and one context, the current one. JSON, which every kubeconfig reader takes as YAML."""
    user: dict[str, Any] = {}
    if token is not None:
        user["token"] = token
    if client_cert is not None and client_key is not None:
        user |= {"client-certificate": str(client_cert), "client-key": str(client_key)}
    cluster: dict[str, Any] = {"server": server}
    if ca is not None:
        cluster["certificate-authority"] = str(ca)
    context: dict[str, Any] = {"cluster": "honeydue", "user": "honeydue"}
    if namespace is not None:
        context["namespace"] = namespace
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "honeydue",
        "clusters": [{"name": "honeydue", "cluster": cluster}],
        "users": [{"name": "honeydue", "user": user}],
        "contexts": [{"name": "honeydue", "context": context}],
    }))
    return path
