"""Turn any exception a probe raises into one reason from a small fixed vocabulary.

Reasons become label values, so the set must stay bounded and must never carry a message that
could hold a host name with credentials or a server's free text.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

REASONS = ("timeout", "refused", "dns", "tls", "auth", "protocol", "unavailable", "error")

_AUTH_WORDS = ("password", "authentication", "auth", "noperm", "permission denied", "wrongpass", "not allowed")


def classify(exc: BaseException) -> str:
    """Map an exception to one of REASONS, looking through the causes chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        reason = _classify_one(current)
        if reason != "error":
            return reason
        current = current.__cause__ or current.__context__
    return "error"


def _classify_one(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | EOFError):
        return "unavailable"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED,):
        return "refused"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNRESET):
        return "unavailable"
    text = str(exc).lower()
    name = type(exc).__name__.lower()
    if "timeout" in name or "timed out" in text or "timeout expired" in text:
        return "timeout"
    if "authentication" in name or any(word in text for word in _AUTH_WORDS):
        return "auth"
    if "connection refused" in text:
        return "refused"
    if "could not translate host name" in text or "name or service not known" in text:
        return "dns"
    if "ssl" in text or "certificate" in text:
        return "tls"
    if "protocol" in text or "invalid response" in text or "unexpected" in text or "malformed" in text:
        return "protocol"
    if "connection" in name or "closed" in text or "reset" in text or "server closed" in text:
        return "unavailable"
    return "error"
