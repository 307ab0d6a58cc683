"""deploy/ checked offline: manifests against the Kubernetes 1.35 schema, the pod security facts, the
sample config through `check-config`, the Dockerfile with BuildKit's parser, `amtool check-config`,
`vmalert -dryRun` with the shipped flags, the vmagent jobs' relabeling through a real vmagent, and a
real Alertmanager running the example config (receivers swapped to loopback) delivering notifications
that carry the runbook link. No Docker engine or cluster exists here: the image is never built."""

from __future__ import annotations

import copy
import fnmatch
import glob
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dockerfile
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement

from testbed.alertmanager import Alertmanager, local_config
from testbed.exporter import ExporterProcess
from testbed.manifests import BASE, OVERLAY
from testbed.manifests import build as kustomize_build
from testbed.manifests import one as manifests_one
from testbed.receivers import SmtpSink, WebhookReceiver
from testbed.vm import VictoriaMetrics

from exporter.probes import nodata
from exporter.samples import declared_metrics
from tests.helpers.servers import free_port, require_binary, stop_process, wait_for_port

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SECRETS_DIR = "/etc/honeydue-exporter/secrets"
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "Namespace"}
HTTP_ROLES = {"public", "origin", "api_shallow", "api_deep", "admin", "b2", "registry", "obs_ingest"}
# Cloudflare's published ranges, https://www.cloudflare.com/ips-v4 and /ips-v6 (as of 2026-11).
CLOUDFLARE_RANGES = {
    "173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22", "141.101.64.0/18", "108.162.192.0/18",
    "190.93.240.0/20", "188.114.96.0/20", "197.234.240.0/22", "198.41.128.0/17", "162.158.0.0/15", "104.16.0.0/13",
    "104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22",
    "2400:cb00::/32", "2606:4700::/32", "2803:f800::/32", "2405:b500::/32", "2405:8100::/32", "2a06:98c0::/29",
    "2c0f:f248::/32",
}


