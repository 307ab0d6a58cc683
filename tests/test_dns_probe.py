"""DNS probe against real DNS servers on loopback: dnsmasq (answers inside and outside the expected
CIDRs, NXDOMAIN, NODATA), a dnspython responder answering SERVFAIL, and a UDP port that never answers."""

from __future__ import annotations

import time
from typing import Any

import dns.rcode
import pytest

from testbed.edge import dns_responder, dnsmasq, silent_udp

from exporter.config import Config, ConfigError, DnsLookup, DnsResolver, load_config
from exporter.engine import Engine, ProbeState
from exporter.probes import build_probes
from exporter.probes.deps import Dependencies
from exporter.probes.dns import RESULTS, DnsProbe

PUBLIC = "myhoneydue.test"
SERVICE = "api.honeydue.svc.cluster.local"


async def run(name: str, port: int, protocol: str = "udp", **kw: Any) -> ProbeState:
    lookup = DnsLookup(name=name, resolvers=["r"], **({"interval": 5, "timeout": 1.0} | kw))
    probe = DnsProbe(lookup, "r", DnsResolver(address="127.0.0.1", port=port, protocol=protocol),  # type: ignore[arg-type]
                     Dependencies())
    engine = Engine([probe])
    state = await engine.run_once(probe)
    await engine.stop()
    return state


def results(state: ProbeState, name: str) -> dict[str, float | None]:
    return {r: state.snapshot.value("honeydue_dns_result", domain=name, resolver="r", result=r) for r in RESULTS}


def only(result: str) -> dict[str, float]:
    return {r: (1.0 if r == result else 0.0) for r in RESULTS}


@pytest.fixture(scope="module")
def server() -> Any:
    with dnsmasq(f"--address=/{PUBLIC}/104.16.1.1", "--address=/hijacked.test/203.0.113.7",
                 f"--host-record={SERVICE},10.43.12.34", "--local=/cluster.local/", "--address=/nxdomain.test/") as srv:
        yield srv


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_answer_inside_expected_cidrs(server: Any, protocol: str) -> None:
    state = await run(PUBLIC, server.port, protocol, expected_cidrs=["104.16.0.0/13", "172.64.0.0/13"])
    labels = {"domain": PUBLIC, "resolver": "r", "role": "public"}
    assert state.status == "ok"
    assert state.snapshot.value("honeydue_dns_up", **labels) == 1
    assert results(state, PUBLIC) == only("noerror")
    assert state.snapshot.value("honeydue_dns_answers", **labels) == 1
    assert state.snapshot.value("honeydue_dns_unexpected_answers", **labels) == 0
    assert 0 < (state.snapshot.value("honeydue_dns_lookup_duration_seconds", **labels) or 0) < 1


async def test_answer_outside_expected_cidrs_is_counted(server: Any) -> None:
    state = await run("hijacked.test", server.port, expected_cidrs=["104.16.0.0/13"])
    assert state.snapshot.value("honeydue_dns_up", domain="hijacked.test") == 1  # it resolves...
    assert state.snapshot.value("honeydue_dns_unexpected_answers", domain="hijacked.test") == 1  # ...to the wrong place


async def test_grey_clouded_answers_are_the_origin_not_a_hijack(server: Any) -> None:
    """Chapter 16's fix for a Cloudflare outage points the records at the node IPs: counted as origin answers,
    not as unexpected ones (DnsAnswerOutsideExpectedRanges pages on those); any other address still is."""
    node_ip = await run("hijacked.test", server.port, expected_cidrs=["104.16.0.0/13"], origin_cidrs=["203.0.113.7/32"])
    labels = {"domain": "hijacked.test", "resolver": "r", "role": "public"}
    assert node_ip.snapshot.value("honeydue_dns_origin_answers", **labels) == 1
    assert node_ip.snapshot.value("honeydue_dns_unexpected_answers", **labels) == 0
    elsewhere = await run("hijacked.test", server.port, expected_cidrs=["104.16.0.0/13"], origin_cidrs=["198.51.100.0/24"])
    assert elsewhere.snapshot.value("honeydue_dns_origin_answers", **labels) == 0
    assert elsewhere.snapshot.value("honeydue_dns_unexpected_answers", **labels) == 1
    proxied = await run(PUBLIC, server.port, expected_cidrs=["104.16.0.0/13"], origin_cidrs=["203.0.113.7/32"])
    assert proxied.snapshot.value("honeydue_dns_origin_answers", domain=PUBLIC, resolver="r", role="public") == 0


