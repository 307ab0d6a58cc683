"""Build and run deploy/Dockerfile here, where no registry can be pulled from.

The Dockerfile's base (`python:3.11-slim-bookworm`, its PYTHON_IMAGE build argument) is replaced by one
assembled from Debian packages: `mmdebstrap --variant=minbase` of bookworm with python3, pip, passwd,
ca-certificates and netbase, `/usr/local/bin/python3` linked to Debian's python3 (the upstream image's path the
Dockerfile uses), imported with `podman import`. The machine's own CA certificates are added to that base and
pip/uv told to use the system store (PIP_BREAK_SYSTEM_PACKAGES, UV_SYSTEM_CERTS): the build installs uv and
uv.lock's packages from PyPI, which this machine reaches through a TLS-inspecting proxy. podman runs with runc
and a containers.conf without default ulimits and with cgroupfs (crun refuses this machine's hybrid cgroups;
the default nproc ulimit cannot be raised here), on the kernel's overlay storage driver (as root; measured here:
a build from a cached base 30 s, a build of unchanged inputs 5 s, where vfs, which copies every layer whole,
took 140-230 s and about 180 s even when every step came from the cache). HONEYDUE_IMAGE_STORAGE_DRIVER=vfs
chooses vfs where overlay is not available.

Cached per user, like the Go peers (scripts/go-peers.sh): the base tarball and podman's storage (the base image
and the build's layers) live in ~/.cache/honeydue-exporter/image (HONEYDUE_IMAGE_CACHE moves it), keyed by the
recipe, so a warm run only rebuilds the layers whose inputs changed. Each build prunes the previous builds'
dangling layers.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from testbed.procs import require_binary

BASE_PACKAGES = ("python3", "python3-pip", "passwd", "ca-certificates", "netbase")
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
CONTEXT_MTIME = 1_700_000_000
CONTAINERS_CONF = """[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
"""


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "honeydue-exporter" / "image"
    return Path(os.environ.get("HONEYDUE_IMAGE_CACHE") or default)


def _recipe() -> tuple[list[str], str]:
    """The mmdebstrap command (without its output) and a stamp of everything the base depends on."""
    hooks = ['ln -s /usr/bin/python3 "$1/usr/local/bin/python3" && ln -s python3 "$1/usr/local/bin/python"',
             f'cp {LOCAL_CAS}/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null; '
             'chroot "$1" update-ca-certificates']
    command = ["mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
               *(f"--customize-hook={hook}" for hook in hooks), "bookworm"]
    digest = hashlib.sha256("\0".join(command).encode())
    for ca in sorted(LOCAL_CAS.glob("*.crt")):
        digest.update(ca.read_bytes())
    return command, digest.hexdigest()[:16]


@dataclass
class Podman:
    """podman with the per-user storage, runc and the containers.conf this machine needs."""

    root: Path
    driver: str = field(default_factory=lambda: os.environ.get("HONEYDUE_IMAGE_STORAGE_DRIVER", "overlay"))

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "containers.conf").write_text(CONTAINERS_CONF)
        self.binary = require_binary("podman", "/usr/bin")
        require_binary("runc", "/usr/sbin", "/usr/bin")

    def command(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root / f"storage-{self.driver}"),
                "--runroot", str(self.root / f"run-{self.driver}"), "--storage-driver", self.driver, *args]

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CONTAINERS_CONF": str(self.root / "containers.conf")}
        out = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout, env=env)
        if check and out.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args[:2])}: {out.stderr.strip()[-2000:]}")
        return out

    def exists(self, image: str) -> bool:
        return self.run("image", "exists", image, check=False).returncode == 0


def base_image(podman: Podman) -> str:
    """The local stand-in for python:3.11-slim-bookworm, built (about 30-50 s) and imported once per recipe."""
    command, stamp = _recipe()
    tag = f"localhost/honeydue-test-python:bookworm-{stamp}"
    if podman.exists(tag):
        return tag
    require_binary("mmdebstrap", "/usr/bin")
    tarball = podman.root / f"base-{stamp}.tar"
    if not tarball.is_file():
        for old in podman.root.glob("base-*"):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        partial = podman.root / f"base-{stamp}.partial.tar"  # mmdebstrap picks its output format by the suffix
        out = subprocess.run([*command, str(partial)], capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"mmdebstrap: {out.stderr.strip()[-2000:]}")
        partial.rename(tarball)
    podman.run("import", "--change", "ENV PIP_BREAK_SYSTEM_PACKAGES=1", "--change", "ENV UV_SYSTEM_CERTS=1",
               "--change", 'CMD ["python3"]', str(tarball), tag)
    return tag


def build_context(repo: Path, destination: Path) -> Path:
    """Only what the Dockerfile copies (its COPY set; tests/test_deploy.py checks it is that), so the build
    cannot use anything else of the checkout."""
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(repo / name, destination / name)
    (destination / "scripts").mkdir()
    shutil.copy(repo / "scripts" / "uv-requirements.txt", destination / "scripts" / "uv-requirements.txt")
    shutil.copytree(repo / "exporter", destination / "exporter", ignore=shutil.ignore_patterns("__pycache__",
                                                                                                "_revision.py"))
    shutil.copy(repo / "deploy" / "Dockerfile", destination / "Dockerfile")
    # One timestamp for every file: podman's layer cache keys a COPY by the files' metadata too, and a fresh clone
    # (CI) or copy gives new ones each time, which would rebuild every layer from the first COPY on.
    for path in [destination, *destination.rglob("*")]:
        os.utime(path, (CONTEXT_MTIME, CONTEXT_MTIME), follow_symlinks=False)
    return destination
