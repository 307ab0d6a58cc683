"""Property tests of the config loader: any input loads, or fails as one ConfigError line.

Inputs: arbitrary YAML text, arbitrary nested mappings (keys drawn from the real section and field
names, the init keywords pydantic-settings takes, and random text; values of every YAML type), and
arbitrary HONEYDUE_* environment overrides. Through the CLI, `check-config` exits 0, or exits 2
with exactly one stderr line and no traceback. Example counts stay small enough for CI.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from exporter.config import Config, ConfigError, load_config
from tests.helpers.config_fields import config_with, dotted, float_fields, numeric_fields

REPO = Path(__file__).resolve().parent.parent
SECRET = "hd-prop-secret-7f3a"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fields(model: type[BaseModel], depth: int = 0) -> set[str]:
    names = set(model.model_fields)
    if depth < 2:
        for field in model.model_fields.values():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                names |= _fields(annotation, depth + 1)
    return names


SECTIONS = sorted(Config.model_fields)
FIELD_NAMES = sorted(_fields(Config) | {"targets", "lookups", "resolvers", "pooler", "direct", "name", "url"})
# pydantic-settings takes these as init keywords: in the file they stay unknown keys.
SETTINGS_KEYWORDS = ["_env_file", "_secrets_dir", "_case_sensitive", "_env_prefix", "_cli_parse_args",
                     "_env_nested_delimiter", "_env_parse_none_str"]

printable = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.sampled_from(SETTINGS_KEYWORDS), st.text(printable, max_size=12))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(printable, max_size=30),
    st.sampled_from(["redis://127.0.0.1:6379/0", "http://127.0.0.1:9/x", "127.0.0.1:80", "/nonexistent/secret",
                     "A", "udp", "json", "0.5", "15"]),
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=20,
)
sections = st.dictionaries(st.one_of(st.sampled_from(SECTIONS + SETTINGS_KEYWORDS), keys), values, max_size=5)


@contextlib.contextmanager
def config_file(text: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cfgprop-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        yield path


@contextlib.contextmanager
def environment(overrides: dict[str, str]) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("HONEYDUE_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("HONEYDUE_")]:
            del os.environ[key]
        os.environ.update(saved)


def loads_or_one_line(path: Path) -> Config | None:
    """The property: a Config, or a ConfigError whose text is one line without the secret."""
    try:
        return load_config(path)
    except ConfigError as exc:
        text = str(exc)
        assert len(text.splitlines()) == 1, repr(text)
        assert SECRET not in text, text
        return None


@SETTINGS
@given(st.text(printable, max_size=400))
def test_any_yaml_text_loads_or_is_one_config_error(text: str) -> None:
    with environment({}), config_file(text) as path:
        loads_or_one_line(path)


def with_secrets(data: dict[str, Any]) -> dict[str, Any]:
    """Put SECRET where secrets belong (whatever else is wrong), so no error may echo it."""
    data = dict(data)
    redis = data.get("redis")
    data["redis"] = (redis if isinstance(redis, dict) else {}) | {"password": SECRET}
    nodata = data.get("nodata")
    data["nodata"] = (nodata if isinstance(nodata, dict) else {}) | {"bearer_token": SECRET}
    return data


@SETTINGS
@given(sections.map(with_secrets) | sections)
def test_any_nested_mapping_loads_or_is_one_config_error(data: dict[str, Any]) -> None:
    with environment({}), config_file(yaml.safe_dump(data, allow_unicode=True)) as path:
        loaded = loads_or_one_line(path)
    if loaded is not None:  # whatever loaded is a complete, usable config
        assert set(loaded.model_dump()) == set(Config.model_fields)


env_names = st.one_of(
    st.builds(lambda s, f: f"HONEYDUE_{s}__{f}".upper(), st.sampled_from(SECTIONS), st.sampled_from(FIELD_NAMES)),
    st.sampled_from([f"HONEYDUE_{s.upper()}" for s in SECTIONS]),
    st.builds(lambda t: "HONEYDUE_" + t, st.text(st.sampled_from("ABCXYZ_019"), max_size=12)),
)
env_values = st.one_of(
    st.text(printable, max_size=40),
    st.sampled_from(["", "{}", "[]", "null", "true", "0", "-1", "1e999", "nan", '{"url": 5}', '[{"name": 1}]',
                     '{"password": "' + SECRET + '", "url": "bogus"}', "{not json"]),
)


@SETTINGS
@given(st.dictionaries(env_names, env_values, max_size=4), sections)
def test_any_environment_override_loads_or_is_one_config_error(env: dict[str, str], data: dict[str, Any]) -> None:
    with environment(env), config_file(yaml.safe_dump(data, allow_unicode=True)) as path:
        loads_or_one_line(path)


def test_settings_keywords_in_the_file_are_unknown_keys(tmp_path: Path) -> None:
    """A file key never steers the loader: `_cli_parse_args` once made pydantic-settings parse our argv."""
    for key in SETTINGS_KEYWORDS:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({key: True}))
        try:
            load_config(path)
        except ConfigError as exc:
            assert str(exc) == f"{key}: unknown key"
        else:
            raise AssertionError(f"{key} was accepted")


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sections.map(with_secrets), st.dictionaries(env_names, env_values, max_size=2))
def test_check_config_exits_0_or_2_with_one_line(data: dict[str, Any], env: dict[str, str]) -> None:
    with config_file(yaml.safe_dump(data, allow_unicode=True)) as path:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("HONEYDUE_")}
        result = subprocess.run(
            [sys.executable, "-m", "exporter", "--config", str(path), "check-config"],
            cwd=REPO, env=clean | env, capture_output=True, text=True, timeout=60,
        )
    assert "Traceback" not in result.stderr, result.stderr
    assert SECRET not in result.stderr
    if result.returncode == 0:
        assert result.stderr == ""
        yaml.safe_load(result.stdout)
    else:
        assert result.returncode == 2, (result.returncode, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("honeydue-exporter: config error: "), result.stderr


# --- numbers: a duration, size or count loads only when finite ---------------------------------------
NUMERIC = numeric_fields()
FLOATS = set(float_fields())
# Fields an environment variable can reach directly (not inside a list of targets).
ENV_NUMERIC = [p for p in NUMERIC if all(isinstance(k, str) for k in p) and "resolvers" not in p]
NON_FINITE_TEXT = ["inf", "-inf", "+inf", "Infinity", "-Infinity", "nan", "NaN", "1e309", "-1e400", "1.0e+309"]


def _rejected_as_non_finite(path: tuple[str | int, ...], data: dict[str, Any], env: dict[str, str]) -> None:
    """Loading `data` under `env` must fail on `path`'s value, as one line naming it."""
    with environment(env), config_file(yaml.safe_dump(data)) as file:
        try:
            load_config(file)
        except ConfigError as exc:
            _finite_error(path, str(exc))
        else:
            raise AssertionError(f"{dotted(path)} accepted a non-finite value ({env or data})")


