"""Time to page: each alert's worst case from a fault to its notification, from the shipped settings.

    probe interval + probe timeout      the fault begins just after a run: the next run sees it
  + scrape interval                     vmagent (deploy/vmagent) picks the result up
  + latency offset                      VictoriaMetrics hides the newest 30 s from queries (-search.latencyOffset)
  + detect                              what the expression needs in the data (a range window: Alert.detect)
  + for                                 the alert's pending time
  + evaluation interval                 vmalert (deploy/vmalert) evaluates this often
  + group_wait                          Alertmanager (deploy/alertmanager) waits this long before the first notification

Probe intervals and timeouts come from the shipped configs (deploy/overlays/example/config.yml for the exporter,
deploy/overlays/example/netcheck.yml for the netcheck DaemonSet, deploy/obs/obs-probe.yml for the obs box's probe), for
the slowest probe whose metric the expression reads. Budgets by severity: a user-facing outage is paged
within 5 minutes, any other page within 10, a ticket within 30; an alert over its budget must say why
(Alert.slow_reason, a chapter fact such as "skew is normal for hours"). docs/time-to-page.md is generated
from this module; tests/test_time_to_page.py fails on an alert over its budget, and the incident suite
checks every first page against its alert's figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from exporter.catalog import Alert, alerts

REPO = Path(__file__).resolve().parents[2]
LATENCY_OFFSET = 30  # VictoriaMetrics' default -search.latencyOffset: the obs box runs it unchanged
BUDGETS = {("critical", True): 300, ("critical", False): 600, ("warning", False): 1800, ("warning", True): 1800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str | float) -> float:
    """'1h30m' -> 5400; a bare number is seconds."""
    if isinstance(text, int | float):
        return float(text)
    parts = _DURATION.findall(str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return float(text)
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


@dataclass(frozen=True)
class Settings:
    """The shipped intervals: per probe family (interval + timeout, the slowest of its targets), scrape,
    evaluation, group_wait per severity."""

    probes: dict[str, float]
    obs_probe: float
    scrape: float
    obs_scrape: float
    evaluation: float
    group_wait: dict[str, float]


def _slowest(entries: list[dict[str, Any]], interval: float, timeout: float) -> float:
    """The slowest of a family's targets: interval + timeout, each target's own or the family default."""
    values = [seconds(e.get("interval", interval)) + seconds(e.get("timeout", timeout)) for e in entries]
    return max(values, default=interval + timeout)


def _http(doc: dict[str, Any]) -> float:
    return _slowest(doc.get("http", {}).get("targets", []), 30, 5)


@cache
def settings(root: Path = REPO) -> Settings:
    exporter = _yaml(root / "deploy" / "overlays" / "example" / "config.yml")
    netcheck = _yaml(root / "deploy" / "overlays" / "example" / "netcheck.yml")
    obs = _yaml(root / "deploy" / "obs" / "obs-probe.yml")

    def section(name: str, interval: float, timeout: float) -> float:
        cfg = exporter.get(name) or {}
        return seconds(cfg.get("interval", interval)) + seconds(cfg.get("timeout", timeout))

    postgres = exporter.get("postgres", {})
    probes = {
        "redis": section("redis", 15, 5),
        "asynq": section("asynq", 15, 5),
        "postgres": _slowest([postgres.get(e, {}) for e in ("pooler", "direct")], 30, 5),
        "http": _http(exporter),
        "dns": _slowest(exporter.get("dns", {}).get("lookups", []), 30, 5),
        "smtp": _slowest(exporter.get("smtp", {}).get("targets", []), 60, 10),
        "kube": section("kubernetes", 30, 10),
        "vmagent": section("vmagent", 15, 5),
        "nodata": section("nodata", 60, 10),
        "residence": section("residence_cache", 60, 10),
        "tcp": seconds(netcheck.get("tcp", {}).get("interval", 15)) + seconds(netcheck.get("tcp", {}).get("timeout", 3)),
    }
    scrapes = _yaml(root / "deploy" / "vmagent" / "scrape-honeydue-exporter.yml")["scrape_configs"]
    obs_scrapes = _yaml(root / "deploy" / "obs" / "scrape-obs-probe.yml")["scrape_configs"]
    compose = _yaml(root / "deploy" / "vmalert" / "docker-compose.vmalert.yml")
    flags = dict(f.split("=", 1) for f in compose["services"]["vmalert"]["command"] if "=" in f)
    route = _yaml(root / "deploy" / "alertmanager" / "alertmanager.yml")["route"]
    group_wait = {}
    for severity in ("critical", "warning", "info"):
        sub: dict[str, Any] = next(
            (r for r in route.get("routes", []) if f'severity="{severity}"' in r.get("matchers", [])), {})
        group_wait[severity] = seconds(sub.get("group_wait", route.get("group_wait", "30s")))
    return Settings(
        probes=probes,
        obs_probe=_http(obs),
        scrape=max(seconds(s.get("scrape_interval", "15s")) for s in scrapes),
        obs_scrape=max(seconds(s.get("scrape_interval", "15s")) for s in obs_scrapes),
        evaluation=seconds(flags.get("-evaluationInterval", "1m")),
        group_wait=group_wait,
    )


_FAMILIES = (
    ("honeydue_tcp_", "tcp"), ("honeydue_redis_", "redis"), ("honeydue_asynq_", "asynq"), ("asynq_", "asynq"),
    ("honeydue_postgres_", "postgres"), ("honeydue_http_", "http"), ("honeydue_dns_", "dns"),
    ("honeydue_smtp_", "smtp"), ("honeydue_kube_", "kube"), ("honeydue_vmagent_", "vmagent"),
    ("honeydue_nodata_", "nodata"), ("honeydue_residence_", "residence"),
)
_METRIC = re.compile(r"\b((?:honeydue|asynq)_[a-z_]+|up)\b")


def _skip_group(expr: str, i: int) -> int:
    """Index just past the parenthesised group or selector (name, {labels}, (args), [range]) at `i`."""
    while i < len(expr) and expr[i].isspace():
        i += 1
    while i < len(expr) and (expr[i].isalnum() or expr[i] in "_:"):
        i += 1
    while i < len(expr) and expr[i] in "({[":
        close = {"(": ")", "{": "}", "[": "]"}[expr[i]]
        depth, opening = 0, expr[i]
        while i < len(expr):
            depth += (expr[i] == opening) - (expr[i] == close)
            i += 1
            if depth == 0:
                break
    return i


def positive_part(expr: str) -> str:
    """The expression without the right operands of `unless`: a gate only keeps an alert quiet, so the sources
    it reads delay the quieting, never the page."""
    out, i = [], 0
    for match in re.finditer(r"\bunless\b", expr):
        if match.start() < i:
            continue
        out.append(expr[i:match.start()])
        j = match.end()
        modifier = re.match(r"\s*(?:on|ignoring)\s*", expr[j:])
        if modifier:
            j = _skip_group(expr, j + modifier.end())
        i = _skip_group(expr, j)
    out.append(expr[i:])
    return "".join(out)


def probe_delay(alert: Alert, s: Settings) -> tuple[float, float]:
    """(probe interval + timeout, scrape interval) of the slowest source the alert's firing part reads."""
    probe, scrape = 0.0, 0.0
    expr = positive_part(alert.expr)
    obs = 'job="honeydue-obs-probe"' in expr
    for metric in set(_METRIC.findall(expr)):
        if metric == "up":
            scrape = max(scrape, s.scrape)
            continue
        if metric.startswith("honeydue_http_") and obs:
            probe, scrape = max(probe, s.obs_probe), max(scrape, s.obs_scrape)
            continue
        if metric.startswith("honeydue_probe_"):
            continue  # read beside the family's own metrics, on the same run
        family = next((f for prefix, f in _FAMILIES if metric.startswith(prefix)), None)
        if family is not None:
            probe, scrape = max(probe, s.probes[family]), max(scrape, s.scrape)
    return probe, scrape


