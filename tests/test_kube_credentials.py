"""Kubernetes credentials that cannot be loaded are a value, never a crash at start.

`source: in-cluster` outside a pod (no KUBERNETES_SERVICE_HOST, no token: an unmounted service-account
token does this in production) and a kubeconfig that is not one used to raise from the client library
while the probes were built, so the exporter, or the whole netcheck DaemonSet pod, exited with a
traceback and served nothing. Now every Kubernetes read fails as `unauthorized`, which
KubeExporterAccessDenied pages on, and everything else is served.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from testbed.exporter import parse_metrics, value

from exporter.config import Config
from exporter.engine import Engine
from exporter.exposition import Exposition
from exporter.probes import build_probes
from exporter.probes.deps import Dependencies

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def outside_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)


def kube_config(tmp_path: Path, case: str) -> dict[str, object]:
    if case == "in-cluster outside a pod":
        return {"source": "in-cluster"}
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: not-a-list\n")
    return {"source": "kubeconfig", "kubeconfig": str(broken)}


@pytest.mark.parametrize("case", ["in-cluster outside a pod", "a kubeconfig that is not one"])
async def test_unloadable_credentials_fail_every_read_as_unauthorized(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config(  # type: ignore[arg-type]
        redis={"enabled": False}, postgres={"pooler": {"enabled": False}, "direct": {"enabled": False}},
        kubernetes=kube_config(tmp_path, case) | {"deployments": {"honeydue": ["api"]}, "interval": 10, "timeout": 8},
    )
    engine = Engine(build_probes(config, Dependencies()))  # raised from the client library before
    kube_probes = [p for p in engine.probes if p.name.startswith("kubernetes")]
    assert kube_probes
    for probe in kube_probes:
        await engine.run_once(probe)
    metrics = parse_metrics(Exposition(engine).render().decode())
    assert value(metrics, "honeydue_kube_resource_up", resource="nodes", namespace="") == 0
    assert value(metrics, "honeydue_kube_resource_error_info", resource="nodes", namespace="",
                 reason="unauthorized") == 1
    assert value(metrics, "honeydue_probe_success", probe="kubernetes_nodes") == 0
    assert "kubernetes credentials" in caplog.text and "cannot be loaded" in caplog.text
    for probe in engine.probes:
        await probe.close()


def test_the_shipped_netcheck_config_outside_a_pod_serves_its_tcp_paths(exporter_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """deploy/overlays/example/netcheck.yml as the DaemonSet runs it, but with no service account: TCP paths served,
    the EndpointSlice discovery failing as a value."""
    config = yaml.safe_load((REPO / "deploy" / "overlays" / "example" / "netcheck.yml").read_text())
    config["tcp"]["timeout"] = 1  # its PLACEHOLDER addresses do not resolve here: failing values, quickly
    config["tcp"]["interval"] = 2
    path = tmp_path / "netcheck.yml"
    path.write_text(yaml.safe_dump(config))
    exporter = exporter_factory(env={"NODE_NAME": "n1"}, config_path=path)
    exporter.start()
    exporter.wait_for("honeydue_probe_success", 0, timeout=30, probe="netcheck_pods_api")
    metrics = parse_metrics(exporter.get()[1].decode())
    assert value(metrics, "honeydue_probe_error_info", probe="netcheck_pods_api", reason="auth") == 1
    assert value(metrics, "honeydue_tcp_up", target="redis", node="n1") is not None
    assert exporter.proc is not None and exporter.proc.poll() is None
    assert "Traceback" not in exporter.logs()
