"""HTTP surface: /metrics and the status page from memory, /healthz, /readyz."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from exporter.auth import Authenticator, Checker, middleware
from exporter.config import ServerAuth
from exporter.engine import Engine
from exporter.exposition import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    Exposition,
    accepts_gzip,
    wants_openmetrics,
)
from exporter.families import Absence
from exporter.refusals import RefusalLog
from exporter.statuspage import StatusPage
from exporter.webconfig import WebConfigSource

ENGINE_KEY = web.AppKey("engine", Engine)
EXPOSITION_KEY = web.AppKey("exposition", Exposition)
STATUS_PAGE_KEY = web.AppKey("status_page", StatusPage)


async def metrics(request: web.Request) -> web.Response:
    exposition = request.app[EXPOSITION_KEY]
    openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
    compress = accepts_gzip(request.headers.get("Accept-Encoding", ""))
    body = exposition.render(openmetrics, compress)
    response = web.Response(body=body)
    # Set the raw header: aiohttp's content_type setter would drop the version parameters.
    response.headers["Content-Type"] = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
    if compress:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept, Accept-Encoding"
    return response


async def healthz(request: web.Request) -> web.Response:
    ok, why = request.app[ENGINE_KEY].alive()
    return web.Response(status=200 if ok else 503, text=why + "\n")


async def readyz(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    if engine.ready:
        return web.Response(text="ready\n")
    return web.Response(status=503, text="first probe cycle not finished\n")


async def landing(request: web.Request) -> web.Response:
    return web.Response(body=request.app[STATUS_PAGE_KEY].render(), content_type="text/html", charset="utf-8")


def make_app(
    engine: Engine, runbook_base: str, auth: ServerAuth | None = None, absences: Mapping[str, Absence] | None = None,
    web_config: WebConfigSource | None = None,
) -> web.Application:
    """`absences`: the probe families that do not run and why (exporter.probes.absences), for the status page.
    `web_config`: the --web.config.file in force (its basic_auth_users and response headers; the listener's TLS
    is exporter.listener's). Credentials come from `auth` or from the web config's users, never both (cli)."""
    fixed: Checker | None = Authenticator(auth) if auth is not None else None

    def checker() -> Checker | None:
        if fixed is not None or web_config is None:
            return fixed
        web_config.refresh()
        return web_config.users

    guarded = auth is not None or web_config is not None
    refusals = RefusalLog(logging.getLogger("exporter.web"))
    app = web.Application(middlewares=[middleware(checker, refusals)] if guarded else [])
    if web_config is not None:
        async def add_headers(_request: web.Request, response: web.StreamResponse) -> None:
            response.headers.update(web_config.config.http_server_config.headers)

        app.on_response_prepare.append(add_headers)
    app[ENGINE_KEY] = engine
    app[EXPOSITION_KEY] = Exposition(engine)
    app[STATUS_PAGE_KEY] = StatusPage(engine, runbook_base, absences)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", landing)
    return app
