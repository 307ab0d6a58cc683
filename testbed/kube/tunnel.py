"""The API servers' way to pods: an HTTP CONNECT proxy, as k3s tunnels them through its agents.

kube-apiserver is started with an egress selector for the `cluster` network pointing here (a unix
socket: with a plain http:// TCP proxy URL, which its config validation accepts, kube-apiserver
1.35.4 dereferences the missing TLS config and panics at start), so the
aggregator's requests to an aggregated API's pod (metrics-server's discovery) ask this proxy to
CONNECT to the pod's IP and port. Pod IPs are the fake kubelets' (10.42.<node>.<n>): a container that
really serves registers its pod IP and port with the runtime and listens on loopback; anything else
is refused, like a pod that is not running. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path

from testbed.kube.kubelet import Runtime
from testbed.loop import LoopThread


class Tunnel:
    """HTTP CONNECT proxy on a unix socket, routing pod addresses to where their container listens."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._dir = Path(tempfile.mkdtemp(prefix="hd-tunnel-"))  # short: socket paths are limited to 107 bytes
        self.socket = self._dir / "tunnel.sock"
        self._thread = LoopThread("kube-tunnel")
        self._server = self._thread.run(asyncio.start_unix_server(self._handle, str(self.socket)))

    def close(self) -> None:
        async def stop_listening() -> None:
            self._server.close()

        with contextlib.suppress(Exception):
            self._thread.run(stop_listening())
        self._thread.close()  # cancels the open connections' handlers
        shutil.rmtree(self._dir, ignore_errors=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            host, _, port = target.rpartition(":")
            route = self.runtime.route(host.strip("[]"), int(port)) if method == "CONNECT" else None
            if route is None:
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection(*route)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()
