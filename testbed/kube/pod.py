"""Run the exporter as a pod spec of the rendered overlay says, on this machine (no container runtime here).

The spec is the example overlay's own, rendered by kustomize (testbed.manifests), never a hand copy: its
container's args and env (the downward API's spec.nodeName included), its volume mounts at their paths
(the ConfigMap's file by subPath, the Secret's files with defaultMode and the fsGroup's group, the emptyDir as a
tmpfs of its sizeLimit), its service account's token where a pod has it, and its security context: the
process runs as runAsUser / runAsGroup with fsGroup as supplementary group, with no new privileges
(allowPrivilegeEscalation: false), every capability dropped, and the root filesystem read-only.

How: a private mount namespace (util-linux `unshare`, as root) in which the staged volume files are laid over
their directories (a read-only overlayfs, e.g. on /etc), tmpfs mounts stand for /run and the emptyDirs, `/` is
remounted read-only, and `setpriv` drops to the pod's user. The Python the image would hold is this
machine's: when its directory is not reachable by the pod's user (a 0700 /root), it alone is made visible.

What differs from a real pod, and why: the ConfigMap's data is the test's config (the ports and probes of the
test bed) in place of the overlay's production file; the pod shares the machine's network (many pods on one
loopback), so the exporter listens on a free port rather than 9817; seccomp's RuntimeDefault profile is not
applied (no runtime to supply one).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from testbed.kube.incluster import POD_SA_DIR
from testbed.kube.rest import JSON
from testbed.manifests import one
from testbed.paths import DEPLOY, REPO
from testbed.procs import require_binary

CONFIG_MAP_MODE, SECRET_MODE = 0o644, 0o644  # Kubernetes' defaultMode when a volume names none
SA_FILE_MODE = 0o644  # the kube-api-access projected volume's defaultMode (420)


@dataclass(frozen=True)
class PodProcess:
    """What to hand testbed.exporter.ExporterProcess: the wrapper, the container's env and its `run` args."""

    wrapper: tuple[str, ...]
    env: dict[str, str]
    run_args: tuple[str, ...]
    user: int
    groups: tuple[int, ...]


def entrypoint() -> list[str]:
    """The image's ENTRYPOINT (deploy/Dockerfile), as this machine runs it: the console script is `python -m exporter`."""
    found = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    assert found, "deploy/Dockerfile has no exec-form ENTRYPOINT"
    command = json.loads(found.group(1))
    assert command == ["honeydue-exporter"], command
    return [sys.executable, "-m", "exporter"]


def _mebibytes(quantity: str) -> str:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return f"{int(number) * (1024 if unit == 'Gi' else 1)}m"


