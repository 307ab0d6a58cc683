"""What the shipped rules make of a real-cluster scenario: the exporter's series, recorded while the test
cluster (testbed/kube) goes through a failure, run through promtool, vmalert-tool and a real
Alertmanager exactly as the incident suite (tests/incidents) runs its incidents, and compared with what
the scenario's incident in rules/incidents/ expects Alertmanager to deliver.

Time is compressed: every scrape of the recording (one probe run, 2 s apart) becomes one 30 s step, the
production probe interval and vmalert's evaluation interval, and the rules run with their `for` as shipped.
The real cluster's clocks are shortened too (node grace 8 s, tolerations 10 s, progress deadline 12 s), so
a scenario's sequence of states is what production shows, one probe run at a time. After the last recorded
scrape the steady state is held (the fault persists) until the incident's expectation time. Only the
Kubernetes series come from the recording (`honeydue_kube_*` that a rule reads, and the Kubernetes probes'
`honeydue_probe_success`/`_error_info`); everything else (Redis, PostgreSQL, HTTP, netcheck, the
exporter's own `up`) is the incident's cluster model at the same moment, with vmagent's labels. Real node
names are mapped onto the model's n1-n3 (the Redis node is n3 there, N2 here).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from testbed.exporter import ExporterProcess, Metrics
from testbed.kube.control_plane import NODE_NAMES

from tests.helpers.servers import require_binary
from tests.incidents import cluster, faults, suite

REPO = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((REPO / "rules").glob("honeydue-*.rules.yml"))
VMALERT_TOOL = REPO / "tests" / "peers" / "bin"
STEP = 30  # seconds per recorded scrape on the rules' clock
# Real node -> model node: N2 carries the Redis label (the model's n3); N3 is the NIC-failure node (n2).
NODE_MAP = dict(zip(NODE_NAMES, ("n1", "n3", "n2"), strict=True))


def _rule_metric_names() -> set[str]:
    names: set[str] = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                names |= set(re.findall(r"honeydue_kube_\w+", str(rule["expr"])))
    return names


KUBE_SERIES = _rule_metric_names()


def _is_kube(name: str, labels: dict[str, str]) -> bool:
    if name.startswith("honeydue_kube_"):
        return True
    return name in ("honeydue_probe_success", "honeydue_probe_error_info") and labels.get("probe", "").startswith(
        "kubernetes_")


@dataclass
class Recorder:
    """Scrapes the exporter every `every` seconds in a thread, from `start()` to `stop()`."""

    exporter: ExporterProcess
    every: float = 2.0
    scrapes: list[Metrics] = field(default_factory=list)
    injected: int | None = None  # index of the first scrape after the failure was injected
    steady: int | None = None  # index of the last scrape the scenario counts (its steady state)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Recorder:
        self.scrapes.append(_aged(self.exporter.metrics()))  # the healthy cluster, before anything happens
        self._thread = threading.Thread(target=self._run, name="kube-recorder", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                m = self.exporter.metrics()
            except OSError:
                continue
            with self._lock:
                self.scrapes.append(_aged(m))

    def inject(self) -> None:
        """Mark the moment the failure is injected (call just before injecting it). The baseline is a scrape
        taken now, not the thread's last one (up to `every` old, it may predate the healthy state the test
        waited for)."""
        baseline = self.exporter.metrics()
        with self._lock:
            self.scrapes.append(_aged(baseline))
            self.injected = len(self.scrapes)

    def mark_steady(self) -> None:
        """Mark the scenario's steady state: the scrape that showed it is the last one used."""
        with self._lock:
            self.scrapes.append(_aged(self.exporter.metrics()))
            self.steady = len(self.scrapes) - 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def mark(self) -> int:
        """The index the next scrape will have (to evaluate a later phase on its own: `evaluate(since=...)`)."""
        with self._lock:
            return len(self.scrapes)

    def used(self, since: int | None = None) -> tuple[Metrics, list[Metrics]]:
        """(the last healthy scrape, the scrapes from the injection, or from `since`, to the steady state)."""
        with self._lock:
            injected = self.injected if self.injected is not None else len(self.scrapes)
            start = injected if since is None else since
            end = self.steady if self.steady is not None else len(self.scrapes) - 1
            return self.scrapes[max(injected - 1, 0)], self.scrapes[start:end + 1]


