"""The shape of a catalog entry: one failure mode of chapter 16 and everything that watches it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["critical", "warning", "info"]

CHAPTER16 = "16-failure-modes.md"
CHAPTER17 = "17-runbook.md"


@dataclass(frozen=True)
class Layer:
    """A subsection of the chapter's catalog; one dashboard row and one rule file each."""

    id: str
    title: str  # the chapter's subsection heading
    row: str  # the dashboard row title


LAYERS: tuple[Layer, ...] = (
    Layer("cloudflare", "Cloudflare-level", "Edge and DNS"),
    Layer("node", "Node-level", "Nodes"),
    Layer("k3s", "k3s control plane failures", "Control plane"),
    Layer("network", "Networking failures", "Network"),
    Layer("app", "Application-level", "Workloads"),
    Layer("external", "External service failures", "External services"),
    Layer("combined", "Combined failures", "Everything is slow"),
    Layer("planned", "Planned outages", "Maintenance"),
    Layer("dr", "Disaster recovery", "Disaster recovery"),
)
LAYER_BY_ID = {layer.id: layer for layer in LAYERS}

# Dashboard rows in screen order: one per layer, plus rows that group entries of one layer by the
# system they watch (a FailureMode's `row` names one of these; by default its layer's row).
ROWS: tuple[str, ...] = (
    "Edge and DNS",
    "Nodes",
    "Control plane",
    "Observability pipeline",
    "Network",
    "Workloads",
    "Worker and queues",
    "External services",
    "Everything is slow",
    "Maintenance",
    "Disaster recovery",
)


def heading_anchor(heading: str) -> str:
    """The anchor GitHub and Gitea give a Markdown heading.

    Lower-case; drop every character that is not a letter, digit, space, hyphen or underscore;
    each space becomes a hyphen (so "a + b" gives "a--b"). Gitea prefixes `user-content-` in the
    HTML id but resolves the bare fragment, so links use the bare form.
    """
    text = unicodedata.normalize("NFC", heading.strip().lower())
    text = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return re.sub(" ", "-", text)


@dataclass(frozen=True)
class Alert:
    """One alerting rule. `for_` is never zero; `summary` is a plain sentence ending in a period.

    `obs_side` rules watch the pipeline itself (absence, watchdog, the obs-probe): they are rendered into
    their own file so the obs box can load them without the in-cluster rule files. `labels` are extra rule
    labels (the dead-man's-switch routing label, the `workload` an inhibition is scoped by).
    """

    name: str
    severity: Severity
    expr: str
    for_: str
    summary: str
    description: str
    obs_side: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    # Time to page (docs/time-to-page.md): whether users see the outage it pages for (budget 5 minutes),
    # how long the condition must be in the data before the expression can be true (a range window:
    # `avg_over_time(up[5m]) < 0.5` needs 2.5 minutes of failed scrapes), and why an alert may take
    # longer than its severity's budget (a chapter fact that needs hours to be true).
    user_facing: bool = False
    detect: str = "0s"
    slow_reason: str = ""


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: Literal["timeseries", "stat"] = "timeseries"
    description: str = ""


@dataclass(frozen=True)
class FailureMode:
    """A heading of chapter 16 with its signals, alerts, panels and runbook links.

    `status` says how much of it the exporter watches today: "watched" (signals, alerts and a
    panel ship), "planned" (`planned` names the work that adds them) or "outside" (the cluster
    cannot see it; `blind_spot` names what can).
    """

    id: str
    heading: str
    layer: str
    signals: tuple[str, ...] = ()
    alerts: tuple[Alert, ...] = ()
    panels: tuple[Panel, ...] = ()
    probes: tuple[str, ...] = ()
    chapter17: str | None = None
    planned: str | None = None
    blind_spot: str | None = None
    row: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def dashboard_row(self) -> str:
        return self.row or LAYER_BY_ID[self.layer].row

    @property
    def anchor(self) -> str:
        return heading_anchor(self.heading)

    @property
    def status(self) -> str:
        if self.alerts or self.panels:
            return "watched" if not self.planned else "partly watched"
        return "planned" if self.planned else "outside"

    def runbook_url(self, base: str) -> str:
        return f"{base.rstrip('/')}/{CHAPTER16}#{self.anchor}"

    @property
    def chapter17_section(self) -> str | None:
        """The section number as written in the chapter, e.g. "§23"."""
        return self.chapter17.split(" ", 1)[0] if self.chapter17 else None

    def recovery_url(self, base: str, anchors: Mapping[str, str] | None = None) -> str | None:
        """Chapter 17's section: its anchor from `anchors` (runbook.chapter17_anchors) or the default slug."""
        section = self.chapter17_section
        if not self.chapter17 or section is None:
            return None
        anchor = (anchors or {}).get(section) or chapter17_anchor(self.chapter17)
        return f"{base.rstrip('/')}/{CHAPTER17}#{anchor}"


def chapter17_anchor(section: str) -> str:
    """The default anchor of a chapter 17 section: the slug of its heading without the section sign.

    "§23 Invalidate residence-IDs cache for a user" -> "23-invalidate-residence-ids-cache-for-a-user",
    what GitHub and Gitea give the heading "23. Invalidate residence-IDs cache for a user" (the dot goes).
    """
    return heading_anchor(section.replace("§", "", 1))
