"""The promtool unit tests run on a copy of rules/ without the `dashboard_url` annotation.

`dashboard_url` names a dashboard panel id, which moves whenever the dashboard's layout does; the rule
unit tests are about when alerts fire and what they say, so their expected annotations leave it out.
tests/test_dashboards.py checks every rule's `dashboard_url` (it must open a panel drawing the alert).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
LINK_ANNOTATIONS = ("dashboard_url",)


def rule_test_tree(tmp_path: Path) -> Path:
    """tmp_path/rules (rules without dashboard_url) with tests/ beside it, as in the repository; returns tests/."""
    rules = tmp_path / "rules"
    (rules / "tests").mkdir(parents=True)
    for path in (REPO / "rules").glob("*.rules.yml"):
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                for key in LINK_ANNOTATIONS:
                    rule.get("annotations", {}).pop(key, None)
        (rules / path.name).write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
    for path in (REPO / "rules" / "tests").glob("*.test.yml"):
        shutil.copy(path, rules / "tests" / path.name)
    return rules / "tests"
