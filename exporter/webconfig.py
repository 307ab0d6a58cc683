"""`--web.config.file`: the listener's TLS and basic auth in exporter-toolkit's format.

node_exporter, blackbox_exporter and postgres_exporter read the same YAML file, so one file (and one
Secret) serves them all: `tls_server_config` (cert_file, key_file, client_ca_file, client_auth_type,
min_version, max_version), `http_server_config` (response headers) and `basic_auth_users` (bcrypt hashes).
Relative paths are read from the file's directory, as the toolkit does. What the toolkit offers and this
exporter does not (Go cipher-suite and curve names, client SAN lists, a rate limiter, inline PEM, client
certificates accepted without verification) is refused with a line naming the key, never ignored.

Like the toolkit, the file and the certificate files it names are read again when they change (checked at
most once a second, on a connection or a request): a certificate renewed by cert-manager is served without a
restart. A change that does not load is logged and the last good configuration stays in force.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
import re
import secrets
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from exporter.config import ConfigError
from exporter.config import _one_line as one_line_error

log = logging.getLogger("exporter.web")

ClientAuthType = Literal[
    "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"
]
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
                 "TLS13": ssl.TLSVersion.TLSv1_3}
_VERIFY_MODES = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                 "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
# exporter-toolkit's accepted response headers and, where it checks them, their values.
_HEADERS: dict[str, tuple[str, ...]] = {
    "Content-Security-Policy": (), "X-Frame-Options": ("deny", "sameorigin"), "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": (), "Strict-Transport-Security": (),
}
_BCRYPT = re.compile(r"^\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}$")
RELOAD_CHECK_SECONDS = 1.0


def _refuse(model: BaseModel, unsupported: dict[str, str]) -> None:
    """Raise for the first toolkit key that is set but not implemented here: `key -> what to use instead`."""
    for name, instead in unsupported.items():
        if getattr(model, name) is not None:
            raise ValueError(f"{name} is not supported by honeydue-exporter{instead}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsServerConfig(_Section):
    """The listener's certificate and what it asks of clients."""

    cert_file: Path = Field(description="PEM certificate (chain) the listener presents")
    key_file: Path = Field(description="PEM private key of that certificate")
    client_auth_type: ClientAuthType = Field("NoClientCert", description="what a client must present")
    client_ca_file: Path | None = Field(None, description="PEM CA(s) a client certificate must chain to")
    min_version: TlsVersion = Field("TLS12", description="oldest TLS version accepted")
    max_version: TlsVersion = Field("TLS13", description="newest TLS version accepted")
    prefer_server_cipher_suites: bool = Field(True, description="accepted for compatibility; ignored (as in Go)")
    cert: str | None = None
    key: SecretStr | None = None
    client_ca: str | None = None
    client_allowed_sans: list[str] | None = None
    cipher_suites: list[str] | None = None
    curve_preferences: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TlsServerConfig:
        _refuse(self, {
            "cert": ": give cert_file", "key": ": give key_file", "client_ca": ": give client_ca_file",
            "client_allowed_sans": ": issue the clients' certificates from their own CA (client_ca_file)",
            "cipher_suites": " (OpenSSL's defaults for the TLS versions allowed apply)",
            "curve_preferences": " (OpenSSL's defaults apply)",
        })
        if self.client_auth_type in ("RequestClientCert", "RequireAnyClientCert"):
            raise ValueError(f"client_auth_type {self.client_auth_type} accepts unverified certificates and is not "
                             "supported: use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file")
        verifies = self.client_auth_type != "NoClientCert"
        if verifies and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if not verifies and self.client_ca_file is not None:
            raise ValueError("client_ca_file is set but client_auth_type is NoClientCert")
        if _TLS_VERSIONS[self.min_version] > _TLS_VERSIONS[self.max_version]:
            raise ValueError(f"min_version {self.min_version} is newer than max_version {self.max_version}")
        return self

    def files(self) -> tuple[Path, ...]:
        return (self.cert_file, self.key_file) + ((self.client_ca_file,) if self.client_ca_file else ())


class HttpServerConfig(_Section):
    http2: bool = Field(True, description="accepted for compatibility; the listener speaks HTTP/1.1 only")
    headers: dict[str, str] = Field(default_factory=dict, description="headers added to every response")

    @field_validator("headers")
    @classmethod
    def _known_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if name not in _HEADERS:
                raise ValueError(f"header {name!r} can not be configured (one of: {', '.join(_HEADERS)})")
            allowed = _HEADERS[name]
            if allowed and text.lower() not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        return value


class WebConfig(_Section):
    """The whole file."""

    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = HttpServerConfig()
    basic_auth_users: dict[str, SecretStr] = Field(default_factory=dict, description="user -> bcrypt hash")
    rate_limit: dict[str, Any] | None = None

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for user, hashed in value.items():
            if not user or ":" in user:
                raise ValueError("a user name must be non-empty and hold no colon")
            if not _BCRYPT.match(hashed.get_secret_value()):
                raise ValueError(f"the password of {user!r} is not a bcrypt hash (htpasswd -nBC 10 \"\" | tr -d ':\\n')")
        return value

    @model_validator(mode="after")
    def _supported(self) -> WebConfig:
        _refuse(self, {"rate_limit": " (limit requests in front of the exporter, or in vmagent)"})
        return self


