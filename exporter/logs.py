"""Structured logging: JSON lines by default, plain text on request; secrets always masked."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from exporter.redact import RedactingFilter


def setup_logging(fmt: str = "json", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries' own chatter (aiohttp access lines, kubernetes client debug) stays out of our stream.
    for noisy in ("aiohttp.access", "urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
