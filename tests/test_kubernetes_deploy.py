"""deploy/ against the real control plane: the exporter's RBAC (deploy/base/rbac.yaml, applied as written)
is exactly what it needs, deploy/base rendered by kustomize is accepted by the API server, a cordoned
node's alerts are inhibited by the shipped Alertmanager config, and the exporter keeps serving while
the API server hangs or rejects its token."""

from __future__ import annotations

import copy
import json
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from testbed.exporter import ExporterProcess, Metrics, value
from testbed.faults import FaultProxy
from testbed.kube.cluster import (
    EXPORTER_NAMESPACE,
    EXPORTER_SERVICE_ACCOUNT,
    NETCHECK_RBAC,
    NETCHECK_SERVICE_ACCOUNT,
    RBAC,
    load_manifests,
)
from testbed.kube.control_plane import NODE_IPS, NODE_NAMES
from testbed.manifests import BASE, OVERLAY, build, one

from exporter.config import KubernetesConfig
from tests.helpers import kube_alerts
from tests.helpers.kube import Expect, Kube, select, start_exporter, wait_metrics
from tests.helpers.servers import free_port, require_binary, stop_process, wait_for_port

REPO = Path(__file__).resolve().parent.parent
ALERTMANAGER = REPO / "deploy" / "alertmanager"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "escalate", "bind", "impersonate", "*"}
EXPORTER_USER = f"system:serviceaccount:{EXPORTER_NAMESPACE}:{EXPORTER_SERVICE_ACCOUNT}"
NETCHECK_USER = f"system:serviceaccount:{EXPORTER_NAMESPACE}:{NETCHECK_SERVICE_ACCOUNT}"
RBAC_FILES = (RBAC, NETCHECK_RBAC)  # the exporter's and the netcheck DaemonSet's
# What every authenticated user may GET (the default ClusterRole system:public-info-viewer).
PUBLIC_INFO = {("url", path, "get") for path in ("/healthz", "/livez", "/readyz", "/version", "/version/")}
PAGE = KubernetesConfig.model_fields["list_page_size"].default


# --- RBAC ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grant:
    """One atomic permission of one role in an RBAC file: a verb on a resource (of a group) or on a URL."""

    file: Path
    doc: int
    verb: str
    group: str = ""
    resource: str = ""
    url: str = ""
    names: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        return ("url", self.url, self.verb) if self.url else (self.group, self.resource, self.verb)

    @property
    def names_in_metrics(self) -> tuple[str, ...]:
        """How the exporter's `resource` label names it: `pods`, or `pods.metrics.k8s.io` beside core pods."""
        return (self.resource, f"{self.resource}.{self.group}") if self.group else (self.resource,)

    def rule(self) -> dict[str, Any]:
        if self.url:
            return {"nonResourceURLs": [self.url], "verbs": [self.verb]}
        rule: dict[str, Any] = {"apiGroups": [self.group], "resources": [self.resource], "verbs": [self.verb]}
        if self.names:
            rule["resourceNames"] = list(self.names)
        return rule


