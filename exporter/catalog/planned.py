"""Planned outages: node and k3s upgrades. A node's tickets are muted for the first hour of its cordon.

`KubeNodeCordoned` (info) exists to be the source of the Alertmanager inhibit rule shipped in
deploy/alertmanager/: while it fires for a node, that node's warning and info alerts are muted (never its
critical ones). It fires for the first hour of a cordon only: a maintenance window has an end, and a node
left cordoned longer gets its alerts back together with KubeNodeCordonedTooLong.
"""

from exporter.catalog.gates import recent_cordon
from exporter.catalog.model import Alert, FailureMode, Panel, Query

MAINTENANCE_WINDOW = "1h"
CORDONED = recent_cordon(MAINTENANCE_WINDOW)
VERSIONS = "count by (job, instance) (count by (job, instance, kubelet_version) (honeydue_kube_node_info))"
# Hours-long conditions are read from the data, not from a `for` clock: an evaluation that finds the
# series stale (an exporter restart writes staleness markers) would restart a `for: 1h` from zero.
CORDONED_TOO_LONG = f"min_over_time(honeydue_kube_node_spec_unschedulable[{MAINTENANCE_WINDOW}]) == 1"
SKEW_4H = f"min_over_time(({VERSIONS})[4h:5m]) > 1"

ENTRIES = (
    FailureMode(
        id="node-upgrades",
        heading="Node upgrades (OS patches)",
        layer="planned",
        signals=("honeydue_kube_node_spec_unschedulable",),
        probes=("kubernetes_nodes",),
        alerts=(
            Alert(
                name="KubeNodeCordoned",
                severity="info",
                expr=CORDONED,
                for_="1m",
                summary="A node is cordoned for maintenance; its tickets are muted for the first hour.",
                description="Node {{ $labels.node }} is unschedulable (drained or cordoned). Its warning and info "
                "alerts are muted for the first hour of the cordon (critical ones never are); uncordon it with "
                "`kubectl uncordon {{ $labels.node }}`.",
            ),
            Alert(
                name="KubeNodeCordonedTooLong",
                severity="warning",
                expr=CORDONED_TOO_LONG,
                for_="5m",
                summary="A node has been cordoned for more than an hour: its maintenance window is over.",
                description="Node {{ $labels.node }} has been unschedulable for an hour; its alerts are no longer "
                "muted. Finish the maintenance and uncordon it.",
                detect="1h",
                slow_reason="a maintenance window of an hour is the condition itself",
            ),
        ),
        panels=(
            Panel(
                title="Cordoned nodes",
                queries=(Query("honeydue_kube_node_spec_unschedulable", "{{node}}"),),
            ),
        ),
    ),
    FailureMode(
        id="k3s-upgrades",
        heading="k3s upgrades",
        layer="planned",
        signals=("honeydue_kube_node_info",),
        probes=("kubernetes_nodes",),
        alerts=(
            Alert(
                name="KubeletVersionSkew",
                severity="warning",
                expr=SKEW_4H,
                for_="5m",
                summary="Nodes have run different kubelet versions for 4 hours: a k3s upgrade was left half done.",
                detect="4h",
                slow_reason="chapter 16 upgrades one node at a time with checks between: skew is normal for hours",
                description="{{ $value }} kubelet versions run in the cluster. Upgrade the remaining nodes one at "
                "a time, checking cluster health between each.",
            ),
        ),
        panels=(
            Panel(
                title="Kubelet versions",
                queries=(Query("count by (kubelet_version) (honeydue_kube_node_info)", "{{kubelet_version}}"),),
            ),
        ),
    ),
)
