"""End to end: ``monitor dashboard`` on a free loopback port, opened in headless Chromium.

The overview and a metric page must render the seeded metrics in the browser (checked in
the DOM). Screenshots and DOM dumps are kept in ``out/test-artifacts/dashboard/``
(git-ignored). Where alert links land is tested with AppTest (``test_pages.py``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.storage.database_url import DATABASE_URL_ENV
from tests.dashboard.browser import Browser, find_chromium
from tests.dashboard.seed import SEGMENTED_DRIFT, SLOW_VIEWS, Seeded

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "out" / "test-artifacts" / "dashboard"
START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def monitor_command() -> list[str]:
    script = Path(sys.executable).with_name("monitor")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from monitor.cli.main import cli; cli()"]


@pytest.fixture(scope="module")
def dashboard_url(seeded_url: str, browser: Browser, request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard served on the seeded database.

    The server and the browser warm up (Python imports, the JavaScript bundle) while the
    database is seeded: the first page is opened in a thread meanwhile. The dashboard only
    reads, and SQLite in WAL mode lets it read while the seed writes.
    """
    port = free_port()
    log = tmp_path_factory.mktemp("dashboard-server") / "server.log"
    env = {**os.environ, DATABASE_URL_ENV: seeded_url}
    with log.open("wb") as out:
        server = subprocess.Popen([*monitor_command(), "dashboard", "--port", str(port),
                                   "--address", "127.0.0.1"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    problems: list[BaseException] = []

    def warm_up() -> None:
        try:
            _wait_healthy(url, server, log)
            browser.open(f"{url}/", ["domain-monitor"])
        except BaseException as err:  # reported by the main thread
            problems.append(err)

    warming = threading.Thread(target=warm_up, name="dashboard-warm-up")
    warming.start()
    try:
        request.getfixturevalue("seeded")
        warming.join()
        if problems:
            raise problems[0]
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    chromium = find_chromium()
    if chromium is None:
        pytest.fail("the dashboard's browser test needs Chromium: `apt-get install chromium` "
                    "(scripts/setup.sh installs it when missing)", pytrace=False)
    with Browser(chromium, tmp_path_factory.mktemp("chromium-profile")) as opened:
        yield opened


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"monitor dashboard exited with {server.returncode}:\n"
                               f"{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"monitor dashboard did not answer within {START_TIMEOUT_S} s:\n"
                       f"{log.read_text(errors='replace')}")


def _keep(browser: Browser, name: str) -> tuple[str, Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dom = browser.dom()
    (ARTIFACTS / f"{name}.html").write_text(dom)
    png = browser.screenshot(ARTIFACTS / f"{name}.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000  # a drawn page, not a blank one
    return dom, png


def test_overview_renders_every_seeded_metric(seeded: Seeded, dashboard_url: str,
                                              browser: Browser) -> None:
    text = browser.open(f"{dashboard_url}/", [*seeded.metrics, "Firing alerts"])
    dom, _ = _keep(browser, "overview")
    for name in seeded.metrics:
        assert f'href="metric?metric={name}"' in dom
    assert "monitor-overview" in dom and "<polyline" in dom  # the table and sparklines
    assert "SEEDED-TOKEN-123" not in dom + text


def test_metric_page_draws_its_series_in_the_browser(dashboard_url: str,
                                                     browser: Browser) -> None:
    text = browser.open(f"{dashboard_url}/metric?metric=latency",
                        ["latency", "Parity between stages", "identical", "Stage history"],
                        charts=1)
    dom, _ = _keep(browser, "metric-latency")
    assert "home-platform" in text
    assert dom.count("vega-embed") >= 1


def test_drift_page_draws_windows_decisions_and_value_bars(dashboard_url: str,
                                                            browser: Browser) -> None:
    """The segmented report on discrete columns: the decision in words, the latest
    window's table, the per-window charts and a bar per rank (see drift-rank_drift.png)."""
    browser.resize(1400, 3600)  # the whole page in one screenshot
    try:
        text = browser.open(
            f"{dashboard_url}/drift?metric={SEGMENTED_DRIFT.name}&segment=country%3DBR",
            ["BH-adjusted p < 0.01 over columns and segments", "Latest window", "events",
             "windows drifted", "Reference against current"], charts=5)
        dom, _ = _keep(browser, f"drift-{SEGMENTED_DRIFT.name}")
    finally:
        browser.resize(1400, 2000)
    assert "fav_carousel_rank: per window" in text
    assert dom.count("vega-embed") >= 5  # statistic, p-value, count, columns, histogram


def test_performance_page_draws_the_estimate_beside_the_realized_auc(dashboard_url: str,
                                                                      browser: Browser) -> None:
    """The estimate with its band, the realized AUC and the label coverage, for the overall
    segment and one device (see performance-click_estimate.png)."""
    browser.resize(1400, 2400)
    try:
        text = browser.open(
            f"{dashboard_url}/performance?metric=click_estimate&segment=device%3Dios",
            ["Estimated and realized performance", "Realized by", "click_auc",
             "still wait for labels"], charts=2)
        dom, _ = _keep(browser, "performance-click_estimate")
    finally:
        browser.resize(1400, 2000)
    assert "±3 sampling errors" in text
    assert dom.count("vega-embed") >= 2  # a chart per segment


def test_assertions_page_draws_the_violation_rate_and_lists_the_examples(
        dashboard_url: str, browser: Browser) -> None:
    """The seeded assertion on Brazil over 30 days: the rate per window with its threshold
    and the spike's alert, and the sampled violations of the newest windows with their
    kept fields and the download (see assertions-slow_views.png)."""
    browser.resize(1400, 2400)
    try:
        text = browser.open(
            f"{dashboard_url}/assertions?metric={SLOW_VIEWS.name}&segment=country%3DBR",
            ["Latest window of each assertion", "Violation rate per window",
             "Latest sampled violations", "Download these", "monitor assertions export"],
            charts=1)
        dom, _ = _keep(browser, f"assertions-{SLOW_VIEWS.name}")
    finally:
        browser.resize(1400, 2000)
    assert "sampled violations of 24 windows" in text  # the table itself is a canvas
    assert "--segment country=BR" in text
    assert dom.count("vega-embed") >= 1
