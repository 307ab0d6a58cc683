"""The test bed stays out of the product: the exporter runs and renders without it, the drill (testbed/drill)
says what to install and lists its scenarios without the extra, and the drill's short `for` and range windows
are an in-process option, not a `render` flag."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from exporter.cli import main
from exporter.config import DEFAULT_RUNBOOK_BASE_URL
from exporter.render.rules import RenderOptions, render_rules

REPO = Path(__file__).resolve().parent.parent
# `import testbed` fails in the child as it does in the production image (deploy/Dockerfile copies exporter/ only)
WITHOUT_TESTBED = "import sys; sys.modules['testbed'] = None\n"
# The drill extra's packages fail to import, as after `pip install honeydue-exporter` without `[drill]`
WITHOUT_EXTRA = "import sys; sys.modules['cryptography'] = sys.modules['aiosmtpd'] = None\n"


def _run(code: str, without: str = WITHOUT_TESTBED) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", without + code], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_exporter_renders_and_checks_config_without_the_test_bed() -> None:
    out = _run(
        "from exporter.cli import main\n"
        "import exporter.server, exporter.probes\n"
        "assert main(['render', '--check']) == 0\n"
        "assert main(['check-config']) == 0\n"
        "assert not [m for m in sys.modules if m.startswith('testbed.')]\n"
    )
    assert out.returncode == 0, out.stderr


def test_drill_without_the_test_bed_says_install_the_drill_extra() -> None:
    out = _run("from exporter.cli import main\nsys.exit(main(['drill', '--parallel']))\n")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "drill: testbed is not installed; install the drill extra: pip install 'honeydue-exporter[drill]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_drill_without_the_extra_lists_its_scenarios_and_refuses_to_run() -> None:
    from testbed.drill.scenarios import SCENARIOS

    listed = _run("from exporter.cli import main\nsys.exit(main(['drill', '--list']))\n", WITHOUT_EXTRA)
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [s.id for s in SCENARIOS]
    run = _run("from exporter.cli import main\nsys.exit(main(['drill', '--only', 'pooler-down']))\n", WITHOUT_EXTRA)
    assert run.returncode == 3, run.stdout + run.stderr
    assert run.stdout == "" and "Traceback" not in run.stderr
    assert re.fullmatch(r"honeydue-exporter drill: (cryptography|aiosmtpd) is not installed; install the drill extra: "
                        r"pip install 'honeydue-exporter\[drill\]' \(from a source checkout: pip install -e '\.\[drill\]'\)\n",
                        run.stderr), run.stderr


def test_drill_parses_its_own_options() -> None:
    out = subprocess.run([sys.executable, "-m", "exporter", "drill", "--help"], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert out.returncode == 0 and out.stdout.startswith("usage: honeydue-exporter drill"), out.stdout + out.stderr
    assert "--list" in out.stdout and "--only ID" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "exporter", "check-config", "--only", "x"], capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert bad.returncode == 2 and "unrecognized arguments: --only x" in bad.stderr


def test_render_has_no_drill_flags(capsys: object) -> None:
    for flag in ("--for-override", "--range-override"):
        try:
            main(["render", "--check", flag, "10s"])
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"render accepted {flag}")


def test_drill_options_change_every_rule_and_only_when_asked() -> None:
    shipped = render_rules(DEFAULT_RUNBOOK_BASE_URL)
    drill = render_rules(DEFAULT_RUNBOOK_BASE_URL, options=RenderOptions(alert_for="10s", range_window="30s"))
    assert shipped.keys() == drill.keys()
    shipped_rules = [r for text in shipped.values() for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
    drill_rules = [r for text in drill.values() for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
    assert [r["alert"] for r in shipped_rules] == [r["alert"] for r in drill_rules]
    assert {r["for"] for r in drill_rules} == {"10s"}
    assert "10s" not in {r["for"] for r in shipped_rules}
    windowed = [(s, d) for s, d in zip(shipped_rules, drill_rules, strict=True) if re.search(r"\[\d+[smhdw]\]", s["expr"])]
    assert windowed, "no rule has a range selector"
    for s, d in windowed:
        assert "[30s]" in d["expr"] and "[30s]" not in s["expr"], (s["expr"], d["expr"])
    assert (REPO / "rules" / next(iter(shipped))).read_text() == shipped[next(iter(shipped))]
