"""The live view of a running backtest, in a real Chromium: a strategy (a raw WebSocket client
in a thread of the test, acking slowly and buying once over REST) streams a backtest while the
page shows its events as they arrive, then its open position and account, then its end."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import httpx
import pytest
from playwright.sync_api import expect
from websockets.sync.client import connect

from accounts.services import sign_up
from config.sample_data import head_of
from runtimes.services import create_backtest_session
from strategies.services import register_dataset
from tests.browser.conftest import log_in
from tests.browser.test_journeys import PASSWORD
from tests.runtimes.conftest import ask_for_worker, wait_for_state

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(120)]

ACK_DELAY_S = 0.03  # slow enough that the page visibly fills while the backtest runs
BUY_AT_CANDLE = 20


def run_strategy(base_url: str, session_id: str, key: str, errors: list[BaseException]) -> None:
    """Ack every frame (after a pause), buy 0.1 BTCUSDT at market once, until the end."""
    url = f"{base_url.replace('http', 'ws', 1)}/sessions/{session_id}/v1/ws"
    candles = 0
    try:
        with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
            for text in ws:
                frame = json.loads(text)
                if frame["type"] == "candle":
                    candles += 1
                    if candles == BUY_AT_CANDLE:
                        httpx.post(f"{base_url}/sessions/{session_id}/v1/orders",
                                   json={"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1",
                                         "order_type": "MARKET"},
                                   headers={"Authorization": f"Bearer {key}"},
                                   timeout=5).raise_for_status()
                time.sleep(ACK_DELAY_S)
                ws.send(json.dumps({"type": "event_ack", "correlation_id": "c",
                                    "events_processed": [frame["event_id"]], "timestamp": 0}))
                if frame["type"] == "backtest_complete":
                    return
    except Exception as exc:  # reported by the test, not lost in the thread
        errors.append(exc)


def test_the_live_page_of_a_running_backtest_shows_events_as_they_stream(
        page, screenshot, tmp_path, daphne_url, celery_worker, make_api_key):
    owner = sign_up(email="barbara@example.com", password=PASSWORD)
    workspace = owner.memberships.get().workspace
    dataset = register_dataset(workspace=workspace, name="BTCUSDT 1m", files={
        "BTCUSDT": head_of("crypto-1m/BTCUSDT.csv", 300, tmp_path / "BTCUSDT.csv")})
    key = make_api_key(owner, workspace, scopes=("read", "trade:paper"))[1]
    session = create_backtest_session(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=None, timeframe=None,
        start=None, end=None, initial_cash=Decimal(100_000), commission={},
        slippage_bps=Decimal(0), connect_timeout_s=30, idle_timeout_s=30)
    wait_for_state(ask_for_worker(session), {"waiting"})

    log_in(page, "barbara@example.com", PASSWORD)
    page.goto(f"/app/backtests/{session.pk}/")
    page.get_by_role("link", name="Watch live").click()
    status = page.locator("[data-live-status]")
    expect(status).to_contain_text("Live")

    errors: list[BaseException] = []
    strategy = threading.Thread(target=run_strategy, daemon=True,
                                args=(daphne_url, str(session.pk), key, errors))
    strategy.start()
    events = page.locator("[data-live-events] tr")
    expect(events.first).to_be_visible()
    expect(page.locator("[data-live-events] tr[data-type=order]").first).to_be_visible()
    expect(page.locator("[data-live-positions]")).to_contain_text("BTCUSDT")
    expect(page.locator("[data-live-account]")).to_contain_text("Equity")
    expect(page.locator("[data-live-field=state]")).to_have_text("running")
    first_seen = events.count()
    page.wait_for_timeout(500)
    assert events.count() >= min(first_seen + 5, 200)  # still streaming, newest first
    screenshot("live")

    strategy.join(60)
    assert not strategy.is_alive() and not errors, errors
    expect(status).to_contain_text("The session has ended (completed)", timeout=15_000)
    expect(events).to_have_count(200)  # the last 200 only
    expect(events.first).to_have_attribute("data-type", "backtest_complete")
    screenshot("live-ended")
    assert wait_for_state(session, {"completed"}).state == "completed"
