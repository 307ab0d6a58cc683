"""The shipped dashboard read without Grafana: its queries run against the drill's VictoriaMetrics.

Grafana cannot run here, so the drill asks VictoriaMetrics what each panel would draw:
- every query of every panel, annotation and variable runs (as a range query, like Grafana) without error;
- the "Now" row's queries say which failure modes are firing and how badly;
- an alert's panel (its `dashboard_url`) shows the failure: during the failure some series is on the
  alert's side of the threshold the panel draws that was not there in the healthy period;
- every panel of a firing failure mode returns series (a panel that can never show data is a failure).
The node variable is given its "All" value (`.*`).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from exporter.catalog import CATALOG
from exporter.render.dashboards import ANNOTATIONS, NODE_QUERY
from exporter.render.panels import STATE_UNWATCHED, PanelPlan, Target, Threshold, build_plan
from exporter.render.rules import shorten_ranges

ALL_NODES = ".*"
# Panels that are empty during their failure mode by design, with why; every other panel of a firing failure mode
# must return series. Keep this list short: an entry here is a panel a person reads nothing from mid-incident.
EMPTY_DURING_FAILURE = {
    ("neon-postgres-outage", "Postgres connect and query latency"):
        "no connection completes while every endpoint is down, so there is no latency to draw; "
        "the up/reason panel beside it shows the outage",
    ("fastmail-smtp-unreachable", "SMTP session timings"):
        "no SMTP session completes while the server is down, so there are no phase timings; up/reason shows it",
    ("cf-edge-pop-outage", "Cloudflare colo serving the probe"):
        "the colo comes from the cf-ray header of an answer; while the edge does not answer there is none",
    ("worked-5-minutes-ago", "HoneydueContainerWaiting: what it compares"):
        "it draws containers waiting for any reason but a crash loop or an image pull; a rollout stuck on its "
        "image (the drill's case) draws on the image-pull panel instead",
    # Not by design: a gap of the drill, which configures no `obs_ingest` HTTP target (its obs box has no
    # ingest /health endpoint); its scenario is judged by vmagent's remote-write errors instead.
    ("vmagent-cant-reach-obs", "ObsIngestUnhealthy: what it compares"):
        "the drill probes no obs_ingest target",
}
Labels = frozenset[tuple[str, str]]


def shipped(expr: str) -> str:
    """A dashboard query as Grafana sends it with every node selected."""
    return expr.replace("$node", ALL_NODES)


@dataclass
class DashboardCheck:
    """Queries the shipped dashboard's expressions on one VictoriaMetrics (Prometheus API)."""

    url: str
    timeout: float = 10.0
    # The look-back of an instant query, as a Grafana panel's step on a few hours' range: VictoriaMetrics
    # defaults to 5m, which would still show an alert resolved minutes ago (vmalert 1.79 writes no
    # staleness marker when an ALERTS series ends).
    step: str = "15s"
    # The drill's range window: its rules read `[20s]` and `offset 20s` for the chapter's `[10m]`, so a
    # panel is read the same way (production's `x - x offset 10m` has no data in a drill minutes long).
    window: str | None = None

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=self.timeout) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:  # VictoriaMetrics answers 4xx/422 with a JSON error body
            body = exc.read().decode(errors="replace")
            try:
                return dict(json.loads(body))
            except ValueError:
                return {"status": "error", "error": f"HTTP {exc.code}: {body[:200]}"}

    def instant(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        query = shorten_ranges(shipped(expr), self.window) if self.window else shipped(expr)
        params = {"query": query, "step": self.step} | ({"time": f"{at:.3f}"} if at is not None else {})
        reply = self._get("/api/v1/query", params)
        if reply.get("status") != "success":
            raise ValueError(f"{expr}: {reply.get('error', reply)}")
        return list(reply["data"]["result"])

    # --- every query runs ---------------------------------------------------------------------------
    def queries(self) -> list[tuple[str, str]]:
        """(where, expression) of every query the dashboard sends."""
        found = [(f"panel {p.id} {p.title!r} {t.ref}", t.expr) for p in build_plan().panels() for t in p.targets]
        found += [(f"annotation {name!r}", expr) for name, _, expr in ANNOTATIONS]
        return found

    def failing_queries(self, window: float = 600.0, step: float = 15.0) -> list[str]:
        """Each query as a range query over the last `window` seconds; the errors (none is the goal)."""
        end = time.time()
        errors = []
        for where, expr in self.queries():
            reply = self._get("/api/v1/query_range", {
                "query": shipped(expr), "start": f"{end - window:.3f}", "end": f"{end:.3f}", "step": f"{step:g}s",
            })
            if reply.get("status") != "success":
                errors.append(f"{where}: {expr}: {reply.get('error', reply)}")
        metric = NODE_QUERY.removeprefix("label_values(").split(",")[0]
        reply = self._get("/api/v1/label/node/values", {"match[]": metric})
        if reply.get("status") != "success":
            errors.append(f"variable node: {NODE_QUERY}: {reply.get('error', reply)}")
        return errors

    # --- the "Now" row ------------------------------------------------------------------------------
    def now(self, at: float | None = None) -> dict[str, int]:
        """failure mode id -> its state in the "Now" row (0 ok ... 3 critical; -1 no alert)."""
        by_heading = {e.heading: e.id for e in CATALOG}
        states: dict[str, int] = {}
        for panel in build_plan().now[1:]:
            for target in panel.targets:
                result = self.instant(target.expr, at)
                if len(result) != 1:
                    raise ValueError(f"Now row line {target.legend!r} returned {len(result)} series: {result}")
                states[by_heading[target.legend]] = int(float(result[0]["value"][1]))
        return states

    def firing(self, at: float | None = None) -> list[str]:
        """`alertname (failure_mode)` of the ALERTS series firing at `at`: what a Now-row state stands for."""
        result = self.instant('ALERTS{alertstate="firing"}', at)
        return sorted(f"{s['metric'].get('alertname')} ({s['metric'].get('failure_mode')})" for s in result)

    def pages(self, at: float | None = None) -> int:
        result = self.instant(build_plan().now[0].targets[0].expr, at)
        return int(float(result[0]["value"][1])) if result else -1

    @staticmethod
    def shown(states: dict[str, int]) -> dict[str, int]:
        """The failure modes the "Now" row colours (anything but ok and no-alert)."""
        return {fm: state for fm, state in states.items() if state not in (0, STATE_UNWATCHED)}

    # --- a failure mode's panels -------------------------------------------------------------------
    def empty_panels(self, failure_modes: set[str], at: float) -> list[str]:
        """The panels of these failure modes that draw nothing at `at`: none of their queries returns a series.

        Read while the failure modes' alerts fire, an empty panel is one a person could never read the failure
        from (a metric renamed, a label the exporter does not set, a matcher that matches nothing)."""
        empty = []
        for panel in build_plan().panels():
            if panel.entry is None or panel.entry.id not in failure_modes:
                continue
            if (panel.entry.id, panel.title) in EMPTY_DURING_FAILURE:
                continue
            if not any(self.instant(target.expr, at) for target in panel.targets):
                empty.append(f"{panel.entry.id}: panel {panel.id} {panel.title!r} returns no series during the failure")
        return empty

    # --- an alert's panel ---------------------------------------------------------------------------
    def panel_of(self, alert: str) -> PanelPlan:
        plan = build_plan()
        return plan.panel(plan.alert_panel[alert])

    def crossing(self, alert: str, at: float) -> set[Labels] | None:
        """Series of the alert's panel on the alert's side of its threshold at `at` (None: no threshold drawn)."""
        panel = self.panel_of(alert)
        drawn = [(t, th) for t in panel.targets for th in t.thresholds if th.alert == alert]
        if not drawn:
            return None
        found: set[Labels] = set()
        for target, threshold in drawn:
            found |= self._crossing(panel, target, threshold, at)
        return found

    def _crossing(self, panel: PanelPlan, target: Target, threshold: Threshold, at: float) -> set[Labels]:
        series = [(_labels(s), float(s["value"][1])) for s in self.instant(target.expr, at)]
        value = threshold.comparison.value
        if value is not None:
            return {labels for labels, v in series if threshold.comparison.holds(v, value)}
        line = next(t for t in panel.targets if t.threshold_of == threshold)
        limits = [(_labels(s), float(s["value"][1])) for s in self.instant(line.expr, at)]
        found = set()
        for labels, v in series:
            same = [limit for other, limit in limits if other == labels] or [limit for _, limit in limits]
            if any(threshold.comparison.holds(v, limit) for limit in same):
                found.add(labels)
        return found

    def shows_failure(self, alert: str, healthy_at: float, at: float) -> str | None:
        """None when the alert's panel shows a series crossing its threshold now that did not then; else why not."""
        panel = self.panel_of(alert)
        now = self.crossing(alert, at)
        if now is None:
            return f"{alert}: panel {panel.id} {panel.title!r} draws no threshold of it"
        before = self.crossing(alert, healthy_at) or set()
        if not now - before:
            return (f"{alert}: panel {panel.id} {panel.title!r} shows no new series past its threshold "
                    f"(now {sorted(map(dict, now), key=str)}, healthy {sorted(map(dict, before), key=str)})")
        return None


def _labels(series: dict[str, Any]) -> Labels:
    return frozenset((k, v) for k, v in series["metric"].items() if k != "__name__")
