"""deploy/components/: the operators' objects and the Grafana dashboard, rendered from the catalog (issue 22, 2-3).

- Prometheus operator: every PrometheusRule, ServiceMonitor and PodMonitor decodes with the operator's own Go
  types (pkg/apis/monitoring v0.95, tests/peers/operators/cmd/promdecode), unknown fields rejected;
- VictoriaMetrics operator: every VMRule's groups load in the real vmalert (`-dryRun`);
- each rule object's groups are its rules/ file's groups, exactly;
- each scrape object, as the job an operator makes of it (tests/helpers/operator_scrape.py), passes vmagent's
  `-promscrape.config.strictParse` and, scraping real exporters with the discovered targets' labels, gives
  every series the identity the raw jobs of deploy/vmagent give it;
- the dashboard ConfigMap carries the sidecar's label and the dashboard JSON; the provisioning file is sound.
The objects are accepted with their CRDs by a real API server in tests/test_kube_overlay.py.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from testbed.exporter import ExporterProcess
from testbed.manifests import build
from testbed.paths import PEERS_BIN
from testbed.vm import VictoriaMetrics

from exporter.render.operators import DASHBOARD_CONFIGMAP, SIDECAR_LABEL
from exporter.render.scrape import JOBS
from tests.helpers.operator_scrape import scrape_jobs
from tests.helpers.servers import free_port, require_binary, stop_process, wait_for_port

REPO = Path(__file__).resolve().parent.parent
COMPONENTS = REPO / "deploy" / "components"
VM, PROM, GRAFANA = (COMPONENTS / name for name in ("victoria-metrics-operator", "prometheus-operator",
                                                     "grafana-dashboard"))
RULE_FILES = sorted((REPO / "rules").glob("honeydue-*.rules.yml"))
NAMESPACE = "honeydue"


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def component_objects(component: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((component / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    return [d for resource in kustomization["resources"] for d in docs(component / resource)]


def with_components(tmp_path: Path, *components: str) -> list[dict[str, Any]]:
    """The example overlay with `components:` opted in, as a user would: a copy of deploy/ (the overlay's relative
    paths intact) whose overlay lists them, built by kustomize."""
    deploy = tmp_path / "deploy"
    shutil.copytree(REPO / "deploy", deploy)
    overlay = deploy / "overlays" / "example"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    kustomization["components"] = [f"../../components/{c}" for c in components]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return build(overlay)


# --- the rule objects --------------------------------------------------------------------------------
@pytest.mark.parametrize(("component", "kind"), [(VM, "VMRule"), (PROM, "PrometheusRule")], ids=["vm", "prometheus"])
def test_rule_objects_hold_the_rules_files_groups(component: Path, kind: str) -> None:
    objects = {o["metadata"]["name"]: o for o in component_objects(component) if o["kind"] == kind}
    assert sorted(objects) == sorted(f"honeydue-{p.name.removesuffix('.rules.yml').removeprefix('honeydue-')}"
                                     for p in RULE_FILES)
    for path in RULE_FILES:
        name = "honeydue-" + path.name.removesuffix(".rules.yml").removeprefix("honeydue-")
        assert objects[name]["spec"]["groups"] == yaml.safe_load(path.read_text())["groups"], name


def promdecode(*files: Path) -> subprocess.CompletedProcess[str]:
    binary = require_binary("promdecode", str(PEERS_BIN))
    return subprocess.run([binary, *map(str, files)], capture_output=True, text=True, timeout=60)


def without_empty(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: without_empty(v) for k, v in node.items() if v != {}}
    if isinstance(node, list):
        return [without_empty(v) for v in node]
    return node


def test_prometheus_operator_objects_decode_strictly_with_its_go_types(tmp_path: Path) -> None:
    files = [PROM / "prometheusrule.yaml", PROM / "monitors.yaml"]
    out = promdecode(*files)
    assert out.returncode == 0, out.stderr
    decoded = [json.loads(line) for line in out.stdout.splitlines()]
    shipped = [o for f in files for o in docs(f)]
    assert [(d["kind"], d["metadata"]["name"]) for d in decoded] == [(o["kind"], o["metadata"]["name"]) for o in shipped]
    # What the operator's types hold is what was written: nothing dropped, nothing renamed (the types add only
    # empty values of their non-pointer structs, such as namespaceSelector: {}).
    for got, want in zip(decoded, shipped, strict=True):
        assert without_empty(got["spec"]) == want["spec"], want["metadata"]["name"]
    rules = {d["metadata"]["name"]: d for d in decoded if d["kind"] == "PrometheusRule"}
    for path in RULE_FILES:
        name = "honeydue-" + path.name.removesuffix(".rules.yml").removeprefix("honeydue-")
        assert rules[name]["spec"]["groups"] == yaml.safe_load(path.read_text())["groups"]
    # Strict: a field the types do not have (a misspelt one) is refused, naming it.
    monitors = docs(PROM / "monitors.yaml")
    monitors[0]["spec"]["endpoints"][0]["scrapeTimout"] = "10s"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump_all(monitors))
    refused = promdecode(broken)
    assert refused.returncode == 1 and 'unknown field "scrapeTimout"' in refused.stderr, refused.stderr


def test_vmalert_loads_the_vmrule_groups(tmp_path: Path) -> None:
    vmalert = require_binary("vmalert", "/usr/bin")
    rules = tmp_path / "rules"
    rules.mkdir()
    for obj in component_objects(VM):
        if obj["kind"] == "VMRule":
            (rules / f"{obj['metadata']['name']}.yml").write_text(yaml.safe_dump({"groups": obj["spec"]["groups"]}))
    assert len(list(rules.iterdir())) == len(RULE_FILES)

    def dry_run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([vmalert, f"-rule={rules}/*.yml", "-dryRun", "-loggerLevel=ERROR"],
                              capture_output=True, text=True, timeout=60)

    out = dry_run()
    assert out.returncode == 0, out.stderr
    broken = rules / "honeydue-app.yml"
    data = yaml.safe_load(broken.read_text())
    data["groups"][0]["rules"][0]["expr"] = "sum(("
    broken.write_text(yaml.safe_dump(data))
    assert dry_run().returncode != 0


# --- the scrape objects ------------------------------------------------------------------------------
SCRAPE_KINDS = {"vm": ("VMServiceScrape", "VMPodScrape"), "prometheus": ("ServiceMonitor", "PodMonitor")}


def scrape_objects(flavour: str) -> list[dict[str, Any]]:
    component = VM if flavour == "vm" else PROM
    objects = [o for o in component_objects(component) if o["kind"] in SCRAPE_KINDS[flavour]]
    assert [o["kind"] for o in objects] == list(SCRAPE_KINDS[flavour])
    return objects


@pytest.mark.parametrize("flavour", ["vm", "prometheus"])
def test_scrape_objects_select_what_the_overlay_creates(flavour: str) -> None:
    """The selectors and ports against the rendered overlay (the live cluster check: tests/test_kube_overlay.py)."""
    manifests = build()
    service = next(d for d in manifests if d["kind"] == "Service")
    for obj, job in zip(scrape_objects(flavour), JOBS, strict=True):
        selector = obj["spec"]["selector"]["matchLabels"]
        [endpoint] = obj["spec"].get("endpoints") or obj["spec"]["podMetricsEndpoints"]
        if job.via == "service":
            assert selector.items() <= service["metadata"]["labels"].items()
            assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        else:
            [daemonset] = [d for d in manifests if d["kind"] == "DaemonSet"]
            template = daemonset["spec"]["template"]
            assert selector.items() <= template["metadata"]["labels"].items()
            assert endpoint["port"] in {p["name"] for c in template["spec"]["containers"] for p in c["ports"]}


@pytest.mark.parametrize("flavour", ["vm", "prometheus"])
def test_vmagent_strictly_parses_the_jobs_the_objects_stand_for(flavour: str, tmp_path: Path) -> None:
    vmagent = require_binary("vmagent", "/usr/bin")
    jobs = [job for obj in scrape_objects(flavour) for job in scrape_jobs(obj, NAMESPACE)]
    config = tmp_path / "scrape.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": jobs}))

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run([vmagent, f"-promscrape.config={config}", "-promscrape.config.strictParse",
                               "-promscrape.config.dryRun", "-loggerLevel=ERROR"], capture_output=True, text=True,
                              timeout=60)

    out = check()
    assert out.returncode == 0, out.stderr
    jobs[0]["relabel_configs"][-1]["actoin"] = "labeldrop"  # strict: an unknown key fails the whole config
    config.write_text(yaml.safe_dump({"scrape_configs": jobs}))
    assert check().returncode != 0


def _discovered(job: dict[str, Any], address: str, meta: dict[str, str]) -> dict[str, Any]:
    job = copy.deepcopy(job)
    del job["kubernetes_sd_configs"]
    job |= {"scrape_interval": "1s", "scrape_timeout": "1s",
            "static_configs": [{"targets": [address], "labels": meta}]}
    return job


def _endpoints_meta(pod: str, node: str) -> dict[str, str]:
    """The labels kubernetes_sd role `endpoints` gives the exporter's pod behind its Service."""
    return {"__meta_kubernetes_namespace": NAMESPACE, "__meta_kubernetes_service_name": "honeydue-exporter",
            "__meta_kubernetes_service_label_app_kubernetes_io_name": "honeydue-exporter",
            "__meta_kubernetes_service_label_app_kubernetes_io_component": "exporter",
            "__meta_kubernetes_endpoint_port_name": "http-metrics", "__meta_kubernetes_endpoint_ready": "true",
            "__meta_kubernetes_endpoint_address_target_kind": "Pod",
            "__meta_kubernetes_endpoint_address_target_name": pod, "__meta_kubernetes_pod_name": pod,
            "__meta_kubernetes_pod_node_name": node, "__meta_kubernetes_pod_container_name": "exporter",
            "__meta_kubernetes_pod_container_port_name": "http-metrics", "__meta_kubernetes_pod_phase": "Running"}


