"""The observability pipeline for real: vmagent scrapes the exporter and remote-writes to VictoriaMetrics.

Then VictoriaMetrics is stopped: the exporter's vmagent probe must show errors and pending bytes
growing, and both must recover after VictoriaMetrics comes back. The no-data probe runs against the
same VictoriaMetrics.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from testbed.exporter import ExporterProcess, Metrics, value
from testbed.vm import VictoriaMetrics, Vmagent

from exporter.config import Config, NoDataConfig, VmagentConfig
from exporter.engine import Engine
from exporter.exposition import Exposition
from exporter.probes import build_probes
from exporter.probes.deps import Dependencies
from exporter.probes.nodata import NoDataProbe, catalog_metrics
from exporter.probes.vmagent import VmagentProbe, summarize
from exporter.promql import metric_names
from tests.helpers.servers import free_port


def poll(exporter: ExporterProcess, check: object, timeout: float, what: str) -> Metrics:
    """Scrape the exporter until `check(samples)` is true."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    samples: Metrics = {}
    while time.monotonic() < deadline:
        samples = exporter.metrics()
        if check(samples):
            return samples
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen within {timeout}s; last: "
                         f"{ {k[0]: v for k, v in samples.items() if 'vmagent' in k[0]} }")


def vmagent_value(samples: Metrics, name: str) -> float:
    found = value(samples, name)
    assert found is not None, f"{name} missing from the exposition"
    return found


@pytest.mark.slow
def test_vmagent_outage_and_recovery(victoria: VictoriaMetrics, tmp_path: Path) -> None:
    exporter_port = free_port()
    agent = Vmagent(remote_write_url=victoria.write_url, targets=[f"127.0.0.1:{exporter_port}"])
    exporter = ExporterProcess(
        port=exporter_port, log_path=tmp_path / "exporter.log",
        env={
            "HONEYDUE_REDIS__ENABLED": "false",
            "HONEYDUE_POSTGRES__POOLER__ENABLED": "false",
            "HONEYDUE_POSTGRES__DIRECT__ENABLED": "false",
            "HONEYDUE_VMAGENT__URL": agent.metrics_url,
            "HONEYDUE_VMAGENT__INTERVAL": "1",
            "HONEYDUE_VMAGENT__TIMEOUT": "0.8",
        },
    )
    agent.start()
    try:
        exporter.start()
        # 1. The pipeline works: our own series arrive in the TSDB through vmagent.
        victoria.wait_for_series('honeydue_vmagent_up{job="honeydue-exporter"} == 1', timeout=30)
        healthy = poll(exporter, lambda s: value(s, "honeydue_vmagent_up") == 1, 15, "vmagent probe up")
        errors_before = vmagent_value(healthy, "honeydue_vmagent_remotewrite_errors_total")
        assert vmagent_value(healthy, "honeydue_vmagent_persistentqueue_blocks_dropped_total") == 0
        assert value(healthy, "honeydue_vmagent_remotewrite_requests_total", status_class="2XX")

        # 2. The obs box goes away: errors rise and pending bytes grow.
        victoria.stop()
        outage_started = time.time()
        first = poll(exporter, lambda s: vmagent_value(s, "honeydue_vmagent_remotewrite_errors_total")
                     > errors_before, 30, "remote-write errors")
        pending_first = vmagent_value(first, "honeydue_vmagent_remotewrite_pending_bytes")
        later = poll(exporter, lambda s: vmagent_value(s, "honeydue_vmagent_remotewrite_pending_bytes")
                     > pending_first + 1000, 30, "pending bytes growing")
        assert vmagent_value(later, "honeydue_vmagent_remotewrite_errors_total") > errors_before
        assert vmagent_value(later, "honeydue_vmagent_remotewrite_retries_total") > 0
        assert value(later, "honeydue_vmagent_up") == 1  # vmagent itself is fine: the write path is not
        pending_peak = vmagent_value(later, "honeydue_vmagent_remotewrite_pending_bytes")
        sent_during_outage = vmagent_value(later, "honeydue_vmagent_remotewrite_blocks_sent_total")
        outage_ended = time.time()

        # 3. The obs box returns: the buffer drains and the outage's samples are replayed.
        victoria.start()
        recovered = poll(exporter, lambda s: vmagent_value(s, "honeydue_vmagent_remotewrite_pending_bytes")
                         < pending_peak / 2, 90, "pending bytes draining")
        assert vmagent_value(recovered, "honeydue_vmagent_remotewrite_blocks_sent_total") > sent_during_outage
        assert vmagent_value(recovered, "honeydue_vmagent_remotewrite_errors_total") >= errors_before
        # Any sample stamped inside the outage can only be in the TSDB because vmagent replayed it.
        window = max(2, int(outage_ended - outage_started) - 1)
        victoria.wait_for_series(f"count_over_time(honeydue_exporter_build_info[{window}s])", timeout=30)
        replayed = victoria.query(f"count_over_time(honeydue_exporter_build_info[{window}s])", at=outage_ended)
        assert replayed, "no samples from the outage window were replayed"
    finally:
        exporter.stop()
        agent.cleanup()
    assert "secret-url" not in exporter.logs()


