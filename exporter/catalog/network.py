"""Networking failure modes, watched by the TCP probes; per node when run as the netcheck DaemonSet.

Flannel and kube-proxy are told apart per node: Flannel broken on X = from X no pod IP on another
node answers (while other nodes reach theirs); kube-proxy broken on X = from X a Service ClusterIP
does not answer while the remote pod IPs of the same backend do.
"""

from exporter.catalog.gates import (
    BY,
    ESSENTIAL,
    FLANNEL_BROKEN,
    KUBEPROXY_BROKEN,
    minority_failing,
    unless_network_fault,
)
from exporter.catalog.model import Alert, FailureMode, Panel, Query

# A UFW rule blocks a path on a node: the connect fails from that node while more nodes' netcheck pods reach
# the same target (when most nodes fail, the target or a firewall on its own node is the cause: its alert). A
# dependency that is down for everyone (SMTP, Neon) is its own alert's, at its own severity and runbook; a
# name that does not resolve from that node (reason dns) is the DNS path's, not a firewall's; Flannel or
# kube-proxy broken anywhere explains paths that cross them (their own pages).
BLOCKED_ON_NODE = unless_network_fault(
    f"{minority_failing(f'{ESSENTIAL} == 0', f'{ESSENTIAL} == 1')} "
    f'unless on ({BY}, target, node) honeydue_tcp_failure_info{{role="essential",reason="dns"}}'
)

ENTRIES = (
    FailureMode(
        id="ufw-blocks-traffic",
        heading="UFW rule accidentally blocks essential traffic",
        layer="network",
        signals=("honeydue_tcp_up", "honeydue_tcp_connect_duration_seconds", "honeydue_tcp_failure_info",
                 "honeydue_kube_apiserver_readyz_up"),
        probes=("tcp", "kubernetes_nodes"),
        alerts=(
            Alert(
                name="EssentialTcpPathUnreachable",
                severity="critical",
                expr=BLOCKED_ON_NODE,
                for_="3m",
                summary="An essential network path fails from one node while more nodes reach the same target.",
                description="TCP connects to {{ $labels.target }} from node {{ $labels.node }} have failed for "
                "3 minutes while more nodes still connect, so the dependency is up and this node's path is "
                "blocked: sudo ufw status numbered on {{ $labels.node }}.",
                user_facing=True,
            ),
            Alert(
                name="KubeApiserverPortUnanswered",
                severity="warning",
                expr="(sum by (job, instance) (honeydue_kube_apiserver_readyz_up) == 0) "
                "and on (job, instance) (honeydue_kube_api_up == 1)",
                for_="10m",
                summary="No server node's :6443 answers from pods while the Kubernetes API does.",
                description="For 10 minutes {{ $labels.instance }} has had no answer to /readyz/etcd from any "
                "server node while its established API connection works: a firewall drops new pod -> node:6443 "
                "connections (sudo ufw status numbered on the nodes). Pods that open new API connections fail.",
            ),
            Alert(
                name="KubeApiserverUnansweredOnNode",
                severity="warning",
                expr=unless_network_fault(
                    "(honeydue_kube_apiserver_readyz_up == 0) "
                    f'and on ({BY}, node) (honeydue_kube_node_status_condition{{condition="Ready",status="true"}} == 1) '
                    f"and on ({BY}) (max by ({BY}) (honeydue_kube_apiserver_readyz_up) == 1)"),
                for_="10m",
                summary="One server node's :6443 does not answer from pods while the node is Ready and the others answer.",
                description="For 10 minutes {{ $labels.instance }} has had no answer to /readyz/etcd from "
                "{{ $labels.node }}:6443 while that node is Ready and another server's :6443 answers: a firewall "
                "on {{ $labels.node }} drops pod -> node:6443 connections (sudo ufw status numbered there; "
                "kubectl through that node times out).",
            ),
        ),
        panels=(
            Panel(
                title="Essential TCP paths",
                queries=(Query('honeydue_tcp_up{role="essential"}', "{{node}} to {{target}}"),),
                description="1 = TCP connect completed. One line per node when the netcheck DaemonSet runs.",
            ),
            Panel(
                title="TCP connect latency",
                queries=(Query("honeydue_tcp_connect_duration_seconds", "{{node}} to {{target}}"),),
                unit="s",
            ),
        ),
    ),
    FailureMode(
        id="flannel-broken",
        heading="Flannel broken on one node",
        layer="network",
        signals=("honeydue_tcp_up",),
        probes=("tcp",),
        alerts=(
            Alert(
                name="FlannelBrokenOnNode",
                severity="critical",
                expr=FLANNEL_BROKEN,
                for_="3m",
                summary="Pods on one node cannot reach pods on other nodes over the overlay network.",
                description="From node {{ $labels.node }} no pod IP on another node has answered TCP connects "
                "for 3 minutes, while other nodes still reach remote pods: Flannel is broken on "
                "{{ $labels.node }}, or a firewall drops its VXLAN traffic: check sudo ufw status numbered there for "
                "8472/udp first, else restart k3s on that node.",
                user_facing=True,
            ),
        ),
        panels=(
            Panel(
                title="Pod IP vs ClusterIP reachability per node",
                queries=(
                    Query('min by (node) (honeydue_tcp_up{role="pod",path="remote"})', "{{node}} remote pod IPs"),
                    Query('min by (node) (honeydue_tcp_up{role="service"})', "{{node}} ClusterIPs"),
                ),
                description="Remote pod IPs down on one node = Flannel; ClusterIPs down while pod IPs answer = "
                "kube-proxy.",
            ),
        ),
    ),
    FailureMode(
        id="kube-proxy-broken",
        heading="Kube-proxy broken on one node",
        layer="network",
        signals=("honeydue_tcp_up",),
        probes=("tcp",),
        alerts=(
            Alert(
                name="KubeProxyBrokenOnNode",
                severity="critical",
                expr=KUBEPROXY_BROKEN,
                for_="3m",
                summary="Pods on one node cannot reach Service ClusterIPs while the pods behind them answer.",
                description="From node {{ $labels.node }}, {{ $value }} Service ClusterIP(s) have refused or timed "
                "out TCP connects for 3 minutes while the pod IPs of the same backends answer: kube-proxy is "
                "broken on {{ $labels.node }}. Restart k3s on that node.",
                user_facing=True,
            ),
        ),
        panels=(
            Panel(
                title="ClusterIP reachability by backend",
                queries=(Query('honeydue_tcp_up{role="service"}', "{{node}} to {{backend}}"),),
            ),
        ),
    ),
)
