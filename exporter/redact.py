"""Keep secrets out of every log line and error text the exporter writes."""

from __future__ import annotations

import logging
import re

_secrets: set[str] = set()
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(?P<key>password\s*=\s*)(?:'[^']*'|\S+)", re.IGNORECASE)


def register_secrets(values: list[str]) -> None:
    """Remember secret values so that any text passed through `redact` masks them."""
    _secrets.update(v for v in values if v)


def redact(text: str) -> str:
    text = _URL_PASSWORD.sub(r"\g<scheme>\g<user>:****@", text)
    text = _KV_PASSWORD.sub(r"\g<key>****", text)
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "****")
    return text


class RedactingFilter(logging.Filter):
    """Applied to every handler: formats the record once, then masks secrets in the result."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key.startswith("probe_") and isinstance(value, str):
                setattr(record, key, redact(value))
        if record.exc_info:
            record.exc_text = None
        return True
