"""`honeydue-exporter drill`: the whole alert pipeline on loopback, with real failures injected.

pipeline.py starts the parts, scenarios.py breaks and heals them, command.py is the CLI. The launchers
(procs.py, vm.py), the Kubernetes stand-in (kubeapi.py) and the Asynq writer (asynq_state.py) are
shared with the test-suite.
"""
