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
