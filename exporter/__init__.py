"""honeydue-exporter: honeyDue's failure modes as Prometheus signals, alerts and dashboards."""

__version__ = "0.1.0"
