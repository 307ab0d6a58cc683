"""Defect 4: netcheck dials the api pods where they are now, read from the Service's EndpointSlices on every run.

With static pod IPs every pod target died at the first rollout (the Flannel and kube-proxy rules went silent
for good) and, after a node-by-node drain, a pod that kept its IP was counted on the wrong node. Here the
real Kubernetes client lists EndpointSlices from a small API server of ours (kubeconfig, plain HTTP) and
the probe connects to real listeners on 127.0.0.2-4; the slices change between runs as a rollout would.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from exporter.config import Config
from exporter.probes import tcp
from exporter.probes.deps import Dependencies
from tests.helpers.servers import free_port


def endpoint(ip: str, node: str, ready: bool = True) -> dict[str, Any]:
    return {"addresses": [ip], "nodeName": node, "conditions": {"ready": ready}}


class EndpointSlices:
    """GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices, answering with `self.endpoints`."""

    def __init__(self) -> None:
        self.endpoints: list[dict[str, Any]] = []
        self.queries: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query) | {"namespace": request.match_info["ns"]})
        body = {"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1", "metadata": {},
                "items": [{"metadata": {"name": "api-abcde"}, "addressType": "IPv4", "endpoints": self.endpoints,
                           "ports": [{"port": 8000}]}]}
        return web.json_response(body)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[EndpointSlices, Path]]:
    slices = EndpointSlices()
    app = web.Application()
    app.router.add_get("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", slices.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "t", "user": {"token": "t"}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
    }))
    yield slices, kubeconfig
    await runner.cleanup()


def listener(ip: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ip, port))
    sock.listen(16)
    return sock


def up_series(samples: Any) -> dict[tuple[str, str], float]:
    """(target, path) -> honeydue_tcp_up of a run."""
    return {(s.labels["target"], s.labels["path"]): s.value for f in samples.families() if f.name == "honeydue_tcp_up"
            for s in f.samples}


async def test_pods_are_found_again_on_every_run(api: tuple[EndpointSlices, Path]) -> None:
    slices, kubeconfig = api
    port = free_port()
    config = Config(
        mode="netcheck",
        kubernetes={"source": "kubeconfig", "kubeconfig": kubeconfig},
        tcp={"interval": 5, "timeout": 2, "node_name": "n1",
             "discover": [{"backend": "api", "namespace": "honeydue", "service": "api", "port": port}]},
    )
    [probe] = tcp.build(config, Dependencies.from_config(config))
    assert isinstance(probe, tcp.PodPathsProbe) and probe.name == "netcheck_pods_api"
    open_sockets = [listener("127.0.0.2", port), listener("127.0.0.3", port)]  # 127.0.0.4 refuses
    try:
        # Before a rollout: pods on n1 (local), n2 (remote, answers), n3 (remote, refuses); an unready one skipped.
        slices.endpoints = [endpoint("127.0.0.2", "n1"), endpoint("127.0.0.3", "n2"), endpoint("127.0.0.4", "n3"),
                            endpoint("127.0.0.5", "n3", ready=False)]
        first = up_series(await probe.collect())
        assert first == {("api-pod-n1", "local"): 1, ("api-pod-n2", "remote"): 1, ("api-pod-n3", "remote"): 0}
        assert slices.queries[-1]["labelSelector"] == "kubernetes.io/service-name=api"
        assert slices.queries[-1]["namespace"] == "honeydue"
        # After the rollout and a drain of n3: new IPs, and the pod that kept 127.0.0.3 now runs on n3.
        slices.endpoints = [endpoint("127.0.0.4", "n1"), endpoint("127.0.0.3", "n3")]
        second = up_series(await probe.collect())
        assert second == {("api-pod-n1", "local"): 0, ("api-pod-n3", "remote"): 1}
    finally:
        for sock in open_sockets:
            sock.close()
        await probe.close()


async def test_no_credentials_is_a_failing_probe_not_a_crash(tmp_path: Path) -> None:
    config = Config(mode="netcheck", kubernetes={"source": "off"},
                    tcp={"node_name": "n1", "discover": [{"backend": "api", "service": "api", "port": 8000}]})
    [probe] = tcp.build(config, Dependencies.from_config(config))
    with pytest.raises(RuntimeError, match="credentials"):
        await asyncio.wait_for(probe.collect(), 5)
    assert list(probe.failed("error").families()) == []
