"""honeyDue's cluster as the obs TSDB sees it: every series the shipped rules read, step by step.

A `State` holds what is broken right now (the faults an incident injects) and where things run (the
placement of the exporter, vmagent, CoreDNS and Redis over n1-n3, which Kubernetes changes by itself when a
node fails or is drained: `advance`). `series(state)` answers with the value of every series at that
moment, derived from the faults and the placement through the witnesses that observe them
(docs/witnesses.md):

- the exporter pod (one node): reaches names through CoreDNS (a ClusterIP, so kube-proxy on its node, then
  the overlay to CoreDNS' node), Redis and the api through their ClusterIPs and the overlay, the Kubernetes
  API through the `kubernetes` ClusterIP, the server nodes' :6443 and the origins by node IP, the outside
  world through its node's egress;
- one netcheck pod per node, on the host network: scraped at its node's IP (not over the overlay), its
  discovery reads the node's own API server, its names still go through CoreDNS (ClusterFirstWithHostNet);
- vmagent (one node): scrapes pods by pod IP over the overlay, netcheck by node IP, and remote-writes to
  the obs box with the node's resolver (dnsPolicy Default): when its node is gone or the obs box refuses
  it, nothing at all arrives; a target it lists but cannot reach is `up` 0, a target it no longer lists
  (a Pending pod) has no `up` at all;
- the obs side: the obs-probe (the exporter's HTTP probe on the obs box) asks the public URL and every
  node's origin directly; it and the Watchdog survive everything inside the cluster.

Labels are vmagent's (deploy/vmagent): `job`, a stable `instance` and `kubernetes_namespace` on every
series, `kubernetes_pod_name`/`kubernetes_node` on `up` and `honeydue_exporter_build_info` only. Series the
rules never read are left out: they cannot change an alert. Nothing the exporter keeps in memory survives
its restart here either: every series is a function of the cluster's state.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

NODES = ("n1", "n2", "n3")
QUEUES = ("default", "email")
EXPORTER = {"job": "honeydue-exporter", "instance": "honeydue-exporter", "kubernetes_namespace": "honeydue"}
OBS_PROBE = {"job": "honeydue-obs-probe", "instance": "obs"}
# Seconds after a node stops answering until its pods are evicted and started elsewhere (node-monitor grace
# period 40 s, chapter 16, plus each pod's not-ready toleration): the exporter tolerates 30 s
# (deploy/base/deployment.yaml), everything else Kubernetes' default 300 s.
GRACE = 40
EXPORTER_TOLERATION = 30
DEFAULT_TOLERATION = 300
# *_timestamp_seconds series hold seconds since step 0; the runner adds each engine's own clock.
# DNS lookups of the production config (deploy/overlays/example/config.yml)
CLUSTER_NAMES = ("api.honeydue.svc.cluster.local", "redis.honeydue.svc.cluster.local")
UPSTREAM_NAMES = ("smtp.fastmail.com", "myhoneydue.com")  # outside names asked of CoreDNS
DEPLOYMENTS = {("honeydue", "api"): 3, ("honeydue", "admin"): 1, ("honeydue", "worker"): 1,
               ("honeydue", "redis"): 1, ("honeydue", "vmagent"): 1, ("kube-system", "coredns"): 1,
               ("kube-system", "metrics-server"): 1, ("kube-system", "traefik"): 1}
CREDENTIALS = ("postgres", "redis", "api_token", "kube", "obs_token")


@dataclass(frozen=True)
class Placement:
    """Where the single-replica observers and dependencies start (Kubernetes moves them later)."""

    exporter: str = "n1"
    vmagent: str = "n2"
    coredns: str = "n2"
    redis: str = "n3"

    def __str__(self) -> str:
        return f"E={self.exporter},V={self.vmagent},C={self.coredns},R={self.redis}"


DEFAULT_PLACEMENT = Placement()


@dataclass
class State:
    """What is true of the cluster at one step. Incidents set the faults; `advance` does what Kubernetes does."""

    # --- where things run (set from the placement; moved by Kubernetes) ---
    exporter_node: str = "n1"
    vmagent_node: str = "n2"
    coredns_node: str = "n2"
    redis_node: str = "n3"                                 # the node holding Redis' local-path volume
    exporter_pod: int = 0                                  # bumps at every restart (new pod name)
    restart: bool = False                                  # this step: the exporter restarted (stale)
    down_since: dict[str, int] = field(default_factory=dict)  # node -> step it went down (advance)
    api_moved: list[str] = field(default_factory=list)    # nodes whose api pod was evicted elsewhere
    redis_started: int = -100_000                          # second Redis last started (uptime)
    redis_empty_since: int | None = None                   # second Redis came back without its data
    redis_was_serving: bool = True
    processed_at_empty: int = 0                            # Asynq's processed count lost with the data
    api_oom_at: int = 0                                    # second of the last OOM kill
    # --- faults ---
    down: list[str] = field(default_factory=list)          # nodes off the network (NIC, power, reboot)
    cordoned: list[str] = field(default_factory=list)      # drained: its pods evicted (Redis cannot leave)
    exporter_crashloop: bool = False
    creds_rejected: list[str] = field(default_factory=list)  # the exporter's credentials refused (CREDENTIALS)
    coredns: bool = True                                   # CoreDNS answers (else it crash-loops)
    coredns_upstream: bool = True                          # CoreDNS resolves outside names
    flannel_broken: str = ""
    kubeproxy_broken: str = ""
    ufw_block: dict[str, list[str]] = field(default_factory=dict)  # node -> essential targets blocked
    ufw_6443: bool = False                                 # new pod -> node:6443 connections dropped
    ufw_6443_on: str = ""                                  # ...by one node's firewall only (its :6443)
    redis: bool = True                                     # the Redis process serves
    redis_oom_errors: int = 0
    worker: bool = True
    pending: int = 0                                       # Asynq backlog (grows while the worker is dead)
    processed: int = 1000
    retry: int = 0
    archived: int = 0
    smtp: bool = True
    pooler: bool = True
    direct: bool = True
    cf_pop: bool = True                                    # the POP our probe is routed to
    cf_global: bool = True
    grey_clouded: bool = False                             # the public records point at the node IPs
    api: str = "ok"  # ok | down (answers nothing) | crashloop | deadlock | bad_deploy | bad_image | config_error
    api_oom: int = 0                                       # OOM kills of the first api container so far
    traefik_broken: list[str] = field(default_factory=list)  # nodes whose Traefik answers 404/502
    metrics_server: bool = True                            # metrics-server serves (else it crash-loops)
    api_generation: int = 0                                # bumps at every rollout (new pod names, new IPs)
    b2: bool = True
    registry: bool = True
    obs_ingest: bool = True
    vmagent_writes: bool = True                            # the obs box accepts vmagent's remote write
    kubelet: dict[str, str] = field(default_factory=dict)  # node -> kubelet version (default v1.35.1+k3s1)
    disk_pressure: str = ""
    evicted: dict[str, int] = field(default_factory=dict)  # node -> evicted pods (they stay until deleted)
    redis_labelled: list[str] | None = None                # nodes with the Redis label (None: redis_node only)
    # ok | fail (every list waits on etcd until the read timeout) | storage (an API server without etcd
    # quorum, after ~30 s: lists served by the watch caches answer 429 "storage is (re)initializing").
    lists: str = "ok"
    failing_probes: list[str] = field(default_factory=list)  # probes that fail every run (series vanish)
    dns_outside: int = 0                                   # public answers outside every configured range
    api_cpu: float = 0.05                                  # cores each api container uses (its limit: 1 core)
    residence_stale: int = 0                               # sampled residence-IDs cache entries the database contradicts
    crashloop_since: int | None = None                     # step the exporter's crash loop began (advance)


FAULT_FIELDS = {f.name for f in fields(State)} - {
    "exporter_node", "vmagent_node", "coredns_node", "redis_node", "exporter_pod", "restart", "down_since",
    "api_moved", "redis_started", "redis_empty_since", "crashloop_since", "redis_was_serving",
    "processed_at_empty", "api_oom_at"}


def initial(placement: Placement) -> State:
    return State(exporter_node=placement.exporter, vmagent_node=placement.vmagent,
                 coredns_node=placement.coredns, redis_node=placement.redis)


# --- what Kubernetes does by itself ------------------------------------------------------------------------
def quorum_lost(s: State) -> bool:
    return len([n for n in NODES if n in s.down]) >= 2


def _schedulable(s: State, avoid: str = "") -> list[str]:
    return [n for n in NODES if n not in s.down and n not in s.cordoned and n != avoid]


def advance(s: State, k: int, step: int) -> None:
    """One step of Kubernetes: evict pods from drained and long-dead nodes (with quorum), grow Asynq's backlog.

    A drain evicts at once; a dead node's pods go after the node-monitor grace period plus their
    toleration. Without etcd quorum nothing is rescheduled. Redis cannot leave its node (local-path volume):
    it is down while that node is dead or drained, until the operator moves the label (`redis_node`).
    """
    for node in NODES:
        if node in s.down:
            s.down_since.setdefault(node, k)
        else:
            s.down_since.pop(node, None)
    if s.exporter_crashloop:
        s.crashloop_since = k if s.crashloop_since is None else s.crashloop_since
    else:
        s.crashloop_since = None

    def gone(node: str, toleration: int) -> bool:
        """The pods on `node` have to move now."""
        if node in s.cordoned:
            return True
        since = s.down_since.get(node)
        return since is not None and (k - since) * step >= GRACE + toleration

    if not quorum_lost(s):
        if gone(s.exporter_node, EXPORTER_TOLERATION) and _schedulable(s, s.exporter_node):
            s.exporter_node = _schedulable(s, s.exporter_node)[0]
            s.exporter_pod += 1
            s.restart = True
        if gone(s.vmagent_node, DEFAULT_TOLERATION) and _schedulable(s, s.vmagent_node):
            s.vmagent_node = _schedulable(s, s.vmagent_node)[0]
        if gone(s.coredns_node, DEFAULT_TOLERATION) and _schedulable(s, s.coredns_node):
            s.coredns_node = _schedulable(s, s.coredns_node)[0]
        for node in NODES:
            if gone(node, DEFAULT_TOLERATION) and node not in s.api_moved:
                s.api_moved.append(node)
    for node in list(s.api_moved):
        if node not in s.down and node not in s.cordoned:
            s.api_moved.remove(node)  # the node is back: the scheduler spreads the api again (a new rollout)
    serving = redis_serves(s)
    if serving and not s.redis_was_serving:  # Redis starts again on its node, with its data
        s.redis_started = k * step
    s.redis_was_serving = serving
    if not s.worker:
        s.pending += 5
    else:
        drained = min(s.pending, 50)  # a live worker works the backlog off
        s.pending -= drained
        s.processed += 10 + drained


# --- paths, as each witness has them ------------------------------------------------------------------------
def up(s: State, node: str) -> bool:
    return node not in s.down


def overlay(s: State, a: str, b: str) -> bool:
    """A pod on `a` reaches a pod on `b` (pod IPs): the same node, or Flannel working on both."""
    if not up(s, a) or not up(s, b):
        return False
    return a == b or (s.flannel_broken not in (a, b))


def cluster_ip(s: State, node: str) -> bool:
    """A pod on `node` can use a Service ClusterIP: kube-proxy's rules there are intact."""
    return up(s, node) and s.kubeproxy_broken != node


