"""Configuration: one YAML file, overridden by HONEYDUE_* environment variables.

Every field has a default so the exporter runs with no file on a developer machine. Secrets are
`SecretStr` (never printed) and may come from the environment or from a `*_file` path; the file is
read at load time so an unreadable secret is a config error, not a failure at 3 a.m.

The environment (pydantic-settings, `Config`): `HONEYDUE_<SECTION>__<FIELD>` names a setting by its path,
case-insensitively (`HONEYDUE_REDIS__URL` is `redis.url`); a setting that holds a section, mapping or list
takes JSON (`HONEYDUE_KUBERNETES__DEPLOYMENTS='{"honeydue": ["api"]}'`), and single fields named beside it
merge into it; anything else takes the text as it is, and the model converts it like a YAML scalar. A name
whose first part is no section (`HONEYDUE_CONFIG`, the tests' `HONEYDUE_*` knobs) is not a setting and is
left alone; a name inside a section that names nothing there is an unknown key, as in the file. The
environment wins over the file, key by key.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyAddress,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError, to_jsonable_python
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from exporter import families

ENV_PREFIX = "HONEYDUE_"
DEFAULT_RUNBOOK_BASE_URL = "https://git.example.com/honeyDue/honeyDueAPI/src/branch/main/docs/deployment"
DEFAULT_GRAFANA_BASE_URL = "https://grafana.example.com"


class ConfigError(Exception):
    """A configuration problem, already phrased as one line for the operator."""


@dataclass(frozen=True)
class DocType:
    """The name docs/configuration.md gives an Annotated type (pydantic ignores this metadata)."""

    name: str


def _is_secret(annotation: Any) -> bool:
    """`SecretStr`, or a union such as `SecretStr | None` that holds one."""
    if annotation is SecretStr:
        return True
    return get_origin(annotation) in (Union, types.UnionType) and SecretStr in get_args(annotation)


@cache
def _secret_file_fields(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    """(`name`, `name_file`) for every SecretStr field that has a `*_file` path beside it."""
    fields = model.model_fields
    return tuple(
        (name, f"{name}_file") for name, info in fields.items() if _is_secret(info.annotation) and f"{name}_file" in fields
    )


# False while `check-config --syntax-only` loads a config whose secret files exist only where it is deployed.
_READ_SECRET_FILES: ContextVar[bool] = ContextVar("read_secret_files", default=True)


class UnreadSecret(SecretStr):
    """A secret whose `*_file` was not read (`check-config --syntax-only`); its value is a placeholder."""


class _Strict(BaseModel):
    # allow_inf_nan=False: `interval: 1e309` (or .inf, .nan, "inf" from the environment) would load as a
    # duration that never elapses, a size no body reaches: every float of the config must be finite.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _read_secret_files(self) -> Self:
        """Fill each SecretStr `name` from `name_file` when only the file is given (found by type, not by a list).

        Read at load time so an unreadable secret is a config error, not a failure at 3 a.m. This runs before
        the subclasses' own validators, which may then check the secret.
        """
        for name, file_field in _secret_file_fields(type(self)):
            path = getattr(self, file_field)
            if path is None or getattr(self, name) is not None:
                continue
            if not _READ_SECRET_FILES.get():
                object.__setattr__(self, name, UnreadSecret(str(path)))
                continue
            try:
                secret = SecretStr(Path(path).read_text(encoding="utf-8").strip())
            except OSError as exc:
                # Raised at the *_file field's location, so the error names it (redis.password_file: ...).
                error = PydanticCustomError(
                    "secret_file", "cannot read secret file {path}: {why}", {"path": repr(str(path)), "why": exc.strerror}
                )
                details = InitErrorDetails(type=error, loc=(file_field,), input=str(path))
                raise ValidationError.from_exception_data(type(self).__name__, [details]) from None
            object.__setattr__(self, name, secret)
        return self


# A pattern's error in words: pydantic's own text ("String should match pattern '^[a-z]...'") is for programmers.
_PATTERN_WORDS: dict[str, str] = {}


def _matching(pattern: str, words: str, **constraints: Any) -> Any:
    """Field(pattern=...) whose error says `must be <words>` (see _one_line)."""
    _PATTERN_WORDS[pattern] = words
    return Field(pattern=pattern, **constraints)


_DURATION = re.compile(
    r"(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?!s))?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s)?(?:(?P<ms>\d+(?:\.\d+)?)ms)?"
)
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _duration(value: Any) -> Any:
    """`15s`, `2m`, `1h30m`, `250ms` (units d, h, m, s, ms, largest first) -> seconds.

    A number, or text that is one (`30`, `0.5`, also `inf`), goes on to float validation: a bare number is
    seconds, and a non-finite one is refused there like in any other field.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    match = _DURATION.fullmatch(text)
    if text and match is not None:
        return sum(float(amount) * _UNIT_SECONDS[unit] for unit, amount in match.groupdict().items() if amount)
    try:
        float(text)
    except ValueError:
        raise ValueError("not a duration: give seconds, or a duration such as 15s, 2m, 1h30m or 250ms") from None
    return value


