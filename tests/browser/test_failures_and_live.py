"""Failures a person can act on and the live view, in a real Chromium: a hosted strategy that
raises in the sandbox fails with a sentence naming its exception and line, the traceback folded
below and the whole log fetched when opened; the live page of a running backtest draws growing
equity and price charts, shows its progress and ETA, and its header turns to "Completed" with a
link to the results without a reload."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import expect
from websockets.sync.client import connect

from accounts.services import sign_up
from config.sample_data import head_of
from runtimes.sandbox.runner import probe_bubblewrap
from runtimes.services import create_backtest_session, create_hosted_backtest
from strategies.services import register_dataset, upload_strategy_version
from tests.browser.conftest import log_in
from tests.browser.test_journeys import PASSWORD
from tests.browser.test_live_view import run_strategy
from tests.runtimes.conftest import ask_for_worker, wait_for_state

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(120)]
SUPPORT = probe_bubblewrap()

DIVIDES_BY_ZERO = """\
import asyncio
from tektii import AsyncTradingGateway

class Strategy:
    def __init__(self):
        self.trades = 0

    def on_candle(self, bar):
        return float(bar.close) / self.trades

async def main():
    strategy = Strategy()
    print("starting", flush=True)
    async with AsyncTradingGateway() as gateway:
        async with gateway.stream() as events:
            async for event in events:
                if event.type == "candle":
                    strategy.on_candle(event.bar)

