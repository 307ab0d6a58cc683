"""The drill's failure scenarios and the runner that injects them into a running `Pipeline`.

A scenario injects one real failure (stop a process, flip a stand-in, change Redis' config, break the
real Asynq worker), names the alert(s) that must reach Alertmanager and those that may come along as
consequences, then recovers. The runner measures seconds from injection to the firing notification
and from recovery to the resolved one, checks severity and runbook_url against the catalog, and
counts any other alert as wrong. Scenarios sharing no `resources` may run in the same wave.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from testbed.drill.dashboard_check import DashboardCheck
from testbed.kube import workloads
from testbed.receivers import Notification

from exporter.catalog import alerts as catalog_alerts
from exporter.config import DEFAULT_RUNBOOK_BASE_URL
from exporter.render.panels import SEVERITY_STATE

if TYPE_CHECKING:  # the pipeline needs the drill extra (cryptography); `drill --list` only these scenarios
    from testbed.drill.pipeline import Pipeline

WATCHDOG = "Watchdog"
Step = Callable[["Pipeline"], None]


@dataclass(frozen=True)
class Scenario:
    id: str
    failure: str  # what breaks, as the operator would say it
    expected: tuple[str, ...]  # every one must fire and resolve
    inject: Step
    recover: Step
    tolerated: tuple[str, ...] = ()  # true consequences that may also fire
    resources: frozenset[str] = frozenset()  # "*" = runs alone
    note: str = ""
    delay: float = 0.0  # seconds before the failure can be seen by design (heartbeat TTL, outage length)
    failure_mode: str = field(kw_only=True)  # the catalog entry (exporter.catalog) this scenario drills


@dataclass
class Result:
    scenario: Scenario
    fired: dict[str, float] = field(default_factory=dict)  # alert -> seconds from injection
    resolved: dict[str, float] = field(default_factory=dict)  # alert -> seconds from recovery
    runbook: dict[str, str] = field(default_factory=dict)
    severity: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    wrong: set[str] = field(default_factory=set)
    dashboard: list[str] | None = None  # what the dashboard failed to show (None: not checked)
    now_row: dict[str, int] = field(default_factory=dict)  # failure mode -> state shown while firing

    @property
    def ok(self) -> bool:
        return not self.problems and not self.wrong


def catalog_index(base: str = DEFAULT_RUNBOOK_BASE_URL) -> dict[str, tuple[str, str]]:
    """alert name -> (severity, runbook_url) as the shipped rules carry them."""
    return {a.name: (a.severity, e.runbook_url(base)) for e, a in catalog_alerts()}


# --- the scenarios ----------------------------------------------------------------------------------
NEW_API_IMAGE = f"{workloads.REGISTRY}/api:1.4.3"
# What losing N3's pods brings along: its api replica (the cluster keeps every single replica on N1,
# testbed.kube.cluster.HOME_NODE). The api Deployment is short of a replica until its pod is replaced
# (toleration 10 s + start), which outlasts the drill's 10 s `for` on a loaded machine (production: 300 s
# tolerations, for 15m).
NODE_LOSS_CONSEQUENCES = ("WorkloadPodNotReadyOnNode", "HoneydueDeploymentReplicasMismatch")
# What a Kubernetes scenario touches, so two share a wave only when they touch nothing in common: etcd, the
# nodes, the api pods (their placement, readiness and containers), the api Deployment's rollout (its
# template and replica counts), metrics-server's view. The quorum loss touches them all.
KUBE_ETCD, KUBE_NODES, KUBE_API_PODS, KUBE_ROLLOUT, KUBE_METRICS = (
    "kube-etcd", "kube-nodes", "kube-api-pods", "kube-api-rollout", "kube-metrics")
# When quorum returns, no Lease was renewed during the outage: the node lifecycle controller may mark any
# node, the Redis node included, NotReady until its kubelet's next status (10 s here). Production's 50 s
# grace and 2m `for` keep that blip quiet; the drill's compressed clocks may not.
QUORUM_RETURN_CONSEQUENCES = ("HoneydueNodeNotReady", "RedisNodeNotReady", "CoreDNSUnavailable",
                              "MetricsServerUnavailable", "AdminUnavailable", *NODE_LOSS_CONSEQUENCES)


def _nic_down(p: Pipeline) -> None:
    p.kube.nic_down(2)


def _nic_up(p: Pipeline) -> None:
    p.kube.nic_up(2)
    p.kube.reset()


def _quorum_back(p: Pipeline) -> None:
    p.kube.restore_quorum()
    p.kube.reset()


def _bad_rollout(p: Pipeline) -> None:
    p.kube.runtime.registry_serves(NEW_API_IMAGE, False)
    p.kube.set_image("honeydue", "api", NEW_API_IMAGE)


def _kube_reset(p: Pipeline) -> None:
    p.kube.reset()


def _rollout_undo(p: Pipeline) -> None:
    """`kubectl rollout undo`, then the registry serves the new image again; only the rollout is undone (a
    whole reset would also end the CPU-bound scenario that shares the wave)."""
    p.kube.set_image("honeydue", "api", workloads.API_IMAGE)
    p.kube.runtime.registry_serves(NEW_API_IMAGE, True)
    p.kube.wait_healthy(120)


def _noeviction(p: Pipeline) -> None:
    """Ballast to ~4 MiB, policy noeviction, maxmemory set so used/max is about 0.97."""
    client = p.redis_client()
    try:
        pipe = client.pipeline()
        for i in range(64):
            pipe.set(f"drill:ballast:{i}", b"x" * 65536)
        pipe.execute()
        client.config_set("maxmemory-policy", "noeviction")
        for _ in range(3):  # used_memory settles once the big query buffers are freed
            time.sleep(0.3)
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory", str(int(used / 0.97)))
    finally:
        client.close()


def _eviction_back(p: Pipeline) -> None:
    client = p.redis_client()
    try:
        client.config_set("maxmemory", "256mb")
        client.config_set("maxmemory-policy", "allkeys-lru")
        client.delete(*(f"drill:ballast:{i}" for i in range(64)))
    finally:
        client.close()


def _restart_redis(p: Pipeline) -> None:
    p.redis.stop()
    p.redis.start()


def _stale_entry(p: Pipeline) -> None:
    """User 4 is removed from residence 12 in the database; the cache is not invalidated (the bug)."""
    import psycopg

    with psycopg.connect(p.dsn(), autocommit=True, connect_timeout=5) as conn:
        conn.execute("DELETE FROM residence_residence_users WHERE residence_id = 12 AND user_id = 4")


def _invalidate(p: Pipeline) -> None:
    """The fix: the service invalidates the entry; the next request re-caches the truth."""
    import psycopg

    with psycopg.connect(p.dsn(), autocommit=True, connect_timeout=5) as conn:
        conn.execute("INSERT INTO residence_residence_users (residence_id, user_id) VALUES (12, 4) "
                     "ON CONFLICT DO NOTHING")
    p.seed_cache()


def _worker_dead(p: Pipeline) -> None:
    """The worker is SIGKILLed while honeyDue's API keeps enqueueing emails."""
    assert p.app is not None
    p.app.kill_worker()
    p.app.start_client()


