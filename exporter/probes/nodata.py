"""'No data' detection: does every metric the shipped rules and dashboards use have series in the obs TSDB?

Feeds 'Grafana dashboard shows "no data"'. The metric names come from the catalog's alert
expressions and panel queries (the same source the rule files and dashboard are rendered from), so
the label set is bounded by the catalog. One instant query per run asks the TSDB for the series
count of all of them at once: `count by (__name__) ({__name__=~"a|b|..."})`.
"""

from __future__ import annotations

import json
import re

import aiohttp

from exporter.catalog import CATALOG
from exporter.config import Config, NoDataConfig
from exporter.engine import Probe
from exporter.errors import MalformedReply
from exporter.probes.deps import Dependencies
from exporter.probes.vmagent import read_bounded
from exporter.promql import metric_names
from exporter.samples import Samples, gauge

UP = gauge("honeydue_nodata_query_up", "Whether the obs TSDB answered the no-data query (1) or not (0).")
MISSING = gauge(
    "honeydue_nodata_metric_missing",
    "1 when a metric used by the shipped rules or dashboards has no series in the obs TSDB, else 0.",
    "metric",
)
MISSING_COUNT = gauge("honeydue_nodata_missing_metrics", "How many checked metrics have no series in the obs TSDB.")
CHECKED = gauge("honeydue_nodata_checked_metrics", "How many metric names the no-data check asks about.")

# Series that exist only while something is wrong: absence is normal.
SPARSE = frozenset({
    "honeydue_probe_error_info",
    "honeydue_tcp_failure_info",
    "ALERTS",
    "ALERTS_FOR_STATE",
})

def catalog_metrics() -> list[str]:
    """Every metric name used by an alert or a panel of the catalog, sorted."""
    names: set[str] = set()
    for entry in CATALOG:
        for alert in entry.alerts:
            names |= metric_names(alert.expr)
        for panel in entry.panels:
            for query in panel.queries:
                names |= metric_names(query.expr)
    return sorted(names - SPARSE)


def series_query(names: list[str]) -> str:
    alternatives = "|".join(re.escape(name) for name in names)
    return f'count by (__name__) ({{__name__=~"{alternatives}"}})'


class NoDataProbe(Probe):
    """One instant query per run; every checked metric is exported as missing (1) or present (0)."""

    family = kind = "nodata"

    def __init__(self, cfg: NoDataConfig, names: list[str] | None = None) -> None:
        assert cfg.query_url is not None
        super().__init__("nodata", cfg.interval, cfg.timeout)
        self._url = cfg.query_url.rstrip("/") + "/api/v1/query"
        self._max_bytes = cfg.max_bytes
        self._token = cfg.bearer_token
        ignore = set(cfg.ignore)
        self.names = [n for n in (names if names is not None else catalog_metrics()) if n not in ignore]

    async def present(self) -> dict[str, float]:
        """metric name -> series count, for the checked names that have series now."""
        headers = {"Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(self._url, data={"query": series_query(self.names)}, headers=headers) as response,
        ):
            response.raise_for_status()
            body = await read_bounded(response, self._max_bytes)
        return _parse(body)

    async def collect(self) -> Samples:
        counts = await self.present() if self.names else {}
        s = Samples()
        s.add(UP, 1)
        s.add(CHECKED, len(self.names))
        missing = [name for name in self.names if counts.get(name, 0) <= 0]
        s.add(MISSING_COUNT, len(missing))
        for name in self.names:
            s.add(MISSING, 1 if name in missing else 0, metric=name)
        return s

    def failed(self, reason: str) -> Samples:
        s = Samples()
        s.add(UP, 0)
        s.add(CHECKED, len(self.names))
        return s


class QueryError(MalformedReply):
    """The TSDB answered, but not with a successful vector result (reason `protocol`)."""


_ERROR_TYPE = re.compile(r"^[a-z_]{1,32}$")


def _parse(body: bytes) -> dict[str, float]:
    try:
        reply = json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        raise QueryError("reply is not JSON") from None
    if not isinstance(reply, dict) or reply.get("status") != "success":
        error_type = reply.get("errorType", "unknown") if isinstance(reply, dict) else "unknown"
        # errorType is server text: only a short word of the documented shape reaches the log.
        raise QueryError(f"query failed: {error_type if _ERROR_TYPE.match(str(error_type)) else 'unknown'}")
    data = reply.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        raise QueryError("unexpected result type")
    counts: dict[str, float] = {}
    try:
        for item in data["result"]:
            name = (item.get("metric") or {}).get("__name__")
            if isinstance(name, str):
                counts[name] = float(item["value"][1])
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):
        raise QueryError("unexpected sample shape") from None
    return counts


def build(config: Config, deps: Dependencies) -> list[Probe]:
    return [NoDataProbe(config.nodata)] if config.nodata.query_url else []
