"""Expression fragments the layers share: conditions that explain a failure seen elsewhere.

Every alert is designed by its witnesses (docs/witnesses.md): what the exporter pod, each netcheck pod,
vmagent and the obs side see of a fault, and what each of them still sees when the fault takes part of the
monitoring's own path with it. A probe fails with a reason (`honeydue_probe_error_info{reason}`): `dns`
means the name did not resolve (the DNS alerts page for that), `auth` means the exporter's own credentials
were refused (a ticket about the exporter, never a page about the dependency). An alert about a dependency
stays quiet while the reason says the dependency is not at fault, and while a network fault that explains
it (Flannel or kube-proxy broken on a node, two nodes unreachable) has its own page.

Written as `unless` in the rule, not as Alertmanager inhibitions, so there is no race between two `for`
clocks: the consequence never starts pending. Every fragment computes the same under PromQL and MetricsQL
(no increase() on a series' first sample, no lookback-dependent functions), and none reads vmagent's
kubernetes_pod_name/kubernetes_node labels (they change with every restart).
"""

from __future__ import annotations

# One exporter's view: the identity vmagent gives it (job, and a stable instance).
BY = "job, instance"

CLUSTER_DNS_FAILING = f'(max by ({BY}) (honeydue_dns_up{{role="cluster"}}) == 0)'


def match(label: str, pattern: str) -> str:
    """`label="x"` for a plain name, `label=~"a|b"` for a regex (pint: no regexp match on a static string)."""
    plain = all(c.isalnum() or c in "_-" for c in pattern)
    return f'{label}="{pattern}"' if plain else f'{label}=~"{pattern}"'


def failed_because(probes: str, reasons: str = "dns|auth") -> str:
    """The exporter's probes matching the regex `probes` fail for one of `reasons` (a regex)."""
    return f"(max by ({BY}) (honeydue_probe_error_info{{{match('probe', probes)},{match('reason', reasons)}}}))"


def unless_not_theirs(expr: str, probes: str, reasons: str = "dns|auth") -> str:
    """`expr` about a dependency, quiet while its probes fail because of a name lookup or our credentials, while
    the same exporter cannot resolve Service names (CoreDNS unreachable from its node: its lookups of outside
    names time out, reason `timeout`, not `dns`), and while a network fault that explains it has its own page."""
    return (f"(({expr}) unless on ({BY}) {failed_because(probes, reasons)} unless on ({BY}) {CLUSTER_DNS_FAILING})"
            f" unless on () {NETWORK_FAULT}")


def token_refused(role: str) -> str:
    """The target of `role` (one the exporter authenticates to) answers 401 or 403: our token, not the target."""
    selector = f'honeydue_http_status_code{{role="{role}"}}'
    return f"({selector} == 401 or {selector} == 403)"


def unless_cluster_dns(expr: str) -> str:
    """`expr`, quiet while the same exporter's cluster DNS lookups fail."""
    return f"({expr}) unless on ({BY}) {CLUSTER_DNS_FAILING}"