def coredns_serves(s: State) -> bool:
    return s.coredns and up(s, s.coredns_node)


def dns(s: State, node: str) -> bool:
    """A pod on `node` resolves cluster names: the DNS ClusterIP, then the overlay to CoreDNS' pod."""
    return coredns_serves(s) and cluster_ip(s, node) and overlay(s, node, s.coredns_node)


def upstream(s: State, node: str) -> bool:
    """A pod on `node` resolves outside names (CoreDNS forwards them upstream)."""
    return dns(s, node) and s.coredns_upstream


def redis_serves(s: State) -> bool:
    """The Redis pod runs: its process is up and its node is there and not drained (it cannot move)."""
    return s.redis and up(s, s.redis_node) and s.redis_node not in s.cordoned


def redis_path(s: State, node: str) -> str:
    """'' when a pod on `node` reaches Redis by name, else the reason it does not."""
    if not dns(s, node):
        return "dns"
    if not cluster_ip(s, node):
        return "timeout"
    if not redis_serves(s):
        return "refused"  # no ready endpoint: kube-proxy rejects the connection
    if not overlay(s, node, s.redis_node):
        return "timeout"
    return ""


def api_pods(s: State) -> dict[str, list[tuple[str, str, str]]]:
    """node -> [(pod, waiting reason or '', terminated reason or '')] of the api Deployment."""
    pods: dict[str, list[tuple[str, str, str]]] = {}
    alive = [n for n in NODES if n not in s.down and n not in s.cordoned]
    for i, node in enumerate(NODES):
        home = node if node not in s.api_moved or not alive else alive[i % len(alive)]
        waiting = "CrashLoopBackOff" if s.api == "crashloop" else ""
        pods.setdefault(home, []).append((f"api-{6000 + s.api_generation}-{node}", waiting, "Error" if waiting else ""))
    if s.api in ("bad_deploy", "bad_image", "config_error"):
        reason = {"bad_deploy": "CrashLoopBackOff", "bad_image": "ImagePullBackOff"}.get(s.api,
                                                                                        "CreateContainerConfigError")
        pods.setdefault(alive[0] if alive else "n1", []).append(("api-7f00-0", reason, "Error" if s.api == "bad_deploy" else ""))
    return pods


