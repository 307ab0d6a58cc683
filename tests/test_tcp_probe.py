"""TCP probes and the netcheck mode against real sockets on loopback (127.0.0.0/8 only).

Loopback addresses stand in for the cluster: 127.0.0.2 for a backend's pod IP on another node,
127.0.0.3 for the Service ClusterIP in front of it. A real VictoriaMetrics evaluates the catalog's
own alert expressions over what two per-node exporters report, so the test checks that the rules
tell "Flannel broken on n1" from "kube-proxy broken on n1".
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.exporter import ExporterProcess, value
from testbed.vm import VictoriaMetrics

from exporter.catalog import alerts
from exporter.config import Config, TcpConfig, TcpTarget, load_config
from exporter.engine import Engine
from exporter.exposition import Exposition
from exporter.probes import build_probes
from exporter.probes.deps import Dependencies
from exporter.probes.tcp import TcpProbe
from tests.helpers.servers import free_port, silent_port


@contextlib.contextmanager
def listener(host: str = "127.0.0.1") -> Iterator[int]:
    """A listening socket on `host`; the kernel completes connects (backlog), which is all TCP probes need."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(64)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A port whose SYNs go unanswered: a silent port with its accept backlog filled (like a DROP rule)."""
    with silent_port() as silent:
        fillers = []
        for _ in range(200):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError, OSError):
                s.connect(("127.0.0.1", silent.port))
            fillers.append(s)
        try:
            yield silent.port
        finally:
            for s in fillers:
                s.close()


def tcp_config(*targets: dict[str, str], node: str = "n1", timeout: float = 0.8) -> TcpConfig:
    return TcpConfig(interval=2, timeout=timeout, node_name=node, targets=tuple(TcpTarget(**t) for t in targets))


async def run(probe: TcpProbe) -> tuple[Engine, float]:
    engine = Engine([probe])
    started = time.monotonic()
    await engine.run_once(probe)
    return engine, time.monotonic() - started


async def test_open_target_is_up_with_latency() -> None:
    with listener() as port:
        probe = TcpProbe(TcpTarget(name="redis", address=f"127.0.0.1:{port}"), tcp_config(), Dependencies())
        engine, _ = await run(probe)
    state = engine.states["tcp_redis"]
    assert state.status == "ok", state.detail
    labels = {"target": "redis", "role": "essential", "backend": "", "path": "", "node": "n1"}
    assert state.snapshot.value("honeydue_tcp_up", **labels) == 1
    assert 0 < (state.snapshot.value("honeydue_tcp_connect_duration_seconds", **labels) or 0) < 0.8


async def test_refused_target_is_down_with_reason() -> None:
    port = free_port()
    probe = TcpProbe(TcpTarget(name="postgres-pooler", address=f"127.0.0.1:{port}"), tcp_config(), Dependencies())
    engine, elapsed = await run(probe)
    state = engine.states["tcp_postgres-pooler"]
    assert state.status == "failing" and state.reason == "refused"
    assert state.snapshot.value("honeydue_tcp_up", target="postgres-pooler") == 0
    assert state.snapshot.value("honeydue_tcp_failure_info", target="postgres-pooler", reason="refused") == 1
    assert elapsed < 0.5  # a refusal is immediate, not a timeout


async def test_silent_port_counts_as_reachable() -> None:
    # A port that accepts and never answers passes a connect-level probe: TCP reachability is all it
    # claims (a hung application is the HTTP probes' job).
    with silent_port() as silent:
        probe = TcpProbe(TcpTarget(name="api", address=f"127.0.0.1:{silent.port}"), tcp_config(), Dependencies())
        engine, elapsed = await run(probe)
    assert engine.states["tcp_api"].status == "ok"
    assert engine.states["tcp_api"].snapshot.value("honeydue_tcp_up", target="api") == 1
    assert elapsed < 0.8


async def test_blackholed_target_ends_at_its_timeout() -> None:
    with blackhole() as port:
        probe = TcpProbe(TcpTarget(name="api", address=f"127.0.0.1:{port}"), tcp_config(timeout=0.6),
                         Dependencies())
        engine, elapsed = await run(probe)
    state = engine.states["tcp_api"]
    assert state.status == "failing" and state.reason == "timeout"
    assert state.snapshot.value("honeydue_tcp_failure_info", target="api", reason="timeout") == 1
    assert 0.5 < elapsed < 3.0


def test_target_config_is_validated() -> None:
    with pytest.raises(ValueError, match="needs a backend"):
        TcpTarget(name="api-pod", address="127.0.0.2:80", role="pod")
    with pytest.raises(ValueError, match="host:port"):
        TcpTarget(name="api", address="127.0.0.2")
    with pytest.raises(ValueError, match="duplicate target names"):
        tcp_config({"name": "a", "address": "127.0.0.1:1"}, {"name": "a", "address": "127.0.0.1:2"})