def _unique(names: Iterable[str], what: str) -> None:
    """Raise when a name that must identify one thing (a label value, a probe) is given twice."""
    seen = list(names)
    duplicates = sorted({n for n in seen if seen.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate {what}: {', '.join(duplicates)}")


class _Targets(_Strict):
    """A section whose `targets` become probes: their names (probe names, label values) must be unique."""

    @field_validator("targets", check_fields=False)
    @classmethod
    def _unique_names(cls, value: Any) -> Any:
        _unique((t.name for t in value), "target names")
        return value


# Seconds, written as a number or as `15s`, `2m`, `1h30m` (docs/configuration.md calls it a duration).
Duration = Annotated[float, BeforeValidator(_duration), DocType("duration")]


class Schedule(_Strict):
    """How often a probe runs and how long one run may take."""

    interval: Duration = Field(15.0, gt=0, description="seconds between probe starts")
    timeout: Duration = Field(5.0, gt=0, description="seconds before a probe run is abandoned")

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> Schedule:
        if self.timeout >= self.interval:
            raise ValueError(f"timeout ({self.timeout:g}s) must be less than interval ({self.interval:g}s)")
        return self


class RedisConfig(Schedule):
    """The Redis that Asynq and the residence cache use: reachability, memory, eviction policy, restarts."""

    enabled: bool = Field(True, description="run the Redis probe")
    url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis URL (redis:// or rediss://); its database is Asynq's and the cache's unless they set `db`",
    )
    username: str | None = Field(None, description="ACL user name, if Redis uses ACLs")
    password: SecretStr | None = Field(None, description="Redis password (prefer password_file)")
    password_file: Path | None = Field(None, description="file holding the Redis password (a mounted Secret)")
    protocol: Literal[2, 3] | None = Field(
        None,
        description="RESP version; null negotiates (RESP3 with HELLO, RESP2 where the server or a proxy does not "
        "know HELLO); 2 for a proxy that mishandles HELLO",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _check_url(value, ("redis", "rediss", "unix"), "use redis.password_file or HONEYDUE_REDIS__PASSWORD",
                          username=True)


class PostgresEndpoint(Schedule):
    """One way to reach the database: Neon's pooler, or the direct compute endpoint."""

    interval: Duration = Field(30.0, gt=0)
    enabled: bool = Field(True, description="probe this endpoint")
    host: str = _matching(r"^[^ /@?#]+$", "a host name or IP address (no spaces, /, @, ? or #)", default="127.0.0.1",
                          description="host name or IP address of the endpoint")
    port: int = Field(5432, ge=1, le=65535, description="TCP port of the endpoint")
    dbname: str = Field("postgres", description="database to connect to")
    user: str = Field("postgres", description="role to connect as (a read-only one is enough)")
    password: SecretStr | None = Field(None, description="password of that role (prefer password_file)")
    password_file: Path | None = Field(None, description="file holding the password (a mounted Secret)")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        "prefer", description="libpq sslmode of the connection"
    )
    connect_timeout: Duration = Field(3.0, gt=0, description="seconds to establish the connection")
    reuse_connection: bool = Field(
        False, description="keep one connection open between runs (measures queries, not reachability)"
    )

    @model_validator(mode="after")
    def _connect_within_timeout(self) -> PostgresEndpoint:
        if self.connect_timeout > self.timeout:
            raise ValueError(f"connect_timeout ({self.connect_timeout:g}s) must not exceed timeout ({self.timeout:g}s)")
        return self


class PostgresEndpoints(_Strict):
    """Neon Postgres, probed through the pooler and directly, so a pooler outage is told from a database one."""

    pooler: PostgresEndpoint = PostgresEndpoint()
    direct: PostgresEndpoint = PostgresEndpoint()


# --- edge and external-service probes (HTTP, DNS, SMTP) -------------------------------------------
# A name that becomes a label value and part of a probe name.
LabelName = Annotated[str, _matching(r"^[a-z][a-z0-9_]{0,62}$", "lower-case letters, digits and underscores, "
                                     "starting with a letter (at most 63)")]
HttpRole = Literal["public", "origin", "api_shallow", "api_deep", "admin", "b2", "registry", "obs_ingest", "other"]


def _check_url(
    value: str, schemes: tuple[str, ...] = ("http", "https"), hint: str = "", *, username: bool = False,
    base: bool = False,
) -> str:
    """The one URL check: a listed scheme, a host (unix:// aside), a valid port, and no password in it.

    Credentials belong in `*_file` fields (`hint` says which); `username`: a bare user name may stay (a Redis
    ACL user is no secret). `base`: paths are appended to this URL, so it must not end in a query or fragment.
    """
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ValueError(f"unsupported scheme {parts.scheme!r}: use " + " or ".join(f"{s}://" for s in schemes))
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("URL has no host")
    if parts.password or (parts.username and not username):
        raise ValueError("URL contains " + ("a password" if username else "credentials") + (f": {hint}" if hint else ""))
    try:
        parts.port  # noqa: B018 - raises on a non-numeric or out-of-range port
    except ValueError:
        raise ValueError("URL has an invalid port") from None
    if base and (parts.query or parts.fragment):
        raise ValueError("must not have a query or fragment: the chapter's path and anchor are appended to it")
    return value


def _check_optional_url(value: str | None) -> str | None:
    return None if value is None else _check_url(value)


# An http(s) URL that may be unset (vmagent's /metrics, the no-data probe's TSDB).
OptionalUrl = Annotated[str | None, AfterValidator(_check_optional_url)]


def _published_base_url(hint: str) -> AfterValidator:
    """A base URL copied into every alert, dashboard link and the status page, so anything in it reaches every
    reader of a notification: no credentials (`hint` says where it goes), no query or fragment, no trailing /."""
    return AfterValidator(lambda value: _check_url(value, hint=hint, base=True).rstrip("/"))


class HttpTarget(Schedule):
    """One URL probed over a fresh connection each run; `name` and `role` become labels."""

    interval: Duration = Field(30.0, gt=0)
    name: LabelName = Field(description="target name, the `target` label of its series")
    role: HttpRole = Field(description="what the target is, the `role` label the alerts select on")
    node: str = Field("", description="the node this target reaches directly (an origin by node IP): its `node` label")
    url: str = Field(description="URL requested (http or https)")
    method: Literal["GET", "HEAD", "POST"] = Field("GET", description="HTTP method")
    expected_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200], min_length=1, description="status codes that count as up")
    body_contains: str | None = Field(None, description="the response body (first 64 KiB) must contain this text")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers (not for secrets: use bearer_token)")
    bearer_token: SecretStr | None = Field(None, description="bearer token sent as Authorization (prefer bearer_token_file)")
    bearer_token_file: Path | None = Field(None, description="file holding the bearer token (a mounted Secret)")
    tls_verify: bool = Field(True, description="verify the server's TLS certificate")
    follow_redirects: bool = Field(False, description="follow redirects instead of judging the first reply")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _check_url(value, hint="use bearer_token_file")

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        if any(k.lower() == "authorization" for k in value):
            raise ValueError("put credentials in bearer_token_file, not in headers")
        return value