def api_serving(s: State) -> bool:
    return s.api in ("ok", "bad_deploy", "bad_image", "config_error", "deadlock")


def api_endpoints(s: State) -> list[str]:
    """Nodes of the api pods behind the Service (Ready: running, on a live node)."""
    if not api_serving(s):
        return []
    return [node for node, items in api_pods(s).items() for _, waiting, _ in items if not waiting and up(s, node)]


def api_from(s: State, node: str) -> bool:
    """A request from a pod on `node` to the api Service succeeds: kube-proxy picks a random endpoint, so
    it fails when most endpoints cannot be reached from there."""
    endpoints = api_endpoints(s)
    if not cluster_ip(s, node) or not endpoints:
        return False
    reachable = [e for e in endpoints if overlay(s, node, e)]
    return 2 * len(reachable) > len(endpoints)


def origin(s: State, node: str) -> bool:
    """The origin on `node` (Traefik on its node IP) answers 200: the node is there, its Traefik works and
    routes to the api through that node's kube-proxy."""
    return up(s, node) and node not in s.traefik_broken and api_from(s, node)


def public(s: State, pop: bool = True) -> bool:
    """The public URL through Cloudflare answers: Cloudflare works and sends the request to an origin that
    answers (it retries another node on a connection failure, not on a 404 or 502). `pop`: whether the
    outage of the exporter's POP applies (the obs box is routed to another one)."""
    if not ((s.cf_pop or not pop) and s.cf_global):
        return s.grey_clouded and any(origin(s, n) for n in NODES)  # grey-clouded: users reach origins
    answering = [n for n in NODES if up(s, n)]
    # The probe lands on one origin per request: it fails when most of them answer with errors (a single bad
    # node makes it flap, which no `for` survives: OriginFailingOnNode sees that node from the obs box).
    return bool(answering) and 2 * len([n for n in answering if origin(s, n)]) > len(answering)


def exporter_alive(s: State, k: int) -> bool:
    """The exporter's process runs and answers (a crash loop at its 300 s back-off answers ~1 scrape in 11)."""
    if s.restart or not up(s, s.exporter_node):
        return False
    if s.crashloop_since is not None:
        return (k - s.crashloop_since) % 11 == 10
    return True


def vmagent_writes(s: State) -> bool:
    return up(s, s.vmagent_node) and s.vmagent_writes


_KEYS: dict[tuple[Any, ...], tuple[str, frozenset[tuple[str, str]]]] = {}


