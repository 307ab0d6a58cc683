"""One log line per kind of refused connection or request, not one per attempt.

A scraper with a wrong password or an expired client certificate retries every scrape interval, and a
scanner may try thousands of times: the first refusal of a kind and reason is logged at once, later ones are
counted and summed up in the next such line after `every` seconds. A line names the peer's address and why (the TLS
alert, "wrong credentials"), never a user name, password or header.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RefusalLog:
    def __init__(self, logger: logging.Logger, every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._every = every
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def refused(self, kind: str, peer: str, why: str) -> None:
        now = self._clock()
        key = (kind, why)
        last = self._last.get(key)
        if last is not None and now - last < self._every:
            self._held[key] = self._held.get(key, 0) + 1
            return
        self._last[key] = now
        held = self._held.pop(key, 0)
        more = f" ({held} more like it in the last {now - last:.0f}s)" if held and last is not None else ""
        self._log.warning("%s refused from %s: %s%s", kind, peer, why, more)