class HttpConfig(_Targets):
    """HTTP(S) checks: the public site, origin, API (shallow and deep), B2, the registry, obs ingest."""

    targets: list[HttpTarget] = Field(default_factory=list)


class DnsResolver(_Strict):
    """A DNS server queried directly (no system resolver, no cache in between)."""

    address: IPvAnyAddress = Field(description="resolver IP address")
    port: int = Field(53, ge=1, le=65535, description="DNS port of the resolver")
    protocol: Literal["udp", "tcp"] = Field("udp", description="transport of the queries")



class DnsLookup(Schedule):
    """One name asked of each listed resolver; answers outside `expected_cidrs` count as unexpected."""

    interval: Duration = Field(30.0, gt=0)
    name: str = Field(description="name to resolve")
    role: Literal["cluster", "cluster_upstream", "public"] = Field(
        "public", description="cluster: a Service name via CoreDNS; cluster_upstream: an outside name via CoreDNS",
    )
    record_type: Literal["A", "AAAA"] = Field("A", description="record type asked for")
    resolvers: list[str] = Field(min_length=1, description="names of the resolvers (keys of dns.resolvers) to ask")
    expected_cidrs: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="CIDRs the answers must fall in (empty: any answer counts)",
    )
    origin_cidrs: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="the origin's own addresses (the node IPs): answers there mean the record is grey-clouded, "
        "counted in honeydue_dns_origin_answers and not as unexpected",
    )

    @field_validator("name")
    @classmethod
    def _check_dns_name(cls, value: str) -> str:
        value = value.rstrip(".").lower()
        if not value or len(value) > 253 or not re.fullmatch(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9])?", value):
            raise ValueError(f"{value!r} is not a DNS name")
        return value



