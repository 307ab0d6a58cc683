"""The whole alert pipeline on loopback: honeyDue's stand-ins and its real Asynq worker -> exporter -> vmagent ->
VictoriaMetrics -> vmalert (the shipped rules, re-rendered with short `for`) -> Alertmanager -> a webhook receiver.

Shared by `honeydue-exporter drill` and tests/test_e2e.py; every part comes from the test bed (testbed/).
Everything listens on 127.0.0.1 (the Kubernetes cluster's server nodes on 127.0.0.2-4: real etcd,
kube-apiserver and kube-controller-manager, testbed/kube), every process is stopped in `stop()`. The exporter
runs as in its pod: in-cluster credentials of its ServiceAccount (deploy/base/rbac.yaml).
The machine's PostgreSQL is only used to hold a fresh database (dropped at the end); the "pooler" and
the "direct" endpoints are two pgbouncers in front of it, so both can fail without touching PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
import yaml

from testbed.alertmanager import Alertmanager, single_route
from testbed.drill.asynqapp import AsynqApp
from testbed.exporter import ExporterProcess
from testbed.kube.cluster import KubeCluster
from testbed.kube.control_plane import NODE_IPS
from testbed.kube.incluster import in_pod, kubernetes_config, service_env
from testbed.procs import PgBouncer, RedisServer, free_port
from testbed.receivers import SmtpSink, WebhookReceiver
from testbed.residence import admin_dsn, create_residence_tables, database_dsn
from testbed.standins import HTTP_TARGETS, HttpStandins
from testbed.vm import VictoriaMetrics, Vmagent, Vmalert
from testbed.webconfig import WebConfigFiles

from exporter.config import DEFAULT_RUNBOOK_BASE_URL

log = logging.getLogger("exporter.drill")

PG_ADMIN_DSN = admin_dsn("HONEYDUE_DRILL_PG_DSN")

# residences: 10 owned by user 1 (member: 2), 11 owned by user 2, 12 owned by user 3 (members: 1, 4)


@dataclass(frozen=True)
class Timing:
    """The pipeline's clocks. Alerts fire within for + 2 scrapes + 1 evaluation (+ VM's latency offset)."""

    alert_for: str = "10s"
    # Windowed alerts resolve one window after the fault ends; the shortest window still holding a transient
    # fault (the obs box away 12 s: vmagent's errors, replayed with its retry back-off) past the alert's `for`
    # (fired 15 s after the obs box returned).
    range_window: str = "20s"
    scrape_interval: float = 2.0
    evaluation_interval: float = 2.0
    probe_interval: float = 1.0
    latency_offset: float = 1.0

    @property
    def for_seconds(self) -> float:
        return float(self.alert_for.rstrip("s"))

    @property
    def fire_bound(self) -> float:
        return self.for_seconds + 2 * self.scrape_interval + self.evaluation_interval + self.latency_offset


class Pipeline:
    """Start everything (`start`), inject failures through the attributes, `stop` in a finally."""

    def __init__(self, timing: Timing | None = None, workdir: Path | None = None) -> None:
        self.timing = timing or Timing()
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="honeydue-drill-"))
        self._own_workdir = workdir is None
        self.redis = RedisServer(args=("--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"))
        self.pooler = PgBouncer()
        self.direct = PgBouncer()
        self.kube = KubeCluster(self.workdir / "kube")
        self.http = HttpStandins()
        self.smtp = SmtpSink()
        self.webhook = WebhookReceiver()
        # Every component keeps its data and log under the drill's workdir (`drill --workdir` keeps them).
        parts = {name: self.workdir / name for name in ("vm", "vmagent", "vmalert", "alertmanager")}
        for path in parts.values():
            path.mkdir(exist_ok=True)
        self.vm = VictoriaMetrics(workdir=parts["vm"])
        self.exporter_port = free_port()
        # The obs box's own witness (deploy/obs/obs-probe.yml): the same exporter with only the public URL and
        # the origin, scraped as job honeydue-obs-probe (on the obs box its scraper is VictoriaMetrics').
        self.obs_probe = ExporterProcess(config_path=self.workdir / "obs-probe.yml",
                                         log_path=self.workdir / "obs-probe.log", args=("--log-format", "text"))
        # The exporter serves TLS with basic auth from a web config file, as vmagent scrapes it in production.
        self.web = WebConfigFiles(self.workdir / "web")
        self.vmagent = Vmagent(self.vm.write_url, [f"127.0.0.1:{self.exporter_port}"],
                               scrape_interval=f"{self.timing.scrape_interval:g}s", workdir=parts["vmagent"],
                               jobs={"honeydue-obs-probe": [f"127.0.0.1:{self.obs_probe.port}"]},
                               tls_ca_file=self.web.ca_file, basic_auth=(self.web.user, self.web.password_file))
        self.alertmanager = Alertmanager(single_route(self.webhook.url), workdir=parts["alertmanager"])
        self.rules_dir = self.workdir / "rules"
        self.vmalert = Vmalert(self.rules_dir, self.vm.url, self.alertmanager.url,
                               evaluation_interval=f"{self.timing.evaluation_interval:g}s", workdir=parts["vmalert"])
        self.database = f"honeydue_drill_{uuid.uuid4().hex[:10]}"
        self.exporter = ExporterProcess(config_path=self.workdir / "exporter.yml", port=self.exporter_port,
                                        log_path=self.workdir / "exporter.log", args=("--log-format", "text"),
                                        ssl_context=self.web.client_context(), headers=self.web.auth_header())
        self.app: AsynqApp | None = None
        self._stops: list[Callable[[], None]] = []

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self, progress: Callable[[str], None] = lambda _: None) -> None:
        """Start every part; on any failure stop what was started and re-raise."""
        try:
            progress("PostgreSQL database + two pgbouncers")
            self._create_database()
            for bouncer in (self.pooler, self.direct):
                bouncer.start()
                self._stops.append(bouncer.cleanup)
            progress("redis-server")
            self.redis.start()
            self._stops.append(self.redis.stop)
            progress("Asynq worker and scheduler (the real Asynq, tests/peers/bin/asynqpeer)")
            self.app = AsynqApp(self.redis.port, self.workdir)
            self._stops.append(self.app.stop)
            self.app.start()
            self.seed_cache()
            progress("Kubernetes: etcd x3, kube-apiserver per server node, kube-controller-manager, kubelets")
            self._stops.append(self.kube.stop)
            self.kube.start(progress)
            progress("HTTP and SMTP stand-ins, webhook receiver")
            for standin in (self.http, self.smtp, self.webhook):
                standin.start()
                self._stops.append(standin.stop)
            progress("exporter (in-cluster credentials)")
            self._write_exporter_config()
            self.exporter.wrapper = tuple(in_pod(self.kube.service_account_dir(self.workdir / "serviceaccount"), []))
            self.exporter.env = service_env(NODE_IPS[0], self.kube.api_port)
            self.exporter.start(wait_ready=False)
            self._stops.append(self.exporter.stop)
            assert self.obs_probe.config_path is not None
            self.obs_probe.config_path.write_text(yaml.safe_dump(self.obs_probe_config(), sort_keys=False))
            self.obs_probe.start(wait_ready=False)
            self._stops.append(self.obs_probe.stop)
            progress("victoria-metrics, vmagent, Alertmanager, vmalert")
            self._render_rules()
            for obs in (self.vm, self.vmagent, self.alertmanager, self.vmalert):
                obs.start()
                self._stops.append(obs.stop)  # their data lives under self.workdir
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop everything started, newest first; drop the database; never raises."""
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                log.warning("drill: stopping %s failed: %s", getattr(stop, "__qualname__", stop), exc)
        with contextlib.suppress(psycopg.Error), psycopg.connect(PG_ADMIN_DSN, autocommit=True,
                                                                 connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- parts ----------------------------------------------------------------------------------
    def dsn(self) -> str:
        return database_dsn(PG_ADMIN_DSN, self.database)

    def _create_database(self) -> None:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{self.database}"')
        self._stops.append(lambda: None)  # the database is dropped by stop() itself
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            create_residence_tables(conn)

    def truth(self) -> dict[int, list[int]]:
        """Each user's residence ids from the database (what the cache must hold)."""
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT owner_id, id FROM residence_residence UNION "
                "SELECT user_id, residence_id FROM residence_residence_users"
            ).fetchall()
        ids: dict[int, list[int]] = {}
        for user, rid in rows:
            ids.setdefault(int(user), []).append(int(rid))
        return {user: sorted(rids) for user, rids in ids.items()}

    def seed_cache(self) -> None:
        """What honeyDue's auth cache writes: residence_ids:<user> = JSON ids, TTL 5 minutes."""
        client = redis.Redis(port=self.redis.port, socket_timeout=2)
        try:
            for user, rids in self.truth().items():
                client.set(f"residence_ids:{user}", json.dumps(rids), ex=300)
        finally:
            client.close()

    def redis_client(self) -> redis.Redis:
        return redis.Redis(port=self.redis.port, socket_timeout=2, socket_connect_timeout=2)

    def _render_rules(self) -> None:
        """The shipped rules with the drill's short `for` and range windows (an option only the drill passes)."""
        from exporter.render.rules import RenderOptions, render_rules

        self.rules_dir.mkdir(parents=True, exist_ok=True)
        options = RenderOptions(alert_for=self.timing.alert_for, range_window=self.timing.range_window)
        for name, text in render_rules(DEFAULT_RUNBOOK_BASE_URL, options=options).items():
            (self.rules_dir / name).write_text(text, encoding="utf-8")

    def exporter_config(self) -> dict[str, Any]:
        t = self.timing
        fast = {"interval": t.probe_interval, "timeout": 0.8 * t.probe_interval}

        def endpoint(port: int) -> dict[str, Any]:
            return {"host": "127.0.0.1", "port": port, "dbname": self.database, "user": "postgres",
                    "sslmode": "disable", "connect_timeout": 0.5, **fast}

        return {
            "server": {"listen_address": "127.0.0.1", "port": self.exporter_port, "web_config": str(self.web.path)},
            "log": {"format": "text", "level": "warning"},
            "redis": {"url": self.redis.url, **fast},
            "postgres": {"pooler": endpoint(self.pooler.port), "direct": endpoint(self.direct.port)},
            "http": {"targets": [
                {"name": name, "role": role, "url": self.http.url(name), "expected_status": list(codes),
                 **fast}
                for name, (_, role, codes) in HTTP_TARGETS.items()
            ]},
            "smtp": {"targets": [{"name": "fastmail", "host": "127.0.0.1", "port": self.smtp.port,
                                  "require_starttls": False, "tls_handshake": False, **fast}]},
            "asynq": {**fast, "queues": ["default", "email"]},  # honeyDue's queues, read even when unlisted
            "residence_cache": {"enabled": True, "database": "direct", "interval": 1.0, "timeout": 0.9},
            # Every scrape, not every second: a run asks the servers' /readyz/etcd (the API servers answer
            # within their 0.5 s etcd check timeout) beside the lists, and at 1 s a loaded machine cut runs
            # short (the run's timeout), dropping the quorum evidence from the dashboard.
            "kubernetes": kubernetes_config(self.kube, interval=t.scrape_interval),
            "vmagent": {"url": self.vmagent.metrics_url, **fast},
        }

    def obs_probe_config(self) -> dict[str, Any]:
        fast = {"interval": self.timing.probe_interval, "timeout": 0.8 * self.timing.probe_interval}
        return {
            "server": {"listen_address": "127.0.0.1", "port": self.obs_probe.port},
            "log": {"format": "text", "level": "warning"},
            "redis": {"enabled": False},
            "postgres": {"pooler": {"enabled": False}, "direct": {"enabled": False}},
            "kubernetes": {"source": "off"},
            "http": {"targets": [
                {"name": name, "role": role, "url": self.http.url(name), "expected_status": list(codes),
                 **({"node": "n1"} if role == "origin" else {}), **fast}
                for name, (_, role, codes) in HTTP_TARGETS.items() if role in ("public", "origin")
            ]},
        }

    def _write_exporter_config(self) -> None:
        assert self.exporter.config_path is not None
        self.exporter.config_path.write_text(yaml.safe_dump(self.exporter_config(), sort_keys=False))
