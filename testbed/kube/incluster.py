"""Run the exporter as it runs in its pod: the in-cluster credential path, unchanged.

The Kubernetes client reads the service-account token and CA from the fixed path
/var/run/secrets/kubernetes.io/serviceaccount and the API address from KUBERNETES_SERVICE_HOST/PORT.
The exporter process gets a private mount namespace (util-linux `unshare`, root) with a tmpfs on /run
holding exactly those files, so the machine's /var/run is never touched and several exporters (and
several engineers' test runs) each see their own. KUBERNETES_SERVICE_HOST is the first server node's
API address: the `kubernetes` Service's endpoint that kube-proxy would pick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testbed.kube.cluster import KubeCluster
from testbed.kube.control_plane import NODE_IPS
from testbed.procs import require_binary

POD_SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_MOUNT = (
    'mount -t tmpfs -o mode=0755 pod-run /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && '
    'mount --bind "$0" /run/secrets/kubernetes.io/serviceaccount && exec "$@"'
)


def in_pod(service_account_dir: Path, argv: list[str]) -> list[str]:
    """`argv` wrapped to run with `service_account_dir` mounted where a pod has its service account."""
    unshare = require_binary("unshare", "/usr/bin", "/bin")
    return [unshare, "--mount", "--propagation", "private", "--", "sh", "-c", _MOUNT, str(service_account_dir),
            *argv]


def service_env(host: str = NODE_IPS[0], port: int = 6443) -> dict[str, str]:
    """What the kubelet puts in every pod's environment for the `kubernetes` Service."""
    return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(port)}


def kubernetes_config(cluster: KubeCluster, interval: float = 2.0) -> dict[str, Any]:
    """The exporter's `kubernetes:` section for this cluster: deploy/overlays/example/config.yml's, with test clocks.

    As in production, readyz_timeout outlasts the API servers' etcd readiness check (3 s > 2 s there, 0.75 x
    interval > 0.5 s here: ControlPlaneTiming), so an API server without etcd answers its 500 in time; the
    checks run beside the node list, so both fit in one run."""
    return {
        "source": "in-cluster", "apiserver_port": cluster.api_port, "interval": interval,
        "timeout": 0.95 * interval, "connect_timeout": 0.25 * interval, "read_timeout": 0.6 * interval,
        "readyz_timeout": 0.75 * interval,
    }
