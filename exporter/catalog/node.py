"""Node-level failure modes, watched through the Kubernetes probe (issue 4).

Every node alert carries a `node` label so the Alertmanager inhibit rule in
deploy/alertmanager/ can silence it while that node is cordoned for maintenance.
"""

from exporter.catalog.gates import BY, NODE_LIST_FAILING, QUORUM_LOST
from exporter.catalog.model import Alert, FailureMode, Panel, Query

NODE_READY = 'honeydue_kube_node_status_condition{condition="Ready",status="true"}'
def absent(job: str) -> str:
    """No series of this scrape job for 3 minutes (vmagent's `job` label tells exporter and netcheck apart)."""
    return f'absent_over_time(honeydue_exporter_build_info{{job="{job}"}}[3m])'


ENTRIES = (
    FailureMode(
        id="one-node-nic-fails",
        heading="One node's NIC fails",
        layer="node",
        signals=("honeydue_kube_node_status_condition",),
        probes=("kubernetes_nodes",),
        alerts=(
            Alert(
                name="KubeNodeNotReady",
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
                expr=f"max by ({BY}) (honeydue_kube_api_up == 0) or {NODE_LIST_FAILING}",
                for_="2m",
                summary="The Kubernetes API server does not answer the exporter or cannot list nodes.",
                description="{{ $labels.instance }} has for 2 minutes got no answer to GET /version or no list of "
                "nodes (an API server without etcd quorum still answers /version): control-plane outage or lost "
                "quorum. Node, pod and deployment signals are stale.",
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
                name="HoneydueExporterSeriesAbsent",
                severity="critical",
                expr=f"{absent('honeydue-exporter')} and on () {absent('honeydue-netcheck')}",
                for_="2m",
                summary="No series from the cluster have reached the obs box for five minutes.",
                description="Neither the exporter ({{ $labels.job }}) nor any netcheck pod has reached the obs "
                "TSDB for at least {{ 300 | humanizeDuration }}: either the whole cluster is down (all three "
                "nodes) or vmagent cannot write to the obs box. If https://api.myhoneydue.com/api/health/ "
                "answers, it is vmagent (chapter 16 \"vmagent can't reach obs\"); else the Hetzner console.",
                obs_side=True,
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
                expr=f"sum by ({BY}, node) (honeydue_kube_evicted_pods) > 0",
                for_="5m",
                summary="Pods were evicted from a node.",
                description="{{ $value }} evicted pods remain on node {{ $labels.node }}, usually disk pressure. "
                "Fix the cause, then delete them (kubectl delete pod --field-selector=status.phase=Failed).",
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
