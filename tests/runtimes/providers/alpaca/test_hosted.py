"""An `alpaca-paper` session end to end on the fake Alpaca: the unmodified SDK, over the real
server and the embedded worker's host, trades through the session's broker connection (its
sealed keys, BROKER_URLS pointing at the fake): the buy fills at Alpaca, and the order, trade,
position, account, status and circuit breakers read back through the Trading API."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from django.conf import settings
from tektii import (
    AccountEvent,
    OrderEvent,
    OrderStatus,
    PositionEvent,
    TradeEvent,
    TradingGateway,
)

from runtimes.models import SessionEvent, TradingSession
from runtimes.services import create_live_session
from tests.fakes.alpaca.server import KEY_ID, SECRET, FakeAlpaca
from tests.runtimes.conftest import wait_for_state
from tests.runtimes.connections import stored_connection
from tests.runtimes.providers.alpaca.harness import started_fake

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(60),
    pytest.mark.skipif(not settings.CELERY_EMBEDDED_WORKER,
                       reason="needs the embedded worker (BROKER_URLS is set in this process)"),
]

D = Decimal
AAPL = "AAPL"


@pytest.fixture
def fake(settings) -> Iterator[FakeAlpaca]:
    started = started_fake()
    started.hold_fills(False)  # Alpaca fills a market order at once while the market is open
    settings.BROKER_URLS = {**settings.BROKER_URLS, "alpaca-paper": dict(started.urls)}
    yield started
    started.stop()


def test_the_sdk_trades_an_alpaca_paper_session_on_the_fake(
    daphne_url, celery_worker, trader_key, owner, workspace, fake
):
    credential = stored_connection(workspace, owner, key_id=KEY_ID, secret=SECRET)
    session = create_live_session(
        workspace=workspace, created_by=owner, platform="alpaca-paper", symbols=[AAPL],
        timeframe="1m", timeframes=[], initial_cash=D(100_000), options={},
        connect_timeout_s=30, connection=credential)
    base = f"{daphne_url}/sessions/{session.id}"
    gw = TradingGateway(base_url=base, api_key=trader_key, max_retries=0)
    try:
        with gw.stream() as events:
            wait_for_state(session, {"running"}, timeout=30)  # attached: a host runs it
            bought = gw.submit_order(AAPL, "buy", "2", client_order_id="e2e-1")
            seen: list[str] = []
            for event in events:  # the fill's events, as the strategy sees them
                if isinstance(event, OrderEvent) and event.order.id == bought.id:
                    seen.append(f"order {event.order.status.value}")
                elif isinstance(event, TradeEvent | PositionEvent | AccountEvent):
                    seen.append(type(event).__name__)
                if "AccountEvent" in seen:
                    break
        assert seen == ["order OPEN", "order FILLED", "TradeEvent", "PositionEvent",
                        "AccountEvent"]
        assert gw.get_order(bought.id).status == OrderStatus.FILLED
        alpaca = fake.order(bought.id)
        assert alpaca["client_order_id"].endswith("-ce2e-1")
        assert (alpaca["qty"], alpaca["filled_qty"], alpaca["side"]) == ("2", "2", "buy")
        assert gw.submit_order(AAPL, "buy", "2", client_order_id="e2e-1").id == bought.id
        [trade] = gw.list_trades(order_id=bought.id)
        assert (trade.quantity, trade.price) == ("2", "190.01")
        [position] = gw.list_positions(symbol=AAPL)
        assert (position.quantity, position.average_entry_price) == ("2", "190.01")
        account = gw.get_account()
        assert D(account.balance) == D(100_000) - 2 * D("190.01")
        status = gw.get_status()
        assert status.connected is True
        breakers = gw.get_circuit_breakers()
        assert (breakers.adapter.state, breakers.adapter.failure_count) == ("closed", 0)
        assert D(gw.get_quote(AAPL).ask) == D("190.01")
        assert all(b.symbol == AAPL for b in gw.get_bars(AAPL, "1m", limit=5))
    finally:
        answer = httpx.post(f"{daphne_url}/api/v1/workspaces/{workspace.id}/sessions/"
                            f"{session.id}/cancel",
                            headers={"Authorization": f"Bearer {trader_key}"})
        assert answer.status_code in {200, 202}, answer.json()
    ended = wait_for_state(TradingSession.objects.get(pk=session.pk), {"cancelled", "failed"})
    assert (ended.state, ended.failure_reason) == ("cancelled", "cancelled")
    # the host streamed (and journaled) the provider's events of the fill, each once
    assert [journaled(session.id, kind) for kind in ("trade", "position", "error")] == [1, 1, 0]
    assert journaled(session.id, "order") == 2  # created, filled
    assert journaled(session.id, "account") >= 1


def journaled(session_id, frame_type: str) -> int:
    return SessionEvent.objects.filter(session_id=session_id,
                                       frame__contains=f'"type":"{frame_type}"').count()
