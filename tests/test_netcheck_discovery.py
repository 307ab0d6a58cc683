"""Defect 4: netcheck dials the api pods where they are now, read from the Service's EndpointSlices on every run.

With static pod IPs every pod target died at the first rollout (the Flannel and kube-proxy rules went silent
for good) and, after a node-by-node drain, a pod that kept its IP was counted on the wrong node. Here netcheck
runs as its DaemonSet pod on N1 against the real control plane (testbed/kube): in-cluster, with the
token of ServiceAccount honeydue-netcheck bound by deploy/base/netcheck-rbac.yaml as written, reading the
EndpointSlices the endpoint slice controller keeps for the api Service; a drain through the eviction API
moves the pods between runs, and pods that are not ready are not dialled. (The fake kubelets' pod IPs,
10.42.<node>.<n>, have no listener: which pods are dialled, on which path, is checked here; the connect
itself is the TCP probe's, tests/test_tcp_probe.py.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from testbed.exporter import ExporterProcess, Metrics
from testbed.kube import workloads
from testbed.kube.control_plane import NODE_NAMES

from exporter.config import Config
from exporter.probes import tcp
from exporter.probes.deps import Dependencies
from tests.helpers.kube import Expect, Kube, select, wait_metrics

N1, N2, N3 = NODE_NAMES


def paths(m: Metrics) -> set[tuple[str, str, str]]:
    """(target, path, node) of every api pod path netcheck dialled in its last run."""
    return {(dict(lab)["target"], dict(lab)["path"], dict(lab)["node"])
            for lab in select(m, "honeydue_tcp_up", role="pod", backend="api")}


def test_api_pods_are_found_in_the_endpointslices_on_every_run(kube: Kube, kube_netcheck: ExporterProcess) -> None:
    e = Expect().value("honeydue_probe_success", 1, probe="netcheck_pods_api")
    e.holds("one api pod per node, N1 local", lambda m: paths(m) == {
        (f"api-pod-{N1}", "local", N1), (f"api-pod-{N2}", "remote", N1), (f"api-pod-{N3}", "remote", N1)})
    wait_metrics(kube_netcheck, e, 30)
    # `kubectl drain` N3: its api pod is evicted and replaced on N1 or N2; the next runs dial those.
    evicted = kube.cluster.drain(2)
    assert any(name.startswith("honeydue/api-") for name in evicted), evicted
    e = Expect().value("honeydue_probe_success", 1, probe="netcheck_pods_api")
    e.holds("no api pod on N3", lambda m: paths(m) == {(f"api-pod-{N1}", "local", N1), (f"api-pod-{N2}", "remote", N1)})
    wait_metrics(kube_netcheck, e, 40)
    # Every api pod crash-looping: their endpoints are not ready, so none is dialled (and no path is "down").
    kube.cluster.runtime.crash(workloads.API_IMAGE)
    e = Expect().value("honeydue_probe_success", 1, probe="netcheck_pods_api")
    e.holds("no api pod dialled", lambda m: paths(m) == set())
    wait_metrics(kube_netcheck, e, 40)


async def test_no_credentials_is_a_failing_probe_not_a_crash(tmp_path: Path) -> None:
    config = Config(mode="netcheck", kubernetes={"source": "off"},
                    tcp={"node_name": "n1", "discover": [{"backend": "api", "service": "api", "port": 8000}]})
    [probe] = tcp.build(config, Dependencies.from_config(config))
    with pytest.raises(RuntimeError, match="credentials"):
        await asyncio.wait_for(probe.collect(), 5)
    assert list(probe.failed("error").families()) == []