# --- the manifests as `kustomize build` renders them (kustomize from tests/peers/kube) -----------------
@pytest.fixture(scope="module", params=["base", "overlay"])
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The base as it is, and the example overlay (its config, Secret and image) on top of it."""
    return kustomize_build(BASE if request.param == "base" else OVERLAY)


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    return manifests_one(docs, kind, name)


def test_every_manifest_validates_against_kubernetes_1_35(manifests: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in manifests)
    secret = ["Secret"] if any(d["kind"] == "Secret" for d in manifests) else []  # the overlay's secretGenerator
    assert kinds == sorted(
        ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "DaemonSet",
         "ServiceAccount", "Role", "RoleBinding", "PodDisruptionBudget", "ConfigMap", *secret]
    )
    assert manifests[0]["kind"] == "Namespace" and manifests[0]["metadata"]["name"] == "honeydue"
    for doc in manifests:
        kubernetes_validate.validate(doc, "1.35", strict=True)
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == "honeydue"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "honeydue-exporter", doc["kind"]
    # The validator is strict: a misspelt securityContext field is rejected.
    broken = copy.deepcopy(one(manifests, "Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.35", strict=True)


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc["spec"]["template"]["spec"])


def _assert_hardened(pod: dict[str, Any]) -> None:
    pod_ctx = pod["securityContext"]
    assert pod_ctx["runAsNonRoot"] is True
    assert pod_ctx["runAsUser"] > 0 and pod_ctx["runAsGroup"] > 0
    assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod.get("hostPID", False) is False
    for container in pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx.get("privileged", False) is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert (container["livenessProbe"]["httpGet"]["path"], container["readinessProbe"]["httpGet"]["path"]) == (
            "/healthz", "/readyz")
        assert container["ports"] == [{"name": "http-metrics", "containerPort": 9817, "protocol": "TCP"}]
        for env in container.get("env", []):  # no secret reaches the environment
            assert "secretKeyRef" not in env.get("valueFrom", {})
            assert not re.search(r"PASSWORD|TOKEN|SECRET", env["name"]), env["name"]
        assert not container.get("envFrom")


def _mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


def test_deployment_security_and_wiring(manifests: list[dict[str, Any]]) -> None:
    deployment = one(manifests, "Deployment", "honeydue-exporter")
    pod = _pod(deployment)
    _assert_hardened(pod)
    container = pod["containers"][0]
    assert container["args"] == ["run"]
    # Resources sized around the 80 MiB RSS budget: the request covers it, the limit leaves headroom.
    resources = container["resources"]
    assert 80 <= _mebibytes(resources["requests"]["memory"]) <= _mebibytes(resources["limits"]["memory"]) <= 256
    assert resources["requests"]["cpu"] and resources["limits"]["cpu"]
    # The ServiceAccount is the RBAC one.
    service_account = one(manifests, "ServiceAccount", "honeydue-exporter")
    assert pod["serviceAccountName"] == service_account["metadata"]["name"]
    binding = one(manifests, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "honeydue-exporter", "namespace": "honeydue"}]
    # Config: a ConfigMap file, HONEYDUE_CONFIG pointing at it.
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_mount = mounts["config"]
    assert env["HONEYDUE_CONFIG"] == config_mount["mountPath"]
    configmap = one(manifests, "ConfigMap", volumes["config"]["configMap"]["name"])
    assert config_mount["subPath"] in configmap["data"]
    # Secrets: a Secret volume, read-only, where every *_file of the config points; the overlay's secretGenerator
    # makes that Secret (its name with a content hash, which kustomize writes into the pod spec) with every key.
    assert volumes["secrets"]["secret"]["defaultMode"] == 0o440
    assert mounts["secrets"] == {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True}
    files = _secret_files(yaml.safe_load(configmap["data"][config_mount["subPath"]]))
    assert files and all(str(Path(f).parent) == SECRETS_DIR for f in files)
    secrets = [d for d in manifests if d["kind"] == "Secret"]
    if secrets:
        [secret] = secrets
        assert volumes["secrets"]["secret"]["secretName"] == secret["metadata"]["name"]
        assert re.fullmatch(r"honeydue-exporter-secrets-[a-z0-9]{10}", secret["metadata"]["name"])
        assert {Path(f).name for f in files} == set(secret["data"])
    else:
        assert volumes["secrets"]["secret"]["secretName"] == "honeydue-exporter-secrets"
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]  # group-readable secrets
    # Service selects exactly these pods on the named port.
    service = one(manifests, "Service")
    assert service["spec"]["ports"] == [{"name": "http-metrics", "port": 9817, "targetPort": "http-metrics", "protocol": "TCP"}]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # Defect 1: a pod on a node that goes NotReady or unreachable is rescheduled after 30 s, not the default
    # 300 s (the absence rule's window is 3 minutes); a rollout never runs two pods writing the same series.
    tolerations = {(t["key"], t["effect"]): t.get("tolerationSeconds") for t in pod["tolerations"]}
    assert tolerations == {("node.kubernetes.io/not-ready", "NoExecute"): 30,
                           ("node.kubernetes.io/unreachable", "NoExecute"): 30}
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    # The PDB covers the Deployment and cannot block a drain of its single replica.
    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"].get("maxUnavailable", 0) >= 1 or pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_netcheck_daemonset(manifests: list[dict[str, Any]]) -> None:
    daemonset = one(manifests, "DaemonSet", "honeydue-netcheck")
    pod = _pod(daemonset)
    _assert_hardened(pod)
    container = pod["containers"][0]
    assert container["args"] == ["run", "--mode", "netcheck"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    # It survives the faults it watches (docs/witnesses.md): on the host network it is scraped at its node's IP,
    # not over the overlay; it lists EndpointSlices from its own node's API server, not through the kube-proxy
    # rules of the `kubernetes` ClusterIP; its names still go through CoreDNS like a pod's.
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert env["KUBERNETES_SERVICE_HOST"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert env["KUBERNETES_SERVICE_PORT"]["value"] == "6443"
    assert one(manifests, "Deployment")["spec"]["template"]["spec"].get("hostNetwork", False) is False
    # Runs on every server node, tainted or not; no secrets; its token may only list EndpointSlices in its
    # namespace (tcp.discover finds the api pods there on every run, defect 4).
    tolerated = {t["key"] for t in pod["tolerations"] if t["operator"] == "Exists"}
    assert {"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"} <= tolerated
    assert pod["serviceAccountName"] == "honeydue-netcheck"
    role, binding = one(manifests, "Role", "honeydue-netcheck"), one(manifests, "RoleBinding", "honeydue-netcheck")
    assert role["rules"] == [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]}]
    assert binding["roleRef"]["name"] == "honeydue-netcheck"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "honeydue-netcheck", "namespace": "honeydue"}]
    assert not any("secret" in v for v in pod["volumes"])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert env["HONEYDUE_CONFIG"]["value"] == mount["mountPath"]
    configmap = one(manifests, "ConfigMap", next(v for v in pod["volumes"] if v["name"] == "config")["configMap"]["name"])
    assert mount["subPath"] in configmap["data"]
    labels = daemonset["spec"]["template"]["metadata"]["labels"]
    deployment_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert not one(manifests, "Service")["spec"]["selector"].items() <= labels.items()  # not behind the Service
    assert labels != deployment_labels


# --- the sample configuration ----------------------------------------------------------------------
def _secret_files(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k.endswith("_file") and isinstance(v, str)] + [
            f for v in node.values() for f in _secret_files(v)]
    if isinstance(node, list):
        return [f for v in node for f in _secret_files(v)]
    return []


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--config", str(path), "check-config"],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
    )


def test_base_config_needs_no_site_value(tmp_path: Path) -> None:
    """deploy/base's config serves as it is: no SITE marker, only the Redis password among the secrets (the
    overlay's Secret has it), and it passes check-config."""
    text = (BASE / "config.yml").read_text()
    assert "SITE" not in text and "PLACEHOLDER" not in text
    assert [Path(f).name for f in _secret_files(yaml.safe_load(text))] == ["redis-password"]
    (tmp_path / "redis-password").write_text("s3cret\n")
    local = tmp_path / "config.yml"
    local.write_text(text.replace(SECRETS_DIR, str(tmp_path)))
    out = check_config(local)
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout)["kubernetes"]["source"] == "in-cluster"
    for name in ("config.yml", "netcheck.yml"):
        assert "PLACEHOLDER" not in (OVERLAY / name).read_text()


