"""The result of a backtest: equity curve, drawdown, round trips, metrics, execution contract.

Round trips are rebuilt from the fills: a position going from flat to non-flat and back to flat
(or flipping side) is one round trip, with volume-weighted entry and exit prices.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any, overload

from runtimes.core.domain import ZERO, Account, Fill, Order, Side, utc_from_epoch
from runtimes.core.exchange_accounting import Ledger
from runtimes.core.execution import BacktestConfig
from runtimes.core.market_data import MarketData
from runtimes.core.metrics import (
    EquityPoint,
    Metrics,
    RoundTrip,
    compute_metrics,
    drawdown_series,
)


@dataclass(frozen=True)
class BacktestResult:
    """Everything a finished (or stopped) backtest produced. `drawdown` is computed on first
    use: on a million bars it is a large list that many callers never read."""

    equity_curve: EquityCurve
    round_trips: list[RoundTrip]
    orders: list[Order]
    fills: list[Fill]
    metrics: Metrics
    account: Account
    execution_contract: dict[str, Any]

    @cached_property
    def drawdown(self) -> list[tuple[datetime, Decimal]]:
        """(time, equity / running peak - 1) per equity point."""
        return drawdown_series(self.equity_curve)


@dataclass(frozen=True, slots=True)
class Holdings:
    """Cash and signed quantities (by symbol position in the market data) after some fill."""

    cash: Decimal
    quantities: tuple[tuple[int, Decimal], ...]

    @classmethod
    def of(cls, ledger: Ledger, position_of: dict[str, int]) -> Holdings:
        held = tuple(sorted((position_of[s], p.quantity) for s, p in ledger.positions.items()))
        return cls(ledger.cash, held)


class EquityCurve(Sequence[EquityPoint]):
    """The equity curve as a read-only sequence of EquityPoints, priced on access.

    Holds only the holdings of each step; each point is cash plus the holdings marked at each
    symbol's last close at that step. A million points as objects would take ~250 MB, this
    takes 8 MB, and iterating is about as fast as building the list.
    """

    def __init__(self, data: MarketData, holdings_by_step: Sequence[Holdings]) -> None:
        self._data = data
        self._series = data.all_series()
        self._timeline = data.timeline()
        self._holdings = holdings_by_step

    def __len__(self) -> int:
        return len(self._holdings)

    def __repr__(self) -> str:
        return f"EquityCurve({len(self)} points)"

    @overload
    def __getitem__(self, index: int) -> EquityPoint: ...

    @overload
    def __getitem__(self, index: slice) -> list[EquityPoint]: ...

    def __getitem__(self, index: int | slice) -> EquityPoint | list[EquityPoint]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        step = range(len(self))[index]  # normalises negatives, raises IndexError
        epoch = int(self._timeline[step])
        last = [s.index_at_or_before(epoch) for s in self._series]
        return self._point(step, self._holdings[step], last)

    def __iter__(self) -> Iterator[EquityPoint]:
        data, count = self._data, len(self._series)
        last = [-1] * count
        for step, holdings in enumerate(self._holdings):
            for pos in range(count):
                i = data.series_index_at(pos, step)
                if i >= 0:
                    last[pos] = i
            yield self._point(step, holdings, last)

    def _point(self, step: int, holdings: Holdings, last: list[int]) -> EquityPoint:
        equity, gross = holdings.cash, ZERO
        for pos, qty in holdings.quantities:
            value = qty * self._series[pos].close_at(last[pos])
            equity += value
            gross += abs(value)
        stamp = utc_from_epoch(int(self._timeline[step]))
        return EquityPoint(timestamp=stamp, equity=equity, cash=holdings.cash, exposure=gross)


def build_result(
    *,
    config: BacktestConfig,
    data: MarketData,
    holdings_by_step: Sequence[Holdings],
    orders: list[Order],
    fills: list[Fill],
    account: Account,
) -> BacktestResult:
    """Assemble a BacktestResult from the engine's holdings record and its fills."""
    curve = EquityCurve(data, holdings_by_step)
    trips = round_trips(fills)
    metrics = compute_metrics(
        equity_curve=curve,
        round_trips=trips,
        total_fees=account.total_commission,
        timeframe=data.timeframe,
        initial_equity=config.initial_cash,
        symbols=data.symbols,
    )
    return BacktestResult(
        equity_curve=curve,
        round_trips=trips,
        orders=list(orders),
        fills=list(fills),
        metrics=metrics,
        account=account,
        execution_contract=config.execution_contract(),
    )