class Series:
    """name{labels} -> value for one step."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    def add(self, name: str, value: float, scrape: dict[str, str], **labels: str) -> None:
        # An empty label is no label. vmagent puts kubernetes_pod_name and kubernetes_node on `up` and
        # honeydue_exporter_build_info; no rule reads them (tests/test_rules.py checks), so they are left out.
        cache_key = (name, tuple(scrape.items()), tuple(labels.items()))
        key = _KEYS.get(cache_key)
        if key is None:
            all_labels = {k: v for k, v in {**scrape, **labels}.items() if (v and not k.startswith("kubernetes_"))
                          or k == "kubernetes_namespace"}
            key = _KEYS[cache_key] = (name, frozenset(all_labels.items()))
        self.values[key] = float(value)


# Fields whose value changes every step (counters, clocks): their series are added after the cached rest.
_DYNAMIC = {"processed", "pending", "redis_started", "redis_empty_since", "crashloop_since", "down_since",
            "processed_at_empty", "redis_was_serving"}
_KEYED = [f.name for f in fields(State) if f.name not in _DYNAMIC]
_NODE_NAME = re.compile(r"n[1-3]")
_RENAMINGS = [dict(zip(NODES, p, strict=True)) for p in itertools.permutations(NODES)]


@dataclass
class Static:
    """The series of one distinct state that do not move with the clock, and what the clock adds to them."""

    values: dict[tuple[str, frozenset[tuple[str, str]]], float]
    scrape: dict[str, str] | None  # the exporter's scrape labels when its Redis series are there
    asynq: bool  # whether its Asynq series are
    _hashes: dict[tuple[int, frozenset[str] | None], int] = field(default_factory=dict)

    def renamed_hash(self, index: int, keep: frozenset[str] | None = None) -> int:
        """A hash of the values (of the metrics in `keep`, or all) with the node names renamed by
        _RENAMINGS[index] (for incident variants)."""
        if (index, keep) not in self._hashes:
            perm = _RENAMINGS[index]

            def rename(text: str) -> str:
                return _NODE_NAME.sub(lambda m: perm[m.group(0)], text)

            self._hashes[(index, keep)] = hash(frozenset(
                ((name, frozenset((k, rename(v)) for k, v in labels)), value)
                for (name, labels), value in self.values.items() if keep is None or name in keep))
        return self._hashes[(index, keep)]


_CACHE: dict[tuple[Any, ...], Static] = {}


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return value


SeriesValues = dict[tuple[str, frozenset[tuple[str, str]]], float]


def series_parts(s: State, step: int, step_seconds: float) -> tuple[Static, SeriesValues]:
    """(the series that depend on the state alone, computed once per distinct state; the ones the clock moves).
    The second part's labels name no node."""
    now = step * step_seconds
    empty = s.redis_empty_since is not None
    key = (*(_frozen(getattr(s, name)) for name in _KEYED), exporter_alive(s, step), empty)
    static = _CACHE.get(key)
    if static is None:
        out = Series()
        scrape, asynq = _static(out, s, step, empty)
        static = _CACHE[key] = Static(out.values, scrape, asynq)
    dynamic = Series()
    if static.scrape is not None:
        _dynamic(dynamic, s, static.scrape, now, static.asynq)
    return static, dynamic.values


def series(s: State, step: int, step_seconds: float) -> Series:
    """Every series at this step."""
    static, dynamic = series_parts(s, step, step_seconds)
    out = Series()
    out.values = {**static.values, **dynamic}
    return out


def _static(out: Series, s: State, step: int, empty: bool) -> tuple[dict[str, str] | None, bool]:
    """The series that depend on the state alone; returns the exporter's scrape labels when its Redis series
    are there (None otherwise) and whether its Asynq series are."""
    _obs_probe(out, s)
    if not vmagent_writes(s):  # nothing else reaches the obs box
        return None, False
    pod = f"honeydue-exporter-5d8f7c-{s.exporter_pod:05d}"
    scrape = {**EXPORTER, "kubernetes_pod_name": pod, "kubernetes_node": s.exporter_node}
    # vmagent lists the exporter while its pod is Running (a dead node's pods stay Running until evicted,
    # which needs quorum); it reaches it over the overlay.
    scraped = exporter_alive(s, step) and overlay(s, s.vmagent_node, s.exporter_node)
    out.add("up", 1 if scraped else 0, scrape)
    found: tuple[dict[str, str] | None, bool] = (None, False)
    if scraped:
        out.add("honeydue_exporter_build_info", 1, scrape, version="0.2.0")
        found = _exporter(out, s, scrape, empty)
    for node in NODES:
        _netcheck(out, s, node)
    return found


# --- the obs side --------------------------------------------------------------------------------------------
def _obs_probe(out: Series, s: State) -> None:
    """The exporter's HTTP probe on the obs box: the public URL and each node's origin, from outside (a node
    that is up answers, if only with Traefik's 502)."""
    out.add("up", 1, OBS_PROBE)
    out.add("honeydue_http_up", 1 if public(s, pop=False) else 0, OBS_PROBE, target="www", role="public", node="")
    for node in NODES:
        labels = {"target": f"origin_{node}", "role": "origin", "node": node}
        out.add("honeydue_http_up", 1 if origin(s, node) else 0, OBS_PROBE, **labels)
        out.add("honeydue_http_status_code", (200 if origin(s, node) else 502) if up(s, node) else 0, OBS_PROBE,
                **labels)


# --- the main exporter ----------------------------------------------------------------------------------------
def _probe(out: Series, scrape: dict[str, str], name: str, ok: bool, reason: str = "timeout") -> None:
    out.add("honeydue_probe_success", 1 if ok else 0, scrape, probe=name)
    if not ok:
        out.add("honeydue_probe_error_info", 1, scrape, probe=name, reason=reason)


def _exporter(out: Series, s: State, sc: dict[str, str], empty: bool) -> tuple[dict[str, str] | None, bool]:
    here = s.exporter_node
    outside = upstream(s, here)  # outside names resolve (node egress needs nothing else)
    name_reason = "dns" if not outside else "timeout"
    found = _redis(out, s, sc, empty)
    _postgres(out, s, sc)
    _http(out, s, sc)
    _dns(out, s, sc)
    smtp_ok = outside and s.smtp
    out.add("honeydue_smtp_up", 1 if smtp_ok else 0, sc, target="fastmail")
    _probe(out, sc, "smtp_fastmail", smtp_ok, name_reason)
    vm_reason = "dns" if not dns(s, here) else "" if cluster_ip(s, here) and overlay(s, here, s.vmagent_node) else "timeout"
    out.add("honeydue_vmagent_up", 0 if vm_reason else 1, sc)
    _probe(out, sc, "vmagent", not vm_reason, vm_reason)
    if not vm_reason:
        out.add("honeydue_vmagent_remotewrite_errors_total", 0, sc)
        out.add("honeydue_vmagent_remotewrite_pending_bytes", 1_000_000, sc)
        out.add("honeydue_vmagent_remotewrite_packets_dropped_total", 0, sc)
        out.add("honeydue_vmagent_persistentqueue_blocks_dropped_total", 0, sc)
    nodata_reason = name_reason if not outside else "auth" if "obs_token" in s.creds_rejected else \
        "" if s.obs_ingest else "timeout"
    out.add("honeydue_nodata_query_up", 0 if nodata_reason else 1, sc)
    _probe(out, sc, "nodata", not nodata_reason, nodata_reason)
    if not nodata_reason:
        out.add("honeydue_nodata_metric_missing", 0, sc, metric="honeydue_redis_up")
    _residence_cache(out, s, sc)
    _kubernetes(out, s, sc)
    return found


