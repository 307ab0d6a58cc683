"""Optional bearer-token / basic auth on /metrics: success, wrong and missing credentials, open health checks."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from exporter.config import Config, ConfigError, ServerAuth, load_config
from exporter.engine import Engine
from exporter.server import make_app
from tests.test_engine import ScriptedProbe

TOKEN = "scrape-token-8c1d2e"
PASSWORD = "scrape-password-31f0"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def client(auth: ServerAuth) -> TestClient:  # type: ignore[type-arg]
    engine = Engine([ScriptedProbe("redis")])
    c = TestClient(TestServer(make_app(engine, "https://runbooks.example.org", auth)))
    await c.start_server()
    return c


async def test_bearer_token() -> None:
    c = await client(ServerAuth(token=TOKEN))  # type: ignore[arg-type]
    try:
        ok = await c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status == 200
        assert "honeydue_exporter_build_info" in await ok.text()
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Bearer {TOKEN}x"},
                        {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}):
            denied = await c.get("/metrics", headers=headers)
            assert denied.status == 401, headers
            assert denied.headers["WWW-Authenticate"] == 'Bearer realm="honeydue-exporter"'
            assert "honeydue_" not in await denied.text()
        assert (await c.get("/")).status == 401  # the landing page shows probe errors: closed too
        assert (await c.get("/healthz")).status == 200  # kubelet probes carry no credentials
        assert (await c.get("/readyz")).status in (200, 503)
    finally:
        await c.close()


async def test_basic_auth() -> None:
    c = await client(ServerAuth(username="vmagent", password=PASSWORD))  # type: ignore[arg-type]
    try:
        assert (await c.get("/metrics", headers={"Authorization": basic("vmagent", PASSWORD)})).status == 200
        assert (await c.get("/", headers={"Authorization": basic("vmagent", PASSWORD)})).status == 200
        for header in (None, basic("vmagent", "wrong"), basic("other", PASSWORD), basic("vmagent", PASSWORD + "x"),
                       "Basic !!!not-base64", "Basic " + base64.b64encode(b"no-colon").decode(),
                       f"Bearer {PASSWORD}"):
            denied = await c.get("/metrics", headers={"Authorization": header} if header else {})
            assert denied.status == 401, header
            assert denied.headers["WWW-Authenticate"] == 'Basic realm="honeydue-exporter", charset="UTF-8"'
        assert (await c.get("/healthz")).status == 200
    finally:
        await c.close()


async def test_no_auth_configured_keeps_metrics_open() -> None:
    engine = Engine([ScriptedProbe("redis")])
    c = TestClient(TestServer(make_app(engine, "https://runbooks.example.org")))
    await c.start_server()
    try:
        assert (await c.get("/metrics")).status == 200
    finally:
        await c.close()


def test_auth_config_validation_and_secrets(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = Config(server={"auth": {"token_file": str(token_file)}})  # type: ignore[arg-type]
    assert config.server.auth is not None and config.server.auth.token is not None
    assert config.server.auth.token.get_secret_value() == TOKEN
    assert TOKEN in config.secrets()
    pw_file = tmp_path / "pw"
    pw_file.write_text(PASSWORD)
    config = Config(server={"auth": {"username": "vmagent", "password_file": str(pw_file)}})  # type: ignore[arg-type]
    assert PASSWORD in config.secrets()
    bad = [
        {"token": TOKEN, "username": "u", "password": "p"},  # both schemes
        {},  # neither
        {"username": "u"},  # no password
        {"password": "p"},  # no username
        {"token": ""},  # empty
        {"token_file": str(tmp_path / "missing")},
    ]
    for auth in bad:
        config_file = tmp_path / "c.yml"
        config_file.write_text(yaml.safe_dump({"server": {"auth": auth}}))
        with pytest.raises(ConfigError, match=r"server\.auth"):
            load_config(config_file)


def test_real_exporter_with_basic_auth_and_masked_check_config(exporter_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pw_file = tmp_path / "pw"
    pw_file.write_text(PASSWORD)
    env = {"HONEYDUE_SERVER__AUTH__USERNAME": "vmagent", "HONEYDUE_SERVER__AUTH__PASSWORD_FILE": str(pw_file),
           "HONEYDUE_REDIS__ENABLED": "false", "HONEYDUE_POSTGRES__POOLER__ENABLED": "false",
           "HONEYDUE_POSTGRES__DIRECT__ENABLED": "false", "HONEYDUE_KUBERNETES__SOURCE": "off"}
    exporter = exporter_factory(env=env)
    exporter.start()  # readiness is polled on /readyz, which stays open
    assert exporter.get("/metrics")[0] == 401
    status, body = exporter.get("/metrics", headers={"Authorization": basic("vmagent", PASSWORD)})
    assert status == 200 and b"honeydue_probe_success" in body
    out = subprocess.run([sys.executable, "-m", "exporter", "check-config"], capture_output=True, text=True,
                         timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("HONEYDUE_")} | env)
    assert out.returncode == 0
    assert PASSWORD not in out.stdout and "password: '********'" in out.stdout
