"""Shared per-dependency rate limits, so several probes together can never hammer one system."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from asyncio_throttle.throttler import Throttler

from exporter.config import Config


@dataclass
class Dependencies:
    """What probes share: one throttle per dependency (absent = unlimited)."""

    throttlers: dict[str, Throttler] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> Dependencies:
        limits = {
            "postgres": config.rate_limits.postgres_per_second,
            "redis": config.rate_limits.redis_per_second,
        }
        return cls({name: _throttler(rate) for name, rate in limits.items() if rate is not None})

    @contextlib.asynccontextmanager
    async def throttle(self, dependency: str) -> AsyncIterator[None]:
        throttler = self.throttlers.get(dependency)
        if throttler is None:
            yield
            return
        async with throttler:
            yield


def _throttler(per_second: float) -> Throttler:
    # asyncio-throttle counts whole calls per period: express fractional rates over a longer period.
    if per_second >= 1:
        return Throttler(rate_limit=int(per_second), period=1.0)
    return Throttler(rate_limit=1, period=1.0 / per_second)
