"""A k3s-shaped control plane on loopback: three server nodes (127.0.0.2-4), each with its own etcd
member and kube-apiserver (real TLS, the run's CA), and one kube-controller-manager.

The binaries are built from the project's pinned Go module (tests/peers/kube, scripts/go-peers.sh).
As in k3s, each node's API server talks to its local etcd member only, every API server listens on
the same port on its own node IP (like :6443), and kube-controller-manager runs with short node
monitoring periods so node loss is seen in seconds, not minutes. Failures are real: `stop_etcd` ends a
member's process; `freeze` stops a node's processes with SIGSTOP, so the kernel still accepts
connections but nothing answers, as when the node's NIC drops every packet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from testbed.kube.pki import CertFiles, CertificateAuthority
from testbed.kube.rest import ApiError, Rest
from testbed.kubeconfig import write_kubeconfig
from testbed.paths import PEERS_BIN as REPO_BIN
from testbed.procs import free_port, require_binary, stop_process

NODE_NAMES = ("ubuntu-8gb-nbg1-1", "ubuntu-8gb-nbg1-2", "ubuntu-8gb-nbg1-3")
NODE_IPS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
K3S_VERSION = "v1.35.4+k3s1"  # the binaries are stamped with it (scripts/go-peers.sh), as k3s stamps its own
SERVICE_CIDR = "10.43.0.0/16"
KUBERNETES_SERVICE_IP = "10.43.0.1"
AUDIENCE = "https://kubernetes.default.svc.cluster.local"  # k3s' service-account issuer and audience
# Metadata of every request by a service account in the honeydue namespace (the exporter), nothing else.
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts:honeydue"]
  - level: None
"""
EGRESS_SELECTOR = """apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
  - name: cluster
    connection:
      proxyProtocol: HTTPConnect
      transport:
        uds:
          udsName: {socket}
"""


def kube_binary(name: str) -> str:
    """A control-plane binary: $HONEYDUE_KUBE_BIN first, then PATH, then tests/peers/bin of a source checkout."""
    override = os.environ.get("HONEYDUE_KUBE_BIN")
    if override and (Path(override) / name).exists():
        return str(Path(override) / name)
    return require_binary(name, str(REPO_BIN))


@dataclass(frozen=True)
class ControlPlaneTiming:
    """The clocks of the controllers, shortened from their defaults so node loss is seen in seconds."""

    node_monitor_period: float = 1.0  # default 5 s
    node_monitor_grace_period: float = 8.0  # default 50 s (k8s 1.32+)
    node_startup_grace_period: float = 30.0  # default 60 s
    toleration_seconds: int = 10  # default 300 s: how long pods stay on an unreachable/not-ready node
    # kube-apiserver's --etcd-healthcheck-timeout (default 2 s; /readyz/etcd is the `etcd` check, measured: its
    # 500 "error getting data from etcd: context deadline exceeded" comes after 2.01 s without quorum) and
    # --etcd-readycheck-timeout (/readyz/etcd-readiness). Shortened as the exporter's clocks are: readyz_timeout
    # 3 s > 2 s in production, 0.75 x interval > 0.5 s here (incluster.kubernetes_config).
    etcd_check_timeout: float = 0.5


class Process:
    """One control-plane process with its log; can be stopped, started again, frozen and thawed."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name, self.args, self.log_path = name, args, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        finally:
            log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            self.thaw()
            stop_process(self.proc, timeout=15)
            self.proc = None

    def terminate(self) -> None:
        """SIGTERM without waiting (`stop` then waits)."""
        if self.running:
            assert self.proc is not None
            self.thaw()
            self.proc.terminate()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def freeze(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.2) -> float:
    """Poll `check` until it is true; return the seconds it took, or raise TimeoutError naming `what`."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except (OSError, ApiError, ValueError):
            pass
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        time.sleep(step)