def load_web_config(path: Path) -> WebConfig:
    """Read and check the file; relative paths become the file's directory's. ConfigError names the problem."""
    where = f"web config file {str(path)!r}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{where}: not valid YAML") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: top level must be a mapping")
    try:
        config = WebConfig(**{str(k): v for k, v in data.items()})
    except ValidationError as exc:
        raise ConfigError(f"{where}: {one_line_error(exc)}") from None
    tls = config.tls_server_config
    if tls is not None:
        base = path.parent
        tls = tls.model_copy(update={name: base / getattr(tls, name) for name in ("cert_file", "key_file", "client_ca_file")
                                     if getattr(tls, name) is not None and not getattr(tls, name).is_absolute()})
        config = config.model_copy(update={"tls_server_config": tls})
        ssl_context(tls, where)  # the certificate, key and CA load now, or the exporter does not start
    return config


def ssl_context(tls: TlsServerConfig, where: str = "web config") -> ssl.SSLContext:
    """The server-side context: only the given CA verifies clients (never the system's trust store)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    context.maximum_version = _TLS_VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{where}: tls_server_config: cannot load cert_file/key_file: {_why(exc)}") from None
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{where}: tls_server_config: cannot load client_ca_file: {_why(exc)}") from None
    context.verify_mode = _VERIFY_MODES[tls.client_auth_type]
    return context


def _why(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc.strerror or type(exc).__name__)
    return str(exc.strerror or type(exc).__name__)


def _stamp(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int], ...]:
    """What changes when a file is replaced (a Secret volume swaps a symlink) or rewritten."""
    stamps = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            stamps.append((0, 0, 0))
        else:
            stamps.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(stamps)


class WebConfigSource:
    """The file in force, re-read when it or a file it names changes (the last good one stays on error)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self.config = load_web_config(path)
        self._build()
        self._checked = clock()
        self._stamp = self._files_stamp()

    def _files(self) -> tuple[Path, ...]:
        tls = self.config.tls_server_config
        return (self.path, *(tls.files() if tls else ()))

    def _files_stamp(self) -> tuple[tuple[int, int, int], ...]:
        return _stamp(self._files())

    def _build(self) -> None:
        tls = self.config.tls_server_config
        self.context = ssl_context(tls) if tls is not None else None
        self.users = BasicAuthUsers(self.config.basic_auth_users) if self.config.basic_auth_users else None

    def refresh(self) -> None:
        """Reload when a file changed since the last look (at most one look per RELOAD_CHECK_SECONDS)."""
        now = self._clock()
        if now - self._checked < RELOAD_CHECK_SECONDS:
            return
        self._checked = now
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        previous = self.config
        try:
            self.config = load_web_config(self.path)
            tls = self.config.tls_server_config
            if (tls is None) != (previous.tls_server_config is None):
                raise ConfigError("tls_server_config cannot be added or removed while running: restart the exporter")
            self._build()
        except ConfigError as exc:
            self.config = previous
            log.error("web config not reloaded, the previous one stays in force: %s", exc)
            return
        self._stamp = self._files_stamp()
        log.info("web config reloaded from %s", self.path)


class BasicAuthUsers:
    """Checks `Authorization: Basic` against bcrypt hashes without stalling the event loop.

    bcrypt is slow on purpose (cost 10: about 70 ms), so a check runs in a worker thread, at most two at a
    time, and a user's successful check is remembered (a salted SHA-256 of user and password, never the
    password; at most 64 entries) so each scrape does not pay it again. An unknown user costs the same as a
    wrong password (a check against a dummy hash), so timing does not tell which names exist.
    """

    CACHE_SIZE = 64

    def __init__(self, users: dict[str, SecretStr]) -> None:
        import bcrypt  # here: only a listener with basic_auth_users pays for the import

        self._checkpw = bcrypt.checkpw
        self._users = {user.encode(): hashed.get_secret_value().encode() for user, hashed in users.items()}
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(self._cost()))
        self._salt = secrets.token_bytes(16)
        self._remembered: OrderedDict[bytes, None] = OrderedDict()
        self._running = asyncio.Semaphore(2)
        self.challenge = 'Basic realm="honeydue-exporter", charset="UTF-8"'

    def _cost(self) -> int:
        costs = [int(hashed.split(b"$")[2]) for hashed in self._users.values()]
        return max(4, min(max(costs), 31))

    async def allows(self, header: str) -> bool:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip().encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        key = hashlib.sha256(self._salt + user + b"\0" + password).digest()
        if key in self._remembered:
            self._remembered.move_to_end(key)
            return True
        hashed = self._users.get(user)
        async with self._running:
            matched = await asyncio.to_thread(self._checkpw, password, hashed or self._dummy)
        if not (matched and hashed is not None):
            return False
        self._remembered[key] = None
        while len(self._remembered) > self.CACHE_SIZE:
            self._remembered.popitem(last=False)
        return True
