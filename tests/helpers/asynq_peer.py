"""The real Asynq as a test peer: tests/peers/cmd/asynqpeer, built by scripts/go-peers.sh.

It enqueues with Asynq's client, runs Asynq's server and scheduler, and prints Asynq's own Inspector view
as JSON: the truth the exporter's Asynq metrics are compared with.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.drill.procs import stop_process
from tests.helpers.servers import require_binary

PEERS_BIN = Path(__file__).resolve().parent.parent / "peers" / "bin"


def binary() -> str:
    """The built peer; missing means scripts/go-peers.sh has not run (make test runs it)."""
    return require_binary("asynqpeer", str(PEERS_BIN))


@dataclass
class AsynqPeer:
    redis_addr: str
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 30) -> str:
        out = subprocess.run([binary(), *args[:1], "-redis", self.redis_addr, *args[1:]],
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"asynqpeer {args[0]} exited {out.returncode}: {out.stderr.strip()}")
        return out.stdout

    def enqueue(self, queue: str, count: int = 1, **opts: Any) -> dict[str, int]:
        """opts become flags: do="fail", delay="1h", max_retry=0, unique="1m", group="g"."""
        flags = [f"-{k.replace('_', '-')}={v}" for k, v in opts.items()]
        return dict(json.loads(self.run("enqueue", "-queue", queue, "-count", str(count), *flags)))

    def inspect(self) -> dict[str, Any]:
        return dict(json.loads(self.run("inspect")))

    def pause(self, queue: str) -> None:
        self.run("pause", "-queue", queue)

    def unpause(self, queue: str) -> None:
        self.run("unpause", "-queue", queue)

    def start(self, kind: str, *args: str, ready_timeout: float = 20) -> subprocess.Popen[bytes]:
        """Start `worker` or `scheduler`; returns once it printed "ready"."""
        proc = subprocess.Popen([binary(), kind, "-redis", self.redis_addr, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.started.append(proc)
        assert proc.stdout is not None
        deadline = time.monotonic() + ready_timeout
        for line in proc.stdout:  # the peer prints its entry ids, then "ready"
            if line.strip() == b"ready":
                return proc
            if time.monotonic() > deadline:
                break
        stop_process(proc)
        raise RuntimeError(f"asynqpeer {kind} did not become ready (exit {proc.poll()})")

    def stop_all(self) -> None:
        for proc in self.started:
            stop_process(proc)
        self.started.clear()
