"""Traceability: every catalog `probes=` name is a probe that gets built, every incident and drill scenario
names a failure mode of the catalog, and `catalog --id` follows one entry through the repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testbed.drill.scenarios import SCENARIOS
from testbed.kubeconfig import write_kubeconfig

from exporter import catalog_report, probes
from exporter.catalog import CATALOG, alerts
from exporter.config import load_config
from exporter.engine import Probe
from exporter.families import FAMILIES
from exporter.probes.deps import Dependencies

REPO = Path(__file__).resolve().parent.parent
IDS = {e.id for e in CATALOG}


def _shipped_probes(tmp_path: Path) -> list[Probe]:
    """Every probe the shipped configs build (Kubernetes through a kubeconfig; nothing is contacted)."""
    for name in ("redis-password", "postgres-password", "obs-ingest-token", "obs-query-token", "api-readonly-token"):
        (tmp_path / name).write_text("x" * 16)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:1", token="t")
    found: list[Probe] = []
    for shipped in ("config.yml", "netcheck.yml"):
        text = (REPO / "deploy" / "overlays" / "example" / shipped).read_text()
        text = text.replace("/etc/honeydue-exporter/secrets", str(tmp_path))
        data = yaml.safe_load(text)
        data["kubernetes"] = {**data.get("kubernetes", {}), "source": "kubeconfig", "kubeconfig": str(kubeconfig)}
        if shipped == "config.yml":  # shipped off until honeyDue's schema is known; the family still exists
            data["residence_cache"] = {**data.get("residence_cache", {}), "enabled": True}
        path = tmp_path / shipped
        path.write_text(yaml.safe_dump(data))
        found += probes.build_probes(load_config(path), Dependencies())
    return found


def test_every_catalog_probes_name_matches_a_built_probe(tmp_path: Path) -> None:
    built = {p.kind for p in _shipped_probes(tmp_path)}
    assert {"kubernetes_nodes", "redis", "asynq"} <= built  # the shipped configs really built the families
    unmatched = {(e.id, kind) for e in CATALOG for kind in e.probes if kind not in built}
    assert not unmatched, f"catalog probes= names matching no probe the shipped configs build: {sorted(unmatched)}"


def test_every_incident_names_a_known_failure_mode() -> None:
    modes = catalog_report.incident_failure_modes(REPO)
    assert len(modes) == len(list((REPO / "rules" / "incidents").glob("*.yml"))) >= 25
    unnamed = [path for path, mode in modes.items() if mode is None]
    unknown = {path: mode for path, mode in modes.items() if mode is not None and mode not in IDS}
    assert not unnamed, f"incidents without `failure_mode:`: {unnamed}"
    assert not unknown, f"incidents naming no catalog failure mode: {unknown}"


def test_an_incident_that_pages_names_one_of_its_root_causes() -> None:
    """The failure mode an incident is filed under is one it may page for (its page budget's root causes)."""
    for path, mode in catalog_report.incident_failure_modes(REPO).items():
        causes = yaml.safe_load((REPO / path).read_text()).get("root_causes") or []
        assert not causes or mode in causes, (path, mode, causes)


def test_every_drill_scenario_names_a_failure_mode_that_owns_one_of_its_alerts() -> None:
    owner = {a.name: e.id for e, a in alerts()}
    for scenario in SCENARIOS:
        assert scenario.failure_mode in IDS, (scenario.id, scenario.failure_mode)
        assert scenario.failure_mode in {owner[a] for a in scenario.expected}, (
            f"{scenario.id}: {scenario.failure_mode} owns none of {scenario.expected}")


def test_bad_failure_modes_are_caught(tmp_path: Path) -> None:
    """The incident check reads the files: one without the key, or with an unknown id, is reported as such."""
    (tmp_path / "rules" / "incidents").mkdir(parents=True)
    (tmp_path / "rules" / "incidents" / "a.yml").write_text("id: a\nroot_causes: []\n")
    (tmp_path / "rules" / "incidents" / "b.yml").write_text("id: b\nfailure_mode: no-such-mode\n")
    modes = catalog_report.incident_failure_modes(tmp_path)
    assert modes == {"rules/incidents/a.yml": None, "rules/incidents/b.yml": "no-such-mode"}
    with pytest.raises(KeyError, match="no failure mode 'no-such-mode'"):
        catalog_report.entry("no-such-mode")


def test_catalog_id_traces_an_entry_through_the_repo() -> None:
    out = subprocess.run([sys.executable, "-m", "exporter", "catalog", "--id", "redis-at-maxmemory", "--format", "json",
                          "--root", str(REPO)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    trace = json.loads(out.stdout)
    assert trace["probe_modules"] == ["exporter/probes/redis.py"]
    assert "rules/honeydue-app.rules.yml" in trace["rules"]
    assert "rules/tests/redis.test.yml" in trace["unit_tests"]
    assert "rules/incidents/redis-oom.yml" in trace["incidents"]
    assert "redis-noeviction" in trace["scenarios"]
    assert trace["panels"] == [p.title for p in catalog_report.entry("redis-at-maxmemory").panels]
    for path in [*trace["probe_modules"], *trace["rules"], *trace["unit_tests"], *trace["incidents"]]:
        assert (REPO / path).is_file(), path


def test_every_probe_class_is_a_kind_of_its_family() -> None:
    """Each family's `kinds` are exactly the kinds its probe classes declare, and every kind is in the catalog."""
    probes.all_modules()
    classes, declared = [Probe], set()
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        if cls.__module__.startswith("exporter.probes.") and "kind" in cls.__dict__:
            declared.add((cls.family, cls.kind))
    assert declared == {(f.name, kind) for f in FAMILIES for kind in f.kinds}
    assert {kind for e in CATALOG for kind in e.probes} == {kind for _, kind in declared}


def test_catalog_id_names_the_module_that_defines_each_probe() -> None:
    """The pod metrics are read by kube_metrics.py, though the kubernetes family's build() lives in kubernetes.py."""
    assert catalog_report.probe_module("kubernetes_pod_metrics") == "exporter/probes/kube_metrics.py"
    assert catalog_report.probe_module("kubernetes_nodes") == "exporter/probes/kubernetes.py"
    assert catalog_report.probe_module("residence_cache") == "exporter/probes/cache.py"
    for kind in {kind for f in FAMILIES for kind in f.kinds}:
        assert (REPO / catalog_report.probe_module(kind)).is_file(), kind


def test_catalog_id_unknown_is_one_line_error() -> None:
    out = subprocess.run([sys.executable, "-m", "exporter", "catalog", "--id", "nope"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "no failure mode 'nope'" in out.stderr
