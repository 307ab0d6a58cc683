"""Config loading: defaults, environment overrides, secrets, and one-line errors with exit code 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from exporter.config import ConfigError, effective_config, load_config
from tests.helpers.config_fields import config_walk, config_with, dotted, float_fields, numeric_fields, secret_fields

SECRET = "pg-Secret-9f3a"


def check_config(tmp_path: Path, text: str | None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "exporter"]
    if text is not None:
        path = tmp_path / "config.yml"
        path.write_text(text)
        args += ["--config", str(path)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HONEYDUE_")}
    return subprocess.run([*args, "check-config"], capture_output=True, text=True, timeout=60,
                          env=clean | (env or {}))


def test_no_file_gives_developer_defaults() -> None:
    config = load_config(None)
    assert config.redis.url == "redis://127.0.0.1:6379/0"
    assert (config.postgres.pooler.host, config.postgres.pooler.port) == ("127.0.0.1", 5432)
    assert (config.postgres.direct.host, config.postgres.direct.port) == ("127.0.0.1", 5432)
    assert config.server.port == 9817


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump({"redis": {"url": "redis://10.0.0.1:6379/0", "interval": 20},
                                    "postgres": {"pooler": {"host": "ep-x-pooler.neon.tech"}}}))
    monkeypatch.setenv("HONEYDUE_REDIS__INTERVAL", "30")
    monkeypatch.setenv("HONEYDUE_POSTGRES__DIRECT__HOST", "ep-x.neon.tech")
    config = load_config(path)
    assert config.redis.url == "redis://10.0.0.1:6379/0"  # from the file
    assert config.redis.interval == 30  # the environment wins
    assert config.postgres.pooler.host == "ep-x-pooler.neon.tech"
    assert config.postgres.direct.host == "ep-x.neon.tech"


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(SECRET + "\n")
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump({"postgres": {"pooler": {"password_file": str(secret)}}}))
    config = load_config(path)
    assert config.postgres.pooler.password is not None
    assert config.postgres.pooler.password.get_secret_value() == SECRET
    assert SECRET in config.secrets()


BAD = {
    "unknown key": ("redis:\n  urll: redis://x:6379\n", "redis.urll: unknown key (did you mean url?)"),
    "unknown section": ("kafka: {}\n", "kafka: unknown key"),
    "misspelt section": ("reddis: {}\n", "reddis: unknown key (did you mean redis?)"),
    "misspelt key in a list": ("http:\n  targets:\n  - {name: a, role: other, url: 'http://x/', urll: 1}\n",
                               "http.targets.0.urll: unknown key (did you mean url?)"),
    "bad duration": ("redis:\n  interval: 15x\n",
                     "redis.interval: not a duration: give seconds, or a duration such as 15s, 2m, 1h30m or 250ms"),
    "bad label name": ("http:\n  targets:\n  - {name: Api, role: other, url: 'http://x/'}\n",
                       "http.targets.0.name: must be lower-case letters, digits and underscores, starting with a letter"),
    "bad status code": ("http:\n  targets:\n  - {name: a, role: other, url: 'http://x/', expected_status: [200, 99]}\n",
                        "http.targets.0.expected_status.1: Input should be greater than or equal to 100"),
    "bad resolver address": ("dns:\n  resolvers: {r: {address: not-an-ip}}\n",
                             "dns.resolvers.r.address: value is not a valid IPv4 or IPv6 address"),
    "bad cidr": ("dns:\n  resolvers: {r: {address: 127.0.0.1}}\n  lookups:\n"
                 "  - {name: a.test, resolvers: [r], expected_cidrs: [104.16.0.1/13]}\n",
                 "dns.lookups.0.expected_cidrs.0: must be a network such as 104.16.0.0/13"),
    "bad host": ("postgres:\n  pooler:\n    host: 'db/x'\n",
                 "postgres.pooler.host: must be a host name or IP address (no spaces, /, @, ? or #)"),
    "bad series_limit family": ("series_limit:\n  families: {pods: 100}\n",
                                "series_limit.families.pods: 'pods' is no probe family"),
    "wrong type": ("redis:\n  interval: often\n", "redis.interval:"),
    "bad url": ("redis:\n  url: http://127.0.0.1:6379\n", "redis.url: unsupported scheme"),
    "password in url": ("redis:\n  url: redis://:hunter2@127.0.0.1:6379\n", "redis.url: URL contains a password"),
    "negative interval": ("postgres:\n  pooler:\n    interval: -5\n", "postgres.pooler.interval:"),
    "timeout >= interval": ("redis:\n  interval: 5\n  timeout: 5\n", "timeout (5s) must be less than interval (5s)"),
    "unreadable secret": ("postgres:\n  direct:\n    password_file: /nonexistent/pw\n",
                          "cannot read secret file '/nonexistent/pw'"),
    "bad port": ("server:\n  port: 70000\n", "server.port:"),
    "not yaml": ("redis: [unclosed\n", "not valid YAML"),
    "not a mapping": ("- a\n- b\n", "top level must be a mapping"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    text, expected = BAD[case]
    out = check_config(tmp_path, text)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert expected in lines[0]
    assert "hunter2" not in out.stderr


# --- durations: seconds, or a number with units (the ecosystem's `15s`) -------------------------------
DURATIONS = {"15s": 15.0, "2m": 120.0, "1h30m": 5400.0, "250ms": 0.25, "1.5s": 1.5, "1d": 86400.0, "1m30s": 90.0,
             "30": 30.0, " 45 ": 45.0, "0.5": 0.5}


@pytest.mark.parametrize("text", sorted(DURATIONS))
def test_durations_take_units_and_bare_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    seconds = DURATIONS[text]
    file = tmp_path / "c.yml"
    file.write_text(yaml.safe_dump({"residence_cache": {"cache_ttl": text}, "kubernetes": {"interval": "1h"}}))
    config = load_config(file)
    assert (config.residence_cache.cache_ttl, config.kubernetes.interval) == (seconds, 3600.0)
    monkeypatch.setenv("HONEYDUE_RESIDENCE_CACHE__CACHE_TTL", text)
    assert load_config(None).residence_cache.cache_ttl == seconds  # the environment takes them too


def test_every_duration_field_takes_units(tmp_path: Path) -> None:
    """Every interval, timeout, hold and TTL, found across the models, reads `1h`, `250ms` or `9s` (whichever its
    cross-field rules allow, timeout < interval) as seconds."""
    durations = [p for p in float_fields() if re.search(r"interval|timeout|_hold|_ttl", str(p[-1]))]
    assert len(durations) >= 30
    for path in durations:
        loaded = []
        for text, seconds in (("1h", 3600.0), ("250ms", 0.25), ("9s", 9.0)):
            file = tmp_path / "c.yml"
            file.write_text(yaml.safe_dump(config_with(path, text)))
            try:
                node: object = load_config(file)
            except ConfigError as exc:
                assert "not a duration" not in str(exc) and "valid number" not in str(exc), (dotted(path), str(exc))
                continue
            for key in path:
                node = node[key] if isinstance(key, int) else getattr(node, str(key))  # type: ignore[index]
            loaded.append(node == seconds)
        assert loaded and all(loaded), dotted(path)


@pytest.mark.parametrize("text", ["15x", "-5s", "1m1h", "s", "5 s", "1h-30m", "P1D"])
def test_bad_durations_are_one_line_errors(tmp_path: Path, text: str) -> None:
    message = error_of(tmp_path, yaml.safe_dump({"redis": {"interval": text}}))
    assert message == "redis.interval: not a duration: give seconds, or a duration such as 15s, 2m, 1h30m or 250ms"


def test_environment_unknown_key_suggests_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HONEYDUE_REDIS__PASWORD", "x")
    with pytest.raises(ConfigError, match=r"^redis\.pasword: unknown key \(did you mean password\?\)$"):
        load_config(None)


def test_bad_environment_value_exits_2(tmp_path: Path) -> None:
    out = check_config(tmp_path, None, {"HONEYDUE_REDIS__TIMEOUT": "-1"})
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "redis.timeout" in out.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "exporter", "--config", str(tmp_path / "nope.yml"), "check-config"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "No such file" in out.stderr and out.stderr.count("\n") == 1


def test_check_config_masks_secrets(tmp_path: Path) -> None:
    secret_file = tmp_path / "redis-pw"
    secret_file.write_text("redis-Secret-77")
    out = check_config(tmp_path, f"redis:\n  password_file: {secret_file}\n",
                       {"HONEYDUE_POSTGRES__POOLER__PASSWORD": SECRET})
    assert out.returncode == 0, out.stderr
    assert SECRET not in out.stdout and "redis-Secret-77" not in out.stdout
    effective = yaml.safe_load(out.stdout)
    assert effective["postgres"]["pooler"]["password"] == "********"
    assert effective["redis"]["password"] == "********"
    assert effective["postgres"]["direct"]["password"] is None


# --- check-config --syntax-only: the shipped configs checked where their secret files do not exist ----------
REPO = Path(__file__).resolve().parent.parent


def _check(path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HONEYDUE_")}
    return subprocess.run([sys.executable, "-m", "exporter", "--config", str(path), "check-config", *flags],
                          capture_output=True, text=True, timeout=60, env=clean, cwd=path.parent)


@pytest.mark.parametrize("shipped", ["config.yml", "netcheck.yml"])
def test_syntax_only_checks_a_shipped_config_without_its_secret_files(tmp_path: Path, shipped: str) -> None:
    absent = str(tmp_path / "not-mounted")  # where the Secret is mounted: only in the pod
    text = (REPO / "deploy" / "base" / shipped).read_text().replace("/etc/honeydue-exporter/secrets", absent)
    path = tmp_path / shipped
    path.write_text(text)
    full, quick = _check(path), _check(path, "--syntax-only")
    assert quick.returncode == 0 and quick.stderr == "", quick.stderr
    effective = yaml.safe_load(quick.stdout)
    if absent in text:  # config.yml names secret files: the full check cannot pass here, the syntax-only one does
        assert full.returncode == 2 and f"cannot read secret file '{absent}/" in full.stderr, full.stderr
        assert effective["redis"]["password"] == "(not read: --syntax-only)"
        assert effective["redis"]["password_file"] == f"{absent}/redis-password"
    else:  # netcheck.yml names none: both checks agree
        assert full.returncode == 0 and full.stdout == quick.stdout


def test_syntax_only_still_checks_everything_else(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "deploy" / "base" / "config.yml").read_text())
    data["server"] = {**(data.get("server") or {}), "port": 70000}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data))
    out = _check(path, "--syntax-only")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "server.port: Input should be less than or equal to 65535" in out.stderr
    assert "secret file" not in out.stderr
    path.write_text("redis:\n  password: given-here\n  interval: 2m\nhttp:\n  targets:\n"
                    "  - {name: a, role: other, url: 'http://x/', bearer_token_file: /nowhere/token}\n")
    effective = effective_config(load_config(path, read_secret_files=False))
    assert effective["redis"]["interval"] == 120 and effective["redis"]["password"] == "********"
    assert effective["http"]["targets"][0]["bearer_token"] == "(not read: --syntax-only)"


def error_of(tmp_path: Path, text: str) -> str:
    """The ConfigError a config file with this text gives (one line)."""
    file = tmp_path / "c.yml"
    file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    assert len(str(caught.value).splitlines()) == 1
    return str(caught.value)


# --- non-finite numbers: every duration, size and count, found by type ------------------------------
NON_FINITE = {".inf": "inf", "-.inf": "-inf", ".nan": "nan", "1e309": "1e309"}


def _yaml_with(path: tuple[str | int, ...], literal: str) -> str:
    """The minimal config with a YAML literal (not a quoted string) at `path`."""
    marker = "NUMBER-GOES-HERE"
    return yaml.safe_dump(config_with(path, marker)).replace(marker, literal)


def test_the_field_walk_finds_durations_sizes_and_counts() -> None:
    """The walk below must reach nested and list fields, else the next tests would cover little."""
    found = {dotted(p) for p in numeric_fields()}
    assert {"redis.interval", "http.targets.0.timeout", "kubernetes.max_bytes", "residence_cache.sample_size",
            "rate_limits.postgres_per_second", "dns.lookups.0.interval", "server.shutdown_timeout"} <= found


@pytest.mark.parametrize("literal", sorted(NON_FINITE))
def test_non_finite_numbers_are_rejected_in_every_field(tmp_path: Path, literal: str) -> None:
    """`interval: 1e309` once loaded as an infinite interval: the probe never ran again, silently."""
    assert yaml.safe_load(_yaml_with(("redis", "interval"), literal))["redis"]["interval"] != 15
    for path in numeric_fields():
        message = error_of(tmp_path, _yaml_with(path, literal))
        assert message.startswith(dotted(path) + ": "), message
        if path in float_fields():
            assert message == f"{dotted(path)}: Input should be a finite number", message


@pytest.mark.parametrize("value", sorted(NON_FINITE.values()))
def test_non_finite_numbers_from_the_environment_are_rejected(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    for name, path in [("HONEYDUE_REDIS__INTERVAL", "redis.interval"),
                       ("HONEYDUE_POSTGRES__POOLER__CONNECT_TIMEOUT", "postgres.pooler.connect_timeout"),
                       ("HONEYDUE_VMAGENT__MAX_BYTES", "vmagent.max_bytes"),
                       ("HONEYDUE_RATE_LIMITS__REDIS_PER_SECOND", "rate_limits.redis_per_second")]:
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match=f"^{re.escape(path)}: ") as caught:
            load_config(None)
        assert len(str(caught.value).splitlines()) == 1
        monkeypatch.delenv(name)


def test_infinite_interval_exits_2_through_the_cli(tmp_path: Path) -> None:
    out = check_config(tmp_path, "redis:\n  interval: 1e309\n", {"HONEYDUE_KUBERNETES__TIMEOUT": "nan"})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        "honeydue-exporter: config error: redis.interval: Input should be a finite number; "
        "kubernetes.timeout: Input should be a finite number"
    ]


def test_large_finite_numbers_still_load(tmp_path: Path) -> None:
    file = tmp_path / "c.yml"
    file.write_text("redis:\n  interval: 1.0e+6\n  timeout: 1e3\n")
    config = load_config(file)
    assert (config.redis.interval, config.redis.timeout) == (1e6, 1e3)


# --- secrets: found by type, from a file or the environment, never printed --------------------------
def test_every_secret_looking_field_is_a_secret_type() -> None:
    """A new token or password typed `str` would be printed by check-config and missed by redaction."""
    for path, kind in config_walk():
        name = str(path[-1])
        if re.search(r"password|token|secret|api_?key|credential", name) and not name.endswith("_file"):
            assert kind is SecretStr, f"{dotted(path)} holds a secret but is typed {kind}"
        if name.endswith("_file") and kind is not type(None):
            sibling = (*path[:-1], name.removesuffix("_file"))
            assert sibling in secret_fields(), f"{dotted(path)} has no SecretStr {sibling[-1]} beside it"


@pytest.mark.parametrize("source", ["file", "value"])
def test_every_secret_field_is_found_masked_and_kept_out_of_output(tmp_path: Path, source: str) -> None:
    fields = secret_fields()
    assert len(fields) >= 7  # redis, postgres x2, http targets, nodata, server auth token and password
    for index, path in enumerate(fields):
        secret = f"S3cret-{index}-{path[-1]}"
        if source == "file":
            secret_file = tmp_path / f"secret-{index}"
            secret_file.write_text(secret + "\n")
            data = config_with((*path[:-1], f"{path[-1]}_file"), str(secret_file))
        else:
            data = config_with(path, secret)
        file = tmp_path / "c.yml"
        file.write_text(yaml.safe_dump(data))
        config = load_config(file)
        assert secret in config.secrets(), dotted(path)
        effective = effective_config(config)
        assert secret not in repr(effective), dotted(path)
        node: object = effective
        for key in path:
            node = node[key]  # type: ignore[index]
        assert node == "********", (dotted(path), node)


def test_an_unreadable_secret_file_names_its_field(tmp_path: Path) -> None:
    for path in secret_fields():
        text = yaml.safe_dump(config_with((*path[:-1], f"{path[-1]}_file"), str(tmp_path / "missing")))
        assert error_of(tmp_path, text) == (
            f"{dotted(path)}_file: cannot read secret file {str(tmp_path / 'missing')!r}: No such file or directory"
        )


def test_the_environment_wins_over_a_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-the-file")
    monkeypatch.setenv("HONEYDUE_REDIS__PASSWORD", "from-the-env")
    file = tmp_path / "c.yml"
    file.write_text(f"redis:\n  password_file: {secret_file}\n")
    config = load_config(file)
    assert config.redis.password is not None and config.redis.password.get_secret_value() == "from-the-env"


def test_environment_json_for_sections_mappings_and_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting that holds a section, mapping or list takes JSON; single fields merge into it, key by key."""
    monkeypatch.setenv("HONEYDUE_REDIS", '{"url": "redis://10.0.0.5:6379/0", "interval": 20}')
    monkeypatch.setenv("honeydue_redis__interval", "25")  # names are case-insensitive; the longer path wins
    monkeypatch.setenv("HONEYDUE_KUBERNETES__DEPLOYMENTS", '{"honeydue": ["api", "worker"]}')
    monkeypatch.setenv("HONEYDUE_HTTP__TARGETS", '[{"name": "api", "role": "api_shallow", "url": "https://api.example.com/health"}]')
    monkeypatch.setenv("HONEYDUE_RUNBOOK__CHAPTER17_ANCHORS__§25", "25-switch-db-host")  # into a mapping
    config = load_config(None)
    assert (config.redis.url, config.redis.interval) == ("redis://10.0.0.5:6379/0", 25)
    assert config.kubernetes.deployments == {"honeydue": ("api", "worker")}
    assert [t.name for t in config.http.targets] == ["api"]
    assert config.runbook.chapter17_anchors["§25"] == "25-switch-db-host"


