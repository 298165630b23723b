"""Properties of the mock walk for any seed, symbol and volatility: a spread, plausible bars."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from runtimes.providers.mock import build
from runtimes.providers.mock.walk import Aggregator, level_cents
from tests.runtimes.providers.clock import FakeClock

SYMBOLS = st.lists(
    st.from_regex(r"[A-Z]{1,6}", fullmatch=True), min_size=1, max_size=3, unique=True
)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    symbols=SYMBOLS,
    volatility=st.sampled_from(["0.01", "0.8", "5"]),
    spread=st.sampled_from(["0.01", "2", "500"]),
)
def test_any_walk_keeps_bid_below_ask_and_bars_consistent(seed, symbols, volatility, spread):
    clock = FakeClock()
    options = {"seed": seed, "symbols": symbols, "volatility": volatility, "spread_bps": spread}
    settings_ = SimpleNamespace(
        options=options,
        symbols=(),
        timeframes=("1m", "5m"),
        initial_cash=Decimal(1000),
        restored=None,
        platform="mock",
        session_id="",
    )
    market = build(settings_, wake=lambda: None, clock=clock)
    for _ in range(3):
        clock.advance(seconds=41)
        market.advance(clock())
    for symbol in symbols:
        quote = market.quote(symbol)
        assert Decimal("0.01") <= quote.bid < quote.last < quote.ask
        assert quote.last >= Decimal(level_cents(symbol) // 100) / 100
        bars = market.history(symbol)
        assert len(bars) >= 1000
        assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)
        assert all(b.low > 0 for b in bars)
        assert all(
            b.timestamp - a.timestamp == timedelta(minutes=1) for a, b in itertools.pairwise(bars)
        )


def test_five_minute_bars_close_with_the_last_minute_of_their_bucket() -> None:
    five = Aggregator("5m")
    minute = 60
    start = 1_767_623_400  # 2026-01-05 14:30 UTC, a five-minute boundary
    rows = [(start + i * minute, 100 + i, 110 + i, 90 + i, 101 + i, 1) for i in range(6)]
    done = five.add_all(rows)
    assert done == [(start, 100, 114, 90, 105, 5)]
    assert five.forming is not None and five.forming.start == start + 5 * minute


def test_a_gap_closes_the_forming_bar_when_a_later_bucket_arrives() -> None:
    five = Aggregator("5m")
    start = 1_767_623_400
    assert five.add((start, 10, 12, 9, 11, 3)) == []
    assert five.add((start + 600, 20, 22, 19, 21, 4)) == [(start, 10, 12, 9, 11, 3)]


def test_levels_are_realistic_for_known_symbols_and_stable_for_others() -> None:
    assert [level_cents(s) for s in ("AAPL", "MSFT", "BTCUSDT")] == [19_000, 42_000, 6_000_000]
    assert level_cents("ZZZ") == 61_281
    assert all(1_000 <= level_cents(s) < 100_000 for s in ("A", "B", "ETHUSDT", "SPY"))
