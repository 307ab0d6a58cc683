"""Configuration: one YAML file, overridden by HONEYDUE_* environment variables.

Every field has a default so the exporter runs with no file on a developer machine. Secrets are
`SecretStr` (never printed) and may come from the environment or from a `*_file` path; the file is
read at load time so an unreadable secret is a config error, not a failure at 3 a.m.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "HONEYDUE_"
DEFAULT_RUNBOOK_BASE_URL = "https://git.example.com/honeyDue/honeyDueAPI/src/branch/main/docs/deployment"


class ConfigError(Exception):
    """A configuration problem, already phrased as one line for the operator."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret_file(path: Path, field: str) -> SecretStr:
    try:
        return SecretStr(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ValueError(f"cannot read secret file {str(path)!r} for {field}: {exc.strerror}") from None


class Schedule(_Strict):
    """How often a probe runs and how long one run may take."""

    interval: float = Field(15.0, gt=0, description="seconds between probe starts")
    timeout: float = Field(5.0, gt=0, description="seconds before a probe run is abandoned")

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> Schedule:
        if self.timeout >= self.interval:
            raise ValueError(f"timeout ({self.timeout:g}s) must be less than interval ({self.interval:g}s)")
        return self


class RedisConfig(Schedule):
    enabled: bool = True
    url: str = "redis://127.0.0.1:6379/0"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    restart_hold: float = Field(1800.0, gt=0, description="seconds honeydue_redis_restarted_empty stays 1")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported scheme {parts.scheme!r}: use redis://, rediss:// or unix://")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("URL has no host")
        if parts.password:
            raise ValueError("URL contains a password: use redis.password_file or HONEYDUE_REDIS__PASSWORD")
        try:
            parts.port  # noqa: B018 - raises on a non-numeric port
        except ValueError:
            raise ValueError("URL has an invalid port") from None
        return value

    @model_validator(mode="after")
    def _load_password_file(self) -> RedisConfig:
        if self.password_file is not None and self.password is None:
            object.__setattr__(self, "password", _read_secret_file(self.password_file, "redis.password_file"))
        return self


class PostgresEndpoint(Schedule):
    """One way to reach the database: Neon's pooler, or the direct compute endpoint."""

    interval: float = Field(30.0, gt=0)
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(5432, ge=1, le=65535)
    dbname: str = "postgres"
    user: str = "postgres"
    password: SecretStr | None = None
    password_file: Path | None = None
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    connect_timeout: float = Field(3.0, gt=0)
    reuse_connection: bool = Field(
        False, description="keep one connection open between runs (measures queries, not reachability)"
    )

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if not value or any(c in value for c in " /@?#"):
            raise ValueError(f"invalid host {value!r}")
        return value

    @model_validator(mode="after")
    def _load_password_file(self) -> PostgresEndpoint:
        if self.password_file is not None and self.password is None:
            object.__setattr__(self, "password", _read_secret_file(self.password_file, "postgres password_file"))
        if self.connect_timeout > self.timeout:
            raise ValueError(f"connect_timeout ({self.connect_timeout:g}s) must not exceed timeout ({self.timeout:g}s)")
        return self


class PostgresEndpoints(_Strict):
    pooler: PostgresEndpoint = PostgresEndpoint()
    direct: PostgresEndpoint = PostgresEndpoint()


# --- edge and external-service probes (HTTP, DNS, SMTP) -------------------------------------------
_LABEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
HttpRole = Literal["public", "origin", "api_shallow", "api_deep", "admin", "b2", "registry", "obs_ingest", "other"]


def _check_label_name(value: str) -> str:
    if not _LABEL_NAME.match(value):
        raise ValueError(f"{value!r} must be lower-case letters, digits and underscores, starting with a letter")
    return value


def _check_http_url(value: str | None, credentials_hint: str = "") -> str | None:
    """An http(s) URL with a host and no user:password in it (credentials belong in *_file fields)."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    if parts.password or parts.username:
        raise ValueError("URL must not carry credentials" + (f": {credentials_hint}" if credentials_hint else ""))
    return value


class HttpTarget(Schedule):
    """One URL probed over a fresh connection each run; `name` and `role` become labels."""

    interval: float = Field(30.0, gt=0)
    name: str
    role: HttpRole
    url: str
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expected_status: list[int] = Field(default_factory=lambda: [200], min_length=1)
    body_contains: str | None = Field(None, description="the response body (first 64 KiB) must contain this text")
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    tls_verify: bool = True
    follow_redirects: bool = False

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _check_label_name(value)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        _check_http_url(value, "use bearer_token_file")
        return value

    @field_validator("expected_status")
    @classmethod
    def _check_statuses(cls, value: list[int]) -> list[int]:
        bad = [code for code in value if not 100 <= code <= 599]
        if bad:
            raise ValueError(f"not HTTP status codes: {bad}")
        return value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        if any(k.lower() == "authorization" for k in value):
            raise ValueError("put credentials in bearer_token_file, not in headers")
        return value

    @model_validator(mode="after")
    def _load_token_file(self) -> HttpTarget:
        if self.bearer_token_file is not None and self.bearer_token is None:
            token = _read_secret_file(self.bearer_token_file, f"http target {self.name} bearer_token_file")
            object.__setattr__(self, "bearer_token", token)
        return self


class HttpConfig(_Strict):
    targets: list[HttpTarget] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> HttpConfig:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate target names: {dupes}")
        return self


class DnsResolver(_Strict):
    """A DNS server queried directly (no system resolver, no cache in between)."""

    address: str
    port: int = Field(53, ge=1, le=65535)
    protocol: Literal["udp", "tcp"] = "udp"

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
        return value


class DnsLookup(Schedule):
    """One name asked of each listed resolver; answers outside `expected_cidrs` count as unexpected."""

    interval: float = Field(30.0, gt=0)
    name: str
    role: Literal["cluster", "public"] = "public"
    record_type: Literal["A", "AAAA"] = "A"
    resolvers: list[str] = Field(min_length=1)
    expected_cidrs: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _check_dns_name(cls, value: str) -> str:
        value = value.rstrip(".").lower()
        if not value or len(value) > 253 or not re.fullmatch(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9])?", value):
            raise ValueError(f"{value!r} is not a DNS name")
        return value

    @field_validator("expected_cidrs")
    @classmethod
    def _check_cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not a CIDR") from None
        return value


class DnsConfig(_Strict):
    resolvers: dict[str, DnsResolver] = Field(default_factory=dict)
    lookups: list[DnsLookup] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_resolvers(self) -> DnsConfig:
        for name in self.resolvers:
            _check_label_name(name)
        for lookup in self.lookups:
            unknown = [r for r in lookup.resolvers if r not in self.resolvers]
            if unknown:
                raise ValueError(f"lookup {lookup.name}: unknown resolvers {unknown}")
        pairs = [(lookup.name, lookup.record_type, r) for lookup in self.lookups for r in lookup.resolvers]
        if len(set(pairs)) != len(pairs):
            raise ValueError("the same name, record type and resolver are listed twice")
        return self


class SmtpTarget(Schedule):
    """An SMTP server: banner 220, EHLO, STARTTLS advertised and (optionally) the TLS handshake."""

    interval: float = Field(60.0, gt=0)
    timeout: float = Field(10.0, gt=0)
    name: str
    host: str
    port: int = Field(587, ge=1, le=65535)
    require_starttls: bool = Field(True, description="STARTTLS must be advertised after EHLO")
    tls_handshake: bool = Field(True, description="also run STARTTLS and complete the TLS handshake")
    tls_verify: bool = True
    ehlo_hostname: str = "honeydue-exporter.invalid"

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _check_label_name(value)


class SmtpConfig(_Strict):
    targets: list[SmtpTarget] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> SmtpConfig:
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate target names: {names}")
        return self


class AsynqConfig(Schedule):
    """Asynq's state read straight from Redis (the Redis of `redis`; `db` may differ from redis.url's).

    Enabled by default: it is read-only and with no Asynq state it reports zero queues.
    `enabled: null` follows `redis.enabled`.
    """

    enabled: bool | None = None
    db: int | None = Field(None, ge=0, description="Redis database Asynq uses (default: the one in redis.url)")
    max_active_checked: int = Field(
        1000, ge=1, le=100_000, description="active task ids per queue checked for a missing lease"
    )
    max_scheduler_entries: int = Field(200, ge=1, le=10_000, description="cron entries read per cycle")


class ResidenceCacheConfig(Schedule):
    """The residence-IDs cache staleness probe: sampled cache entries against the database's truth.

    Disabled by default: it needs honeyDue's schema (residence_residence, residence_residence_users)
    and its cache keys, which a developer machine does not have. Reads Redis with the `redis`
    connection settings and Postgres through the `postgres.<database>` endpoint.
    """

    interval: float = Field(60.0, gt=0)
    timeout: float = Field(10.0, gt=0)
    enabled: bool = False
    key_pattern: str = Field(
        "residence_ids:{user_id}", description="cache key with {user_id} where the user's numeric id sits"
    )
    encoding: Literal["json", "set", "csv"] = Field(
        "json", description="json: a JSON array of ids; set: a Redis set of ids; csv: '1,2,3'"
    )
    db: int | None = Field(None, ge=0, description="Redis database of the cache (default: the one in redis.url)")
    sample_size: int = Field(50, ge=1, le=1000, description="cache entries compared per cycle (K)")
    scan_count: int = Field(200, ge=1, le=10_000, description="COUNT hint of each SCAN call")
    max_scan_calls: int = Field(20, ge=1, le=1000, description="SCAN calls per cycle at most")
    cache_ttl: float = Field(300.0, gt=0, description="the TTL the service sets on an entry, for entry age")
    database: Literal["pooler", "direct"] = "pooler"

    @field_validator("key_pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        if value.count("{user_id}") != 1:
            raise ValueError("must contain {user_id} exactly once")
        if any(ch in value.replace("{user_id}", "") for ch in "*?[]\\"):
            raise ValueError("must not contain glob characters (* ? [ ] \\)")
        return value

class KubernetesConfig(Schedule):
    """Where the Kubernetes API is and which of honeyDue's objects to watch (chapter 16 defaults).

    `source: auto` uses the pod's service account when running in a pod, else the kubeconfig; when
    neither exists the probes are off and `honeydue_kube_config_info{source="none"}` says so.
    """

    interval: float = Field(30.0, gt=0)
    timeout: float = Field(10.0, gt=0)
    source: Literal["auto", "in-cluster", "kubeconfig", "off"] = "auto"
    kubeconfig: Path | None = Field(None, description="default: $KUBECONFIG, then ~/.kube/config")
    context: str | None = None
    connect_timeout: float = Field(2.0, gt=0, description="TCP/TLS connect timeout of one API request")
    read_timeout: float = Field(5.0, gt=0, description="read timeout of one API request")
    deployments: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "honeydue": ("api", "admin", "worker", "redis", "vmagent"),
            "kube-system": ("coredns", "metrics-server", "traefik"),
        },
        description="namespace -> deployments to watch; pods are watched in the same namespaces",
    )
    node_workloads: tuple[str, ...] = Field(
        ("honeydue/api", "kube-system/traefik"),
        description="namespace/name of workloads whose ready pods are counted per node",
    )
    workload_label: str = "app.kubernetes.io/name"
    redis_node_label: str = "honeydue/redis=true"
    control_plane_label: str = "node-role.kubernetes.io/control-plane"
    apiservices: tuple[str, ...] = ("v1beta1.metrics.k8s.io",)
    apiserver_port: int = Field(6443, ge=1, le=65535, description="each server node's API port for /readyz/etcd")
    # Longer than kube-apiserver's --etcd-readycheck-timeout (2 s): with etcd unhealthy, /readyz/etcd answers
    # its 500 after up to 2 s (measured on a real 1.35 API server), and a 2 s timeout lost half the verdicts.
    readyz_timeout: float = Field(3.0, gt=0, description="connect and read timeout of one /readyz/etcd check")
    max_bytes: int = Field(
        16 * 1024 * 1024, gt=0, description="largest API response body read (a bigger one fails as protocol)"
    )
    etcd_quorum: int | None = Field(None, ge=1, description="default: a majority of the control-plane nodes")

    @field_validator("redis_node_label")
    @classmethod
    def _check_label(cls, value: str) -> str:
        key, sep, _ = value.partition("=")
        if not sep or not key:
            raise ValueError("must be key=value")
        return value

    @field_validator("node_workloads")
    @classmethod
    def _check_workloads(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            namespace, sep, name = item.partition("/")
            if not sep or not namespace or not name:
                raise ValueError(f"{item!r} must be namespace/name")
        return value

    @model_validator(mode="after")
    def _timeouts_fit(self) -> KubernetesConfig:
        if self.connect_timeout + self.read_timeout >= self.timeout:
            raise ValueError(
                f"connect_timeout + read_timeout ({self.connect_timeout + self.read_timeout:g}s) "
                f"must be less than timeout ({self.timeout:g}s)"
            )
        return self


# --- network paths, vmagent, "no data" (issue 5, observability half) -----------------------------

_TARGET_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def split_address(value: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port); ValueError when malformed."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"address {value!r} must be host:port")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"address {value!r}: port out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(c in host for c in " /@?#"):
        raise ValueError(f"address {value!r}: invalid host")
    return host, port


class TcpTarget(_Strict):
    """One TCP path to check: an essential dependency, a backend pod IP or a Service ClusterIP.

    `name` becomes a label value (so the label set stays bounded by the config); the address never does.
    """

    name: str = Field(pattern=_TARGET_NAME)
    address: str
    role: Literal["essential", "pod", "service"] = "essential"
    backend: str = Field("", pattern=r"^$|" + _TARGET_NAME, description="the backend a pod/service target belongs to")
    node: str = Field("", max_length=253, description="node hosting a pod target (local vs remote path)")

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        split_address(value)
        return value

    @model_validator(mode="after")
    def _backend_for_pod_and_service(self) -> TcpTarget:
        if self.role in ("pod", "service") and not self.backend:
            raise ValueError(f"target {self.name}: role {self.role} needs a backend")
        return self


class TcpConfig(Schedule):
    """TCP connect probes; `mode: netcheck` (or `run --mode netcheck`) runs only these, per node."""

    interval: float = Field(15.0, gt=0)
    timeout: float = Field(3.0, gt=0)
    node_name: str = Field(
        default_factory=lambda: os.environ.get("NODE_NAME", ""), max_length=253,
        description="this exporter's node (downward API env NODE_NAME); the `node` label",
    )
    targets: tuple[TcpTarget, ...] = ()

    @field_validator("targets")
    @classmethod
    def _unique_names(cls, value: tuple[TcpTarget, ...]) -> tuple[TcpTarget, ...]:
        names = [t.name for t in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate target names: {', '.join(duplicates)}")
        return value


class VmagentConfig(Schedule):
    """vmagent's own /metrics (remote-write health); disabled until `url` is set."""

    url: str | None = Field(None, description="e.g. http://vmagent.honeydue.svc:8429/metrics")
    max_bytes: int = Field(8 * 1024 * 1024, gt=0, description="largest /metrics body read")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return _check_http_url(value)


