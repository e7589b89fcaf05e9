"""Headless Chromium opens the report of a tiny real backtest: the charts render, the tables are there.

Chromium and its driver come from the Debian packages `chromium` and `chromium-driver` (.ci/run installs
them). Without them the test is skipped locally and fails under CI=true, so CI can never pass it silently.
The screenshot lands in the test's tmp dir, or in $PRICECAST_SCREENSHOT_DIR when that is set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)

if not (CHROMIUM and DRIVER):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI needs chromium and chromium-driver for the report browser test (.ci/run installs them)")
    pytest.skip(
        "chromium / chromium-driver not installed (apt-get install chromium chromium-driver)", allow_module_level=True
    )

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A tiny backtest of the sample (2 tickers, 3 models, 3 folds) rendered exactly as the flow renders it."""
    from backtest.engine import run_backtest
    from backtest.evaluate import evaluate
    from backtest.folds import FoldPlan
    from ingest.load import load_panel
    from ingest.spec import SourceSpec
    from tasks.backtest import save_run

    panel, quality = load_panel(SourceSpec(tickers=("AAPL", "IBM"), start="2012-01-01"))
    result = run_backtest(panel, models=["naive", "drift", "ses"], plan=FoldPlan(horizon=3, step=3, windows=3))
    out = tmp_path_factory.mktemp("browser-run")
    return save_run(result, evaluate(result), quality.to_frame(), out)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_the_report_renders_its_charts_and_tables_in_chromium(report, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(report.resolve().as_uri())
    figures = browser.find_elements(By.CSS_SELECTOR, "div.fig")
    assert len(figures) >= 4, "expected the horizon, fold, forecast and equity charts"

    def all_drawn(driver) -> bool:  # plotly draws each chart into an <svg> (or a <canvas> for WebGL traces)
        return all(
            f.find_elements(By.CSS_SELECTOR, "svg, canvas") for f in driver.find_elements(By.CSS_SELECTOR, "div.fig")
        )

    WebDriverWait(browser, 30).until(all_drawn)
    undrawn = [
        f.get_attribute("innerHTML")[:80] for f in figures if not f.find_elements(By.CSS_SELECTOR, "svg, canvas")
    ]
    assert not undrawn

    board = browser.find_element(By.CSS_SELECTOR, "#leaderboard table")
    text = board.text
    assert all(model in text for model in ("naive", "drift", "ses")) and "MASE" in text.upper()
    assert "random walk" in browser.find_element(By.TAG_NAME, "body").text  # the verdict sentence
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] if hasattr(browser, "get_log") else []
    assert not errors, errors

    shots = Path(os.environ.get("PRICECAST_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / "report.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
