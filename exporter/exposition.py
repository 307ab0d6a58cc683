"""Render the engine's snapshots as Prometheus text or OpenMetrics, cached per snapshot generation.

A scrape never does I/O and, between probe runs, never even re-renders: the bytes for each
format (and their gzip) are kept until the engine publishes a new snapshot.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_format
from prometheus_client.core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_format
from prometheus_client.registry import Collector

from exporter.engine import Engine
from exporter.samples import merge

TEXT_CONTENT_TYPE = text_format.CONTENT_TYPE_LATEST
OPENMETRICS_CONTENT_TYPE = openmetrics_format.CONTENT_TYPE_LATEST


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
        self._generation = -1
        self._cache: dict[tuple[bool, bool], bytes] = {}

    def render(self, openmetrics: bool = False, compress: bool = False) -> bytes:
        if self._engine.generation != self._generation:
            self._cache.clear()
            self._generation = self._engine.generation
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