def test_sample_config_passes_check_config(tmp_path: Path) -> None:
    """The example overlay's config: honeyDue's production shape."""
    text = (OVERLAY / "config.yml").read_text()
    raw = yaml.safe_load(text)
    names = sorted({Path(f).name for f in _secret_files(raw)})
    assert names == ["api-readonly-token", "obs-ingest-token", "obs-query-token", "postgres-password", "redis-password"]
    secrets = {name: f"s3cret-{name}-value" for name in names}
    for name, secret in secrets.items():
        (tmp_path / name).write_text(secret + "\n")
    local = tmp_path / "config.yml"
    local.write_text(text.replace(SECRETS_DIR, str(tmp_path)))
    out = check_config(local)
    assert out.returncode == 0, out.stderr
    for secret in secrets.values():
        assert secret not in out.stdout + out.stderr
    effective = yaml.safe_load(out.stdout)
    # honeyDue's production shape.
    assert effective["redis"]["url"].startswith("redis://redis.honeydue.svc")
    assert effective["redis"]["password"] == "********"
    pooler, direct = effective["postgres"]["pooler"], effective["postgres"]["direct"]
    assert pooler["sslmode"] == direct["sslmode"] == "require"
    assert "-pooler" in pooler["host"] and direct["host"] == pooler["host"].replace("-pooler", "")
    assert pooler["password"] == direct["password"] == "********"
    assert {t["role"] for t in effective["http"]["targets"]} == HTTP_ROLES
    assert {lookup["role"] for lookup in effective["dns"]["lookups"]} == {"cluster", "cluster_upstream", "public"}
    # Defect 5: an outside name asked of CoreDNS has its own role, so CoreDNS down is not "public DNS down".
    for lookup in effective["dns"]["lookups"]:
        assert (lookup["role"] == "public") == ("coredns" not in lookup["resolvers"]), lookup
    # Defect 10: Cloudflare's whole published list, IPv4 and IPv6, for A and AAAA answers.
    public = [lookup for lookup in effective["dns"]["lookups"] if lookup["role"] == "public"]
    assert {lookup["record_type"] for lookup in public} == {"A", "AAAA"}
    for lookup in public:
        assert set(lookup["expected_cidrs"]) == CLOUDFLARE_RANGES, lookup["name"]
    # Defect 11: the deep api check carries a read-only token and expects 200, not a 401 from the auth middleware.
    deep = next(target for target in effective["http"]["targets"] if target["role"] == "api_deep")
    assert deep["expected_status"] == [200] and deep["bearer_token"] == "********"
    assert [(t["host"], t["port"]) for t in effective["smtp"]["targets"]] == [("smtp.fastmail.com", 587)]
    assert effective["vmagent"]["url"] == "http://vmagent.honeydue.svc:8429/metrics"
    assert effective["kubernetes"]["source"] == "in-cluster"
    assert effective["mode"] == "full"
    assert set(effective["nodata"]["ignore"]) <= set(nodata.catalog_metrics())
    # The secrets really are read from those files: one missing file is a config error (exit 2).
    (tmp_path / "redis-password").unlink()
    missing = check_config(local)
    assert missing.returncode == 2 and "redis.password_file" in missing.stderr


@pytest.mark.parametrize("where", ["base", "overlay"])
def test_netcheck_config_passes_check_config(where: str) -> None:
    path = (BASE if where == "base" else OVERLAY) / "netcheck.yml"
    out = check_config(path)
    assert out.returncode == 0, out.stderr
    effective = yaml.safe_load(out.stdout)
    assert effective["mode"] == "netcheck"
    assert not _secret_files(yaml.safe_load(path.read_text()))
    roles = {t["role"] for t in effective["tcp"]["targets"]}
    # pod targets are discovered, never listed (defect 4); the api Service's ClusterIP is the site's
    assert roles == ({"essential"} if where == "base" else {"essential", "service"})
    assert effective["tcp"]["discover"] == [{"backend": "api", "namespace": "honeydue", "service": "api", "port": 8000}]
    assert effective["kubernetes"]["source"] == "in-cluster"
    essentials = {t["name"] for t in effective["tcp"]["targets"] if t["role"] == "essential"}
    assert {"redis", "kube-apiserver"} <= essentials
    assert ("postgres-pooler" in essentials) == (where == "overlay")
    assert not effective["redis"]["enabled"]