class DnsConfig(_Strict):
    """DNS lookups through named resolvers: CoreDNS, its upstream, and public resolvers."""

    resolvers: dict[LabelName, DnsResolver] = Field(
        default_factory=dict, description="resolvers by name (address, port, protocol)"
    )
    lookups: list[DnsLookup] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_resolvers(self) -> DnsConfig:
        for lookup in self.lookups:
            unknown = [r for r in lookup.resolvers if r not in self.resolvers]
            if unknown:
                raise ValueError(f"lookup {lookup.name}: unknown resolvers {unknown}")
        _unique((f"{lookup.name} {lookup.record_type} via {r}" for lookup in self.lookups for r in lookup.resolvers),
                "lookups (the same name, record type and resolver)")
        return self


class SmtpTarget(Schedule):
    """An SMTP server: banner 220, EHLO, STARTTLS advertised and (optionally) the TLS handshake."""

    interval: Duration = Field(60.0, gt=0)
    timeout: Duration = Field(10.0, gt=0)
    name: LabelName = Field(description="target name, the `target` label of its series")
    host: str = Field(description="SMTP server host name")
    port: int = Field(587, ge=1, le=65535, description="SMTP submission port")
    require_starttls: bool = Field(True, description="STARTTLS must be advertised after EHLO")
    tls_handshake: bool = Field(True, description="also run STARTTLS and complete the TLS handshake")
    tls_verify: bool = Field(True, description="verify the server's TLS certificate during STARTTLS")
    ehlo_hostname: str = Field("honeydue-exporter.invalid", description="name sent in EHLO")


class SmtpConfig(_Targets):
    """SMTP submission checks (Fastmail): greeting, EHLO, STARTTLS and its TLS handshake; no mail is sent."""

    targets: list[SmtpTarget] = Field(default_factory=list)


class AsynqConfig(Schedule):
    """Asynq's state read straight from Redis (the Redis of `redis`; `db` may differ from redis.url's).

    Enabled by default: it is read-only and with no Asynq state it reports zero queues.
    `enabled: null` follows `redis.enabled`.
    """

    enabled: bool | None = Field(None, description="read Asynq's state (null: follow redis.enabled)")
    db: int | None = Field(None, ge=0, description="Redis database Asynq uses (default: the one in redis.url)")
    max_active_checked: int = Field(
        1000, ge=1, le=100_000, description="active task ids per queue checked for a missing lease"
    )
    max_scheduler_entries: int = Field(200, ge=1, le=10_000, description="cron entries read per cycle")
    max_groups_checked: int = Field(
        100, ge=0, le=100_000,
        description="aggregation groups per queue summed for the aggregating count (a queue with more: not counted)",
    )
    queues: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, max_length=100,
        description="queues read even when asynq:queues does not list them (an Asynq client registers a queue "
        "once per process, so after Redis restarted empty the worker's queues stay unlisted)",
    )


