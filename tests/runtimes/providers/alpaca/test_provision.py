"""An alpaca-paper session's provider built from its row as the host builds it
(runtimes/hosting/provision.py): its stored connection (sealed keys, BROKER_URLS, the shared
budget, the database health sink) reaches the fake Alpaca; its snapshot, stored as the
session's provider_state, carries it on after a host died with an order filled meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest

from accounts.models import BrokerCredential
from runtimes.core.connection import STREAM_CONNECTED
from runtimes.core.domain import OrderRequest, OrderStatus, OrderType, Side
from runtimes.core.events import OrderEvent, TradeEvent
from runtimes.hosting.provision import build_provider
from runtimes.models import TradingSession
from runtimes.providers.alpaca import AlpacaProvider
from tests.fakes.alpaca.server import KEY_ID, SECRET, FakeAlpaca
from tests.runtimes.connections import stored_connection
from tests.runtimes.providers.alpaca.harness import started_fake

# committed rows: the health sink writes from the SDK's threads too
pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal


@pytest.fixture
def fake(settings) -> Iterator[FakeAlpaca]:
    started = started_fake()
    settings.BROKER_URLS = {**settings.BROKER_URLS, "alpaca-paper": dict(started.urls)}
    yield started
    started.stop()


@pytest.fixture
def session(owner, workspace, fake) -> TradingSession:
    credential = stored_connection(workspace, owner, key_id=KEY_ID, secret=SECRET)
    return TradingSession.objects.create(workspace=workspace, created_by=owner,
                                         platform="alpaca-paper", symbols=["AAPL"],
                                         timeframe="1m", connection=credential)


def built(session: TradingSession) -> tuple[AlpacaProvider, threading.Event]:
    woken = threading.Event()
    provider = build_provider(session, wake=woken.set)
    assert isinstance(provider, AlpacaProvider)
    return provider, woken


def test_a_session_row_builds_a_provider_on_its_connection_and_takes_it_over(
    session: TradingSession, fake: FakeAlpaca,
) -> None:
    provider, woken = built(session)
    try:
        assert provider.ids.prefix == f"pty-{str(session.id).replace('-', '')[:8]}-"
        order = provider.submit_order(OrderRequest(
            symbol="AAPL", side=Side.BUY, quantity=D(2), order_type=OrderType.LIMIT,
            limit_price=D(185), client_order_id="first"))
        assert fake.order(order.id)["client_order_id"] == provider.ids.for_strategy("first")
        session.provider_state = provider.snapshot()
        session.save(update_fields=["provider_state"])
    finally:
        provider.close()
    credential = BrokerCredential.objects.get(pk=session.connection_id)
    assert credential.health["last_success_at"] is not None  # the sink wrote the row
    fake.fill(order.id)  # no host runs the session meanwhile
    successor, woken = built(TradingSession.objects.get(pk=session.pk))
    try:
        events = successor.drain_events()  # reconciled before build returned
        assert [type(e).__name__ for e in events] == [
            "OrderEvent", "TradeEvent", "PositionEvent", "AccountEvent"]
        filled, trade = events[0], events[1]
        assert isinstance(filled, OrderEvent) and isinstance(trade, TradeEvent)
        assert (filled.kind.value, filled.order.id, trade.fill.quantity) == (
            "ORDER_FILLED", order.id, D(2))
        assert successor.order(order.id).status is OrderStatus.FILLED
        assert [f.order_id for f in successor.fills()] == [order.id]
        assert successor.order_by_client_id("first") == successor.order(order.id)
        while successor.health().streams.get("trade_updates") != STREAM_CONNECTED:
            assert woken.wait(10), "the trade stream did not connect"
            woken.clear()
    finally:
        successor.close()


def test_a_session_whose_keys_alpaca_refuses_fails_at_start_saying_so(
    owner, workspace, fake: FakeAlpaca,
) -> None:
    from django.utils import timezone

    from runtimes.hosting.bus import InProcessBus
    from runtimes.hosting.host import run_session_host
    from runtimes.hosting.leases import HostLease

    revoked = stored_connection(workspace, owner, key_id=KEY_ID, secret="revoked-since-saved")
    session = TradingSession.objects.create(workspace=workspace, created_by=owner,
                                            platform="alpaca-paper", symbols=["AAPL"],
                                            timeframe="1m", connection=revoked, state="queued")
    lease = HostLease.take(session, now=timezone.now())
    assert run_session_host(lease=lease, bus=InProcessBus()) == "failed"
    session.refresh_from_db()
    assert (session.state, session.failure_reason) == (
        "failed", "broker: Alpaca refused the connection (401: unauthorized); check its keys")
    assert "revoked" not in session.failure_reason
