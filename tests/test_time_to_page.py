"""Time to page (docs/time-to-page.md): every alert's worst case from fault to notification, within its budget."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from exporter.catalog import alerts
from exporter.render import timing


@pytest.mark.parametrize("row", timing.table(), ids=lambda r: r.alert.name)
def test_alert_pages_within_its_budget(row: timing.TimeToPage) -> None:
    """A user-facing outage within 5 minutes, any other page within 10, a ticket within 30; over it only with a
    written reason (a chapter fact)."""
    assert not row.over_budget, (f"{row.alert.name}: {row.total:.0f} s to page, over its {row.budget:.0f} s budget "
                                 "(shorten its for or window, or give slow_reason)")


def test_a_slow_reason_is_only_given_where_it_is_needed() -> None:
    for row in timing.table():
        if row.alert.slow_reason:
            assert row.budget is not None and row.total > row.budget, f"{row.alert.name}: slow_reason not needed"


def test_every_page_is_budgeted_and_reads_a_source() -> None:
    """Every critical alert has a budget, and the table finds where its data comes from (a probe or vmagent's up)."""
    rows = {row.alert.name: row for row in timing.table()}
    assert set(rows) == {a.name for _, a in alerts()}
    for row in rows.values():
        if row.alert.severity == "critical":
            assert row.budget is not None
            assert row.probe or row.scrape, f"{row.alert.name}: no source found in its expression"


def test_the_table_moves_with_the_shipped_settings(tmp_path: Path) -> None:
    """The figures are read from deploy/, not written down: a slower scrape interval makes every alert slower."""
    root = tmp_path / "repo"
    shutil.copytree(timing.REPO / "deploy", root / "deploy")
    scrape = root / "deploy" / "vmagent" / "scrape-honeydue-exporter.yml"
    scrape.write_text(scrape.read_text().replace("scrape_interval: 15s", "scrape_interval: 60s"))
    before = {r.alert.name: r.total for r in timing.table()}
    after = {r.alert.name: r.total for r in timing.table(root)}
    assert after["RedisDown"] - before["RedisDown"] == 45
