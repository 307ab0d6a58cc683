"""`honeydue-exporter drill`: the whole alert pipeline on loopback, with real failures injected.

pipeline.py starts the parts, scenarios.py breaks and heals them, command.py is the CLI. The launchers
(procs.py, vm.py), the Kubernetes stand-in (kubeapi.py), the real Asynq peer (asynqpeer.py; the drill's
worker side in asynqapp.py) and the writer of malformed Asynq state (asynq_state.py) are shared with the
test-suite.
"""
