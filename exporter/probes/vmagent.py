"""vmagent's own remote-write health, read from its /metrics.

Feeds "vmagent can't reach obs.88oakapps.com": the chapter tells on-call to grep vmagent's /metrics
for dropped packets/samples and persistent-queue drops; this probe exports those facts (plus pending
bytes, errors and retries) so the trend is on the dashboard before the 512 MB buffer runs out.
Values are summed over vmagent's `url` and `path` labels: a remote-write URL can carry credentials,
so it never becomes a label here (vmagent masks it anyway unless -remoteWrite.showURL is set).

Names checked against vmagent 1.79.5 (Debian bookworm). `vmagent_remotewrite_samples_dropped_total`
only exists in newer vmagent releases; its honeydue_ counterpart is exported only when present.
"""

from __future__ import annotations

import re

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import Config, VmagentConfig
from exporter.engine import Probe
from exporter.errors import MalformedReply
from exporter.probes.deps import Dependencies
from exporter.samples import MetricSpec, Samples, counter, gauge

UP = gauge("honeydue_vmagent_up", "Whether vmagent's /metrics could be read and parsed (1) or not (0).")
PENDING = gauge(
    "honeydue_vmagent_remotewrite_pending_bytes",
    "Bytes waiting in vmagent's remote-write queues (vmagent_remotewrite_pending_data_bytes).",
)
QUEUE_PENDING = gauge(
    "honeydue_vmagent_persistentqueue_pending_bytes",
    "Bytes in vmagent's on-disk persistent queues (vm_persistentqueue_bytes_pending).",
)
REQUESTS = counter(
    "honeydue_vmagent_remotewrite_requests_total",
    "Remote-write requests by response class (vmagent_remotewrite_requests_total).",
    "status_class",
)

# vmagent's name -> ours. Counters are summed over every url/path label set.
MAPPED: dict[str, MetricSpec] = {
    "vmagent_remotewrite_pending_data_bytes": PENDING,
    "vm_persistentqueue_bytes_pending": QUEUE_PENDING,
    "vmagent_remotewrite_packets_dropped_total": counter(
        "honeydue_vmagent_remotewrite_packets_dropped_total",
        "Remote-write blocks vmagent dropped (vmagent_remotewrite_packets_dropped_total).",
    ),
    "vmagent_remotewrite_samples_dropped_total": counter(
        "honeydue_vmagent_remotewrite_samples_dropped_total",
        "Samples vmagent dropped before remote write (newer vmagent only; absent on 1.79).",
    ),
    "vm_persistentqueue_blocks_dropped_total": counter(
        "honeydue_vmagent_persistentqueue_blocks_dropped_total",
        "Blocks dropped from vmagent's persistent queue because it was full (vm_persistentqueue_blocks_dropped_total).",
    ),
    "vm_persistentqueue_bytes_dropped_total": counter(
        "honeydue_vmagent_persistentqueue_dropped_bytes_total",
        "Bytes dropped from vmagent's persistent queue because it was full (vm_persistentqueue_bytes_dropped_total).",
    ),
    "vmagent_remotewrite_errors_total": counter(
        "honeydue_vmagent_remotewrite_errors_total",
        "Failed remote-write attempts (vmagent_remotewrite_errors_total).",
    ),
    "vmagent_remotewrite_retries_count_total": counter(
        "honeydue_vmagent_remotewrite_retries_total",
        "Remote-write retries (vmagent_remotewrite_retries_count_total).",
    ),
    "vmagent_remotewrite_dial_errors_total": counter(
        "honeydue_vmagent_remotewrite_dial_errors_total",
        "Failed connection attempts to the remote-write endpoint (vmagent_remotewrite_dial_errors_total).",
    ),
    "vmagent_remotewrite_blocks_sent_total": counter(
        "honeydue_vmagent_remotewrite_blocks_sent_total",
        "Blocks the remote-write endpoint accepted (vmagent_remotewrite_blocks_sent_total).",
    ),
}
_STATUS_CLASS = re.compile(r"^[1-5]XX$")
KNOWN_CLASSES = ("2XX", "4XX", "5XX")  # what a remote-write endpoint answers (vmagent's status_code values)


class BodyTooLarge(MalformedReply):
    """The /metrics body exceeded the configured limit: reading on would cost unbounded memory."""


async def read_bounded(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The response body, or BodyTooLarge as soon as it passes `max_bytes`."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(f"body larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def summarize(text: str) -> Samples:
    """vmagent exposition text -> our aggregated samples (only the metrics vmagent really has)."""
    try:
        return _summarize(text)
    except (ValueError, TypeError, IndexError, KeyError) as exc:  # the parser's errors on a malformed line
        raise MalformedReply(f"not a Prometheus exposition ({type(exc).__name__})") from None


def _summarize(text: str) -> Samples:
    sums: dict[str, float] = {}
    requests: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in MAPPED:
                sums[sample.name] = sums.get(sample.name, 0.0) + float(sample.value)
            elif sample.name == "vmagent_remotewrite_requests_total":
                code = sample.labels.get("status_code", "")
                klass = code if _STATUS_CLASS.match(code) else "other"
                requests[klass] = requests.get(klass, 0.0) + float(sample.value)
    s = Samples()
    s.add(UP, 1)
    for source, value in sums.items():
        s.add(MAPPED[source], value)
    for klass in KNOWN_CLASSES:  # from 0 before vmagent's first answer of the class: rate() sees the first one
        requests.setdefault(klass, 0.0)
    for klass, value in sorted(requests.items()):
        s.add(REQUESTS, value, status_class=klass)
    return s


class VmagentProbe(Probe):
    """GET vmagent's /metrics (fresh connection, bounded body) and export its remote-write health."""

    family = kind = "vmagent"

    def __init__(self, cfg: VmagentConfig) -> None:
        assert cfg.url is not None
        super().__init__("vmagent", cfg.interval, cfg.timeout)
        self._url = cfg.url
        self._max_bytes = cfg.max_bytes

    async def collect(self) -> Samples:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self._url, headers={"Accept": "text/plain"}) as response,
        ):
            response.raise_for_status()
            body = await read_bounded(response, self._max_bytes)
        return summarize(body.decode("utf-8", errors="replace"))

    def failed(self, reason: str) -> Samples:
        return Samples.of(UP, 0)


def build(config: Config, deps: Dependencies) -> list[Probe]:
    return [VmagentProbe(config.vmagent)] if config.vmagent.url else []
