"""The incident suite: incidents (rules/incidents/*.yml) through both rule engines and a real Alertmanager.

An incident is a timeline of faults. `cluster.series` turns each step's faults into every series the rules
read; `rule_test_file` writes them, once per engine, as a unit-test file that asks for the firing alerts
(`ALERTS{alertstate="firing"}`) at every step. Neither engine can print what fires except as a failed
expectation, so each step expects nothing and `firing_alerts` reads the engine's "got" list: promtool
(PromQL) and vmalert-tool (MetricsQL, what production runs) must report the same alerts at every step.
Those alerts, with their rules' annotations, are pushed into a real Alertmanager running
deploy/alertmanager/alertmanager.yml (receivers on loopback) and the suite compares what the receivers
get with the incident's `expect`.

Page budget, checked for every incident: one critical page per root cause. A page is one notification
group at the pager receiver (Alertmanager groups by failure mode and node); the groups paged over the
whole incident must name only failure modes of its `root_causes`, one group per root cause, and the
Watchdog must keep reaching the dead-man's switch.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import re
import subprocess
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.alertmanager import EXAMPLE, Alertmanager, local_config
from testbed.receivers import WebhookReceiver

from exporter import catalog
from tests.incidents import cluster, faults

REPO = Path(__file__).resolve().parents[2]
INCIDENTS = REPO / "rules" / "incidents"
RECEIVER_SEVERITY = {"pager": "critical", "tickets": "warning", "low-noise": "info", "deadmansswitch": "info"}
TOOL_EPOCH = {"promtool": 0.0, "vmalert-tool": 946684800.0}  # each engine's clock at step 0
WARMUP = 120
COARSE_STEP = 60  # seconds: the grid of the placements other than an incident's own
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def seconds(text: str | int) -> int:
    if isinstance(text, int):
        return text
    match = _DURATION.match(str(text))
    if not match or not str(text):
        raise ValueError(f"not a duration: {text!r}")
    hours, minutes, secs = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + secs


def duration(total: int) -> str:
    return f"{total // 60}m{total % 60}s" if total % 60 else f"{total // 60}m"


@dataclass(frozen=True)
class Delivery:
    """One alert in a notification: which receiver got it, its name, severity, runbook anchor and node."""

    receiver: str
    alert: str
    severity: str
    anchor: str
    node: str = ""

    def __str__(self) -> str:
        where = f" node={self.node}" if self.node else ""
        word = {"pager": "page", "tickets": "ticket", "low-noise": "digest", "deadmansswitch": "watchdog"}[self.receiver]
        return f"{word} {self.alert} {self.anchor}{where}"

    @classmethod
    def parse(cls, text: str) -> Delivery:
        """`page KubeNodeNotReady one-nodes-nic-fails node=n3`: receiver (page|ticket|digest|watchdog), alert,
        the runbook anchor it links to, and the node when the alert has one."""
        words = text.split()
        receiver = {"page": "pager", "ticket": "tickets", "digest": "low-noise", "watchdog": "deadmansswitch"}[words[0]]
        node = next((w.removeprefix("node=") for w in words[3:] if w.startswith("node=")), "")
        anchor = words[2]
        return cls(receiver, words[1], RECEIVER_SEVERITY[receiver] if receiver != "deadmansswitch" else "info",
                   anchor, node)


@dataclass
class Incident:
    id: str
    title: str
    failure_mode: str  # the catalog entry this incident exercises (`catalog --id`)
    step: int
    duration: int
    initial: dict[str, Any]
    timeline: list[dict[str, Any]]
    expect: dict[int, set[Delivery]]  # exact notifications at the incident's own placement
    placement: cluster.Placement = cluster.DEFAULT_PLACEMENT
    notes: str = ""
    probe_every: int = 0  # ask for the firing alerts every N seconds (default: every step)

    @property
    def steps(self) -> int:
        return self.duration // self.step + 1

    @property
    def query_steps(self) -> list[int]:
        every = max(self.probe_every // self.step, 1) if self.probe_every else 1
        wanted = set(range(0, self.steps, every)) | {t // self.step for t in self.expect}
        # from 2 minutes on: the Watchdog (for: 1m) fires from then, the cluster has warmed up
        return sorted(k for k in wanted if k * self.step >= WARMUP and k < self.steps)

    @property
    def root_causes(self) -> list[str]:
        """The failure modes allowed to page at the incident's own placement (derived from its faults)."""
        return sorted(faults.pages_due(states(self), self.step).allowed)


