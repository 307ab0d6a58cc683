"""What the metrics-server container serves, as far as the aggregator looks: its API discovery.

The fake kubelet starts it (on a free loopback port; the API servers reach it through tunnel.py at
the pod's IP and port) when it runs the metrics-server image and stops it when the container stops,
so the APIService
v1beta1.metrics.k8s.io is Available exactly while a real metrics-server pod would be serving; the
kube-aggregator's own availability check (service, endpoints, discovery) decides it. Only discovery
is served: nothing here reads kubelets' resource metrics, and nothing under test asks for them.
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from testbed.kube.pki import CertFiles

DISCOVERY = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "metrics.k8s.io/v1beta1",
    "resources": [
        {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
        {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]},
    ],
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/apis/metrics.k8s.io/v1beta1":
            body, status = json.dumps(DISCOVERY).encode(), 200
        elif path in ("/healthz", "/readyz", "/livez"):
            body, status = b"ok", 200
        else:
            body, status = b'{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}', 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


class MetricsServer:
    """The discovery endpoint on 127.0.0.1 with TLS, on its own thread; `close()` stops it."""

    def __init__(self, cert: CertFiles) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.address = ("127.0.0.1", int(self.server.server_address[1]))
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert.cert, cert.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="metrics-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
