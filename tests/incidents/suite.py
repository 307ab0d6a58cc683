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
import re
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.alertmanager import EXAMPLE, Alertmanager, local_config
from testbed.receivers import WebhookReceiver

from tests.incidents import cluster

REPO = Path(__file__).resolve().parents[2]
INCIDENTS = REPO / "rules" / "incidents"
RECEIVER_SEVERITY = {"pager": "critical", "tickets": "warning", "low-noise": "info", "deadmansswitch": "info"}
TOOL_EPOCH = {"promtool": 0.0, "vmalert-tool": 946684800.0}  # each engine's clock at step 0
WARMUP = 120
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
    root_causes: list[str]
    step: int
    duration: int
    initial: dict[str, Any]
    timeline: list[dict[str, Any]]
    expect: dict[int, set[Delivery]]
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


def load(path: Path) -> Incident:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    step = seconds(doc.get("step", "30s"))
    expect = {seconds(t): {Delivery.parse(d) for d in (items or [])} for t, items in (doc.get("expect") or {}).items()}
    for t in expect:
        if t % step:
            raise ValueError(f"{path.name}: expect time {t}s is not on a step of {step}s")
    return Incident(
        id=doc["id"], title=doc["title"], root_causes=list(doc.get("root_causes") or []), step=step,
        duration=seconds(doc["duration"]), initial=doc.get("initial") or {}, timeline=doc.get("timeline") or [],
        expect=expect, notes=doc.get("notes", ""), probe_every=seconds(doc.get("probe_every", 0) or 0),
    )


def load_all(directory: Path = INCIDENTS) -> list[Incident]:
    return [load(p) for p in sorted(directory.glob("*.yml"))]


# --- the timeline -> series ---------------------------------------------------------------------------
def states(incident: Incident, legacy: bool = False) -> list[cluster.State]:
    """The cluster's state at every step: the timeline's changes, plus what Kubernetes does by itself."""
    state = cluster.State()
    cluster.apply(state, incident.initial)
    events: dict[int, list[dict[str, Any]]] = {}
    for event in incident.timeline:
        events.setdefault(seconds(event["at"]) // incident.step, []).append(event)
    out = []
    for k in range(incident.steps):
        state.restart = False
        for event in events.get(k, []):
            cluster.apply(state, event.get("set") or {})
            if event.get("restart"):  # the exporter pod is replaced (rollout, crash): a new pod, fresh memory
                state.restart = True
                state.exporter_pod += 1
                state.redis_restarted_empty = False
        for node in cluster.NODES:
            if node in state.down:
                state.down_since.setdefault(node, k)
            else:
                state.down_since.pop(node, None)
        # The exporter leaves a dead node 30 s after it is marked NotReady (its tolerations) and starts
        # elsewhere, unless etcd has no quorum to schedule it.
        since = state.down_since.get(state.exporter_node)
        leave_after = 330 if legacy else 60  # before issue 11: Kubernetes' default 300 s toleration
        if since is not None and (k - since) * incident.step >= leave_after and not cluster.quorum_lost(state):
            state.exporter_node = next(n for n in cluster.NODES if n not in state.down)
            state.exporter_pod += 1
        if not state.worker:
            state.pending += 5
        else:
            state.processed += 10
        out.append(cluster.copy_state(state))
    return out


SeriesKey = tuple[str, frozenset[tuple[str, str]]]


Rows = dict[SeriesKey, list[float | str | None]]


def timeline_series(incident: Incident, identity: str = "stable", legacy: bool = False) -> Rows:
    """Every series' value per step; None = no sample; "stale" = vmagent's staleness marker."""
    return rows_of([cluster.series(s, k, incident.step, identity, legacy).values
                    for k, s in enumerate(states(incident, legacy))])


def rows_of(per_step: list[dict[SeriesKey, float]]) -> Rows:
    """Each step's samples as one row per series; a series that vanished from a step gets a staleness marker."""
    keys = {key for values in per_step for key in values}
    out: dict[SeriesKey, list[float | str | None]] = {}
    for key in keys:
        row: list[float | str | None] = []
        for k, values in enumerate(per_step):
            if key in values:
                row.append(values[key])
            elif k > 0 and isinstance(row[-1], float):
                row.append("stale")  # a series that vanished from a scrape (or a failed scrape) is marked stale
            else:
                row.append(None)
        out[key] = row
    return out


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


def rule_test_file(incidents: Iterable[Incident], tool: str, rule_files: list[Path],
                   identity: str = "stable", legacy: bool = False,
                   rows_by_id: dict[str, Rows] | None = None) -> dict[str, Any]:
    """One unit-test file for `tool` (promtool or vmalert-tool): one group per incident. `rows_by_id` gives an
    incident's series directly (a recording of the real cluster, tests/helpers/kube_alerts.py) instead of the
    cluster model's."""
    key = "promql_expr_test" if tool == "promtool" else "metricsql_expr_test"
    groups = []
    for incident in incidents:
        inputs = []
        given = (rows_by_id or {}).get(incident.id)
        rows = given if given is not None else timeline_series(incident, identity, legacy)
        for series_key, row in sorted(rows.items(), key=lambda kv: _series_name(kv[0])):
            offset = TOOL_EPOCH[tool] if series_key[0].endswith("_timestamp_seconds") else 0.0
            inputs.append({"series": _series_name(series_key), "values": _values(row, offset)})
        tests = [
            {"expr": f'ALERTS{{alertstate="firing",incident_step!="{incident.id}@{k}"}}',
             "eval_time": duration(k * incident.step), "exp_samples": []}
            for k in incident.query_steps
        ]
        groups.append({"name": incident.id, "interval": duration(incident.step), "input_series": inputs, key: tests})
    step = min(i.step for i in incidents)
    return {"rule_files": [str(p) for p in rule_files], "evaluation_interval": duration(step), "tests": groups}


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
    incident: str
    step: int
    alerts: set[Alert]
    delivered: set[Delivery] = field(default_factory=set)
    page_groups: set[tuple[str, str]] = field(default_factory=set)  # (failure_mode, node) at the pager

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.incident}@{self.step}"