def _worker_back(p: Pipeline) -> None:
    assert p.app is not None
    p.app.stop_client()
    p.app.start_worker()


def _cron_stops(p: Pipeline) -> None:
    """The cron task's handler starts failing; the entry is unique, so its failed task holds the lock in retry
    and the scheduler's next enqueues are refused as duplicates. Once that shows, the history is aged."""
    assert p.app is not None
    p.app.fail_cron_handler(True)
    p.app.wait_cron_refused()
    p.app.age_cron_history(400)  # the +300 s grace of the rule, passed: see the note


def _cron_back(p: Pipeline) -> None:
    """The handler works again: the task in retry succeeds at its next attempt, the lock goes, cron enqueues."""
    assert p.app is not None
    p.app.fail_cron_handler(False)


def _vm_outage(p: Pipeline) -> None:
    """The obs box goes away for 12 s and comes back; vmagent buffers and replays. Not longer: vmagent doubles
    its retry interval (1, 2, 4, 8 s ...), so after a 20 s outage its replay came up to 11 s after VM's return,
    leaving the errors' growth inside the drill's [20s] window for less than the rule's 10 s `for`."""
    p.vm.stop()
    time.sleep(12)
    p.vm.start()


def _both_down(p: Pipeline) -> None:
    p.pooler.stop()
    p.direct.stop()


