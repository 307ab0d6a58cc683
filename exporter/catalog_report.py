"""`honeydue-exporter catalog`: the coverage table, and with `--id` one failure mode traced through the repo.

The trace answers "where is this failure mode handled?" from the files themselves: the probe modules
its `probes=` names belong to, the rule files and promtool unit tests that mention its alerts, the
incidents (rules/incidents/*.yml, key `failure_mode:`) and drill scenarios (`Scenario.failure_mode`)
that name it, and its dashboard panels. Nothing is kept by hand beside the catalog, so a new incident
or scenario shows up here (and in tests/test_traceability.py) as soon as it names its failure mode.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from exporter.catalog import CATALOG, FailureMode

INCIDENTS = Path("rules") / "incidents"


@dataclass(frozen=True)
class Trace:
    """Where one failure mode lives: every path is relative to the repository root."""

    id: str
    heading: str
    layer: str
    status: str
    runbook: str
    alerts: tuple[str, ...]
    probe_modules: tuple[str, ...]
    rules: tuple[str, ...]
    unit_tests: tuple[str, ...]
    incidents: tuple[str, ...]
    scenarios: tuple[str, ...]
    panels: tuple[str, ...]


def entry(failure_mode: str) -> FailureMode:
    """The catalog entry with this id; KeyError names the known ids when there is none."""
    for found in CATALOG:
        if found.id == failure_mode:
            return found
    raise KeyError(f"no failure mode {failure_mode!r} (known: {', '.join(e.id for e in CATALOG)})")


def probe_module(kind: str) -> str:
    """The module defining the probe a catalog `probes=` name is (`kubernetes_pod_metrics` -> probes/kube_metrics.py).

    Found by type: the Probe classes of the kind's family (exporter.families), after its module is imported.
    """
    from exporter.engine import Probe
    from exporter.families import of_kind
    from exporter.probes import module

    family = of_kind(kind)
    module(family.name)
    classes, found = [Probe], set()
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        if cls.__dict__.get("kind") == kind and getattr(cls, "family", None) == family.name:
            found.add(cls.__module__)
    if len(found) != 1:
        raise LookupError(f"{kind!r}: {len(found)} probe modules define it")
    return "exporter/probes/" + found.pop().rpartition(".")[2] + ".py"


def incident_failure_modes(root: Path) -> dict[str, str | None]:
    """Each incident file (relative path) -> the failure mode it names (None when it names none)."""
    found: dict[str, str | None] = {}
    for path in sorted((root / INCIDENTS).glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        mode = doc.get("failure_mode") if isinstance(doc, dict) else None
        found[str(path.relative_to(root))] = str(mode) if mode else None
    return found


def scenario_failure_modes() -> dict[str, str]:
    """Each drill scenario id -> the failure mode it names; {} where the drill extra is not installed."""
    try:
        from testbed.drill.scenarios import SCENARIOS
    except ImportError:
        return {}
    return {s.id: s.failure_mode for s in SCENARIOS}


def _mentioning(paths: Iterable[Path], root: Path, pattern: re.Pattern[str]) -> tuple[str, ...]:
    return tuple(str(p.relative_to(root)) for p in sorted(paths) if pattern.search(p.read_text(encoding="utf-8")))


def trace(failure_mode: str, root: Path, base_url: str) -> Trace:
    """Follow one failure mode through the repository at `root` (rules/, rules/tests/, rules/incidents/)."""
    e = entry(failure_mode)
    names = [a.name for a in e.alerts]
    rules: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    if names:
        alternatives = "|".join(re.escape(n) for n in names)
        rules = _mentioning((root / "rules").glob("*.rules.yml"), root, re.compile(rf"^\s*- alert: ({alternatives})$", re.M))
        tests = _mentioning((root / "rules" / "tests").glob("*.yml"), root,
                            re.compile(rf"alertname: ({alternatives})$", re.M))
    return Trace(
        id=e.id, heading=e.heading, layer=e.layer, status=e.status, runbook=e.runbook_url(base_url),
        alerts=tuple(f"{a.name} ({a.severity})" for a in e.alerts),
        probe_modules=tuple(dict.fromkeys(probe_module(p) for p in e.probes)),
        rules=rules, unit_tests=tests,
        incidents=tuple(path for path, mode in incident_failure_modes(root).items() if mode == e.id),
        scenarios=tuple(sid for sid, mode in scenario_failure_modes().items() if mode == e.id),
        panels=tuple(p.title for p in e.panels),
    )


def print_trace(t: Trace, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(asdict(t), indent=2))
        return
    print(f"{t.id}  [{t.layer}] {t.status}")
    for label, values in (("heading", (t.heading,)), ("runbook", (t.runbook,)), ("alerts", t.alerts),
                          ("probe modules", t.probe_modules), ("rules", t.rules), ("unit tests", t.unit_tests),
                          ("incidents", t.incidents), ("drill scenarios", t.scenarios), ("panels", t.panels)):
        print(f"    {label + ':':<16} {', '.join(values) or '-'}")


def print_table(base_url: str, fmt: str) -> None:
    """Every failure mode: heading, layer, status, signals, alerts, panels and runbook links."""
    rows = [
        {
            "id": e.id,
            "heading": e.heading,
            "layer": e.layer,
            "status": e.status,
            "signals": list(e.signals),
            "alerts": [f"{a.name} ({a.severity})" for a in e.alerts],
            "runbook": e.runbook_url(base_url),
            "chapter17": e.chapter17 or "",
            "panels": [p.title for p in e.panels],
            "planned": e.planned or "",
            "blind_spot": e.blind_spot or "",
        }
        for e in CATALOG
    ]
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print(f"{row['id']}  [{row['layer']}] {row['status']}")
        print(f"    heading:  {row['heading']}")
        print(f"    signals:  {', '.join(row['signals']) or '-'}")
        print(f"    alerts:   {', '.join(row['alerts']) or '-'}")
        print(f"    panels:   {', '.join(row['panels']) or '-'}")
        print(f"    runbook:  {row['runbook']}" + (f"  + chapter 17 {row['chapter17']}" if row["chapter17"] else ""))
        if row["planned"]:
            print(f"    planned:  {row['planned']}")
        if row["blind_spot"]:
            print(f"    blind spot: {row['blind_spot']}")
    watched = sum(1 for r in rows if r["status"] != "planned" and r["status"] != "outside")
    print(f"{len(rows)} failure modes; {watched} with shipped signals, "
          f"{sum(len(e.alerts) for e in CATALOG)} alerts")