class ControlPlane:
    """etcd x3, kube-apiserver x3 and kube-controller-manager, started together and stopped in `stop()`."""

    def __init__(self, workdir: Path, timing: ControlPlaneTiming | None = None, tunnel_socket: Path | None = None) -> None:
        self.dir = workdir
        self.tunnel_socket = tunnel_socket
        self.dir.mkdir(parents=True, exist_ok=True)
        self.timing = timing or ControlPlaneTiming()
        self.ca = CertificateAuthority(self.dir / "pki")
        self.sa_keys = self.ca.service_account_keys()
        self.api_port = free_port(*NODE_IPS)
        self.etcd_client_port = free_port(*NODE_IPS)
        self.etcd_peer_port = free_port(*NODE_IPS)
        self.admin_cert = self.ca.issue("admin", "honeydue-drill-admin", ("system:masters",), client=True)
        self.etcd: list[Process] = []
        self.apiservers: list[Process] = []
        self.controller_manager: Process | None = None
        self._started: list[Process] = []

    # --- addresses and identities --------------------------------------------------------------
    def api_url(self, index: int = 0) -> str:
        return f"https://{NODE_IPS[index]}:{self.api_port}"

    def admin(self, index: int = 0, timeout: float = 5.0) -> Rest:
        return Rest(self.api_url(index), self.ca.cert_path, self.admin_cert.cert, self.admin_cert.key, timeout=timeout)

    def client_cert(self, name: str, user: str, groups: tuple[str, ...]) -> CertFiles:
        return self.ca.issue(name, user, groups, client=True)

    def kubeconfig(self, path: Path, cert: CertFiles, index: int = 0) -> Path:
        """A kubeconfig of node `index`'s API server for the client certificate `cert`."""
        return write_kubeconfig(path, self.api_url(index), ca=self.ca.cert_path, client_cert=cert.cert,
                                client_key=cert.key)

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self, progress: Callable[[str], None] = lambda _: None) -> None:
        """Start every process and wait until the API answers and the controllers run; stop all on failure."""
        try:
            progress("etcd: three members")
            self._start_etcd()
            progress("kube-apiserver on each server node")
            self._start_apiservers()
            progress("kube-controller-manager")
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process (never raises): the controller manager and the API servers together, then the
        etcd members together, each group signalled at once and then waited for (one by one, their graceful
        shutdowns added up to seconds)."""
        procs = list(dict.fromkeys(reversed(self._started)))
        for group in ([p for p in procs if p not in self.etcd], [p for p in procs if p in self.etcd]):
            for proc in group:
                with contextlib.suppress(Exception):
                    proc.terminate()
            for proc in group:
                with contextlib.suppress(Exception):
                    proc.stop()
        self._started.clear()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _launch(self, proc: Process) -> Process:
        proc.start()
        self._started.append(proc)
        return proc

    def _start_etcd(self) -> None:
        binary = kube_binary("etcd")
        peers = ",".join(f"m{i}=http://{ip}:{self.etcd_peer_port}" for i, ip in enumerate(NODE_IPS))
        token = f"drill-{os.getpid()}-{self.api_port}"
        for i, ip in enumerate(NODE_IPS):
            args = [
                binary, f"--name=m{i}", f"--data-dir={self.dir / f'etcd-{i}'}",
                f"--listen-client-urls=http://{ip}:{self.etcd_client_port}",
                f"--advertise-client-urls=http://{ip}:{self.etcd_client_port}",
                f"--listen-peer-urls=http://{ip}:{self.etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://{ip}:{self.etcd_peer_port}",
                f"--initial-cluster={peers}", "--initial-cluster-state=new", f"--initial-cluster-token={token}",
                "--heartbeat-interval=100", "--election-timeout=1000", "--log-level=warn",
                # the test disk is shared by several builds and test runs; durability is not under test
                "--unsafe-no-fsync", "--quota-backend-bytes=536870912",
            ]
            self.etcd.append(self._launch(Process(f"etcd-{i}", args, self.dir / f"etcd-{i}.log")))
        for i in range(len(NODE_IPS)):
            self.wait_etcd_healthy(i, 60)

    def etcd_healthy(self, index: int) -> bool:
        url = f"http://{NODE_IPS[index]}:{self.etcd_client_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return b'"health":"true"' in response.read()
        except OSError:
            return False

    def wait_etcd_healthy(self, index: int, timeout: float) -> None:
        proc = self.etcd[index]

        def healthy() -> bool:
            if not proc.running:
                raise RuntimeError(f"etcd member {index} exited:\n{proc.tail()}")
            return self.etcd_healthy(index)

        try:
            wait_until(healthy, timeout, f"etcd member {index} healthy")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.etcd[index].tail()}") from None

    def _apiserver_args(self, index: int) -> list[str]:
        ip = NODE_IPS[index]
        serving = self.ca.issue(
            f"apiserver-{index}", "kube-apiserver", ips=(ip, "127.0.0.1", KUBERNETES_SERVICE_IP),
            dns=("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
                 "localhost", NODE_NAMES[index]), server=True,
        )
        proxy_client = self.ca.issue(f"apiserver-{index}-proxy", "system:kube-aggregator", client=True)
        tol = str(self.timing.toleration_seconds)
        policy = self.dir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        egress = []
        if self.tunnel_socket:  # the API servers reach pods (aggregated APIs) through the tunnel, as in k3s
            selector = self.dir / "egress-selector.yaml"
            selector.write_text(EGRESS_SELECTOR.format(socket=self.tunnel_socket))
            egress = [f"--egress-selector-config-file={selector}"]
        return [
            kube_binary("kube-apiserver"),
            f"--advertise-address={ip}", f"--bind-address={ip}", f"--secure-port={self.api_port}",
            f"--etcd-servers=http://{ip}:{self.etcd_client_port}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={self.ca.cert_path}", f"--cert-dir={self.dir / f'apiserver-{index}-certs'}",
            f"--service-account-issuer={AUDIENCE}", f"--api-audiences={AUDIENCE},k3s",
            f"--service-account-key-file={self.sa_keys.cert}",
            f"--service-account-signing-key-file={self.sa_keys.key}",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--anonymous-auth=false", "--allow-privileged=true", "--profiling=false",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--default-not-ready-toleration-seconds={tol}", f"--default-unreachable-toleration-seconds={tol}",
            f"--etcd-healthcheck-timeout={self.timing.etcd_check_timeout:g}s",
            f"--etcd-readycheck-timeout={self.timing.etcd_check_timeout:g}s",
            # aggregated APIs (metrics-server) are reached at their endpoints, as in k3s
            "--enable-aggregator-routing=true",
            f"--requestheader-client-ca-file={self.ca.cert_path}", "--requestheader-allowed-names=system:kube-aggregator",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={proxy_client.cert}", f"--proxy-client-key-file={proxy_client.key}",
            # what the exporter asks, as the API server saw it (tests compare it with deploy/base/rbac.yaml)
            f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log(index)}",
            "--audit-log-format=json", "--audit-log-mode=blocking",
            *egress,
            "--v=1",
        ]

    def audit_log(self, index: int) -> Path:
        return self.dir / f"audit-{index}.log"

    def _start_apiservers(self) -> None:
        for i in range(len(NODE_IPS)):
            self.apiservers.append(
                self._launch(Process(f"kube-apiserver-{i}", self._apiserver_args(i), self.dir / f"apiserver-{i}.log"))
            )
        with ThreadPoolExecutor(len(NODE_IPS)) as pool:
            list(pool.map(lambda i: self.wait_apiserver_ready(i, 180), range(len(NODE_IPS))))

    def wait_apiserver_ready(self, index: int, timeout: float) -> None:
        proc = self.apiservers[index]

        def ready() -> bool:
            if not proc.running:
                raise RuntimeError(f"kube-apiserver {index} exited:\n{proc.tail()}")
            return self._readyz(index)

        try:
            wait_until(ready, timeout, f"kube-apiserver {index} ready", step=0.5)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.apiservers[index].tail()}") from None

    def _readyz(self, index: int) -> bool:
        admin = self.admin(index, timeout=3)
        try:
            admin.request("GET", "/readyz")  # an ApiError while a check still fails
            return True
        except Exception:  # noqa: BLE001 - refused or reset while the server starts
            return False
        finally:
            admin.close()

    def _start_controller_manager(self) -> None:
        cert = self.client_cert("controller-manager", "system:kube-controller-manager", ("system:masters",))
        kubeconfig = self.kubeconfig(self.dir / "controller-manager.kubeconfig", cert)
        t = self.timing
        args = [
            kube_binary("kube-controller-manager"), f"--kubeconfig={kubeconfig}",
            "--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false",
            f"--root-ca-file={self.ca.cert_path}", f"--service-account-private-key-file={self.sa_keys.key}",
            f"--node-monitor-period={t.node_monitor_period:g}s",
            f"--node-monitor-grace-period={t.node_monitor_grace_period:g}s",
            f"--node-startup-grace-period={t.node_startup_grace_period:g}s",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--allocate-node-cidrs=false",
            "--configure-cloud-routes=false", "--controllers=*,-service-lb-controller,-node-ipam-controller",
            "--concurrent-deployment-syncs=5", "--concurrent-replicaset-syncs=5", "--v=1",
        ]
        self.controller_manager = self._launch(
            Process("kube-controller-manager", args, self.dir / "controller-manager.log")
        )

    # --- failures -------------------------------------------------------------------------------
    def kill_etcd(self, *indices: int) -> None:
        """These members die together (SIGKILL, as when their nodes lose power)."""
        for i in indices:
            self.etcd[i].kill()

    def start_etcd(self, index: int) -> None:
        self.etcd[index].start()

    def freeze_node(self, index: int) -> None:
        """The node's etcd member and API server stop answering (SIGSTOP): its NIC dropped every packet."""
        self.apiservers[index].freeze()
        self.etcd[index].freeze()

    def thaw_node(self, index: int) -> None:
        self.etcd[index].thaw()
        self.apiservers[index].thaw()