async def test_vmagent_probe_against_real_vmagent_names(victoria: VictoriaMetrics) -> None:
    """The names this probe maps exist in the shipped vmagent (1.79.5); the URL never becomes a label."""
    agent = Vmagent(remote_write_url=victoria.write_url, targets=[f"127.0.0.1:{victoria.port}"])
    agent.start()
    try:
        raw = agent.raw_metrics()
        probe = VmagentProbe(VmagentConfig(url=agent.metrics_url, interval=2, timeout=1))
        engine = Engine([probe])
        state = await engine.run_once(probe)
        text = Exposition(engine).render().decode()
        # A body above max_bytes is abandoned, not read into memory.
        small = VmagentProbe(VmagentConfig(url=agent.metrics_url, interval=2, timeout=1, max_bytes=1000))
        oversized = await Engine([small]).run_once(small)
    finally:
        agent.cleanup()
    assert oversized.status == "failing" and "BodyTooLarge" in oversized.detail
    assert oversized.snapshot.value("honeydue_vmagent_up") == 0
    assert state.status == "ok", state.detail
    for source in ("vmagent_remotewrite_pending_data_bytes", "vmagent_remotewrite_packets_dropped_total",
                   "vm_persistentqueue_blocks_dropped_total", "vm_persistentqueue_bytes_dropped_total",
                   "vmagent_remotewrite_errors_total", "vmagent_remotewrite_retries_count_total"):
        assert source in raw, source
    for ours in ("honeydue_vmagent_remotewrite_pending_bytes", "honeydue_vmagent_remotewrite_packets_dropped_total",
                 "honeydue_vmagent_persistentqueue_blocks_dropped_total",
                 "honeydue_vmagent_persistentqueue_dropped_bytes_total", "honeydue_vmagent_remotewrite_errors_total",
                 "honeydue_vmagent_remotewrite_retries_total"):
        assert f"\n{ours} " in text or f"\n{ours}{{" in text, ours
    assert "url=" not in text and "path=" not in text and agent.workdir.name not in text


async def test_vmagent_probe_down() -> None:
    dead = VmagentProbe(VmagentConfig(url=f"http://127.0.0.1:{free_port()}/metrics", interval=2, timeout=1))
    engine = Engine([dead])
    state = await engine.run_once(dead)
    assert (state.status, state.reason) == ("failing", "refused")
    assert state.snapshot.value("honeydue_vmagent_up") == 0


def test_summarize_sums_over_urls_and_classes_status_codes() -> None:
    text = (
        'vmagent_remotewrite_errors_total{url="1:secret-url"} 3\n'
        'vmagent_remotewrite_errors_total{url="2:secret-url"} 4\n'
        'vmagent_remotewrite_requests_total{url="1:secret-url",status_code="2XX"} 10\n'
        'vmagent_remotewrite_requests_total{url="1:secret-url",status_code="weird"} 1\n'
    )
    s = summarize(text)
    assert s.value("honeydue_vmagent_remotewrite_errors_total") == 7
    assert s.value("honeydue_vmagent_remotewrite_requests_total", status_class="2XX") == 10
    assert s.value("honeydue_vmagent_remotewrite_requests_total", status_class="other") == 1
    assert s.value("honeydue_vmagent_remotewrite_samples_dropped_total") is None  # not in this vmagent


# --- "no data" ---------------------------------------------------------------------------------------