def _pod_meta(pod: str, node: str) -> dict[str, str]:
    """The labels kubernetes_sd role `pod` gives a netcheck pod's metrics port."""
    return {"__meta_kubernetes_namespace": NAMESPACE, "__meta_kubernetes_pod_name": pod,
            "__meta_kubernetes_pod_node_name": node, "__meta_kubernetes_pod_phase": "Running",
            "__meta_kubernetes_pod_container_name": "netcheck",
            "__meta_kubernetes_pod_container_port_name": "http-metrics",
            "__meta_kubernetes_pod_label_app_kubernetes_io_name": "honeydue-exporter",
            "__meta_kubernetes_pod_label_app_kubernetes_io_component": "netcheck"}


@pytest.fixture(scope="module")
def exporters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ExporterProcess, ExporterProcess]]:
    """A full exporter and a netcheck one (NODE_NAME n2: its `node` label), as in tests/test_deploy.py."""
    import socket

    tmp = tmp_path_factory.mktemp("exporters")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    netcheck_config = tmp / "netcheck.yml"
    netcheck_config.write_text(yaml.safe_dump({
        "mode": "netcheck", "redis": {"enabled": False},
        "postgres": {"pooler": {"enabled": False}, "direct": {"enabled": False}}, "kubernetes": {"source": "off"},
        "tcp": {"interval": 1, "timeout": 0.5,
                "targets": [{"name": "redis", "address": f"127.0.0.1:{listener.getsockname()[1]}"}]},
    }))
    full = ExporterProcess(env={"HONEYDUE_REDIS__ENABLED": "false", "HONEYDUE_POSTGRES__POOLER__ENABLED": "false",
                                "HONEYDUE_POSTGRES__DIRECT__ENABLED": "false", "HONEYDUE_KUBERNETES__SOURCE": "off"},
                           log_path=tmp / "full.log")
    netcheck = ExporterProcess(env={"NODE_NAME": "n2"}, config_path=netcheck_config, log_path=tmp / "netcheck.log")
    try:
        full.start()
        netcheck.start()
        yield full, netcheck
    finally:
        full.stop()
        netcheck.stop()
        listener.close()