@dataclass(frozen=True)
class TimeToPage:
    alert: Alert
    failure_mode: str
    probe: float
    scrape: float
    detect: float
    for_: float
    evaluation: float
    latency: float
    group_wait: float

    @property
    def total(self) -> float:
        return (self.probe + self.scrape + self.latency + self.detect + self.for_ + self.evaluation
                + self.group_wait)

    @property
    def budget(self) -> float | None:
        return BUDGETS.get((self.alert.severity, self.alert.user_facing))

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.total > self.budget and not self.alert.slow_reason


def table(root: Path = REPO) -> list[TimeToPage]:
    s = settings(root)
    rows = []
    for entry, alert in alerts():
        probe, scrape = probe_delay(alert, s)
        latency = LATENCY_OFFSET if probe or scrape else 0.0
        rows.append(TimeToPage(alert, entry.id, probe, scrape, seconds(alert.detect), seconds(alert.for_),
                               s.evaluation, latency, s.group_wait[alert.severity]))
    return rows


def budgets(root: Path = REPO) -> dict[str, int]:
    """Alert name -> its worst-case time to page in seconds."""
    return {row.alert.name: int(row.total) for row in table(root)}


def _m(seconds_: float) -> str:
    value = round(seconds_)
    if value >= 3600:
        return f"{value // 3600}h{value % 3600 // 60:02d}m"
    return f"{value // 60}m{value % 60:02d}s" if value >= 60 else f"{value}s"