class NoDataConfig(Schedule):
    """Checks that every metric the shipped rules and dashboards use has series in the obs TSDB."""

    interval: float = Field(300.0, gt=0)
    timeout: float = Field(15.0, gt=0)
    query_url: str | None = Field(None, description="VictoriaMetrics/Prometheus base URL, e.g. http://vm:8428")
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    ignore: tuple[str, ...] = Field((), description="metric names not to check (families not deployed)")
    max_bytes: int = Field(4 * 1024 * 1024, gt=0)

    @field_validator("query_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return _check_http_url(value)

    @model_validator(mode="after")
    def _load_token_file(self) -> NoDataConfig:
        if self.bearer_token_file is not None and self.bearer_token is None:
            token = _read_secret_file(self.bearer_token_file, "nodata.bearer_token_file")
            object.__setattr__(self, "bearer_token", token)
        return self


class RateLimits(_Strict):
    """Per-dependency ceilings shared by every probe, so the exporter can never hammer production."""

    postgres_per_second: float | None = Field(5.0, gt=0)
    redis_per_second: float | None = Field(None, gt=0)
    kubernetes_per_second: float | None = Field(20.0, gt=0)


class ServerAuth(_Strict):
    """Credentials a scraper must send for /metrics and the landing page (/healthz and /readyz stay open).

    Either a bearer token (`token` / `token_file`) or basic auth (`username` + `password` / `password_file`).
    """

    token: SecretStr | None = None
    token_file: Path | None = None
    username: str | None = Field(None, min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_scheme(self) -> ServerAuth:
        if self.token_file is not None and self.token is None:
            object.__setattr__(self, "token", _read_secret_file(self.token_file, "server.auth.token_file"))
        if self.password_file is not None and self.password is None:
            object.__setattr__(self, "password", _read_secret_file(self.password_file, "server.auth.password_file"))
        bearer = self.token is not None
        basic = self.username is not None or self.password is not None
        if bearer and basic:
            raise ValueError("set either token(_file) or username + password(_file), not both")
        if not bearer and not basic:
            raise ValueError("set token(_file), or username + password(_file)")
        if basic and (self.username is None or self.password is None):
            raise ValueError("basic auth needs both username and password(_file)")
        secret = self.token if bearer else self.password
        if secret is None or not secret.get_secret_value():
            raise ValueError("the token or password is empty")
        return self


class ServerConfig(_Strict):
    listen_address: str = "0.0.0.0"  # noqa: S104 - an exporter is scraped from other pods
    port: int = Field(9817, ge=1, le=65535)
    shutdown_timeout: float = Field(4.0, gt=0, le=30)
    auth: ServerAuth | None = Field(None, description="require credentials on /metrics (default: open)")


class LogConfig(_Strict):
    format: Literal["json", "text"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


class RunbookConfig(_Strict):
    base_url: str = DEFAULT_RUNBOOK_BASE_URL

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")


class Config(BaseSettings):
    """The whole configuration; see README 'Configuration' for every field."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    server: ServerConfig = ServerConfig()
    log: LogConfig = LogConfig()
    rate_limits: RateLimits = RateLimits()
    runbook: RunbookConfig = RunbookConfig()
    redis: RedisConfig = RedisConfig()
    postgres: PostgresEndpoints = PostgresEndpoints()
    http: HttpConfig = HttpConfig()
    dns: DnsConfig = DnsConfig()
    smtp: SmtpConfig = SmtpConfig()
    asynq: AsynqConfig = AsynqConfig()
    residence_cache: ResidenceCacheConfig = ResidenceCacheConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()
    mode: Literal["full", "netcheck"] = Field(
        "full", description="netcheck: run only the TCP probes (the per-node DaemonSet)"
    )
    tcp: TcpConfig = TcpConfig()
    vmagent: VmagentConfig = VmagentConfig()
    nodata: NoDataConfig = NoDataConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (init kwargs carry the file's content).
        return (env_settings, init_settings)

    def secrets(self) -> list[str]:
        """Every secret value in effect, for redaction."""
        found = [self.redis.password] + [e.password for e in (self.postgres.pooler, self.postgres.direct)]
        found += [t.bearer_token for t in self.http.targets]
        found.append(self.nodata.bearer_token)
        if self.server.auth is not None:
            found += [self.server.auth.token, self.server.auth.password]
        return [s.get_secret_value() for s in found if s is not None and s.get_secret_value()]


def _key(part: int | str) -> str:
    text = str(part)
    return text if text.isprintable() and text.strip() == text and text else repr(text)


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(_key(p) for p in loc) or "config"


_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")


def _single_line(text: str) -> str:
    """Collapse every character str.splitlines() would break on, so an error is one line."""
    return _LINE_BREAKS.sub(" ", text).strip() or "invalid configuration"


def _one_line(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append(f"{_field_path(err['loc'])}: {msg}")
    return "; ".join(problems).replace("\n", " ")


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the YAML file (if any) under environment overrides; raise ConfigError on any problem."""
    try:
        return _load(path)
    except ConfigError as exc:
        raise ConfigError(_single_line(str(exc))) from None


def _load(path: str | os.PathLike[str] | None) -> Config:
    data: Any = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"config file {str(path)!r}: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"config file {str(path)!r}{where}: not valid YAML") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(path)!r}: top level must be a mapping, got {type(data).__name__}")
    # Only real sections reach Config(**...): pydantic-settings also takes init keywords such as
    # `_cli_parse_args` or `_secrets_dir`, and a file key must never steer the loader itself.
    unknown = sorted((str(k) for k in data if str(k) not in Config.model_fields), key=repr)
    if unknown:
        raise ConfigError("; ".join(f"{_key(key)}: unknown key" for key in unknown))
    try:
        return Config(**{str(k): v for k, v in data.items()})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
    except (ValueError, TypeError) as exc:  # e.g. pydantic-settings failing to parse an env value
        raise ConfigError(str(exc).splitlines()[0]) from None


def effective_config(config: Config) -> dict[str, Any]:
    """The config as plain data with every secret masked, for `check-config`."""
    dumped: dict[str, Any] = config.model_dump(mode="json")

    def mask(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: ("********" if k in ("password", "bearer_token", "token") and v else mask(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [mask(item) for item in node]
        return node

    return mask(dumped)  # type: ignore[no-any-return]
