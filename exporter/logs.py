"""Structured logging: JSON lines by default, plain text on request; secrets always masked.

Timestamps are RFC 3339 in UTC with milliseconds (`2026-12-06T17:49:59.198Z`), whatever the machine's
time zone: a line read next to vmagent's, Alertmanager's or the API server's compares at a glance.
"""

from __future__ import annotations

import datetime
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from exporter.redact import RedactingFilter

LEVELS = ("debug", "info", "warning", "error")


def rfc3339(created: float) -> str:
    """A log record's time as RFC 3339 UTC, millisecond precision."""
    stamp = datetime.datetime.fromtimestamp(created, datetime.UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class _Rfc3339Json(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return rfc3339(record.created)


class _Rfc3339Text(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return rfc3339(record.created)


def setup_logging(fmt: str = "json", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            _Rfc3339Json(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(_Rfc3339Text("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries' own chatter (aiohttp access lines, kubernetes client debug) stays out of our stream.
    for noisy in ("aiohttp.access", "urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
