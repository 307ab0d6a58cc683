"""Node-level failure modes, watched through the Kubernetes probe (issue 4).

Every node alert carries a `node` label so the Alertmanager inhibit rule in
deploy/alertmanager/ can silence it while that node is cordoned for maintenance.
"""

from exporter.catalog.gates import (
    API_LISTS_FROM_NODES,
    BY,
    CLUSTER_SILENT,
    NETWORK_FAULT,
    NODE_LIST_FAILING,
    NODES_LOST,
    OBS_NODES_ANSWER,
    OBS_PROBE_ABSENT,
    OBS_PUBLIC_UP,
    QUORUM_LOST,
    grew,
)
from exporter.catalog.model import Alert, FailureMode, Panel, Query

NODE_READY = 'honeydue_kube_node_status_condition{condition="Ready",status="true"}'
# The exporter's credentials for the Kubernetes API are refused: a ticket about the exporter, not an outage.
KUBE_CREDENTIALS = (
    f'(max by ({BY}) (honeydue_probe_error_info{{probe="kubernetes_api",reason="auth"}}) or max by ({BY}) '
    '(honeydue_kube_resource_error_info{resource="nodes",reason=~"forbidden|unauthorized"}))'
)
# From vmagent's side: two of the three netcheck pods unreachable while one answers, and the nodes confirm it
# (gates.NODES_LOST); not while the exporter still sees two Ready nodes or two nodes answer the obs box.
NODES_UNREACHABLE = (
    f"{NODES_LOST} and on () (count(up{{job=\"honeydue-netcheck\"}} == 1) >= 1) "
    f"unless on () (sum({NODE_READY}) >= 2) unless on () ({OBS_NODES_ANSWER} >= 2)"
)


