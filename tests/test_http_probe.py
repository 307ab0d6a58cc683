"""HTTP probe against real aiohttp servers on loopback: ok, slow, hung, 5xx, wrong body, bad TLS,
the registry's 401, the bearer-protected obs ingest /health, and a port that accepts and never answers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from testbed.edge import SelfSigned, http_target

from exporter.config import Config, ConfigError, HttpTarget, load_config
from exporter.engine import Engine, ProbeState
from exporter.probes.deps import Dependencies
from exporter.probes.http import PHASES, HttpProbe, cf_colo
from tests.helpers.servers import silent_port


def target(url: str, **kw: Any) -> HttpTarget:
    fields: dict[str, Any] = {"name": "t", "role": "public", "interval": 5, "timeout": 1.0} | kw
    return HttpTarget(url=url, **fields)


async def run(cfg: HttpTarget) -> ProbeState:
    probe = HttpProbe(cfg, Dependencies())
    engine = Engine([probe])
    state = await engine.run_once(probe)
    await engine.stop()
    return state


async def test_ok_through_tls_reports_every_phase_and_colo(cert: SelfSigned) -> None:
    async with http_target(cert) as server:
        state = await run(target(server.url("/ok", host="localhost"), tls_verify=False, body_contains="ok"))
    s = state.snapshot
    assert state.status == "ok"
    assert s.value("honeydue_http_up", target="t", role="public") == 1
    assert s.value("honeydue_http_status_code", target="t") == 200
    assert s.value("honeydue_http_status_expected", target="t") == 1
    assert s.value("honeydue_http_body_matched", target="t") == 1
    phases = {p: s.value("honeydue_http_phase_duration_seconds", target="t", phase=p) for p in PHASES}
    assert all(v is not None and v >= 0 for v in phases.values()), phases
    # A name was resolved, a TCP connection and a TLS handshake happened: none of them is hidden.
    assert phases["dns"] > 0 and phases["connect"] > 0 and phases["tls"] > 0  # type: ignore[operator]
    parts = sum(phases[p] for p in PHASES if p != "total")  # type: ignore[misc]
    assert parts <= phases["total"] + 1e-6  # type: ignore[operator]
    assert phases["total"] < 1.0  # type: ignore[operator]
    assert s.value("honeydue_http_cf_ray_info", target="t", colo="AMS") == 1


async def test_each_run_opens_a_new_connection() -> None:
    async with http_target() as server:
        probe = HttpProbe(target(server.url("/ok")), Dependencies())
        engine = Engine([probe])
        first = await engine.run_once(probe)
        second = await engine.run_once(probe)
    # connect is measured on both runs: the second one did not ride on a kept-alive connection
    for state in (first, second):
        assert (state.snapshot.value("honeydue_http_phase_duration_seconds", target="t", phase="connect") or 0) > 0
        assert state.snapshot.value("honeydue_http_phase_duration_seconds", target="t", phase="tls") == 0
        assert state.snapshot.value("honeydue_http_phase_duration_seconds", target="t", phase="dns") == 0  # IP literal


async def test_self_signed_certificate_fails_with_tls_reason(cert: SelfSigned) -> None:
    async with http_target(cert) as server:
        state = await run(target(server.url("/ok")))
    assert state.status == "failing" and state.reason == "tls"
    assert state.snapshot.value("honeydue_http_up", target="t") == 0
    assert state.snapshot.value("honeydue_http_status_code", target="t") == 0
    assert state.snapshot.value("honeydue_http_phase_duration_seconds", target="t", phase="total") is None


async def test_5xx_is_a_value_not_a_failed_run() -> None:
    async with http_target() as server:
        state = await run(target(server.url("/error")))
    assert state.status == "ok"
    assert state.snapshot.value("honeydue_http_up", target="t") == 0
    assert state.snapshot.value("honeydue_http_status_code", target="t") == 503
    assert state.snapshot.value("honeydue_http_status_expected", target="t") == 0
    assert state.snapshot.value("honeydue_http_body_matched", target="t") == 1


async def test_an_origin_probed_per_node_carries_its_node() -> None:
    """One origin target per node (deploy/overlays/example/config.yml, deploy/obs/obs-probe.yml): `node` says which node's
    Traefik answered, so OriginFailingOnNode can name it and the cordon and NotReady inhibitions scope by it."""
    async with http_target() as server:
        state = await run(target(server.url("/error"), role="origin", node="n2"))
    assert state.snapshot.value("honeydue_http_up", target="t", role="origin", node="n2") == 0
    assert state.snapshot.value("honeydue_http_status_code", target="t", role="origin", node="n2") == 503


async def test_wrong_body() -> None:
    async with http_target() as server:
        state = await run(target(server.url("/wrong-body"), body_contains="ok"))
    assert state.snapshot.value("honeydue_http_status_code", target="t") == 200
    assert state.snapshot.value("honeydue_http_status_expected", target="t") == 1
    assert state.snapshot.value("honeydue_http_body_matched", target="t") == 0
    assert state.snapshot.value("honeydue_http_up", target="t") == 0


async def test_slow_target_within_timeout_shows_in_first_byte() -> None:
    async with http_target() as server:
        state = await run(target(server.url("/slow?delay=0.4")))
    assert state.snapshot.value("honeydue_http_up", target="t") == 1
    first_byte = state.snapshot.value("honeydue_http_phase_duration_seconds", target="t", phase="first_byte") or 0
    assert 0.4 <= first_byte < 1.0


async def test_hung_deep_request_ends_at_timeout_while_shallow_passes() -> None:
    async with http_target() as server:
        shallow = await run(target(server.url("/ok"), name="t", role="api_shallow"))
        started = time.monotonic()
        deep = await run(target(server.url("/hang"), name="t", role="api_deep", timeout=0.8))
        elapsed = time.monotonic() - started
    assert shallow.snapshot.value("honeydue_http_up", target="t", role="api_shallow") == 1
    assert deep.status == "failing" and deep.reason == "timeout"
    assert deep.snapshot.value("honeydue_http_up", target="t", role="api_deep") == 0
    assert 0.8 <= elapsed < 0.8 + 0.5


async def test_blackholed_port_ends_at_timeout() -> None:
    with silent_port() as silent:
        started = time.monotonic()
        state = await run(target(f"http://127.0.0.1:{silent.port}/", timeout=0.7))
        elapsed = time.monotonic() - started
    assert state.reason == "timeout"
    assert 0.7 <= elapsed < 0.7 + 0.5


async def test_refused_port() -> None:
    with silent_port() as closed:
        port = closed.port
    state = await run(target(f"http://127.0.0.1:{port}/"))
    assert state.status == "failing" and state.reason == "refused"
    assert state.snapshot.value("honeydue_http_up", target="t") == 0


async def test_registry_401_counts_as_reachable() -> None:
    async with http_target() as server:
        state = await run(target(server.url("/v2/"), role="registry", expected_status=[200, 401]))
    assert state.snapshot.value("honeydue_http_up", target="t", role="registry") == 1
    assert state.snapshot.value("honeydue_http_status_code", target="t") == 401


async def test_obs_ingest_bearer_token_from_file_never_appears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = "tok-7f3a9c0e2b5d41e8a6c4"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    async with http_target(token=token) as server:
        cfg = target(server.url("/health"), role="obs_ingest", bearer_token_file=str(token_file), body_contains="ok")
        state = await run(cfg)
        assert state.snapshot.value("honeydue_http_up", target="t", role="obs_ingest") == 1
        # without the token the same endpoint answers 401: the token really was sent
        unauthorized = await run(target(server.url("/health"), role="obs_ingest"))
        assert unauthorized.snapshot.value("honeydue_http_status_code", target="t") == 401
    config = Config(http={"targets": [cfg.model_dump()]})  # type: ignore[arg-type]
    assert config.secrets() == [token]
    for text in (repr(cfg), str(cfg.model_dump()), state.detail, caplog.text):
        assert token not in text


def test_config_rejects_credentials_and_bad_names(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    bad = [
        "http: {targets: [{name: Bad-Name, role: public, url: 'https://x/'}]}",
        "http: {targets: [{name: a, role: public, url: 'https://u:p@x/'}]}",
        "http: {targets: [{name: a, role: public, url: 'https://x/', headers: {Authorization: x}}]}",
        "http: {targets: [{name: a, role: nope, url: 'https://x/'}]}",
        "http: {targets: [{name: a, role: public, url: 'https://x/'}, {name: a, role: origin, url: 'http://y/'}]}",
        "http: {targets: [{name: a, role: public, url: 'https://x/', bearer_token_file: /nonexistent/t}]}",
    ]
    for text in bad:
        path.write_text(text)
        with pytest.raises(ConfigError):
            load_config(path)
    assert load_config(None).http.targets == []


def test_cf_colo_parsing() -> None:
    assert cf_colo("8f0a1b2c3d4e5f60-AMS") == "AMS"
    assert cf_colo("8f0a1b2c3d4e5f60-ams") is None
    assert cf_colo("garbage") is None
    assert cf_colo(None) is None
