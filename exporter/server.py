"""HTTP surface: /metrics from memory, /healthz, /readyz and a landing page for humans."""

from __future__ import annotations

import html
import time

from aiohttp import web

from exporter import __version__
from exporter.auth import Authenticator, middleware
from exporter.catalog import entries_for_probe
from exporter.config import ServerAuth
from exporter.engine import Engine
from exporter.exposition import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    Exposition,
    accepts_gzip,
    wants_openmetrics,
)

ENGINE_KEY = web.AppKey("engine", Engine)
EXPOSITION_KEY = web.AppKey("exposition", Exposition)
RUNBOOK_KEY = web.AppKey("runbook_base", str)


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
    engine = request.app[ENGINE_KEY]
    base = request.app[RUNBOOK_KEY]
    rows = []
    now = time.time()
    for probe in engine.probes:
        state = engine.states[probe.name]
        age = f"{now - state.last_success:.0f}s ago" if state.last_success else "never"
        status = state.status + (f" ({state.reason}: {state.detail})" if state.status == "failing" else "")
        links = "<br>".join(
            f'<a href="{html.escape(e.runbook_url(base))}">{html.escape(e.heading)}</a>'
            for e in entries_for_probe(probe.name)
        )
        rows.append(
            f"<tr><td>{html.escape(probe.name)}</td><td>{html.escape(status)}</td>"
            f"<td>{probe.interval:g}s / {probe.timeout:g}s</td><td>{age}</td><td>{links}</td></tr>"
        )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>honeydue-exporter</title>
<style>body{{font-family:sans-serif}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}
table{{border-collapse:collapse}}</style></head>
<body><h1>honeydue-exporter {html.escape(__version__)}</h1>
<p><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a></p>
<table><tr><th>probe</th><th>state</th><th>interval / timeout</th><th>last success</th>
<th>failure modes it feeds (runbook)</th></tr>
{''.join(rows)}
</table></body></html>
"""
    return web.Response(text=page, content_type="text/html")


def make_app(engine: Engine, runbook_base: str, auth: ServerAuth | None = None) -> web.Application:
    app = web.Application(middlewares=[middleware(Authenticator(auth))] if auth is not None else [])
    app[ENGINE_KEY] = engine
    app[EXPOSITION_KEY] = Exposition(engine)
    app[RUNBOOK_KEY] = runbook_base
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", landing)
    return app
