"""The probe engine: every probe on its own interval and timeout, each result published whole.

Probes run in the background so their cost does not scale with the number of scrapers; a scrape
only reads the snapshots kept here. A probe that raises or overruns its timeout publishes its
`failed(reason)` samples (its `up`-style series at 0) instead of half a result.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from exporter import build
from exporter.errors import REASONS, classify
from exporter.redact import redact
from exporter.samples import Samples, counter, gauge, info

log = logging.getLogger("exporter.engine")

PROBE_SUCCESS = gauge("honeydue_probe_success", "Whether the probe's last run succeeded (1) or failed (0).", "probe")
PROBE_DURATION = gauge("honeydue_probe_duration_seconds", "How long the probe's last run took.", "probe")
PROBE_LAST_SUCCESS = gauge(
    "honeydue_probe_last_success_timestamp_seconds",
    "Unix time of the probe's last successful run (0 = never).",
    "probe",
)
PROBE_INTERVAL = gauge("honeydue_probe_interval_seconds", "Configured seconds between the probe's runs.", "probe")
PROBE_FAILURES = counter(
    "honeydue_probe_failures_total", "Probe runs that failed, by reason (every reason from 0).", "probe", "reason"
)
PROBE_ERROR = info(
    "honeydue_probe_error_info", "Present while the probe's last run failed: the reason.", "probe", "reason"
)
BUILD_INFO = info(
    "honeydue_exporter_build_info", "The running exporter's version, git revision and Python version.",
    "version", "revision", "python_version",
)
START_TIME = gauge(
    "honeydue_exporter_start_time_seconds", "Unix time the exporter process started (marks restarts on the dashboard)."
)
_PROCESS_STARTED = time.time()
PROBE_SERIES = gauge("honeydue_probe_series", "Series the probe published in its last run.", "probe")
PROBE_SERIES_LIMIT = gauge(
    "honeydue_probe_series_limit", "Most series the probe may publish per run (series_limit).", "probe"
)
PROBE_SERIES_DROPPED = gauge(
    "honeydue_probe_series_dropped",
    "Series the probe's last run produced over series_limit and left out (0 when within it).",
    "probe",
)


class Probe(abc.ABC):
    """What every probe is to the engine: a name, an interval and a timeout, and how to collect.

    The one base of every probe family, so the schedule's attributes are set in one place and a probe
    never knows about HTTP or scheduling. Each probe class says which family it belongs to (a record of
    exporter.families: its series_limit, why it is absent) and which of the family's `kinds` it is (the
    name catalog entries give it, FailureMode.probes, which the status page matches): never read from
    its name.
    """

    family: str
    kind: str

    def __init__(self, name: str, interval: float, timeout: float) -> None:
        self.name = name
        self.interval = interval
        self.timeout = timeout

    @abc.abstractmethod
    async def collect(self) -> Samples:
        """Gather and return this run's samples; raise if the dependency failed."""

    @abc.abstractmethod
    def failed(self, reason: str) -> Samples:
        """The samples to publish when a run failed: the probe's `up` series at 0."""

    async def close(self) -> None:  # noqa: B027 - most probes hold nothing to release
        """Release connections on shutdown (nothing, unless the probe holds some)."""


@dataclass
class ProbeState:
    """What the engine knows about one probe; read by /metrics, /healthz and the landing page."""

    name: str
    interval: float
    status: str = "pending"  # pending | ok | failing
    reason: str = ""
    logged_reason: str = ""
    detail: str = ""
    runs: int = 0
    last_success: float = 0.0
    last_finished_monotonic: float = 0.0
    duration: float = 0.0
    series: int = 0
    dropped: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    snapshot: Samples = field(default_factory=Samples)


