"""Run the real `honeydue-exporter` as a subprocess (the tests' and the drill's) and read its /metrics like a scraper."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from testbed.procs import Daemon, free_port

from exporter.samples import Metrics, value

__all__ = ["ExporterProcess", "Metrics", "parse_metrics", "value"]  # a scrape, parsed and looked up


def parse_metrics(text: str) -> Metrics:
    """Exposition text -> {(sample name, labels): value}."""
    samples: Metrics = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


@dataclass
class ExporterProcess(Daemon):
    """`python -m exporter [--config FILE] run ARGS`, its environment free of the caller's HONEYDUE_* variables."""

    env: dict[str, str] = field(default_factory=dict)
    config_path: Path | None = None
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    args: tuple[str, ...] = ()  # extra `run` arguments, e.g. ("--mode", "netcheck")
    wrapper: tuple[str, ...] = ()  # a command the exporter runs under (e.g. a pod's mount namespace)
    proc: subprocess.Popen[bytes] | None = None
    ssl_context: ssl.SSLContext | None = None  # https, trusting this context's CA (a web config with TLS)
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request (e.g. basic auth)

    def start(self, wait_ready: bool = True, timeout: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYDUE_")}
        env |= {"HONEYDUE_SERVER__PORT": str(self.port), "HONEYDUE_SERVER__LISTEN_ADDRESS": "127.0.0.1"}
        env |= self.env
        args = [*self.wrapper, sys.executable, "-m", "exporter"]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        args += ["run", *self.args]
        assert self.log_path is not None
        self._spawn(args, self.log_path, ready_timeout=timeout, env=env)
        if wait_ready:
            self.wait_ready(timeout)

    def url(self, path: str = "/metrics") -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def get(
        self, path: str = "/metrics", timeout: float = 5.0, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url(path), headers=self.headers | (headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.ssl_context) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get("/readyz")[0] == 200:
                return
            time.sleep(0.1)
        raise TimeoutError("exporter never became ready")

    def metrics(self) -> Metrics:
        status, body = self.get("/metrics")
        assert status == 200
        return parse_metrics(body.decode())

    def wait_for(self, name: str, expected: float, timeout: float, **labels: str) -> float:
        """Poll /metrics until the sample equals `expected`; return the seconds it took."""
        started = time.monotonic()
        last = None
        while time.monotonic() - started < timeout:
            last = value(self.metrics(), name, **labels)
            if last == expected:
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"{name}{labels} stayed {last}, expected {expected} within {timeout}s")

    def logs(self) -> str:
        assert self.log_path is not None
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> float:
        """SIGTERM and return how long the process took to exit."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(15)
        return time.monotonic() - started
