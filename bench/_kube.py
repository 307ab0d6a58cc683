"""Kubernetes back ends for `python -m bench scale`: "a cluster of N nodes / pods / deployments".

A back end is a function `(ClusterSize, workdir) -> context manager of KubeTarget`: it starts (or
reaches) an API server holding that many objects and says how the exporter reaches it and how much
the API server has served so far. `--kube-backend real|module:function` picks one; the default, `real`,
is bench/_kube_real.py: the control plane of testbed/kube, one cluster for the whole run grown or shrunk
to each size, stopped by `close()` below; its `load()` reads the exporter's requests from the audit log
and the bytes from the API servers' apiserver_response_sizes.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

NAMESPACE = "honeydue"
OTHER_NAMESPACE = "batch-jobs"  # pods nobody watches: merely stored
WATCHED = ("api", "admin", "worker", "redis", "vmagent")


@dataclass(frozen=True)
class ClusterSize:
    nodes: int = 3
    pods: int = 30  # in the watched namespace
    deployments: int = 5  # in the watched namespace; the exporter watches WATCHED only
    other_pods: int = 0  # in OTHER_NAMESPACE


@dataclass
class KubeTarget:
    """What the bench needs from a running cluster."""

    kubeconfig: Path
    apiserver_port: int  # where /readyz/etcd answers on each control-plane node's InternalIP
    load: Callable[[], tuple[int, int]]  # (requests, response bytes) the API server has served so far
    describe: str


class Backend(Protocol):
    def __call__(self, size: ClusterSize, workdir: Path) -> contextlib.AbstractContextManager[KubeTarget]: ...


def backend(spec: str) -> Backend:
    """`real` (bench/_kube_real.py) or `package.module:function` (a function with real's signature)."""
    if spec == "real":
        from bench._kube_real import real

        return real
    module_name, _, function = spec.partition(":")
    if not function:
        raise ValueError(f"--kube-backend {spec!r}: use real or module:function")
    import importlib

    found: Backend = getattr(importlib.import_module(module_name), function)
    return found


def close() -> None:
    """Stop the real back end's cluster if this run started one (it serves every point of the run)."""
    real = sys.modules.get("bench._kube_real")
    if real is not None:
        real.close()
