"""The test bed: the real servers, stand-ins and launchers the drill (drill/) and the test-suite share.

One of each: process lifecycle (procs), the VictoriaMetrics family (vm), Alertmanager (alertmanager), the
webhook receiver and SMTP sink that catch what it sends (receivers), an asyncio loop on a thread (loop),
honeyDue's residence world in PostgreSQL (residence), the real Asynq peer (asynqpeer), the Kubernetes
control plane (kube/), fault injection (faults), edge targets (edge) and the stand-ins for what cannot run
here (standins, kubeapi). It ships in the distribution for `pip install 'honeydue-exporter[drill]'`
and is never copied into the production image (deploy/Dockerfile copies exporter/ only).
"""