def _both_up(p: Pipeline) -> None:
    p.pooler.start()
    p.direct.start()


def _nothing(p: Pipeline) -> None:
    return None


def _http(name: str, mode: str) -> Step:
    return lambda p: p.http.set(name, mode)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("pooler-down", "Neon pooler down, direct endpoint up (pgbouncer stopped)",
             ("NeonPoolerDownDirectUp",), lambda p: p.pooler.stop(), lambda p: p.pooler.start(),
             resources=frozenset({"postgres"}),
             failure_mode="neon-pooler-down-direct-up"),
    Scenario("postgres-down", "Postgres fully down (pooler and direct both stopped)",
             ("NeonPostgresDown",), _both_down, _both_up,
             tolerated=("NeonPoolerDownDirectUp", "NeonDirectEndpointDown"),
             resources=frozenset({"postgres", "postgres-direct"}),
             failure_mode="neon-postgres-outage"),
    Scenario("worker-dead", "Asynq worker dead, backlog growing",
             ("AsynqNoLiveWorker", "AsynqBacklogGrowingNothingProcessed"), _worker_dead, _worker_back,
             tolerated=("AsynqQueueNotServed",), resources=frozenset({"asynq", "redis-memory"}), delay=10.0,
             note="the real worker SIGKILLed: it is only seen dead when its heartbeat expires (Asynq: 10 s)",
             failure_mode="worker-stops-processing"),
    Scenario("cron-stopped", "A cron entry stops enqueuing (its unique task keeps failing)", ("AsynqCronEntryStopped",),
             _cron_stops, _cron_back, resources=frozenset({"asynq-cron"}),
             note="the real scheduler refuses duplicates; then its history is aged 400 s: the rule's fixed "
                  "300 s grace cannot pass inside a drill",
             failure_mode="worker-stops-processing"),
    Scenario("redis-noeviction", "Redis switched to noeviction near maxmemory",
             ("RedisNearLimitWithoutEviction", "RedisMaxmemoryPolicyNotAllkeysLru"), _noeviction, _eviction_back,
             tolerated=("RedisMemoryNearLimit", "RedisRejectingWritesOOM"),
             resources=frozenset({"redis-memory"}),
             failure_mode="redis-at-maxmemory"),
    Scenario("redis-restarted-empty", "Redis restarted empty", ("RedisRestartedEmpty",), _restart_redis,
             lambda p: p.seed_cache(), tolerated=("RedisDown",),
             resources=frozenset({"redis", "redis-memory", "asynq", "asynq-cron", "cache"}),
             note="resolves once the shortened [20s] windows no longer hold the registry's members from before",
             failure_mode="redis-pod-dies"),
    Scenario("residence-cache-stale", "Stale residence-IDs cache entry", ("ResidenceIdsCacheStale",),
             _stale_entry, _invalidate, resources=frozenset({"cache", "postgres-direct"}),
             failure_mode="stale-residence-ids-cache"),
    Scenario("smtp-down", "Fastmail SMTP down", ("FastmailSmtpUnreachable",), lambda p: p.smtp.stop(),
             lambda p: p.smtp.start(), resources=frozenset({"smtp"}),
             failure_mode="fastmail-smtp-unreachable"),
    Scenario("b2-down", "Backblaze B2 down", ("BackblazeB2Unreachable",), _http("b2", "error"), _http("b2", "ok"),
             resources=frozenset({"b2"}),
             failure_mode="b2-outage"),
    Scenario("api-deadlock", "api deep request hangs, shallow health passes",
             ("ApiDeepRequestFailingShallowHealthy",), _http("api_deep", "hang"), _http("api_deep", "ok"),
             resources=frozenset({"api", "postgres"}),
             failure_mode="api-deadlocks"),  # the rule is quiet while the pooler is down
    Scenario("cloudflare-down", "Cloudflare path down, origin up",
             ("CloudflareDownOriginUp", "CloudflareEdgeFailingOriginUp"), _http("public", "error"),
             _http("public", "ok"), resources=frozenset({"cf"}),
             failure_mode="cf-global-outage"),
    Scenario("kube-nic-failure", "Kubernetes: a server node's NIC fails (kubelet, etcd member, API server silent)",
             ("HoneydueNodeNotReady",), _nic_down, _nic_up, tolerated=NODE_LOSS_CONSEQUENCES,
             resources=frozenset({KUBE_ETCD, KUBE_NODES, KUBE_API_PODS, KUBE_ROLLOUT, KUBE_METRICS}), delay=8.0,
             note="NotReady comes from kube-controller-manager after --node-monitor-grace-period (8 s here, 50 s "
                  "by default)",
             failure_mode="one-node-nic-fails"),
    Scenario("kube-quorum-lost", "Kubernetes: two etcd members die (quorum lost)", ("KubeEtcdQuorumLost",),
             lambda p: p.kube.lose_quorum(), _quorum_back,
             tolerated=("KubeApiserverEtcdCheckFailing", "KubeAPIUnreachable", *QUORUM_RETURN_CONSEQUENCES),
             resources=frozenset({KUBE_ETCD, KUBE_NODES, KUBE_API_PODS, KUBE_ROLLOUT, KUBE_METRICS}),
             note="lists wait on etcd and time out from the first run (KubeAPIUnreachable, same runbook section, "
                  "inhibited once the quorum page fires); after about 30 s the watch caches answer 429 "
                  "storage_unavailable; the servers' failing etcd checks are the evidence throughout "
                  "(docs/kubernetes.md). No lease could be renewed meanwhile: when quorum returns the node "
                  "lifecycle controller may mark nodes NotReady for a moment (pods unready, replicas short)",
             failure_mode="two-nodes-fail"),
    Scenario("kube-bad-rollout", "Kubernetes: api rolled out with an image the registry cannot serve",
             ("HoneydueRolloutStuck", "KubePodImagePullBackOff"), _bad_rollout, _rollout_undo,
             tolerated=("WorkloadPodNotReadyOnNode", "HoneydueDeploymentReplicasMismatch"),
             resources=frozenset({KUBE_ROLLOUT}),  # maxUnavailable 0: the old api pods keep serving, untouched
             failure_mode="gitea-registry-unreachable"),
    Scenario("kube-api-crashloop", "Kubernetes: every api pod crash-looping",
             ("ApiAllReplicasCrashLooping", "ApiPodCrashLooping"),
             lambda p: p.kube.runtime.crash(workloads.API_IMAGE), _kube_reset,
             tolerated=("WorkloadPodNotReadyOnNode", "HoneydueDeploymentReplicasMismatch"),
             resources=frozenset({KUBE_API_PODS, KUBE_ROLLOUT}),
             failure_mode="api-pod-panics"),
    Scenario("kube-api-cpu-bound", "Kubernetes: every api container burns 0.95 of its 1-core CPU limit",
             ("KubeContainerCpuBound",), lambda p: p.kube.use_cpu(workloads.API_IMAGE, 0.95),
             lambda p: p.kube.use_cpu(workloads.API_IMAGE, None), resources=frozenset({KUBE_API_PODS, KUBE_METRICS}),
             delay=20.0,
             note="seen through the real metrics-server, which averages each pod's CPU over 10 s scrapes of the "
                  "kubelets: the rule's 20 s average needs ~20 s of busy samples before its `for` starts",
             failure_mode="everything-is-slow"),
    # ObsProbeDown may fire: the drill's vmagent scrapes the obs-probe too (on the obs box its own scraper does),
    # so the outage gaps the obs-probe's series as well.
    Scenario("obs-unreachable", "victoria-metrics (obs box) unreachable for vmagent for 12 s",
             ("VmagentRemoteWriteErrors",), _vm_outage, _nothing,
             tolerated=("ClusterSilentNoNodeAnswers", "ClusterSilentOneNodeAnswers", "ClusterSilentNodesAnswer",
                        "ObsProbeDown", WATCHDOG),
             resources=frozenset({"*"}),
             note="alerts are evaluated from VM: timed from VM's return, when vmagent replays its buffer",
             failure_mode="vmagent-cant-reach-obs"),
)


