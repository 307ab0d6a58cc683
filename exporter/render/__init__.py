"""Generate the committed rules/, dashboards/, deploy/ operator objects and the reference pages under docs/ from
the code."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from exporter.config import DEFAULT_GRAFANA_BASE_URL
from exporter.render.configdoc import render_configuration
from exporter.render.dashboards import render_dashboards
from exporter.render.operators import render_deploy
from exporter.render.reference import render_alerts_doc, render_metrics_doc
from exporter.render.rules import SHIPPED, RenderOptions, render_rules, rule_groups
from exporter.render.timing import render_time_to_page

__all__ = ["RenderOptions", "render_all", "write_all"]


def render_all(
    root: Path, base_url: str, grafana_url: str = DEFAULT_GRAFANA_BASE_URL, anchors: Mapping[str, str] | None = None,
    options: RenderOptions = SHIPPED,
) -> dict[Path, str]:
    """Every generated file (path relative to `root`) with its content; nothing is written. `options` changes
    the rules only (the drill's short `for` and range windows)."""
    files: dict[Path, str] = {}
    for name, text in render_rules(base_url, grafana_url, anchors, options).items():
        files[root / "rules" / name] = text
    dashboards = render_dashboards(base_url, grafana_url)
    for name, text in dashboards.items():
        files[root / "dashboards" / name] = text
    groups = {layer: data for layer, data in rule_groups(base_url, grafana_url, anchors, options).items()}
    for name, text in render_deploy(groups, dashboards).items():
        files[root / "deploy" / name] = text
    files[root / "docs" / "configuration.md"] = render_configuration()
    files[root / "docs" / "time-to-page.md"] = render_time_to_page()  # from this repository's deploy/
    files[root / "docs" / "metrics.md"] = render_metrics_doc()
    files[root / "docs" / "alerts.md"] = render_alerts_doc(base_url)
    return files


def write_all(
    root: Path, base_url: str, grafana_url: str = DEFAULT_GRAFANA_BASE_URL, anchors: Mapping[str, str] | None = None,
) -> list[Path]:
    written = []
    for path, text in render_all(root, base_url, grafana_url, anchors).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