def test_environment_text_stays_text_for_scalars(monkeypatch: pytest.MonkeyPatch) -> None:
    """A password that looks like JSON or a number is still the password."""
    for text in ("123456", '{"not": "json"}', "[x", "null", "true"):
        monkeypatch.setenv("HONEYDUE_REDIS__PASSWORD", text)
        password = load_config(None).redis.password
        assert password is not None and password.get_secret_value() == text


def test_environment_names_that_are_no_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """HONEYDUE_CONFIG and the tests' knobs are not settings; a typo inside a section is an unknown key."""
    monkeypatch.setenv("HONEYDUE_CONFIG", "/nowhere.yml")
    monkeypatch.setenv("HONEYDUE_KUBE_BIN", "/nowhere")
    load_config(None)  # no error: neither is taken for a setting
    monkeypatch.setenv("HONEYDUE_REDIS__INTERVALL", "5")
    with pytest.raises(ConfigError, match=r"^redis\.intervall: unknown key \(did you mean interval\?\)$"):
        load_config(None)


def test_environment_bad_json_names_the_variable_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HONEYDUE_HTTP__TARGETS", '[{"name": "api", "bearer_token": "' + SECRET + '"')
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    assert str(caught.value) == "HONEYDUE_HTTP__TARGETS: this setting takes JSON, and the value is not valid JSON"


