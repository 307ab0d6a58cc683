"""What catches Alertmanager's notifications: a webhook receiver and an SMTP sink, both on loopback.

Each keeps its port across stop()/start(), so a test or the drill can take "Fastmail" away and bring it back,
and keeps everything it received, so a caller can wait for one notification or look at all of them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web

from testbed.loop import LoopThread, serve, stop_served
from testbed.procs import free_port, wait_for_port


@dataclass
class Notification:
    """One alert out of one Alertmanager webhook post."""

    received: float  # time.time() when the webhook got it
    receiver: str  # the path it was posted to: Alertmanager's receiver name in local_config
    status: str  # firing | resolved
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str


@dataclass
class WebhookReceiver:
    """Alertmanager's webhook receiver: records every POST to `<url>/<receiver>` (payloads and their alerts)."""

    port: int = field(default_factory=free_port)
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (receiver, payload)
    notifications: list[Notification] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: LoopThread | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = LoopThread("webhook")

        async def receive(request: web.Request) -> web.Response:
            receiver = request.match_info["receiver"]
            body = await request.json()
            now = time.time()
            with self._lock:
                self.posts.append((receiver, body))
                for alert in body.get("alerts", []):
                    labels = dict(alert.get("labels", {}))
                    self.notifications.append(Notification(
                        now, receiver, str(alert.get("status", "")), labels.get("alertname", ""), labels,
                        dict(alert.get("annotations", {})), str(alert.get("startsAt", "")),
                    ))
            return web.Response(text="ok")

        async def start() -> web.AppRunner:
            app = web.Application()
            app.router.add_post("/{receiver}", receive)
            return await serve(app, self.port)

        self._runner = self._thread.run(start())
        wait_for_port(self.port)

    def stop(self) -> None:
        stop_served(self._thread, self._runner)
        self._thread, self._runner = None, None

    def since(self, t: float) -> list[Notification]:
        with self._lock:
            return [n for n in self.notifications if n.received >= t]

    def firing_now(self) -> dict[str, Notification]:
        """Alerts whose latest notification is `firing`, keyed by alertname + sorted labels."""
        state: dict[str, Notification] = {}
        with self._lock:
            for n in self.notifications:
                state[_fingerprint(n.labels)] = n
        return {k: n for k, n in state.items() if n.status == "firing"}

    def wait_for(self, receiver: str, alertname: str, status: str = "firing", timeout: float = 20.0) -> dict[str, Any]:
        """The first payload to `receiver` whose alerts include `alertname` with `status`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                posts = list(self.posts)
            for path, payload in posts:
                if path == receiver and any(
                    a["labels"].get("alertname") == alertname and a["status"] == status for a in payload["alerts"]
                ):
                    return payload
            time.sleep(0.1)
        raise TimeoutError(f"no {status} {alertname} at /{receiver}; got {[p for p, _ in self.posts]}")


def _fingerprint(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


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
    """aiosmtpd on a loopback port keeping every message (no TLS, no auth): Alertmanager's mail relay, or
    the drill's "Fastmail" that stop() and start() take away and bring back."""

    port: int = field(default_factory=free_port)
    mailbox: _Mailbox = field(default_factory=_Mailbox)
    _controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller  # the drill extra: pip install 'honeydue-exporter[drill]'

        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, ready_timeout=5)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, to: str, subject_contains: str, timeout: float = 20.0) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.mailbox.messages):
                if to in message["X-Envelope-To"] and subject_contains in str(message["Subject"]):
                    return message
            time.sleep(0.1)
        raise TimeoutError(f"no mail to {to} about {subject_contains}; got {[m['Subject'] for m in self.mailbox.messages]}")
