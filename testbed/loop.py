"""An asyncio loop on a daemon thread, so synchronous code (the drill, a test polling /metrics, a test blocked on
a subprocess) can keep servers answering while it does something else."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from aiohttp import web

from testbed.procs import free_port

T = TypeVar("T")
BIND_ATTEMPTS = 5


class LoopThread:
    """A private event loop on a daemon thread; `run(coro)` executes a coroutine there and waits for it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Cancel what still runs there (connection handlers), stop the loop and join the thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self.run(_cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


def stop_served(thread: LoopThread | None, runner: web.AppRunner | None) -> None:
    """Stop an app `serve` started on `thread`: its runner first (open connections closed), then the loop."""
    if thread is None:
        return
    if runner is not None:
        thread.run(runner.cleanup())
    thread.close()


async def _cancel_all() -> None:
    """Cancel and reap every task, so none is destroyed pending with the loop."""
    await asyncio.sleep(0)  # let just-accepted handlers reach their try block (a task cancelled unstarted is logged)
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def serve(app: web.Application, port: int, host: str = "127.0.0.1", **site: Any) -> web.AppRunner:
    """An aiohttp app on host:`port` (site: e.g. ssl_context); cleanup() the runner to stop it."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, **site).start()
    except BaseException:
        await runner.cleanup()  # a port already taken leaves no half-set-up runner behind
        raise
    return runner


async def bind_on_one_port(
    hosts: Sequence[str], bind: Callable[[str, int], Awaitable[T]], release: Callable[[T], Awaitable[None]]
) -> tuple[int, list[T]]:
    """`bind(host, port)` on every host at one port, like a node service on each node's InternalIP.

    The port is free on every host when picked, but another process (a fake kubelet's pod, on an
    ephemeral port) can take it on one of them before the bind: then what was bound is released and a
    new port is picked.
    """
    for attempt in range(BIND_ATTEMPTS):
        port, bound = free_port(*hosts), []
        try:
            for host in hosts:
                bound.append(await bind(host, port))
        except OSError as exc:
            for item in bound:
                await release(item)
            if exc.errno != errno.EADDRINUSE or attempt == BIND_ATTEMPTS - 1:
                raise
            continue
        return port, bound
    raise AssertionError("unreachable")
