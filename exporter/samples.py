"""Metric declarations and the sample sets probes return.

Each probe module declares its metrics once as `MetricSpec`s; the same declarations feed the
exposition, the README's metric table and the lint test that every metric a rule or panel uses
is one the exporter really emits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

Kind = Literal["gauge", "counter", "info"]
# Samples flattened, as a scraper sees them: {(sample name, labels): value} (Samples.flat, a parsed scrape).
Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]

_REGISTERED: dict[str, MetricSpec] = {}


@dataclass(frozen=True)
class MetricSpec:
    """One metric name: its type, help text and label names (in order)."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name} must end in _total")
        if self.kind == "info" and not self.name.endswith("_info"):
            raise ValueError(f"info metric {self.name} must end in _info")
        if self.kind == "gauge" and self.name.endswith(("_total", "_info")):
            raise ValueError(f"gauge {self.name} must not end in _total or _info")
        known = _REGISTERED.setdefault(self.name, self)
        if known != self:
            raise ValueError(f"metric {self.name} declared twice with different shapes")

    def family(self) -> Metric:
        if self.kind == "counter":
            return CounterMetricFamily(self.name.removesuffix("_total"), self.help, labels=self.labels)
        if self.kind == "info":
            return InfoMetricFamily(self.name.removesuffix("_info"), self.help, labels=self.labels)
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)


def gauge(name: str, help: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, "gauge", help, labels)


def counter(name: str, help: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, "counter", help, labels)


def info(name: str, help: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, "info", help, labels)


def declared_metrics() -> dict[str, MetricSpec]:
    """Every metric the exporter declares: the engine's and every probe module's (imported here)."""
    from exporter.probes import all_modules  # probe modules are otherwise imported only when enabled

    all_modules()
    return dict(_REGISTERED)


class Samples:
    """A probe's complete result for one run; published whole or not at all."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    @classmethod
    def of(cls, spec: MetricSpec, value: float = 1.0, **labels: str) -> Samples:
        """A set with one sample: what most probes publish when a run fails (their `up` at 0)."""
        samples = cls()
        samples.add(spec, value, **labels)
        return samples

    def add(self, spec: MetricSpec, value: float = 1.0, **labels: str) -> None:
        if set(labels) != set(spec.labels):
            raise ValueError(f"{spec.name} needs labels {spec.labels}, got {tuple(labels)}")
        family = self._families.get(spec.name)
        if family is None:
            family = self._families[spec.name] = spec.family()
        values = [str(labels[name]) for name in spec.labels]
        if spec.kind == "info":
            assert isinstance(family, InfoMetricFamily)
            family.add_metric(values, {})
        else:
            assert isinstance(family, GaugeMetricFamily | CounterMetricFamily)
            family.add_metric(values, float(value))

    def extend(self, other: Samples) -> None:
        for family in other.families():
            mine = self._families.get(family.name)
            if mine is None:
                self._families[family.name] = family
            else:
                mine.samples.extend(family.samples)

    def families(self) -> Iterator[Metric]:
        return iter(self._families.values())

    def series(self) -> int:
        """How many series (samples) the set holds."""
        return sum(len(family.samples) for family in self._families.values())

    def limit(self, most: int) -> int:
        """Keep at most `most` series, trimming the largest families first; return how many were dropped.

        Every family gets the same quota, the largest that fits, so small families (up, totals, per-node
        counts) stay whole while a per-pod or per-queue family is cut. A family keeps its first series:
        probes add them in a stable order (queues sorted, pods by name), so the same series survive from
        run to run and the TSDB sees no churn.
        """
        sizes = sorted(len(family.samples) for family in self._families.values())
        total = sum(sizes)
        if total <= most:
            return 0
        left, quota = most, 0
        for i, size in enumerate(sizes):
            share = left // (len(sizes) - i)
            if size > share:
                quota = share
                break
            left -= size
        for name, family in list(self._families.items()):
            del family.samples[quota:]
            if not family.samples:
                del self._families[name]
        return total - self.series()

    def flat(self) -> Metrics:
        """Every sample by (exposed sample name, labels), as a scrape of it reads."""
        return {(sample.name, frozenset(sample.labels.items())): float(sample.value)
                for family in self._families.values() for sample in family.samples}

    def value(self, name: str, **labels: str) -> float | None:
        """The value of one sample (by exposed sample name) whose labels include `labels` (see `value`)."""
        return value(self.flat(), name, **labels)


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    """The value of the sample named `name` whose labels include `labels` (None: no such sample). The one
    lookup of a sample, in Samples and in a scrape (testbed.exporter.ExporterProcess.metrics)."""
    want = labels.items()
    for (sample_name, sample_labels), sample_value in metrics.items():
        if sample_name == name and want <= sample_labels:
            return sample_value
    return None


def merge(parts: Iterable[Samples]) -> list[Metric]:
    """Merge families of the same name from several probes into one (one HELP/TYPE per name)."""
    merged: dict[str, Metric] = {}
    for part in parts:
        for family in part.families():
            target = merged.get(family.name)
            if target is None:
                target = merged[family.name] = Metric(family.name, family.documentation, family.type)
            target.samples.extend(family.samples)
    return list(merged.values())