def _residence_cache(out: Series, s: State, sc: dict[str, str]) -> None:
    """The residence-IDs cache probe (enabled in the shipped config): Redis' entries against the pooler's truth."""
    reason = redis_path(s, s.exporter_node) or ("auth" if "redis" in s.creds_rejected else "")
    if not reason and not upstream(s, s.exporter_node):
        reason = "dns"
    if not reason and not s.pooler:
        reason = "timeout"
    if not reason and "postgres" in s.creds_rejected:
        reason = "auth"
    _probe(out, sc, "residence_cache", not reason, reason)
    if reason:
        return
    out.add("honeydue_residence_ids_cache_entries_checked", 50, sc)
    out.add("honeydue_residence_ids_cache_entries_stale", s.residence_stale, sc)
    out.add("honeydue_residence_ids_cache_entries_without_ttl", 0, sc)


def _redis(out: Series, s: State, sc: dict[str, str], empty: bool) -> tuple[dict[str, str] | None, bool]:
    reason = redis_path(s, s.exporter_node) or ("auth" if "redis" in s.creds_rejected else "")
    out.add("honeydue_redis_up", 0 if reason else 1, sc)
    _probe(out, sc, "redis", not reason, reason)
    asynq_reason = reason or ("protocol" if "asynq" in s.failing_probes else "")
    _probe(out, sc, "asynq", not asynq_reason, asynq_reason)
    if reason:
        return None, False
    # Asynq's registry: gone after a restart without data, and it stays empty: a client registers a queue once
    # per process (tests/test_asynq.py, real Asynq), so only a new process re-lists it. The probe still reads
    # the queues the shipped config names (asynq.queues): their tasks stay visible, listed 0.
    out.add("honeydue_redis_asynq_queues", 0 if empty else len(QUEUES), sc)
    out.add("honeydue_redis_oom_errors_total", s.redis_oom_errors, sc)
    out.add("honeydue_redis_memory_used_bytes", 2_400_000, sc)
    out.add("honeydue_redis_memory_max_bytes", 268_435_456, sc)
    out.add("honeydue_redis_maxmemory_policy_info", 1, sc, policy="allkeys-lru")
    if asynq_reason:
        return sc, False
    out.add("honeydue_asynq_up", 1, sc)
    servers = 1 if s.worker else 0
    out.add("honeydue_asynq_servers_live", servers, sc, status="active")
    out.add("honeydue_asynq_schedulers_live", servers, sc)
    for queue in QUEUES:
        out.add("asynq_tasks", s.retry if queue == "email" else 0, sc, queue=queue, state="retry")
        out.add("asynq_tasks", s.archived if queue == "email" else 0, sc, queue=queue, state="archived")
        out.add("asynq_queue_paused", 0, sc, queue=queue)
        out.add("honeydue_asynq_queue_read_ok", 1, sc, queue=queue)
        out.add("honeydue_asynq_queue_listed", 0 if empty else 1, sc, queue=queue)
        out.add("honeydue_asynq_stuck_active_tasks", 0, sc, queue=queue, reason="lease_expired")
        if s.worker:
            out.add("honeydue_asynq_server_queue_priority", 1, sc, server="worker-1", queue=queue)
    if s.worker:
        out.add("honeydue_asynq_cron_interval_seconds", 60, sc, task_type="reminders:scan", schedule="@every 1m")
    return sc, True


def _dynamic(out: Series, s: State, sc: dict[str, str], now: float, asynq: bool) -> None:
    """The series that move with the clock: Redis' uptime, Asynq's counters, backlog and cron history."""
    out.add("honeydue_redis_uptime_seconds", now - s.redis_started, sc)
    if not asynq:
        return
    processed = s.processed - (s.processed_at_empty if s.redis_empty_since is not None else 0)
    for queue in QUEUES:
        pending = s.pending if queue == "email" else 0
        out.add("asynq_tasks", pending, sc, queue=queue, state="pending")
        out.add("asynq_tasks_processed_total", processed, sc, queue=queue)
        out.add("asynq_queue_latency_seconds", 30 * pending, sc, queue=queue)
    if s.worker:  # the scheduler enqueues every minute; entries of dead schedulers are not read
        out.add("honeydue_asynq_cron_last_enqueue_timestamp_seconds", now - 30, sc,
                task_type="reminders:scan", schedule="@every 1m")


def _postgres(out: Series, s: State, sc: dict[str, str]) -> None:
    outside = upstream(s, s.exporter_node)
    for endpoint, serving in (("pooler", s.pooler), ("direct", s.direct)):
        reason = "dns" if not outside else "timeout" if not serving else "auth" if "postgres" in s.creds_rejected else ""
        out.add("honeydue_postgres_up", 0 if reason else 1, sc, endpoint=endpoint)
        _probe(out, sc, f"postgres_{endpoint}", not reason, reason)


def _http_target(out: Series, sc: dict[str, str], target: str, role: str, status: int, seconds: float,
                 reason: str = "timeout", node: str = "") -> None:
    """One HTTP target: `status` 0 = no answer (the probe failed with `reason`)."""
    ok = status in (200, 302, 403) if role in ("admin", "b2") else status == 200
    out.add("honeydue_http_up", 1 if ok else 0, sc, target=target, role=role, node=node)
    out.add("honeydue_http_status_code", status, sc, target=target, role=role, node=node)
    if status:
        out.add("honeydue_http_phase_duration_seconds", seconds, sc, target=target, role=role, node=node,
                phase="total")
    _probe(out, sc, f"http_{target}", status != 0, reason)