class ResidenceCacheConfig(Schedule):
    """The residence-IDs cache staleness probe: sampled cache entries against the database's truth.

    Disabled by default: it needs honeyDue's schema (residence_residence, residence_residence_users)
    and its cache keys, which a developer machine does not have. Reads Redis with the `redis`
    connection settings and Postgres through the `postgres.<database>` endpoint.
    """

    interval: Duration = Field(60.0, gt=0)
    timeout: Duration = Field(10.0, gt=0)
    enabled: bool = Field(False, description="run the residence-cache staleness probe (needs honeyDue's schema)")
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
    cache_ttl: Duration = Field(300.0, gt=0, description="the TTL the service sets on an entry, for entry age")
    database: Literal["pooler", "direct"] = Field("pooler", description="which postgres endpoint to read the truth from")

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

    interval: Duration = Field(30.0, gt=0)
    timeout: Duration = Field(10.0, gt=0)
    source: Literal["auto", "in-cluster", "kubeconfig", "off"] = Field(
        "auto",
        description="where credentials come from: auto, in-cluster (service account), kubeconfig, or off",
    )
    kubeconfig: Path | None = Field(None, description="default: $KUBECONFIG, then ~/.kube/config")
    context: str | None = Field(None, description="kubeconfig context (default: its current context)")
    connect_timeout: Duration = Field(2.0, gt=0, description="TCP/TLS connect timeout of one API request")
    read_timeout: Duration = Field(5.0, gt=0, description="read timeout of one API request")
    deployments: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "honeydue": ("api", "admin", "worker", "redis", "vmagent"),
            "kube-system": ("coredns", "metrics-server", "traefik"),
        },
        description="namespace -> deployments to watch; pods are watched in the same namespaces",
    )
    node_workloads: tuple[Annotated[str, _matching(r"^[^/]+/.+$", "namespace/name")], ...] = Field(
        ("honeydue/api", "kube-system/traefik"),
        description="namespace/name of workloads whose ready pods are counted per node",
    )
    workload_label: str = Field("app.kubernetes.io/name", description="pod label that names a workload")
    redis_node_label: str = _matching(r"^[^=]+=", "key=value", default="honeydue/redis=true",
                                      description="node label (key=value) of the node that must host Redis")
    control_plane_label: str = Field(
        "node-role.kubernetes.io/control-plane",
        description="node label that marks a control-plane node",
    )
    apiservices: tuple[str, ...] = Field(
        ("v1beta1.metrics.k8s.io",),
        description="APIServices whose Available condition is checked",
    )
    pod_metrics: tuple[str, ...] = Field(
        ("honeydue",),
        description="namespaces whose pods' CPU and memory use is read from metrics.k8s.io (metrics-server)",
    )
    apiserver_port: int = Field(6443, ge=1, le=65535, description="each server node's API port for /readyz/etcd")
    # Longer than kube-apiserver's --etcd-readycheck-timeout (2 s): with etcd unhealthy, /readyz/etcd answers
    # its 500 after up to 2 s (measured on a real 1.35 API server), and a 2 s timeout lost half the verdicts.
    readyz_timeout: Duration = Field(3.0, gt=0, description="connect and read timeout of one /readyz/etcd check")
    max_bytes: int = Field(
        16 * 1024 * 1024, gt=0, description="largest API response body read (a bigger one fails as protocol)"
    )
    list_page_size: int = Field(
        500, ge=1, le=10_000,
        description="objects per list page (limit/continue); a page of pods is about 2-3 MB at 500 (kubectl's chunk size)",
    )
    etcd_quorum: int | None = Field(None, ge=1, description="default: a majority of the control-plane nodes")

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
_PATTERN_WORDS[_TARGET_NAME] = "lower-case letters, digits, - and _, starting with a letter or digit (at most 63)"
_PATTERN_WORDS["^$|" + _TARGET_NAME] = "empty, or " + _PATTERN_WORDS[_TARGET_NAME]


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

    name: str = Field(pattern=_TARGET_NAME, description="target name, the `target` label of its series")
    address: str = Field(description="host:port to connect to")
    role: Literal["essential", "pod", "service"] = Field(
        "essential",
        description="essential (firewall), pod (overlay network) or service (ClusterIP, kube-proxy)",
    )
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


