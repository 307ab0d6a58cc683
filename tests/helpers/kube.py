"""The Kubernetes test cluster (testbed/kube) for the tests, the exporter running in it as in its
pod, and exact-value expectations on what the exporter serves.

One cluster serves every test of the session that does not break it beyond `reset()`; each scenario
ends by putting it back (`kube` fixture). The exporter runs once per session, in-cluster, probing
every 2 seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.exporter import ExporterProcess, Metrics
from testbed.kube.cluster import NETCHECK_SERVICE_ACCOUNT, REPO, KubeCluster
from testbed.kube.control_plane import NODE_IPS, NODE_NAMES, REPO_BIN, kube_binary
from testbed.kube.incluster import kubernetes_config, service_env
from testbed.kube.pod import pod_process
from testbed.manifests import OVERLAY, build

from tests.helpers.servers import require_binary

KUBE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
NETCHECK_CONFIG = REPO / "deploy" / "overlays" / "example" / "netcheck.yml"


def require_kube() -> None:
    """Every control-plane binary (scripts/go-peers.sh builds them) and util-linux unshare."""
    for name in KUBE_BINARIES:
        require_binary(name, str(REPO_BIN))
        kube_binary(name)
    require_binary("unshare", "/usr/bin")


def start_exporter(cluster: KubeCluster, workdir: Path, host: str | None = None, port: int | None = None,
                   interval: float = 2.0, token: str | None = None, **kube: Any) -> ExporterProcess:
    """The real exporter as the example overlay's Deployment runs it (testbed/kube/pod.py: its pod spec from
    `kustomize build deploy/overlays/example`), with the in-cluster credentials of its ServiceAccount (or `token`)
    and the test's config in place of the ConfigMap's."""
    workdir.mkdir(parents=True, exist_ok=True)
    sa_dir = cluster.service_account_dir(workdir / "serviceaccount")
    if token is not None:
        (sa_dir / "token").write_text(token)
    config = {
        "log": {"format": "text", "level": "info"},
        "redis": {"enabled": False},
        "postgres": {"pooler": {"enabled": False}, "direct": {"enabled": False}},
        "kubernetes": kubernetes_config(cluster, interval) | kube,
    }
    pod = pod_process(build(OVERLAY), "Deployment", "honeydue-exporter", workdir,
                      config_data={"config.yml": yaml.safe_dump(config)}, service_account_dir=sa_dir,
                      node=NODE_NAMES[0])
    env = service_env(host or cluster.control_plane.api_url(0).split("//")[1].split(":")[0],
                      port or cluster.api_port) | pod.env
    exporter = ExporterProcess(env=env, log_path=workdir / "exporter.log", args=pod.run_args, wrapper=pod.wrapper)
    exporter.start()
    return exporter


def start_netcheck(cluster: KubeCluster, workdir: Path, node: str = NODE_NAMES[0],
                   interval: float = 2.0) -> ExporterProcess:
    """The example overlay's netcheck DaemonSet pod on `node` (its pod spec, as start_exporter's): `mode:
    netcheck`, deploy/overlays/example/netcheck.yml's discovery of the api pods, in-cluster with the token of
    ServiceAccount honeydue-netcheck (deploy/base/netcheck-rbac.yaml), NODE_NAME from the downward API."""
    workdir.mkdir(parents=True, exist_ok=True)
    sa_dir = cluster.service_account_dir(workdir / "serviceaccount", NETCHECK_SERVICE_ACCOUNT)
    shipped = yaml.safe_load(NETCHECK_CONFIG.read_text())
    config = {
        "mode": "netcheck", "log": {"format": "text", "level": "info"},
        "redis": {"enabled": False}, "postgres": {"pooler": {"enabled": False}, "direct": {"enabled": False}},
        "kubernetes": kubernetes_config(cluster, interval),
        "tcp": {"interval": interval, "timeout": 0.75 * interval, "discover": shipped["tcp"]["discover"]},
    }
    host_ip = NODE_IPS[NODE_NAMES.index(node)]
    pod = pod_process(build(OVERLAY), "DaemonSet", "honeydue-netcheck", workdir,
                      config_data={"netcheck.yml": yaml.safe_dump(config)}, service_account_dir=sa_dir, node=node,
                      host_ip=host_ip)
    env = service_env(cluster.control_plane.api_url(0).split("//")[1].split(":")[0], cluster.api_port) | pod.env
    # The pod spec points it at its own node's API server (status.hostIP, port 6443); the test bed's API servers
    # listen on one free port on every node IP instead of 6443.
    assert env["KUBERNETES_SERVICE_HOST"] == host_ip and env["KUBERNETES_SERVICE_PORT"] == "6443", env
    env["KUBERNETES_SERVICE_PORT"] = env["KUBERNETES_SERVICE_PORT_HTTPS"] = str(cluster.api_port)
    netcheck = ExporterProcess(env=env, log_path=workdir / "netcheck.log", args=pod.run_args, wrapper=pod.wrapper)
    netcheck.start()
    return netcheck


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    require_kube()
    cluster = KubeCluster(tmp_path_factory.mktemp("kube-cluster"))
    cluster.start()
    print(f"\nkube cluster: started in {cluster.started_in:.1f}s")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kube_exporter(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    exporter = start_exporter(kube_cluster, tmp_path_factory.mktemp("kube-exporter"))
    try:
        yield exporter
    finally:
        exporter.stop()


@pytest.fixture(scope="session")
def kube_netcheck(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    """netcheck on N1, for the tests that need it (it reads only the api Service's EndpointSlices)."""
    netcheck = start_netcheck(kube_cluster, tmp_path_factory.mktemp("kube-netcheck"))
    try:
        yield netcheck
    finally:
        netcheck.stop()


@dataclass
class Kube:
    """What a scenario works with: the cluster and the exporter watching it."""

    cluster: KubeCluster
    exporter: ExporterProcess

    def metrics(self) -> Metrics:
        return self.exporter.metrics()


@pytest.fixture
def kube(kube_cluster: KubeCluster, kube_exporter: ExporterProcess) -> Iterator[Kube]:
    """The shared cluster, healthy before the test and put back to healthy after it."""
    kube_cluster.wait_healthy(120)
    try:
        yield Kube(kube_cluster, kube_exporter)
    finally:
        took = kube_cluster.reset()
        print(f"\nkube cluster: reset in {took:.1f}s")


# --- expectations ---------------------------------------------------------------------------------
def labels_of(key: frozenset[tuple[str, str]]) -> dict[str, str]:
    return dict(key)


def select(m: Metrics, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """Samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return {lab: v for (n, lab), v in m.items() if n == name and want <= lab}


@dataclass
class Expect:
    """Exact exporter values, checked together against one scrape."""

    checks: list[Callable[[Metrics], str | None]] = field(default_factory=list)

    def value(self, name: str, expected: float | None, **labels: str) -> Expect:
        """The sample with exactly these labels has this value (None: no such sample)."""
        def check(m: Metrics) -> str | None:
            got = m.get((name, frozenset(labels.items())))
            return None if got == expected else f"{name}{labels} = {got}, want {expected}"
        self.checks.append(check)
        return self

    def series(self, name: str, by: tuple[str, ...], expected: dict[tuple[str, ...], float], **where: str) -> Expect:
        """The samples of `name` matching `where`, keyed by the values of labels `by`, are exactly these."""
        def check(m: Metrics) -> str | None:
            got = {tuple(labels_of(lab).get(k, "") for k in by): v for lab, v in select(m, name, **where).items()}
            return None if got == expected else f"{name}{where} by {by} = {dict(sorted(got.items()))}, " \
                                                 f"want {dict(sorted(expected.items()))}"
        self.checks.append(check)
        return self

    def holds(self, description: str, predicate: Callable[[Metrics], bool]) -> Expect:
        self.checks.append(lambda m: None if predicate(m) else description)
        return self

    def problems(self, m: Metrics) -> list[str]:
        return [p for p in (check(m) for check in self.checks) if p]


def wait_metrics(exporter: ExporterProcess, expect: Expect | Callable[[], Expect], timeout: float) -> tuple[Metrics, float]:
    """Scrape until every expectation holds in one scrape; return it and the seconds it took."""
    started = time.monotonic()
    problems: list[str] = ["never scraped"]
    while True:
        wanted = expect() if callable(expect) else expect
        m = exporter.metrics()
        problems = wanted.problems(m)
        if not problems:
            return m, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"after {timeout:g}s the exporter still shows:\n  " + "\n  ".join(problems))
        time.sleep(0.3)