# --- the network, as the netcheck pods see it (host network: they survive the faults they watch) ---------
REMOTE_PODS = 'honeydue_tcp_up{role="pod",path="remote"}'
# From node X no pod IP on another node answers while other nodes still reach remote pods, and no other node
# reaches a pod on X (discovered targets are named <backend>-pod-<its node>). The second half keeps a healthy
# node quiet whose only remote pods sit on the broken node (api pods piled on two nodes after a drain).
PODS_ON_NODE_REACHED = (
    'label_replace(max by (pod_node) (label_replace('
    f'{REMOTE_PODS}, "pod_node", "$1", "target", ".+-pod-(.+)")) == 1, "node", "$1", "pod_node", "(.+)")'
)
FLANNEL_BROKEN = (
    f"((max by ({BY}, node) ({REMOTE_PODS}) == 0 "
    f"and on (job) (max by (job) ({REMOTE_PODS}) == 1)) "
    f"unless on (node) {PODS_ON_NODE_REACHED})"
)
# From node X a Service ClusterIP fails while the pod IPs of the same backend answer from there.
KUBEPROXY_BROKEN = (
    f'(count by ({BY}, node) (honeydue_tcp_up{{role="service"}} == 0 and on ({BY}, node, backend) '
    f"(max by ({BY}, node, backend) ({REMOTE_PODS}) == 1)) > 0)"
)
# A node's netcheck pod does not answer vmagent (its node is off the network, or the pod is gone).
NETCHECK_UNREACHABLE = 'up{job="honeydue-netcheck"} == 0'
# ...and answered within the last 5 minutes, after answering steadily for the 10 minutes before: a node (or pod)
# that just went away, not one left dead for hours, nor a pod crash-looping (a bad release of the shared image
# crash-loops the exporter too, and its ticket must not be muted by each brief scrape of the netcheck pod).
NETCHECK_JUST_LOST = (
    f'({NETCHECK_UNREACHABLE} and max_over_time(up{{job="honeydue-netcheck"}}[5m]) == 1 '
    'and min_over_time(up{job="honeydue-netcheck"}[10m] offset 5m) == 1)'
)
# Two or more nodes gone: two netcheck pods unreachable, and the nodes themselves confirm it (two server nodes'
# :6443 unanswered or two nodes not Ready, as the exporter sees them, or two origins that answer nothing at
# all from the obs box): crash-looping netcheck pods on healthy nodes are not this. etcd has no quorum and
# nothing is rescheduled; two-nodes-fail pages.
NODES_LOST = (
    f"((count({NETCHECK_UNREACHABLE}) >= 2) and on () ("
    "(count(honeydue_kube_apiserver_readyz_up == 0) >= 2) "
    'or (count(honeydue_kube_node_status_condition{condition="Ready",status="true"} == 0) >= 2) '
    'or (count(honeydue_http_status_code{job="honeydue-obs-probe",role="origin"} == 0) >= 2)))'
)
# A cluster-wide reason why paths fail that is not the dependency's: the overlay or kube-proxy broken on a
# node (its page names the node), or two nodes lost.
NETWORK_FAULT = f"(count({FLANNEL_BROKEN} or {KUBEPROXY_BROKEN}) > 0 or {NODES_LOST})"


def unless_network_fault(expr: str) -> str:
    """`expr`, quiet while a network fault that explains it has its own page."""
    return f"({expr}) unless on () {NETWORK_FAULT}"


# A path that fails from fewer nodes than reach the same target: those nodes' paths are blocked (a UFW rule),
# the target is up. An alert about the target (Neon, Redis) stays quiet while this holds for it: the exporter's
# own node may be the one blocked, and EssentialTcpPathUnreachable pages. When most nodes fail, the target (or
# a firewall on its own node) is the cause, and the target's alert pages.
ESSENTIAL = 'honeydue_tcp_up{role="essential"}'


def minority_failing(failing: str, reaching: str) -> str:
    """The `failing` series (one per node and target) whose target fewer nodes fail than reach (`reaching`)."""
    return (f"(({failing}) and on (target) "
            f"(count by (target) ({reaching}) > on (target) count by (target) ({failing})))")


def blocked_somewhere(targets: str) -> str:
    """Some node has failed to connect to one of `targets` (a regex of netcheck target names) for the last minute
    while more nodes have reached it throughout: a blocked path, not the target. Steady on both sides, so one
    node's blip does not mute a real outage of the target (every blip would reset its `for`)."""
    selector = f'honeydue_tcp_up{{role="essential",{match("target", targets)}}}'
    failing = f"max_over_time({selector}[1m]) == 0"
    reaching = f"min_over_time({selector}[1m]) == 1"
    return f"(count({minority_failing(failing, reaching)}) > 0)"


# The exporter's view of a dependency disagrees with every node's: the nodes reach it, only the exporter does
# not. The netcheck pods list EndpointSlices from their own nodes' API servers: while they can, the API and
# etcd work, whatever the exporter's own requests say.
NETCHECK_LISTS = 'honeydue_probe_success{probe="netcheck_pods_api"}'
API_LISTS_FROM_NODES = f"(count({NETCHECK_LISTS} == 1) >= 2)"
# Some node's names fail to resolve (reason dns): the cluster DNS failure is not the exporter's alone.
DNS_FAILS_ON_A_NODE = '(count(honeydue_tcp_failure_info{role="essential",reason="dns"}) > 0)'


