"""The incident suite (issue 11): rules/incidents/*.yml through promtool, vmalert-tool and Alertmanager."""
