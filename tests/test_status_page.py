"""The status page as a person sees it: the real exporter, a real Redis that goes down, a real headless Chromium.

Chromium and ChromeDriver are Debian's (scripts/test-deps.sh installs them), driven through Selenium's
W3C WebDriver client. Chromium starts with the flags this machine needs (no sandbox as root, no GPU, no
background networking: the network is closed) and a fresh profile. The window is a phone's width.

`HONEYDUE_STATUS_SCREENSHOT=docs/status-page.png` also saves the page, as the test saw it, for the README.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from testbed.exporter import ExporterProcess

from exporter.catalog import CATALOG
from tests.helpers.servers import RedisServer, require_binary

PHONE = (390, 844)  # CSS pixels of a common phone in portrait
BASE = "https://runbooks.example.org/honeyDue/docs"
ENTRY = {e.id: e for e in CATALOG}
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars")


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    chromium, chromedriver = require_binary("chromium"), require_binary("chromedriver")
    profile = tempfile.mkdtemp(prefix="status-page-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={PHONE[0]},{PHONE[1]}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        driver.set_page_load_timeout(20)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _state(exporter: ExporterProcess, entry_id: str) -> str:
    """The state the page's HTML gives an entry (read over plain HTTP while waiting, not in the browser)."""
    _status, body = exporter.get("/")
    text = body.decode()
    start = text.find(f'id="{entry_id}" data-state="')
    return text[start:].split('"')[3] if start >= 0 else ""


def _wait_state(exporter: ExporterProcess, entry_id: str, state: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _state(exporter, entry_id) == state:
            return
        time.sleep(0.2)
    raise AssertionError(f"{entry_id} never became {state} (is {_state(exporter, entry_id)!r})")


def _card(browser: webdriver.Chrome, entry_id: str) -> WebElement:
    return browser.find_element(By.ID, entry_id)


def test_a_person_sees_what_is_failing_first_with_reason_and_runbook(
    browser: webdriver.Chrome, exporter_factory: type[ExporterProcess], pg_database: str, tmp_path: Path
) -> None:
    redis = RedisServer()
    redis.start()
    try:
        exporter = exporter_factory(env={
            "HONEYDUE_REDIS__URL": redis.url, "HONEYDUE_REDIS__INTERVAL": "1", "HONEYDUE_REDIS__TIMEOUT": "0.8",
            "HONEYDUE_ASYNQ__INTERVAL": "1", "HONEYDUE_ASYNQ__TIMEOUT": "0.8",
            "HONEYDUE_POSTGRES__POOLER__DBNAME": pg_database, "HONEYDUE_POSTGRES__DIRECT__ENABLED": "false",
            "HONEYDUE_RUNBOOK__BASE_URL": BASE,
            # No credentials anywhere: the Kubernetes probes are off, and the page must say so (not "ok").
            "KUBECONFIG": str(tmp_path / "no-kubeconfig"), "KUBERNETES_SERVICE_HOST": "",
        })
        exporter.start()
        _wait_state(exporter, "redis-at-maxmemory", "ok")
        redis.stop()  # the dependency goes down
        _wait_state(exporter, "redis-at-maxmemory", "failing")

        browser.get(exporter.url("/"))
        assert "FAILING" in browser.title

        # Failing failure modes come first: the first card, every layer with a failing one before the rest,
        # and in each layer the failing ones before the others.
        cards = browser.find_elements(By.CSS_SELECTOR, "li.fm")
        assert len(cards) == len(CATALOG)
        states = [c.get_attribute("data-state") for c in cards]
        assert states[0] == "failing"
        sections = browser.find_elements(By.CSS_SELECTOR, "section")
        layer_failing = [bool(s.find_elements(By.CSS_SELECTOR, 'li.fm[data-state="failing"]')) for s in sections]
        assert layer_failing == sorted(layer_failing, reverse=True), layer_failing
        for section in sections:
            seen = [c.get_attribute("data-state") == "failing" for c in section.find_elements(By.CSS_SELECTOR, "li.fm")]
            assert seen == sorted(seen, reverse=True)

        # What a person reads on the card: the state, the probe's reason, a runbook link to the chapter.
        redis_card = _card(browser, "redis-at-maxmemory")
        assert redis_card.is_displayed()
        text = redis_card.text
        assert text.lower().startswith("failing") and "redis: refused" in text, text
        link = redis_card.find_element(By.LINK_TEXT, "runbook")
        assert link.get_attribute("href") == ENTRY["redis-at-maxmemory"].runbook_url(BASE)
        assert link.is_displayed() and link.rect["x"] + link.rect["width"] <= PHONE[0]
        now = browser.find_element(By.CSS_SELECTOR, ".now")
        assert "Failing now" in now.text and ENTRY["redis-at-maxmemory"].heading in now.text

        # A probe that is off says off, with why; healthy ones say ok; chapter blind spots say so.
        oom = _card(browser, "api-pod-oom")
        assert oom.get_attribute("data-state") == "off"
        assert oom.text.lower().startswith("off") and "no kubeconfig found" in oom.text, oom.text
        assert _card(browser, "neon-postgres-outage").text.lower().startswith("ok")
        loss = _card(browser, "complete-cluster-loss")
        assert loss.text.lower().startswith("blind spot") and "obs-side" in loss.text
        assert _card(browser, "b2-outage").text.lower().startswith("not configured")
        probe_row = browser.find_element(By.XPATH, "//table//tr[td[1][normalize-space()='kubernetes_api']]")
        assert probe_row.text.lower().split()[:2] == ["kubernetes_api", "off"], probe_row.text

        # Readable on a phone: the viewport is the device's, nothing scrolls sideways, text is not tiny.
        viewport = browser.find_element(By.CSS_SELECTOR, 'meta[name="viewport"]')
        assert "width=device-width" in (viewport.get_attribute("content") or "")
        width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], width
        size = browser.execute_script("return parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 16
        assert all(c.rect["x"] >= 0 and c.rect["x"] + c.rect["width"] <= width[1] for c in cards[:5])
        assert browser.find_elements(By.TAG_NAME, "script") == []  # plain HTML and CSS

        _screenshot(browser)
    finally:
        redis.stop()


def _screenshot(browser: webdriver.Chrome) -> None:
    """A PNG of the top of the page at phone width; saved for the README when asked."""
    target = os.environ.get("HONEYDUE_STATUS_SCREENSHOT")
    browser.set_window_size(PHONE[0], 1400 if target else PHONE[1])
    png = browser.get_screenshot_as_png()
    browser.set_window_size(*PHONE)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    if target:
        Path(target).write_bytes(png)
