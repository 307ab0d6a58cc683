"""Before/after table: every incident through an older commit's rules and Alertmanager config, and through ours.

    .venv/bin/python -m tests.incidents.compare [--rev 3129214] [--out docs/incidents.md]

"Before" evaluates the older rules with vmalert-tool (MetricsQL, what production runs) on the cluster as
the older exporter and deploy files showed it (cluster.Series' `legacy`: the pod and node on every series,
static netcheck pod IPs, ...) and pushes the firing alerts through a real Alertmanager running the older
alertmanager.yml. "After" is the same with the working tree's files. Not part of `make test` (it runs the
suite twice); docs/incidents.md holds its last output.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

from tests.helpers.servers import require_binary
from tests.incidents import suite

REPO = suite.REPO


def checkout(rev: str, paths: list[str], into: Path) -> None:
    """The files under `paths` at `rev`, written below `into` (git archive, no work tree touched)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, *paths], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


def run(incidents: list[suite.Incident], rules: list[Path], example: Path, workdir: Path,
        legacy: bool) -> dict[str, list[suite.Checkpoint]]:
    binary = require_binary("vmalert-tool", str(REPO / "tests" / "peers" / "bin"))
    firing = suite.evaluate("vmalert-tool", binary, workdir, incidents, rules, legacy=legacy)
    points = {i.id: suite.checkpoints(i, firing, "metricsql") for i in incidents}
    suite.deliver(workdir, [p for ps in points.values() for p in ps], rules, example)
    return points


def pages(points: list[suite.Checkpoint]) -> dict[tuple[str, str], set[str]]:
    """(failure mode, node) paged -> the alerts in that page, over the whole incident."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for point in points:
        for delivery in point.delivered:
            if delivery.receiver == "pager":
                found[(delivery.anchor, delivery.node)].add(delivery.alert)
    return found


def tickets(points: list[suite.Checkpoint]) -> set[str]:
    return {d.alert for p in points for d in p.delivered if d.receiver == "tickets"}


def describe(groups: dict[tuple[str, str], set[str]]) -> str:
    if not groups:
        return "none"
    parts = []
    for (anchor, node), alerts in sorted(groups.items()):
        where = f" on {node}" if node else ""
        parts.append(f"{' + '.join(sorted(alerts))}{where} (#{anchor})")
    return f"{len(groups)}: " + "; ".join(parts)


def table(incidents: list[suite.Incident], before: dict[str, list[suite.Checkpoint]],
          after: dict[str, list[suite.Checkpoint]], rev: str) -> str:
    lines = [
        f"| incident | pages before ({rev}) | pages after | root causes | critical pages per root cause "
        f"| tickets before | tickets after |",
        "|---|---|---|---|---|---|---|",
    ]
    for incident in incidents:
        after_pages = pages(after[incident.id])
        per_cause = len(after_pages) / len(incident.root_causes) if incident.root_causes else len(after_pages)
        causes = ", ".join(incident.root_causes) or "none (no page due)"
        lines.append(
            f"| `{incident.id}` | {describe(pages(before[incident.id]))} | {describe(after_pages)} | {causes} | "
            f"{per_cause:g} | {', '.join(sorted(tickets(before[incident.id]))) or '-'} | "
            f"{', '.join(sorted(tickets(after[incident.id]))) or '-'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="3129214")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "incidents.md")
    args = parser.parse_args()
    incidents = suite.load_all()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        checkout(args.rev, ["rules", "deploy/alertmanager"], old)
        old_rules = sorted((old / "rules").glob("honeydue-*.rules.yml"))
        (Path(tmp) / "before").mkdir()
        (Path(tmp) / "after").mkdir()
        before = run(incidents, old_rules, old / "deploy" / "alertmanager" / "alertmanager.yml",
                     Path(tmp) / "before", legacy=True)
        after = run(incidents, sorted((REPO / "rules").glob("honeydue-*.rules.yml")), suite.EXAMPLE,
                    Path(tmp) / "after", legacy=False)
    text = table(incidents, before, after, args.rev)
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