class TcpDiscovery(_Strict):
    """The pods behind a Service, found in its EndpointSlices on every run (with the node of each pod)."""

    backend: str = Field(pattern=_TARGET_NAME, description="backend name given to the discovered targets")
    namespace: str = Field("honeydue", min_length=1, max_length=63, description="namespace of the Service")
    service: str = Field(min_length=1, max_length=63, description="Service whose EndpointSlices list the pods")
    port: int = Field(ge=1, le=65535, description="port connected to on each pod")


class TcpConfig(Schedule, _Targets):
    """TCP connect probes; `mode: netcheck` (or `run --mode netcheck`) runs only these, per node."""

    interval: Duration = Field(15.0, gt=0)
    timeout: Duration = Field(3.0, gt=0)
    node_name: str = Field(
        default_factory=lambda: os.environ.get("NODE_NAME", ""), max_length=253,
        description="this exporter's node (downward API env NODE_NAME); the `node` label",
    )
    targets: tuple[TcpTarget, ...] = ()
    discover: tuple[TcpDiscovery, ...] = Field(
        (), description="backends whose pod IPs are read from the Service's EndpointSlices (needs kubernetes)"
    )


class VmagentConfig(Schedule):
    """vmagent's own /metrics (remote-write health); disabled until `url` is set."""

    url: OptionalUrl = Field(None, description="e.g. http://vmagent.honeydue.svc:8429/metrics")
    max_bytes: int = Field(8 * 1024 * 1024, gt=0, description="largest /metrics body read")


class NoDataConfig(Schedule):
    """Checks that every metric the shipped rules and dashboards use has series in the obs TSDB."""

    interval: Duration = Field(300.0, gt=0)
    timeout: Duration = Field(15.0, gt=0)
    query_url: OptionalUrl = Field(None, description="VictoriaMetrics/Prometheus base URL, e.g. http://vm:8428")
    bearer_token: SecretStr | None = Field(None, description="bearer token for the TSDB's query API (prefer bearer_token_file)")
    bearer_token_file: Path | None = Field(None, description="file holding that bearer token (a mounted Secret)")
    ignore: tuple[str, ...] = Field((), description="metric names not to check (families not deployed)")
    max_bytes: int = Field(4 * 1024 * 1024, gt=0, description="largest query reply read, in bytes")



class RateLimits(_Strict):
    """Per-dependency ceilings shared by every probe, so the exporter can never hammer production."""

    postgres_per_second: float | None = Field(5.0, gt=0, description="Postgres connections per second at most (null: no limit)")
    redis_per_second: float | None = Field(None, gt=0, description="Redis commands per second at most (null: no limit)")
    kubernetes_per_second: float | None = Field(
        20.0, gt=0,
        description="Kubernetes API requests per second at most (null: no limit)",
    )


def _check_family(name: str) -> str:
    if name not in families.NAMES:
        raise ValueError(f"{name!r} is no probe family (families: {', '.join(families.NAMES)})")
    return name


# A probe family's name, which is its config section (exporter.families).
FamilyName = Annotated[str, AfterValidator(_check_family), DocType("family")]


class SeriesLimit(_Strict):
    """Most series one probe publishes per run, so a cluster or queue set that grows cannot flood the TSDB.

    Over the limit the probe's largest metric families are trimmed to their first series (small ones,
    such as its up series and totals, stay whole); honeydue_probe_series_dropped counts what was left out.
    """

    default: int = Field(5000, ge=100, description="series one probe may publish per run")
    families: dict[FamilyName, Annotated[int, Field(ge=100)]] = Field(
        default_factory=dict, description=f"per probe family ({', '.join(families.NAMES)}), e.g. {{kubernetes: 20000}}"
    )

    def of(self, family: str) -> int:
        return next((limit for name, limit in self.families.items() if name == family), self.default)


