"""Node-level failure modes. Signals arrive with the Kubernetes probe (issue 4)."""

from exporter.catalog.model import Alert, FailureMode

ENTRIES = (
    FailureMode(
        id="one-node-nic-fails",
        heading="One node's NIC fails",
        layer="node",
        planned="issue 4: node Ready condition per node, ready server nodes",
    ),
    FailureMode(
        id="two-nodes-fail",
        heading="Two nodes fail simultaneously",
        layer="node",
        planned="issue 4: ready control-plane nodes vs the etcd quorum (2 of 3), API reachability",
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
                expr="absent_over_time(honeydue_exporter_build_info[3m])",
                for_="2m",
                summary="No series from the cluster's exporter have reached the obs box for five minutes.",
                description="honeydue_exporter_build_info has been absent from the obs TSDB for at least "
                "{{ 300 | humanizeDuration }}: either "
                "the whole cluster is down (all three nodes) or vmagent cannot write to the obs box. Check "
                "https://api.myhoneydue.com/api/health/ and the Hetzner console.",
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
        planned="issue 4: DiskPressure condition per node, evicted pods",
    ),
)
