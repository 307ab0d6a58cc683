"""Real servers for tests: the launchers live in testbed.procs (the drill uses them too).

A missing binary skips on a developer machine but fails under CI (CI=true): CI must never pass by
skipping the parts that need real servers.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

from testbed import procs
from testbed.procs import (
    MissingBinary,
    PgBouncer,
    RedisServer,
    SilentPort,
    free_port,
    silent_port,
    stop_process,
    wait_for_port,
    wait_port_closed,
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(message: str) -> NoReturn:
    """A missing prerequisite: the test fails under CI (CI must run everything) and is skipped elsewhere."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


procs.on_missing = skip_or_fail


def require_binary(name: str, *extra_dirs: str) -> str:
    """Path of an executable; fails the test under CI when missing, skips elsewhere."""
    return procs.require_binary(name, *extra_dirs)


__all__ = [
    "IN_CI",
    "MissingBinary",
    "PgBouncer",
    "RedisServer",
    "SilentPort",
    "free_port",
    "require_binary",
    "silent_port",
    "skip_or_fail",
    "stop_process",
    "wait_for_port",
    "wait_port_closed",
]
