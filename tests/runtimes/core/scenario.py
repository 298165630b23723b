"""Helpers for hand-computed engine scenarios: a few bars written as (open, high, low, close)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from runtimes.core.bars import Bar
from runtimes.core.domain import OrderRequest, OrderType, Side
from runtimes.core.engine import BacktestConfig, BacktestEngine
from runtimes.core.events import Event, OrderEvent, TradeEvent
from runtimes.core.market_data import MarketData

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)  # Tuesday, 09:30 in New York
D = Decimal
DAY_MINUTES = 1440

Row = Sequence[Any]


def bars(
    rows: Sequence[Row], symbol: str = "AAA", start: datetime = T0, minutes: int = 1
) -> list[Bar]:
    """Bars one `minutes` apart; a row is (open, high, low, close) or (..., volume)."""
    made = []
    for i, row in enumerate(rows):
        o, h, low, c = (D(str(v)) for v in row[:4])
        volume = D(str(row[4])) if len(row) > 4 else D(1000)
        stamp = start + timedelta(minutes=minutes * i)
        timeframe = "1d" if minutes == DAY_MINUTES else f"{minutes}m"
        made.append(Bar(symbol, timeframe, stamp, o, h, low, c, volume))
    return made


def start(rows: Sequence[Row], symbol: str = "AAA", **config: Any) -> BacktestEngine:
    """An engine over `rows` that has delivered the first batch (the strategy sees bar 0)."""
    config.setdefault("initial_cash", D(1000))
    engine = BacktestEngine(MarketData.from_bars(bars(rows, symbol)), BacktestConfig(**config))
    engine.next_batch()
    return engine


def step(engine: BacktestEngine) -> list[Event]:
    """Deliver the next batch; return the events its fills produced."""
    batch = engine.next_batch()
    assert batch is not None
    return batch.activity


def buy(qty: Any, **fields: Any) -> OrderRequest:
    return order(Side.BUY, qty, **fields)


def sell(qty: Any, **fields: Any) -> OrderRequest:
    return order(Side.SELL, qty, **fields)


def order(side: Side, qty: Any, symbol: str = "AAA", **fields: Any) -> OrderRequest:
    for name in ("limit_price", "stop_price", "stop_loss", "take_profit", "trailing_distance"):
        if name in fields and fields[name] is not None:
            fields[name] = D(str(fields[name]))
    kind = fields.pop("order_type", None)
    if kind is None:
        kind = _infer_type(fields)
    return OrderRequest(symbol=symbol, side=side, quantity=D(str(qty)), order_type=kind, **fields)


def _infer_type(fields: dict[str, Any]) -> OrderType:
    if "trailing_distance" in fields:
        return OrderType.TRAILING_STOP
    if "limit_price" in fields and "stop_price" in fields:
        return OrderType.STOP_LIMIT
    if "limit_price" in fields:
        return OrderType.LIMIT
    if "stop_price" in fields:
        return OrderType.STOP
    return OrderType.MARKET


def fill_prices(events: Sequence[Event]) -> list[tuple[str, Decimal, Decimal]]:
    """(order id, quantity, price) of each trade event."""
    return [
        (e.fill.order_id, e.fill.quantity, e.fill.price)
        for e in events
        if isinstance(e, TradeEvent)
    ]


def order_kinds(events: Sequence[Event]) -> list[tuple[str, str]]:
    """(event kind, order id) of each order event."""
    return [(e.kind.value, e.order.id) for e in events if isinstance(e, OrderEvent)]
