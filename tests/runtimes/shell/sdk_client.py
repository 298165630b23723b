"""Driving the unmodified SDK through a running backtest in tests: stream its events and act at
chosen candles (shared by the SDK conformance, share link and sized order tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from tektii import AsyncTradingGateway, CandleEvent


async def act_on_candles(gw: AsyncTradingGateway, at: Collection[int],
                         act: Callable[[int], Awaitable[None]]) -> int:
    """Stream `gw` to the end of the backtest, awaiting `act(n)` at the n-th candle for each n
    in `at` (the SDK acks a candle once its handler returned); returns the candles seen."""
    candles = 0
    async with gw, gw.stream() as events:
        async for event in events:
            if isinstance(event, CandleEvent):
                candles += 1
                if candles in at:
                    await act(candles)
    return candles
