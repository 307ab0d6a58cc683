"""The command line and /metrics follow the Prometheus exporters' conventions (issue 22, item 6).

Global flags before or after the subcommand, --web.listen-address and --log.level; RFC 3339 UTC log times;
a closed pipe ends `catalog` quietly; a taken port names the settings that move it; /metrics carries
prometheus_client's process and platform series, build_info with version, revision and Python version, and
every probe's failure counter from 0 for every reason.
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from testbed.exporter import ExporterProcess

from exporter.errors import REASONS
from tests.helpers.servers import free_port

REPO = Path(__file__).resolve().parent.parent
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def quiet_config(path: Path) -> Path:
    """Every network probe off but the Redis one, aimed at a port nothing listens on (it fails: a known reason)."""
    path.write_text(yaml.safe_dump({
        "redis": {"url": f"redis://127.0.0.1:{free_port()}/0", "interval": 1, "timeout": 0.5},
        "postgres": {"pooler": {"enabled": False}, "direct": {"enabled": False}},
        "kubernetes": {"source": "off"}, "asynq": {"enabled": False},
    }))
    return path


def exporter(tmp_path: Path, *args: str, port: int | None = None) -> ExporterProcess:
    """The exporter with its address and config given only as flags after `run` (ExporterProcess passes no
    --config when config_path is None; its HONEYDUE_SERVER__* variables lose against the flag)."""
    port = port or free_port()
    return ExporterProcess(port=port, log_path=tmp_path / "exporter.log",
                           args=("--config", str(quiet_config(tmp_path / "c.yml")),
                                 "--web.listen-address", f"127.0.0.1:{port}", *args))


def test_flags_after_the_subcommand_and_the_exposition_conventions(tmp_path: Path) -> None:
    proc = exporter(tmp_path, "--log.level", "info")
    env_port = free_port()  # the environment says another port: the flag wins
    proc.env = {"HONEYDUE_SERVER__PORT": str(env_port)}
    try:
        proc.start()
        proc.wait_for("honeydue_probe_failures_total", 1.0, 20, probe="redis", reason="refused")
        m = proc.metrics()
        assert m[("process_resident_memory_bytes", frozenset())] > 10 * 1024 * 1024
        assert ("process_cpu_seconds_total", frozenset()) in m and ("process_open_fds", frozenset()) in m
        python = {dict(labels)["version"] for (name, labels) in m if name == "python_info"}
        assert python == {platform.python_version()}
        [build] = [dict(labels) for (name, labels) in m if name == "honeydue_exporter_build_info"]
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        assert build == {"version": "0.1.0", "revision": head, "python_version": platform.python_version()}
        # Every reason of every probe from 0: the probe that never failed has all of them at 0.
        probes = {dict(labels)["probe"] for (name, labels) in m if name == "honeydue_probe_interval_seconds"}
        assert {"redis", "kubernetes_api"} <= probes
        for probe in probes:
            counts = {dict(labels)["reason"]: v for (name, labels), v in m.items()
                      if name == "honeydue_probe_failures_total" and dict(labels)["probe"] == probe}
            assert set(counts) == set(REASONS), (probe, counts)
            if probe != "redis":
                assert set(counts.values()) == {0.0}, (probe, counts)
        assert m[("honeydue_probe_failures_total", frozenset({("probe", "redis"), ("reason", "timeout")}))] == 0
        with socket.socket() as s:  # nothing on the environment's port
            assert s.connect_ex(("127.0.0.1", env_port)) != 0
    finally:
        proc.stop()
    lines = [yaml.safe_load(line) for line in proc.logs().splitlines() if line.startswith("{")]
    assert lines and all(RFC3339_UTC.match(line["time"]) for line in lines), lines[:3]


def test_log_level_flag_and_text_timestamps(tmp_path: Path) -> None:
    proc = exporter(tmp_path, "--log.level", "warn", "--log.format", "text")
    try:
        proc.start()
        proc.wait_for("honeydue_probe_success", 0.0, 20, probe="redis")
    finally:
        proc.stop()
    lines = proc.logs().splitlines()
    assert lines, "the failing probe logs a warning"
    assert all(" INFO " not in line for line in lines), lines
    assert all(RFC3339_UTC.match(line.split(" ", 1)[0]) for line in lines), lines


def test_global_flags_before_the_subcommand_too(tmp_path: Path) -> None:
    config = quiet_config(tmp_path / "c.yml")
    for argv in (["--config", str(config), "check-config"], ["check-config", "--config", str(config)],
                 ["--web.listen-address", ":9999", "check-config", "--config", str(config)]):
        out = subprocess.run([sys.executable, "-m", "exporter", *argv], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (argv, out.stderr)
        assert yaml.safe_load(out.stdout)["asynq"]["enabled"] is False, argv
    moved = subprocess.run([sys.executable, "-m", "exporter", "--web.listen-address", ":9999", "check-config"],
                           capture_output=True, text=True, timeout=60)
    server = yaml.safe_load(moved.stdout)["server"]
    assert (server["listen_address"], server["port"]) == ("0.0.0.0", 9999)
    bad = subprocess.run([sys.executable, "-m", "exporter", "check-config", "--web.listen-address", "nope"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--web.listen-address 'nope'" in bad.stderr


def test_closed_pipe_ends_quietly() -> None:
    """`honeydue-exporter catalog | head -c 100`: the reader leaves early; no traceback, the SIGPIPE status.

    The pipe holds 4 KiB (F_SETPIPE_SZ), far less than the table (about 20 KB), so the writer is still writing
    when the reader leaves, whatever the timing (with the default 64 KiB pipe it could finish first)."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "catalog"], stdout=write_end,
                            stderr=subprocess.PIPE, cwd=REPO)
    os.close(write_end)
    assert proc.stderr is not None
    assert os.read(read_end, 100)
    os.close(read_end)
    stderr = proc.stderr.read().decode()
    assert proc.wait(60) == 141, stderr
    assert stderr == ""


def test_a_taken_port_names_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "exporter", "--config", str(quiet_config(tmp_path / "c.yml")),
                              "--log.format", "text", "run"], capture_output=True, text=True, timeout=60,
                             env={"PATH": "/usr/bin:/bin", "HONEYDUE_SERVER__PORT": str(port),
                                  "HONEYDUE_SERVER__LISTEN_ADDRESS": "127.0.0.1"})
    assert out.returncode == 1, out.stderr
    [line] = [line for line in out.stderr.splitlines() if "ERROR" in line]
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in line
    assert "server.port" in line and "HONEYDUE_SERVER__PORT" in line and "Traceback" not in out.stderr
