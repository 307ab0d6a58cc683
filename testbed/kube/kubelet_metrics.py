"""The fake kubelet's `/metrics/resource`: what metrics-server scrapes from every node.

The kubelet serves it over HTTPS on its port (10250 in k3s; here a free port on the node's IP, published
in the Node's status.daemonEndpoints.kubeletEndpoint.Port, which metrics-server uses with
--kubelet-use-node-status-port). The text is the kubelet's resource-metrics format (kubelet 1.35,
Prometheus text with millisecond timestamps): cumulative CPU in core-seconds and the working set per
container, the container's start time (metrics-server drops a rate across a restart), and the node's
totals. Each sample carries the time its value was taken, as the kubelet's cAdvisor stats do.

While its kubelet is stopped (the node's NIC failed) the endpoint closes every connection unanswered.
Limits: no authentication or authorization of the scraper (metrics-server runs with
--kubelet-insecure-tls and the admin's identity here), no `/stats/summary`, no pod-level `pod_*` series
beyond their sums.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from testbed.kube.pki import CertFiles


@dataclass(frozen=True)
class ContainerUsage:
    """One running container's counters at the moment `at` (Unix seconds)."""

    namespace: str
    pod: str
    container: str
    cpu_seconds: float
    memory_bytes: float
    started: float
    at: float


HEADER = {
    "container_cpu_usage_seconds_total": (
        "counter", "[STABLE] Cumulative cpu time consumed by the container in core-seconds"),
    "container_memory_working_set_bytes": ("gauge", "[STABLE] Current working set of the container in bytes"),
    "container_start_time_seconds": ("gauge", "[STABLE] Start time of the container since unix epoch in seconds"),
    "node_cpu_usage_seconds_total": ("counter", "[STABLE] Cumulative cpu time consumed by the node in core-seconds"),
    "node_memory_working_set_bytes": ("gauge", "[STABLE] Current working set of the node in bytes"),
    "pod_cpu_usage_seconds_total": ("counter", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds"),
    "pod_memory_working_set_bytes": ("gauge", "[STABLE] Current working set of the pod in bytes"),
    "resource_scrape_error": ("gauge", "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise"),
}
NODE_BASE_CPU, NODE_BASE_MEMORY = 1.0, 512 * 1024 * 1024  # the system's own use beside the pods'


def render(usages: list[ContainerUsage], node_started: float, now: float) -> str:
    """The text of one scrape."""
    out: dict[str, list[str]] = {name: [] for name in HEADER}
    pods: dict[tuple[str, str], list[ContainerUsage]] = {}
    for u in sorted(usages, key=lambda u: (u.namespace, u.pod, u.container)):
        labels = f'container="{u.container}",namespace="{u.namespace}",pod="{u.pod}"'
        ms = int(u.at * 1000)
        out["container_cpu_usage_seconds_total"].append(f"{{{labels}}} {u.cpu_seconds:.9f} {ms}")
        out["container_memory_working_set_bytes"].append(f"{{{labels}}} {u.memory_bytes:.0f} {ms}")
        out["container_start_time_seconds"].append(f"{{{labels}}} {u.started:.9f} {ms}")
        pods.setdefault((u.namespace, u.pod), []).append(u)
    for (namespace, pod), items in pods.items():
        labels = f'namespace="{namespace}",pod="{pod}"'
        ms = int(max(u.at for u in items) * 1000)
        out["pod_cpu_usage_seconds_total"].append(f"{{{labels}}} {sum(u.cpu_seconds for u in items):.9f} {ms}")
        out["pod_memory_working_set_bytes"].append(f"{{{labels}}} {sum(u.memory_bytes for u in items):.0f} {ms}")
    ms = int(now * 1000)
    node_cpu = NODE_BASE_CPU * (now - node_started) + sum(u.cpu_seconds for u in usages) + 1.0
    out["node_cpu_usage_seconds_total"].append(f" {node_cpu:.9f} {ms}")
    out["node_memory_working_set_bytes"].append(f" {NODE_BASE_MEMORY + sum(u.memory_bytes for u in usages):.0f} {ms}")
    out["resource_scrape_error"].append(" 0")
    lines = []
    for name, (kind, help_text) in HEADER.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f"{name}{sample}" for sample in out[name]]
    return "\n".join(lines) + "\n"


class ResourceMetricsEndpoint:
    """HTTPS on ip:port (a free port when 0), serving `scrape()`'s text at /metrics/resource while `serving`."""

    def __init__(self, ip: str, cert: CertFiles, scrape: Callable[[], str]) -> None:
        self.scrape = scrape
        self.serving = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one_request(self) -> None:
                if not endpoint.serving.is_set():  # the node is gone: no answer at all
                    self.close_connection = True
                    return
                super().handle_one_request()

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] == "/metrics/resource":
                    body, status, kind = endpoint.scrape().encode(), 200, "text/plain; version=0.0.4"
                else:
                    body, status, kind = b"404 page not found\n", 404, "text/plain; charset=utf-8"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer((ip, 0), Handler, bind_and_activate=False)
        self.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.server_bind()
        self.server.server_activate()
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert.cert, cert.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"kubelet-metrics-{ip}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.serving.clear()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
