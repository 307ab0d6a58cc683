"""A full run with every probe family configured and every secret-bearing field set, scanned for the secrets.

The exporter reads a private Redis as the least-privilege ACL user, PostgreSQL (pooler and direct) as
the least-privilege role, HTTP targets and the no-data TSDB with bearer tokens, the stand-in
Kubernetes API with a kubeconfig token, vmagent, DNS, SMTP and TCP targets, and serves /metrics behind
a bearer token. Some dependencies are hostile: they echo the credentials they received back in their
replies, so a probe that copied a reply into an error text would leak them. Then /metrics, the landing
page, `check-config` and every log line are searched for every secret.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
import yaml

from testbed.edge import dnsmasq, smtp_server
from testbed.exporter import parse_metrics, value
from testbed.kubeapi import TOKEN as KUBE_TOKEN
from testbed.kubeapi import KubeAPI
from testbed.least_privilege import ACL_USER, apply_redis_acl, create_pg_role, create_residence_schema

from tests.helpers.asynq_peer import AsynqPeer
from tests.helpers.servers import PgBouncer, RedisServer, free_port

SECRETS = {
    "redis": "Redis-Acl-Pw-0c9e71",
    "pooler": "Pg-Pooler-Pw-5b2a18",
    "direct": "Pg-Direct-Pw-e4d630",
    "http_ok": "Http-Token-Ok-91fe2c",
    "http_echo": "Http-Token-Echo-7a3d55",
    "nodata": "NoData-Token-3c7b08",
    "metrics": "Metrics-Auth-Token-b81f4e",
    "kube": KUBE_TOKEN,  # the stand-in API accepts only its own token
}


class _Echo(BaseHTTPRequestHandler):
    """Answers everything, and puts the Authorization header it got into the reply (a hostile target)."""

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        if self.path.startswith("/health"):
            ok = auth == f"Bearer {SECRETS['http_ok']}"
            body, status, kind = (b"ok" if ok else b"unauthorized"), (200 if ok else 401), "text/plain"
        elif self.path.startswith("/metrics"):  # vmagent's /metrics, with the header folded into a label
            body = f'vm_app_version{{version="echo {auth}"}} 1\n'.encode()
            status, kind = 200, "text/plain"
        elif self.path.startswith("/api/v1/query"):  # a TSDB that answers garbage quoting the credentials
            body, status, kind = f"not json: you sent {auth}".encode(), 500, "text/plain"
        else:
            body, status, kind = f"echo: {auth}".encode(), 418, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("X-Echo", auth)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_full_run_leaks_no_secret(exporter_factory, tmp_path: Path, redis_server: RedisServer,  # type: ignore[no-untyped-def]
                                  pgbouncer: PgBouncer, pg_database: str, echo_server: int) -> None:
    admin = redis.Redis(port=redis_server.port)
    AsynqPeer(f"127.0.0.1:{redis_server.port}").enqueue("email", 1)  # the real Asynq's client
    admin.set("residence_ids:1", json.dumps([10, 12]), ex=300)
    apply_redis_acl(admin, SECRETS["redis"])
    create_residence_schema(pg_database)
    role = create_pg_role(pg_database, SECRETS["direct"])
    assert pgbouncer.workdir is not None
    pgbouncer.stop()
    with (pgbouncer.workdir / "userlist.txt").open("a") as f:
        f.write(f'"{role.name}" "{role.password}"\n')  # pgbouncer's own login to PostgreSQL
    pgbouncer.start()
    kube = KubeAPI()
    kube.start()
    files = {}
    for name in ("redis", "pooler", "http_echo", "metrics"):
        files[name] = tmp_path / f"{name}.secret"
        files[name].write_text(SECRETS[name] + "\n")
    endpoint = {"dbname": pg_database, "user": role.name, "sslmode": "disable", "interval": 2, "timeout": 1.5,
                "connect_timeout": 1}
    config = {
        "log": {"level": "debug"},
        "server": {"auth": {"token_file": str(files["metrics"])}},
        "redis": {"url": redis_server.url, "username": ACL_USER, "password_file": str(files["redis"]),
                  "interval": 2, "timeout": 1.5},
        "asynq": {"interval": 2, "timeout": 1.5},
        "residence_cache": {"enabled": True, "interval": 2, "timeout": 1.5},
        "postgres": {
            "pooler": endpoint | {"port": pgbouncer.port, "password_file": str(files["pooler"])},
            "direct": endpoint | {"password": SECRETS["direct"]},
        },
        "http": {"targets": [
            {"name": "api_health", "role": "api_shallow", "url": f"http://127.0.0.1:{echo_server}/health",
             "bearer_token": SECRETS["http_ok"], "interval": 2, "timeout": 1.5},
            {"name": "echo", "role": "other", "url": f"http://127.0.0.1:{echo_server}/echo",
             "bearer_token_file": str(files["http_echo"]), "body_contains": "never there",
             "interval": 2, "timeout": 1.5},
        ]},
        "nodata": {"query_url": f"http://127.0.0.1:{echo_server}", "bearer_token": SECRETS["nodata"],
                   "interval": 2, "timeout": 1.5},
        "vmagent": {"url": f"http://127.0.0.1:{echo_server}/metrics", "interval": 2, "timeout": 1.5},
        "kubernetes": {"source": "kubeconfig", "kubeconfig": str(kube.kubeconfig(tmp_path / "kubeconfig",
                                                                                     SECRETS["kube"])),
                       "interval": 3, "timeout": 2.5, "connect_timeout": 0.5, "read_timeout": 1.5},
        "tcp": {"targets": [{"name": "redis", "address": f"127.0.0.1:{redis_server.port}"}]},
    }
    with dnsmasq("--address=/api.honeydue.test/127.0.0.9") as dns, smtp_server() as smtp_port:
        config["dns"] = {"resolvers": {"local": {"address": "127.0.0.1", "port": dns.port}},
                         "lookups": [{"name": "api.honeydue.test", "resolvers": ["local"], "interval": 2,
                                      "timeout": 1.5}]}
        config["smtp"] = {"targets": [{"name": "relay", "host": "127.0.0.1", "port": smtp_port,
                                       "require_starttls": False, "tls_handshake": False,
                                       "interval": 2, "timeout": 1.5}]}
        config_path = tmp_path / "config.yml"
        config_path.write_text(yaml.safe_dump(config))
        exporter = exporter_factory(config_path=config_path)
        try:
            exporter.start()
            auth = {"Authorization": f"Bearer {SECRETS['metrics']}"}
            time.sleep(4.5)  # two cycles of every probe, the failing ones included
            status, body = exporter.get("/metrics", headers=auth)
            assert status == 200
            metrics_text = body.decode()
            samples = parse_metrics(metrics_text)
            # Everything ran, under the least-privilege credentials, and the hostile targets failed as values.
            for probe in ("redis", "asynq", "residence_cache", "postgres_pooler", "postgres_direct",
                          "http_api_health", "tcp_redis", "kubernetes_api"):
                assert value(samples, "honeydue_probe_success", probe=probe) == 1, probe
            assert value(samples, "honeydue_probe_success", probe="http_echo") is not None
            assert value(samples, "honeydue_residence_ids_cache_entries_checked") == 1
            assert any(name == "honeydue_probe_success" and dict(labels)["probe"].startswith("dns")
                       for name, labels in samples)
            assert any(name == "honeydue_probe_success" and dict(labels)["probe"].startswith("smtp")
                       for name, labels in samples)
            landing_status, landing = exporter.get("/", headers=auth)
            assert landing_status == 200
            denied_status, denied = exporter.get("/metrics")
            assert denied_status == 401
            env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYDUE_")}
            check = subprocess.run([sys.executable, "-m", "exporter", "--config", str(config_path), "check-config"],
                                   capture_output=True, text=True, timeout=60, env=env)
            assert check.returncode == 0, check.stderr
        finally:
            exporter.stop()
            kube.stop()
            admin.close()
            role.drop()
    outputs = {
        "/metrics": metrics_text,
        "landing page": landing.decode(),
        "401 reply": denied.decode(),
        "check-config": check.stdout + check.stderr,
        "logs": exporter.logs(),
    }
    assert "Traceback" not in outputs["logs"]
    assert "failing" in outputs["logs"]  # the hostile targets' failures were logged (and redacted)
    leaks = [(where, name) for where, text in outputs.items() for name, secret in SECRETS.items() if secret in text]
    assert leaks == []
