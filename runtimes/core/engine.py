"""The backtest engine: steps market data one timestamp (batch) at a time through the exchange.

`BacktestEngine.next_batch()` advances simulated time, fills resting orders against the new bars,
marks equity at the close and returns the batch; between batches the strategy (in-process or via
the Trading API shell) submits, modifies and cancels orders. `run_backtest` drives it in-process.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from runtimes.core.bars import Bar
from runtimes.core.domain import (
    Quote,
    SimulatedClock,
    utc_from_epoch,
)
from runtimes.core.engine_result import BacktestResult, Holdings, build_result
from runtimes.core.errors import SymbolNotFound
from runtimes.core.events import CandleEvent, Event
from runtimes.core.exchange import SimulatedExchange
from runtimes.core.exchange_book import ExchangeBook
from runtimes.core.exchange_fills import process_bar
from runtimes.core.execution import BacktestConfig
from runtimes.core.market_data import MarketData

__all__ = ["BacktestConfig", "BacktestEngine", "BacktestResult", "Batch", "run_backtest"]


class Batch:
    """The events of one simulated timestamp. Candles are built only when someone reads them."""

    __slots__ = ("_bars", "_data", "activity", "epoch", "step")

    def __init__(self, step: int, epoch: int, data: MarketData, activity: list[Event]) -> None:
        self.step = step
        self.epoch = epoch
        self._data = data
        self._bars: list[Bar] | None = None
        self.activity = activity  # order/trade/position/account events of this timestamp's fills

    @property
    def timestamp(self) -> datetime:
        return utc_from_epoch(self.epoch)

    @property
    def bars(self) -> list[Bar]:
        """The bars of this timestamp, one per symbol that has one, in symbol order."""
        if self._bars is None:
            self._bars = self._data.bars_at(self.step)
        return self._bars

    @property
    def events(self) -> list[Event]:
        """Candle events first, then the events the fills produced."""
        stamp = self.timestamp
        candles: list[Event] = [CandleEvent(bar, stamp) for bar in self.bars]
        return candles + self.activity

    def __repr__(self) -> str:
        return f"Batch(step={self.step}, timestamp={self.timestamp.isoformat()})"


class BacktestEngine(ExchangeBook):
    """One backtest: market data, a simulated exchange and account, and a simulated clock."""

    def __init__(self, market_data: MarketData, config: BacktestConfig | None = None) -> None:
        self.config = config or BacktestConfig()
        self._data = market_data
        self._series = market_data.all_series()
        self._symbols = market_data.symbols
        self._position_of = {s: i for i, s in enumerate(self._symbols)}
        self._timeline = market_data.timeline()
        self._last_index = [-1] * len(self._symbols)
        self._step = 0
        first = self._timeline[0] if len(self._timeline) else 0
        self.clock = SimulatedClock(int(first))
        self.exchange = SimulatedExchange(
            symbols=self._symbols, config=self.config, clock=self.clock, last_price=self.last_close
        )
        self._action_events: list[Event] = []
        # The equity record: per step, the holdings in force at its close. Holdings change only
        # on fills, so consecutive steps share one object; equity is priced from the closes
        # when the result is built, which keeps the per-bar cost and memory flat.
        self._holdings_by_step: list[Holdings] = []
        self._holdings = Holdings(self.config.initial_cash, ())
        self._ledger_version = 0

    @property
    def market_data(self) -> MarketData:
        """The bars this backtest steps through (the trade analysis reads their highs and lows)."""
        return self._data

    # -- time ---------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.clock.now()

    @property
    def finished(self) -> bool:
        return self._step >= len(self._timeline)

    @property
    def steps_done(self) -> int:
        return self._step

    @property
    def steps_total(self) -> int:
        """How many batches the whole run emits (one per timestamp of the timeline)."""
        return len(self._timeline)

    def next_batch(self) -> Batch | None:
        """Advance to the next timestamp: fill resting orders against its bars, mark equity at
        the close, and return the batch; None when the data is exhausted."""
        step = self._step
        if step >= len(self._timeline):
            return None
        epoch = self._timeline[step]
        ex = self.exchange
        if ex.events:  # strategy actions nobody drained yet stay with the actions
            self._action_events.extend(ex.take_events())
        self.clock.set(epoch)
        self._step = step + 1
        self._advance_bars(step, epoch)
        self._mark(step)
        activity = ex.take_events() if ex.events or ex.account_changed else []
        return Batch(step, epoch, self._data, activity)

    def _advance_bars(self, step: int, epoch: int) -> None:
        data, ex, last = self._data, self.exchange, self._last_index
        books = ex.open_by_symbol
        for pos, symbol in enumerate(self._symbols):
            i = data.series_index_at(pos, step)
            if i < 0:
                continue
            last[pos] = i
            if books.get(symbol):
                s = self._series[pos]
                process_bar(
                    ex, symbol, epoch, s.open_at(i), s.high_at(i), s.low_at(i), s.volume_at(i)
                )

    def _mark(self, step: int) -> None:
        ledger = self.exchange.ledger
        if ledger.version != self._ledger_version:
            self._ledger_version = ledger.version
            self._holdings = Holdings.of(ledger, self._position_of)
        self._holdings_by_step.append(self._holdings)
        for symbol, state in ledger.positions.items():
            pos = self._position_of[symbol]
            state.last_price = self._series[pos].close_at(self._last_index[pos])

    # -- strategy actions (the rest: ExchangeBook) ---------------------------------------------

    def drain_events(self) -> list[Event]:
        """Events of strategy actions since the last drain, stamped with the current time."""
        events = self._action_events + self.exchange.take_events()
        self._action_events = []
        return events

    # -- reads (orders, fills, positions, account: ExchangeBook) ------------------------------

    def last_close(self, symbol: str) -> Decimal | None:
        """The close of the last bar of `symbol` seen so far (None before its first bar)."""
        pos = self._position_of.get(symbol)
        if pos is None or self._last_index[pos] < 0:
            return None
        return self._series[pos].close_at(self._last_index[pos])

    def quote(self, symbol: str) -> Quote:
        """bid = ask = last = the last close seen. Raises SymbolNotFound (unknown or unseen)."""
        pos = self._position_of.get(symbol)
        if pos is None or self._last_index[pos] < 0:
            raise SymbolNotFound(symbol)
        i = self._last_index[pos]
        series = self._series[pos]
        close = series.close_at(i)
        return Quote(
            symbol=symbol,
            provider="backtest",
            bid=close,
            ask=close,
            last=close,
            timestamp=series.timestamp_at(i),
            volume=series.volume_at(i),
        )

    def history(
        self,
        symbol: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[Bar]:
        """Bars of `symbol` seen so far (never a future bar) within [start, end], the last
        `limit` of them. Raises SymbolNotFound."""
        pos = self._position_of.get(symbol)
        if pos is None:
            raise SymbolNotFound(symbol)
        series = self._series[pos]
        hi = self._last_index[pos] + 1
        if end is not None:
            hi = min(hi, series.index_at_or_before(int(end.timestamp())) + 1)
        lo = 0 if start is None else series.index_at_or_before(int(start.timestamp()) - 1) + 1
        if limit is not None:
            lo = max(lo, hi - limit)
        return [series.bar(i) for i in range(lo, hi)]

    def result(self) -> BacktestResult:
        """Equity curve, drawdown, round trips, orders, fills, metrics and execution contract of
        the steps run so far."""
        return build_result(
            config=self.config,
            data=self._data,
            holdings_by_step=self._holdings_by_step,
            orders=self.all_orders(),
            fills=self.exchange.fills,
            account=self.account(),
        )


BatchCallback = Callable[[BacktestEngine, Batch], None]


def run_backtest(
    market_data: MarketData,
    config: BacktestConfig | None = None,
    *,
    on_batch: BatchCallback | None = None,
    on_start: Callable[[BacktestEngine], None] | None = None,
) -> BacktestResult:
    """Run a whole backtest in-process, calling `on_batch(engine, batch)` after every batch."""
    engine = BacktestEngine(market_data, config)
    if on_start is not None:
        on_start(engine)
    next_batch = engine.next_batch
    if on_batch is None:
        while next_batch() is not None:
            pass
    else:
        while (batch := next_batch()) is not None:
            on_batch(engine, batch)
    return engine.result()