class ServerAuth(_Strict):
    """Credentials a scraper must send for /metrics and the landing page (/healthz and /readyz stay open).

    Either a bearer token (`token` / `token_file`) or basic auth (`username` + `password` / `password_file`).
    """

    token: SecretStr | None = Field(None, description="bearer token a scraper must send (prefer token_file)")
    token_file: Path | None = Field(None, description="file holding that bearer token (a mounted Secret)")
    username: str | None = Field(None, min_length=1, description="basic-auth user name")
    password: SecretStr | None = Field(None, description="basic-auth password (prefer password_file)")
    password_file: Path | None = Field(None, description="file holding the basic-auth password (a mounted Secret)")

    @model_validator(mode="after")
    def _one_scheme(self) -> ServerAuth:
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
    """The exporter's own HTTP server."""

    listen_address: str = Field("0.0.0.0", description="address the HTTP server listens on")  # noqa: S104 - an exporter is scraped from other pods
    port: int = Field(9817, ge=1, le=65535, description="port of /metrics, the status page, /healthz and /readyz")
    shutdown_timeout: Duration = Field(4.0, gt=0, le=30, description="seconds in-flight requests get on shutdown")
    auth: ServerAuth | None = Field(None, description="require credentials on /metrics (default: open)")
    web_config: Path | None = Field(
        None,
        description="path of an exporter-toolkit web config file (TLS, bcrypt basic_auth_users); --web.config.file wins",
    )


class LogConfig(_Strict):
    """Logging to stderr."""

    format: Literal["json", "text"] = Field("json", description="log line format")
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="lowest level logged")


class RunbookConfig(_Strict):
    """Where the runbook (chapters 16 and 17) is published, for alerts' runbook_url."""

    base_url: Annotated[str, _published_base_url("the runbook URL is published in every alert and dashboard")] = Field(
        DEFAULT_RUNBOOK_BASE_URL,
        description="base URL of the runbook chapters; alerts' runbook_url is this plus the chapter file and anchor",
    )
    chapter17_anchors: dict[
        Annotated[str, _matching(r"^§\d+$", "a section like §25")],
        Annotated[str, _matching(r"^[A-Za-z0-9_-]+$", "letters, digits, hyphens and underscores (an anchor, no #)")],
    ] = Field(
        default_factory=dict,
        description='anchor of a chapter 17 section when it is not the default slug, e.g. {"§25": "25-switch-db-host"}',
    )


class GrafanaConfig(_Strict):
    """Where the obs box's Grafana serves the shipped dashboard: alerts' `dashboard_url` points there."""

    base_url: Annotated[str, _published_base_url("the Grafana URL is published in every alert")] = Field(
        DEFAULT_GRAFANA_BASE_URL,
        description="base URL of Grafana; alerts' dashboard_url opens the shipped dashboard there",
    )


class _BadJson(ValueError):
    """An environment value that is not JSON where JSON is needed, phrased with its variable and never its value."""


class _Environment(EnvSettingsSource):
    """pydantic-settings' reader of HONEYDUE_*; a value that is no JSON where JSON is needed names its variable."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            # `field_name` is the last part of the variable's name: the variable is the one holding this text.
            names = sorted(name for name, text in os.environ.items() if text == value
                           and name.upper().startswith(ENV_PREFIX) and name.lower().endswith(field_name.lower()))
            name = names[0] if names else f"{ENV_PREFIX}...{field_name.upper()}"
            raise _BadJson(f"{name}: this setting takes JSON, and the value is not valid JSON") from None


class Config(BaseSettings):
    """The whole configuration; see README 'Configuration' for every field."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False,
        extra="forbid", frozen=True, allow_inf_nan=False,
    )

    server: ServerConfig = ServerConfig()
    log: LogConfig = LogConfig()
    rate_limits: RateLimits = RateLimits()
    runbook: RunbookConfig = RunbookConfig()
    grafana: GrafanaConfig = GrafanaConfig()
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
    series_limit: SeriesLimit = SeriesLimit()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (the keyword arguments carry the file's content); no .env, no secrets dir.
        return (_Environment(settings_cls), init_settings)

    def secrets(self) -> list[str]:
        """Every secret value in effect, for redaction: every SecretStr anywhere in the tree, found by type."""
        found: list[str] = []
        _plain(self, lambda secret: found.append(secret.get_secret_value()))
        return [value for value in found if value]


def _plain(node: Any, on_secret: Callable[[SecretStr], Any]) -> Any:
    """The config tree as plain data; each SecretStr (by type, whatever its field is called) becomes on_secret's."""
    if isinstance(node, SecretStr):
        return on_secret(node)
    if isinstance(node, BaseModel):
        return {name: _plain(getattr(node, name), on_secret) for name in type(node).model_fields}
    if isinstance(node, dict):
        return {str(key): _plain(value, on_secret) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(value, on_secret) for value in node]
    return to_jsonable_python(node)


def _key(part: int | str) -> str:
    text = str(part)
    return text if text.isprintable() and text.strip() == text and text else repr(text)


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(_key(p) for p in loc if p != "[key]") or "config"  # a bad mapping key: the key's own path


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config model at a path (through sections, lists and mappings), or None."""
    annotation: Any = Config
    for part in loc:
        model = _model_in(annotation)
        if model is not None:
            field = model.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
            continue
        args = get_args(annotation)
        if get_origin(annotation) in (list, tuple) and args:
            annotation = args[0]
        elif get_origin(annotation) is dict and len(args) == 2:
            annotation = args[1]
        else:
            return None
    return _model_in(annotation)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (`X` or `X | None`), if it holds one."""
    for member in get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    """`unknown key`, with the closest key the model has (`did you mean url?`) when one is close."""
    model = _model_at(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]).lower(), list(model.model_fields) if model else [], n=1)
    return f"unknown key (did you mean {close[0]}?)" if close else "unknown key"


