"""The engine: snapshots swapped whole, timeouts become values, one log line per state change."""

from __future__ import annotations

import asyncio
import logging

import pytest

from exporter.engine import Engine, Probe
from exporter.samples import Samples, gauge

UP = gauge("honeydue_test_target_up", "Test target up.", "target")
DETAIL = gauge("honeydue_test_target_detail", "Test target detail.", "target")


class ScriptedProbe(Probe):
    """A probe whose next outcome the test sets: a value, an exception, or a hang.

    `kind`: the catalog name it stands in for on the status page (default: its name).
    """

    family = "test"

    def __init__(self, name: str, timeout: float = 0.3, kind: str = "") -> None:
        super().__init__(name, 1.0, timeout)
        self.kind = kind or name
        self.outcome: float | BaseException | None = 1.0

    async def collect(self) -> Samples:
        if self.outcome is None:
            await asyncio.sleep(3600)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        s = Samples()
        s.add(UP, 1, target=self.name)
        s.add(DETAIL, float(self.outcome), target=self.name)  # type: ignore[arg-type]
        return s

    def failed(self, reason: str) -> Samples:
        s = Samples()
        s.add(UP, 0, target=self.name)
        return s


def values(engine: Engine, name: str) -> dict[str, float]:
    found = {}
    for part in engine.samples():
        for family in part.families():
            for sample in family.samples:
                if sample.name == name:
                    found[sample.labels.get("target") or sample.labels.get("probe", "")] = sample.value
    return found


async def test_failure_replaces_the_whole_snapshot_and_spares_others() -> None:
    a, b = ScriptedProbe("a"), ScriptedProbe("b")
    engine = Engine([a, b])
    a.outcome, b.outcome = 7.0, 9.0
    await engine.run_once(a)
    await engine.run_once(b)
    assert values(engine, "honeydue_test_target_detail") == {"a": 7.0, "b": 9.0}
    a.outcome = ConnectionRefusedError(111, "refused")
    state = await engine.run_once(a)
    assert state.reason == "refused"
    assert values(engine, "honeydue_test_target_up") == {"a": 0.0, "b": 1.0}
    assert values(engine, "honeydue_test_target_detail") == {"b": 9.0}  # a's detail gone, b's untouched
    assert values(engine, "honeydue_probe_success") == {"a": 0.0, "b": 1.0}


async def test_hung_probe_ends_at_its_timeout() -> None:
    probe = ScriptedProbe("hang", timeout=0.2)
    probe.outcome = None
    engine = Engine([probe])
    state = await engine.run_once(probe)
    assert state.status == "failing" and state.reason == "timeout"
    assert 0.2 <= state.duration < 0.5
    assert values(engine, "honeydue_probe_error_info") == {"hang": 1.0}


async def test_counts_failures_by_reason_and_keeps_last_success() -> None:
    probe = ScriptedProbe("p")
    engine = Engine([probe])
    await engine.run_once(probe)
    ok_at = engine.states["p"].last_success
    assert ok_at > 0
    probe.outcome = TimeoutError()
    await engine.run_once(probe)
    await engine.run_once(probe)
    probe.outcome = ConnectionRefusedError(111, "x")
    await engine.run_once(probe)
    assert engine.states["p"].failures == {"timeout": 2, "refused": 1}
    assert values(engine, "honeydue_probe_last_success_timestamp_seconds") == {"p": ok_at}


async def test_logs_once_per_state_change(caplog: pytest.LogCaptureFixture) -> None:
    probe = ScriptedProbe("p")
    engine = Engine([probe])
    with caplog.at_level(logging.INFO, logger="exporter.engine"):
        for outcome in (1.0, 1.0, ConnectionRefusedError(111, "x"), ConnectionRefusedError(111, "x"),
                        TimeoutError(), 1.0, 1.0):
            probe.outcome = outcome
            await engine.run_once(probe)
    messages = [r.getMessage().split(" (")[0] for r in caplog.records]
    assert messages == ["probe p ok", "probe p failing: refused", "probe p failing: timeout", "probe p ok"]


async def test_generation_moves_only_when_a_probe_publishes() -> None:
    probe = ScriptedProbe("p")
    engine = Engine([probe])
    before = engine.generation
    await engine.run_once(probe)
    assert engine.generation == before + 1


async def test_ready_after_every_probe_ran_once() -> None:
    a, b = ScriptedProbe("a"), ScriptedProbe("b", timeout=0.3)
    b.outcome = None  # hangs until its timeout; still counts as a finished first run
    engine = Engine([a, b])
    engine.start()
    assert not engine.ready
    assert await engine.wait_first_cycle(timeout=2)
    assert engine.alive() == (True, "ok")
    await engine.stop()
