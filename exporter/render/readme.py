"""The README's metric and alert tables, generated so the README cannot drift from the code."""

from __future__ import annotations

import re
from collections.abc import Callable

import exporter.probes  # noqa: F401 - registers every probe's metric declarations
from exporter.catalog import LAYER_BY_ID, alerts
from exporter.samples import declared_metrics

_SECTION = re.compile(r"(<!-- BEGIN GENERATED: (?P<name>[a-z]+) -->\n).*?(<!-- END GENERATED -->)", re.DOTALL)


def metrics_table() -> str:
    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for name, spec in sorted(declared_metrics().items()):
        if name.startswith("honeydue_test_"):
            continue
        labels = ", ".join(f"`{label}`" for label in spec.labels) or "-"
        lines.append(f"| `{name}` | {spec.kind} | {labels} | {spec.help} |")
    return "\n".join(lines) + "\n"


def alerts_table(base_url: str) -> str:
    lines = ["| alert | severity | for | failure mode (runbook) |", "|---|---|---|---|"]
    for entry, alert in alerts():
        layer = LAYER_BY_ID[entry.layer].title
        lines.append(
            f"| `{alert.name}` | {alert.severity} | {alert.for_} | "
            f"[{entry.heading}]({entry.runbook_url(base_url)}) ({layer}) |"
        )
    return "\n".join(lines) + "\n"


def render_readme(current: str, base_url: str) -> str:
    """Replace each generated section of the README with fresh content."""
    generators: dict[str, Callable[[], str]] = {"metrics": metrics_table, "alerts": lambda: alerts_table(base_url)}

    def replace(match: re.Match[str]) -> str:
        generate = generators.get(match.group("name"))
        if generate is None:
            return match.group(0)
        return match.group(1) + generate() + match.group(3)

    return _SECTION.sub(replace, current)
