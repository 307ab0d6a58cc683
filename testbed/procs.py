"""Process lifecycle: real servers on free loopback ports, started and stopped by their owner (the drill or a test).

`Daemon` is the one start/stop-with-deadline of a server process; every launcher of the test bed builds on it.
A missing binary raises `MissingBinary`; the tests install a hook (`on_missing`) that turns it into a skip,
or a failure under CI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class MissingBinary(RuntimeError):
    """An executable the pipeline needs is not installed."""


def _no_hook(message: str) -> None:
    return None


on_missing: Callable[[str], None] = _no_hook  # tests replace it with skip-or-fail


def require_binary(name: str, *extra_dirs: str) -> str:
    """Path of an executable, or MissingBinary naming the package to install."""
    path = shutil.which(name) or next(
        (str(Path(d) / name) for d in extra_dirs if (Path(d) / name).exists()), None
    )
    if path:
        return path
    if any(Path(d).parts[-3:] == ("tests", "peers", "bin") for d in extra_dirs):
        message = f"{name} is not built (scripts/go-peers.sh builds the Go peers; make test runs it)"
    else:
        message = f"{name} is not installed (apt-get install the package that ships it; see .ci/run)"
    on_missing(message)
    raise MissingBinary(message)


def free_port(*hosts: str, attempts: int = 50) -> int:
    """A TCP port free on every one of `hosts` (default 127.0.0.1) at the moment of asking.

    A port the kernel hands out on 127.0.0.1 may be taken on 127.0.0.2 (ports are per address), so a
    server that binds other loopback addresses must ask about those. The port can still be taken before
    the caller binds it; callers that can, retry on EADDRINUSE.
    """
    hosts = hosts or ("127.0.0.1",)
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind((hosts[0], 0))
            port = int(first.getsockname()[1])
            if all(_bindable(host, port) for host in hosts[1:]):
                return port
    raise RuntimeError(f"no TCP port free on all of {', '.join(hosts)}")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def wait_port_closed(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                pass
        except OSError:
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} still open after {timeout}s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Daemon:
    """One server process on a loopback port: output to a log file (or nowhere), stopped with a deadline.

    Subclasses set `port` and `proc` (None while stopped) and call `_spawn`; `stop()` then `start()` again
    keeps the port, so clients see the dependency go away and come back.
    """

    port: int
    proc: subprocess.Popen[bytes] | None

    def _spawn(self, args: list[str], log_path: Path | None = None, ready_timeout: float = 20.0,
               env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        """Start `args` and wait until the port accepts connections (stopping it again if it never does)."""
        out: IO[bytes] | int = log_path.open("ab") if log_path is not None else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        finally:
            if not isinstance(out, int):
                out.close()  # the child holds its own descriptor
        try:
            wait_for_port(self.port, ready_timeout)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM (SIGKILL after the deadline), then wait until the port is closed."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
            wait_port_closed(self.port)


@dataclass
class RedisServer(Daemon):
    """A private redis-server; stop()/start() keep the port so clients see a restart."""

    port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    # Play a server older than Redis 6: HELLO is renamed away, so it is an unknown command and clients that
    # open with `HELLO 3` fall back to RESP2, exactly as against Redis 5.
    before_6: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = require_binary("redis-server")
        old = ("--rename-command", "HELLO", "") if self.before_6 else ()
        self._spawn([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--daemonize", "no", "--loglevel", "warning", *old, *self.args], ready_timeout=10)

    def cli(self, *command: str) -> str:
        out = subprocess.run(
            [require_binary("redis-cli"), "-p", str(self.port), *command],
            check=True, capture_output=True, text=True, timeout=10,
        )
        return out.stdout.strip()


@dataclass
class PgBouncer(Daemon):
    """pgbouncer in front of the machine's PostgreSQL: the stand-in for Neon's -pooler endpoint.

    pgbouncer refuses to run as root, so it runs as the postgres user from a directory that user owns:
    `setpriv` switches the user and execs pgbouncer, so the process signalled on stop is pgbouncer itself
    (`runuser` stays the parent, forwards SIGTERM and waits 2 s before it kills: every stop took 2.0 s).
    """

    backend_port: int = 5432
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None

    def start(self) -> None:
        binary = require_binary("pgbouncer", "/usr/sbin")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
            (self.workdir / "userlist.txt").write_text('"postgres" ""\n"root" ""\n')
            (self.workdir / "pgbouncer.ini").write_text(
                "[databases]\n"
                f"* = host=127.0.0.1 port={self.backend_port}\n"
                "[pgbouncer]\n"
                f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
                f"unix_socket_dir = {self.workdir}\n"
                "auth_type = trust\n"
                f"auth_file = {self.workdir}/userlist.txt\n"
                "pool_mode = transaction\n"
                "ignore_startup_parameters = extra_float_digits,application_name\n"
                f"logfile = {self.workdir}/pgbouncer.log\n"
            )
            if os.geteuid() == 0:  # pgbouncer runs as postgres and must write its log and socket here
                shutil.chown(self.workdir, "postgres")
                for child in self.workdir.iterdir():
                    shutil.chown(child, "postgres")
        command = [binary, "-v", str(self.workdir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            command = [require_binary("setpriv", "/usr/bin", "/bin"), "--reuid=postgres", "--regid=postgres",
                       "--init-groups", "--", *command]
        self._spawn(command, cwd=self.workdir, ready_timeout=10)

    def cleanup(self) -> None:
        self.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


class SilentPort:
    """A TCP port that accepts connections and never answers: the 'blackholed' dependency."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def silent_port() -> Iterator[SilentPort]:
    port = SilentPort()
    try:
        yield port
    finally:
        port.close()