def _http(out: Series, s: State, sc: dict[str, str]) -> None:
    here = s.exporter_node
    outside, inside = upstream(s, here), dns(s, here)
    slow = 3.0 if s.api_cpu >= 0.9 else 0.2  # a throttled api answers, slowly
    by_name = "dns"
    cf = s.cf_pop and s.cf_global
    # Through Cloudflare (names resolved upstream)
    if not outside:
        _http_target(out, sc, "www", "public", 0, 0, by_name)
        _http_target(out, sc, "admin", "admin", 0, 0, by_name)
    else:
        _http_target(out, sc, "www", "public", 200 if public(s) else 502 if cf else 0, slow)
        _http_target(out, sc, "admin", "admin", 200 if cf or s.grey_clouded else 0, 0.2)
    # Each node's origin by IP (Traefik there, Cloudflare bypassed)
    for node in NODES:
        status = (200 if origin(s, node) else 502) if up(s, node) else 0
        _http_target(out, sc, f"origin_{node}", "origin", status, slow, node=node)
    # The api Service by name
    if not inside:
        _http_target(out, sc, "api_health", "api_shallow", 0, 0, by_name)
        _http_target(out, sc, "api_deep", "api_deep", 0, 0, by_name)
    else:
        reach = api_from(s, here)
        _http_target(out, sc, "api_health", "api_shallow", 200 if reach else 0, slow)
        if not reach or s.api == "deadlock":
            deep = 0
        elif "api_token" in s.creds_rejected:
            deep = 401
        else:
            deep = 200 if s.pooler else 500
        _http_target(out, sc, "api_deep", "api_deep", deep, slow)
    for target, role, serving in (("b2", "b2", s.b2), ("registry", "registry", s.registry),
                                  ("obs_ingest", "obs_ingest", s.obs_ingest)):
        if not outside:
            _http_target(out, sc, target, role, 0, 0, by_name)
            continue
        status = 200 if serving else 0
        if serving and role == "obs_ingest" and "obs_token" in s.creds_rejected:
            status = 401
        _http_target(out, sc, target, role, status, 0.2)


def _dns(out: Series, s: State, sc: dict[str, str]) -> None:
    here = s.exporter_node
    lookups = [(name, "coredns", "cluster", dns(s, here)) for name in CLUSTER_NAMES]
    lookups += [(name, "coredns", "cluster_upstream", upstream(s, here)) for name in UPSTREAM_NAMES]
    lookups += [("myhoneydue.com", r, "public", True) for r in ("cloudflare", "quad9")]  # straight to the resolver
    for domain, resolver, role, ok in lookups:
        labels = {"domain": domain, "resolver": resolver, "role": role, "record_type": "A"}
        out.add("honeydue_dns_up", 1 if ok else 0, sc, **labels)
        public_answer = role == "public" and ok
        out.add("honeydue_dns_unexpected_answers", s.dns_outside if public_answer else 0, sc, **labels)
        out.add("honeydue_dns_origin_answers", len(NODES) if public_answer and s.grey_clouded else 0, sc, **labels)
        _probe(out, sc, f"dns_{resolver}_{domain}_a", True)


# --- Kubernetes, as the exporter's probes read it ------------------------------------------------------------
RESOURCES = [("nodes", "", "kubernetes_nodes"), ("pods", "honeydue", "kubernetes_pods_honeydue"),
             ("pods", "kube-system", "kubernetes_pods_kube_system"),
             ("deployments", "honeydue", "kubernetes_deployments_honeydue"),
             ("deployments", "kube-system", "kubernetes_deployments_kube_system"),
             ("apiservices", "", "kubernetes_apiservices")]


def _kubernetes(out: Series, s: State, sc: dict[str, str]) -> None:
    # The `kubernetes` ClusterIP leads to the server nodes' :6443 on the host network (no overlay).
    reachable = cluster_ip(s, s.exporter_node) and any(up(s, n) for n in NODES)
    unauthorized = "kube" in s.creds_rejected
    api_ok = reachable and not unauthorized
    out.add("honeydue_kube_api_up", 1 if api_ok else 0, sc)
    _probe(out, sc, "kubernetes_api", api_ok, "auth" if reachable else "timeout")
    listed = {}
    for resource, ns, probe in RESOURCES:
        if not reachable:
            reason = "timeout"
        elif unauthorized:
            reason = "unauthorized"
        elif s.lists == "fail" or (s.lists == "storage" and resource != "deployments"):
            reason = "timeout"
        elif s.lists == "storage":  # served by the watch cache, which gave up
            reason = "storage_unavailable"
        else:
            reason = "server_error" if probe in s.failing_probes else ""
        listed[probe] = not reason
        out.add("honeydue_kube_resource_up", 0 if reason else 1, sc, resource=resource, namespace=ns)
        if reason:
            out.add("honeydue_kube_resource_error_info", 1, sc, resource=resource, namespace=ns, reason=reason)
        _probe(out, sc, probe, not reason, reason if reason in ("timeout", "unauthorized") else "error")
    if reachable and not unauthorized:
        _readyz(out, s, sc)
    if listed["kubernetes_nodes"]:
        ready = [n for n in NODES if up(s, n)]
        for node in NODES:
            out.add("honeydue_kube_node_status_condition", 1 if node in ready else 0, sc,
                    node=node, condition="Ready", status="true")
            out.add("honeydue_kube_node_status_condition", 1 if s.disk_pressure == node else 0, sc,
                    node=node, condition="DiskPressure", status="true")
            out.add("honeydue_kube_node_spec_unschedulable", 1 if node in s.cordoned else 0, sc, node=node)
            out.add("honeydue_kube_node_info", 1, sc, node=node,
                    kubelet_version=s.kubelet.get(node, "v1.35.1+k3s1"))
        out.add("honeydue_kube_control_plane_nodes_ready", len(ready), sc)
        labelled = [s.redis_node] if s.redis_labelled is None else s.redis_labelled
        out.add("honeydue_kube_redis_nodes", len(labelled), sc)
        for node in labelled:
            out.add("honeydue_kube_redis_node_ready", 1 if node in ready else 0, sc, node=node)
    if listed["kubernetes_apiservices"]:
        out.add("honeydue_kube_apiservice_available", 1 if s.metrics_server else 0, sc,
                apiservice="v1beta1.metrics.k8s.io")
    _workloads(out, s, sc, listed)
    _pod_metrics(out, s, sc, listed)


