"""deploy/Dockerfile built and run (issue 22, item 4), on a base assembled from Debian packages
(tests/helpers/image.py: no registry can be pulled from here; the Dockerfile keeps its upstream base for users).

The image runs as the overlay's pod spec runs it: read-only root filesystem, the pod's runAsUser/runAsGroup and
fsGroup, no new privileges, every capability dropped, the config and Secret mounted read-only where the pod
has them, /tmp a small tmpfs. It then serves /metrics with a real Redis up, the process and build_info series
(the revision given at build time), passes promtool, refuses writes to its filesystem, and stops on SIGTERM
within the pod's grace period. Slow: the first run builds the base (about 40 s) and the image (about 2 min);
later runs reuse the per-user cache.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from testbed.exporter import parse_metrics
from testbed.manifests import build, one

from tests.helpers.image import Podman, base_image, build_context, cache_dir
from tests.helpers.servers import RedisServer, free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
IMAGE = "localhost/honeydue-exporter:test"
BUILD_STAGE = "localhost/honeydue-exporter-build:test"


@pytest.fixture(scope="module")
def podman() -> Podman:
    return Podman(cache_dir())


@pytest.fixture(scope="module")
def revision() -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def image(podman: Podman, revision: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    started = time.monotonic()
    base = base_image(podman)
    based = time.monotonic()
    context = build_context(REPO, tmp_path_factory.mktemp("context"))
    args = ["build", "--network", "host", "--pull=never", "--format", "docker", "--build-arg", f"PYTHON_IMAGE={base}",
            "--build-arg", f"REVISION={revision}", "-f", str(context / "Dockerfile")]
    # The build stage tagged too: its layers (the dependencies' above all) stay the next run's cache when the
    # prune below drops the previous runs' layers.
    podman.run(*args, "--target", "build", "-t", BUILD_STAGE, str(context), timeout=1800)
    podman.run(*args, "-t", IMAGE, str(context), timeout=1800)
    podman.run("image", "prune", "-f")
    size = int(podman.run("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    print(f"\nimage: base {based - started:.1f}s, build {time.monotonic() - based:.1f}s, "
          f"size {size / 2**20:.0f} MiB")
    return IMAGE


def pod_flags(tmp_path: Path) -> tuple[list[str], Path, Path]:
    """podman flags for the overlay Deployment's pod: its securityContext and its volume mounts (the config file
    and the Secret's files staged as the kubelet would: the Secret 0440 with the fsGroup's group)."""
    import base64
    import os

    docs = build()
    pod = one(docs, "Deployment", "honeydue-exporter")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    pod_ctx, ctx = pod["securityContext"], container["securityContext"]
    flags = ["--user", f"{pod_ctx['runAsUser']}:{pod_ctx['runAsGroup']}", "--group-add", str(pod_ctx["fsGroup"])]
    if ctx["readOnlyRootFilesystem"]:
        flags.append("--read-only")
    if ctx["allowPrivilegeEscalation"] is False:
        flags += ["--security-opt", "no-new-privileges"]
    flags += [f"--cap-drop={cap}" for cap in ctx["capabilities"]["drop"]]
    assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}  # podman applies its default profile
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    secret = one(docs, "Secret", volumes["secrets"]["secret"]["secretName"])
    for key, value in secret["data"].items():
        path = secret_dir / key
        path.write_bytes(base64.b64decode(value))
        os.chown(path, 0, pod_ctx["fsGroup"])
        path.chmod(volumes["secrets"]["secret"]["defaultMode"])
    config = tmp_path / "config.yml"
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            size = volume["emptyDir"]["sizeLimit"].removesuffix("Mi")
            flags += ["--tmpfs", f"{mount['mountPath']}:size={size}m,mode=1777"]
        elif "configMap" in volume:
            flags += ["-v", f"{config}:{mount['mountPath']}:ro"]
        else:
            flags += ["-v", f"{secret_dir}:{mount['mountPath']}:ro"]
    flags += [f"--env={e['name']}={e['value']}" for e in container["env"] if "value" in e]
    return flags, config, secret_dir


@pytest.fixture
def container(podman: Podman, image: str, tmp_path: Path) -> Iterator[tuple[str, int, float]]:
    redis = RedisServer()
    redis.start()
    port = free_port()
    flags, config, _ = pod_flags(tmp_path)
    config.write_text(yaml.safe_dump({
        "server": {"listen_address": "127.0.0.1", "port": port},
        "redis": {"url": redis.url, "interval": 2, "timeout": 1},
        "postgres": {"pooler": {"enabled": False}, "direct": {"enabled": False}},
        "kubernetes": {"source": "off"},
    }))
    config.chmod(0o644)
    name = f"honeydue-exporter-test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    try:
        podman.run("run", "-d", "--name", name, "--network", "host", *flags, image)
        yield name, port, started
    finally:
        podman.run("rm", "-f", "-t", "2", name, check=False)
        redis.stop()


def startup(podman: Podman, name: str) -> str:
    """The process's own start: from the container's start to the exporter's "listening" log line (a figure for
    the notes, not asserted)."""
    import datetime
    import json

    started = podman.run("inspect", "--format", "{{.State.StartedAt}}", name).stdout.strip()
    lines = [json.loads(line) for line in podman.run("logs", name).stderr.splitlines() if line.startswith("{")]
    try:
        listening = next(line["time"] for line in lines if "listening on" in line["message"])
        begin = datetime.datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", started.split(" +")[0].replace(" ", "T")))
        end = datetime.datetime.fromisoformat(listening.replace("Z", ""))
    except (StopIteration, ValueError) as exc:
        return f"start not measured ({type(exc).__name__}: {started!r})"
    return f"listening {(end - begin).total_seconds():.2f}s after the container started"


def test_the_image_runs_read_only_as_the_pod_and_serves_metrics(podman: Podman, container: tuple[str, int, float],
                                                                revision: str, promtool: str) -> None:
    import urllib.request

    name, port, started = container

    def get(path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                return response.status, response.read()
        except OSError:
            return 0, b""

    deadline = time.monotonic() + 120
    while get("/readyz")[0] != 200:
        assert time.monotonic() < deadline, podman.run("logs", name, check=False).stderr
        time.sleep(0.2)
    ready = time.monotonic() - started
    status, body = get("/metrics")
    assert status == 200
    metrics = parse_metrics(body.decode())
    assert metrics[("honeydue_redis_up", frozenset())] == 1
    assert metrics[("process_resident_memory_bytes", frozenset())] > 0
    [build_info] = [dict(labels) for (n, labels) in metrics if n == "honeydue_exporter_build_info"]
    assert build_info["revision"] == revision and build_info["python_version"].startswith("3.11.")
    lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert lint.returncode == 0 and lint.stdout == lint.stderr == b"", lint.stdout + lint.stderr
    # As the pod's user, on a read-only filesystem, its Secret readable through the fsGroup only.
    ids = podman.run("exec", name, "python", "-c", "import os; print(os.getuid(), os.getgid(), sorted(os.getgroups()))")
    assert ids.stdout.split() == ["10001", "10001", "[10001]"], ids.stdout
    write = podman.run("exec", name, "python", "-c", "open('/opt/honeydue-exporter/x', 'w')", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    secret = podman.run("exec", name, "python", "-c",
                        "print(open('/etc/honeydue-exporter/secrets/redis-password').read().strip())")
    assert secret.stdout.strip().startswith("example-redis-password")
    labels = podman.run("image", "inspect", "--format", '{{index .Labels "org.opencontainers.image.revision"}}', IMAGE)
    assert labels.stdout.strip() == revision
    print(f"\ncontainer: ready {ready:.1f}s after `podman run`; {startup(podman, name)}")
    # SIGTERM (podman stop) ends it cleanly within the pod's terminationGracePeriodSeconds (10).
    stopping = time.monotonic()
    podman.run("stop", "-t", "10", name)
    took = time.monotonic() - stopping
    state = yaml.safe_load(podman.run("inspect", "--format", "{{json .State}}", name).stdout)
    assert state["ExitCode"] == 0 and took < 10, (state, took)
    logs = podman.run("logs", name).stderr
    assert "Traceback" not in logs and '"message": "stopped"' in logs
