"""deploy/ rendered the way users apply it: `kustomize build` with the kustomize built from tests/peers/kube.

The tests check, and the test cluster runs, what this returns, never a hand copy: the Deployment's and the
DaemonSet's pod specs of the example overlay are the ones the in-cluster exporter runs with (testbed/kube/pod.py).
"""

from __future__ import annotations

import copy
import re
import subprocess
from functools import cache
from pathlib import Path

import yaml

from testbed.kube.rest import JSON
from testbed.paths import DEPLOY, PEERS_BIN
from testbed.procs import require_binary

BASE = DEPLOY / "base"
OVERLAY = DEPLOY / "overlays" / "example"
COMPONENTS = DEPLOY / "components"


@cache
def _build(path: Path) -> str:
    kustomize = require_binary("kustomize", str(PEERS_BIN))
    out = subprocess.run([kustomize, "build", str(path)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"kustomize build {path}: {out.stderr.strip()}")
    return out.stdout


def build(path: Path = OVERLAY) -> list[JSON]:
    """The objects `kustomize build PATH` renders, in its order (a fresh copy each call)."""
    return [copy.deepcopy(doc) for doc in yaml.safe_load_all(_build(path)) if doc]


def one(docs: list[JSON], kind: str, name: str | None = None) -> JSON:
    """The single object of `kind` (and `name`, or the name it starts with plus a generator's hash suffix)."""
    found = [d for d in docs if d["kind"] == kind and (
        name is None or re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?", d["metadata"]["name"]))]
    if len(found) != 1:
        raise LookupError(f"{len(found)} objects of kind {kind} named {name}")
    return found[0]