# --- URLs: one check for every URL, the runbook's included ------------------------------------------
URLS = {
    "runbook with credentials": ("runbook:\n  base_url: https://bot:tok3n@git.example.com/docs\n",
                                 "runbook.base_url: URL contains credentials: the runbook URL is published"),
    "runbook with a user only": ("runbook:\n  base_url: https://bot@git.example.com/docs\n",
                                 "runbook.base_url: URL contains credentials"),
    "runbook with a query": ("runbook:\n  base_url: https://git.example.com/docs?ref=main\n",
                             "runbook.base_url: must not have a query or fragment"),
    "runbook not http": ("runbook:\n  base_url: ftp://git.example.com/docs\n",
                         "runbook.base_url: unsupported scheme 'ftp': use http:// or https://"),
    "runbook bad port": ("runbook:\n  base_url: https://git.example.com:99999/docs\n",
                         "runbook.base_url: URL has an invalid port"),
    "vmagent with credentials": ("vmagent:\n  url: http://u:tok3n@vmagent:8429/metrics\n",
                                 "vmagent.url: URL contains credentials"),
    "nodata without host": ("nodata:\n  query_url: http:///api\n", "nodata.query_url: URL has no host"),
    "http target with credentials": (
        "http:\n  targets:\n  - {name: a, role: other, url: 'https://u:tok3n@example.com/'}\n",
        "http.targets.0.url: URL contains credentials: use bearer_token_file"),
    "redis with a password": ("redis:\n  url: redis://u:tok3n@127.0.0.1:6379/0\n",
                              "redis.url: URL contains a password: use redis.password_file"),
}


