"""Stand-ins for honeyDue's HTTP targets (its SMTP provider is receivers.SmtpSink).

They run on their own event loop thread so the synchronous drill (and tests) can flip a target's
behaviour between probe runs: `ok`, `error` (a 5xx answer) or `hang` (accepts, never answers).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from testbed.edge import CF_RAY, registry_unauthorized
from testbed.loop import LoopThread, serve
from testbed.procs import free_port, wait_for_port

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
        self._runner = await serve(app, self.port)

    def _handler(self, name: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            mode = self.modes[name]
            if mode == "hang":
                assert self._release is not None
                await self._release.wait()  # a deadlocked handler: the connection stays open, no answer
            if mode in ("hang", "error"):
                return web.Response(status=522 if name == "public" else 503, text="upstream unavailable")
            if name == "registry":
                return registry_unauthorized()
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