@pytest.mark.parametrize("flavour", ["vm", "prometheus"])
def test_the_objects_give_series_the_raw_jobs_identity(flavour: str, tmp_path: Path,
                                                       exporters: tuple[ExporterProcess, ExporterProcess]) -> None:
    """A real vmagent runs the jobs the objects stand for against real exporters, with the labels the operator's
    discovery gives their pods; VictoriaMetrics then holds what the raw jobs give (tests/test_deploy.py)."""
    full, netcheck = exporters
    service_obj, pod_obj = scrape_objects(flavour)
    [service_job] = scrape_jobs(service_obj, NAMESPACE)
    [pod_job] = scrape_jobs(pod_obj, NAMESPACE)
    config = {"scrape_configs": [
        _discovered(service_job, f"127.0.0.1:{full.port}", _endpoints_meta("honeydue-exporter-7d9f-abcde", "n1")),
        _discovered(pod_job, f"127.0.0.1:{netcheck.port}", _pod_meta("honeydue-netcheck-x1", "n2")),
    ]}
    scrape = tmp_path / "scrape.yml"
    scrape.write_text(yaml.safe_dump(config))
    (tmp_path / "vm").mkdir()
    victoria = VictoriaMetrics(workdir=tmp_path / "vm")
    victoria.start()
    port = free_port()
    log = (tmp_path / "vmagent.log").open("ab")
    agent = subprocess.Popen(
        [require_binary("vmagent", "/usr/bin"), f"-httpListenAddr=127.0.0.1:{port}",
         f"-remoteWrite.url={victoria.write_url}", f"-promscrape.config={scrape}",
         f"-remoteWrite.tmpDataPath={tmp_path / 'queue'}", "-remoteWrite.flushInterval=200ms", "-loggerLevel=ERROR"],
        stdout=log, stderr=log)
    try:
        wait_for_port(port, 20)
        tcp = victoria.wait_for_series('honeydue_tcp_up{target="redis"}', 30)
        deadline = time.monotonic() + 30
        build = victoria.query("honeydue_exporter_build_info")
        while len(build) < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
            build = victoria.query("honeydue_exporter_build_info")
        by_job = {(s["metric"]["job"], s["metric"]["instance"]): s["metric"] for s in build}
        assert set(by_job) == {("honeydue-exporter", "honeydue-exporter"), ("honeydue-netcheck", "netcheck-n2")}
        exporter_build = by_job[("honeydue-exporter", "honeydue-exporter")]
        assert (exporter_build["kubernetes_node"], exporter_build["kubernetes_pod_name"]) == (
            "n1", "honeydue-exporter-7d9f-abcde")
        assert exporter_build["kubernetes_namespace"] == NAMESPACE
        # The exporter's own `node` arrives as `node`, and nothing the operator would add is left on any series.
        [series] = tcp
        assert series["metric"]["node"] == "n2" and series["metric"]["job"] == "honeydue-netcheck"
        assert "kubernetes_pod_name" not in series["metric"] and "kubernetes_node" not in series["metric"]
        for label in ("namespace", "service", "pod", "container", "endpoint", "exported_node", "exported_namespace"):
            assert victoria.query(f'{{__name__=~"honeydue_.+", {label}!=""}}') == [], label
        assert victoria.query('{__name__=~"honeydue_.+", __name__!="honeydue_exporter_build_info", '
                              'kubernetes_pod_name!=""}') == []
        ups = {s["metric"]["job"]: s["metric"] for s in victoria.query('up{job=~"honeydue-.+"}')}
        assert ups["honeydue-netcheck"]["kubernetes_node"] == "n2" and "pod" not in ups["honeydue-netcheck"]
    finally:
        stop_process(agent)
        log.close()
        victoria.cleanup()


