"""`honeydue-exporter drill`: the whole alert pipeline on loopback, with real failures injected.

pipeline.py starts the parts, scenarios.py breaks and heals them, command.py is the CLI. The launchers
(procs.py, vm.py), the Kubernetes test cluster (kube/: real etcd, kube-apiserver, kube-controller-manager,
fake kubelets) and the Asynq writer (asynq_state.py) are shared with the test-suite. kubeapi.py is a
stand-in API server kept for replies a real one cannot be made to send (malformed, oversized, hostile).
"""