_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")


def _single_line(text: str) -> str:
    """Collapse every character str.splitlines() would break on, so an error is one line."""
    return _LINE_BREAKS.sub(" ", text).strip() or "invalid configuration"


def _one_line(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = _unknown_key(err["loc"])
        elif err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") in _PATTERN_WORDS:
            msg = "must be " + _PATTERN_WORDS[err["ctx"]["pattern"]]
        elif err["type"] == "ip_any_network":  # pydantic's text does not say that host bits are refused
            msg = "must be a network such as 104.16.0.0/13 (no bits set past the prefix length)"
        problems.append(f"{_field_path(err['loc'])}: {msg}")
    return "; ".join(problems).replace("\n", " ")


def load_config(path: str | os.PathLike[str] | None = None, *, read_secret_files: bool = True) -> Config:
    """Load the YAML file (if any) under environment overrides; raise ConfigError on any problem.

    `read_secret_files=False` (`check-config --syntax-only`): every `*_file` secret becomes an UnreadSecret
    instead of being read, so a config can be checked where its mounted Secrets do not exist; everything
    else is checked as usual.
    """
    token = _READ_SECRET_FILES.set(read_secret_files)
    try:
        return _load(path)
    except ConfigError as exc:
        raise ConfigError(_single_line(str(exc))) from None
    finally:
        _READ_SECRET_FILES.reset(token)


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
    # Only sections reach Config(**...): pydantic-settings also takes init keywords such as `_cli_parse_args`
    # or `_secrets_dir`, and a file key must never steer the loader itself; it is reported as unknown.
    unknown = sorted((str(k) for k in data if str(k) not in Config.model_fields), key=repr)
    if unknown:
        raise ConfigError("; ".join(f"{_key(key)}: {_unknown_key((key,))}" for key in unknown))
    try:
        return Config(**{str(k): v for k, v in data.items()})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
    except SettingsError as exc:
        cause = exc.__cause__
        raise ConfigError(str(cause) if isinstance(cause, _BadJson) else str(exc)) from None


def base_url_option(section: type[RunbookConfig | GrafanaConfig], value: str) -> str:
    """A base URL given on the command line (`--base-url`, `--grafana-url`): checked like the config's own."""
    try:
        return section(base_url=value).base_url
    except ValidationError as exc:
        raise ConfigError(_single_line(_one_line(exc)).removeprefix("base_url: ")) from None


def effective_config(config: Config) -> dict[str, Any]:
    """The config as plain data with every secret masked (found by type, like `Config.secrets`), for `check-config`."""
    masked: dict[str, Any] = _plain(config, lambda secret: "(not read: --syntax-only)" if isinstance(secret, UnreadSecret)
                                    else "********" if secret.get_secret_value() else "")
    return masked