def _finite_error(path: tuple[str | int, ...], message: str) -> None:
    assert len(message.splitlines()) == 1, message
    assert message.startswith(dotted(path) + ": "), message
    if path in FLOATS:
        assert message == f"{dotted(path)}: Input should be a finite number", message


@SETTINGS
@given(st.sampled_from(NUMERIC), st.floats(allow_nan=True, allow_infinity=True))
def test_a_number_in_any_field_loads_only_when_finite(path: tuple[str | int, ...], number: float) -> None:
    with environment({}), config_file(yaml.safe_dump(config_with(path, number))) as file:
        try:
            config = load_config(file)
        except ConfigError as exc:
            assert len(str(exc).splitlines()) == 1, str(exc)
            if not math.isfinite(number):
                _finite_error(path, str(exc))
            return
    assert math.isfinite(number), f"{dotted(path)} accepted {number}"
    node: Any = config
    for key in path:
        node = node[key] if isinstance(key, int) else (node[key] if isinstance(node, dict) else getattr(node, key))
    assert node == number


@SETTINGS
@given(st.sampled_from(NUMERIC), st.sampled_from(NON_FINITE_TEXT))
def test_non_finite_text_in_any_field_is_one_config_error(path: tuple[str | int, ...], text: str) -> None:
    """As YAML would give it for `1e309` (PyYAML reads that as a string, pydantic as inf)."""
    _rejected_as_non_finite(path, config_with(path, text), {})


@SETTINGS
@given(st.sampled_from(ENV_NUMERIC), st.sampled_from(NON_FINITE_TEXT), st.floats(min_value=0.5, max_value=100))
def test_non_finite_environment_values_are_one_config_error(
    path: tuple[str | int, ...], text: str, file_value: float
) -> None:
    env = {"HONEYDUE_" + "__".join(str(k) for k in path).upper(): text}
    _rejected_as_non_finite(path, config_with(path, file_value), env)
