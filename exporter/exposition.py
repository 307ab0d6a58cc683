"""Render the engine's snapshots as Prometheus text or OpenMetrics, cached per snapshot generation.

A scrape never does network I/O and, between probe runs, rarely re-renders: the bytes for each format
(and their gzip) are kept until the engine publishes a new snapshot, or for at most PROCESS_MAX_AGE
seconds, so prometheus_client's process and platform series (`process_resident_memory_bytes`,
`process_cpu_seconds_total`, `python_info`; read from /proc) are never older than that.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client import exposition as text_format
from prometheus_client.core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_format
from prometheus_client.registry import Collector

from exporter.engine import Engine
from exporter.samples import merge

# The classic 0.0.4 text format: every scraper in the path (vmagent 1.79, Prometheus 2.x) reads it,
# and our names need none of the 1.0.0 format's escaping.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = openmetrics_format.CONTENT_TYPE_LATEST
PROCESS_MAX_AGE = 1.0


class _SnapshotCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        return merge(self._engine.samples())


class Exposition:
    """Cached renderings of the current snapshots, keyed by (format, gzip)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_SnapshotCollector(engine))
        ProcessCollector(registry=self._registry)
        PlatformCollector(registry=self._registry)
        self._generation = -1
        self._rendered_at = 0.0
        self._cache: dict[tuple[bool, bool], bytes] = {}

    def render(self, openmetrics: bool = False, compress: bool = False) -> bytes:
        now = time.monotonic()
        if self._engine.generation != self._generation or now - self._rendered_at > PROCESS_MAX_AGE:
            self._cache.clear()
            self._generation = self._engine.generation
            self._rendered_at = now
        key = (openmetrics, compress)
        body = self._cache.get(key)
        if body is None:
            if compress:
                body = gzip.compress(self.render(openmetrics, False), compresslevel=5)
            elif openmetrics:
                body = openmetrics_format.generate_latest(self._registry)  # type: ignore[no-untyped-call]
            else:
                body = text_format.generate_latest(self._registry)
            self._cache[key] = body
        return body


def wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in accept.lower()


def accepts_gzip(accept_encoding: str) -> bool:
    return any(part.split(";")[0].strip() == "gzip" for part in accept_encoding.lower().split(","))