def _aged(m: Metrics) -> Metrics:
    """A scrape with every `*_timestamp_seconds` value made relative to when it was taken (seconds before it,
    negative): the recording's wall clock means nothing on the rules' clock, which starts at step 0."""
    now = time.time()
    return {key: value - now if key[0].endswith("_timestamp_seconds") else value for key, value in m.items()}


def kube_values(m: Metrics, at: float = 0.0) -> dict[suite.SeriesKey, float]:
    """The Kubernetes series of one scrape as vmagent stores them: its labels added, nodes renamed, timestamps
    on the rules' clock at second `at` (the suite then adds each engine's own start)."""
    out: dict[suite.SeriesKey, float] = {}
    for (name, labels), value in m.items():
        if name.endswith("_timestamp_seconds"):
            value = at + value
        lab = dict(labels)
        if not _is_kube(name, lab) or (name.startswith("honeydue_kube_") and name not in KUBE_SERIES):
            continue
        if "node" in lab:
            lab["node"] = NODE_MAP.get(lab["node"], lab["node"])
        lab |= cluster.EXPORTER
        out[(name, frozenset(lab.items()))] = value
    return out


def _model_values(state: cluster.State, k: int) -> tuple[dict[suite.SeriesKey, float], bool]:
    """The model's series at this step other than the Kubernetes ones, and whether the exporter's reach the obs
    box (vmagent delivers and scrapes it): only then may the recording's."""
    values = cluster.series(state, k, STEP).values
    scraped = any(name == "up" and dict(labels).get("job") == "honeydue-exporter" and v == 1
                  for (name, labels), v in values.items())
    return {key: v for key, v in values.items() if not _is_kube(key[0], dict(key[1]))}, scraped


@dataclass
class Verdict:
    """What the rules made of a recorded scenario."""

    case: suite.Variant  # the synthetic incident: the recording on the incident's timeline
    source: suite.Incident  # the incident of rules/incidents/ the scenario corresponds to
    at: int  # the expectation time in `source`
    promql: dict[tuple[str, int], set[suite.Alert]]
    metricsql: dict[tuple[str, int], set[suite.Alert]]
    points: dict[str, list[suite.Checkpoint]]
    fault_step: int  # first step showing the recording after injection

    def firing(self, engine: str, k: int) -> set[str]:
        table = self.promql if engine == "promql" else self.metricsql
        return {dict(a)["alertname"] for a in table[(self.case.id, k)]}

    @property
    def last_step(self) -> int:
        return self.case.incident.steps - 1

    def delivered(self, engine: str) -> set[suite.Delivery]:
        by_step = {p.step: p for p in self.points[engine]}
        point = by_step[self.last_step]
        return {d for d in point.delivered if d.receiver != "deadmansswitch"}

    def problems(self) -> list[str]:
        """Differences from the incident's expectation (both engines), engine disagreements, page budget."""
        expected = self.source.expect[self.at]
        out = []
        for engine in ("promql", "metricsql"):
            got = self.delivered(engine)
            if got != expected:
                out.append(f"{engine} at {suite.duration(self.at)}: missing {sorted(map(str, expected - got))}, "
                           f"unexpected {sorted(map(str, got - expected))}, firing "
                           f"{sorted(self.firing(engine, self.last_step))}")
            out += [f"{engine}: {p}" for p in suite.budget_problems(self.case, self.points[engine])]
        out += suite.engine_differences(self.case, self.promql, self.metricsql)
        return out


@dataclass
class Replay:
    """A recording put on its incident's timeline, ready for the rules (`evaluate_all`)."""

    name: str
    case: suite.Variant  # the synthetic incident: the recording on the incident's timeline
    source: suite.Incident
    at: int
    fault_step: int


