"""Disaster recovery: only the obs box can see the cluster gone."""

from exporter.catalog.model import FailureMode

ENTRIES = (
    FailureMode(
        id="complete-cluster-loss",
        heading="Complete cluster loss",
        layer="dr",
        planned="issue 5: obs-side absence of the exporter's series plus an always-firing watchdog",
        blind_spot="The exporter dies with the cluster: the obs-side absence rule and the watchdog are the "
        "only signals.",
    ),
)