class _Trip:
    """A round trip being built: what was opened and what was closed so far."""

    __slots__ = ("closed_notional", "closed_qty", "entry_time", "fees", "long", "notional", "qty")

    def __init__(self, long: bool, entry_time: datetime) -> None:
        self.long = long
        self.entry_time = entry_time
        self.qty = self.notional = self.closed_qty = self.closed_notional = self.fees = ZERO

    def finish(self, symbol: str, exit_time: datetime, exit_order_id: str | None) -> RoundTrip:
        entry = self.notional / self.qty
        exit_ = self.closed_notional / self.closed_qty
        gross = self.closed_notional - self.notional
        gross = gross if self.long else -gross
        return RoundTrip(
            symbol=symbol,
            side="LONG" if self.long else "SHORT",
            quantity=self.qty,
            entry_time=self.entry_time,
            entry_price=entry,
            exit_time=exit_time,
            exit_price=exit_,
            gross_pnl=gross,
            fees=self.fees,
            net_pnl=gross - self.fees,
            exit_order_id=exit_order_id,
        )


def round_trips(fills: Sequence[Fill]) -> list[RoundTrip]:
    """Closed round trips, in the order they closed. An open trip at the end is not included."""
    return _walk(fills)[0]


def round_trips_with_open(
    fills: Sequence[Fill], marks: Mapping[str, tuple[datetime, Decimal]]
) -> list[RoundTrip]:
    """The closed round trips in the order they closed, then those still open after the last
    fill in symbol order, each closed on paper at its symbol's mark in `marks` (time, price: the
    last close of the data): the part not closed yet is valued at the mark, with no exit fee, and
    its `exit_order_id` is None."""
    done, still_open = _walk(fills)
    for symbol, trip in sorted(still_open.items()):
        moment, price = marks[symbol]
        rest = trip.qty - trip.closed_qty
        trip.closed_qty += rest
        trip.closed_notional += rest * price
        done.append(trip.finish(symbol, moment, None))
    return done


def _walk(fills: Sequence[Fill]) -> tuple[list[RoundTrip], dict[str, _Trip]]:
    """(closed trips, open trip by symbol) after every fill."""
    held: dict[str, Decimal] = {}
    open_trips: dict[str, _Trip] = {}
    done: list[RoundTrip] = []
    for fill in fills:
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        before = held.get(fill.symbol, ZERO)
        after = before + signed
        held[fill.symbol] = after
        trip = open_trips.get(fill.symbol)
        if trip is None:
            trip = open_trips[fill.symbol] = _Trip(signed > 0, fill.timestamp)
        adding = (signed > 0) == trip.long
        if adding:
            _add(trip, fill.quantity, fill.price, fill.commission)
            continue
        closing = min(fill.quantity, abs(before))
        share = closing / fill.quantity
        trip.closed_qty += closing
        trip.closed_notional += closing * fill.price
        trip.fees += fill.commission * share if closing != fill.quantity else fill.commission
        if after == 0 or (after > 0) != (before > 0):
            done.append(trip.finish(fill.symbol, fill.timestamp, fill.order_id))
            del open_trips[fill.symbol]
            if after != 0:  # flipped: the rest of the fill opens a trip the other way
                flipped = open_trips[fill.symbol] = _Trip(after > 0, fill.timestamp)
                _add(flipped, abs(after), fill.price, fill.commission - fill.commission * share)
    return done, open_trips


def _add(trip: _Trip, qty: Decimal, price: Decimal, fee: Decimal) -> None:
    trip.qty += qty
    trip.notional += qty * price
    trip.fees += fee