asyncio.run(main())
"""


def signed_in(page, email: str):
    owner = sign_up(email=email, password=PASSWORD)
    log_in(page, email, PASSWORD)
    return owner, owner.memberships.get().workspace


def btc_dataset(workspace, tmp_path):
    return register_dataset(workspace=workspace, name="BTCUSDT 1m", files={
        "BTCUSDT": head_of("crypto-1m/BTCUSDT.csv", 300, tmp_path / "BTCUSDT.csv")})


@pytest.mark.skipif(not SUPPORT.available, reason=f"bubblewrap unavailable: {SUPPORT.reason}")
@pytest.mark.skipif(not django_settings.CELERY_EMBEDDED_WORKER,
                    reason="needs the embedded worker (settings are overridden in-process)")
def test_a_failing_strategys_page_says_what_happened_with_its_traceback_folded(
        page, screenshot, tmp_path, daphne_url, celery_worker, settings):
    settings.PLATFORM_INTERNAL_URL = daphne_url
    owner, workspace = signed_in(page, "fatima@example.com")
    version = upload_strategy_version(workspace=workspace, author=owner, strategy="ratio",
                                      filename="strategy.py", content=DIVIDES_BY_ZERO.encode())
    session = create_hosted_backtest(workspace=workspace, created_by=owner, version=version,
                                     dataset=btc_dataset(workspace, tmp_path))
    assert wait_for_state(session, {"completed", "failed", "cancelled"}, timeout=60).state == (
        "failed")

    page.goto(f"/app/backtests/{session.pk}/")

    failure = page.locator("[data-failure]")
    expect(failure.locator("[data-failure-sentence]")).to_have_text(
        "Your strategy raised ZeroDivisionError: float division by zero at strategy.py line 9, "
        "in on_candle.")
    expect(failure).to_contain_text("Fix the code at that line")
    traceback = failure.locator("[data-failure-traceback] pre")
    expect(traceback).to_be_hidden()
    failure.get_by_text("The strategy's traceback").click()
    expect(traceback).to_contain_text('File "/strategy/strategy.py", line 9, in on_candle')
    expect(traceback).to_contain_text("return float(bar.close) / self.trades")
    screenshot("failed")
    # The whole log is not in the page: it comes when its section is opened.
    log = page.locator("[data-lazy-log] pre")
    expect(log).to_have_count(0)
    page.get_by_text("Captured output (stdout and stderr)").click()
    expect(log).to_contain_text("starting")
    screenshot("failed-log-open", mobile=True)


def test_the_live_page_draws_growing_charts_with_progress_and_eta_then_links_the_results(
        page, screenshot, tmp_path, daphne_url, celery_worker, make_api_key):
    owner, workspace = signed_in(page, "lars@example.com")
    key = make_api_key(owner, workspace, scopes=("read", "trade:paper"))[1]
    session = create_backtest_session(
        workspace=workspace, created_by=owner, dataset=btc_dataset(workspace, tmp_path),
        symbols=None, timeframe=None, start=None, end=None, initial_cash=Decimal(100_000),
        commission={}, slippage_bps=Decimal(0), connect_timeout_s=30, idle_timeout_s=30)
    wait_for_state(ask_for_worker(session), {"waiting"})
    page.goto(f"/app/backtests/{session.pk}/live/")
    expect(page.locator("[data-live-status]")).to_contain_text("Live")
    live = page.locator("#live")

    errors: list[BaseException] = []
    strategy = threading.Thread(target=run_strategy, daemon=True,
                                args=(daphne_url, str(session.pk), key, errors))
    strategy.start()

    expect(page.locator("[data-live-header-state]")).to_have_text("Running")
    page.wait_for_function("Number(document.getElementById('live').dataset.pricePoints) >= 30",
                           timeout=15_000)
    drawn = int(live.get_attribute("data-equity-points"))
    expect(page.locator("[data-live-field=eta]")).to_contain_text(" left")
    percent = page.locator("[data-live-field=percent]").text_content()
    assert percent.endswith("%") and 0 < int(percent[:-1]) < 100, percent
    expect(page.locator("[data-live-chart=equity] canvas").first).to_be_visible()
    expect(page.locator("[data-live-chart=price] canvas").first).to_be_visible()
    screenshot("running")
    page.wait_for_function(  # still growing
        f"Number(document.getElementById('live').dataset.equityPoints) > {drawn}")

    strategy.join(60)
    assert not strategy.is_alive() and not errors, errors
    expect(page.locator("[data-live-header-state]")).to_have_text("Completed", timeout=15_000)
    results = page.locator("[data-live-outcome]").get_by_role("link", name="See the results")
    expect(results).to_have_attribute("href", f"/app/backtests/{session.pk}/")
    expect(page.locator("[data-live-field=percent]")).to_have_text("100%")
    assert live.get_attribute("data-price-points") == "300"
    screenshot("completed")
    results.click()
    expect(page).to_have_url(f"{daphne_url}/app/backtests/{session.pk}/")


def ack_everything(base_url: str, session_id: str, key: str) -> None:
    """A strategy that acks every frame at once, until the end of the backtest."""
    url = f"{base_url.replace('http', 'ws', 1)}/sessions/{session_id}/v1/ws"
    with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        for text in ws:
            frame = json.loads(text)
            ws.send(json.dumps({"type": "event_ack", "correlation_id": "c",
                                "events_processed": [frame["event_id"]], "timestamp": 0}))
            if frame["type"] == "backtest_complete":
                return


def test_the_live_charts_keep_at_most_2000_points_of_a_long_run(
        page, tmp_path, daphne_url, celery_worker, make_api_key):
    owner, workspace = signed_in(page, "mei@example.com")
    key = make_api_key(owner, workspace, scopes=("read", "trade:paper"))[1]
    dataset = register_dataset(workspace=workspace, name="BTCUSDT 1m", files={
        "BTCUSDT": head_of("crypto-1m/BTCUSDT.csv", 3200, tmp_path / "BTCUSDT.csv")})
    session = create_backtest_session(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=None, timeframe=None,
        start=None, end=None, initial_cash=Decimal(100_000), commission={},
        slippage_bps=Decimal(0), connect_timeout_s=30, idle_timeout_s=30)
    wait_for_state(ask_for_worker(session), {"waiting"})
    page.goto(f"/app/backtests/{session.pk}/live/")
    expect(page.locator("[data-live-status]")).to_contain_text("Live")

    ack_everything(daphne_url, str(session.pk), key)

    expect(page.locator("[data-live-header-state]")).to_have_text("Completed", timeout=15_000)
    seen = int(page.locator("[data-live-field=seen]").text_content())
    kept = [int(page.locator("#live").get_attribute(f"data-{kind}-points"))
            for kind in ("price", "equity")]
    # Past 2,000 candles a series is halved (pairs merged): what the page keeps stays bounded.
    # (The page may not see every frame of a fast run: an observer never slows the session.)
    assert seen > 2100, seen
    assert all(1000 < count <= 2000 for count in kept), kept


def test_the_live_price_chart_of_a_run_over_two_symbols_shows_the_one_picked(
        page, tmp_path, daphne_url):
    owner, workspace = signed_in(page, "noor@example.com")
    dataset = register_dataset(workspace=workspace, name="BTC & ETH 1m", files={
        symbol: head_of(f"crypto-1m/{symbol}.csv", 10, tmp_path / f"{symbol}.csv")
        for symbol in ("BTCUSDT", "ETHUSDT")})
    session = create_backtest_session(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=None, timeframe=None,
        start=None, end=None, initial_cash=Decimal(100_000), commission={},
        slippage_bps=Decimal(0), connect_timeout_s=30, idle_timeout_s=30)
    page.goto(f"/app/backtests/{session.pk}/live/")
    picker = page.locator("[data-live-price-pick]")
    expect(picker.locator("option")).to_have_text(["BTCUSDT", "ETHUSDT"])

    # Candles as the socket delivers them (static/js/live.js re-dispatches each message so).
    page.evaluate("""() => {
      const live = document.getElementById("live");
      for (let minute = 0; minute < 5; minute++) {
        for (const [symbol, close] of [["BTCUSDT", 100 + minute], ["ETHUSDT", 10 + minute]]) {
          const timestamp = new Date(Date.UTC(2021, 3, 2, 0, minute)).toISOString();
          live.dispatchEvent(new CustomEvent("live:message", { detail: { type: "candle",
            timestamp, bar: { symbol, timestamp, open: close, high: close, low: close,
                              close } } }));
        }
      }
    }""")
    last_close = ("() => document.querySelector('[data-live-chart=price]')"
                  ".parityChart.series.data().at(-1).close")

    assert page.evaluate(last_close) == 104
    picker.select_option("ETHUSDT")
    assert page.evaluate(last_close) == 14
    assert page.locator("#live").get_attribute("data-price-points") == "5"