def _pod_metrics(out: Series, s: State, sc: dict[str, str], listed: dict[str, bool]) -> None:
    """CPU per api container from the metrics API, and the limit the pods probe reads from the pod spec."""
    probe = "kubernetes_pod_metrics_honeydue"
    ok = listed["kubernetes_apiservices"] and s.metrics_server and probe not in s.failing_probes
    out.add("honeydue_kube_resource_up", 1 if ok else 0, sc, resource="pods.metrics.k8s.io", namespace="honeydue")
    _probe(out, sc, probe, ok, "error")
    for items in api_pods(s).values():
        for pod, waiting, _ in items:
            if waiting:
                continue  # a container that does not run uses no CPU and has no metrics
            if ok:
                out.add("honeydue_kube_pod_container_cpu_usage_cores", s.api_cpu, sc, namespace="honeydue", pod=pod,
                        container="api")
            if listed["kubernetes_pods_honeydue"]:
                out.add("honeydue_kube_pod_container_resource_limits", 1, sc, namespace="honeydue", pod=pod,
                        container="api", resource="cpu", unit="core")


def _readyz(out: Series, s: State, sc: dict[str, str]) -> None:
    """GET https://<node IP>:6443/readyz/etcd of every server node, from the exporter's pod."""
    out.add("honeydue_kube_etcd_quorum", 2, sc)
    lost = quorum_lost(s)
    for node in NODES:
        # One node's rule drops the exporter's connects to that node's :6443 only; netcheck lists from its own
        # node's API server over the host's loopback path, and the `kubernetes` ClusterIP still reaches the others.
        answered = up(s, node) and not s.ufw_6443 and node != s.ufw_6443_on
        out.add("honeydue_kube_apiserver_readyz_up", 1 if answered else 0, sc, node=node)
        out.add("honeydue_kube_apiserver_etcd_ready", 1 if answered and not lost else 0, sc, node=node)


def _workloads(out: Series, s: State, sc: dict[str, str], listed: dict[str, bool]) -> None:
    if listed["kubernetes_deployments_honeydue"]:
        _deployments(out, s, sc)
    if not listed["kubernetes_pods_honeydue"]:
        return
    pods = api_pods(s)
    ready_by_node: dict[str, int] = {}
    not_ready_by_node: dict[str, int] = {}
    for node, items in pods.items():
        for pod, waiting, terminated in items:
            out.add("honeydue_kube_pod_info", 1, sc, namespace="honeydue", pod=pod, node=node,
                    workload_kind="Deployment", workload="api")
            restarts = 7 if waiting == "CrashLoopBackOff" else 0
            if s.api_oom and pod == f"api-{6000 + s.api_generation}-n1":  # n1's api pod: OOM-killed, restarted
                restarts, terminated = s.api_oom, "OOMKilled"
            out.add("honeydue_kube_pod_container_status_restarts_total", restarts, sc, namespace="honeydue",
                    pod=pod, container="api")
            if waiting:
                out.add("honeydue_kube_pod_container_status_waiting_reason", 1, sc, namespace="honeydue", pod=pod,
                        container="api", reason=waiting)
            if terminated:
                out.add("honeydue_kube_pod_container_status_last_terminated_reason", 1, sc, namespace="honeydue",
                        pod=pod, container="api", reason=terminated)
                out.add("honeydue_kube_pod_container_status_last_terminated_timestamp_seconds",
                        s.api_oom_at if terminated == "OOMKilled" else 0, sc, namespace="honeydue", pod=pod,
                        container="api")
            healthy = not waiting and up(s, node)
            bucket = ready_by_node if healthy else not_ready_by_node
            bucket[node] = bucket.get(node, 0) + 1
    if listed["kubernetes_pods_kube_system"] and not s.metrics_server:
        pod = "metrics-server-5985cbc9d7-x2v4q"
        out.add("honeydue_kube_pod_container_status_waiting_reason", 1, sc, namespace="kube-system", pod=pod,
                container="metrics-server", reason="CrashLoopBackOff")
        out.add("honeydue_kube_pod_container_status_restarts_total", 7, sc, namespace="kube-system", pod=pod,
                container="metrics-server")
    for node in NODES:
        evicted = s.evicted.get(node, 0)
        out.add("honeydue_kube_evicted_pods", evicted, sc, namespace="honeydue", node=node)
        for ready, counts in (("true", ready_by_node), ("false", not_ready_by_node)):
            out.add("honeydue_kube_workload_pods", counts.get(node, 0), sc, namespace="honeydue", workload="api",
                    node=node, ready=ready)
            serving = up(s, node)  # a Traefik that answers 404 (a broken route) is still Ready
            traefik = 1 if (ready == "true") == serving else 0
            out.add("honeydue_kube_workload_pods", traefik, sc, namespace="kube-system", workload="traefik",
                    node=node, ready=ready)


