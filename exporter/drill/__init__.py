"""`honeydue-exporter drill`: the whole alert pipeline on loopback, with real failures injected.

pipeline.py starts the parts, scenarios.py breaks and heals them, command.py is the CLI, asynqapp.py is
honeyDue's worker side on the real Asynq, dashboard_check.py reads the dashboard's queries. Every server,
stand-in and launcher comes from the test bed (the top-level package `testbed`, shared with the test-suite),
which ships with the `drill` extra and is not in the production image: without it the command says so.
"""
