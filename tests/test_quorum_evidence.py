"""Defects 2 and 6: when the node list fails, the node probe still publishes the servers' /readyz/etcd answers.

An API server without etcd quorum still answers /version and, for a while, lists from its cache; then the
lists fail. KubeEtcdQuorumLost needs evidence (a server answering that its etcd check fails) exactly then,
so the probe keeps checking the servers it knew from its last good list. The real Kubernetes client talks
to a small API server of ours (kubeconfig, plain HTTP); the servers' /readyz/etcd listen on 127.0.0.2-4.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from testbed.exporter import Metrics, parse_metrics, value
from testbed.kubeconfig import write_kubeconfig
from testbed.loop import bind_on_one_port

from exporter.config import Config
from exporter.engine import Engine
from exporter.exposition import Exposition
from exporter.probes import kubernetes
from exporter.probes.deps import Dependencies
from tests.helpers.servers import free_port

SERVERS = {"n1": "127.0.0.2", "n2": "127.0.0.3", "n3": "127.0.0.4"}


def node(name: str, ip: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"node-role.kubernetes.io/control-plane": "true"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": ip}], "nodeInfo": {}}}


class Cluster:
    def __init__(self) -> None:
        self.lists_fail = False
        self.etcd = {"127.0.0.2": "ok", "127.0.0.3": "ok", "127.0.0.4": "ok"}

    async def nodes(self, request: web.Request) -> web.Response:
        if self.lists_fail:
            return web.Response(status=500, text="etcdserver: request timed out")
        return web.json_response({"kind": "NodeList", "apiVersion": "v1", "metadata": {},
                                  "items": [node(n, ip) for n, ip in SERVERS.items()]})

    async def readyz(self, request: web.Request) -> web.Response:
        ip = request.transport.get_extra_info("sockname")[0] if request.transport else ""
        if self.etcd.get(ip) == "dead":  # a node that is gone: no answer within the probe's readyz_timeout
            await asyncio.sleep(2)
        if self.etcd.get(ip) == "ok":
            return web.Response(text="ok")
        return web.Response(status=500, text="[-]etcd failed: reason withheld\nreadyz check failed")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[Cluster, Config, list[web.TCPSite]]]:
    state = Cluster()
    app = web.Application()
    app.router.add_get("/api/v1/nodes", state.nodes)
    app.router.add_get("/readyz/etcd", state.readyz)
    runner = web.AppRunner(app)
    await runner.setup()
    api_port = free_port()
    api_site = web.TCPSite(runner, "127.0.0.1", api_port)
    await api_site.start()

    async def server_site(ip: str, port: int) -> web.TCPSite:
        site = web.TCPSite(runner, ip, port)
        await site.start()
        return site

    async def stop(site: web.TCPSite) -> None:
        await site.stop()

    server_port, server_sites = await bind_on_one_port(list(SERVERS.values()), server_site, stop)
    sites = [api_site, *server_sites]
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{api_port}", token="t")
    config = Config(kubernetes={"source": "kubeconfig", "kubeconfig": kubeconfig, "apiserver_port": server_port,
                                "readyz_timeout": 0.5, "deployments": {}, "apiservices": []})
    yield state, config, sites
    await runner.cleanup()


def scrape(engine: Engine) -> Metrics:
    return parse_metrics(Exposition(engine).render().decode())


async def test_readyz_evidence_outlives_a_failing_node_list(cluster: tuple[Cluster, Config, list[web.TCPSite]]) -> None:
    state, config, _ = cluster
    probes = kubernetes.build(config, Dependencies.from_config(config))
    nodes = next(p for p in probes if p.name == "kubernetes_nodes")
    engine = Engine([nodes])
    try:
        await engine.run_once(nodes)
        assert value(scrape(engine), "honeydue_kube_apiserver_etcd_ready", node="n1") == 1
        # n2 and n3 go away, n1's etcd has no quorum, the lists fail.
        state.etcd |= {"127.0.0.2": "fail", "127.0.0.3": "dead", "127.0.0.4": "dead"}
        state.lists_fail = True
        await engine.run_once(nodes)
        assert engine.states["kubernetes_nodes"].status == "failing"
        m = scrape(engine)
        assert value(m, "honeydue_kube_resource_up", resource="nodes", namespace="") == 0
        assert value(m, "honeydue_kube_resource_error_info", resource="nodes", namespace="",
                     reason="server_error") == 1
        # The evidence KubeEtcdQuorumLost needs: n1 answers that etcd fails, n2 and n3 do not answer.
        assert value(m, "honeydue_kube_apiserver_readyz_up", node="n1") == 1
        assert value(m, "honeydue_kube_apiserver_etcd_ready", node="n1") == 0
        assert value(m, "honeydue_kube_apiserver_readyz_up", node="n2") == 0
        assert value(m, "honeydue_kube_etcd_quorum") == 2
        # The node conditions are gone (not stale values): the list failed.
        assert value(m, "honeydue_kube_node_status_condition", node="n1", condition="Ready", status="true") is None
    finally:
        await engine.stop()