def checkpoints(incident: Incident, firing: dict[tuple[str, int], set[Alert]], engine: str) -> list[Checkpoint]:
    """A checkpoint wherever the firing set changes, and at every step the incident has an expectation for."""
    out: list[Checkpoint] = []
    previous: set[Alert] | None = None
    expected_steps = {t // incident.step for t in incident.expect}
    for k in incident.query_steps:
        alerts = firing.get((incident.id, k))
        if alerts is None:
            continue
        if alerts != previous or k in expected_steps:
            out.append(Checkpoint(engine, incident.id, k, alerts))
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


def engine_differences(incident: Incident, promql: dict[tuple[str, int], set[Alert]],
                       metricsql: dict[tuple[str, int], set[Alert]]) -> list[str]:
    """Where the engines disagree beyond a one-evaluation shift at a range window's edge.

    Prometheus 2.x range selectors include the sample at the window's start, MetricsQL's do not: on a
    grid where samples sit exactly on evaluation times, an alert built on `[5m]` or `absent_over_time`
    may start or end one evaluation apart. Every other difference is a disagreement: each step where
    only one engine fires an alert must be next to a step where both fire it.
    """
    steps = incident.query_steps
    problems = []
    alerts = {a for k in steps for a in promql[(incident.id, k)] | metricsql[(incident.id, k)]}
    for alert in alerts:
        p = {k for k in steps if alert in promql[(incident.id, k)]}
        m = {k for k in steps if alert in metricsql[(incident.id, k)]}
        both = p & m
        for k in sorted(p ^ m):
            i = steps.index(k)
            neighbours = {steps[j] for j in (i - 1, i + 1) if 0 <= j < len(steps)}
            if not neighbours & both or any(abs(n - k) * incident.step > incident.step for n in neighbours & both):
                engine = "PromQL" if k in p else "MetricsQL"
                problems.append(f"{duration(k * incident.step)}: only {engine} fires {dict(alert)['alertname']} "
                                f"{dict(alert)}")
    return problems


def budget_problems(incident: Incident, points: list[Checkpoint]) -> list[str]:
    """One critical page per root cause, no page outside the root causes, the Watchdog always through."""
    problems = []
    groups = {g for p in points for g in p.page_groups}
    modes = [mode for mode, _ in groups]
    for mode in sorted(set(modes)):
        if mode not in incident.root_causes:
            problems.append(f"paged for {mode}, not a root cause of the incident ({incident.root_causes})")
    if len(groups) > len(incident.root_causes):
        problems.append(f"{len(groups)} pages ({sorted(groups)}) for {len(incident.root_causes)} root cause(s)")
    for point in points:
        if not any(d.receiver == "deadmansswitch" for d in point.delivered):
            problems.append(f"step {point.step}: the Watchdog did not reach the dead-man's switch")
    return problems


# --- one run of everything -----------------------------------------------------------------------------
def evaluate(tool: str, binary: str, workdir: Path, incidents: list[Incident],
             rule_files: list[Path], identity: str = "stable", legacy: bool = False,
             rows_by_id: dict[str, Rows] | None = None) -> dict[tuple[str, int], set[Alert]]:
    """Every incident's firing alerts at every queried step, as `tool` evaluates the rules."""
    path = workdir / f"incidents.{tool}.test.yml"
    doc = rule_test_file(incidents, tool, rule_files, identity, legacy, rows_by_id)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=100_000), encoding="utf-8")
    output = run_tool(tool, binary, path)
    (workdir / f"incidents.{tool}.out").write_text(output, encoding="utf-8")
    firing = firing_alerts(output)
    missing = [(i.id, k) for i in incidents for k in i.query_steps if (i.id, k) not in firing]
    assert not missing, f"{tool} reported no result for {missing[:5]}...: {output[-3000:]}"
    return firing


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
        # Every step's Watchdog reaches the dead-man's switch: once all have, every group has flushed.
        wanted = {p.label for p in points if any(dict(a).get("alertname") == "Watchdog" for a in p.alerts)}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen = {a["labels"].get("incident_step") for r, body in list(webhook.posts) if r == "deadmansswitch"
                    for a in body["alerts"]}
            if wanted <= seen:
                break
            time.sleep(0.5)
        time.sleep(3)  # groups whose group_wait ended with the Watchdog's: let them land
        collect(points, list(webhook.posts))
    finally:
        manager.stop()
        webhook.stop()
