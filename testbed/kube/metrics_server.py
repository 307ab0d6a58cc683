"""metrics-server's container: the real metrics-server (sigs.k8s.io/metrics-server, built by
scripts/go-peers.sh), started by the fake kubelet when it runs the metrics-server image.

It listens on a free loopback port (the API servers reach it at the pod's IP and port through
tunnel.py), so the APIService v1beta1.metrics.k8s.io is Available exactly while a metrics-server pod
runs; the kube-aggregator's own availability check decides it. It serves metrics.k8s.io from what it
scrapes every 10 s (its shortest --metric-resolution) at each node's InternalIP and the kubelet port in
the Node's status, from the fake kubelets' /metrics/resource, and authenticates and authorizes the
aggregator's proxied requests as in a cluster (front-proxy client CA from
kube-system/extension-apiserver-authentication, SubjectAccessReview for the caller).

Differences from k3s' deployment, written down: it runs with the drill admin's client certificate
(system:masters) instead of its own ServiceAccount and the system:metrics-server ClusterRole, and with
--kubelet-insecure-tls (the fake kubelets' serving certificates are issued by the run's CA but not for
metrics-server to check); its serving certificate is the one the cluster issues for it.
"""

from __future__ import annotations

from pathlib import Path

from testbed.kube.control_plane import Process, kube_binary
from testbed.kube.pki import CertFiles
from testbed.procs import free_port

METRIC_RESOLUTION = 10  # seconds: the lowest metrics-server accepts


class MetricsServer:
    """One metrics-server process on 127.0.0.1:<free port>; `close()` stops it."""

    def __init__(self, cert: CertFiles, kubeconfig: Path, workdir: Path) -> None:
        port = free_port()
        self.address = ("127.0.0.1", port)
        workdir.mkdir(parents=True, exist_ok=True)
        args = [
            kube_binary("metrics-server"), f"--secure-port={port}", "--bind-address=127.0.0.1",
            f"--tls-cert-file={cert.cert}", f"--tls-private-key-file={cert.key}",
            f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--kubelet-insecure-tls", "--kubelet-use-node-status-port",
            "--kubelet-preferred-address-types=InternalIP", f"--metric-resolution={METRIC_RESOLUTION}s",
            "--kubelet-request-timeout=3s", "--v=1",
        ]
        self.process = Process("metrics-server", args, workdir / "metrics-server.log")
        self.process.start()

    def close(self) -> None:
        self.process.stop()
