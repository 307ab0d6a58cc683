"""What this build is: version, git revision and Python version, for `honeydue_exporter_build_info`.

The revision comes from `exporter/_revision.py` when the image build wrote it (deploy/Dockerfile, build
argument REVISION), else from the git checkout the package runs from (`make run`), else "unknown": an
installed package has no repository to ask.
"""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from pathlib import Path

from exporter import __version__

UNKNOWN = "unknown"


@cache
def revision() -> str:
    try:
        from exporter._revision import REVISION  # type: ignore[import-not-found]  # written by the image build
    except ImportError:
        return _git_revision()
    return str(REVISION).strip() or UNKNOWN


def _git_revision() -> str:
    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / ".git").exists():
        return UNKNOWN
    try:
        out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) >= 7 else UNKNOWN


def labels() -> dict[str, str]:
    """The build_info labels."""
    return {"version": __version__, "revision": revision(), "python_version": platform.python_version()}