def render_time_to_page(root: Path = REPO) -> str:
    s = settings(root)
    lines = [
        "# Time to page",
        "",
        "Generated by `honeydue-exporter render` from exporter/render/timing.py and the shipped settings; "
        "`render --check` fails when it is stale and tests/test_time_to_page.py when an alert is over its budget.",
        "",
        "The worst case from the moment a fault begins to the first notification: the probe's interval and "
        "timeout (the fault begins just after a run), vmagent's scrape interval "
        f"({_m(s.scrape)}; the obs-probe's {_m(s.obs_scrape)}), VictoriaMetrics' latency offset "
        f"({_m(LATENCY_OFFSET)}), what the expression needs in the data (a range window), the alert's `for`, "
        f"vmalert's evaluation interval ({_m(s.evaluation)}) and Alertmanager's group_wait "
        f"(critical {_m(s.group_wait['critical'])}, others {_m(s.group_wait['warning'])}).",
        "",
        "Budgets: a user-facing outage is paged within 5 minutes, any other page within 10, a ticket within 30; "
        "info has none. An alert over its budget says why. The incident suite checks every first page "
        "against this figure.",
        "",
        "Where a fault also takes the monitoring's own path, add the time that path needs to come back "
        "(docs/witnesses.md): when vmagent ran on a node that dies, nothing arrives until it is rescheduled, "
        "340 s with Kubernetes' default 300 s not-ready toleration, 70 s with the 30 s the exporter uses "
        "(docs/deploy.md recommends it for vmagent); the obs side's ClusterSilent* alerts speak meanwhile. A "
        "dependency reached by name is not seen while the exporter's DNS fails (the DNS page speaks for it).",
        "",
        "| alert | severity | user-facing | failure mode | probe | scrape | detect | for | eval + offset + group_wait "
        "| worst case | budget |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(table(root), key=lambda r: (r.alert.severity, -r.total, r.alert.name)):
        budget = "-" if row.budget is None else _m(row.budget)
        if row.alert.slow_reason and row.budget is not None and row.total > row.budget:
            budget += f" (over: {row.alert.slow_reason})"
        lines.append(
            f"| {row.alert.name} | {row.alert.severity} | {'yes' if row.alert.user_facing else 'no'} | "
            f"{row.failure_mode} | {_m(row.probe)} | {_m(row.scrape)} | {_m(row.detect)} | {_m(row.for_)} | "
            f"{_m(row.evaluation + row.latency + row.group_wait)} | **{_m(row.total)}** | {budget} |")
    return "\n".join(lines) + "\n"
