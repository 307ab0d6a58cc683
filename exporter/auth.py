"""Credentials on /metrics and the landing page: the config's bearer token or basic auth (`server.auth`), or the
web config file's bcrypt `basic_auth_users` (exporter.webconfig).

Comparisons are constant-time (hmac.compare_digest over bytes) so the time an answer takes says
nothing about how much of a guess was right. /healthz and /readyz stay open: kubelet probes carry no
credentials and those endpoints reveal nothing. A refused request is logged (exporter.refusals: the peer and
"wrong credentials" or "no credentials", never what was sent).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

from exporter.config import ServerAuth
from exporter.refusals import RefusalLog

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
REALM = "honeydue-exporter"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Checker(Protocol):
    """Decides on one request's Authorization header; `challenge` is the WWW-Authenticate of a 401."""

    challenge: str

    async def allows(self, header: str) -> bool: ...


class Authenticator:
    """Checks one request's Authorization header against `server.auth`."""

    def __init__(self, auth: ServerAuth) -> None:
        self._token = auth.token.get_secret_value().encode() if auth.token is not None else None
        self._username = (auth.username or "").encode()
        self._password = auth.password.get_secret_value().encode() if auth.password is not None else b""
        if self._token is not None:
            self.challenge = f'Bearer realm="{REALM}"'
        else:
            self.challenge = f'Basic realm="{REALM}", charset="UTF-8"'

    async def allows(self, header: str) -> bool:
        return self.matches(header)

    def matches(self, header: str) -> bool:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if self._token is not None:
            return scheme.lower() == "bearer" and hmac.compare_digest(value.encode(), self._token)
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            return False
        user, sep, password = decoded.partition(b":")
        # Both comparisons always run, so a right username is not faster to reject than a wrong one.
        user_ok = hmac.compare_digest(user, self._username)
        password_ok = hmac.compare_digest(password, self._password)
        return bool(sep) and user_ok and password_ok


def middleware(current: Callable[[], Checker | None], refusals: RefusalLog) -> Middleware:
    """`current()` is the checker in force for this request (None: open), so a reloaded web config applies."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        checker = current()
        if checker is None or request.path in OPEN_PATHS:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if await checker.allows(header):
            return await handler(request)
        refusals.refused("credentials", request.remote or "unknown", "wrong credentials" if header else "no credentials")
        return web.Response(status=401, text="401 Unauthorized\n", headers={"WWW-Authenticate": checker.challenge})

    return check