def grants(docs: list[dict[str, Any]], file: Path = RBAC) -> list[Grant]:
    found = []
    for i, doc in enumerate(docs):
        if doc["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in doc.get("rules") or []:
            for verb in rule["verbs"]:
                found += [Grant(file, i, verb, url=url) for url in rule.get("nonResourceURLs") or []]
                found += [Grant(file, i, verb, group, resource, names=tuple(rule.get("resourceNames") or ()))
                          for group in rule.get("apiGroups") or [] for resource in rule.get("resources") or []]
    return found


def without(docs: list[dict[str, Any]], grant: Grant) -> list[dict[str, Any]]:
    """rbac.yaml with one grant taken away (its role's rules rewritten one grant per rule)."""
    changed = copy.deepcopy(docs)
    changed[grant.doc]["rules"] = [g.rule() for g in grants(docs, grant.file) if g.doc == grant.doc and g != grant]
    return changed


def forbidden(m: Metrics) -> set[tuple[str, str]]:
    """(metric, resource) of every error series whose reason is forbidden."""
    return {(name, dict(labels).get("resource", "")) for (name, labels) in m
            if name.endswith("_error_info") and dict(labels).get("reason") == "forbidden"}


def all_grants() -> list[Grant]:
    return [g for file in RBAC_FILES for g in grants(load_manifests(file), file)]


@pytest.mark.parametrize("file", RBAC_FILES, ids=lambda f: f.stem)
def test_rbac_validates_and_grants_no_write(file: Path) -> None:
    docs = load_manifests(file)
    for doc in docs:
        kubernetes_validate.validate(doc, "1.35", strict=True)
    assert {g.verb for g in grants(docs, file)} <= {"get", "list"}
    assert not {g.verb for g in grants(docs, file)} & (WRITE_VERBS | {"watch"})
    assert not any(g.resource == "secrets" for g in grants(docs, file))


def netcheck_denied(m: Metrics) -> bool:
    """netcheck cannot list the api Service's EndpointSlices: its discovery fails (permission denied),
    so no pod path is dialled."""
    return (value(m, "honeydue_probe_success", probe="netcheck_pods_api") == 0
            and value(m, "honeydue_probe_error_info", probe="netcheck_pods_api", reason="auth") == 1
            and not select(m, "honeydue_tcp_up", role="pod"))


def netcheck_discovers(m: Metrics) -> bool:
    return value(m, "honeydue_probe_success", probe="netcheck_pods_api") == 1 and len(
        select(m, "honeydue_tcp_up", role="pod", backend="api")) == len(NODE_NAMES)


@pytest.mark.parametrize("grant", all_grants(), ids=lambda g: "-".join([g.file.stem, *filter(None, g.key)]))
def test_removing_any_grant_breaks_the_signal_that_needs_it(kube: Kube, grant: Grant,
                                                           request: pytest.FixtureRequest) -> None:
    """Real RBAC: each grant of rbac.yaml and netcheck-rbac.yaml is needed (without it the exporter reports
    forbidden, or netcheck discovers no pod), and both work with exactly their file's grants. Grants added to
    the files later are covered too."""
    cluster, docs = kube.cluster, load_manifests(grant.file)
    if grant.file == NETCHECK_RBAC:
        netcheck: ExporterProcess = request.getfixturevalue("kube_netcheck")
        wait_metrics(netcheck, Expect().holds("netcheck discovers the api pods", netcheck_discovers), 20)
        cluster.apply_rbac(without(docs, grant))
        try:
            wait_metrics(netcheck, Expect().holds("netcheck's discovery denied", netcheck_denied), 20)
        finally:
            cluster.apply_rbac(docs)
        wait_metrics(netcheck, Expect().holds("netcheck discovers the api pods", netcheck_discovers), 20)
        return
    wait_metrics(kube.exporter, Expect().holds("no forbidden series", lambda m: not forbidden(m)), 20)
    cluster.apply_rbac(without(docs, grant))
    try:
        wanted = "a forbidden error series" + (f" for {grant.resource}" if grant.resource else "")
        m, _ = wait_metrics(kube.exporter, Expect().holds(wanted, lambda m: bool(forbidden(m)) and (
            not grant.resource or any(r in grant.names_in_metrics for _, r in forbidden(m)))), 20)
        if grant.url == "/readyz/etcd":  # each server node's etcd check is forbidden, the rest reads fine
            assert set(select(m, "honeydue_kube_apiserver_readyz_error_info", reason="forbidden")) == {
                frozenset({("node", n), ("reason", "forbidden")}) for n in NODE_NAMES}
    finally:
        cluster.apply_rbac(docs)
    wait_metrics(kube.exporter, Expect().holds("no forbidden series", lambda m: not forbidden(m)), 20)


def audit_events(kube: Kube, since: str, user: str = EXPORTER_USER) -> list[dict[str, Any]]:
    """`user`'s requests (ResponseComplete) received at or after `since` (RFC 3339, UTC)."""
    events = []
    for i in range(len(NODE_IPS)):
        path = kube.cluster.control_plane.audit_log(i)
        for line in path.read_text().splitlines() if path.exists() else []:
            event = json.loads(line)
            if (event.get("user", {}).get("username") == user and event.get("stage") == "ResponseComplete"
                    and event["requestReceivedTimestamp"] >= since):
                events.append(event)
    return events


def requests_made(events: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(group, resource, verb) or ("url", path, verb) of each audited request; none was refused."""
    used = set()
    for event in events:
        ref = event.get("objectRef")
        if ref:
            used.add((ref.get("apiGroup", ""), ref["resource"], event["verb"]))
        else:
            used.add(("url", urllib.parse.urlsplit(event["requestURI"]).path, event["verb"]))
        assert event["responseStatus"]["code"] < 400, event
    return used


def test_the_exporter_asks_exactly_what_rbac_yaml_grants(kube: Kube) -> None:
    """The API servers' audit logs: every request of the exporter's ServiceAccount, against the grants."""
    wait_metrics(kube.exporter, Expect().holds("no forbidden series", lambda m: not forbidden(m)), 20)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    time.sleep(6)  # three cycles of every probe
    events = audit_events(kube, since)
    used = requests_made(events)
    granted = {g.key for g in grants(load_manifests(RBAC))}
    assert used - PUBLIC_INFO == granted, (sorted(used), sorted(granted))
    # Every list is read in pages of list_page_size and carries no resourceVersion (=0 would make the watch
    # cache ignore `limit` and send the whole collection).
    lists = [urllib.parse.parse_qs(urllib.parse.urlsplit(e["requestURI"]).query) for e in events if e["verb"] == "list"]
    assert lists and all(q.get("limit") == [str(PAGE)] and "resourceVersion" not in q for q in lists), lists
    # Deployments are listed by name, only the watched ones (kube-system's local-path-provisioner is never read).
    by_name = {(e["objectRef"]["namespace"], q) for e in events if e["verb"] == "list"
               and e["objectRef"]["resource"] == "deployments"
               for q in urllib.parse.parse_qs(urllib.parse.urlsplit(e["requestURI"]).query).get("fieldSelector", ["-"])}
    watched = KubernetesConfig().deployments
    assert by_name == {(ns, f"metadata.name={name}") for ns, names in watched.items() for name in names}, by_name
    # /readyz/etcd is asked of each server node's own API server.
    hosts = {e["requestURI"] for e in events if e["requestURI"].startswith("/readyz")}
    assert hosts == {"/readyz/etcd"}


def test_netcheck_asks_exactly_what_netcheck_rbac_grants(kube: Kube, kube_netcheck: ExporterProcess) -> None:
    """netcheck's ServiceAccount lists EndpointSlices in honeydue, by the api Service's label, and nothing else."""
    wait_metrics(kube_netcheck, Expect().holds("netcheck discovers the api pods", netcheck_discovers), 20)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    time.sleep(6)  # three runs
    events = audit_events(kube, since, NETCHECK_USER)
    assert requests_made(events) == {g.key for g in grants(load_manifests(NETCHECK_RBAC), NETCHECK_RBAC)}
    assert {e["objectRef"]["namespace"] for e in events} == {EXPORTER_NAMESPACE}
    queries = [urllib.parse.parse_qs(urllib.parse.urlsplit(e["requestURI"]).query) for e in events]
    assert all(q.get("labelSelector") == ["kubernetes.io/service-name=api"] for q in queries), queries


def test_lists_are_read_in_pages_from_the_real_api_server(kube: Kube, tmp_path: Path) -> None:
    """list_page_size 2, fewer than the cluster's nodes and pods: the API server hands out continue tokens,
    and every object of every page is reported once."""
    cluster = kube.cluster
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    exporter = start_exporter(cluster, tmp_path / "exporter", list_page_size=2)
    try:
        def expect() -> Expect:
            e = Expect().value("honeydue_kube_control_plane_nodes", len(NODE_NAMES))
            for ns in ("honeydue", "kube-system"):
                names = {p["metadata"]["name"] for p in cluster.pods(ns)}
                assert len(names) > 2, names
                e.holds(f"every {ns} pod once", lambda m, ns=ns, names=names: sorted(  # type: ignore[misc]
                    dict(lab)["pod"] for lab in select(m, "honeydue_kube_pod_info", namespace=ns)) == sorted(names))
            return e

        wait_metrics(exporter, expect, 30)
    finally:
        exporter.stop()
    paged = [urllib.parse.parse_qs(urllib.parse.urlsplit(e["requestURI"]).query) | {"path": [e["requestURI"]]}
             for e in audit_events(kube, since) if e["verb"] == "list" and "limit=2&" in e["requestURI"] + "&"]
    pods = [q for q in paged if "/namespaces/honeydue/pods" in q["path"][0]]
    nodes = [q for q in paged if q["path"][0].startswith("/api/v1/nodes")]
    # honeydue's pods: a first page, then continued pages; nodes: 3 objects in 2 pages per run.
    assert any("continue" not in q for q in pods) and any("continue" in q for q in pods), pods
    assert any("continue" in q for q in nodes), nodes
    assert all("resourceVersion" not in q for q in paged), paged


def test_wrong_token_is_unauthorized(kube: Kube, tmp_path: Path) -> None:
    exporter = start_exporter(kube.cluster, tmp_path / "exporter", token="not-a-service-account-token")
    try:
        e = Expect().value("honeydue_kube_api_up", 0)
        for resource, ns in (("nodes", ""), ("pods", "honeydue"), ("apiservices", "")):
            e.value("honeydue_kube_resource_error_info", 1, resource=resource, namespace=ns, reason="unauthorized")
        wait_metrics(exporter, e, 20)
    finally:
        exporter.stop()


# --- the in-cluster processes run as the overlay's pod specs say ----------------------------------
def _process(pid: int) -> dict[str, str]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: v.strip() for k, v in fields.items()}


@pytest.mark.parametrize(("kind", "name", "key"), [("Deployment", "honeydue-exporter", "config.yml"),
                                                   ("DaemonSet", "honeydue-netcheck", "netcheck.yml")])
def test_the_in_cluster_processes_run_with_the_overlays_pod_spec(kube: Kube, kube_netcheck: ExporterProcess,
                                                                  kind: str, name: str, key: str) -> None:
    """The session's exporter and netcheck (tests/helpers/kube.py) seen from /proc: the user, groups,
    privileges and mounts the rendered overlay's pod spec asks for (testbed/kube/pod.py)."""
    pod = one(build(OVERLAY), kind, name)["spec"]["template"]["spec"]
    [container] = pod["containers"]
    process = kube.exporter if kind == "Deployment" else kube_netcheck
    assert process.proc is not None
    status = _process(process.proc.pid)
    ctx = pod["securityContext"]
    assert status["Uid"].split() == [str(ctx["runAsUser"])] * 4
    assert status["Gid"].split() == [str(ctx["runAsGroup"])] * 4
    assert status["Groups"].split() == sorted({str(ctx["runAsGroup"]), str(ctx.get("fsGroup", ctx["runAsGroup"]))})
    assert status["NoNewPrivs"] == "1" and int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 0
    root = Path(f"/proc/{process.proc.pid}/root")
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config_path = next(path for path, m in mounts.items() if m.get("subPath") == key)
    assert yaml.safe_load((root / config_path.lstrip("/")).read_text())["kubernetes"]["source"] == "in-cluster"
    env = dict(item.split("=", 1) for item in Path(f"/proc/{process.proc.pid}/environ").read_text().split("\0") if item)
    assert env["HONEYDUE_CONFIG"] == config_path
    options = {line.split()[4]: line.split()[5] for line in Path(f"/proc/{process.proc.pid}/mountinfo").read_text()
               .splitlines()}
    assert options["/"].split(",")[0] == "ro"  # readOnlyRootFilesystem
    if kind == "DaemonSet":
        assert env["NODE_NAME"] == NODE_NAMES[0]
    else:
        secrets = root / next(path for path, m in mounts.items() if m["name"] == "secrets").lstrip("/")
        files = sorted(secrets.iterdir())
        assert files and all(f.stat().st_mode & 0o777 == 0o440 and f.stat().st_gid == ctx["fsGroup"] for f in files)


# --- deploy/ through the real API server -------------------------------------------------------------
@pytest.mark.parametrize("path", [BASE, OVERLAY], ids=["base", "overlay"])
def test_kustomize_build_is_accepted_by_the_api_server(kube: Kube, path: Path) -> None:
    """`kustomize build` of the base and of the example overlay applied server-side (dry run) to the shared
    cluster, where honeyDue's namespace and the exporter's RBAC exist already (the real apply from an empty
    cluster: tests/test_kube_overlay.py)."""
    docs = build(path)
    kinds = sorted(d["kind"] for d in docs)
    secret = ["Secret"] if path == OVERLAY else []
    assert kinds == sorted(["ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "Deployment", "Namespace",
                            "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount", "ServiceAccount",
                            *secret]), kinds
    for doc in docs:
        applied = kube.cluster.apply(doc, dry_run=True, field_manager="kubectl")
        assert (applied["kind"], applied["metadata"]["name"]) == (doc["kind"], doc["metadata"]["name"])
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")["metadata"]["name"]
    assert config_map.startswith("honeydue-exporter-config-")  # the content hash that rolls the pods


# --- the API server hung or gone ----------------------------------------------------------------
def test_exporter_keeps_serving_while_the_api_server_hangs(kube: Kube, tmp_path: Path) -> None:
    """The `kubernetes` Service's endpoint stops answering (a TCP proxy in front of a real API server)."""
    cluster = kube.cluster
    proxy = FaultProxy((NODE_IPS[0], cluster.api_port))
    exporter: ExporterProcess | None = None
    recording: kube_alerts.Recorder | None = None
    try:
        exporter = start_exporter(cluster, tmp_path / "exporter", host="127.0.0.1", port=proxy.port)
        wait_metrics(exporter, Expect().value("honeydue_kube_api_up", 1).value(
            "honeydue_kube_control_plane_nodes_ready", 3), 20)
        recording = kube_alerts.record(exporter)
        recording.inject()
        proxy.set_mode("silent")
        e = Expect().value("honeydue_kube_api_up", 0)
        for resource, ns in (("nodes", ""), ("pods", "honeydue"), ("deployments", "kube-system"), ("apiservices", "")):
            e.value("honeydue_kube_resource_up", 0, resource=resource, namespace=ns)
            e.value("honeydue_kube_resource_error_info", 1, resource=resource, namespace=ns, reason="timeout")
        e.value("honeydue_probe_error_info", 1, probe="kubernetes_nodes", reason="timeout")
        e.value("honeydue_exporter_build_info", None)  # a label carries the version: only presence matters
        e.checks.pop()
        wait_metrics(exporter, e, 20)
        recording.mark_steady()
        slowest = 0.0
        for _ in range(20):  # scrapes are answered from memory while every API call hangs
            started = time.monotonic()
            exporter.metrics()
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 1.0, slowest
        assert exporter.get("/healthz")[0] == 200
        proxy.set_mode("refused")
        wait_metrics(exporter, Expect().value("honeydue_kube_api_up", 0).value(
            "honeydue_kube_resource_error_info", 1, resource="nodes", namespace="", reason="refused"), 20)
        proxy.set_mode("pass")
        wait_metrics(exporter, Expect().value("honeydue_kube_api_up", 1).value(
            "honeydue_kube_control_plane_nodes_ready", 3), 20)
    finally:
        if recording is not None:
            recording.stop()
        if exporter is not None:
            exporter.stop()
        proxy.close()
    # The API unanswered while the servers' etcd checks pass: one page, KubeAPIUnreachable, no quorum page.
    assert recording is not None
    kube_alerts.alerts_as_expected(recording, "node-list-failing", "10m", tmp_path)


# --- Alertmanager ----------------------------------------------------------------------------------
def test_alertmanager_config_checks() -> None:
    amtool = require_binary("amtool")
    out = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER / "alertmanager.yml")], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stdout + out.stderr
    full = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text())
    alone = yaml.safe_load((ALERTMANAGER / "inhibit-rules.yml").read_text())
    assert alone["inhibit_rules"] == full["inhibit_rules"]


