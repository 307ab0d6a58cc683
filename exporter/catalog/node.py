"""Node-level failure modes. Signals arrive with the Kubernetes probe (issue 4)."""

from exporter.catalog.model import FailureMode

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
        planned="issue 5: obs-side absence of the exporter's series and an always-firing watchdog",
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
