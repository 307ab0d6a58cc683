"""honeyDue's cluster as the obs TSDB sees it: every series the shipped rules read, step by step.

A `State` holds what is broken right now (a node down, CoreDNS down, ...); `series(state)` answers with
the value of every series at that moment, with the labels vmagent adds (deploy/vmagent): `job`, a stable
`instance` and `kubernetes_namespace` on every series, `kubernetes_pod_name`/`kubernetes_node` on `up`
and `honeydue_exporter_build_info` only (all series carry them with `identity="churn"`, the scrape config
before issue 11). The consequences of each fault are written once, here, from chapter 16 and from what
the probes do (a probe that resolves a name through CoreDNS fails with reason `dns`; a failed probe
publishes only its `up` series; the node probe keeps /readyz/etcd when the node list fails; ...).

Series the rules never read are left out: they cannot change an alert.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

NODES = ("n1", "n2", "n3")
REDIS_NODE = "n3"
QUEUES = ("default", "email")
EXPORTER = {"job": "honeydue-exporter", "instance": "honeydue-exporter", "kubernetes_namespace": "honeydue"}
# Series named *_timestamp_seconds hold seconds since the tool's step 0; the runner adds the tool's own
# clock (promtool starts at 1970-01-01, vmalert-tool at 2000-01-01).
# DNS lookups of the production config (deploy/overlays/example/config.yml)
CLUSTER_NAMES = ("api.honeydue.svc.cluster.local", "redis.honeydue.svc.cluster.local")
HTTP = {  # target -> role, resolved through CoreDNS (a name) or not (an IP literal)
    "www": ("public", True), "origin": ("origin", False), "api_health": ("api_shallow", True),
    "api_deep": ("api_deep", True), "admin": ("admin", True), "b2": ("b2", True),
    "registry": ("registry", True), "obs_ingest": ("obs_ingest", True),
}
ESSENTIAL = {  # netcheck essential target -> (dependency key, resolved by name)
    "postgres-pooler": ("pooler", True), "postgres-direct": ("direct", True), "redis": ("redis", True),
    "kube-apiserver": ("apiserver", False), "coredns": ("coredns", False), "smtp-fastmail": ("smtp", True),
}
DEPLOYMENTS = {("honeydue", "api"): 3, ("honeydue", "admin"): 1, ("honeydue", "worker"): 1,
               ("honeydue", "redis"): 1, ("honeydue", "vmagent"): 1, ("kube-system", "coredns"): 1,
               ("kube-system", "metrics-server"): 1, ("kube-system", "traefik"): 1}


@dataclass
class State:
    """What is true of the cluster at one step. Incidents change these fields over time."""

    down: list[str] = field(default_factory=list)          # nodes off the network (NIC, power, reboot)
    cordoned: list[str] = field(default_factory=list)
    down_since: dict[str, int] = field(default_factory=dict)  # filled by the runner: step each node went down
    exporter_node: str = "n1"
    exporter_crashloop: bool = False
    exporter_pod: int = 0                                  # bumps at every restart (new pod name)
    restart: bool = False                                  # this step: the exporter restarted (stale)
    coredns: bool = True
    coredns_upstream: bool = True
    flannel_broken: str = ""
    kubeproxy_broken: str = ""
    ufw_block: dict[str, list[str]] = field(default_factory=dict)  # node -> essential targets blocked
    ufw_6443: bool = False                                 # new pod -> node:6443 connections dropped
    redis: bool = True
    redis_node: str = REDIS_NODE
    redis_restarted_empty: bool = False
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
    api: str = "ok"  # ok | down (answers nothing) | crashloop | deadlock | bad_deploy | bad_image | config_error
    api_oom: int = 0                                       # OOM kills of n1's api container so far
    metrics_server: bool = True                            # metrics-server serves (else it crash-loops)
    api_generation: int = 0                                # bumps at every rollout (new pod names, new IPs)
    b2: bool = True
    registry: bool = True
    obs_ingest: bool = True
    vmagent_writes: bool = True                            # vmagent reaches the obs box
    kubelet: dict[str, str] = field(default_factory=dict)  # node -> kubelet version (default v1.35.1+k3s1)
    disk_pressure: str = ""
    evicted: int = 0                                       # pods the kubelet evicted on the disk_pressure node
    redis_labelled: list[str] | None = None                # nodes with the Redis label (None: redis_node only)
    # ok | fail (every list waits on etcd until the read timeout) | storage (an API server without etcd
    # quorum, after ~30 s: the watch caches cannot re-list and lists they serve answer 429 "storage is
    # (re)initializing", reason storage_unavailable; the others keep timing out). Lists are consistent reads
    # (no resourceVersion=0), so nothing is served stale.
    lists: str = "ok"
    failing_probes: list[str] = field(default_factory=list)  # probes that fail every run (series vanish)
    dns_outside: int = 0                                   # public answers outside the expected ranges
    api_cpu: float = 0.05                                  # cores each api container uses (its limit: 1 core)


def _lbl(**labels: str) -> dict[str, str]:
    return labels


class Series:
    """name{labels} -> value for one step.

    `legacy` draws the cluster as the exporter and deploy files before issue 11 made it look (for the
    before/after comparison only): the pod and node on every series, readyz checks only with a good node
    list, netcheck's static api pod IPs, the deep api check accepting 401, smtp.fastmail.com's lookup in
    role public.
    """

    def __init__(self, identity: str, legacy: bool = False) -> None:
        self.values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.identity = identity
        self.legacy = legacy

    def add(self, name: str, value: float, scrape: dict[str, str], **labels: str) -> None:
        all_labels = {**scrape, **labels}
        if self.identity == "stable" and name not in ("up", "honeydue_exporter_build_info"):
            all_labels.pop("kubernetes_pod_name", None)
            all_labels.pop("kubernetes_node", None)
        self.values[(name, frozenset(all_labels.items()))] = float(value)


def quorum_lost(s: State) -> bool:
    return len([n for n in NODES if n in s.down]) >= 2


def exporter_alive(s: State) -> bool:
    """The exporter pod runs and answers scrapes (it is rescheduled 30 s after its node fails, with quorum)."""
    if s.exporter_crashloop or s.restart:
        return False
    return s.exporter_node not in s.down


def series(s: State, step: int, step_seconds: float, identity: str = "stable", legacy: bool = False) -> Series:
    out = Series("churn" if legacy else identity, legacy)
    now = step * step_seconds
    pod = f"honeydue-exporter-5d8f7c-{s.exporter_pod:05d}"
    scrape = {**EXPORTER, "kubernetes_pod_name": pod, "kubernetes_node": s.exporter_node}
    if s.vmagent_writes:  # nothing reaches the obs box otherwise
        if s.exporter_node not in s.down or not quorum_lost(s):
            out.add("up", 0 if not exporter_alive(s) else 1, scrape)
        if exporter_alive(s):
            out.add("honeydue_exporter_build_info", 1, scrape, version="0.2.0")
            _exporter(out, s, scrape, now)
        for node in NODES:
            _netcheck(out, s, node)
    return out


# --- the main exporter -------------------------------------------------------------------------------
def _probe(out: Series, scrape: dict[str, str], name: str, ok: bool, reason: str = "timeout") -> None:
    out.add("honeydue_probe_success", 1 if ok else 0, scrape, probe=name)
    if not ok:
        out.add("honeydue_probe_error_info", 1, scrape, probe=name, reason=reason)


def _exporter(out: Series, s: State, sc: dict[str, str], now: float) -> None:
    here = s.exporter_node
    dns = s.coredns and s.flannel_broken != here  # the exporter resolves names through CoreDNS
    dns_reason = "dns"
    _redis(out, s, sc, dns, now)
    _postgres(out, s, sc, dns)
    _http(out, s, sc, dns)
    _dns(out, s, sc)
    smtp_ok = dns and s.smtp
    out.add("honeydue_smtp_up", 1 if smtp_ok else 0, sc, target="fastmail")
    _probe(out, sc, "smtp_fastmail", smtp_ok, "timeout" if dns else dns_reason)
    vm_ok = dns  # vmagent.honeydue.svc
    out.add("honeydue_vmagent_up", 1 if vm_ok else 0, sc)
    _probe(out, sc, "vmagent", vm_ok, "dns")
    if vm_ok:
        out.add("honeydue_vmagent_remotewrite_errors_total", 0, sc)
        out.add("honeydue_vmagent_remotewrite_pending_bytes", 1_000_000, sc)
        out.add("honeydue_vmagent_remotewrite_packets_dropped_total", 0, sc)
        out.add("honeydue_vmagent_persistentqueue_blocks_dropped_total", 0, sc)
    nodata_ok = dns and s.obs_ingest
    out.add("honeydue_nodata_query_up", 1 if nodata_ok else 0, sc)
    _probe(out, sc, "nodata", nodata_ok, "dns" if not dns else "timeout")
    if nodata_ok:
        out.add("honeydue_nodata_metric_missing", 0, sc, metric="honeydue_redis_up")
    _kubernetes(out, s, sc, now)


def _redis(out: Series, s: State, sc: dict[str, str], dns: bool, now: float) -> None:
    path = dns and s.redis and s.redis_node not in s.down and not (s.flannel_broken and s.flannel_broken != s.redis_node
                                                                  and s.flannel_broken == s.exporter_node)
    out.add("honeydue_redis_up", 1 if path else 0, sc)
    _probe(out, sc, "redis", path, "refused" if dns else "dns")
    asynq_ok = path and "asynq" not in s.failing_probes
    _probe(out, sc, "asynq", asynq_ok, "protocol" if path else "refused" if dns else "dns")
    if not path:
        return
    out.add("honeydue_redis_restarted_empty", 1 if s.redis_restarted_empty else 0, sc)
    out.add("honeydue_redis_oom_errors_total", s.redis_oom_errors, sc)
    out.add("honeydue_redis_memory_used_bytes", 2_400_000, sc)
    out.add("honeydue_redis_memory_max_bytes", 268_435_456, sc)
    out.add("honeydue_redis_maxmemory_policy_info", 1, sc, policy="allkeys-lru")
    if not asynq_ok:
        return
    out.add("honeydue_asynq_up", 1, sc)
    servers = 1 if s.worker else 0
    out.add("honeydue_asynq_servers_live", servers, sc, status="active")
    out.add("honeydue_asynq_schedulers_live", servers, sc)
    for queue in QUEUES:
        pending = s.pending if queue == "email" else 0
        out.add("asynq_tasks", pending, sc, queue=queue, state="pending")
        out.add("asynq_tasks", s.retry if queue == "email" else 0, sc, queue=queue, state="retry")
        out.add("asynq_tasks", s.archived if queue == "email" else 0, sc, queue=queue, state="archived")
        out.add("asynq_tasks_processed_total", s.processed, sc, queue=queue)
        out.add("asynq_queue_paused", 0, sc, queue=queue)
        out.add("asynq_queue_latency_seconds", 30 * pending, sc, queue=queue)
        out.add("honeydue_asynq_queue_read_ok", 1, sc, queue=queue)
        out.add("honeydue_asynq_stuck_active_tasks", 0, sc, queue=queue, reason="lease_expired")
        if s.worker:
            out.add("honeydue_asynq_server_queue_priority", 1, sc, server="worker-1", queue=queue)
    if s.worker:  # the scheduler enqueues every minute; entries of dead schedulers are not read
        out.add("honeydue_asynq_cron_last_enqueue_timestamp_seconds", now - 30, sc,
                task_type="reminders:scan", schedule="@every 1m")
        out.add("honeydue_asynq_cron_interval_seconds", 60, sc, task_type="reminders:scan", schedule="@every 1m")


def _postgres(out: Series, s: State, sc: dict[str, str], dns: bool) -> None:
    for endpoint, up in (("pooler", s.pooler), ("direct", s.direct)):
        ok = dns and up
        out.add("honeydue_postgres_up", 1 if ok else 0, sc, endpoint=endpoint)
        _probe(out, sc, f"postgres_{endpoint}", ok, "timeout" if dns else "dns")


def _api_serving(s: State) -> bool:
    return s.api in ("ok", "bad_deploy", "bad_image", "config_error", "deadlock")


def _http(out: Series, s: State, sc: dict[str, str], dns: bool) -> None:
    serving = _api_serving(s) and len([n for n in NODES if n not in s.down]) >= 1
    for target, (role, by_name) in HTTP.items():
        if by_name and not dns:
            ok, answered = False, False
        elif role == "public":
            ok = answered = s.cf_pop and s.cf_global and serving
            answered = True
        elif role == "origin":
            ok, answered = serving and "n1" not in s.down, "n1" not in s.down
        elif role == "api_shallow" or (role == "api_deep" and out.legacy):
            ok = answered = serving
        elif role == "api_deep":
            ok, answered = serving and s.api != "deadlock" and s.pooler, serving and s.api != "deadlock"
        elif role == "admin":
            ok = answered = s.cf_pop and s.cf_global
        elif role == "obs_ingest":
            ok = answered = s.obs_ingest and s.vmagent_writes
        else:
            ok = answered = getattr(s, role)
        out.add("honeydue_http_up", 1 if ok else 0, sc, target=target, role=role)
        if answered:
            seconds = 0.2 if ok else 0.05
            if ok and role in ("public", "origin", "api_shallow", "api_deep") and s.api_cpu >= 0.9:
                seconds = 3.0  # a throttled api answers, slowly
            out.add("honeydue_http_phase_duration_seconds", seconds, sc, target=target, role=role, phase="total")
        _probe(out, sc, f"http_{target}", answered, "dns" if by_name and not dns else "timeout")


def _dns(out: Series, s: State, sc: dict[str, str]) -> None:
    lookups = [(name, "coredns", "cluster") for name in CLUSTER_NAMES]
    lookups += [("myhoneydue.com", r, "public") for r in ("cloudflare", "quad9")]
    lookups += [("smtp.fastmail.com", "coredns", "public" if out.legacy else "cluster_upstream")]
    for domain, resolver, role in lookups:
        if resolver == "coredns":
            ok = s.coredns and s.flannel_broken != s.exporter_node and (role == "cluster" or s.coredns_upstream)
        else:
            ok = True
        out.add("honeydue_dns_up", 1 if ok else 0, sc, domain=domain, resolver=resolver, role=role)
        outside = s.dns_outside if role == "public" else 0
        out.add("honeydue_dns_unexpected_answers", outside, sc, domain=domain, resolver=resolver, role=role)
        _probe(out, sc, f"dns_{resolver}_{domain}_a", True)


# --- Kubernetes, as the exporter's probes read it ------------------------------------------------------
def _kubernetes(out: Series, s: State, sc: dict[str, str], now: float) -> None:
    out.add("honeydue_kube_api_up", 1, sc)  # some API server answers /version (also without quorum)
    _probe(out, sc, "kubernetes_api", True)
    resources = [("nodes", "", "kubernetes_nodes"), ("pods", "honeydue", "kubernetes_pods_honeydue"),
                 ("pods", "kube-system", "kubernetes_pods_kube_system"),
                 ("deployments", "honeydue", "kubernetes_deployments_honeydue"),
                 ("deployments", "kube-system", "kubernetes_deployments_kube_system"),
                 ("apiservices", "", "kubernetes_apiservices")]
    listed = {}
    for resource, ns, probe in resources:
        ok = s.lists == "ok" and probe not in s.failing_probes
        listed[probe] = ok
        reason = "server_error" if s.lists == "ok" else "timeout"
        if s.lists == "storage" and resource == "deployments":  # served by the watch cache, which gave up
            reason = "storage_unavailable"
        out.add("honeydue_kube_resource_up", 1 if ok else 0, sc, resource=resource, namespace=ns)
        if not ok:
            out.add("honeydue_kube_resource_error_info", 1, sc, resource=resource, namespace=ns, reason=reason)
        _probe(out, sc, probe, ok, reason)
    if listed["kubernetes_nodes"] or not out.legacy:  # before: no node list, no readyz checks
        _readyz(out, s, sc)
    if listed["kubernetes_nodes"]:
        ready = [n for n in NODES if n not in s.down]
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
    ok = s.lists != "fail" and s.metrics_server and probe not in s.failing_probes  # the aggregator answers 503
    out.add("honeydue_kube_resource_up", 1 if ok else 0, sc, resource="pods.metrics.k8s.io", namespace="honeydue")
    _probe(out, sc, probe, ok, "timeout" if s.lists == "fail" else "server_error")
    for items in _api_pods(s).values():
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
    out.add("honeydue_kube_etcd_quorum", 2, sc)
    lost = quorum_lost(s)
    for node in NODES:
        answered = node not in s.down and not s.ufw_6443
        out.add("honeydue_kube_apiserver_readyz_up", 1 if answered else 0, sc, node=node)
        out.add("honeydue_kube_apiserver_etcd_ready", 1 if answered and not lost else 0, sc, node=node)


def _api_pods(s: State) -> dict[str, list[tuple[str, str, str]]]:
    """node -> [(pod, waiting reason or '', terminated reason or '')] of the api Deployment."""
    pods: dict[str, list[tuple[str, str, str]]] = {}
    alive = [n for n in NODES if n not in s.down and n not in s.cordoned]  # drained nodes run no api pod
    for i, node in enumerate(NODES):
        home = node if node in alive or quorum_lost(s) else alive[i % len(alive)] if alive else node
        waiting = "CrashLoopBackOff" if s.api == "crashloop" else ""
        pods.setdefault(home, []).append((f"api-{6000 + s.api_generation}-{i}", waiting, "Error" if waiting else ""))
    if s.api in ("bad_deploy", "bad_image", "config_error"):
        reason = {"bad_deploy": "CrashLoopBackOff", "bad_image": "ImagePullBackOff"}.get(s.api,
                                                                                        "CreateContainerConfigError")
        pods.setdefault(alive[0] if alive else "n1", []).append(("api-7f00-0", reason, "Error" if s.api == "bad_deploy" else ""))
    return pods


def _workloads(out: Series, s: State, sc: dict[str, str], listed: dict[str, bool]) -> None:
    if listed["kubernetes_deployments_honeydue"]:
        _deployments(out, s, sc)
    if not listed["kubernetes_pods_honeydue"]:
        return
    pods = _api_pods(s)
    ready_by_node: dict[str, int] = {}
    not_ready_by_node: dict[str, int] = {}
    for node, items in pods.items():
        for pod, waiting, terminated in items:
            out.add("honeydue_kube_pod_info", 1, sc, namespace="honeydue", pod=pod, node=node,
                    workload_kind="Deployment", workload="api")
            restarts = 7 if waiting == "CrashLoopBackOff" else 0
            if s.api_oom and pod == f"api-{6000 + s.api_generation}-0":  # n1's pod: OOM-killed, restarted
                restarts, terminated = s.api_oom, "OOMKilled"
            out.add("honeydue_kube_pod_container_status_restarts_total", restarts, sc, namespace="honeydue",
                    pod=pod, container="api")
            if waiting:
                out.add("honeydue_kube_pod_container_status_waiting_reason", 1, sc, namespace="honeydue", pod=pod,
                        container="api", reason=waiting)
            if terminated:
                out.add("honeydue_kube_pod_container_status_last_terminated_reason", 1, sc, namespace="honeydue",
                        pod=pod, container="api", reason=terminated)
            healthy = not waiting and node not in s.down
            bucket = ready_by_node if healthy else not_ready_by_node
            bucket[node] = bucket.get(node, 0) + 1
    if listed["kubernetes_pods_kube_system"] and not s.metrics_server:
        pod = "metrics-server-5985cbc9d7-x2v4q"
        out.add("honeydue_kube_pod_container_status_waiting_reason", 1, sc, namespace="kube-system", pod=pod,
                container="metrics-server", reason="CrashLoopBackOff")
        out.add("honeydue_kube_pod_container_status_restarts_total", 7, sc, namespace="kube-system", pod=pod,
                container="metrics-server")
    for node in NODES:
        evicted = s.evicted if node == s.disk_pressure else 0
        out.add("honeydue_kube_evicted_pods", evicted, sc, namespace="honeydue", node=node)
        for ready, counts in (("true", ready_by_node), ("false", not_ready_by_node)):
            out.add("honeydue_kube_workload_pods", counts.get(node, 0), sc, namespace="honeydue", workload="api",
                    node=node, ready=ready)
            traefik = 1 if (ready == "true") == (node not in s.down) else 0
            out.add("honeydue_kube_workload_pods", traefik, sc, namespace="kube-system", workload="traefik",
                    node=node, ready=ready)


def _unavailable(s: State, deployment: str) -> bool:
    """A single-replica deployment with no pod available."""
    return {
        "coredns": not s.coredns,
        "redis": not s.redis or s.redis_node in s.down,
        "worker": not s.worker,
        "metrics-server": not s.metrics_server,
    }.get(deployment, False)


def _deployments(out: Series, s: State, sc: dict[str, str]) -> None:
    pods = _api_pods(s)
    api_ready = sum(1 for node, items in pods.items() for _, waiting, _ in items if not waiting and node not in s.down)
    for (ns, name), desired in DEPLOYMENTS.items():
        available = desired
        updated = desired
        if name == "api":
            available = max(min(api_ready, desired), 0)
            if s.api in ("bad_deploy", "bad_image", "config_error"):
                updated, available = 1, desired
        elif _unavailable(s, name):
            available = 0
        labels = {"namespace": ns, "deployment": name}
        out.add("honeydue_kube_deployment_exists", 1, sc, **labels)
        out.add("honeydue_kube_deployment_spec_replicas", desired, sc, **labels)
        out.add("honeydue_kube_deployment_status_replicas_available", available, sc, **labels)
        out.add("honeydue_kube_deployment_status_replicas_updated", updated, sc, **labels)


# --- netcheck, one pod per node --------------------------------------------------------------------------
def _netcheck(out: Series, s: State, node: str) -> None:
    scrape = {"job": "honeydue-netcheck", "instance": f"netcheck-{node}", "kubernetes_namespace": "honeydue",
              "kubernetes_pod_name": f"honeydue-netcheck-{node}x", "kubernetes_node": node}
    if node in s.down:  # vmagent still lists the pod (DaemonSet pods are never evicted): its scrapes fail
        out.add("up", 0, scrape)
        return
    out.add("up", 1, scrape)
    out.add("honeydue_exporter_build_info", 1, scrape, version="0.2.0")
    dns = s.coredns and s.flannel_broken != node
    overlay = s.flannel_broken != node
    services = s.kubeproxy_broken != node and overlay
    deps = {"pooler": s.pooler, "direct": s.direct, "redis": s.redis and s.redis_node not in s.down,
            "apiserver": not s.ufw_6443, "coredns": s.coredns, "smtp": s.smtp}
    blocked = s.ufw_block.get(node, [])
    for target, (dep, by_name) in ESSENTIAL.items():
        ok = deps[dep] and target not in blocked and (dns or not by_name)
        if dep in ("redis", "coredns") and (not services or (s.redis_node != node and not overlay)):
            ok = False
        out.add("honeydue_tcp_up", 1 if ok else 0, scrape, target=target, role="essential", backend="", path="",
                node=node)
    pods = _api_pods(s)
    endpoints = any(not w for items in pods.values() for _, w, _ in items)  # a ready pod behind the Service
    if out.legacy:  # static pod IPs from the first rollout: after another one, every one of them is dead
        for pod_node in NODES:
            running = s.api_generation == 0 and s.api != "crashloop" and pod_node not in s.down
            ok = running and (pod_node == node or overlay)
            out.add("honeydue_tcp_up", 1 if ok else 0, scrape, target=f"api-pod-{pod_node}", role="pod",
                    backend="api", path="local" if pod_node == node else "remote", node=node)
        pods = {}
    discover_ok = not quorum_lost(s) and not out.legacy
    if not out.legacy:
        out.add("honeydue_probe_success", 1 if discover_ok else 0, scrape, probe="netcheck_pods_api")
    if discover_ok:
        for pod_node, items in sorted(pods.items()):
            if pod_node in s.down or all(w for _, w, _ in items):
                continue
            remote = pod_node != node
            ok = not remote or (overlay and s.flannel_broken != pod_node)
            out.add("honeydue_tcp_up", 1 if ok else 0, scrape, target=f"api-pod-{pod_node}", role="pod",
                    backend="api", path="remote" if remote else "local", node=node)
    out.add("honeydue_tcp_up", 1 if services and endpoints else 0, scrape, target="api-svc", role="service",
            backend="api", path="", node=node)


def copy_state(s: State) -> State:
    return copy.deepcopy(s)


def apply(s: State, change: dict[str, Any]) -> None:
    """Set fields; `+field: x` appends to a list field, `-field: x` removes."""
    for key, value in change.items():
        if key.startswith("+"):
            getattr(s, key[1:]).append(value)
        elif key.startswith("-"):
            lst = getattr(s, key[1:])
            if value in lst:
                lst.remove(value)
        else:
            if not hasattr(s, key):
                raise KeyError(f"unknown state field {key!r}")
            setattr(s, key, value)