async def test_no_cidrs_configured_means_nothing_unexpected(server: Any) -> None:
    state = await run("hijacked.test", server.port)
    assert state.snapshot.value("honeydue_dns_unexpected_answers", domain="hijacked.test") == 0


async def test_cluster_service_name(server: Any) -> None:
    state = await run(SERVICE, server.port, role="cluster", expected_cidrs=["10.43.0.0/16"])
    assert state.snapshot.value("honeydue_dns_up", domain=SERVICE, role="cluster") == 1
    assert state.snapshot.value("honeydue_dns_unexpected_answers", domain=SERVICE) == 0


async def test_nxdomain(server: Any) -> None:
    state = await run("nxdomain.test", server.port)
    assert state.status == "ok"  # an answer, even a negative one, is a value
    assert results(state, "nxdomain.test") == only("nxdomain")
    assert state.snapshot.value("honeydue_dns_up", domain="nxdomain.test") == 0


async def test_nodata_for_missing_record_type(server: Any) -> None:
    state = await run(SERVICE, server.port, record_type="AAAA")  # a local name with an IPv4 address only
    assert results(state, SERVICE) == only("nodata")
    assert state.snapshot.value("honeydue_dns_answers", domain=SERVICE) == 0


@pytest.mark.parametrize(("rcode", "result"), [(dns.rcode.SERVFAIL, "servfail"), (dns.rcode.REFUSED, "refused")])
async def test_error_rcodes(rcode: dns.rcode.Rcode, result: str) -> None:
    async with dns_responder(rcode) as port:
        state = await run(PUBLIC, port)
    assert state.status == "ok"
    assert results(state, PUBLIC) == only(result)
    assert state.snapshot.value("honeydue_dns_up", domain=PUBLIC) == 0


async def test_dnsmasq_with_dead_upstream_answers_servfail_or_refused() -> None:
    # A forwarder whose upstream is gone: dnsmasq itself says so (REFUSED on 2.90, SERVFAIL on others).
    with silent_udp() as dead, dnsmasq(f"--server=127.0.0.1#{dead}") as forwarder:
        state = await run(PUBLIC, forwarder.port, timeout=4.0, interval=10)
    assert state.snapshot.value("honeydue_dns_up", domain=PUBLIC) == 0
    got = {r for r, v in results(state, PUBLIC).items() if v == 1}
    assert got <= {"servfail", "refused", "timeout"} and len(got) == 1


async def test_silent_resolver_times_out() -> None:
    with silent_udp() as port:
        started = time.monotonic()
        state = await run(PUBLIC, port, timeout=0.7)
        elapsed = time.monotonic() - started
    assert state.status == "failing" and state.reason == "timeout"
    assert results(state, PUBLIC) == only("timeout")
    assert state.snapshot.value("honeydue_dns_up", domain=PUBLIC) == 0
    assert 0.7 <= elapsed < 0.7 + 0.5


def test_build_one_probe_per_name_and_resolver() -> None:
    config = Config(dns={  # type: ignore[arg-type]
        "resolvers": {"cloudflare": {"address": "127.0.0.1"}, "quad9": {"address": "127.0.0.2"}},
        "lookups": [{"name": PUBLIC, "resolvers": ["cloudflare", "quad9"]}],
    })
    names = sorted(p.name for p in build_probes(config) if p.name.startswith("dns_"))
    assert names == [f"dns_cloudflare_{PUBLIC}_a", f"dns_quad9_{PUBLIC}_a"]


def test_config_errors(tmp_path: Any) -> None:
    path = tmp_path / "c.yml"
    for text in (
        "dns: {lookups: [{name: a.test, resolvers: [nope]}]}",
        "dns: {resolvers: {r: {address: not-an-ip}}}",
        "dns: {resolvers: {r: {address: 127.0.0.1}}, lookups: [{name: a.test, resolvers: [r], expected_cidrs: [x]}]}",
        "dns: {resolvers: {Bad: {address: 127.0.0.1}}}",
    ):
        path.write_text(text)
        with pytest.raises(ConfigError):
            load_config(path)
