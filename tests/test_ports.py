"""The test bed's port picking, where CI has lost runs to EADDRINUSE: a port the kernel gives out on
127.0.0.1 may be taken on 127.0.0.2-4, where the Kubernetes fakes serve pods on ephemeral ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from aiohttp import web

from testbed import loop
from testbed.procs import free_port

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


@pytest.fixture
def taken() -> Iterator[int]:
    """A port listened on at 127.0.0.3 only: free on 127.0.0.2 and .4, taken on .3."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.3", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_free_port_on_every_host_avoids_a_port_taken_on_one(taken: int, monkeypatch: pytest.MonkeyPatch) -> None:
    picks = iter([taken, taken])

    class Socket(socket.socket):
        def bind(self, address: tuple[str, int]) -> None:  # type: ignore[override]
            host, port = address
            super().bind((host, next(picks, 0) if port == 0 else port))  # the kernel "hands out" the taken port first

    monkeypatch.setattr("testbed.procs.socket.socket", Socket)
    port = free_port(*HOSTS)
    assert port != taken
    for host in HOSTS:
        with socket.socket() as sock:
            sock.bind((host, port))


async def test_bind_on_one_port_picks_again_and_releases_what_it_bound(
    taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([taken])
    monkeypatch.setattr(loop, "free_port", lambda *hosts: next(picks, None) or free_port(*hosts))  # the race, lost once
    runner = web.AppRunner(web.Application())
    await runner.setup()
    started: list[tuple[str, int]] = []
    stopped: list[tuple[str, int]] = []

    async def bind(host: str, port: int) -> web.TCPSite:
        site = web.TCPSite(runner, host, port)
        await site.start()
        started.append((host, port))
        return site

    async def release(site: web.TCPSite) -> None:
        stopped.append((site._host or "", site._port))
        await site.stop()

    try:
        port, sites = await loop.bind_on_one_port(HOSTS, bind, release)
        assert port != taken and len(sites) == 3
        assert started[0] == ("127.0.0.2", taken) and stopped == [("127.0.0.2", taken)]  # .2 bound, .3 refused
        assert started[1:] == [(host, port) for host in HOSTS]
    finally:
        await runner.cleanup()