# --- netcheck: the two per-node failures told apart by the catalog's own rules ------------------------

def node_targets(pod: str, service: str, pod_node: str) -> list[dict[str, str]]:
    return [
        {"name": "api-pod", "address": pod, "role": "pod", "backend": "api", "node": pod_node},
        {"name": "api-svc", "address": service, "role": "service", "backend": "api"},
    ]


async def exposition_for(node: str, targets: list[dict[str, str]]) -> str:
    """What a netcheck exporter on `node` would serve after one cycle."""
    config = Config(mode="netcheck", tcp={"node_name": node, "interval": 2, "timeout": 0.6, "targets": targets},
                    redis={"enabled": True})
    probes = build_probes(config, Dependencies())
    assert {p.name for p in probes} == {"tcp_api-pod", "tcp_api-svc"}  # netcheck: no redis/postgres probes
    engine = Engine(probes)
    for probe in probes:
        await engine.run_once(probe)
    return Exposition(engine).render().decode()


def firing_nodes(vm: VictoriaMetrics, alert_name: str) -> set[str]:
    expr = next(a.expr for _, a in alerts() if a.name == alert_name)
    return {str(r["metric"].get("node")) for r in vm.query(expr)}


@pytest.mark.parametrize("broken", ["kube-proxy", "flannel"])
async def test_netcheck_tells_flannel_from_kube_proxy(victoria: VictoriaMetrics, broken: str) -> None:
    with listener("127.0.0.2") as pod_port, blackhole() as dropped:
        pod = f"127.0.0.2:{pod_port}"
        dead_cluster_ip = f"127.0.0.3:{free_port('127.0.0.3')}"  # nothing listens: refused
        if broken == "kube-proxy":
            # n1: the pod IP answers, the ClusterIP of the same backend does not.
            n1 = node_targets(pod=pod, service=dead_cluster_ip, pod_node="n2")
        else:
            # n1: the overlay is gone, remote pod IPs (and the ClusterIP routed to them) time out.
            n1 = node_targets(pod=f"127.0.0.1:{dropped}", service=dead_cluster_ip, pod_node="n2")
        # n2 is healthy: reaches the (for it remote) pod on n1 and the ClusterIP.
        n2 = node_targets(pod=pod, service=pod, pod_node="n1")
        texts = [await exposition_for("n1", n1), await exposition_for("n2", n2)]
    for text in texts:
        victoria.import_prometheus(text)
    victoria.wait_for_series('honeydue_tcp_up{node="n2"}')
    victoria.wait_for_series('honeydue_tcp_up{node="n1"}')
    flannel = firing_nodes(victoria, "FlannelBrokenOnNode")
    kube_proxy = firing_nodes(victoria, "KubeProxyBrokenOnNode")
    if broken == "kube-proxy":
        assert (flannel, kube_proxy) == (set(), {"n1"})
    else:
        assert (flannel, kube_proxy) == ({"n1"}, set())


def test_run_mode_netcheck_runs_only_tcp_probes_with_node_label(tmp_path: Path) -> None:
    with listener("127.0.0.2") as pod_port:
        config: dict[str, Any] = {
            "tcp": {"interval": 1, "timeout": 0.5, "targets": [
                {"name": "api-pod", "address": f"127.0.0.2:{pod_port}", "role": "pod", "backend": "api",
                 "node": "n2"},
                {"name": "api-svc", "address": f"127.0.0.3:{free_port('127.0.0.3')}", "role": "service",
                 "backend": "api"},
            ]},
        }
        path = tmp_path / "netcheck.yml"
        path.write_text(yaml.safe_dump(config))
        assert load_config(path).mode == "full"  # the flag, not the file, selects netcheck here
        exporter = ExporterProcess(env={"NODE_NAME": "n1"}, config_path=path, log_path=tmp_path / "exporter.log",
                                   args=("--mode", "netcheck"))
        try:
            exporter.start()
            metrics = exporter.metrics()
        finally:
            exporter.stop()
    probes = {dict(labels)["probe"] for (name, labels) in metrics if name == "honeydue_probe_interval_seconds"}
    assert probes == {"tcp_api-pod", "tcp_api-svc"}  # redis (enabled by default) and postgres do not run
    assert value(metrics, "honeydue_tcp_up", target="api-pod", node="n1", path="remote") == 1
    assert value(metrics, "honeydue_tcp_up", target="api-svc", node="n1", role="service") == 0
    assert value(metrics, "honeydue_tcp_failure_info", target="api-svc", reason="refused") == 1
