"""What a person does in the dashboard, in a real Chromium: sign up, upload the SMA example by
drag and drop, read its code, upload a dataset and see its chart, create and revoke an API key;
and watch a backtest complete, then read its metrics, equity chart and price chart with fills."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core import mail
from playwright.sync_api import expect

from accounts.services import sign_up
from config.sample_data import head_of
from runtimes.models import State, TradingSession
from strategies.models import Dataset
from strategies.services import EXAMPLES_DIR, register_dataset
from tests.browser.conftest import log_in
from tests.runtimes.results import run_in_process

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(120)]

PASSWORD = "a-long-and-unusual-passphrase-42"


def sign_up_by_the_emailed_link(page, email: str) -> None:
    """From the landing page, as a person would: the sign-up form, then the link of its email
    (the server runs in this process: its email lands in mail.outbox), to the new dashboard."""
    page.goto("/")
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    [message] = [sent for sent in mail.outbox if sent.to == [email]]
    page.goto(re.search(r"https?://\S+/signup/confirm/\S+", message.body).group(0))
    page.get_by_role("button", name="Finish signing up").click()
    expect(page).to_have_url(re.compile(r"/app/$"))


def assert_chart_drawn(page, selector: str) -> None:
    canvas = page.locator(f"{selector} canvas").first
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100


def test_a_new_user_uploads_a_strategy_and_a_dataset_and_manages_an_api_key(
        page, screenshot, tmp_path):
    page.goto("/")
    screenshot("landing")
    sign_up_by_the_emailed_link(page, "ada@example.com")
    expect(page.get_by_text("Get started")).to_be_visible()
    screenshot("dashboard")
    screenshot("dashboard", mobile=True)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Strategies").click()
    expect(page.get_by_text("Upload your first strategy")).to_be_visible()
    screenshot("strategies-empty")
    page.get_by_role("link", name="Upload a strategy").click()
    page.get_by_label("Name").fill("SMA crossover")
    page.locator("[data-dropzone] input[type=file]").set_input_files(
        str(EXAMPLES_DIR / "sma_crossover.py"))
    expect(page.locator("[data-dropzone-files]")).to_have_text("sma_crossover.py")
    page.get_by_label("Version note (optional)").fill("the example, unchanged")
    screenshot("strategy-upload")
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name="SMA crossover v1")).to_be_visible()
    expect(page.locator(".hl .nc", has_text="SmaCrossover")).to_be_visible()
    screenshot("version")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    expect(page.get_by_text("Upload your first dataset")).to_be_visible()
    page.get_by_role("link", name="Upload a dataset").click()
    page.get_by_label("Name").fill("SPY daily")
    page.locator("[data-dropzone] input[type=file]").set_input_files(
        str(head_of("stocks-daily/SPY.csv", 400, tmp_path / "SPY.csv")))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name="SPY daily")).to_be_visible()
    assert_chart_drawn(page, "#dataset-chart")
    screenshot("dataset")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    page.get_by_role("link", name="New API key").click()
    page.get_by_label("Name").fill("laptop")
    page.get_by_label("trade:paper").check()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key").inner_text()
    assert len(secret) > 20
    expect(page.locator("#laptop-example")).to_contain_text("python3 sma_crossover.py")
    expect(page.locator("#laptop-example")).to_contain_text("TEKTII_TRADING_GATEWAY_API_KEY")
    dataset = Dataset.objects.get(name="SPY daily")
    expect(page.locator("#laptop-example")).to_contain_text(f'{{"dataset": "{dataset.pk}"}}')
    page.locator("[data-copy-target=new-key]").click()
    expect(page.locator("[data-copy-target=new-key]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    screenshot("api-key-created")

    page.get_by_role("link", name="Back to API keys").click()
    expect(page.get_by_text(secret)).to_have_count(0)  # shown once, never again
    page.get_by_role("link", name="Revoke").click()  # a confirmation page, then the POST
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_text("Key laptop revoked.")).to_be_visible()
    expect(page.locator(".badge-off", has_text="revoked")).to_be_visible()
    screenshot("api-keys")


def test_a_backtest_is_watched_to_completion_and_its_results_read(page, screenshot, tmp_path):
    owner = sign_up(email="grace@example.com", password=PASSWORD)
    workspace = owner.memberships.get().workspace
    dataset = register_dataset(workspace=workspace, name="BTCUSDT 1m", files={
        "BTCUSDT": head_of("crypto-1m/BTCUSDT.csv", 300, tmp_path / "BTCUSDT.csv")})
    finished = run_in_process(workspace=workspace, by=owner, dataset=dataset)
    running = TradingSession.objects.create(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=["BTCUSDT"],
        timeframe="1m", state=State.RUNNING, batches=120, initial_cash=Decimal(100_000))

    log_in(page, "grace@example.com", PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Backtests").click()
    rows = page.locator("#backtest-rows")
    expect(rows.locator(".state-running")).to_have_count(1)
    expect(rows).to_contain_text("40% · 120 of 300 bars")
    screenshot("backtests-running")

    running.transition(to=State.COMPLETED, allowed_from={State.RUNNING}, batches=300)
    expect(rows.locator(".state-completed")).to_have_count(2, timeout=6_000)  # polled every 2 s
    expect(page.locator("#backtest-rows[hx-trigger]")).to_have_count(0)  # polling stopped
    screenshot("backtests")

    page.goto(f"/app/backtests/{finished.pk}/")
    expect(page.locator(".metric")).to_have_count(12)
    expect(page.locator(".metric", has_text="Total return")).to_contain_text("0.23%")
    assert_chart_drawn(page, "#equity-chart")
    assert_chart_drawn(page, "#price-chart")
    expect(page.locator("#price-chart")).to_have_attribute("data-symbol", "BTCUSDT")  # markers set
    fills = len(finished.result.trades)
    expect(page.locator("[data-fills-for=price-chart]")).to_have_text(f"{fills} fills, 300 candles")
    expect(page.locator("#trades ~ .table-wrap").first.locator("tbody tr")).to_have_count(
        len(finished.result.trades))
    screenshot("result")
    screenshot("result", mobile=True)

    page.locator("#trades ~ .table-wrap").first.get_by_role("link", name="Price").click()
    expect(page.locator("#trades ~ .table-wrap a[aria-sort=ascending]").first).to_have_text(
        "Price")


def test_two_backtests_are_ticked_on_the_list_and_compared_side_by_side(page, screenshot,
                                                                        tmp_path):
    owner = sign_up(email="katherine@example.com", password=PASSWORD)
    workspace = owner.memberships.get().workspace
    dataset = register_dataset(workspace=workspace, name="BTCUSDT 1m", files={
        "BTCUSDT": head_of("crypto-1m/BTCUSDT.csv", 300, tmp_path / "BTCUSDT.csv")})
    runs = [run_in_process(workspace=workspace, by=owner, dataset=dataset, every=every)
            for every in (10, 25)]

    log_in(page, "katherine@example.com", PASSWORD)
    page.goto("/app/backtests/")
    for run in runs:
        page.locator(f"#compare-{run.pk}").check()
    page.get_by_role("button", name="Compare").click()

    expect(page).to_have_url(re.compile(r"/app/backtests/compare/\?ids="))
    assert_chart_drawn(page, "#compare-chart")
    expect(page.locator(".chart-legend a")).to_have_count(2)
    expect(page.locator(".metrics-table tbody tr")).to_have_count(12)
    screenshot("compare")


def test_a_schedule_is_created_from_a_version_paused_and_resumed(page, screenshot, tmp_path):
    from strategies.services import upload_strategy_version

    owner = sign_up(email="hedy@example.com", password=PASSWORD)
    workspace = owner.memberships.get().workspace
    version = upload_strategy_version(workspace=workspace, author=owner, strategy="SMA crossover",
                                      filename="sma_crossover.py",
                                      content=(EXAMPLES_DIR / "sma_crossover.py").read_bytes())
    register_dataset(workspace=workspace, name="SPY daily", files={
        "SPY": head_of("stocks-daily/SPY.csv", 200, tmp_path / "SPY.csv")})

    log_in(page, "hedy@example.com", PASSWORD)
    page.goto(f"/app/strategies/{version.strategy_id}/versions/1/")
    page.get_by_role("link", name="Schedule backtests").click()
    page.get_by_label("Name").fill("Weekday mornings")
    page.get_by_label("Dataset").select_option(label="SPY daily (1d)")
    screenshot("schedule-new")
    page.get_by_role("button", name="Create schedule").click()

    expect(page.locator("h1")).to_contain_text("Weekday mornings")
    expect(page.locator(".meta")).to_contain_text("cron 0 6 * * 1-5 (UTC)")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("h1 .badge")).to_have_text("Paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("h1 .badge")).to_have_text("Active")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Schedules").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    screenshot("schedules")