def _stage(path: Path, data: bytes, mode: int, group: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chown(path, 0, group if group is not None else 0)
    path.chmod(mode)


def pod_process(docs: list[JSON], kind: str, name: str, workdir: Path, *, config_data: Mapping[str, str],
                service_account_dir: Path | None, node: str, host_ip: str | None = None) -> PodProcess:
    """The `kind`/`name` workload of the rendered `docs` as a process: its one container, its volumes staged in
    `workdir`, its ConfigMap's data replaced by `config_data` (key -> file text). `node` and `host_ip` are what
    the downward API gives it (spec.nodeName, status.hostIP)."""
    workload = one(docs, kind, name)
    pod = workload["spec"]["template"]["spec"]
    [container] = pod["containers"]
    pod_ctx, ctx = pod.get("securityContext") or {}, container.get("securityContext") or {}
    user = int(ctx.get("runAsUser", pod_ctx.get("runAsUser", 0)))
    group = int(ctx.get("runAsGroup", pod_ctx.get("runAsGroup", 0)))
    fs_group = pod_ctx.get("fsGroup")
    if pod_ctx.get("runAsNonRoot") or ctx.get("runAsNonRoot"):
        assert user != 0, f"{kind}/{name}: runAsNonRoot with user 0 would not start"
    stage = workdir / "pod-volumes"
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    script = ["set -e", "mount -t tmpfs -o mode=0755 pod-run /run"]
    if pod.get("automountServiceAccountToken", True) and service_account_dir is not None:
        assert pod.get("serviceAccountName"), f"{kind}/{name} names no ServiceAccount"
        for file in service_account_dir.iterdir():
            file.chmod(SA_FILE_MODE)
        script += [f"mkdir -p {POD_SA_DIR.replace('/var/run', '/run')}",
                   f"mount --bind {shlex.quote(str(service_account_dir))} {POD_SA_DIR.replace('/var/run', '/run')}"]
    overlaid: set[str] = set()
    empty_dirs: list[str] = []  # mounted last: an emptyDir on /tmp would hide the staged files (under /tmp here)
    for mount in container.get("volumeMounts") or []:
        volume, target = volumes[mount["name"]], mount["mountPath"]
        if "emptyDir" in volume:
            size = (volume["emptyDir"] or {}).get("sizeLimit")
            empty_dirs += _keep_under(target, len(empty_dirs), [
                f"mount -t tmpfs -o mode=1777{',size=' + _mebibytes(size) if size else ''} "
                f"pod-{mount['name']} {shlex.quote(target)}"])
            continue
        if "configMap" in volume:
            files = {key: text.encode() for key, text in config_data.items()}
            mode = int(volume["configMap"].get("defaultMode", CONFIG_MAP_MODE))
        elif "secret" in volume:
            secret = one(docs, "Secret", volume["secret"]["secretName"])
            files = {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}
            mode = int(volume["secret"].get("defaultMode", SECRET_MODE))
        else:
            raise NotImplementedError(f"{kind}/{name}: volume {mount['name']} is neither emptyDir, ConfigMap nor Secret")
        assert mount.get("readOnly") or "subPath" in mount, f"{target}: a writable {mount['name']} volume"
        base = stage / target.lstrip("/")
        if "subPath" in mount:
            _stage(base, files[mount["subPath"]], mode, fs_group)
        else:
            for key, data in files.items():
                _stage(base / key, data, mode, fs_group)
        overlaid.add(Path(target).parts[1])
    for top in sorted(overlaid):  # the staged files over the machine's directory, read-only, as the volumes are
        script.append(f"mount -t overlay pod-{top} -o lowerdir={shlex.quote(str(stage / top))}:/{top} /{top}")
    script += empty_dirs
    script += _python_reachable(user)
    if ctx.get("readOnlyRootFilesystem"):
        script.append("mount -o remount,bind,ro /")
    groups = tuple(dict.fromkeys([group, *([int(fs_group)] if fs_group is not None else [])]))
    setpriv = [require_binary("setpriv", "/usr/bin", "/bin"), f"--reuid={user}", f"--regid={group}",
               f"--groups={','.join(map(str, groups))}"]
    if ctx.get("allowPrivilegeEscalation") is False:
        setpriv.append("--no-new-privs")
    if "ALL" in ((ctx.get("capabilities") or {}).get("drop") or []):
        setpriv += ["--inh-caps=-all", "--bounding-set=-all"]
    assert not (ctx.get("capabilities") or {}).get("add"), "added capabilities are not emulated"
    script.append(f'exec {" ".join(map(shlex.quote, setpriv))} -- "$@"')
    unshare = require_binary("unshare", "/usr/bin", "/bin")
    wrapper = (unshare, "--mount", "--propagation", "private", "--", "sh", "-c", "\n".join(script), "pod")
    args = list(container.get("args") or [])
    assert not container.get("command") and args[:1] == ["run"], (container.get("command"), args)
    return PodProcess(wrapper, _env(container, node, host_ip), tuple(args[1:]), user, groups)


def _env(container: JSON, node: str, host_ip: str | None) -> dict[str, str]:
    env: dict[str, str] = {}
    downward = {"spec.nodeName": node, "status.hostIP": host_ip}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        field = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        value = downward.get(str(field))
        if value is None:
            raise NotImplementedError(f"env {item['name']}: only values, spec.nodeName and status.hostIP (when "
                                      "given) are emulated")
        env[item["name"]] = value
    return env


def _keep_under(target: str, index: int, mount: list[str]) -> list[str]:
    """`mount` (an emptyDir's tmpfs on `target`) without hiding what the process runs from: a checkout or a
    virtualenv under /tmp (CI's clone, test-latest's venv) is held aside first and put back on top."""
    needed = sorted({p for p in (REPO, Path(sys.prefix).resolve()) if p.is_relative_to(target)})
    needed = [p for p in needed if not any(p != q and p.is_relative_to(q) for q in needed)]
    holds = [f"/run/pod-keep-{index}-{i}" for i in range(len(needed))]
    before = [f"mkdir -p {h} && mount --bind {shlex.quote(str(p))} {h}" for p, h in zip(needed, holds, strict=True)]
    after = [f"mkdir -p {shlex.quote(str(p))} && mount --move {h} {shlex.quote(str(p))}"
             for p, h in zip(needed, holds, strict=True)]
    return before + mount + after


def _python_reachable(user: int) -> list[str]:
    """This machine's Python under a directory the pod's user may not enter (pyenv in a 0700 /root): hide that
    directory behind a tmpfs and put the Python installation (only it) back at its path."""
    prefix = Path(sys.base_prefix).resolve()
    for ancestor in [*reversed(prefix.parents), prefix][1:]:
        if ancestor.stat().st_mode & 0o001 or user == 0:
            continue
        hold = "/run/pod-python"
        quoted = shlex.quote(str(prefix))
        return [f"mkdir -p {hold}", f"mount --bind {quoted} {hold}",
                f"mount -t tmpfs -o mode=0755 pod-hidden {shlex.quote(str(ancestor))}",
                f"mkdir -p {quoted}", f"mount --move {hold} {quoted}"]
    assert os.access(sys.executable, os.X_OK)
    return []