def fresh(selector: str, metric: str) -> str:
    """`selector` where `metric` (its plain selector) had a sample in the last minute: when vmagent stops writing
    (its node died), the last values stay queryable for the engine's lookback and must not count as now."""
    return f"(({selector}) and on (job, instance) (count_over_time({metric}[1m]) > 0))"


# --- Kubernetes ------------------------------------------------------------------------------------------
UNSCHEDULABLE = "honeydue_kube_node_spec_unschedulable"
# A cordon that began within `window`: planned maintenance, expected to end soon. Older cordons mute nothing.
def recent_cordon(window: str) -> str:
    return f"({UNSCHEDULABLE} == 1 and min_over_time({UNSCHEDULABLE}[{window}]) == 0)"


# The node labelled for Redis was cordoned for maintenance less than 30 minutes ago: a planned drain
# (chapter 16 "Node upgrades") takes Redis down with it, briefly; after 30 minutes RedisDown pages.
REDIS_NODE_IN_MAINTENANCE = (
    f"(max by ({BY}) ({recent_cordon('30m')} and on ({BY}, node) honeydue_kube_redis_node_ready))"
)

# The Kubernetes API answers no list of nodes (a refusal of our credentials is a ticket, not this).
NODE_LIST_FAILING = (
    f'(max by ({BY}) (honeydue_kube_resource_up{{resource="nodes"}} == 0 '
    f'unless on ({BY}, resource, namespace) '
    f'honeydue_kube_resource_error_info{{resource="nodes",reason=~"forbidden|unauthorized"}}))'
)

QUORUM = f"max by ({BY}) (honeydue_kube_etcd_quorum)"
# Evidence that quorum is really lost, not just that the checks went unanswered (a firewall between
# the exporter and the servers' :6443 leaves every check unanswered while etcd is fine).
QUORUM_EVIDENCE = (
    f"(count by ({BY}) (honeydue_kube_apiserver_readyz_up == 1 "
    f"and on ({BY}, node) honeydue_kube_apiserver_etcd_ready == 0) > 0)"
    f" or (max by ({BY}) (honeydue_kube_control_plane_nodes_ready) < on ({BY}) {QUORUM})"
    f" or ({NODE_LIST_FAILING} unless on () {API_LISTS_FROM_NODES})"
)
QUORUM_LOST = (
    f"(sum by ({BY}) (honeydue_kube_apiserver_etcd_ready) < on ({BY}) {QUORUM}) "
    f"and on ({BY}) ({QUORUM_EVIDENCE})"
)

# --- the obs side ------------------------------------------------------------------------------------------
# Nothing from inside the cluster reaches the obs box: vmagent writes `up` for every target it lists, so no
# `up` of either job means vmagent is not writing (its node is gone, or the obs box refuses it).
CLUSTER_SILENT = (
    'absent_over_time(up{job="honeydue-exporter"}[2m]) and on () absent_over_time(up{job="honeydue-netcheck"}[2m])'
)
# Nodes whose origin answers the obs box at all (any HTTP status: Traefik there may answer 404 or 502, the node
# is alive), and whether the public URL answers through Cloudflare (users reach the cluster).
OBS_NODES_ANSWER = 'count(honeydue_http_status_code{job="honeydue-obs-probe",role="origin"} > 0)'
OBS_PUBLIC_UP = '(max(honeydue_http_up{job="honeydue-obs-probe",role="public"}) == 1)'
OBS_PROBE_ABSENT = 'absent(up{job="honeydue-obs-probe"} == 1)'


def grew(counter: str, window: str) -> str:
    """The counter is higher than `window` ago.

    Not increase(): MetricsQL counts a series' first sample as growth from zero (a series that
    reappears after a gap pages), PromQL does not, so the two engines disagree. The difference with
    an offset means the same in both; a counter reset inside the window reads as no growth until the
    window has passed it.
    """
    return f"({counter} - {counter} offset {window} > 0)"