def load(path: Path) -> Incident:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    step = seconds(doc.get("step", "30s"))
    expect = {seconds(t): {Delivery.parse(d) for d in (items or [])} for t, items in (doc.get("expect") or {}).items()}
    for t in expect:
        if t % step:
            raise ValueError(f"{path.name}: expect time {t}s is not on a step of {step}s")
    unknown = set(doc) - {"id", "title", "failure_mode", "step", "duration", "initial", "timeline", "expect",
                          "placement", "notes", "probe_every"}
    if unknown:
        raise ValueError(f"{path.name}: unknown keys {sorted(unknown)}")
    return Incident(
        id=doc["id"], title=doc["title"], failure_mode=doc["failure_mode"], step=step,
        duration=seconds(doc["duration"]), initial=doc.get("initial") or {}, timeline=doc.get("timeline") or [],
        expect=expect, placement=cluster.Placement(**(doc.get("placement") or {})), notes=doc.get("notes", ""),
        probe_every=seconds(doc.get("probe_every", 0) or 0),
    )


def load_all(directory: Path = INCIDENTS) -> list[Incident]:
    return [load(p) for p in sorted(directory.glob("*.yml"))]


# --- the timeline -> series ---------------------------------------------------------------------------
def states(incident: Incident, placement: cluster.Placement | None = None) -> list[cluster.State]:
    """The cluster's state at every step: the timeline's changes, plus what Kubernetes does by itself."""
    state = cluster.initial(placement or incident.placement)
    cluster.apply(state, incident.initial, 0)
    events: dict[int, list[dict[str, Any]]] = {}
    for event in incident.timeline:
        events.setdefault(seconds(event["at"]) // incident.step, []).append(event)
    out = []
    for k in range(incident.steps):
        state.restart = False
        for event in events.get(k, []):
            cluster.apply(state, event.get("set") or {}, k * incident.step)
            if event.get("restart"):  # the exporter pod is replaced (rollout, crash): a new pod, fresh memory
                state.restart = True
                state.exporter_pod += 1
        cluster.advance(state, k, incident.step)
        out.append(cluster.copy_state(state))
    return out


SeriesKey = tuple[str, frozenset[tuple[str, str]]]


Rows = dict[SeriesKey, list[float | str | None]]


def timeline_series(incident: Incident, placement: cluster.Placement | None = None) -> Rows:
    """Every series' value per step; None = no sample; "stale" = vmagent's staleness marker."""
    timeline = states(incident, placement)
    return rows_of([cluster.series(s, k, incident.step).values for k, s in enumerate(timeline)],
                   [not cluster.vmagent_writes(s) for s in timeline])


def rows_of(per_step: list[dict[SeriesKey, float]], silent: list[bool] | None = None) -> Rows:
    """Each step's samples as one row per series. A series that vanished from a scrape (or a failed scrape) gets
    vmagent's staleness marker, once; at a `silent` step (vmagent writes nothing) it just has no sample: its last
    value stays queryable for the engine's lookback, as on the obs box."""
    keys = set().union(*per_step)
    out: dict[SeriesKey, list[float | str | None]] = {}
    for key in keys:
        row: list[float | str | None] = []
        last: float | str | None = None
        for k, values in enumerate(per_step):
            value = values.get(key)
            if value is None:
                marked = last is not None and last != "stale" and last is not _GAP
                value = "stale" if marked and not (silent and silent[k]) else _GAP
            row.append(value)
            last = value
        out[key] = [None if v is _GAP else v for v in row]
    return out


_GAP: Any = object()


# --- adversarial placement ---------------------------------------------------------------------------------
PLACEMENTS = [cluster.Placement(*p) for p in itertools.product(cluster.NODES, repeat=4)]
_PERMUTATIONS = [dict(zip(cluster.NODES, p, strict=True)) for p in itertools.permutations(cluster.NODES)]
_NODE = re.compile(r"n[1-3]")


@functools.cache
def page_metrics() -> frozenset[str]:
    """The metrics the paging rules (critical alerts, and the Watchdog) read: all a pages-only variant needs."""
    names = {"up"}
    for _, alert in catalog.alerts():
        if alert.severity == "critical" or alert.name == "Watchdog":
            names |= set(re.findall(r"\b((?:honeydue|asynq)_[a-z_]+)\b", alert.expr))
    return frozenset(names)


def _symmetries(incident: Incident) -> list[int]:
    """The node renamings that leave the incident's own timeline as it is (those it names stay put)."""
    named = set(_NODE.findall(repr((incident.initial, incident.timeline))))
    return [i for i, perm in enumerate(_PERMUTATIONS) if all(perm[n] == n for n in named)]


@dataclass
class Variant:
    """One incident under one placement: its own id in the engines' output, its rows and what it must page."""

    incident: Incident
    placement: cluster.Placement
    rows: Rows
    due: faults.Due
    equivalent: list[cluster.Placement] = field(default_factory=list)  # placements showing the same rows
    # Checked for its pages only: evaluated against the critical rules (and the Watchdog). Sound because no
    # warning or info alert can change a page: no inhibit rule has a critical target and a non-critical
    # source (tests/test_incidents.py checks the shipped inhibit rules for that).
    pages_only: bool = False

    @property
    def id(self) -> str:
        return f"{self.incident.id}#{self.placement}"


def variants(incident: Incident, metrics: frozenset[str] | None = None) -> list[Variant]:
    """The incident under every placement of exporter, vmagent, CoreDNS and Redis that changes what is seen
    (the incident's own placement first). Placements that are renamings of each other (among the nodes the
    timeline does not name) are one; so are placements whose series come out the same, up to such a renaming.
    The other placements carry only `metrics` (by default what the shipped paging rules read)."""
    perms = _symmetries(incident)
    seen: set[cluster.Placement] = set()
    found: dict[int, Variant] = {}
    # The other placements are checked for their pages only: on a one-minute grid, up to ten minutes after the
    # timeline's last change (the exact notifications are the incident's own placement's, on its own grid).
    last = max([seconds(e["at"]) for e in incident.timeline] or [0])
    coarse = dataclasses.replace(incident, step=max(incident.step, COARSE_STEP), expect={},
                                 duration=min(incident.duration, (last + 600) // COARSE_STEP * COARSE_STEP))
    for placement in [incident.placement, *PLACEMENTS]:
        if placement in seen:
            continue
        orbit = {cluster.Placement(*(_PERMUTATIONS[i][n] for n in dataclasses.astuple(placement))) for i in perms}
        seen |= orbit
        own = placement == incident.placement
        grid = incident if own else coarse
        timeline = states(grid, placement)
        parts = [cluster.series_parts(s, k, grid.step) for k, s in enumerate(timeline)]
        keep = None if own else (metrics or page_metrics())
        clock = tuple(tuple(sorted(kv for kv in dynamic.items() if keep is None or kv[0][0] in keep))
                      for _, dynamic in parts)
        key = min(hash((own, tuple(static.renamed_hash(i, keep) for static, _ in parts), clock)) for i in perms)
        if key in found:
            found[key].equivalent.extend(sorted(orbit, key=str))
            continue
        rows = rows_of([{k: v for k, v in {**static.values, **dynamic}.items() if keep is None or k[0] in keep}
                        for static, dynamic in parts], [not cluster.vmagent_writes(s) for s in timeline])
        found[key] = Variant(grid, placement, rows, faults.pages_due(timeline, grid.step),
                             sorted(orbit - {placement}, key=str), pages_only=not own)
    return list(found.values())


def _series_name(key: SeriesKey) -> str:
    name, labels = key
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels))
    return f"{name}{{{inner}}}"


def _values(row: list[float | str | None], offset: float) -> str:
    words = []
    for value in row:
        if value is None:
            words.append("_")
        elif value == "stale":
            words.append("stale")
        else:
            assert isinstance(value, float)
            number = value + offset
            words.append(str(int(number)) if number == int(number) else repr(number))
    return " ".join(words)


def rule_test_file(cases: Iterable[Variant], tool: str, rule_files: list[Path]) -> dict[str, Any]:
    """One unit-test file for `tool` (promtool or vmalert-tool): one group per incident variant, asking for the
    firing alerts at every queried step. All cases share one step (the file's evaluation interval)."""
    key = "promql_expr_test" if tool == "promtool" else "metricsql_expr_test"
    groups = []
    steps = set()
    for case in cases:
        incident = case.incident
        steps.add(incident.step)
        inputs = []
        for series_key, row in sorted(case.rows.items(), key=lambda kv: _series_name(kv[0])):
            offset = TOOL_EPOCH[tool] if series_key[0].endswith("_timestamp_seconds") else 0.0
            inputs.append({"series": _series_name(series_key), "values": _values(row, offset)})
        tests = [
            {"expr": f'ALERTS{{alertstate="firing",incident_step!="{case.id}@{k}"}}',
             "eval_time": duration(k * incident.step), "exp_samples": []}
            for k in incident.query_steps
        ]
        groups.append({"name": case.id, "interval": duration(incident.step), "input_series": inputs, key: tests})
    assert len(steps) == 1, f"one step per file, got {sorted(steps)}"
    return {"rule_files": [str(p) for p in rule_files], "evaluation_interval": duration(steps.pop()), "tests": groups}


_TERM = re.compile(r"^(-?[0-9.e+]+?)((?:[+-][0-9.e]+)?x\d+)?$")


def shift_values(values: str, offset: float) -> str:
    """A promtool `values` string with every starting value moved by `offset` (`a+bxn` -> `(a+offset)+bxn`)."""
    words = []
    for word in str(values).split():
        match = _TERM.match(word)
        if word in ("_", "stale") or word.startswith("_x") or match is None:
            words.append(word)
            continue
        start = float(match.group(1)) + offset
        words.append(f"{start:g}{match.group(2) or ''}" if start != int(start) else f"{int(start)}{match.group(2) or ''}")
    return " ".join(words)


def for_vmalert_tool(doc: dict[str, Any], rule_dir: Path) -> dict[str, Any]:
    """A promtool unit-test file as vmalert-tool reads it: absolute rule paths, `*_timestamp_seconds` series
    moved to vmalert-tool's clock (it starts at 2000-01-01, promtool at 1970-01-01)."""
    out = copy.deepcopy(doc)
    out["rule_files"] = [str((rule_dir / f).resolve()) for f in doc.get("rule_files", [])]
    for group in out.get("tests", []):
        for series in group.get("input_series", []):
            if series["series"].split("{", 1)[0].endswith("_timestamp_seconds"):
                series["values"] = shift_values(series["values"], TOOL_EPOCH["vmalert-tool"])
        if "promql_expr_test" in group:
            group["metricsql_expr_test"] = group.pop("promql_expr_test")
    return out


# --- running the engines ---------------------------------------------------------------------------------
_EXPR = re.compile(r'expr: "ALERTS\{alertstate=\\"firing\\",incident_step!=\\"(?P<id>[^@]+)@(?P<k>\d+)\\"\}"')
_SAMPLE = re.compile(r"\{(?P<labels>[^{}]*)\} 1E\+00")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def run_tool(tool: str, binary: str, test_file: Path, timeout: float = 600) -> str:
    if tool == "promtool":
        args = [binary, "test", "rules", str(test_file)]
    else:
        args = [binary, "unittest", "--disableAlertgroupLabel", f"--files={test_file}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=test_file.parent)
    return out.stdout + out.stderr


Alert = frozenset[tuple[str, str]]


def firing_alerts(output: str) -> dict[tuple[str, int], set[Alert]]:
    """(incident id, step) -> the firing alerts' labels, from a tool's failure report."""
    found: dict[tuple[str, int], set[Alert]] = {}
    blocks = _EXPR.split(output)
    # split() yields [pre, id, k, rest, id, k, rest, ...]
    for i in range(1, len(blocks) - 2, 3):
        incident_id, step, rest = blocks[i], int(blocks[i + 1]), blocks[i + 2]
        got = rest.split("got:", 1)[1] if "got:" in rest else ""
        got = got.split("expr:", 1)[0]
        alerts = set()
        for sample in _SAMPLE.finditer(got):
            labels = dict(_LABEL.findall(sample.group("labels")))
            for drop in ("__name__", "alertstate", "alertgroup"):
                labels.pop(drop, None)
            alerts.add(frozenset(labels.items()))
        found[(incident_id, step)] = alerts
    return found


# --- Alertmanager ----------------------------------------------------------------------------------------
def rule_annotations(rule_files: list[Path]) -> dict[str, dict[str, str]]:
    """alertname -> the rule's annotations with templates left as written (runbook links are plain)."""
    out: dict[str, dict[str, str]] = {}
    for path in rule_files:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out[rule["alert"]] = dict(rule.get("annotations") or {})
    return out


def isolated_config(config: dict[str, Any]) -> dict[str, Any]:
    """Alertmanager's config with the label `incident_step` added to every grouping and inhibit rule.

    Each incident step's alerts carry their own `incident_step`, so thousands of steps share one
    Alertmanager and one push: inside one step the routing and inhibition are exactly the shipped ones,
    across steps nothing groups or inhibits.
    """
    def route(node: dict[str, Any]) -> None:
        if "group_by" in node:
            node["group_by"] = [*node["group_by"], "incident_step"]
        for child in node.get("routes", []):
            route(child)

    route(config["route"])
    for rule in config.get("inhibit_rules", []):
        rule["equal"] = [*rule.get("equal", []), "incident_step"]
    return config


@dataclass
class Checkpoint:
    engine: str
    case: str
    step: int
    alerts: set[Alert]
    delivered: set[Delivery] = field(default_factory=set)
    page_groups: set[tuple[str, str]] = field(default_factory=set)  # (failure_mode, node) at the pager
    paged: set[tuple[str, str]] = field(default_factory=set)  # (failure_mode, alertname) at the pager

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.case}@{self.step}"


def checkpoints(case: Variant, firing: dict[tuple[str, int], set[Alert]], engine: str) -> list[Checkpoint]:
    """A checkpoint wherever the firing set changes, and at every step the incident has an expectation for."""
    incident = case.incident
    out: list[Checkpoint] = []
    previous: set[Alert] | None = None
    expected_steps = {t // incident.step for t in incident.expect}
    for k in incident.query_steps:
        alerts = firing.get((case.id, k))
        if alerts is None:
            continue
        if alerts != previous or k in expected_steps:
            out.append(Checkpoint(engine, case.id, k, alerts))
        previous = alerts
    return out


def push_alerts(points: list[Checkpoint], annotations: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    alerts = []
    for point in points:
        for alert in point.alerts:
            labels = dict(alert) | {"incident_step": point.label}
            alerts.append({"labels": labels, "annotations": annotations.get(labels["alertname"], {}),
                           "generatorURL": "http://127.0.0.1/vmalert"})
    return alerts


def collect(points: list[Checkpoint], posts: list[tuple[str, dict[str, Any]]]) -> None:
    by_label = {p.label: p for p in points}
    for receiver, payload in posts:
        for alert in payload["alerts"]:
            if alert["status"] != "firing":
                continue
            labels = alert["labels"]
            point = by_label.get(labels.get("incident_step", ""))
            if point is None:
                continue
            anchor = str(alert["annotations"].get("runbook_url", "")).partition("#")[2]
            point.delivered.add(Delivery(receiver, labels["alertname"], labels.get("severity", ""), anchor,
                                         labels.get("node", "")))
            if receiver == "pager":
                point.page_groups.add((labels.get("failure_mode", ""), labels.get("node", "")))
                point.paged.add((labels.get("failure_mode", ""), labels["alertname"]))


def engine_differences(case: Variant, promql: dict[tuple[str, int], set[Alert]],
                       metricsql: dict[tuple[str, int], set[Alert]]) -> list[str]:
    """Where the engines disagree beyond a one-evaluation shift at a range window's edge.

    Prometheus 2.x range selectors include the sample at the window's start, MetricsQL's do not: on a
    grid where samples sit exactly on evaluation times, an alert built on `[5m]` or `absent_over_time`
    may start or end one evaluation apart. Every other difference is a disagreement: each step where
    only one engine fires an alert must be next to a step where both fire it.
    """
    steps = case.incident.query_steps
    step = case.incident.step
    problems = []
    alerts = {a for k in steps for a in promql[(case.id, k)] | metricsql[(case.id, k)]}
    for alert in alerts:
        p = {k for k in steps if alert in promql[(case.id, k)]}
        m = {k for k in steps if alert in metricsql[(case.id, k)]}
        both = p & m
        for k in sorted(p ^ m):
            i = steps.index(k)
            neighbours = {steps[j] for j in (i - 1, i + 1) if 0 <= j < len(steps)}
            if not neighbours & both or any(abs(n - k) * step > step for n in neighbours & both):
                engine = "PromQL" if k in p else "MetricsQL"
                problems.append(f"{case.id} {duration(k * step)}: only {engine} fires {dict(alert)['alertname']} "
                                f"{dict(alert)}")
    return problems


def first_pages(points: list[Checkpoint], step: int) -> dict[str, tuple[int, str]]:
    """Failure mode paged -> (second of its first page, the alert that paged)."""
    out: dict[str, tuple[int, str]] = {}
    for point in sorted(points, key=lambda p: p.step):
        for mode, alert in sorted(point.paged):
            out.setdefault(mode, (point.step * step, alert))
    return out


def budget_problems(case: Variant, points: list[Checkpoint], budgets: dict[str, int] | None = None) -> list[str]:
    """The pages are right: every failure mode that must page does, within its alert's time to page; nothing
    else pages; one page (notification group) per failure mode; the Watchdog always gets through."""
    problems = []
    groups = {g for p in points for g in p.page_groups}
    modes = [mode for mode, _ in groups]
    where = f"{case.placement}"
    for mode in sorted(set(modes)):
        if mode not in case.due.allowed:
            problems.append(f"{where}: paged for {mode}, which this incident gives no cause to page "
                            f"(allowed: {sorted(case.due.allowed)})")
        if modes.count(mode) > 1:
            problems.append(f"{where}: {modes.count(mode)} pages for {mode}: {sorted(g for g in groups if g[0] == mode)}")
    first = first_pages(points, case.incident.step)
    for mode, since in sorted(case.due.required.items()):
        if mode not in first:
            problems.append(f"{where}: no page for {mode} (due from {duration(since)})")
            continue
        at, alert = first[mode]
        if budgets is not None and alert in budgets and at - since > budgets[alert] + case.incident.step:
            problems.append(f"{where}: {alert} paged {duration(at - since)} after the fault, over its "
                            f"{duration(budgets[alert])} time to page")
    for point in points:
        if not any(d.receiver == "deadmansswitch" for d in point.delivered):
            problems.append(f"{where} step {point.step}: the Watchdog did not reach the dead-man's switch")
    return problems


# --- one run of everything -----------------------------------------------------------------------------
def pages_only_rules(rule_files: list[Path], workdir: Path) -> list[Path]:
    """The rule files reduced to what can page: critical alerts, and the Watchdog the suite checks for."""
    out = []
    for path in rule_files:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc["groups"]:
            group["rules"] = [r for r in group["rules"] if r.get("labels", {}).get("severity") == "critical"
                              or r.get("alert") == "Watchdog"]
        doc["groups"] = [g for g in doc["groups"] if g["rules"]]
        if doc["groups"]:
            target = workdir / f"pages-only-{path.name}"
            target.write_text(yaml.safe_dump(doc, sort_keys=False, width=100_000), encoding="utf-8")
            out.append(target)
    return out


@dataclass
class Run:
    """One engine over one unit-test file: the cases of one grid and rule set."""

    tool: str
    binary: str
    path: Path
    cases: list[Variant]

    def __call__(self) -> dict[tuple[str, int], set[Alert]]:
        output = run_tool(self.tool, self.binary, self.path)
        self.path.with_suffix(".out").write_text(output, encoding="utf-8")
        firing = firing_alerts(output)
        missing = [(c.id, k) for c in self.cases for k in c.incident.query_steps if (c.id, k) not in firing]
        assert not missing, f"{self.tool} reported no result for {missing[:5]}... ({self.path})"
        return firing


def runs(tool: str, binary: str, workdir: Path, cases: list[Variant], rule_files: list[Path]) -> list[Run]:
    """The unit-test files `tool` evaluates: one per step size and rule set (every rule for the incidents' own
    placements, the paging ones for the others), written now and run by calling the returned Runs."""
    out = []
    by_run: dict[tuple[int, bool], list[Variant]] = {}
    for case in cases:
        by_run.setdefault((case.incident.step, case.pages_only), []).append(case)
    for (step, pages), group in sorted(by_run.items()):
        name = f"incidents-{step}s{'-pages' if pages else ''}"
        files = pages_only_rules(rule_files, workdir) if pages else rule_files
        path = workdir / f"{name}.{tool}.test.yml"
        doc = rule_test_file(group, tool, files)
        path.write_text(yaml.safe_dump(doc, sort_keys=False, width=100_000), encoding="utf-8")
        out.append(Run(tool, binary, path, group))
    return out


def evaluate_all(engines: dict[str, str], workdir: Path, cases: list[Variant], rule_files: list[Path],
                 workers: int = 2) -> dict[str, dict[tuple[str, int], set[Alert]]]:
    """Every case's firing alerts at every queried step under each engine ({"promtool": binary, ...}); the
    runs share `workers` processes, the largest files first (vmalert-tool is the slower engine)."""
    jobs = [run for tool, binary in engines.items() for run in runs(tool, binary, workdir, cases, rule_files)]
    jobs.sort(key=lambda r: (r.tool == "vmalert-tool", r.path.stat().st_size), reverse=True)
    results: dict[str, dict[tuple[str, int], set[Alert]]] = {tool: {} for tool in engines}
    with ThreadPoolExecutor(workers) as pool:
        for run, firing in zip(jobs, pool.map(lambda r: r(), jobs), strict=True):
            results[run.tool] |= firing
    return results


def evaluate(tool: str, binary: str, workdir: Path, cases: list[Variant],
             rule_files: list[Path]) -> dict[tuple[str, int], set[Alert]]:
    """Every case's firing alerts at every queried step, as `tool` evaluates the rules."""
    return evaluate_all({tool: binary}, workdir, cases, rule_files, workers=1)[tool]


def deliver(workdir: Path, points: list[Checkpoint], rule_files: list[Path], example: Path = EXAMPLE) -> None:
    """Push every checkpoint's alerts through one real Alertmanager; record what each receiver got."""
    webhook = WebhookReceiver()
    webhook.start()
    # group_wait 2 s (production: 10-30 s) gives the inhibitor time to see a source that arrived in the
    # same request as its targets, as the production group_wait does; 0 s would race.
    config = local_config(webhook.url, timings={"group_wait": "2s", "group_interval": "1s", "repeat_interval": "1h"},
                          example=example)
    manager = Alertmanager(isolated_config(config), workdir)
    try:
        manager.start()
        alerts = push_alerts(points, rule_annotations(rule_files))
        for start in range(0, len(alerts), 2000):
            manager.post(alerts[start:start + 2000])
        # Every step's Watchdog reaches the dead-man's switch: once all have, every group has flushed. The
        # deadline moves while Watchdogs keep arriving (thousands of groups take Alertmanager a while).
        wanted = {p.label for p in points if any(dict(a).get("alertname") == "Watchdog" for a in p.alerts)}
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now_seen = {a["labels"].get("incident_step") for r, body in list(webhook.posts)
                        if r == "deadmansswitch" for a in body["alerts"]}
            if wanted <= now_seen:
                break
            if len(now_seen) > len(seen):
                deadline = max(deadline, time.monotonic() + 30)
            seen = now_seen
            time.sleep(0.5)
        time.sleep(3)  # groups whose group_wait ended with the Watchdog's: let them land
        collect(points, list(webhook.posts))
    finally:
        manager.stop()
        webhook.stop()
