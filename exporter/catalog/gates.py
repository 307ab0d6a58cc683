"""Expression fragments the layers share: conditions that explain a failure seen elsewhere.

A probe whose dependency is reached by name fails with reason `dns` when CoreDNS is down; its own
alert would page at the wrong runbook. Such alerts stay quiet while the cluster DNS lookups of the
same exporter fail (the CoreDNS page says it all). Written as `unless` in the rule, not as an
Alertmanager inhibition, so there is no race between two `for` clocks: the consequence never starts
pending. Every fragment computes the same under PromQL and MetricsQL (no increase() on a series'
first sample, no lookback-dependent functions).
"""

from __future__ import annotations

# One exporter's view: the identity vmagent gives it (job, and a stable instance).
BY = "job, instance"

CLUSTER_DNS_FAILING = f'(max by ({BY}) (honeydue_dns_up{{role="cluster"}}) == 0)'

# The node labelled for Redis is cordoned: a planned drain (chapter 16 "Node upgrades") takes Redis down
# with it until the node is back; the cordon and KubeNodeCordonedTooLong cover it.
REDIS_NODE_CORDONED = (
    f"(max by ({BY}) (honeydue_kube_node_spec_unschedulable == 1 "
    f"and on ({BY}, node) honeydue_kube_redis_node_ready))"
)

# The Kubernetes API answers no list of nodes (an RBAC refusal is KubeExporterAccessDenied's, not this).
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
    f" or {NODE_LIST_FAILING}"
)
QUORUM_LOST = (
    f"(sum by ({BY}) (honeydue_kube_apiserver_etcd_ready) < on ({BY}) {QUORUM}) "
    f"and on ({BY}) ({QUORUM_EVIDENCE})"
)


def unless_cluster_dns(expr: str) -> str:
    """`expr`, quiet while the same exporter's cluster DNS lookups fail."""
    return f"({expr}) unless on ({BY}) {CLUSTER_DNS_FAILING}"


def grew(counter: str, window: str) -> str:
    """The counter is higher than `window` ago.

    Not increase(): MetricsQL counts a series' first sample as growth from zero (a series that
    reappears after a gap pages), PromQL does not, so the two engines disagree. The difference with
    an offset means the same in both; a counter reset inside the window reads as no growth until the
    window has passed it.
    """
    return f"({counter} - {counter} offset {window} > 0)"
