"""DNS probes: one configured name asked of one configured resolver per probe.

Feeds "CoreDNS down" (a Service name through the cluster DNS server), "Cloudflare DNS failure"
(public names through chosen resolvers: SERVFAIL, NXDOMAIN, timeout) and "DNS hijacking" (answers
outside the expected CIDRs). The query goes straight to the resolver's address with dnspython
(no system resolver or cache in between), with recursion desired, falling back to TCP when the UDP
answer is truncated. The outcome is a bounded state set, `honeydue_dns_result{result}`: an answer
with an error code is a value, only silence (timeout) or a transport error fails the run.

The UDP socket is connected to the resolver, so an ICMP port-unreachable (nothing listens: a dead
CoreDNS pod) fails the run at once as `refused` instead of waiting out the timeout like a blackhole.
A reply that is not a well-formed DNS answer to our question fails the run as `protocol`; replies
are bounded by the protocol itself (64 KiB per UDP datagram or TCP message).
"""

from __future__ import annotations

import ipaddress
import socket
import time

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.rcode
import dns.rdatatype

from exporter.config import Config, DnsLookup, DnsResolver
from exporter.engine import Probe
from exporter.errors import MalformedReply
from exporter.probes.deps import Dependencies
from exporter.samples import Samples, gauge

# record_type tells the A and AAAA lookups of one name apart (the same name and resolver otherwise).
LABELS = ("domain", "resolver", "role", "record_type")
# noerror = NOERROR with at least one address; nodata = NOERROR without one.
RESULTS = ("noerror", "nodata", "nxdomain", "servfail", "refused", "other_rcode", "timeout", "error")

UP = gauge("honeydue_dns_up", "Whether the resolver answered NOERROR with at least one address.", *LABELS)
RESULT = gauge(
    "honeydue_dns_result",
    "Outcome of the last lookup, one series per result (1 = this one): noerror, nodata, nxdomain, servfail, "
    "refused, other_rcode, timeout, error.",
    *LABELS,
    "result",
)
SECONDS = gauge("honeydue_dns_lookup_duration_seconds", "Seconds the resolver took to answer.", *LABELS)
ANSWERS = gauge("honeydue_dns_answers", "Addresses in the last answer.", *LABELS)
UNEXPECTED = gauge(
    "honeydue_dns_unexpected_answers",
    "Addresses in the last answer outside the expected CIDRs and the origin's (0 when no CIDRs are configured).",
    *LABELS,
)
ORIGIN = gauge(
    "honeydue_dns_origin_answers",
    "Addresses in the last answer that are the origin's own (origin_cidrs): the record is not proxied.",
    *LABELS,
)

_RCODE_RESULT = {
    dns.rcode.NXDOMAIN: "nxdomain",
    dns.rcode.SERVFAIL: "servfail",
    dns.rcode.REFUSED: "refused",
}


class DnsProbe(Probe):
    """One (name, resolver) pair."""

    family = kind = "dns"

    def __init__(self, lookup: DnsLookup, resolver_name: str, resolver: DnsResolver, deps: Dependencies) -> None:
        super().__init__(f"dns_{resolver_name}_{lookup.name}_{lookup.record_type.lower()}", lookup.interval, lookup.timeout)
        self._lookup = lookup
        self._resolver = resolver
        self._deps = deps
        self._labels = {"domain": lookup.name, "resolver": resolver_name, "role": lookup.role,
                        "record_type": lookup.record_type}
        self._address = str(resolver.address)  # dnspython takes the text form
        self._networks = lookup.expected_cidrs
        self._origin = lookup.origin_cidrs

    async def collect(self) -> Samples:
        lookup = self._lookup
        query = dns.message.make_query(lookup.name, dns.rdatatype.from_text(lookup.record_type))
        query.flags |= dns.flags.RD
        started = time.monotonic()
        try:
            async with self._deps.throttle("dns"):
                answer = await self._ask(query)
        except dns.exception.Timeout:
            raise
        except dns.exception.DNSException as exc:  # FormError, BadLabelType, UnexpectedSource, ...
            raise MalformedReply(f"not a DNS answer to the query ({type(exc).__name__})") from exc
        elapsed = time.monotonic() - started
        wanted = dns.rdatatype.from_text(lookup.record_type)
        addresses = [
            ipaddress.ip_address(rdata.address)
            for rrset in answer.answer
            if rrset.rdtype == wanted
            for rdata in rrset
        ]
        rcode = answer.rcode()
        if rcode == dns.rcode.NOERROR:
            result = "noerror" if addresses else "nodata"
        else:
            result = _RCODE_RESULT.get(rcode, "other_rcode")
        # Grey-clouded records (chapter 16 "CF global outage": the operator turns the proxy off) answer with the
        # origin's own addresses: not a hijack, and told apart so the hijack alert does not page for the fix.
        origin = [a for a in addresses if any(a in net for net in self._origin)]
        unexpected = [a for a in addresses if self._networks and a not in origin
                      and not any(a in net for net in self._networks)]
        s = self._result(result)
        s.add(SECONDS, elapsed, **self._labels)
        s.add(ANSWERS, len(addresses), **self._labels)
        s.add(UNEXPECTED, len(unexpected), **self._labels)
        s.add(ORIGIN, len(origin), **self._labels)
        return s

    async def _ask(self, query: dns.message.Message) -> dns.message.Message:
        resolver = self._resolver
        if resolver.protocol == "tcp":
            return await dns.asyncquery.tcp(query, self._address, timeout=self.timeout, port=resolver.port)
        backend = dns.asyncbackend.get_backend("asyncio")
        family = dns.inet.af_for_address(self._address)
        udp = await backend.make_socket(  # type: ignore[no-untyped-call]
            family, socket.SOCK_DGRAM, 0, None, (self._address, resolver.port)
        )
        async with udp:
            answer, _ = await dns.asyncquery.udp_with_fallback(
                query, self._address, timeout=self.timeout, port=resolver.port, udp_sock=udp
            )
        return answer

    def _result(self, result: str) -> Samples:
        s = Samples()
        s.add(UP, 1.0 if result == "noerror" else 0.0, **self._labels)
        for each in RESULTS:
            s.add(RESULT, 1.0 if each == result else 0.0, result=each, **self._labels)
        return s

    def failed(self, reason: str) -> Samples:
        return self._result("timeout" if reason == "timeout" else "error")


def build(config: Config, deps: Dependencies) -> list[Probe]:
    return [
        DnsProbe(lookup, name, config.dns.resolvers[name], deps)
        for lookup in config.dns.lookups
        for name in lookup.resolvers
    ]