def waves(scenarios: tuple[Scenario, ...] | list[Scenario], parallel: bool) -> list[list[Scenario]]:
    """Sequential: one scenario per wave. Parallel: greedy groups with disjoint resources."""
    if not parallel:
        return [[s] for s in scenarios]
    groups: list[list[Scenario]] = []
    for s in scenarios:
        for group in groups:
            used = frozenset().union(*(g.resources for g in group))
            if "*" not in s.resources and "*" not in used and not (used & s.resources):
                group.append(s)
                break
        else:
            groups.append([s])
    return groups


# --- the runner -------------------------------------------------------------------------------------
class Runner:
    """Injects scenarios into a started pipeline and reads the webhook's notifications."""

    def __init__(self, pipeline: Pipeline, progress: Callable[[str], None] = lambda _: None,
                 base_url: str = DEFAULT_RUNBOOK_BASE_URL) -> None:
        self.p = pipeline
        self.progress = progress
        self.index = catalog_index(base_url)
        t = pipeline.timing
        self.fire_timeout = 3 * t.fire_bound + 30
        self.resolve_timeout = 3 * float(t.range_window.rstrip("s")) + 60
        self.dashboard = DashboardCheck(pipeline.vm.url, window=t.range_window)
        self.healthy_at: float | None = None
        self.quiet_since: float | None = None  # wall-clock start of the quiet the warm-up waited for

    def _firing(self) -> set[str]:
        return {n.name for n in self.p.webhook.firing_now().values()}

    def warm_up(self, timeout: float = 120.0) -> None:
        """Wait for the Watchdog at Alertmanager and for start-up alerts to clear."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            firing = self._firing()
            if WATCHDOG in firing and firing == {WATCHDOG}:
                if quiet_since is None:
                    quiet_since, self.quiet_since = time.monotonic(), time.time()
                if time.monotonic() - quiet_since >= self.p.timing.fire_bound:
                    return
            else:
                quiet_since = self.quiet_since = None
            time.sleep(0.5)
        raise TimeoutError(f"pipeline not quiet after {timeout:g}s: firing {sorted(self._firing())}")

    def healthy_period(self, seconds: float) -> set[str]:
        """Alerts other than the Watchdog that fired while nothing was broken (must be empty). The period starts
        when the warm-up found the pipeline quiet (the quiet it waited for is part of it), else now."""
        started = self.quiet_since or time.time()
        time.sleep(max(0.0, started + seconds - time.time()))
        fired = {n.name for n in self.p.webhook.since(started) if n.status == "firing"}
        if WATCHDOG not in self._firing():
            fired.add("(Watchdog not firing)")
        self.healthy_at = time.time()
        watchdog = {self.index_failure_mode[WATCHDOG]: SEVERITY_STATE["info"]}
        shown = self._now_row_settled(watchdog, self.healthy_at)
        if shown != watchdog:
            fired.add(f"(dashboard Now row shows {shown}: {self.dashboard.firing(self.healthy_at)})")
        return fired - {WATCHDOG}

    def run(self, scenarios: tuple[Scenario, ...] | list[Scenario], parallel: bool) -> list[Result]:
        results: list[Result] = []
        for wave in waves(scenarios, parallel):
            results += self._wave(wave)
        return results

    def _check(self, result: Result, n: Notification) -> None:
        severity, runbook = self.index.get(n.name, ("?", "?"))
        result.runbook[n.name] = n.annotations.get("runbook_url", "")
        result.severity[n.name] = n.labels.get("severity", "")
        if n.labels.get("severity") != severity:
            result.problems.append(f"{n.name}: severity {n.labels.get('severity')} != {severity}")
        if result.runbook[n.name] != runbook:
            result.problems.append(f"{n.name}: runbook_url {result.runbook[n.name]} != {runbook}")

    def _wave(self, wave: list[Scenario]) -> list[Result]:
        results = {s.id: Result(s) for s in wave}
        allowed = {WATCHDOG}.union(*(set(s.expected) | set(s.tolerated) for s in wave))
        start = time.time()
        injected: dict[str, float] = {}

        def inject(s: Scenario) -> None:
            self.progress(f"inject   {s.id}: {s.failure}")
            s.inject(self.p)
            injected[s.id] = time.time()  # the failure is in place once inject returns

        recovered: dict[str, float] = {}

        def recover(s: Scenario) -> None:
            self.progress(f"recover  {s.id}")
            recovered[s.id] = time.time()
            s.recover(self.p)

        # Side by side: their resources are disjoint, and a slow injection (the cron scenario waits for the
        # scheduler's refusals) must not hold back the others'. Each scenario recovers as soon as all its alerts
        # have fired, not when the wave's slowest has: an alert that ends on its own (RedisRestartedEmpty's
        # hold) must be recovered from before it does.
        with ThreadPoolExecutor(len(wave)) as pool:
            list(pool.map(inject, wave))
            recovering: dict[str, Future[None]] = {}
            deadline = time.monotonic() + self.fire_timeout
            while time.monotonic() < deadline:
                for n in self.p.webhook.since(start):
                    if n.status != "firing":
                        continue
                    for s in wave:
                        r = results[s.id]
                        if n.name in s.expected and n.name not in r.fired:
                            r.fired[n.name] = n.received - injected[s.id]
                            self._check(r, n)
                            self.progress(f"fired    {n.name} after {r.fired[n.name]:.1f}s")
                for s in wave:
                    if s.id not in recovering and len(results[s.id].fired) == len(s.expected):
                        recovering[s.id] = pool.submit(recover, s)
                if len(recovering) == len(wave):
                    break
                time.sleep(0.5)
            for s in wave:  # what did not fire in time is recovered from all the same
                if s.id not in recovering:
                    recovering[s.id] = pool.submit(recover, s)
            for future in recovering.values():
                future.result()
        deadline = time.monotonic() + self.resolve_timeout
        while time.monotonic() < deadline:
            for n in self.p.webhook.since(min(recovered.values())):
                if n.status != "resolved":
                    continue
                for s in wave:
                    r = results[s.id]
                    if n.name in r.fired and n.name not in r.resolved and n.received >= recovered[s.id]:
                        r.resolved[n.name] = n.received - recovered[s.id]
                        self.progress(f"resolved {n.name} after {r.resolved[n.name]:.1f}s")
            done = all(set(results[s.id].resolved) == set(results[s.id].fired) for s in wave)
            if done and self._firing() <= {WATCHDOG} and WATCHDOG in self._firing():
                break
            time.sleep(0.5)
        # Read as of the fire times, so it never delays a recovery (a held signal would outlive its hold).
        self._check_dashboard(wave, results, allowed, injected)
        for n in self.p.webhook.since(start):
            for s in wave:
                r = results[s.id]
                fired_at = injected[s.id] + r.fired.get(n.name, 1e9)
                if n.status == "resolved" and fired_at < n.received < recovered[s.id]:
                    r.problems.append(f"{n.name} resolved before the recovery (flapped)")
        stray = {n.name for n in self.p.webhook.since(start) if n.status == "firing"} - allowed
        still = self._firing() - {WATCHDOG}
        for s in wave:
            r = results[s.id]
            r.wrong = set(stray)
            for name in s.expected:
                if name not in r.fired:
                    r.problems.append(f"{name} did not fire within {self.fire_timeout:.0f}s")
                elif name not in r.resolved:
                    r.problems.append(f"{name} did not resolve within {self.resolve_timeout:.0f}s")
            if still & (set(s.expected) | set(s.tolerated)):
                r.problems.append(f"still firing after recovery: {sorted(still)}")
        return [results[s.id] for s in wave]


    # --- the dashboard, read from VictoriaMetrics while the failure is on --------------------------------
    @property
    def index_failure_mode(self) -> dict[str, str]:
        return {a.name: e.id for e, a in catalog_alerts()}

    def _now_row_settled(self, needed: dict[str, int], at: float, timeout: float = 30.0) -> dict[str, int]:
        """The "Now" row at `at`, once it shows `needed` states (VictoriaMetrics 1.79 makes new ALERTS series
        searchable only after an index refresh of up to ~10 s; their samples at `at` are there already)."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.dashboard.shown(self.dashboard.now(at))
            if all(shown.get(fm, 0) >= state for fm, state in needed.items()) or time.monotonic() > deadline:
                return shown
            time.sleep(1.0)

    def _check_dashboard(self, wave: list[Scenario], results: dict[str, Result], allowed: set[str],
                         injected: dict[str, float]) -> None:
        """Each scenario's failure on the dashboard, read after the wave as of the moment its alerts had all
        fired: its failure modes (and only the wave's) in the "Now" row at their alerts' severity, and each expected
        alert's panel showing, when the alert fired, a series past its threshold not there when healthy."""
        fm = self.index_failure_mode
        allowed_modes = {fm[name] for name in allowed if name in fm}
        for s in (s for s in wave if len(results[s.id].fired) == len(s.expected)):
            r = results[s.id]
            fired_at = {name: injected[s.id] + r.fired[name] for name in s.expected}
            at = max(fired_at.values())
            needed: dict[str, int] = {}
            for name in s.expected:
                needed[fm[name]] = max(needed.get(fm[name], 0), SEVERITY_STATE[self.index[name][0]])
            shown = self._now_row_settled(needed, at)
            r.now_row = dict(shown)
            problems: list[str] = []
            for name in s.expected:
                severity = self.index[name][0]
                state = shown.get(fm[name], 0)
                if state < SEVERITY_STATE[severity]:
                    problems.append(f"Now row: {fm[name]} at {state}, below {name}'s {severity}")
            extra = set(shown) - allowed_modes
            if extra:
                problems.append(f"Now row shows failure modes outside the wave's alerts: {sorted(extra)} "
                                f"(firing: {self.dashboard.firing(at)})")
            for name in s.expected:
                why = self.dashboard.shows_failure(name, self.healthy_at or at - 60, fired_at[name])
                if why:
                    problems.append(why)
            problems += self.dashboard.empty_panels({fm[name] for name in s.expected}, at)
            r.dashboard = problems


def table(results: list[Result], fire_bound: float) -> str:
    """The drill's report: one line per expected alert."""
    header = ("failure mode", "expected alert", "fire s", "resolve s", "ok", "runbook")
    rows: list[tuple[str, ...]] = []
    for r in results:
        for i, name in enumerate(r.scenario.expected):
            fired = r.fired.get(name)
            resolved = r.resolved.get(name)
            bound = fire_bound + r.scenario.delay
            within = "" if fired is None or fired <= bound else f" >{bound:g}"
            rows.append((
                r.scenario.failure if i == 0 else "",
                name,
                "-" if fired is None else f"{fired:.1f}{within}",
                "-" if resolved is None else f"{resolved:.1f}",
                "yes" if r.ok else "NO",
                r.runbook.get(name) or catalog_index().get(name, ("", ""))[1],
            ))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
