"""docs/configuration.md is generated from the config models: every setting has a description, and
`render --check` fails when the committed file drifts from the models."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from exporter.config import Config
from exporter.render.configdoc import render_configuration

REPO = Path(__file__).resolve().parent.parent


def _rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| `")]


def test_every_setting_is_described() -> None:
    rows = _rows(render_configuration())
    assert len(rows) > 100
    assert [row[0] for row in rows if not row[3]] == []
    paths = {row[0].strip("`") for row in rows}
    assert {"server.port", "kubernetes.readyz_timeout", "http.targets[].url", "dns.resolvers.*.address"} <= paths
    assert {f"{name}" for name in Config.model_fields} <= {p.split(".")[0] for p in paths}


def test_committed_reference_is_current_and_checked(tmp_path: Path) -> None:
    assert (REPO / "docs" / "configuration.md").read_text() == render_configuration()
    assert "(docs/configuration.md)" in (REPO / "README.md").read_text()
    for name in ("README.md", "rules", "dashboards", "docs"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, tmp_path / name)
    doc = tmp_path / "docs" / "configuration.md"
    doc.write_text(doc.read_text().replace("seconds between probe starts", "minutes between probe starts"))
    out = subprocess.run([sys.executable, "-m", "exporter", "render", "--check", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "configuration.md" in out.stdout + out.stderr
