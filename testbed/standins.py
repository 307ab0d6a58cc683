"""Stand-ins for honeyDue's HTTP targets, its SMTP provider and Alertmanager's webhook receiver.

Each runs on its own event loop thread so the synchronous drill (and tests) can flip a target's
behaviour between probe runs: `ok`, `error` (a 5xx answer) or `hang` (accepts, never answers).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from exporter.drill.procs import free_port, wait_for_port

CF_RAY = "8f0a1b2c3d4e5f60-AMS"

# target name -> (path, role, expected statuses). One server, one path per target.
HTTP_TARGETS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "public": ("/public/api/health/", "public", (200,)),
    "origin": ("/origin/api/health/", "origin", (200,)),
    "api_shallow": ("/api/health/", "api_shallow", (200,)),
    "api_deep": ("/api/residences/", "api_deep", (200,)),
    "admin": ("/admin/", "admin", (200,)),
    "b2": ("/b2/", "b2", (200,)),
    "registry": ("/v2/", "registry", (401,)),
}


class LoopThread:
    """An asyncio loop on a daemon thread; `run` executes a coroutine there and waits for it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


class HttpStandins:
    """The public URL (through 'Cloudflare'), the origin, api shallow/deep, admin, B2 and the registry."""

    def __init__(self) -> None:
        self.port = free_port()
        self.modes: dict[str, str] = dict.fromkeys(HTTP_TARGETS, "ok")
        self._thread = LoopThread("http-standins")
        self._release: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}{HTTP_TARGETS[name][0]}"

    def set(self, name: str, mode: str) -> None:
        if mode not in ("ok", "error", "hang"):
            raise ValueError(mode)
        self.modes[name] = mode

    def start(self) -> None:
        self._thread.run(self._start())
        wait_for_port(self.port)

    async def _start(self) -> None:
        self._release = asyncio.Event()
        app = web.Application()
        for name, (path, _, _) in HTTP_TARGETS.items():
            app.router.add_get(path, self._handler(name))
        self._runner = await _serve(app, self.port)

    def _handler(self, name: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            mode = self.modes[name]
            if mode == "hang":
                assert self._release is not None
                await self._release.wait()  # a deadlocked handler: the connection stays open, no answer
            if mode in ("hang", "error"):
                return web.Response(status=522 if name == "public" else 503, text="upstream unavailable")
            if name == "registry":
                return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401,
                                         headers={"Docker-Distribution-API-Version": "registry/2.0"})
            headers = {"cf-ray": CF_RAY} if name == "public" else {}
            return web.Response(text='{"status":"ok"}', headers=headers)
        return handle

    async def _stop(self) -> None:
        if self._release is not None:
            self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        try:
            self._thread.run(self._stop())
        finally:
            self._thread.close()


class SmtpStandin:
    """aiosmtpd on a fixed loopback port; stop() and start() again to take 'Fastmail' away and back."""

    def __init__(self) -> None:
        self.port = free_port()
        self._controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller  # the drill extra: pip install 'honeydue-exporter[drill]'

        class Sink:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                return "250 OK"

        self._controller = Controller(Sink(), hostname="127.0.0.1", port=self.port, ready_timeout=5)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@dataclass
class Notification:
    """One alert out of one Alertmanager webhook post."""

    received: float  # time.time() when the webhook got it
    status: str  # firing | resolved
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str


@dataclass
class Webhook:
    """Alertmanager's receiver: records every alert of every notification it is posted."""

    port: int = field(default_factory=free_port)
    notifications: list[Notification] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: LoopThread | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def start(self) -> None:
        self._thread = LoopThread("webhook")

        async def receive(request: web.Request) -> web.Response:
            body = await request.json()
            now = time.time()
            with self._lock:
                for alert in body.get("alerts", []):
                    labels = dict(alert.get("labels", {}))
                    self.notifications.append(Notification(
                        now, str(alert.get("status", "")), labels.get("alertname", ""), labels,
                        dict(alert.get("annotations", {})), str(alert.get("startsAt", "")),
                    ))
            return web.Response(text="ok")

        async def start() -> web.AppRunner:
            app = web.Application()
            app.router.add_post("/alerts", receive)
            return await _serve(app, self.port)

        self._runner = self._thread.run(start())
        wait_for_port(self.port)

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

    def stop(self) -> None:
        if self._thread is not None:
            if self._runner is not None:
                self._thread.run(self._runner.cleanup())
            self._thread.close()
            self._thread = None


def _fingerprint(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
