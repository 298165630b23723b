"""The mock market on a fake clock with seed 7: quotes, history, fills, events, snapshots.

Prices of seed 7 (AAPL, 250 ms ticks from 14:30:00): asks 190.02 190.02 190.04 190.04 ... ;
tick 21 has bid 190.05; tick 30 has ask 190.10, then 190.07 190.05 190.03 190.03 190.03 190.02
190.01 and 190.00 at tick 38.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from runtimes.core.domain import OrderRequest, OrderStatus, OrderType, Side, TrailingType
from runtimes.core.errors import OrderNotModifiable, SymbolNotFound
from runtimes.core.events import (
    AccountEvent,
    CandleEvent,
    OrderEvent,
    PositionEvent,
    QuoteEvent,
    TradeEvent,
)
from runtimes.core.provider import Pacing, Provider
from runtimes.providers.mock import MockMarket
from runtimes.providers.mock.provider import phase_of
from tests.runtimes.providers.clock import FakeClock

D = Decimal


def ticks(market: MockMarket, clock: FakeClock, n: int = 1) -> None:
    """Let `n` quote intervals pass, the host advancing the market after each."""
    for _ in range(n):
        clock.advance(ms=250)
        market.advance(clock())


def buy(qty: str = "10", **fields: object) -> OrderRequest:
    return OrderRequest(symbol="AAPL", side=Side.BUY, quantity=D(qty), **fields)  # type: ignore[arg-type]


def kinds(events: list[object]) -> list[str]:
    return [
        e.kind.value if isinstance(e, OrderEvent | PositionEvent) else type(e).__name__
        for e in events
    ]


def test_market_is_a_wall_clock_provider(market: MockMarket) -> None:
    assert isinstance(market, Provider)
    assert (market.platform, market.broker, market.pacing) == ("mock", "mock", Pacing.WALL_CLOCK)
    assert market.account().cash == D(100_000)
    assert market.account().currency == "USD"


def test_first_quote_has_a_real_spread_around_a_realistic_level(market: MockMarket) -> None:
    quotes = {s: market.quote(s) for s in ("AAPL", "MSFT", "BTCUSDT")}
    assert {s: (q.bid, q.ask, q.last) for s, q in quotes.items()} == {
        "AAPL": (D("189.98"), D("190.02"), D("190.00")),
        "MSFT": (D("419.95"), D("420.05"), D("420.00")),
        "BTCUSDT": (D("59994.00"), D("60006.00"), D("60000.00")),
    }
    assert quotes["AAPL"].timestamp == datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    assert quotes["AAPL"].provider == "mock"


def test_an_unknown_symbol_gets_a_level_from_its_name(make_market) -> None:
    market = make_market(options={"seed": 7, "symbols": ["ZZZ"]})
    quote = market.quote("ZZZ")
    assert (quote.bid, quote.ask, quote.last) == (D("612.74"), D("612.88"), D("612.81"))
    with pytest.raises(SymbolNotFound):
        market.quote("AAPL")


def test_history_has_1000_one_minute_bars_before_any_tick(market: MockMarket) -> None:
    bars = market.history("AAPL")
    assert len(bars) == 1000
    assert bars[-1].timestamp == datetime(2026, 1, 5, 14, 29, tzinfo=UTC)
    assert bars[0].timestamp == datetime(2026, 1, 4, 21, 50, tzinfo=UTC)
    assert all(b.timeframe == "1m" for b in bars)
    assert all(
        b.timestamp - a.timestamp == timedelta(minutes=1) for a, b in itertools.pairwise(bars)
    )
    assert all(a.close == b.open for a, b in itertools.pairwise(bars))
    assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)
    assert bars[-1].close == D("190.00")
    assert (bars[0].open, bars[0].high, bars[0].low, bars[0].close) == (
        D("190.76"),
        D("190.83"),
        D("190.69"),
        D("190.81"),
    )
    assert [b.timestamp for b in market.history("AAPL", limit=2)] == [
        datetime(2026, 1, 5, 14, 28, tzinfo=UTC),
        datetime(2026, 1, 5, 14, 29, tzinfo=UTC),
    ]


def test_same_seed_and_clock_give_the_same_walk_and_another_seed_another(make_market, clock):
    first, second = make_market(), make_market()
    other = make_market(options={"seed": 8})
    seen: list[tuple[Decimal, ...]] = []
    for _ in range(20):
        clock.advance(ms=250)
        for m in (first, second, other):
            m.advance(clock())
        seen.append(tuple(m.quote("BTCUSDT").last for m in (first, second, other)))
    assert all(a == b for a, b, _ in seen)
    assert any(a != c for a, _, c in seen)


def test_next_due_counts_down_to_the_next_tick(market: MockMarket, clock: FakeClock) -> None:
    assert market.next_due() == 0.15
    clock.advance(ms=100)
    assert market.next_due() == 0.05
    clock.advance(ms=100)
    assert market.next_due() == 0.0  # 14:30:00.300: the 0.250 tick is due
    market.advance(clock())
    assert market.next_due() == 0.2


def test_market_buy_fills_at_the_ask_of_the_next_tick_within_a_second(market, clock) -> None:
    ticks(market, clock, 2)
    assert market.quote("AAPL").ask == D("190.02")
    order = market.submit_order(buy())
    assert market.order(order.id).status is OrderStatus.OPEN
    assert market.next_due() is not None and market.next_due() <= 1.0
    ticks(market, clock)
    filled = market.order(order.id)
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, D("190.04"))
    assert market.quote("AAPL").ask == D("190.04")
    assert filled.updated_at - order.created_at == timedelta(milliseconds=150)
    position = market.position("AAPL")
    assert (position.quantity, position.average_entry_price) == (D(10), D("190.04"))
    assert market.account().cash == D("98099.60")


def test_market_sell_fills_at_the_bid_less_slippage(make_market, clock) -> None:
    market = make_market(options={"seed": 7, "slippage_bps": "10", "commission": "binance"})
    market.submit_order(buy())
    ticks(market, clock)
    market.close_position("AAPL")
    ticks(market, clock)
    entry, exit_ = market.fills()
    assert (entry.base_price, entry.price) == (D("190.02"), D("190.21002"))
    assert (exit_.base_price, exit_.price) == (D("189.98"), D("189.79002"))
    assert exit_.commission == D("1.8979002")
    assert market.positions() == []


def test_limit_buy_rests_until_the_ask_reaches_it(market: MockMarket, clock: FakeClock) -> None:
    ticks(market, clock, 30)
    assert market.quote("AAPL").ask == D("190.10")
    order = market.submit_order(buy(order_type=OrderType.LIMIT, limit_price=D("190.00")))
    ticks(market, clock, 7)
    assert market.quote("AAPL").ask == D("190.01")
    assert market.order(order.id).status is OrderStatus.OPEN
    ticks(market, clock)
    filled = market.order(order.id)
    assert (filled.status, filled.average_fill_price) == (OrderStatus.FILLED, D("190.00"))


def test_bracket_entry_places_its_exits_and_the_take_profit_closes_it(market, clock) -> None:
    entry = market.submit_order(buy(stop_loss=D("189.90"), take_profit=D("190.05")))
    ticks(market, clock)
    legs = market.orders(open_only=True)
    assert [(o.order_type, o.side, o.parent_order_id) for o in legs] == [
        (OrderType.STOP, Side.SELL, entry.id),
        (OrderType.LIMIT, Side.SELL, entry.id),
    ]
    assert [(o.stop_price, o.limit_price) for o in legs] == [
        (D("189.90"), None),
        (None, D("190.05")),
    ]
    ticks(market, clock, 20)
    assert market.quote("AAPL").bid == D("190.05")
    stop, target = (market.order(o.id) for o in legs)
    assert (target.status, target.average_fill_price) == (OrderStatus.FILLED, D("190.05"))
    assert stop.status is OrderStatus.CANCELLED
    assert market.positions() == []
    assert market.account().realized_pnl == D("0.30")


def test_modify_and_cancel_are_visible_in_the_very_next_read(market: MockMarket) -> None:
    order = market.submit_order(buy(order_type=OrderType.LIMIT, limit_price=D("150")))
    changed, previous = market.modify_order(order.id, limit_price=D("151"), quantity=D(5))
    assert (previous, changed) == (None, market.order(order.id))
    assert (market.order(order.id).limit_price, market.order(order.id).quantity) == (
        D("151"),
        D(5),
    )
    market.cancel_order(order.id)
    assert market.order(order.id).status is OrderStatus.CANCELLED
    assert market.orders(open_only=True) == []
    with pytest.raises(OrderNotModifiable):
        market.cancel_order(order.id)


def test_events_come_in_order_actions_then_the_tick_then_its_fills(market, clock) -> None:
    market.submit_order(buy())
    ticks(market, clock)
    events = market.drain_events()
    assert kinds(events) == [
        "ORDER_CREATED",
        "QuoteEvent",
        "QuoteEvent",
        "QuoteEvent",
        "ORDER_FILLED",
        "TradeEvent",
        "POSITION_OPENED",
        "AccountEvent",
    ]
    assert [e.quote.symbol for e in events if isinstance(e, QuoteEvent)] == [
        "AAPL",
        "MSFT",
        "BTCUSDT",
    ]
    stamp = datetime(2026, 1, 5, 14, 30, 0, 250_000, tzinfo=UTC)
    assert {e.timestamp for e in events[1:]} == {stamp}
    trade = next(e for e in events if isinstance(e, TradeEvent))
    assert trade.fill.price == D("190.02")
    account = next(e for e in events if isinstance(e, AccountEvent))
    assert account.account.cash == D("98099.80")
    assert market.drain_events() == []


def test_candles_close_on_the_bucket_boundaries_of_wall_clock_time(market, clock) -> None:
    clock.moment = datetime(2026, 1, 5, 14, 34, 59, 900_000, tzinfo=UTC)
    market.advance(clock())
    market.drain_events()
    clock.advance(ms=100)  # 14:35:00.000: the 14:34 minute and the 14:30 five minutes close
    market.advance(clock())
    candles = [e for e in market.drain_events() if isinstance(e, CandleEvent)]
    opened = [(c.bar.symbol, c.bar.timeframe, c.bar.timestamp.time().isoformat()) for c in candles]
    assert opened == [
        ("AAPL", "1m", "14:34:00"),
        ("AAPL", "5m", "14:30:00"),
        ("MSFT", "1m", "14:34:00"),
        ("MSFT", "5m", "14:30:00"),
        ("BTCUSDT", "1m", "14:34:00"),
        ("BTCUSDT", "5m", "14:30:00"),
    ]
    assert {c.timestamp for c in candles} == {datetime(2026, 1, 5, 14, 35, tzinfo=UTC)}
    assert market.history("AAPL")[-1] == candles[0].bar


def test_a_stall_is_caught_up_with_bounded_work(market: MockMarket, clock: FakeClock) -> None:
    clock.advance(seconds=3600)
    market.advance(clock())
    events = market.drain_events()
    assert sum(isinstance(e, QuoteEvent) for e in events) == 3
    assert len(events) <= 3 + 3 * 2 * 2  # the quotes, and at most two bars per timeframe
    assert market.quote("AAPL").timestamp == datetime(2026, 1, 5, 15, 30, tzinfo=UTC)
    assert market.next_due() == 0.15


def test_options_are_validated_when_the_market_is_built(make_market) -> None:
    with pytest.raises(ValueError, match="option 'spread_bps'"):
        make_market(options={"spread_bps": "0"})


def test_snapshot_restores_the_same_reads_and_the_same_next_prices(make_market, clock) -> None:
    market = make_market()
    market.submit_order(buy(stop_loss=D("189.00"), take_profit=D("191.00"), client_order_id="b1"))
    ticks(market, clock, 5)
    resting = market.submit_order(buy("3", order_type=OrderType.LIMIT, limit_price=D("100")))
    market.drain_events()
    saved = json.loads(json.dumps(market.snapshot()))
    clock.advance(ms=60)  # the new host starts a little later, between two ticks
    restored = make_market(restored=saved)

    def reads(m: MockMarket) -> tuple[object, ...]:
        return (
            m.all_orders(),
            m.orders(open_only=True),
            m.fills(),
            m.positions(),
            m.account(),
            [m.quote(s) for s in ("AAPL", "MSFT", "BTCUSDT")],
            m.history("AAPL"),
            m.order_by_client_id("b1"),
            m.next_due(),
        )

    assert reads(restored) == reads(market)
    assert restored.order(resting.id).status is OrderStatus.OPEN
    for _ in range(300):
        ticks(market, clock)
        restored.advance(clock())
        assert restored.drain_events() == market.drain_events()
    assert reads(restored) == reads(market)


def test_an_oco_buy_filled_against_the_ask_cancels_its_sell_sibling_in_the_same_tick(
    market: MockMarket, clock: FakeClock
) -> None:
    market.submit_order(buy())
    ticks(market, clock)
    entry = market.submit_order(
        buy("1", order_type=OrderType.LIMIT, limit_price=D("200"), oco_group_id="g1")
    )
    exit_ = market.submit_order(
        OrderRequest(
            symbol="AAPL",
            side=Side.SELL,
            quantity=D(10),
            order_type=OrderType.STOP,
            stop_price=D("100"),
            oco_group_id="g1",
        )
    )
    ticks(market, clock)
    assert market.order(entry.id).status is OrderStatus.FILLED
    assert market.order(entry.id).average_fill_price == D("190.02")  # the ask, not the limit
    assert market.order(exit_.id).status is OrderStatus.CANCELLED
    assert market.position("AAPL").quantity == D(11)


def test_a_sell_trailing_stop_trails_the_highest_bid(market: MockMarket, clock: FakeClock) -> None:
    market.submit_order(buy())
    ticks(market, clock)
    stop = market.submit_order(
        OrderRequest(
            symbol="AAPL",
            side=Side.SELL,
            quantity=D(10),
            order_type=OrderType.TRAILING_STOP,
            trailing_distance=D("0.05"),
            trailing_type=TrailingType.ABSOLUTE,
        )
    )
    assert stop.stop_price == D("189.95")  # from the last price at placement (mid 190.00)
    ticks(market, clock, 20)
    assert market.quote("AAPL").bid == D("190.05")
    trailing = market.order(stop.id)
    assert (trailing.status, trailing.stop_price) == (OrderStatus.OPEN, D("190.00"))


def test_quotes_nobody_drained_are_superseded_by_newer_ones(market, clock) -> None:
    for _ in range(50):
        ticks(market, clock)
    events = market.drain_events()
    quotes = [e for e in events if isinstance(e, QuoteEvent)]
    assert [q.quote.symbol for q in quotes] == ["AAPL", "MSFT", "BTCUSDT"]
    assert {q.timestamp for q in quotes} == {datetime(2026, 1, 5, 14, 30, 12, 500_000, tzinfo=UTC)}


def test_a_snapshot_of_other_settings_is_refused(make_market) -> None:
    saved = make_market().snapshot()
    with pytest.raises(ValueError, match="symbols are not this session's"):
        make_market(options={"seed": 7, "symbols": ["AAPL"]}, restored=saved)
    with pytest.raises(ValueError, match="quote_interval_ms is not this session's"):
        make_market(options={"seed": 7, "quote_interval_ms": 500}, restored=saved)


def test_a_tick_phase_moves_the_ticks_within_the_interval(make_market, clock) -> None:
    # 14:30:00.100 with ticks at 40 ms past each 250 ms: the next one is 14:30:00.290.
    market = make_market(options={"seed": 7, "tick_phase_ms": 40})
    assert market.next_due() == 0.19
    clock.advance(ms=190)
    market.advance(clock())
    assert market.quote("AAPL").timestamp == datetime(2026, 1, 5, 14, 30, 0, 290_000, tzinfo=UTC)
    assert market.next_due() == 0.25


def test_without_a_phase_option_each_session_ticks_at_a_phase_of_its_own_id(
    make_market, clock
) -> None:
    first = make_market(session_id="7d1c2b1e-0000-4000-8000-000000000001")
    again = make_market(session_id="7d1c2b1e-0000-4000-8000-000000000001")
    other = make_market(session_id="7d1c2b1e-0000-4000-8000-000000000002")

    assert phase_of("7d1c2b1e-0000-4000-8000-000000000001", 250) == 202
    assert phase_of("7d1c2b1e-0000-4000-8000-000000000002", 250) == 68
    # 14:30:00.100: the next tick at .202 for the first session, at .318 for the other
    assert first.next_due() == again.next_due() == 0.102
    assert other.next_due() == 0.218


def test_phases_of_many_sessions_spread_over_the_interval() -> None:
    phases = {phase_of(f"session-{n}", 250) // 25 for n in range(200)}
    assert phases == set(range(10))  # every tenth of the interval has some session's ticks


def test_an_all_in_order_by_equity_fraction_is_sized_at_the_ask_it_fills_at(market, clock) -> None:
    ticks(market, clock, 2)
    order = market.submit_order(OrderRequest(symbol="AAPL", side=Side.BUY, equity_fraction=D(1)))
    assert (order.quantity, order.equity_fraction) == (D(0), D(1))
    ticks(market, clock)  # the ask moved from 190.02 to 190.04: sized there, not at 190.02
    filled = market.order(order.id)
    assert (filled.status, filled.quantity, filled.average_fill_price) == (
        OrderStatus.FILLED, D("526.20500947"), D("190.04"))
    assert market.account().cash == D("0.0000003212")
