"""The shipped Alertmanager example, made runnable on loopback, plus a real prometheus-alertmanager,
a webhook receiver and an SMTP sink to catch what it sends.

`local_config` keeps deploy/alertmanager/alertmanager.yml's routing tree, inhibit rules and templates
and swaps only its marked EDIT blocks: every receiver posts to `<webhook_url>/<receiver name>` (or, for
the email receivers when `smtp` is given, mails through that loopback SMTP server). End-to-end tests
load the example this way so they test the routing operators deploy, not a copy of it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiosmtpd.controller import Controller

from tests.helpers.servers import free_port, require_binary, stop_process, wait_for_port

REPO = Path(__file__).resolve().parents[2]
ALERTMANAGER_DIR = REPO / "deploy" / "alertmanager"
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


@dataclass
class WebhookReceiver:
    """An aiohttp server in its own thread recording every Alertmanager webhook POST by path."""

    port: int = field(default_factory=free_port)
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        async def handle(request: web.Request) -> web.Response:
            self.posts.append((request.path.lstrip("/"), await request.json()))
            return web.Response(text="ok")

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/{receiver}", handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            started.set()

        def run() -> None:
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert started.wait(10), "webhook receiver did not start"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def wait_for(self, receiver: str, alertname: str, status: str = "firing", timeout: float = 20.0) -> dict[str, Any]:
        """The first payload to `receiver` whose alerts include `alertname` with `status`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path, payload in list(self.posts):
                if path == receiver and any(
                    a["labels"].get("alertname") == alertname and a["status"] == status for a in payload["alerts"]
                ):
                    return payload
            time.sleep(0.1)
        raise TimeoutError(f"no {status} {alertname} at /{receiver}; got {[p for p, _ in self.posts]}")


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content or envelope.content)
        message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


@dataclass
class SmtpSink:
    """aiosmtpd on a loopback port keeping every message."""

    port: int = field(default_factory=free_port)

    def start(self) -> None:
        self.mailbox = _Mailbox()
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def wait_for(self, to: str, subject_contains: str, timeout: float = 20.0) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.mailbox.messages):
                if to in message["X-Envelope-To"] and subject_contains in str(message["Subject"]):
                    return message
            time.sleep(0.1)
        raise TimeoutError(f"no mail to {to} about {subject_contains}; got {[m['Subject'] for m in self.mailbox.messages]}")


@dataclass
class Alertmanager:
    """prometheus-alertmanager (clustering off) with `config` written to workdir."""

    config: dict[str, Any]
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = require_binary("prometheus-alertmanager")
        path = self.workdir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self._log = (self.workdir / "alertmanager.log").open("ab")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={path}", f"--storage.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=self._log, stderr=self._log,
        )
        wait_for_port(self.port, 15)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
            self._log.close()

    def post(self, alerts: list[dict[str, Any]]) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def states(self, expected: int, timeout: float = 10.0) -> dict[str, str]:
        """alertname -> active|suppressed once `expected` alerts are known and processed."""
        deadline = time.monotonic() + timeout
        state: dict[str, str] = {}
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
                alerts = json.loads(response.read())
            state = {a["labels"]["alertname"]: a["status"]["state"] for a in alerts}
            if len(state) == expected and "unprocessed" not in state.values():
                return state
            time.sleep(0.2)
        return state