def test_obs_probe_config_and_scrape_job() -> None:
    """The obs box's own witness (deploy/obs): only HTTP targets, the public URL and one origin per node with its
    node label, no secret; its scrape job is the one the obs-side rules select, and vmagent accepts it."""
    obs = DEPLOY / "obs"
    out = check_config(obs / "obs-probe.yml")
    assert out.returncode == 0, out.stderr
    effective = yaml.safe_load(out.stdout)
    assert not _secret_files(yaml.safe_load((obs / "obs-probe.yml").read_text()))
    targets = effective["http"]["targets"]
    assert {t["role"] for t in targets} == {"public", "origin"}
    origins = [t for t in targets if t["role"] == "origin"]
    assert sorted(t["node"] for t in origins) == ["n1", "n2", "n3"]
    assert not effective["redis"]["enabled"] and effective["kubernetes"]["source"] == "off"
    # the exporter's own config probes the same origins, node by node
    exporter = [t for t in yaml.safe_load((OVERLAY / "config.yml").read_text())["http"]["targets"] if t["role"] == "origin"]
    assert [(t["node"], t["url"]) for t in exporter] == [(t["node"], t["url"]) for t in origins]
    scrape = obs / "scrape-obs-probe.yml"
    [job] = yaml.safe_load(scrape.read_text())["scrape_configs"]
    rules = "".join(p.read_text() for p in (REPO / "rules").glob("honeydue-*.rules.yml"))
    assert f'job="{job["job_name"]}"' in rules
    assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{effective['server']['port']}"]
    vmagent = require_binary("vmagent", "/usr/bin")
    checked = subprocess.run([vmagent, f"-promscrape.config={scrape}", "-promscrape.config.dryRun", "-loggerLevel=ERROR"],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr


# --- Dockerfile (parsed with BuildKit's parser; never built here) ----------------------------------
def _stages(path: Path) -> tuple[dict[str, str], list[list[Any]]]:
    """The ARGs before the first FROM (name -> default) and the stages' commands."""
    args: dict[str, str] = {}
    stages: list[list[Any]] = []
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "FROM":
            stages.append([])
        if not stages:
            assert command.cmd == "ARG", command.original
            name, _, default = command.value[0].partition("=")
            args[name] = default
            continue
        stages[-1].append(command)
    return args, stages


def test_dockerfile_multistage_slim_non_root(tmp_path: Path) -> None:
    args, stages = _stages(DEPLOY / "Dockerfile")
    assert len(stages) == 2
    # Both stages on the upstream slim image by default; tests/test_image.py builds on a local one (the ARG).
    assert args == {"PYTHON_IMAGE": "python:3.11-slim-bookworm"}
    for stage in stages:
        assert stage[0].value[0] == "${PYTHON_IMAGE}", stage[0].value
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", args["PYTHON_IMAGE"])
    build, final = stages
    assert build[0].value[1:] == ("AS", "build")
    by_cmd: dict[str, list[Any]] = {}
    for command in final:
        by_cmd.setdefault(command.cmd, []).append(command)
    # Final stage: only the built virtualenv is copied in, run as a numeric non-root user.
    assert [c.flags for c in by_cmd["COPY"]] == [("--from=build",)]
    assert "ADD" not in by_cmd
    user = by_cmd["USER"][-1].value[0]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0)
    deployment = yaml.safe_load((BASE / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)
    assert by_cmd["ENTRYPOINT"][0].value == ("honeydue-exporter",)
    assert by_cmd["EXPOSE"][0].value == ("9817",)
    assert "/healthz" in " ".join(by_cmd["HEALTHCHECK"][0].value)
    # No secret baked in anywhere.
    for command in build + final:
        if command.cmd in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"PASSWORD|TOKEN|SECRET|KEY", " ".join(command.value), re.I), command.original
    # The build stage copies paths that exist and .dockerignore does not exclude...
    ignored = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    sources = [src for c in build if c.cmd == "COPY" for src in c.value[:-1]]
    assert sources == ["scripts/uv-requirements.txt", "pyproject.toml", "uv.lock", "README.md", "exporter/"]
    for src in sources:
        assert (REPO / src).exists()
        assert not any(fnmatch.fnmatch(src.rstrip("/"), pattern) for pattern in ignored)
    # ...and those paths alone are enough to build the package with its console script.
    context = tmp_path / "context"
    context.mkdir()
    for src in sources:
        if src.endswith("/"):
            shutil.copytree(REPO / src, context / src, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (context / src).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / src, context / src)
    runs = [" ".join(c.value) for c in build if c.cmd == "RUN"]
    assert any("--require-hashes -r scripts/uv-requirements.txt" in r for r in runs), runs
    assert any("uv sync --locked" in r for r in runs), runs
    # The dependencies' layer comes before the code's COPY, so a code change does not re-download them.
    copies = [i for i, c in enumerate(build) if c.cmd == "COPY"]
    deps = next(i for i, c in enumerate(build) if c.cmd == "RUN" and "--no-install-project" in " ".join(c.value))
    code = next(i for i, c in enumerate(build) if c.cmd == "COPY" and c.value[0] == "exporter/")
    assert copies[1] < deps < code
    # The build stage's install, run on that context: exactly uv.lock's versions (from uv's cache, offline: the
    # venv step of `make test` filled it), the project itself not editable, and its console script works.
    venv = tmp_path / "image-venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_OFFLINE": "1"}
    out = subprocess.run([str(REPO / "scripts" / "uv.sh"), "sync", "--locked", "--no-editable", "--quiet",
                          "--directory", str(context)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    version = subprocess.run([str(venv / "bin" / "honeydue-exporter"), "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0 and version.stdout.strip(), version.stderr
    installed = subprocess.run([str(REPO / "scripts" / "uv.sh"), "pip", "freeze", "--python", str(venv / "bin" / "python")],
                               capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    locked = subprocess.run([str(REPO / "scripts" / "uv.sh"), "export", "--frozen", "--no-hashes", "--no-emit-project",
                             "--no-header", "--no-annotate", "--directory", str(context)],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    wanted = {str(r).split(";")[0] for r in map(Requirement, filter(None, locked.splitlines()))
              if r.marker is None or r.marker.evaluate()}
    assert {line for line in installed if not line.startswith("honeydue-exporter ")} == wanted
    shipped = {p.relative_to(next(venv.glob("lib/python3*/site-packages"))).as_posix()
               for p in next(venv.glob("lib/python3*/site-packages")).glob("exporter/**/*.py")}
    source = {p.relative_to(REPO).as_posix() for p in (REPO / "exporter").rglob("*.py")}
    assert shipped == source


# --- Alertmanager, vmalert, vmagent ----------------------------------------------------------------
ALERTMANAGER = DEPLOY / "alertmanager"


def test_amtool_check_config(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    out = subprocess.run([amtool, "check-config", str(ALERTMANAGER / "alertmanager.yml")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 templates" in out.stdout and "SUCCESS" in out.stdout
    full = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text())
    assert yaml.safe_load((ALERTMANAGER / "inhibit-rules.yml").read_text())["inhibit_rules"] == full["inhibit_rules"]
    # amtool does check: a template with a syntax error fails the same config.
    broken = tmp_path / "templates"
    broken.mkdir()
    (broken / "broken.tmpl").write_text('{{ define "x" }}{{ .Oops ')
    (tmp_path / "alertmanager.yml").write_text((ALERTMANAGER / "alertmanager.yml").read_text())
    bad = subprocess.run([amtool, "check-config", str(tmp_path / "alertmanager.yml")], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0


def _vmalert_flags() -> list[str]:
    compose = yaml.safe_load((DEPLOY / "vmalert" / "docker-compose.vmalert.yml").read_text())
    return list(compose["services"]["vmalert"]["command"])


def test_vmalert_dry_run_with_the_shipped_flags(tmp_path: Path) -> None:
    vmalert = require_binary("vmalert", "/usr/bin")
    flags = _vmalert_flags()
    names = {f.split("=", 1)[0] for f in flags}
    assert {"-rule", "-datasource.url", "-notifier.url", "-external.url", "-evaluationInterval"} <= names
    rule_flag = next(f for f in flags if f.startswith("-rule="))
    pattern = rule_flag.split("=", 1)[1]
    assert pattern.endswith("/*.yml")
    # The glob picks every generated rules file, the obs-side one included, and no unit test.
    matched = sorted(Path(p).name for p in glob.glob(str(REPO / "rules" / Path(pattern).name)))
    assert "honeydue-obs-side.rules.yml" in matched
    assert matched == sorted(p.name for p in (REPO / "rules").glob("honeydue-*.rules.yml"))
    local = [f if f != rule_flag else f"-rule={REPO / 'rules' / Path(pattern).name}" for f in flags]

    def dry_run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([vmalert, *args, "-dryRun", "-loggerLevel=ERROR"], capture_output=True, text=True, timeout=60)

    out = dry_run(local)
    assert out.returncode == 0, out.stderr
    # Negative control: the same flags over a copy with one broken expression fail.
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules, ignore=shutil.ignore_patterns("tests"))
    obs = rules / "honeydue-obs-side.rules.yml"
    obs.write_text(obs.read_text().replace('absent_over_time(up{job="honeydue-netcheck"}[2m])', "absent_over_time("))
    bad = dry_run([f if not f.startswith("-rule=") else f"-rule={rules}/*.yml" for f in local])
    assert bad.returncode != 0 and "honeydue-obs-side" in bad.stderr


SCRAPE = DEPLOY / "vmagent" / "scrape-honeydue-exporter.yml"


def exported_labels() -> set[str]:
    """Every label name the exporter itself puts on a metric (every metric it declares)."""
    return {label for spec in declared_metrics().values() for label in spec.labels}


def test_vmagent_jobs_never_rename_exporter_labels() -> None:
    vmagent = require_binary("vmagent", "/usr/bin")
    out = subprocess.run([vmagent, f"-promscrape.config={SCRAPE}", "-promscrape.config.dryRun", "-loggerLevel=ERROR"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    jobs = yaml.safe_load(SCRAPE.read_text())["scrape_configs"]
    assert [j["job_name"] for j in jobs] == ["honeydue-exporter", "honeydue-netcheck"]
    ours = exported_labels()
    assert {"node", "namespace", "pod"} <= ours  # the labels the rules match and join on
    for job in jobs:
        assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["honeydue"]}}]
        targets = {r["target_label"] for r in job["relabel_configs"] if "target_label" in r}
        assert not targets & ours, targets & ours
        assert not job.get("honor_labels", False)


def _as_static(job: dict[str, Any], targets: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """The shipped job with kubernetes_sd_configs replaced by static targets carrying the same __meta labels."""
    job = copy.deepcopy(job)
    del job["kubernetes_sd_configs"]
    job["scrape_interval"] = "1s"
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [{"targets": [address], "labels": labels} for address, labels in targets]
    return job


def _meta(component: str, node: str, pod: str, port_name: str = "http-metrics") -> dict[str, str]:
    return {
        "__meta_kubernetes_namespace": "honeydue",
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_node_name": node,
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "honeydue-exporter",
        "__meta_kubernetes_pod_label_app_kubernetes_io_component": component,
    }


def test_vmagent_relabeling_keeps_the_node_label(tmp_path: Path, victoria: VictoriaMetrics) -> None:
    """A real vmagent runs the shipped jobs against a real netcheck exporter (NODE_NAME=n2) and a full one."""
    listener = free_port()
    import socket

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listener))
    server.listen(16)
    netcheck_config = tmp_path / "netcheck.yml"
    netcheck_config.write_text(yaml.safe_dump({
        "mode": "netcheck", "redis": {"enabled": False}, "postgres": {"pooler": {"enabled": False}, "direct": {"enabled": False}},
        "kubernetes": {"source": "off"},
        "tcp": {"interval": 1, "timeout": 0.5, "targets": [{"name": "redis", "address": f"127.0.0.1:{listener}"}]},
    }))
    exporters = [
        ExporterProcess(env={"NODE_NAME": "n2"}, config_path=netcheck_config, log_path=tmp_path / "netcheck.log"),
        ExporterProcess(
            env={"HONEYDUE_REDIS__ENABLED": "false", "HONEYDUE_POSTGRES__POOLER__ENABLED": "false",
                 "HONEYDUE_POSTGRES__DIRECT__ENABLED": "false", "HONEYDUE_KUBERNETES__SOURCE": "off"},
            log_path=tmp_path / "exporter.log"),
    ]
    vmagent_proc = None
    try:
        for exporter in exporters:
            exporter.start()
        netcheck, full = (f"127.0.0.1:{e.port}" for e in exporters)
        exporter_job, netcheck_job = yaml.safe_load(SCRAPE.read_text())["scrape_configs"]
        config = {"scrape_configs": [
            _as_static(exporter_job, [
                (full, _meta("exporter", "n1", "honeydue-exporter-7d9f-abcde")),
                (netcheck, _meta("netcheck", "n2", "honeydue-netcheck-x1")),         # wrong job: dropped
            ]),
            _as_static(netcheck_job, [
                (netcheck, _meta("netcheck", "n2", "honeydue-netcheck-x1")),
                (full, _meta("netcheck", "n3", "honeydue-netcheck-x2", port_name="other")),  # wrong port: dropped
            ]),
        ]}
        scrape = tmp_path / "scrape.yml"
        scrape.write_text(yaml.safe_dump(config))
        binary = require_binary("vmagent", "/usr/bin")
        port = free_port()
        log = (tmp_path / "vmagent.log").open("ab")
        vmagent_proc = subprocess.Popen(
            [binary, f"-httpListenAddr=127.0.0.1:{port}", f"-remoteWrite.url={victoria.write_url}",
             f"-promscrape.config={scrape}", f"-remoteWrite.tmpDataPath={tmp_path / 'queue'}",
             "-remoteWrite.flushInterval=200ms", "-loggerLevel=ERROR"],
            stdout=log, stderr=log,
        )
        wait_for_port(port, 20)
        tcp = victoria.wait_for_series('honeydue_tcp_up{target="redis"}', 30)
        build = victoria.wait_for_series("honeydue_exporter_build_info", 30)
        deadline = time.monotonic() + 15
        while len(build) < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
            build = victoria.query("honeydue_exporter_build_info")
        by_job = {(s["metric"]["job"], s["metric"]["instance"]): s["metric"] for s in build}
        assert set(by_job) == {("honeydue-exporter", "honeydue-exporter"), ("honeydue-netcheck", "netcheck-n2")}
        assert by_job[("honeydue-exporter", "honeydue-exporter")]["kubernetes_node"] == "n1"
        assert by_job[("honeydue-netcheck", "netcheck-n2")]["kubernetes_pod_name"] == "honeydue-netcheck-x1"
        # The exporter's own `node` label arrives as `node`, never as exported_node.
        assert [s["metric"]["node"] for s in tcp] == ["n2"]
        assert tcp[0]["metric"]["job"] == "honeydue-netcheck" and tcp[0]["value"][1] == "1"
        # Stable identity: the pod and node stay on `up` and build_info only, never on data series.
        assert "kubernetes_pod_name" not in tcp[0]["metric"] and "kubernetes_node" not in tcp[0]["metric"]
        assert tcp[0]["metric"]["instance"] == "netcheck-n2" and tcp[0]["metric"]["kubernetes_namespace"] == "honeydue"
        assert victoria.query('{__name__=~"honeydue_.+", __name__!="honeydue_exporter_build_info", '
                              'kubernetes_pod_name!=""}') == []
        assert victoria.query('{__name__=~"honeydue_.+", __tmp_keep!=""}') == []
        ups = {s["metric"]["job"]: s["metric"] for s in victoria.query('up{job=~"honeydue-.+"}')}
        assert ups["honeydue-exporter"]["kubernetes_pod_name"] == "honeydue-exporter-7d9f-abcde"
        assert victoria.query('{__name__=~"honeydue_.+", exported_node!=""}') == []
        assert victoria.query('{__name__=~"honeydue_.+", exported_namespace!=""}') == []
    finally:
        if vmagent_proc is not None:
            stop_process(vmagent_proc)
        for exporter in exporters:
            exporter.stop()
        server.close()


# --- a real Alertmanager with the example config ---------------------------------------------------
def shipped_alert(name: str) -> dict[str, Any]:
    """An alert as vmalert would send it: labels and annotations of the generated rule, templates filled."""
    for path in sorted((REPO / "rules").glob("honeydue-*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == name:
                    annotations = {k: re.sub(r"\{\{.*?\}\}", "X", v) for k, v in rule["annotations"].items()}
                    return {"labels": {"alertname": name, **rule["labels"]}, "annotations": annotations,
                            "generatorURL": "http://127.0.0.1/vmalert"}
    raise KeyError(name)


def _resolve(alert: dict[str, Any]) -> dict[str, Any]:
    return {**alert, "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))}


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[tuple[Alertmanager, WebhookReceiver, SmtpSink]]:
    webhook, smtp = WebhookReceiver(), SmtpSink()
    webhook.start()
    smtp.start()
    manager = Alertmanager(
        local_config(webhook.url, smtp=f"127.0.0.1:{smtp.port}",
                     timings={"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}),
        tmp_path,
    )
    try:
        manager.start()
        yield manager, webhook, smtp
    finally:
        manager.stop()
        webhook.stop()
        smtp.stop()


def test_alertmanager_routes_and_templates(pipeline: tuple[Alertmanager, WebhookReceiver, SmtpSink]) -> None:
    manager, webhook, smtp = pipeline
    critical = shipped_alert("NeonPoolerDownDirectUp")
    warning = shipped_alert("ResidenceIdsCacheStale")  # not NeonDirectEndpointDown: the page would mute it
    watchdog = shipped_alert("Watchdog")
    assert (critical["labels"]["severity"], warning["labels"]["severity"]) == ("critical", "warning")
    assert warning["annotations"]["recovery"] and warning["annotations"]["recovery_url"]
    manager.post([critical, warning, watchdog])

    # critical -> pager webhook, carrying the runbook link of the right chapter section.
    page = webhook.wait_for("pager", "NeonPoolerDownDirectUp")
    [paged] = page["alerts"]
    assert paged["annotations"]["runbook_url"] == critical["annotations"]["runbook_url"]
    section = "16-failure-modes.md#neon-pooler-endpoint-unreachable-but-direct-endpoint-up"
    assert paged["annotations"]["runbook_url"].endswith(section)
    # Watchdog -> dead-man's switch, whatever its severity.
    webhook.wait_for("deadmansswitch", "Watchdog")
    assert not [p for p, payload in webhook.posts if p != "deadmansswitch" and any(
        a["labels"]["alertname"] == "Watchdog" for a in payload["alerts"])]

    # warning -> ticket email rendered by templates/honeydue.tmpl: summary, description, runbook first.
    mail = smtp.wait_for("ops@example.com", "ResidenceIdsCacheStale")
    assert str(mail["Subject"]).startswith("[FIRING:1] ResidenceIdsCacheStale (warning)")
    parts = {part.get_content_type(): part.get_payload(decode=True).decode() for part in mail.walk() if not part.is_multipart()}
    lines = parts["text/plain"].strip().splitlines()
    notes = warning["annotations"]
    assert lines[:5] == [notes["summary"], notes["description"], f"Runbook: {notes['runbook_url']}",
                         f"Dashboard: {notes['dashboard_url']}", f"Recovery: {notes['recovery']} {notes['recovery_url']}"]
    assert f'href="{notes["runbook_url"]}"' in parts["text/html"]
    assert f'href="{notes["dashboard_url"]}"' in parts["text/html"]
    assert not [p for p, payload in webhook.posts if any(a["labels"]["alertname"] == "ResidenceIdsCacheStale"
                                                         for a in payload["alerts"])]

    # info -> the low-noise digest, not the pager or the ticket address.
    info = _first_info_alert()
    manager.post([info])
    digest = smtp.wait_for("ops-digest@example.com", info["labels"]["alertname"])
    assert "Runbook: " + info["annotations"]["runbook_url"] in digest.get_payload(0).get_payload(decode=True).decode()

    # Resolution reaches the pager too.
    manager.post([_resolve(critical)])
    resolved = webhook.wait_for("pager", "NeonPoolerDownDirectUp", status="resolved")
    assert resolved["status"] == "resolved"


def _first_info_alert() -> dict[str, Any]:
    for path in sorted((REPO / "rules").glob("honeydue-*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("labels", {}).get("severity") == "info" and "route" not in rule["labels"]:
                    return shipped_alert(rule["alert"])
    raise KeyError("no info alert")


def test_a_cordon_mutes_its_nodes_tickets_never_a_page(
    pipeline: tuple[Alertmanager, WebhookReceiver, SmtpSink],
) -> None:
    """Maintenance (issue 21, finding 8): while n2 is cordoned, n2's tickets are muted, but not n2's critical
    alerts, not another node's tickets, and not alerts without a node."""
    manager, _, _ = pipeline

    def on(name: str, node: str) -> dict[str, Any]:
        alert = shipped_alert(name)
        alert["labels"] = alert["labels"] | {"node": node}
        return alert

    expected = {
        ("KubeNodeCordoned", "n2"): "active",
        ("EssentialTcpPathUnreachable", "n2"): "active",  # critical: never muted by a cordon
        ("KubeNodeDiskPressure", "n2"): "suppressed",  # a ticket of the cordoned node
        ("KubeNodeDiskPressure", "n1"): "active",  # another node's ticket
    }
    manager.post([on("KubeNodeCordoned", "n2")])  # the source first, as in life
    assert manager.states(1) == {"KubeNodeCordoned": "active"}
    manager.post([on("EssentialTcpPathUnreachable", "n2"), on("KubeNodeDiskPressure", "n2"),
                  on("KubeNodeDiskPressure", "n1")])
    deadline = time.monotonic() + 15
    while True:
        states = {(a["labels"]["alertname"], a["labels"].get("node", "")): a["status"]["state"]
                  for a in manager.alerts()}
        if states == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert states == expected


def test_local_config_only_swaps_receivers() -> None:
    """The helper other tests use keeps the shipped routing tree and inhibit rules verbatim."""
    shipped = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text())
    local = local_config("http://127.0.0.1:1")
    assert local["route"] == shipped["route"] and local["inhibit_rules"] == shipped["inhibit_rules"]
    assert [r["name"] for r in local["receivers"]] == [r["name"] for r in shipped["receivers"]]
    for receiver in local["receivers"]:
        url = receiver["webhook_configs"][0]["url"]
        assert urllib.parse.urlsplit(url).hostname == "127.0.0.1" and url.endswith("/" + receiver["name"])
    assert not [k for k in local["global"] if k.startswith("smtp_")]
