"""The cardinality guard (series_limit) and the import of only the enabled probe families."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from testbed.asynqpeer import AsynqPeer
from testbed.exporter import ExporterProcess, value

from exporter import probes
from exporter.config import Config, load_config
from exporter.engine import Engine, Probe
from exporter.families import FAMILIES
from exporter.probes.deps import Dependencies
from exporter.samples import Samples, gauge
from tests.helpers.servers import RedisServer

REPO = Path(__file__).resolve().parent.parent
UP = gauge("honeydue_test_limit_up", "Test probe up.")
TOTAL = gauge("honeydue_test_limit_items", "Test probe total.")
PER_NODE = gauge("honeydue_test_limit_node_items", "Test items per node.", "node")
PER_ITEM = gauge("honeydue_test_limit_item", "Test item.", "item")
PER_ITEM_DETAIL = gauge("honeydue_test_limit_item_detail", "Test item detail.", "item")


def shaped(items: int, nodes: int = 3) -> Samples:
    """What a pods-like probe publishes: an up series, a total, a few per node, two per item."""
    s = Samples()
    s.add(UP, 1)
    s.add(TOTAL, items)
    for n in range(nodes):
        s.add(PER_NODE, n, node=f"n{n}")
    for i in range(items):
        s.add(PER_ITEM, 1, item=f"item{i:05d}")
        s.add(PER_ITEM_DETAIL, i, item=f"item{i:05d}")
    return s


def sizes(s: Samples) -> dict[str, int]:
    return {family.name: len(family.samples) for family in s.families()}


def test_limit_trims_the_largest_families_and_keeps_small_ones_whole() -> None:
    s = shaped(10_000)
    assert s.series() == 20_005
    dropped = s.limit(1000)
    assert s.series() <= 1000 and dropped == 20_005 - s.series()
    kept = sizes(s)
    assert kept["honeydue_test_limit_up"] == 1 and kept["honeydue_test_limit_items"] == 1
    assert kept["honeydue_test_limit_node_items"] == 3
    assert kept["honeydue_test_limit_item"] == kept["honeydue_test_limit_item_detail"] == (1000 - 5) // 2
    # The first series of each family survive (probes add them in a stable order): no churn between runs.
    info = next(f for f in s.families() if f.name == "honeydue_test_limit_item")
    assert [x.labels["item"] for x in info.samples[:2]] == ["item00000", "item00001"]
    assert shaped(10).limit(1000) == 0


class ShapedProbe(Probe):
    def __init__(self, items: int) -> None:
        super().__init__("kubernetes_pods_honeydue", 1.0, 1.0)
        self.items = items

    async def collect(self) -> Samples:
        return shaped(self.items)

    def failed(self, reason: str) -> Samples:
        return Samples.of(UP, 0)


async def test_engine_exports_the_drop_and_logs_once_per_transition(caplog: pytest.LogCaptureFixture) -> None:
    probe = ShapedProbe(2000)
    engine = Engine([probe], series_limits={probe.name: 500})
    caplog.set_level(logging.INFO, logger="exporter.engine")

    def own(name: str) -> float | None:
        return engine.samples()[0].value(name, probe=probe.name)

    def limit_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "series_limit" in r.getMessage()]

    produced = shaped(2000).series()
    for _ in range(3):
        await engine.run_once(probe)
    published = int(own("honeydue_probe_series") or 0)
    assert 0 < published <= 500 and own("honeydue_probe_series_dropped") == produced - published
    assert own("honeydue_probe_series_limit") == 500
    assert limit_lines() == [f"probe {probe.name}: {produced - published} series over series_limit 500 left out"]
    probe.items = 100
    await engine.run_once(probe)
    await engine.run_once(probe)
    assert own("honeydue_probe_series_dropped") == 0 and own("honeydue_probe_series") == 205
    assert len(limit_lines()) == 2 and limit_lines()[1] == f"probe {probe.name}: series back within series_limit 500"


def test_series_limit_config_per_family(tmp_path: Path) -> None:
    config = Config(series_limit={"default": 300, "families": {"kubernetes": 20_000}})  # type: ignore[arg-type]
    assert config.series_limit.of("kubernetes") == 20_000 and config.series_limit.of("asynq") == 300
    bad = tmp_path / "bad.yml"
    bad.write_text("series_limit: {families: {pods: 100}}\n")
    out = subprocess.run([sys.executable, "-m", "exporter", "--config", str(bad), "check-config"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 2 and "series_limit.families.pods" in out.stderr, out.stderr


def _config_without_kube(path: Path, tmp_path: Path) -> Config:
    """A shipped config with its secret files pointed at temporary files and the Kubernetes source off."""
    data = yaml.safe_load(path.read_text())
    text = json.dumps(data)
    for name in ("redis-password", "postgres-password", "obs-ingest-token", "obs-query-token", "api-readonly-token"):
        (tmp_path / name).write_text("x" * 16)
    data = json.loads(text.replace("/etc/honeydue-exporter/secrets", str(tmp_path)))
    data["kubernetes"] = {**data.get("kubernetes", {}), "source": "off"}
    (tmp_path / "config.yml").write_text(yaml.safe_dump(data))
    return load_config(tmp_path / "config.yml")


@pytest.mark.parametrize("shipped", ["config.yml", "netcheck.yml"])
def test_family_predicates_agree_with_each_build(shipped: str, tmp_path: Path) -> None:
    configs = [Config(), _config_without_kube(REPO / "deploy" / "overlays" / "example" / shipped, tmp_path),
               Config(redis={"enabled": False}, postgres={"pooler": {"enabled": False}},  # type: ignore[arg-type]
                      asynq={"enabled": True}, residence_cache={"enabled": True})]
    for config in configs:
        config = config.model_copy(update={"mode": "full"})
        enabled = set(probes.enabled_families(config))
        for family in FAMILIES:
            built = probes.module(family.name).build(config, Dependencies())
            assert bool(built) == (family.name in enabled), (family.name, shipped)
            assert all(p.family == family.name and p.kind in family.kinds for p in built)


def test_netcheck_imports_no_other_family(tmp_path: Path) -> None:
    """The netcheck DaemonSet builds its TCP probes without importing another family's client library; the
    Kubernetes client comes only for `tcp.discover` (the api pods from the Service's EndpointSlices)."""
    config = _config_without_kube(REPO / "deploy" / "overlays" / "example" / "netcheck.yml", tmp_path)
    assert probes.enabled_families(config) == ["tcp"]
    code = (
        "import sys\n"
        "from exporter.config import load_config\n"
        "from exporter.probes import build_probes\n"
        f"found = build_probes(load_config({str(tmp_path / 'config.yml')!r}))\n"
        "assert found and all(p.name.startswith(('tcp_', 'netcheck_pods_')) for p in found), [p.name for p in found]\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'redis', 'dns', 'aiosmtplib') "
        "or m.startswith(('google.protobuf', 'exporter.probes.')))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    # kube_client is the Kubernetes client adapter alone: the Kubernetes family's probes stay unimported
    assert out.stdout.split() == ["exporter.probes.deps", "exporter.probes.kube_client", "exporter.probes.tcp"]


def test_real_exporter_caps_asynq_queues(exporter_factory: type[ExporterProcess], tmp_path: Path) -> None:
    """300 queues in a real Redis against an asynq limit of 500 series: the per-queue families are cut,
    honeydue_asynq_up and the queue count stay, the drop is exported and logged once."""
    server = RedisServer()
    server.start()
    try:
        AsynqPeer(f"127.0.0.1:{server.port}").enqueue(",".join(f"q{q:03d}" for q in range(300)))  # real Asynq
        exporter = exporter_factory(env={
            "HONEYDUE_REDIS__URL": server.url, "HONEYDUE_KUBERNETES__SOURCE": "off",
            "HONEYDUE_POSTGRES__POOLER__ENABLED": "false", "HONEYDUE_POSTGRES__DIRECT__ENABLED": "false",
            "HONEYDUE_ASYNQ__INTERVAL": "1", "HONEYDUE_ASYNQ__TIMEOUT": "0.9",
            "HONEYDUE_SERIES_LIMIT__FAMILIES": '{"asynq": 500}',
        })
        exporter.start()
        m = exporter.metrics()
        series, dropped = value(m, "honeydue_probe_series", probe="asynq"), value(
            m, "honeydue_probe_series_dropped", probe="asynq")
        assert series is not None and dropped is not None and series <= 500 and dropped > 3000
        assert value(m, "honeydue_probe_series_limit", probe="asynq") == 500
        assert value(m, "honeydue_asynq_up") == 1 and value(m, "honeydue_asynq_queues") == 300
        assert value(m, "asynq_tasks", queue="q000", state="pending") == 1
        assert value(m, "asynq_tasks", queue="q299", state="pending") is None
        assert value(m, "honeydue_probe_series_dropped", probe="redis") == 0
        # Two more runs over the limit (each one's success time differs): still one log line.
        seen = {value(m, "honeydue_probe_last_success_timestamp_seconds", probe="asynq")}
        deadline = time.monotonic() + 60
        while len(seen) < 3 and time.monotonic() < deadline:
            seen.add(value(exporter.metrics(), "honeydue_probe_last_success_timestamp_seconds", probe="asynq"))
            time.sleep(0.2)
        assert len(seen) >= 3, "the asynq probe did not run twice more within 60 s"
        assert exporter.logs().count("series over series_limit 500 left out") == 1, exporter.logs()[-2000:]
    finally:
        server.stop()