def replay(recorder: Recorder, incident_id: str, at: str, probe_every: str = "", since: int | None = None,
           name: str = "") -> Replay:
    """The recording on incident `incident_id`'s timeline up to its expectation time `at`. With `since` (a
    `Recorder.mark()`), the fault is the scrapes from there on: a later phase of the failure as if it had shown
    from the start. `name` (default: the incident's id) names it among the replays evaluated together."""
    source = suite.load(suite.INCIDENTS / f"{incident_id}.yml")
    assert source.step == STEP, f"{incident_id}: step {source.step}s, the recordings use {STEP}s"
    t_at = suite.seconds(at)
    k_at = t_at // STEP
    starts = [suite.seconds(e["at"]) // STEP for e in source.timeline if e.get("set")]
    healthy, fault = recorder.used(since)
    k0 = min(starts) if starts and fault else k_at + 1  # the incident's fault starts here
    model = suite.states(source)
    total = max(k_at + 1, k0 + len(fault))
    per_step = []
    for k in range(total):
        # the scrape this step shows, and the step it was taken at (a held steady state keeps its clock)
        taken = min(k, k0 - 1) if k < k0 else k0 + min(k - k0, len(fault) - 1)
        kube = healthy if k < k0 else fault[taken - k0]
        values, scraped = _model_values(model[min(k, k_at)], k)
        per_step.append(values | kube_values(kube, taken * STEP) if scraped else values)
    name = name or incident_id
    synthetic = suite.Incident(
        id=f"real-{name}", title=f"the real cluster's {name}", failure_mode=source.failure_mode,
        step=STEP, duration=(total - 1) * STEP, initial={}, timeline=[],
        expect={(total - 1) * STEP: source.expect[t_at]}, placement=source.placement,
        probe_every=suite.seconds(probe_every) if probe_every else 0,
    )
    states = [model[min(k, k_at)] for k in range(total)]
    silent = [not cluster.vmagent_writes(s) for s in states]
    case = suite.Variant(synthetic, source.placement, suite.rows_of(per_step, silent), faults.pages_due(states, STEP))
    return Replay(name, case, source, t_at, k0)


def evaluate_all(replays: list[Replay], workdir: Path) -> dict[str, Verdict]:
    """Every replay through both engines (one promtool and one vmalert-tool run for all) and one Alertmanager."""
    workdir.mkdir(parents=True, exist_ok=True)
    promtool = require_binary("promtool")
    vmalert_tool = require_binary("vmalert-tool", str(VMALERT_TOOL))
    cases = [r.case for r in replays]
    by_tool = suite.evaluate_all({"promtool": promtool, "vmalert-tool": vmalert_tool}, workdir, cases, RULE_FILES)
    promql, metricsql = by_tool["promtool"], by_tool["vmalert-tool"]
    points = {(engine, r.name): suite.checkpoints(r.case, firing, engine)
              for engine, firing in (("promql", promql), ("metricsql", metricsql)) for r in replays}
    suite.deliver(workdir, [p for ps in points.values() for p in ps], RULE_FILES)
    return {r.name: Verdict(r.case, r.source, r.at, promql, metricsql,
                            {engine: points[(engine, r.name)] for engine in ("promql", "metricsql")}, r.fault_step)
            for r in replays}


def evaluate(recorder: Recorder, incident_id: str, at: str, workdir: Path, probe_every: str = "",
             since: int | None = None) -> Verdict:
    """One recording through both engines and Alertmanager (see `replay`)."""
    return evaluate_all([replay(recorder, incident_id, at, probe_every, since)], workdir)[incident_id]


def record(exporter: ExporterProcess, every: float = 2.0) -> Recorder:
    return Recorder(exporter, every).start()


def alerts_as_expected(recording: Recorder, incident: str, at: str, tmp_path: Path,
                       probe_every: str = "", since: int | None = None) -> Verdict:
    """The shipped rules over the recording deliver what rules/incidents/<incident>.yml expects at `at`."""
    workdir = tmp_path / ("alerts" if since is None else f"alerts-since-{since}")
    verdict = evaluate(recording, incident, at, workdir, probe_every, since)
    assert_as_expected(verdict, f"{incident} at {at}")
    return verdict


def assert_as_expected(verdict: Verdict, what: str) -> None:
    problems = verdict.problems()
    assert not problems, f"{what}:\n  " + "\n  ".join(problems)
    print(f"\n{what}: {sorted(map(str, verdict.delivered('metricsql')))}")


class Replays:
    """The recordings of a module's scenarios, evaluated together once the scenarios have run: one promtool,
    one vmalert-tool and one Alertmanager for all of them instead of one each (the incident suite's way)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pending: dict[str, Replay] = {}
        self._verdicts: dict[str, Verdict] | None = None

    def add(self, recording: Recorder, incident: str, at: str, probe_every: str = "", since: int | None = None,
            name: str = "") -> None:
        """Keep the recording (as it is now) for evaluation against `incident` at `at`."""
        r = replay(recording, incident, at, probe_every, since, name)
        assert r.name not in self.pending, f"{r.name} recorded twice"
        self.pending[r.name] = r

    def verdict(self, name: str) -> Verdict:
        if self._verdicts is None:
            self._verdicts = evaluate_all(list(self.pending.values()), self.workdir) if self.pending else {}
        assert name in self._verdicts, f"{name}: no recording (its scenario test failed before recording it)"
        return self._verdicts[name]