ENTRIES = (
    FailureMode(
        id="one-node-nic-fails",
        heading="One node's NIC fails",
        layer="node",
        signals=("honeydue_kube_node_status_condition",),
        probes=("kubernetes_nodes",),
        alerts=(
            Alert(
                name="HoneydueNodeNotReady",
                severity="warning",
                expr=f"{NODE_READY} == 0",
                for_="2m",
                summary="A Kubernetes node is not Ready.",
                description="Node {{ $labels.node }} has not been Ready for 2 minutes. The cluster keeps quorum "
                "with 2 of 3 servers; check `kubectl get nodes` and the node in the Hetzner console.",
            ),
        ),
        panels=(
            Panel(
                title="Node Ready",
                queries=(Query(NODE_READY, "{{node}}"),),
                description="1 = Ready. A node at 0 is NotReady or Unknown (its kubelet stopped reporting).",
            ),
        ),
    ),
    FailureMode(
        id="two-nodes-fail",
        heading="Two nodes fail simultaneously",
        layer="node",
        signals=("honeydue_kube_control_plane_nodes_ready", "honeydue_kube_etcd_quorum",
                 "honeydue_kube_apiserver_etcd_ready", "honeydue_kube_apiserver_readyz_up", "honeydue_kube_api_up",
                 "honeydue_kube_resource_up", "honeydue_kube_resource_error_info"),
        probes=("kubernetes_nodes", "kubernetes_api"),  # the etcd evidence is the node probe's (readyz/etcd)
        alerts=(
            Alert(
                name="KubeEtcdQuorumLost",
                severity="critical",
                expr=QUORUM_LOST,
                for_="3m",
                summary="Fewer server nodes pass their etcd check than etcd needs for quorum: the API rejects writes.",
                description="Only {{ $value }} server nodes pass /readyz/etcd, below the quorum, and the cluster "
                "confirms it (a server answers that its etcd check fails, Ready servers are below quorum, or the "
                "node list fails). Running pods keep serving but nothing can be scheduled or updated; bring a "
                "server back within minutes or prepare the rebuild.",
            ),
            Alert(
                name="KubeAPIUnreachable",
                severity="critical",
                expr=f"(max by ({BY}) (honeydue_kube_api_up == 0) or {NODE_LIST_FAILING}) "
                f"unless on ({BY}) {KUBE_CREDENTIALS} unless on () {NETWORK_FAULT} "
                f"unless on () {API_LISTS_FROM_NODES}",
                for_="2m",
                summary="The Kubernetes API server does not answer the exporter or cannot list nodes.",
                description="{{ $labels.instance }} has for 2 minutes got no answer to GET /version or no list of "
                "nodes (an API server without etcd quorum still answers /version), and the netcheck pods cannot "
                "list from their own nodes' API servers either: control-plane outage or lost quorum. Node, pod "
                "and deployment signals are stale.",
                user_facing=False,
            ),
            Alert(
                name="NodesUnreachable",
                severity="critical",
                expr=NODES_UNREACHABLE,
                for_="2m",
                summary="Two of the three nodes do not answer vmagent: etcd has lost quorum.",
                description="{{ $value }} netcheck pods (one per node, on the host network) have not answered "
                "vmagent's scrapes for 2 minutes while another still does, and neither the exporter nor the obs "
                "box sees two nodes alive. Raft has no quorum: the API rejects writes and nothing is rescheduled "
                "(also not the exporter, if it ran there). Check the nodes in the Hetzner console; if they are "
                "truly gone, rebuild from the survivor.",
                user_facing=False,
            ),
            Alert(
                name="ClusterSilentOneNodeAnswers",
                severity="critical",
                expr=f"{CLUSTER_SILENT} and on () ({OBS_NODES_ANSWER} == 1)",
                for_="30s",
                summary="Nothing from the cluster reaches the obs box and only one node's origin answers from outside.",
                description="For 2 minutes neither the exporter nor any netcheck pod has reached the obs TSDB (vmagent "
                "ran on a node that is gone) and exactly one node's origin answers the obs box's own probe ({{ $labels.job }} "
                "is silent): two "
                "nodes are down and etcd has no quorum, so vmagent cannot be rescheduled. Check the nodes in the "
                "Hetzner console; if they are truly gone, rebuild from the survivor.",
                obs_side=True,
                user_facing=False,
                detect="2m",
            ),
        ),
        panels=(
            Panel(
                title="Server nodes Ready vs etcd quorum",
                queries=(
                    Query("honeydue_kube_control_plane_nodes_ready", "ready servers"),
                    Query("sum(honeydue_kube_apiserver_etcd_ready)", "etcd checks passing"),
                    Query("honeydue_kube_etcd_quorum", "quorum"),
                ),
            ),
            Panel(
                title="Kubernetes API reachable and readable",
                queries=(
                    Query("honeydue_kube_api_up", "API up"),
                    Query("honeydue_kube_resource_up", "{{resource}} {{namespace}}"),
                ),
            ),
        ),
    ),
    FailureMode(
        id="all-three-nodes-fail",
        heading="All three nodes fail simultaneously",
        layer="node",
        signals=("honeydue_exporter_build_info",),
        alerts=(
            Alert(
                name="ClusterSilentNoNodeAnswers",
                severity="critical",
                expr=f"({CLUSTER_SILENT} unless on () ({OBS_NODES_ANSWER} >= 1) unless on () {OBS_PUBLIC_UP}) "
                f"or ({CLUSTER_SILENT} and on () {OBS_PROBE_ABSENT})",
                for_="30s",
                summary="Nothing from the cluster reaches the obs box and no node's origin answers from outside.",
                description="For 2 minutes neither the exporter nor any netcheck pod ({{ $labels.job }}) has reached the "
                "obs TSDB, no node answers the obs box's own probe and neither does the public URL (or the obs-probe "
                "is not running, so it cannot be told): the whole cluster is down (chapter 16 \"All three nodes "
                "fail\"). Check the Hetzner console.",
                obs_side=True,
                user_facing=True,
                detect="2m",
            ),
        ),
        blind_spot="Nothing in the cluster survives to report it: only the obs box (absence rule, "
        "watchdog) can see it.",
    ),
    FailureMode(
        id="node-disk-fills-up",
        heading="Node disk fills up",
        layer="node",
        signals=("honeydue_kube_node_status_condition", "honeydue_kube_evicted_pods",
                 "honeydue_kube_pod_status_reason"),
        probes=("kubernetes_nodes", "kubernetes_pods"),
        alerts=(
            Alert(
                name="KubeNodeDiskPressure",
                severity="warning",
                expr='honeydue_kube_node_status_condition{condition="DiskPressure",status="true"} == 1',
                for_="5m",
                summary="A node reports DiskPressure: the kubelet is evicting pods.",
                description="Node {{ $labels.node }} has had DiskPressure for 5 minutes. Look at "
                "/var/lib/rancher (container logs, local-path PVCs) and the apt cache.",
            ),
            Alert(
                name="KubePodsEvicted",
                severity="warning",
                expr=f"sum by ({BY}, node) {grew('honeydue_kube_evicted_pods', '15m')}",
                for_="1m",
                summary="The kubelet evicted pods from a node in the last 15 minutes.",
                description="{{ $value }} more evicted pods on node {{ $labels.node }} than 15 minutes ago, usually "
                "disk pressure. Evicted pods stay listed until deleted: fix the cause, then delete them "
                "(kubectl delete pod --field-selector=status.phase=Failed).",
            ),
        ),
        panels=(
            Panel(
                title="DiskPressure and evicted pods per node",
                queries=(
                    Query('honeydue_kube_node_status_condition{condition="DiskPressure",status="true"}',
                          "disk pressure {{node}}"),
                    Query("sum by (node) (honeydue_kube_evicted_pods)", "evicted {{node}}"),
                ),
            ),
        ),
    ),
)
