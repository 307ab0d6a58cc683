"""`honeydue-exporter drill`: the whole alert pipeline on loopback, with real failures injected.

pipeline.py starts the parts, scenarios.py breaks and heals them, command.py is the CLI (its own options;
exporter/cli.py hands it the rest of the command line), asynqapp.py is honeyDue's worker side on the real
Asynq, dashboard_check.py reads the dashboard's queries. It lives in the test bed it drives (every server,
stand-in and launcher comes from `testbed`, shared with the test-suite), which needs the `drill` extra for a
real run and is not in the production image. `drill --list` needs neither the extra nor a running part.
"""
