"""The worker's web server on the real broker: /metrics over HTTP, and the live dashboard in
headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by selenium).

The browser test is skipped when Chromium or its driver is missing, unless
``LIVEPROFILES_REQUIRE_BROWSER`` is set (``.ci/run`` sets it after installing them), so CI never
skips it silently. Its screenshot goes to ``artifacts/dashboard.png``.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.settings import Settings
from scripts.kafkaio import consume, send_lines
from scripts.launch import WorkerProcess
from scripts.procs import free_port, wait_for_port
from stream.policyconfig import DEFAULT_POLICY
from stream.synthetic import GeneratorConfig, generate_events
from tests.integration.conftest import WorkerFactory
from tests.support import INVALID_EVENTS

pytestmark = pytest.mark.broker

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _inputs(valid_count: int) -> tuple[list[bytes], list[bytes]]:
    """(valid events, everything to send): the valid ones, every invalid kind, one duplicate."""
    events = generate_events(GeneratorConfig(seed=5, users=30, days=1.0))
    valid = [orjson.dumps(e) for _, e in zip(range(valid_count), events, strict=False)]
    invalid = [raw for raw, _ in INVALID_EVENTS]
    return valid, valid[: valid_count // 2] + invalid + valid[valid_count // 2 :] + valid[:1]


def _start_web_worker(settings: Settings, start_worker: WorkerFactory) -> tuple[WorkerProcess, str]:
    port = free_port()
    worker = start_worker(web_enabled="true", web_port=port)
    wait_for_port("127.0.0.1", port, timeout_s=30.0, proc=worker.process)
    assert worker.web_url == f"http://127.0.0.1:{port}"
    return worker, worker.web_url


def _send_and_wait(settings: Settings, lines: list[bytes], decisions: int) -> None:
    send_lines(settings.bootstrap_servers, settings.names.events, lines)
    # consume is a generator: reading it to the end is what waits for the decisions.
    list(consume(settings.bootstrap_servers, settings.names.decisions, decisions, timeout_s=120.0))


def _get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10.0) as response:
        return str(response.headers["Content-Type"]), response.read()


def _scrape(base: str) -> Samples:
    _, body = _get(f"{base}/metrics")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _eventually(probe: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float) -> Any:
    """Call ``probe`` until ``done`` holds for its value (counters land just after the sends)."""
    deadline = time.monotonic() + timeout_s
    value = probe()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = probe()
    return value


def _by_name(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def test_metrics_over_http_count_what_was_sent(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    _, base = _start_web_worker(settings, start_worker)
    valid, lines = _inputs(200)
    _send_and_wait(settings, lines, decisions=len(valid))

    def received(samples: Samples) -> bool:
        return samples.get(("liveprofiles_events_in_total", ()), 0) >= len(lines)

    samples = _eventually(lambda: _scrape(base), received, timeout_s=30.0)
    content_type, _ = _get(f"{base}/metrics")

    assert content_type.startswith("text/plain; version=0.0.4")
    assert samples[("liveprofiles_events_in_total", ())] == len(lines)
    decisions = _by_name(samples, "liveprofiles_decisions_out_total")
    assert sum(decisions.values()) == len(valid)
    # every decision is labelled with one of the default policy's variants
    variants = {v.name for v in DEFAULT_POLICY.variants}
    assert {dict(labels)["variant"] for labels in decisions if decisions[labels]} <= variants
    letters = {
        dict(labels)["reason"]: n
        for labels, n in _by_name(samples, "liveprofiles_deadletters_total").items()
        if n
    }
    assert letters == Counter(reason for _, reason in INVALID_EVENTS)
    assert samples[("liveprofiles_skipped_events_total", (("reason", "duplicate"),))] == 1
    kafka_latency = samples[("liveprofiles_kafka_to_decision_seconds_count", ())]
    assert kafka_latency == len(valid)
    assert samples[("liveprofiles_event_to_decision_seconds_count", ())] == len(valid)
    assert _by_name(samples, "liveprofiles_partition_watermark_timestamp_seconds")
    lag = _eventually(
        lambda: _by_name(_scrape(base), "liveprofiles_consumer_lag"),
        lambda lag: lag and not any(lag.values()),
        timeout_s=15.0,
    )
    assert lag and sum(lag.values()) == 0, f"caught up, so no lag: {lag}"
    assert not _by_name(samples, "liveprofiles_model_online_auc"), "no models, no numbers"


def _browser() -> Any:
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("LIVEPROFILES_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromedriver are required (apt-get install chromium ...)")
        pytest.skip("needs chromium and chromium-driver (Debian packages)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.add_argument("--disable-dev-shm-usage")
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def test_dashboard_shows_live_numbers_in_headless_chromium(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    _, base = _start_web_worker(settings, start_worker)
    browser = _browser()
    try:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        browser.get(f"{base}/dashboard")
        wait = WebDriverWait(browser, 30.0, poll_frequency=0.2)
        wait.until(lambda b: b.find_element(By.ID, "status").text.startswith("updated"))
        assert browser.find_element(By.ID, "events-in").text == "0", "nothing sent yet"

        valid, lines = _inputs(300)
        _send_and_wait(settings, lines, decisions=len(valid))
        sent = f"{len(lines):,}"
        wait.until(lambda b: b.find_element(By.ID, "events-in").text == sent)

        def text(element_id: str) -> str:
            return str(browser.find_element(By.ID, element_id).text)

        assert text("decisions-out") == f"{len(valid):,}"
        assert text("deadletters-total") == str(len(INVALID_EVENTS))
        assert text("skipped") == "1"
        # Read in one script: the page redraws its tables every second, so cells found in one
        # call and read in the next can be gone by then (a stale element reference).
        shown: dict[str, str] = browser.execute_script(
            "return Object.fromEntries([...document.querySelectorAll('td[data-key]')]"
            ".map(cell => [cell.dataset.key, cell.innerText.trim()]));"
        )
        expected = Counter(reason for _, reason in INVALID_EVENTS)
        for reason, count in expected.items():
            assert shown[f"deadletter:{reason}"] == str(count)
        actions = {k: v for k, v in shown.items() if k and k.startswith("action:")}
        assert sum(int(v.replace(",", "")) for v in actions.values()) == len(valid)
        assert "Kafka timestamp to emit" in text("latency")
        models = text("models")  # rows once a label resolved, else the empty note
        assert "conversion" in models or "No learned models yet" in models, models
        assert "partition" in text("partitions")
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "dashboard.png"
        assert browser.save_screenshot(str(screenshot))
        print(f"dashboard screenshot: {screenshot}")
    finally:
        browser.quit()
