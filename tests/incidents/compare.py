"""Before/after table: every incident, under every placement, through an older commit's rules and Alertmanager
config, and through ours.

    .venv/bin/python -m tests.incidents.compare [--rev b1f3cb2] [--out docs/incidents.md]

Both sides run on the same world (tests/incidents/cluster.py, as the exporter, netcheck, vmagent and the
obs-probe of this tree show it): the question is what each rule set pages when the faults cut the monitoring's
own paths. MetricsQL (vmalert-tool, what production runs) and a real Alertmanager running each side's
alertmanager.yml. Pages are notification groups at the pager over the whole incident, at the incident's own
placement; "wrong placements" counts the placements whose pages break the page budget (a missing page, a page
for something else, two pages for one cause). Not part of `make test` (it runs the suite twice);
docs/incidents.md holds its last output.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

import yaml

from tests.helpers.servers import require_binary
from tests.incidents import suite

REPO = suite.REPO


def checkout(rev: str, paths: list[str], into: Path) -> None:
    """The files under `paths` at `rev`, written below `into` (git archive, no work tree touched)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, *paths], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


Side = dict[str, dict[str, list[suite.Checkpoint]]]  # incident -> variant id -> checkpoints


def run(cases: dict[str, list[suite.Variant]], rules: list[Path], example: Path, workdir: Path) -> Side:
    binary = require_binary("vmalert-tool", str(REPO / "tests" / "peers" / "bin"))
    everything = [c for variants in cases.values() for c in variants]
    firing = suite.evaluate("vmalert-tool", binary, workdir, everything, rules)
    points = {c.id: suite.checkpoints(c, firing, "metricsql") for c in everything}
    suite.deliver(workdir, [p for ps in points.values() for p in ps], rules, example)
    return {incident: {c.id: points[c.id] for c in variants} for incident, variants in cases.items()}


def paging_metrics(rule_files: list[Path]) -> frozenset[str]:
    """The metrics the critical alerts (and the Watchdog) of these rule files read."""
    names = set()
    for path in rule_files:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if rule.get("labels", {}).get("severity") == "critical" or rule.get("alert") == "Watchdog":
                    names |= set(re.findall(r"\b((?:honeydue|asynq)_[a-z_]+)\b", rule["expr"]))
    return frozenset(names)


def pages(points: list[suite.Checkpoint]) -> dict[tuple[str, str], set[str]]:
    """(runbook anchor, node) paged -> the alerts in that page, over the whole incident."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for point in points:
        for delivery in point.delivered:
            if delivery.receiver == "pager":
                found[(delivery.anchor, delivery.node)].add(delivery.alert)
    return found


def describe(groups: dict[tuple[str, str], set[str]]) -> str:
    if not groups:
        return "none"
    parts = []
    for (anchor, node), alerts in sorted(groups.items()):
        where = f" on {node}" if node else ""
        parts.append(f"{' + '.join(sorted(alerts))}{where} (#{anchor})")
    return f"{len(groups)}: " + "; ".join(parts)


def wrong(variants: list[suite.Variant], side: dict[str, list[suite.Checkpoint]]) -> list[str]:
    """The placements (by their representative) whose pages break the budget on this side."""
    return [str(c.placement) for c in variants if suite.budget_problems(c, side[c.id])]


def table(cases: dict[str, list[suite.Variant]], before: Side, after: Side, rev: str) -> str:
    lines = [
        f"| incident | placements | pages before ({rev}), own placement | pages after, own placement "
        "| wrong placements before | wrong placements after |",
        "|---|---|---|---|---|---|",
    ]
    for incident, variants in cases.items():
        own = variants[0].id
        bad_before, bad_after = wrong(variants, before[incident]), wrong(variants, after[incident])
        first = f" (first: {bad_before[0]})" if bad_before else ""
        lines.append(
            f"| `{incident}` | {len(variants)} | {describe(pages(before[incident][own]))} | "
            f"{describe(pages(after[incident][own]))} | {len(bad_before)}{first} | {len(bad_after)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="b1f3cb2")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "incidents.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        checkout(args.rev, ["rules", "deploy/alertmanager"], old)
        old_rules = sorted((old / "rules").glob("honeydue-*.rules.yml"))
        # The other placements carry what either side's paging rules read (the older rules read other series).
        metrics = suite.page_metrics() | paging_metrics(old_rules)
        cases = {incident.id: suite.variants(incident, metrics) for incident in suite.load_all()}
        (Path(tmp) / "before").mkdir()
        (Path(tmp) / "after").mkdir()
        before = run(cases, old_rules, old / "deploy" / "alertmanager" / "alertmanager.yml", Path(tmp) / "before")
        after = run(cases, sorted((REPO / "rules").glob("honeydue-*.rules.yml")), suite.EXAMPLE, Path(tmp) / "after")
    text = table(cases, before, after, args.rev)
    print(text)
    if args.out:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        begin, end = "<!-- BEGIN GENERATED: compare -->\n", "<!-- END GENERATED -->"
        if begin in current:
            head, _, rest = current.partition(begin)
            current = head + begin + text + end + rest.partition(end)[2]
            args.out.write_text(current, encoding="utf-8")


if __name__ == "__main__":
    main()
