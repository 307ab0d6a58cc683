"""The obs pipeline on free loopback ports: victoria-metrics, vmagent and vmalert (Alertmanager: alertmanager.py).

Each keeps its port across stop()/start() so the obs box can be taken away and brought back.
VictoriaMetrics runs with a 1 s search latency offset (the default 30 s would hide fresh samples).
Used by `honeydue-exporter drill` and the end-to-end tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.procs import Daemon, free_port, require_binary


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


class _Daemon(Daemon):
    """A Daemon with a private workdir holding its data and log."""

    workdir: Path

    def _start(self, args: list[str], log_name: str) -> None:
        self._spawn(args, self.workdir / log_name)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class VictoriaMetrics(_Daemon):
    """victoria-metrics single-node with its data in a private temp dir."""

    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vm-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def start(self) -> None:
        binary = require_binary("victoria-metrics", "/usr/bin")
        self._start(
            [binary, f"-httpListenAddr=127.0.0.1:{self.port}", f"-storageDataPath={self.workdir / 'data'}",
             "-search.latencyOffset=1s", "-search.disableCache", "-retentionPeriod=1d", "-loggerLevel=ERROR"],
            "vm.log",
        )

    def import_prometheus(self, text: str) -> None:
        """Insert exposition-format samples directly (no scraper), then make them searchable."""
        request = urllib.request.Request(f"{self.url}/api/v1/import/prometheus", data=text.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=5):
            pass
        _get(f"{self.url}/internal/force_flush")

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
        body = _get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode(params))
        reply = json.loads(body)
        assert reply["status"] == "success", reply
        return list(reply["data"]["result"])

    def wait_for_series(self, promql: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.3)
        raise TimeoutError(f"no series for {promql} after {timeout}s")


@dataclass
class Vmagent(_Daemon):
    """vmagent scraping `targets` every second and remote-writing to `remote_write_url`, with a disk queue."""

    remote_write_url: str
    targets: list[str]
    scrape_interval: str = "1s"
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vmagent-")))
    proc: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()  # e.g. ("-httpAuth.username=u", "-httpAuth.password=p")
    jobs: dict[str, list[str]] = field(default_factory=dict)  # more scrape jobs: job name -> targets
    # Scraping a listener with a web config (TLS, basic auth): the CA that signed its certificate, and the
    # user and the file holding the password (vmagent reads it, as from a mounted Secret). The main job only.
    tls_ca_file: Path | None = None
    basic_auth: tuple[str, Path] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def start(self) -> None:
        binary = require_binary("vmagent", "/usr/bin")
        scrape = self.workdir / "scrape.yml"
        job: dict[str, Any] = {"job_name": "honeydue-exporter", "scrape_interval": self.scrape_interval,
                               "static_configs": [{"targets": self.targets}]}
        if self.tls_ca_file is not None:
            job |= {"scheme": "https", "tls_config": {"ca_file": str(self.tls_ca_file)}}
        if self.basic_auth is not None:
            job["basic_auth"] = {"username": self.basic_auth[0], "password_file": str(self.basic_auth[1])}
        others = [{"job_name": name, "scrape_interval": self.scrape_interval, "static_configs": [{"targets": targets}]}
                  for name, targets in self.jobs.items()]
        scrape.write_text(json.dumps({"scrape_configs": [job, *others]}))  # JSON is YAML
        self._start(
            [binary, f"-httpListenAddr=127.0.0.1:{self.port}", f"-remoteWrite.url={self.remote_write_url}",
             f"-promscrape.config={scrape}", f"-remoteWrite.tmpDataPath={self.workdir / 'queue'}",
             "-remoteWrite.flushInterval=200ms", "-loggerLevel=ERROR", *self.extra_args],
            "vmagent.log",
        )

    def raw_metrics(self) -> str:
        return _get(self.metrics_url).decode()


@dataclass
class Vmalert(_Daemon):
    """vmalert evaluating `rules_dir`/*.yml against `datasource_url`, notifying `notifier_url`.

    Like production (deploy/vmalert) it writes its `ALERTS` series back to the datasource, which the
    dashboard's "Now" row reads.
    """

    rules_dir: Path
    datasource_url: str
    notifier_url: str
    evaluation_interval: str = "2s"
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vmalert-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = require_binary("vmalert", "/usr/bin")
        self._start(
            [binary, f"-httpListenAddr=127.0.0.1:{self.port}", f"-rule={self.rules_dir}/*.yml",
             f"-datasource.url={self.datasource_url}", f"-notifier.url={self.notifier_url}",
             f"-evaluationInterval={self.evaluation_interval}", f"-remoteWrite.url={self.datasource_url}",
             "-remoteWrite.flushInterval=1s", "-loggerLevel=ERROR"],
            "vmalert.log",
        )

    def alerts(self) -> list[dict[str, Any]]:
        """vmalert's active (pending and firing) alerts."""
        reply = json.loads(_get(f"{self.url}/api/v1/alerts"))
        return list(reply["data"]["alerts"])
