"""Disaster recovery: only the obs box can see the cluster gone."""

from exporter.catalog.model import Alert, FailureMode

ENTRIES = (
    FailureMode(
        id="complete-cluster-loss",
        heading="Complete cluster loss",
        layer="dr",
        alerts=(
            Alert(
                name="Watchdog",
                severity="info",
                expr="vector(1)",
                for_="1m",
                summary="The alerting pipeline on the obs box is alive.",
                description="Always firing (value {{ $value }}) while vmalert evaluates rules and Alertmanager "
                "delivers them; route it to a dead-man's-switch receiver, which pages when it stops arriving "
                "(obs box down). Cluster loss itself shows as ClusterSilentNoNodeAnswers.",
                obs_side=True,
                labels=(("route", "deadmansswitch"),),
            ),
        ),
        blind_spot="The exporter dies with the cluster: the obs-side absence rule and the watchdog are the "
        "only signals.",
    ),
)