def _deployments(out: Series, s: State, sc: dict[str, str]) -> None:
    api_ready = len(api_endpoints(s)) if api_serving(s) else 0
    for (ns, name), desired in DEPLOYMENTS.items():
        available = desired
        updated = desired
        if name == "api":
            available = max(min(api_ready, desired), 0) if s.api != "deadlock" else desired
            if s.api in ("bad_deploy", "bad_image", "config_error"):
                updated, available = 1, desired
        elif name == "coredns":
            available = 1 if coredns_serves(s) else 0
        elif name == "redis":
            available = 1 if redis_serves(s) else 0
        elif name == "worker":
            available = 1 if s.worker else 0
        elif name == "metrics-server":
            available = 1 if s.metrics_server else 0
        elif name == "vmagent":
            available = 1 if up(s, s.vmagent_node) else 0
        elif name == "traefik":
            available = 0 if all(n in s.traefik_broken for n in NODES) else 1
        labels = {"namespace": ns, "deployment": name}
        out.add("honeydue_kube_deployment_exists", 1, sc, **labels)
        out.add("honeydue_kube_deployment_spec_replicas", desired, sc, **labels)
        out.add("honeydue_kube_deployment_status_replicas_available", available, sc, **labels)
        out.add("honeydue_kube_deployment_status_replicas_updated", updated, sc, **labels)


# --- netcheck, one pod per node on the host network ----------------------------------------------------------
ESSENTIAL = ("postgres-pooler", "postgres-direct", "redis", "kube-apiserver", "coredns", "smtp-fastmail")


def _essential(s: State, node: str, target: str) -> str:
    """'' when `target` answers a TCP connect from `node`, else why not (dns, timeout, refused)."""
    if target in s.ufw_block.get(node, []):
        return "timeout"
    if target in ("postgres-pooler", "postgres-direct", "smtp-fastmail"):  # outside names, the node's egress
        serving = {"postgres-pooler": s.pooler, "postgres-direct": s.direct, "smtp-fastmail": s.smtp}[target]
        return "dns" if not upstream(s, node) else "" if serving else "timeout"
    if target == "redis":
        return redis_path(s, node)
    if target == "kube-apiserver":  # the `kubernetes` ClusterIP -> a server node's :6443
        return "" if cluster_ip(s, node) and not s.ufw_6443 and any(up(s, n) for n in NODES) else "timeout"
    # coredns: the DNS ClusterIP -> CoreDNS' pod over the overlay
    if not cluster_ip(s, node) or not overlay(s, node, s.coredns_node):
        return "timeout"
    return "" if coredns_serves(s) else "refused"


def _netcheck(out: Series, s: State, node: str) -> None:
    scrape = {"job": "honeydue-netcheck", "instance": f"netcheck-{node}", "kubernetes_namespace": "honeydue",
              "kubernetes_pod_name": f"honeydue-netcheck-{node}x", "kubernetes_node": node}
    if not up(s, node):  # vmagent still lists the pod (DaemonSet pods are never evicted): its scrapes fail
        out.add("up", 0, scrape)
        return
    out.add("up", 1, scrape)
    out.add("honeydue_exporter_build_info", 1, scrape, version="0.2.0")
    for target in ESSENTIAL:
        reason = _essential(s, node, target)
        labels = {"target": target, "role": "essential", "backend": "", "path": "", "node": node}
        out.add("honeydue_tcp_up", 0 if reason else 1, scrape, **labels)
        if reason:
            out.add("honeydue_tcp_failure_info", 1, scrape, reason=reason, **labels)
    # Discovery reads this node's own API server (https://127.0.0.1:6443): it needs the lists, not kube-proxy.
    discovered = not quorum_lost(s) and s.lists == "ok"
    out.add("honeydue_probe_success", 1 if discovered else 0, scrape, probe="netcheck_pods_api")
    if discovered:
        for pod_node in sorted(set(api_endpoints(s))):
            remote = pod_node != node
            labels = {"target": f"api-pod-{pod_node}", "role": "pod", "backend": "api",
                      "path": "remote" if remote else "local", "node": node}
            out.add("honeydue_tcp_up", 1 if overlay(s, node, pod_node) else 0, scrape, **labels)
    service = api_from(s, node)
    out.add("honeydue_tcp_up", 1 if service else 0, scrape, target="api-svc", role="service", backend="api", path="",
            node=node)


_MUTABLE = [f.name for f in fields(State) if f.default_factory is not MISSING]  # lists and dicts


def copy_state(s: State) -> State:
    """A copy that shares nothing mutable with `s` (one level deep is enough: the fields hold flat values,
    except `ufw_block`'s lists, copied too)."""
    out = copy.copy(s)
    for name in _MUTABLE:
        value = getattr(s, name)
        setattr(out, name, {k: list(v) if isinstance(v, list) else v for k, v in value.items()}
                if isinstance(value, dict) else list(value))
    return out


def apply(s: State, change: dict[str, Any], now: int) -> None:
    """Set fault fields; `+field: x` appends to a list field, `-field: x` removes.

    Also what follows from an operator's action at once: moving the Redis label (`redis_node`) starts Redis
    on that node without its data.
    """
    for key, value in change.items():
        name = key.lstrip("+-")
        if name not in FAULT_FIELDS and name != "redis_node":
            raise KeyError(f"unknown state field {name!r} (faults: {sorted(FAULT_FIELDS)})")
        if key.startswith("+"):
            getattr(s, name).append(value)
        elif key.startswith("-"):
            lst = getattr(s, name)
            if value in lst:
                lst.remove(value)
        elif name == "redis_node":
            if value != s.redis_node:
                s.redis_node = value
                s.redis_started, s.redis_empty_since = now, now
                s.processed_at_empty = s.processed
                s.redis_was_serving = redis_serves(s)
        else:
            if name == "api_oom" and value != s.api_oom:
                s.api_oom_at = now
            setattr(s, key, value)
