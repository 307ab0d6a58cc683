"""pint (Cloudflare's rule linter, built from tests/peers/pint) passes on the shipped rules with .pint.hcl.

pint runs offline: the checks that query a live Prometheus are off, the others all on, and any problem of
any severity fails. A second test feeds it broken copies of shipped rules, so a config that silently
stopped checking (a parser include that matches nothing, a block that no longer applies) fails too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.catalog import alerts
from exporter.config import DEFAULT_RUNBOOK_BASE_URL
from exporter.render.rules import rule_groups
from tests.helpers.servers import require_binary

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / ".pint.hcl"


@pytest.fixture(scope="module")
def pint() -> str:
    return require_binary("pint", str(REPO / "tests" / "peers" / "bin"))


def _lint(pint: str, cwd: Path, report: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [pint, "--no-color", "--config", str(CONFIG if cwd == REPO else cwd / ".pint.hcl"), "--offline",
         "lint", "--min-severity", "info", "--fail-on", "info", "--json", str(report), "rules"],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )


def test_pint_is_the_pinned_release(pint: str) -> None:
    pinned = re.search(r"github\.com/cloudflare/pint (v\S+)", (REPO / "tests/peers/pint/go.mod").read_text())
    assert pinned
    out = subprocess.run([pint, "version"], capture_output=True, text=True, timeout=30)
    assert out.stdout.split()[0] == pinned.group(1), out.stdout


def test_shipped_rules_pass_pint(pint: str, tmp_path: Path) -> None:
    out = _lint(pint, REPO, tmp_path / "report.json")
    problems = json.loads((tmp_path / "report.json").read_text() or "[]")
    assert out.returncode == 0 and not problems, out.stderr[-6000:]
    checked = re.search(r'msg="Checking Prometheus rules" entries=(\d+)', out.stderr)
    assert checked and int(checked.group(1)) == len(alerts()), "pint did not read every rule: " + out.stderr[-2000:]


def _shipped(name: str) -> dict[str, Any]:
    for data in rule_groups(DEFAULT_RUNBOOK_BASE_URL).values():
        for rule in data["groups"][0]["rules"]:
            if rule["alert"] == name:
                return dict(rule)
    raise AssertionError(f"no shipped rule {name}")


def test_pint_reports_broken_copies_of_shipped_rules(pint: str, tmp_path: Path) -> None:
    """Each file holds one rule; the report must name exactly the checks the breakage calls for."""
    worker = _shipped("AsynqNoLiveWorker")
    merged = worker | {"expr": worker["expr"].replace("job, instance", "instance")}
    watchdog = _shipped("Watchdog")
    evicted = _shipped("KubePodsEvicted")
    bad_template = evicted | {"annotations": evicted["annotations"] | {
        "description": evicted["annotations"]["description"] + " Pod {{ $labels.pod }}."}}
    cases: dict[str, tuple[dict[str, Any], set[str]]] = {
        "unchanged": (worker, set()),
        "aggregates-job-away": (merged, {"promql/aggregate"}),
        "watchdog": (watchdog, set()),  # disabled for Watchdog only, with the reason, in .pint.hcl
        "always-firing": (watchdog | {"alert": "AlwaysFiring"}, {"alerts/comparison"}),
        "label-not-in-result": (bad_template, {"alerts/template"}),
    }
    (tmp_path / "rules").mkdir()
    shutil.copy(CONFIG, tmp_path / ".pint.hcl")
    for name, (rule, _) in cases.items():
        doc = {"groups": [{"name": name, "rules": [rule]}]}
        (tmp_path / "rules" / f"{name}.rules.yml").write_text(yaml.safe_dump(doc, sort_keys=False, width=10_000))
    out = _lint(pint, tmp_path, tmp_path / "report.json")
    reported: dict[str, set[str]] = {name: set() for name in cases}
    for problem in json.loads((tmp_path / "report.json").read_text() or "[]"):
        reported[Path(problem["path"]).name.removesuffix(".rules.yml")].add(problem["reporter"])
    assert reported == {name: expected for name, (_, expected) in cases.items()}, out.stderr[-6000:]
    assert out.returncode != 0


def test_names_pint_exempts_are_shipped_alerts() -> None:
    """A rename must not leave an exemption behind (or silently lift it from the alert it was written for)."""
    names = {alert.name for _, alert in alerts()}
    for pattern in re.findall(r'name = "\(?([^")]+)\)?"', CONFIG.read_text()):
        for name in pattern.split("|"):
            assert name in names, f".pint.hcl exempts {name}, which the catalog does not ship"
