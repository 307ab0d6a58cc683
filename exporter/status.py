"""Every failure mode of the catalog with a state computed from the exporter's own signals.

The states, in the order the status page shows them: `failing` (a probe that feeds the failure mode
failed its last run), `pending` (no run finished yet), `ok`, `off` (its probes are switched off, e.g.
Kubernetes without credentials), `not configured` (nothing for its probes to probe: no targets, no URL)
and `blind spot` (the catalog entry says nothing inside the cluster can see it). Pure functions of the
engine's probe states and of what `exporter.probes.absences` said at start-up: no I/O. A running probe
feeds the entries that name its `kind`; an entry's name with no running probe takes its family's absence
(exporter.families).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from exporter.catalog import CATALOG, LAYERS, FailureMode, Layer
from exporter.engine import Engine, Probe
from exporter.families import Absence, of_kind

State = Literal["failing", "pending", "ok", "off", "not configured", "blind spot"]
STATES: tuple[State, ...] = ("failing", "pending", "ok", "off", "not configured", "blind spot")


@dataclass(frozen=True)
class Row:
    """One failure mode on the page: its state, why, which probes fed it and what they cannot see."""

    entry: FailureMode
    state: State
    reason: str
    probes: tuple[str, ...] = ()
    gaps: tuple[str, ...] = ()  # families of the entry that do not run here, with why


def off_reason(probe: Probe) -> str:
    """A probe that only reports its own absence (kubernetes.DisabledProbe) says why in `off`; '' otherwise."""
    return str(getattr(probe, "off", "") or "")


def _absence(kind: str, absences: Mapping[str, Absence]) -> Absence:
    """Why no probe of this kind runs: what `absences` says of its family."""
    try:
        return absences[of_kind(kind).name]
    except KeyError:
        return Absence("not configured", "no probe of this kind runs")


def row(entry: FailureMode, engine: Engine, absences: Mapping[str, Absence]) -> Row:
    """The entry's state: the worst of its running probes; its families that do not run are gaps."""
    if not entry.probes:
        return Row(entry, "blind spot", entry.blind_spot or entry.planned or "nothing in the cluster watches it")
    failing: list[str] = []
    pending: list[str] = []
    ok: list[str] = []
    off: list[str] = []
    unconfigured: list[str] = []
    for kind in entry.probes:
        probes = [p for p in engine.probes if p.kind == kind]
        live = [p for p in probes if not off_reason(p)]
        if not live:
            absence = Absence("off", off_reason(probes[0])) if probes else _absence(kind, absences)
            (off if absence.state == "off" else unconfigured).append(f"{kind}: {absence.state} ({absence.reason})")
        for probe in live:
            state = engine.states[probe.name]
            if state.status == "failing":
                failing.append(f"{probe.name}: {state.reason} ({state.detail})" if state.detail else
                               f"{probe.name}: {state.reason}")
            elif state.status == "ok":
                ok.append(probe.name)
            else:
                pending.append(probe.name)
    names = tuple(p.name for kind in entry.probes for p in engine.probes if p.kind == kind and not off_reason(p))
    gaps = tuple(off + unconfigured)
    if failing:
        return Row(entry, "failing", "; ".join(failing), names, gaps)
    if pending:
        return Row(entry, "pending", "first run not finished: " + ", ".join(pending), names, gaps)
    if ok:
        return Row(entry, "ok", "last run ok: " + ", ".join(ok), names, gaps)
    if off:
        return Row(entry, "off", "; ".join(off), names, tuple(unconfigured))
    return Row(entry, "not configured", "; ".join(unconfigured), names)


def rows(engine: Engine, absences: Mapping[str, Absence]) -> list[Row]:
    """Every catalog entry, in the chapter's order."""
    return [row(entry, engine, absences) for entry in CATALOG]


def grouped(all_rows: Sequence[Row]) -> list[tuple[Layer, list[Row]]]:
    """Layers with a failing entry first (then the chapter's order); in each, the worst state first."""
    groups = [(layer, [r for r in all_rows if r.entry.layer == layer.id]) for layer in LAYERS]
    ordered = [(layer, sorted(group, key=lambda r: STATES.index(r.state))) for layer, group in groups if group]
    return sorted(ordered, key=lambda item: not any(r.state == "failing" for r in item[1]))
