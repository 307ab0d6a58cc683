"""Turn any exception a probe raises into one reason from a small fixed vocabulary.

Reasons become label values, so the set must stay bounded and must never carry a message that
could hold a host name with credentials or a server's free text.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import ssl

REASONS = ("timeout", "refused", "dns", "tls", "auth", "protocol", "unavailable", "error")

_AUTH_WORDS = (
    "password", "authentication", "auth", "noperm", "permission denied", "wrongpass", "not allowed",
    "not permitted to log in",  # PostgreSQL: a NOLOGIN role (SQLSTATE 28000)
    "no such user",  # pgbouncer: a user missing from its auth_file
)
_PG_NO_ROLE = re.compile(r'role "[^"]*" does not exist')
# Phrases that mean the peer spoke another protocol, checked before the auth words: libpq's
# "expected authentication request from server, but received S" is a wrong reply, not a login failure.
_PROTOCOL_FIRST = (
    "but received", "bad status line", "invalid response", "protocol error", "malformed",
    "response too long",  # aiosmtplib: a reply line over 8 KiB or a reply over 32 KiB
    "wrongtype",  # Redis: a key holds another type than the one the probe reads (data of the wrong shape)
)
# Exception types (anywhere in the class hierarchy) that mean "the reply was not the protocol we speak":
# aiohttp's parser errors, http.client's and urllib3's, redis-py's, JSON and text decoding.
_PROTOCOL_TYPES = frozenset({
    "HttpProcessingError", "BadStatusLine", "HTTPException", "ProtocolError", "InvalidResponse",
    "JSONDecodeError", "UnicodeDecodeError", "LineTooLong", "ContentLengthError", "TransferEncodingError",
})


class MalformedReply(Exception):
    """The dependency answered, but with something we cannot use (oversized, unparsable, wrong shape).

    Probes raise it (with a message naming no server text) so the reason is `protocol`.
    """


def classify(exc: BaseException) -> str:
    """Map an exception to one of REASONS.

    The causes chain is read twice: first for the precise OS-level type anywhere in it (a client
    library's generic ConnectionError often wraps a ConnectionRefusedError), then for words.
    """
    chain = _chain(exc)
    for item in chain:
        declared = getattr(item, "reason", None)
        if isinstance(declared, str) and declared in REASONS:
            return declared
    for item in chain:
        reason = _by_type(item)
        if reason:
            return reason
    for item in chain:
        reason = _by_text(item)
        if reason:
            return reason
    return "error"


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _by_type(exc: BaseException) -> str:
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
    if isinstance(exc, MalformedReply) or _PROTOCOL_TYPES & {cls.__name__ for cls in type(exc).__mro__}:
        return "protocol"
    return ""


def _by_text(exc: BaseException) -> str:
    text = str(exc).lower()
    name = type(exc).__name__.lower()
    if "timeout" in name or "timed out" in text or "timeout expired" in text:
        return "timeout"
    if any(phrase in text for phrase in _PROTOCOL_FIRST):
        return "protocol"
    if "authentication" in name or any(word in text for word in _AUTH_WORDS) or _PG_NO_ROLE.search(text):
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
    return ""