@pytest.mark.parametrize("case", sorted(URLS))
def test_bad_urls_are_one_line_errors_without_the_credentials(tmp_path: Path, case: str) -> None:
    text, expected = URLS[case]
    message = error_of(tmp_path, text)
    assert message.startswith(expected) and "tok3n" not in message, message


def test_good_urls_load(tmp_path: Path) -> None:
    file = tmp_path / "c.yml"
    file.write_text("runbook:\n  base_url: https://git.example.com:3000/docs/\n"
                    "redis:\n  url: redis://worker@127.0.0.1:6379/2\n")
    config = load_config(file)
    assert config.runbook.base_url == "https://git.example.com:3000/docs"
    assert config.redis.url == "redis://worker@127.0.0.1:6379/2"


# --- names that become label values must be unique ---------------------------------------------------
DUPLICATES = {
    "http": ("http:\n  targets:\n  - {name: a, role: other, url: 'http://x/'}\n"
             "  - {name: a, role: other, url: 'http://y/'}\n", "http.targets: duplicate target names: a"),
    "smtp": ("smtp:\n  targets:\n  - {name: m, host: x}\n  - {name: m, host: y}\n  - {name: n, host: z}\n",
             "smtp.targets: duplicate target names: m"),
    "tcp": ("tcp:\n  targets:\n  - {name: t, address: 'x:1'}\n  - {name: t, address: 'y:1'}\n",
            "tcp.targets: duplicate target names: t"),
    "dns": ("dns:\n  resolvers: {r: {address: 127.0.0.1}}\n  lookups:\n  - {name: a.example, resolvers: [r]}\n"
            "  - {name: a.example, resolvers: [r]}\n",
            "dns: duplicate lookups (the same name, record type and resolver): a.example A via r"),
}


