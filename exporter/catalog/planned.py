"""Planned outages: node and k3s upgrades. Node alerts are inhibited while a node is cordoned.

`KubeNodeCordoned` (info) exists to be the source of the Alertmanager inhibit rule shipped in
deploy/alertmanager/: while it fires for a node, node and k3s alerts with the same `node` are muted.
"""

from exporter.catalog.model import Alert, FailureMode, Panel, Query

CORDONED = "honeydue_kube_node_spec_unschedulable == 1"
VERSIONS = "count(count by (kubelet_version) (honeydue_kube_node_info))"

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
                expr=CORDONED,
                for_="6h",
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
                expr=f"{VERSIONS} > 1",
                for_="4h",
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
