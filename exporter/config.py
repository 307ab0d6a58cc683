"""Configuration: one YAML file, overridden by HONEYDUE_* environment variables.

Every field has a default so the exporter runs with no file on a developer machine. Secrets are
`SecretStr` (never printed) and may come from the environment or from a `*_file` path; the file is
read at load time so an unreadable secret is a config error, not a failure at 3 a.m.
"""

from __future__ import annotations

import os
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
    readyz_timeout: float = Field(2.0, gt=0, description="connect and read timeout of one /readyz/etcd check")
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


class RateLimits(_Strict):
    """Per-dependency ceilings shared by every probe, so the exporter can never hammer production."""

    postgres_per_second: float | None = Field(5.0, gt=0)
    redis_per_second: float | None = Field(None, gt=0)
    kubernetes_per_second: float | None = Field(20.0, gt=0)


class ServerConfig(_Strict):
    listen_address: str = "0.0.0.0"  # noqa: S104 - an exporter is scraped from other pods
    port: int = Field(9817, ge=1, le=65535)
    shutdown_timeout: float = Field(4.0, gt=0, le=30)


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
    kubernetes: KubernetesConfig = KubernetesConfig()

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
        return [s.get_secret_value() for s in found if s is not None and s.get_secret_value()]


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "config"


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
            return {k: ("********" if k == "password" and v else mask(v)) for k, v in node.items()}
        return node

    return mask(dumped)  # type: ignore[no-any-return]