class Engine:
    """Runs probes concurrently and keeps the latest snapshot of each."""

    def __init__(self, probes: Sequence[Probe], clock: Callable[[], float] = time.time,
                 series_limits: Mapping[str, int] | None = None) -> None:
        names = [p.name for p in probes]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate probe names: {names}")
        self.probes = tuple(probes)
        self.states = {p.name: ProbeState(p.name, p.interval) for p in probes}
        self.series_limits = dict(series_limits or {})  # probe name -> most series per run (absent: no limit)
        self.generation = 0
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        self._first_cycle = asyncio.Event()
        self._started_monotonic = time.monotonic()

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._started_monotonic = time.monotonic()
        if not self.probes:
            self._first_cycle.set()
        for probe in self.probes:
            self._tasks.append(asyncio.create_task(self._loop(probe), name=f"probe:{probe.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for probe in self.probes:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(probe.close(), timeout=1.0)

    async def wait_first_cycle(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._first_cycle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def ready(self) -> bool:
        return self._first_cycle.is_set()

    def alive(self) -> tuple[bool, str]:
        """Every probe loop is running and has finished a run recently (not wedged)."""
        now = time.monotonic()
        for probe, task in zip(self.probes, self._tasks, strict=False):
            if task.done():
                return False, f"probe {probe.name} loop stopped"
            state = self.states[probe.name]
            since = state.last_finished_monotonic or self._started_monotonic
            if now - since > 2 * (probe.interval + probe.timeout) + 5:
                return False, f"probe {probe.name} has not finished a run for {now - since:.0f}s"
        return True, "ok"

    # --- running ---------------------------------------------------------------------------
    async def _loop(self, probe: Probe) -> None:
        next_start = time.monotonic()
        while True:
            await self.run_once(probe)
            if all(s.runs > 0 for s in self.states.values()):
                self._first_cycle.set()
            next_start += probe.interval
            delay = next_start - time.monotonic()
            if delay < 0:  # overran (should not happen: timeout < interval); do not burst to catch up
                next_start = time.monotonic()
                delay = 0
            await asyncio.sleep(delay)

    async def run_once(self, probe: Probe) -> ProbeState:
        """Run one probe once, within its timeout, and publish its result whole."""
        state = self.states[probe.name]
        started = time.monotonic()
        reason, detail = "", ""
        try:
            async with asyncio.timeout(probe.timeout):
                samples = await probe.collect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a value, never a crash
            reason = "timeout" if isinstance(exc, TimeoutError) else classify(exc)
            detail = _describe(exc, probe.timeout)
            samples = probe.failed(reason)
        limit = self.series_limits.get(probe.name)
        dropped = samples.limit(limit) if limit else 0
        if bool(dropped) != bool(state.dropped):  # one log line when the limit starts or stops biting
            self._log_limit(probe.name, dropped, limit or 0)
        state.series, state.dropped = samples.series(), dropped
        state.duration = time.monotonic() - started
        state.last_finished_monotonic = time.monotonic()
        state.runs += 1
        state.snapshot = samples
        previous = state.status
        if reason:
            state.status, state.reason, state.detail = "failing", reason, detail
            state.failures[reason] = state.failures.get(reason, 0) + 1
        else:
            state.status, state.reason, state.detail = "ok", "", ""
            state.last_success = self._clock()
        self.generation += 1
        # One log line per change of state (and per change of reason while failing), not per run.
        if state.status != previous or state.reason != state.logged_reason:
            self._log_change(probe.name, previous, state)
            state.logged_reason = state.reason
        return state

    def _log_change(self, name: str, previous: str, state: ProbeState) -> None:
        extra = {"probe_name": name, "probe_status": state.status, "probe_previous": previous}
        if state.status == "failing":
            extra |= {"probe_reason": state.reason, "probe_detail": state.detail}
            log.warning("probe %s failing: %s (%s)", name, state.reason, state.detail, extra=extra)
        else:
            log.info("probe %s ok", name, extra=extra)

    def _log_limit(self, name: str, dropped: int, limit: int) -> None:
        extra = {"probe_name": name, "probe_series_dropped": dropped, "probe_series_limit": limit}
        if dropped:
            log.warning("probe %s: %d series over series_limit %d left out", name, dropped, limit, extra=extra)
        else:
            log.info("probe %s: series back within series_limit %d", name, limit, extra=extra)

    # --- exposition ------------------------------------------------------------------------
    def samples(self) -> list[Samples]:
        """The engine's own series plus every probe's latest snapshot."""
        own = Samples()
        own.add(BUILD_INFO, 1.0, **build.labels())
        own.add(START_TIME, _PROCESS_STARTED)
        for name, state in self.states.items():
            own.add(PROBE_INTERVAL, state.interval, probe=name)
            # Every reason of every probe from the start, at 0 until it happens: increase() and rate() then
            # see a probe's first failure of a kind as growth, not as a series appearing.
            for reason in REASONS:
                own.add(PROBE_FAILURES, state.failures.get(reason, 0), probe=name, reason=reason)
            if state.runs == 0:
                continue
            own.add(PROBE_SUCCESS, 1.0 if state.status == "ok" else 0.0, probe=name)
            own.add(PROBE_DURATION, state.duration, probe=name)
            own.add(PROBE_LAST_SUCCESS, state.last_success, probe=name)
            own.add(PROBE_SERIES, state.series, probe=name)
            own.add(PROBE_SERIES_DROPPED, state.dropped, probe=name)
            if name in self.series_limits:
                own.add(PROBE_SERIES_LIMIT, self.series_limits[name], probe=name)
            if state.status == "failing":
                own.add(PROBE_ERROR, probe=name, reason=state.reason)
        return [own, *(s.snapshot for s in self.states.values())]


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(f"{type(exc).__name__}: {text}")[:300]
