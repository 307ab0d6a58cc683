"""Which failure modes an incident must page, derived from its faults and where things ran.

The runbook a page must link is the injected fault's own failure mode, or the consequence the chapter has
a section for (Redis down with its node, CoreDNS gone with its node): never a field an incident's author
fills in. `pages_due` walks the states an incident went through (tests/incidents/cluster.py) and returns,
per failure mode, the second from which a page is required: the fault (or its user-facing consequence) has
been visible to its witnesses for REQUIRED_AFTER seconds, the budget of a user-facing page. A failure mode
may also page after a shorter or unseen spell (`allowed`), but nothing else may.

Visible: what the exporter reports reaches the obs box only while vmagent delivers and reaches the exporter,
and what it reaches by name only while its names resolve. A fault hidden that way (CoreDNS on the node that
also held vmagent, Redis down while the exporter's DNS fails) is not required to page while hidden: the
obs side's silence alerts and the DNS page speak for that time (docs/witnesses.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tests.incidents import cluster
from tests.incidents.cluster import NODES, State

REQUIRED_AFTER = 300  # a user-facing outage is paged within 5 minutes (docs/time-to-page.md)
MAINTENANCE_WINDOW = 1800  # Redis may be down this long while its node is drained for maintenance


def _exporter_sees(s: State, by_name: bool = False) -> bool:
    """The exporter's report reaches the obs box (and, `by_name`, its names resolve)."""
    here = s.exporter_node
    seen = cluster.vmagent_writes(s) and cluster.up(s, here) and cluster.overlay(s, s.vmagent_node, here)
    return seen and (not by_name or cluster.dns(s, here))


def _conditions() -> list[tuple[str, Callable[[State], bool]]]:
    """(failure mode, "the state shows it") for every fault that pages; first match per kind wins below."""

    def nodes_down(s: State) -> int:
        return len([n for n in NODES if n in s.down])

    def network_fault(s: State) -> bool:
        return bool(s.flannel_broken or s.kubeproxy_broken) or nodes_down(s) >= 2

    return [
        ("all-three-nodes-fail", lambda s: nodes_down(s) == 3),
        ("two-nodes-fail", lambda s: nodes_down(s) == 2 or (s.lists == "fail" and nodes_down(s) < 2)),
        ("flannel-broken", lambda s: bool(s.flannel_broken)),
        ("kube-proxy-broken", lambda s: bool(s.kubeproxy_broken)),
        ("ufw-blocks-traffic", lambda s: any(s.ufw_block.values())),
        # CoreDNS down: its pods crash, it cannot resolve outside names, or its node died and it waits to be
        # rescheduled (the other faults explain the DNS failures they cause themselves)
        ("coredns-down", lambda s: (not s.coredns or not s.coredns_upstream
                                    or not cluster.up(s, s.coredns_node)) and not network_fault(s)
         and _exporter_sees(s)),
        # Redis down: its process, or its node gone (it cannot move with its volume), but not a drain for
        # planned maintenance (that is bounded: see `pages_due`)
        ("redis-pod-dies", lambda s: (not s.redis or not cluster.up(s, s.redis_node)) and not network_fault(s)
         and s.redis_node not in s.cordoned and _exporter_sees(s, by_name=True)),
        ("worker-stops-processing", lambda s: not s.worker and _exporter_sees(s, by_name=True)),
        ("neon-postgres-outage", lambda s: not s.pooler and not s.direct),
        ("neon-pooler-down-direct-up", lambda s: not s.pooler and s.direct),
        ("cf-global-outage", lambda s: not s.cf_global and not s.grey_clouded),
        ("api-pod-panics", lambda s: s.api == "crashloop"),
        ("api-deadlocks", lambda s: s.api == "deadlock"),
        ("worked-5-minutes-ago", lambda s: s.api == "down" or set(NODES) <= set(s.traefik_broken)),
        ("some-users-see-502", lambda s: bool(s.traefik_broken) and not set(NODES) <= set(s.traefik_broken)),
        ("dns-hijacking", lambda s: s.dns_outside > 0),
    ]


@dataclass
class Due:
    """Failure mode -> second from which its page is required; `allowed` may page at all."""

    required: dict[str, int]
    allowed: set[str]


def pages_due(states: Iterable[State], step: int) -> Due:
    conditions = _conditions()
    spells: dict[str, list[tuple[int, int]]] = {}  # mode -> [(start, end)] seconds while the condition held
    start: dict[str, int] = {}
    drained_redis_since: int | None = None
    last = 0
    oom_seen: int | None = None
    for k, s in enumerate(states):
        t = k * step
        last = t
        holding = {mode for mode, shows in conditions if shows(s)}
        # Redis down because its node is drained: planned, until the maintenance window is over
        if s.redis_node in s.cordoned and s.redis:
            drained_redis_since = t if drained_redis_since is None else drained_redis_since
            if t - drained_redis_since >= MAINTENANCE_WINDOW:
                holding.add("redis-pod-dies")
        else:
            drained_redis_since = None
        if oom_seen is not None and s.redis_oom_errors > oom_seen:  # refused writes: user-facing errors
            holding.add("redis-at-maxmemory")
        oom_seen = s.redis_oom_errors if oom_seen is None else max(oom_seen, s.redis_oom_errors)
        for mode in holding:
            start.setdefault(mode, t)
        for mode in list(start):
            if mode not in holding:
                spells.setdefault(mode, []).append((start.pop(mode), t))
    for mode, t0 in start.items():
        spells.setdefault(mode, []).append((t0, last + step))
    required: dict[str, int] = {}
    for mode, found in spells.items():
        for t0, t1 in found:
            if mode == "redis-at-maxmemory" or t1 - t0 >= REQUIRED_AFTER:
                required.setdefault(mode, t0)
    return Due(required, set(spells))