def _post(url: str, body: Any) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_cordoned_node_inhibits_its_node_alerts(tmp_path: Path) -> None:
    """A real Alertmanager with the shipped config: a cordoned node's NotReady is muted, others are not."""
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={ALERTMANAGER / 'alertmanager.yml'}",
            f"--storage.path={tmp_path}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 15)
        n1, n2, _ = NODE_NAMES

        def alert(name: str, layer: str, **labels: str) -> dict[str, Any]:
            return {
                "labels": {"alertname": name, "layer": layer, "severity": "warning", **labels},
                "annotations": {"summary": name},
            }

        _post(
            f"http://127.0.0.1:{port}/api/v2/alerts",
            [
                alert("KubeNodeCordoned", "planned", node=n1),
                alert("HoneydueNodeNotReady", "node", node=n1),
                alert("KubeApiserverEtcdCheckFailing", "k3s", node=n1),
                alert("HoneydueNodeNotReady", "node", node=n2),
                # (not KubeEtcdQuorumLost: since issue 11 it mutes the cluster's other alerts itself)
                alert("KubeAPIUnreachable", "node"),
                alert("KubeNodeCordonedTooLong", "planned", node=n1),
            ],
        )
        deadline = time.monotonic() + 10
        state: dict[tuple[str, str], str] = {}
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/alerts", timeout=5) as response:
                alerts = json.loads(response.read())
            state = {(a["labels"]["alertname"], a["labels"].get("node", "")): a["status"]["state"] for a in alerts}
            if len(state) == 6 and "unprocessed" not in state.values():
                break
            time.sleep(0.2)
        assert state == {
            ("KubeNodeCordoned", n1): "active",
            ("HoneydueNodeNotReady", n1): "suppressed",
            ("KubeApiserverEtcdCheckFailing", n1): "suppressed",
            ("HoneydueNodeNotReady", n2): "active",
            ("KubeAPIUnreachable", ""): "active",
            ("KubeNodeCordonedTooLong", n1): "active",
        }
    finally:
        stop_process(proc)
