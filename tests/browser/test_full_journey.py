"""Issue 6's journey, all of it through the dashboard in a real Chromium, as a person would: sign
up, upload the SMA example, upload a short dataset, run a REAL hosted backtest of it (the platform
starts the strategy in the bubblewrap sandbox, through the embedded Celery worker and the daphne
server) and watch it complete, read its metrics and equity chart, run a second one, compare the
two, then create an API key and revoke it. Nothing is put in the database behind the UI's back."""

from __future__ import annotations

import re
import time

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import expect

from config.sample_data import head_of
from strategies.services import EXAMPLES_DIR
from tests.browser.test_journeys import assert_chart_drawn, sign_up_by_the_emailed_link
from tests.runtimes.shell.test_hosted_backtests import SUPPORT

pytestmark = [
    pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120),
    pytest.mark.skipif(not SUPPORT.available,
                       reason=f"bubblewrap unavailable here: {SUPPORT.reason}"),
    pytest.mark.skipif(not django_settings.CELERY_EMBEDDED_WORKER,
                       reason="needs the embedded worker (settings are overridden in-process)"),
]

BARS = 300  # the first 300 one-minute bars of BTCUSDT: a run of a few seconds


def run_a_backtest(page, strategy_url: str, params: str) -> str:
    """From the version page, fill in "Run a backtest" and submit it; returns the backtest's id."""
    page.goto(strategy_url)
    page.get_by_role("link", name="Run a backtest").click()
    expect(page.locator(".sandbox")).to_contain_text("bubblewrap sandbox")
    page.get_by_label("Dataset").select_option(label="BTCUSDT 1m (1m)")
    page.get_by_label("Commission (% of notional)").fill("0.1")
    page.get_by_label("Parameters (JSON object)").fill(params)
    page.get_by_role("button", name="Run the backtest").click()
    expect(page).to_have_url(re.compile(r"/app/backtests/[0-9a-f-]{36}/$"))
    return page.url.rstrip("/").rsplit("/", 1)[1]


def test_a_new_user_goes_from_sign_up_to_a_compared_backtest_and_a_revoked_key(
        page, screenshot, tmp_path, celery_worker, daphne_url, settings):
    settings.PLATFORM_INTERNAL_URL = daphne_url  # where the sandboxed strategy finds its session
    settings.SANDBOX_CPU_SECONDS = 20
    settings.SANDBOX_WALL_SECONDS = 45
    began = time.monotonic()

    # Sign up by the emailed link: a new user lands on an empty dashboard of their own workspace.
    sign_up_by_the_emailed_link(page, "margaret@example.com")
    expect(page.get_by_text("Get started")).to_be_visible()
    screenshot("dashboard")
    nav = page.get_by_role("navigation", name="Main")

    # Upload the SMA example through the drag-and-drop zone's file input.
    nav.get_by_role("link", name="Strategies").click()
    page.get_by_role("link", name="Upload a strategy").click()
    page.get_by_label("Name").fill("SMA crossover")
    page.locator("[data-dropzone] input[type=file]").set_input_files(
        str(EXAMPLES_DIR / "sma_crossover.py"))
    expect(page.locator("[data-dropzone-files]")).to_have_text("sma_crossover.py")
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name="SMA crossover v1")).to_be_visible()
    version_url = page.url
    screenshot("version")

    # A new workspace has no data: upload a short real dataset, as the run form suggests.
    page.get_by_role("link", name="Run a backtest").click()
    expect(page.get_by_text("The workspace has no datasets yet")).to_be_visible()
    page.get_by_role("link", name="upload one").click()
    page.get_by_label("Name").fill("BTCUSDT 1m")
    page.locator("[data-dropzone] input[type=file]").set_input_files(
        str(head_of("crypto-1m/BTCUSDT.csv", BARS, tmp_path / "BTCUSDT.csv")))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name="BTCUSDT 1m")).to_be_visible()
    assert_chart_drawn(page, "#dataset-chart")
    screenshot("dataset")

    # The first backtest: the defaults (fast 10, slow 30), watched on its page until it completes.
    first = run_a_backtest(page, version_url, '{"quantity": "0.5"}')
    expect(page.locator("#backtest-progress")).to_be_visible()
    screenshot("backtest-running")
    # The status panel is polled every 2 s; once the run ended the page reloads with its results.
    expect(page.locator(".metric")).to_have_count(12, timeout=60_000)
    expect(page.locator(".metric", has_text="Total return")).to_be_visible()
    assert_chart_drawn(page, "#equity-chart")
    page.get_by_text("Captured output (stdout and stderr)").click()  # fetched when opened
    logs = page.get_by_label("Captured output")
    expect(logs).to_contain_text("trading BTCUSDT (fast 10, slow 30)")
    expect(logs).to_contain_text("backtest complete")
    screenshot("result")

    # The second backtest, faster averages; watched from the list this time.
    second = run_a_backtest(page, version_url, '{"fast": 5, "slow": 20, "quantity": "0.5"}')
    nav.get_by_role("link", name="Backtests").click()
    rows = page.locator("#backtest-rows")
    expect(rows.locator(".state-completed")).to_have_count(2, timeout=60_000)
    expect(page.locator("#backtest-rows[hx-trigger]")).to_have_count(0)  # polling stopped
    screenshot("backtests")

    # Tick both and compare them.
    page.locator(f"#compare-{first}").check()
    page.locator(f"#compare-{second}").check()
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(r"/app/backtests/compare/\?ids="))
    assert_chart_drawn(page, "#compare-chart")
    expect(page.locator(".chart-legend a")).to_have_count(2)
    differing = page.locator(".inputs-table tbody tr td:first-child")
    expect(differing).to_have_text(["Parameter fast", "Parameter slow"])  # only these differ
    table = page.locator(".metrics-table")
    expect(table.locator("tbody tr")).to_have_count(12)
    expect(table.locator("thead th")).to_have_count(3)  # the metric, then one column per run
    total_return = table.locator("tbody tr", has_text="Total return").locator("td.num")
    expect(total_return).to_have_count(2)
    total_return.first.scroll_into_view_if_needed()  # below the inputs that differ
    for cell in total_return.all():
        expect(cell).to_have_text(re.compile(r"^-?\d+\.\d\d%$"))
        expect(cell.locator("span")).to_be_in_viewport(ratio=1)  # side by side, no scrolling
    screenshot("compare")

    # An API key: created, its secret shown once, then revoked.
    nav.get_by_role("link", name="API keys").click()
    page.get_by_role("link", name="New API key").click()
    page.get_by_label("Name").fill("laptop")
    page.get_by_label("trade:paper").check()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key").inner_text()
    assert len(secret) > 20
    screenshot("api-key-created")
    page.get_by_role("link", name="Back to API keys").click()
    expect(page.get_by_text(secret)).to_have_count(0)  # shown once, never again
    page.get_by_role("link", name="Revoke").click()  # a confirmation page, then the POST
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_text("Key laptop revoked.")).to_be_visible()
    expect(page.locator(".badge-off", has_text="revoked")).to_be_visible()
    screenshot("api-keys")

    assert time.monotonic() - began < 60
