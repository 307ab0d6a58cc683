"""The Kubernetes probes' list strategy against an API server that pages: limit/continue, selectors, no RV=0."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from testbed.kube_lists import NAMESPACE, OTHER_NAMESPACE, TOKEN, WATCHED, ClusterSize, StandinAPI

from exporter.config import Config, KubernetesConfig
from exporter.engine import Engine
from exporter.probes import kubernetes as kube
from exporter.probes.deps import Dependencies

PAGE = KubernetesConfig.model_fields["list_page_size"].default  # the shipped page size


class RecordingAPI(StandinAPI):
    """The paging stand-in, keeping every list request's query."""

    def __init__(self, size: ClusterSize) -> None:
        super().__init__(size)
        self.queries: list[tuple[str, dict[str, str]]] = []

    def _list(self, collection: Any, request: web.Request) -> web.Response:
        self.queries.append((request.path, dict(request.query)))
        return super()._list(collection, request)


@pytest.fixture
def api() -> Iterator[RecordingAPI]:
    # 1,201 pods: three pages of the default list_page_size; 60 deployments, 5 of them watched; pods elsewhere.
    server = RecordingAPI(ClusterSize(nodes=4, pods=2 * PAGE + 201, deployments=60, other_pods=700))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def run_all(api: StandinAPI, tmp_path: Path) -> tuple[Engine, list[kube.Probe]]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{api.port}"}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    config = Config(kubernetes={  # type: ignore[arg-type]
        "source": "kubeconfig", "kubeconfig": str(kubeconfig), "deployments": {NAMESPACE: list(WATCHED)},
        "node_workloads": [f"{NAMESPACE}/api"], "apiserver_port": api.port})
    probes = kube.build(config, Dependencies())
    engine = Engine(probes)
    for probe in probes:
        await engine.run_once(probe)
    return engine, probes


def values(engine: Engine, name: str) -> list[dict[str, str]]:
    return [sample.labels for part in engine.samples() for family in part.families() for sample in family.samples
            if sample.name == name]


async def test_pods_are_read_page_by_page_and_all_reported(api: RecordingAPI, tmp_path: Path) -> None:
    engine, probes = await run_all(api, tmp_path)
    try:
        assert all(engine.states[p.name].status == "ok" for p in probes), {
            n: (s.status, s.detail) for n, s in engine.states.items()}
        pods = values(engine, "honeydue_kube_pod_info")
        expected = sorted(s.obj["metadata"]["name"] for s in api.pods[NAMESPACE].items)
        assert sorted(p["pod"] for p in pods) == expected  # every pod of every page, none twice
        assert {p["namespace"] for p in pods} == {NAMESPACE}  # the unwatched namespace is never read
        pages = [q for path, q in api.queries if path.endswith(f"/namespaces/{NAMESPACE}/pods")]
        assert len(pages) == 3
        assert [q.get("limit") for q in pages] == [str(PAGE)] * 3
        assert "continue" not in pages[0] and all(q.get("continue") for q in pages[1:])
        # no list asks for resourceVersion=0: the API server's watch cache would ignore `limit` for it
        assert all("resourceVersion" not in q for _, q in api.queries)
        assert not any(OTHER_NAMESPACE in path for path, _ in api.queries)
    finally:
        await engine.stop()


async def test_only_watched_deployments_are_read(api: RecordingAPI, tmp_path: Path) -> None:
    engine, _ = await run_all(api, tmp_path)
    try:
        lists = [q for path, q in api.queries if path.endswith("/deployments")]
        assert sorted(q["fieldSelector"] for q in lists) == sorted(f"metadata.name={d}" for d in WATCHED)
        reported = {labels["deployment"] for labels in values(engine, "honeydue_kube_deployment_spec_replicas")}
        assert reported == set(WATCHED)
        assert all(labels["deployment"] in WATCHED for labels in values(engine, "honeydue_kube_deployment_exists"))
    finally:
        await engine.stop()


async def test_a_continue_token_that_repeats_fails_as_protocol(api: RecordingAPI, tmp_path: Path) -> None:
    original = api._list

    def stuck(collection: Any, request: web.Request) -> web.Response:
        # A broken server: the first page again for every continue token, with the same token each time.
        query = {k: v for k, v in request.query.items() if k != "continue"}
        first = request.clone(rel_url=request.rel_url.with_query(query))
        body = json.loads(original(collection, first).body)  # type: ignore[arg-type]
        if body["metadata"].get("continue"):
            body["metadata"]["continue"] = "c2FtZQ=="
        return web.json_response(body)

    api._list = stuck  # type: ignore[method-assign]
    engine, _ = await run_all(api, tmp_path)
    try:
        state = engine.states[f"kubernetes_pods_{NAMESPACE}"]
        assert state.status == "failing" and state.reason == "protocol", (state.reason, state.detail)
        assert {"resource": "pods", "namespace": NAMESPACE, "reason": "protocol"} in values(
            engine, "honeydue_kube_resource_error_info")
    finally:
        await engine.stop()
