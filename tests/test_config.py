"""Config loading: defaults, environment overrides, secrets, and one-line errors with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter.config import ConfigError, load_config

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
    "unknown key": ("redis:\n  urll: redis://x:6379\n", "redis.urll: unknown key"),
    "unknown section": ("kafka: {}\n", "kafka: unknown key"),
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


def test_chapter17_anchors_are_checked(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("runbook:\n  chapter17_anchors: {'§25': '25-switch-db-host'}\n")
    assert load_config(good).runbook.chapter17_anchors == {"§25": "25-switch-db-host"}
    for bad in ("{'25': 'x'}", "{'§25': 'has#hash'}"):
        path = tmp_path / "bad.yml"
        path.write_text(f"runbook:\n  chapter17_anchors: {bad}\n")
        with pytest.raises(ConfigError, match="chapter17_anchors"):
            load_config(path)
