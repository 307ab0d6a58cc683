"""Kubernetes back ends for `python -m bench scale`: "a cluster of N nodes / pods / deployments".

A back end is a function `(ClusterSize, workdir) -> context manager of KubeTarget`: it starts (or
reaches) an API server holding that many objects and says how the exporter reaches it and how much
the API server has served so far. `--kube-backend real|standin|module:function` picks one; the default
is `real` (bench/_kube_real.py: the control plane of testbed/kube, one cluster for the whole run
grown or shrunk to each size, stopped by `close()` below; its `load()` reads the exporter's requests
from the audit log and the bytes from the API servers' apiserver_response_sizes).

`standin` (still selectable) is testbed/kube_lists.py: an API server written here (aiohttp on its own thread), not
Kubernetes, that answers lists in real JSON shape with limit/continue paging and selectors (its
docstring lists what it does and does not do). Its CPU is not the API server's: only its request
and byte counts describe the load the exporter puts on a cluster.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from testbed.kube_lists import NAMESPACE, OTHER_NAMESPACE, TOKEN, WATCHED, ClusterSize, StandinAPI

__all__ = ["NAMESPACE", "OTHER_NAMESPACE", "WATCHED", "Backend", "ClusterSize", "KubeTarget", "backend", "close", "standin"]


@dataclass
class KubeTarget:
    """What the bench needs from a running cluster."""

    kubeconfig: Path
    apiserver_port: int  # where /readyz/etcd answers on each control-plane node's InternalIP
    load: Callable[[], tuple[int, int]]  # (requests, response bytes) the API server has served so far
    describe: str


class Backend(Protocol):
    def __call__(self, size: ClusterSize, workdir: Path) -> contextlib.AbstractContextManager[KubeTarget]: ...


def kubeconfig(path: Path, server: str, token: str) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "bench",
        "clusters": [{"name": "bench", "cluster": {"server": server}}],
        "users": [{"name": "exporter", "user": {"token": token}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "exporter", "namespace": NAMESPACE}}],
    }))
    return path


@contextlib.contextmanager
def standin(size: ClusterSize, workdir: Path) -> Iterator[KubeTarget]:
    """testbed/kube_lists.py holding `size` objects (its docstring says what it does and does not do)."""
    api = StandinAPI(size)
    api.start()
    try:
        yield KubeTarget(kubeconfig(workdir / "kubeconfig", f"http://127.0.0.1:{api.port}", TOKEN), api.port,
                         api.load, "stand-in API server (testbed/kube_lists.py, NOT kube-apiserver): real-shaped JSON, "
                         "limit/continue, selectors")
    finally:
        api.stop()


def backend(spec: str) -> Backend:
    """`real` (bench/_kube_real.py), `standin` or `package.module:function` (a function with standin's signature)."""
    if spec == "standin":
        return standin
    if spec == "real":
        from bench._kube_real import real

        return real
    module_name, _, function = spec.partition(":")
    if not function:
        raise ValueError(f"--kube-backend {spec!r}: use real, standin or module:function")
    import importlib

    found: Backend = getattr(importlib.import_module(module_name), function)
    return found


def close() -> None:
    """Stop the real back end's cluster if this run started one (it serves every point of the run)."""
    real = sys.modules.get("bench._kube_real")
    if real is not None:
        real.close()
