"""The real prometheus-alertmanager on loopback, with the shipped example made runnable or the drill's one route.

`local_config` keeps deploy/alertmanager/alertmanager.yml's routing tree, inhibit rules and templates
and swaps only its marked EDIT blocks: every receiver posts to `<webhook_url>/<receiver name>` (or, for
the email receivers when `smtp` is given, mails through that loopback SMTP server). End-to-end tests
load the example this way so they test the routing operators deploy, not a copy of it. `single_route` is
the drill's: every alert to one webhook receiver, one alert per group, no waiting. What catches the
notifications is in receivers.py.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.paths import DEPLOY
from testbed.procs import Daemon, free_port, require_binary

ALERTMANAGER_DIR = DEPLOY / "alertmanager"
EXAMPLE = ALERTMANAGER_DIR / "alertmanager.yml"


def _retime(route: dict[str, Any], timings: dict[str, str]) -> None:
    for key, value in timings.items():
        if key in route or key == "group_wait":
            route[key] = value
    for child in route.get("routes", []):
        _retime(child, timings)


def local_config(
    webhook_url: str,
    smtp: str | None = None,
    timings: dict[str, str] | None = None,
    example: Path = EXAMPLE,
) -> dict[str, Any]:
    """The example config with receivers pointed at loopback.

    webhook_url: base URL; receiver R posts to f"{webhook_url}/{R}" (all receivers, or only the
    non-email ones when `smtp` is given). smtp: "127.0.0.1:PORT" for the email receivers (no TLS, no auth).
    timings: e.g. {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"} applied to every
    route that sets them (and group_wait everywhere), so tests do not wait the production 30 s.
    example: another alertmanager.yml of the same shape (the incident suite's "before" comparison).
    """
    config: dict[str, Any] = copy.deepcopy(yaml.safe_load(example.read_text()))
    config["templates"] = [str(example.parent / t) for t in config.get("templates", [])]
    glob = config.setdefault("global", {})
    for key in [k for k in glob if k.startswith("smtp_")]:
        del glob[key]
    if smtp is not None:
        glob |= {"smtp_smarthost": smtp, "smtp_from": "alertmanager@example.test", "smtp_require_tls": False}
    receivers = []
    for receiver in config["receivers"]:
        name = receiver["name"]
        if smtp is not None and receiver.get("email_configs"):
            receivers.append({"name": name, "email_configs": receiver["email_configs"]})
        else:
            send_resolved = any(c.get("send_resolved", True) for k, v in receiver.items() if k != "name" for c in v)
            receivers.append(
                {"name": name, "webhook_configs": [{"url": f"{webhook_url}/{name}", "send_resolved": send_resolved}]}
            )
    config["receivers"] = receivers
    if timings:
        _retime(config["route"], timings)
    return config


def single_route(webhook_url: str, receiver: str = "drill", group_wait: str = "0s", group_interval: str = "1s",
                 repeat_interval: str = "1h") -> dict[str, Any]:
    """Every alert to `<webhook_url>/<receiver>`, resolved ones too, one alert per group (the drill's)."""
    return {
        "route": {"receiver": receiver, "group_by": ["..."], "group_wait": group_wait,
                  "group_interval": group_interval, "repeat_interval": repeat_interval},
        "receivers": [{"name": receiver, "webhook_configs": [{"url": f"{webhook_url}/{receiver}",
                                                               "send_resolved": True}]}],
    }


@dataclass
class Alertmanager(Daemon):
    """prometheus-alertmanager (clustering off) with `config` written to workdir; its data and log live there."""

    config: dict[str, Any]
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = require_binary("prometheus-alertmanager", "/usr/bin")
        path = self.workdir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self._spawn([binary, f"--config.file={path}", f"--storage.path={self.workdir / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=warn"],
                    self.workdir / "alertmanager.log")

    def post(self, alerts: list[dict[str, Any]]) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now (its API v2), with their labels and status."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            found: list[dict[str, Any]] = json.loads(response.read())
        return found

    def states(self, expected: int, timeout: float = 10.0) -> dict[str, str]:
        """alertname -> active|suppressed once `expected` alerts are known and processed."""
        deadline = time.monotonic() + timeout
        state: dict[str, str] = {}
        while time.monotonic() < deadline:
            state = {a["labels"]["alertname"]: a["status"]["state"] for a in self.alerts()}
            if len(state) == expected and "unprocessed" not in state.values():
                return state
            time.sleep(0.2)
        return state
