"""The real Asynq as processes: tests/peers/cmd/asynqpeer (Asynq's client, worker server, scheduler, Inspector).

Shared by the drill (its worker and cron run on it) and the tests (Asynq's own Inspector view is the
truth the exporter's Asynq metrics are compared with). scripts/go-peers.sh builds the one source against
every supported Asynq version into tests/peers/bin (see VERSIONS); `HONEYDUE_ASYNQPEER_DIR` points
elsewhere. Every process started here is stopped by `stop_all` (the owner calls it in a finally).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from testbed import procs
from testbed.paths import PEERS_BIN

# Asynq version -> the binary built against it (tests/peers/go.mod, go.asynq-v025.mod).
VERSIONS: dict[str, str] = {"v0.26.0": "asynqpeer", "v0.25.1": "asynqpeer-v025"}
DEFAULT_VERSION = "v0.26.0"


def binary(version: str = DEFAULT_VERSION) -> str:
    """The built peer for an Asynq version; MissingBinary (through procs.on_missing) when not built."""
    name = VERSIONS[version]
    path = Path(os.environ.get("HONEYDUE_ASYNQPEER_DIR", str(PEERS_BIN))) / name
    if path.is_file() and os.access(path, os.X_OK):
        return str(path)
    message = f"{name} (the Asynq {version} peer) is not built: run scripts/go-peers.sh"
    procs.on_missing(message)
    raise procs.MissingBinary(message)


@dataclass
class Started:
    """A long-running peer process: a worker, a scheduler (with its entry ids) or an enqueue loop."""

    kind: str
    args: tuple[str, ...]
    proc: subprocess.Popen[bytes]
    entries: list[str] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


def _read_until_ready(proc: subprocess.Popen[bytes], timeout: float) -> list[str]:
    """Lines the peer printed up to its "ready" line; TimeoutError past the deadline or at its exit."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buffer = b""
    lines: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no 'ready' within {timeout:g}s")
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            raise TimeoutError(f"exited {proc.wait(5)} before 'ready'")
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            text = line.decode(errors="replace").strip()
            if text == "ready":
                return lines
            lines.append(text)


class AsynqPeer:
    """Drives the peer against one Redis (host:port), for one Asynq version."""

    def __init__(self, redis_addr: str, version: str = DEFAULT_VERSION, log: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.redis_addr = redis_addr
        self.version = version
        self.binary = binary(version)
        self.log = log  # stderr of long-running processes (Asynq's own log lines); None discards it
        self.env = env
        self.started: list[Started] = []

    def run(self, *args: str, timeout: float = 60) -> str:
        """A one-shot subcommand; its stdout."""
        out = subprocess.run([self.binary, *args[:1], "-redis", self.redis_addr, *args[1:]],
                             capture_output=True, text=True, timeout=timeout, env=self.env)
        if out.returncode != 0:
            raise RuntimeError(f"asynqpeer {args[0]} exited {out.returncode}: {out.stderr.strip()}")
        return out.stdout

    def enqueue(self, queue: str, count: int = 1, timeout: float = 120, **opts: Any) -> dict[str, int]:
        """opts become flags: do="fail", delay="1h", max_retry=0, unique="1m", group="g", parallel=8."""
        flags = [f"-{k.replace('_', '-')}={v}" for k, v in opts.items()]
        reply = json.loads(self.run("enqueue", "-queue", queue, "-count", str(count), *flags, timeout=timeout))
        return {k: int(v) for k, v in reply.items()}

    def inspect(self, events: int = 30) -> dict[str, Any]:
        """Asynq's Inspector view (queues, servers, scheduler entries with their newest events)."""
        return dict(json.loads(self.run("inspect", "-events", str(events))))

    def pause(self, queue: str) -> None:
        self.run("pause", "-queue", queue)

    def unpause(self, queue: str) -> None:
        self.run("unpause", "-queue", queue)

    def start(self, kind: str, *args: str, ready_timeout: float = 30) -> Started:
        """Start `worker`, `scheduler` or an `enqueue -every` loop; returns once it printed "ready"."""
        stderr: IO[bytes] | int = subprocess.DEVNULL
        if self.log is not None:
            stderr = self.log.open("ab")
        try:
            proc = subprocess.Popen([self.binary, kind, "-redis", self.redis_addr, *args], env=self.env,
                                    stdout=subprocess.PIPE, stderr=stderr)
        finally:
            if not isinstance(stderr, int):
                stderr.close()
        started = Started(kind, args, proc)
        self.started.append(started)
        try:
            lines = _read_until_ready(proc, ready_timeout)
        except TimeoutError as exc:
            procs.stop_process(proc)
            raise RuntimeError(f"asynqpeer {kind}: {exc}") from None
        started.entries = [line.split(" ", 1)[1] for line in lines if line.startswith("entry ")]
        return started

    def kill(self, started: Started) -> None:
        """SIGKILL: Asynq gets no chance to clean up (leases, heartbeat and entries stay until they expire)."""
        if started.alive:
            started.proc.kill()
        started.proc.wait(10)

    def stop(self, started: Started, timeout: float = 30) -> None:
        """SIGTERM: Asynq's graceful Shutdown; waits for the process to exit."""
        procs.stop_process(started.proc, timeout)

    def signal(self, started: Started, sig: signal.Signals) -> None:
        started.proc.send_signal(sig)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Every started process SIGSTOPped: a still picture of a busy system (heartbeats and leases outlast
        a short freeze: 10 s and 30 s)."""
        stopped = [s for s in self.started if s.alive]
        for s in stopped:
            s.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            for s in stopped:
                with contextlib.suppress(ProcessLookupError):
                    s.proc.send_signal(signal.SIGCONT)

    def stop_all(self) -> None:
        """Stop every started process (SIGCONT first, in case it is frozen), newest first."""
        for s in reversed(self.started):
            if s.alive:
                with contextlib.suppress(ProcessLookupError):
                    s.proc.send_signal(signal.SIGCONT)
                procs.stop_process(s.proc)
            if s.proc.stdout is not None:
                s.proc.stdout.close()
        self.started.clear()