@pytest.mark.parametrize("section", sorted(DUPLICATES))
def test_duplicate_names_are_rejected(tmp_path: Path, section: str) -> None:
    text, expected = DUPLICATES[section]
    assert error_of(tmp_path, text) == expected


@pytest.mark.parametrize("command", ["render", "catalog"])
def test_a_runbook_url_on_the_command_line_gets_the_same_check(tmp_path: Path, command: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HONEYDUE_")}
    out = subprocess.run([sys.executable, "-m", "exporter", command, "--base-url", "https://bot:tok3n@git.example/d"],
                         capture_output=True, text=True, timeout=60, env=clean, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        "honeydue-exporter: config error: --base-url: URL contains credentials: "
        "the runbook URL is published in every alert and dashboard"
    ]
def test_chapter17_anchors_are_checked(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("runbook:\n  chapter17_anchors: {'§25': '25-switch-db-host'}\n")
    assert load_config(good).runbook.chapter17_anchors == {"§25": "25-switch-db-host"}
    for bad in ("{'25': 'x'}", "{'§25': 'has#hash'}"):
        path = tmp_path / "bad.yml"
        path.write_text(f"runbook:\n  chapter17_anchors: {bad}\n")
        with pytest.raises(ConfigError, match="chapter17_anchors"):
            load_config(path)
