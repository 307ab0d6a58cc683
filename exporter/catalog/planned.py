"""Planned outages: node and k3s upgrades. Node alerts are inhibited while a node is cordoned.

`KubeNodeCordoned` (info) exists to be the source of the Alertmanager inhibit rule shipped in
deploy/alertmanager/: while it fires for a node, node and k3s alerts with the same `node` are muted.
"""

from exporter.catalog.model import Alert, FailureMode, Panel, Query

CORDONED = "honeydue_kube_node_spec_unschedulable == 1"
VERSIONS = "count by (job, instance) (count by (job, instance, kubelet_version) (honeydue_kube_node_info))"
# Hours-long conditions are read from the data, not from a `for` clock: an evaluation that finds the
# series stale (an exporter restart writes staleness markers) would restart a `for: 6h` from zero.
CORDONED_6H = "min_over_time(honeydue_kube_node_spec_unschedulable[6h]) == 1"
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
                summary="A node is cordoned for maintenance; its node alerts are inhibited.",
                description="Node {{ $labels.node }} is unschedulable (drained or cordoned). Node alerts for it "
                "are muted until `kubectl uncordon {{ $labels.node }}`.",
            ),
            Alert(
                name="KubeNodeCordonedTooLong",
                severity="warning",
                expr=CORDONED_6H,
                for_="5m",
                summary="A node has been cordoned for more than 6 hours.",
                description="Node {{ $labels.node }} has been unschedulable for 6 hours and its node alerts are "
                "still muted. Finish the maintenance and uncordon it.",
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