async def test_nodata_reports_exactly_the_missing_metrics(victoria: VictoriaMetrics) -> None:
    victoria.import_prometheus(
        'honeydue_tcp_up{target="redis",role="essential",backend="",path="",node="n1"} 1\n'
        "honeydue_exporter_build_info{version=\"0.1.0\"} 1\n"
        'honeydue_redis_up 0\n'
    )
    victoria.wait_for_series("honeydue_redis_up")
    names = ["honeydue_exporter_build_info", "honeydue_postgres_up", "honeydue_redis_up", "honeydue_tcp_up",
             "honeydue_vmagent_up"]
    token = "nodata-token-123456"
    probe = NoDataProbe(NoDataConfig(query_url=victoria.url, interval=5, timeout=2, bearer_token=token,
                                     ignore=("honeydue_vmagent_up",)), names=names)
    engine = Engine([probe])
    state = await engine.run_once(probe)
    assert state.status == "ok", state.detail
    s = state.snapshot
    missing = {n for n in names if s.value("honeydue_nodata_metric_missing", metric=n) == 1}
    present = {n for n in names if s.value("honeydue_nodata_metric_missing", metric=n) == 0}
    assert missing == {"honeydue_postgres_up"}
    assert present == {"honeydue_exporter_build_info", "honeydue_redis_up", "honeydue_tcp_up"}
    assert s.value("honeydue_nodata_metric_missing", metric="honeydue_vmagent_up") is None  # ignored
    assert s.value("honeydue_nodata_missing_metrics") == 1
    assert s.value("honeydue_nodata_checked_metrics") == 4
    assert s.value("honeydue_nodata_query_up") == 1
    assert token not in Exposition(engine).render().decode()

    victoria.stop()
    state = await engine.run_once(probe)
    assert (state.status, state.reason) == ("failing", "refused")
    assert state.snapshot.value("honeydue_nodata_query_up") == 0
    assert token not in state.detail


async def test_nodata_checks_every_catalog_metric_against_the_tsdb(victoria: VictoriaMetrics) -> None:
    checked = catalog_metrics()
    assert {"honeydue_tcp_up", "honeydue_vmagent_remotewrite_pending_bytes", "honeydue_postgres_up",
            "honeydue_kube_pod_container_status_last_terminated_timestamp_seconds",
            "honeydue_nodata_metric_missing"} <= set(checked)
    assert not {"rate", "increase", "max", "by", "node", "role", "absent_over_time"} & set(checked)
    victoria.import_prometheus("honeydue_postgres_up{endpoint=\"pooler\"} 1\n")
    victoria.wait_for_series("honeydue_postgres_up")
    probe = NoDataProbe(NoDataConfig(query_url=victoria.url, interval=5, timeout=2))
    state = await Engine([probe]).run_once(probe)
    assert state.status == "ok", state.detail
    missing = {n for n in checked if state.snapshot.value("honeydue_nodata_metric_missing", metric=n) == 1}
    assert missing == set(checked) - {"honeydue_postgres_up"}


def test_metric_names_from_promql() -> None:
    assert metric_names(
        'count by (node) (honeydue_tcp_up{role="service"} == 0 and on (node, backend) '
        '(max by (node, backend) (honeydue_tcp_up{role="pod",path="remote"}) == 1)) > 0'
    ) == {"honeydue_tcp_up"}
    assert metric_names("rate(a_total[5m] offset 1m) / ignoring(x) group_left(y) b{c=\"d(e)\"} or vector(1)") == {
        "a_total", "b"}
    assert metric_names('{__name__="up", job="x"}') == {"up"}


async def test_exposition_passes_promtool(victoria: VictoriaMetrics, promtool: str) -> None:
    """tcp (up and failing), vmagent and nodata families together: `promtool check metrics` prints nothing."""
    agent = Vmagent(remote_write_url=victoria.write_url, targets=[f"127.0.0.1:{victoria.port}"])
    agent.start()
    try:
        config = Config(
            redis={"enabled": False}, postgres={"pooler": {"enabled": False}, "direct": {"enabled": False}},
            tcp={"node_name": "n1", "timeout": 0.5, "targets": [
                {"name": "vm", "address": f"127.0.0.1:{victoria.port}"},
                {"name": "api-pod", "address": f"127.0.0.2:{free_port('127.0.0.2')}", "role": "pod", "backend": "api",
                 "node": "n2"},
            ]},
            vmagent={"url": agent.metrics_url}, nodata={"query_url": victoria.url},
        )
        engine = Engine(build_probes(config, Dependencies()))
        for probe in engine.probes:
            await engine.run_once(probe)
        text = Exposition(engine).render().decode()
    finally:
        agent.cleanup()
    for family in ("honeydue_tcp_up", "honeydue_tcp_failure_info", "honeydue_vmagent_remotewrite_pending_bytes",
                   "honeydue_nodata_metric_missing"):
        assert f"\n{family}{{" in text or f"\n{family} " in text, family
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