# --- the whole opt-in, and Grafana ---------------------------------------------------------------------
def test_the_overlay_with_every_component_renders(tmp_path: Path) -> None:
    objects = with_components(tmp_path, "victoria-metrics-operator", "prometheus-operator", "grafana-dashboard")
    kinds = [o["kind"] for o in objects]
    for kind in ("VMRule", "VMServiceScrape", "VMPodScrape", "PrometheusRule", "ServiceMonitor", "PodMonitor"):
        assert kind in kinds
    for obj in objects:
        if obj["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE, (obj["kind"], obj["metadata"]["name"])
        if obj["kind"] in ("ConfigMap", "Namespace"):
            kubernetes_validate.validate(obj, "1.35", strict=True)


def test_dashboard_configmap_for_the_sidecar() -> None:
    [configmap] = component_objects(GRAFANA)
    kubernetes_validate.validate(configmap, "1.35", strict=True)
    assert configmap["metadata"]["name"] == DASHBOARD_CONFIGMAP
    assert configmap["metadata"]["labels"][SIDECAR_LABEL[0]] == SIDECAR_LABEL[1] == "1"
    shipped = {p.name: json.loads(p.read_text()) for p in (REPO / "dashboards").glob("*.json")}
    assert {name: json.loads(text) for name, text in configmap["data"].items()} == shipped
    # Small enough for client-side `kubectl apply` too (its last-applied annotation holds at most 256 KiB).
    assert len(json.dumps(configmap)) < 256 * 1024


def test_grafana_provisioning_file() -> None:
    """The classic file provider: the keys Grafana documents, a file provider reading one directory."""
    doc = yaml.safe_load((REPO / "deploy" / "grafana" / "provisioning" / "dashboards" / "honeydue-exporter.yaml")
                         .read_text())
    assert doc["apiVersion"] == 1
    [provider] = doc["providers"]
    assert set(provider) <= {"name", "orgId", "folder", "folderUid", "type", "disableDeletion", "updateIntervalSeconds",
                             "allowUiUpdates", "options"}
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
    assert set(provider["options"]) <= {"path", "foldersFromFilesStructure"}
    assert provider["options"]["path"].startswith("/var/lib/grafana/dashboards/")
    # Provisioned on any Grafana: the dashboard picks its data source through its own variable.
    dashboard = json.loads((REPO / "dashboards" / "honeydue-failure-modes.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
