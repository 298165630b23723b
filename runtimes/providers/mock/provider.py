"""The `mock` market: a wall-clock simulated market, always open, with no credentials.

Every `quote_interval_ms` each symbol's price takes one step of a seeded random walk; the tick is
a quote (mid +/- half the spread) and a price point the engine's SimulatedExchange matches resting
orders against: buys against a one-point bar of the ask, sells against one of the bid, so a market
buy fills at the ask of the next tick (plus slippage) and a buy limit fills once the ask reaches
it. Same seed, same clock readings, same orders: same prices and fills.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from runtimes.core.bars import Bar
from runtimes.core.costs import apply_slippage
from runtimes.core.domain import (
    Quote,
    Side,
)
from runtimes.core.errors import SymbolNotFound
from runtimes.core.events import CandleEvent, Event, QuoteEvent
from runtimes.core.exchange import SimulatedExchange
from runtimes.core.exchange_book import ExchangeBook
from runtimes.core.exchange_fills import process_bar
from runtimes.core.exchange_snapshot import exchange_to_json, restore_exchange
from runtimes.core.execution import BacktestConfig
from runtimes.core.provider import JsonDict, Pacing, ProviderFactory, ProviderSettings, Wake
from runtimes.core.timeframes import bucket_start
from runtimes.core.wire import timestamp_str
from runtimes.providers.mock.options import MockConfig, parse_options
from runtimes.providers.mock.walk import (
    HISTORY_BARS,
    Aggregator,
    BarTuple,
    Forming,
    backward_history,
    cents,
    level_cents,
    sigma_per_step,
    step_cents,
    to_bar,
)

Clock = Callable[[], datetime]
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS: Final = timedelta(milliseconds=1)
PLATFORM: Final = "mock"
KEPT_BARS: Final = 2_000  # completed 1m bars kept (and snapshotted) per symbol: 33 hours
CATCH_UP_SECONDS: Final = 60  # after a stall, at most this much is replayed tick by tick
SNAPSHOT_VERSION: Final = 1
CAPABILITIES: Final[JsonDict] = {
    "supported_asset_classes": ["CRYPTO", "STOCK"],
    "supported_order_types": ["MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TRAILING_STOP"],
    "position_mode": "NETTING",
    "features": ["bracket_orders", "oco_orders", "client_order_id_idempotency",
                 "notional_orders"],
    "max_leverage": "1",
}


def system_clock() -> datetime:
    """The wall clock; the default of `build`, and nowhere else."""
    return datetime.now(UTC)


def build(settings: ProviderSettings, *, wake: Wake, clock: Clock = system_clock) -> MockMarket:
    """The provider factory of the `mock` platform. Raises ValueError naming a bad option.
    Without a `tick_phase_ms` option, a session's ticks fall at a phase derived from its id, so
    that the markets one host serves do not all tick at the same instant."""
    config = parse_options(
        settings.options,
        symbols=settings.symbols,
        timeframes=settings.timeframes,
        initial_cash=settings.initial_cash,
    )
    if "tick_phase_ms" not in settings.options and settings.session_id:
        config = replace(config, tick_phase_ms=phase_of(settings.session_id,
                                                        config.quote_interval_ms))
    return MockMarket(config, clock=clock, restored=settings.restored)


def phase_of(session_id: str, interval_ms: int) -> int:
    """A stable phase in [0, interval_ms) from a session id: the same on every host (a session
    taken over keeps its ticks), spread evenly across sessions."""
    digest = hashlib.sha256(session_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % interval_ms


class _TickClock:
    """The exchange's clock: the tick's time while a tick is matched, else the wall clock."""

    __slots__ = ("pinned", "wall")

    def __init__(self, wall: Clock) -> None:
        self.wall = wall
        self.pinned: datetime | None = None

    def now(self) -> datetime:
        return self.wall() if self.pinned is None else self.pinned


class _Symbol:
    """The walk and the bars of one symbol."""

    __slots__ = ("aggregators", "bars", "forming", "level", "mid", "name")

    def __init__(self, name: str, timeframes: tuple[str, ...]) -> None:
        self.name = name
        self.level = level_cents(name)
        self.mid = self.level
        self.forming: Forming | None = None  # the 1m bar of the current minute
        self.aggregators = {tf: Aggregator(tf) for tf in timeframes if tf != "1m"}
        self.bars: deque[BarTuple] = deque(maxlen=KEPT_BARS)  # completed 1m bars


class MockMarket(ExchangeBook):
    """One session's mock market: the walk, the candles, and a SimulatedExchange as the book."""

    platform = PLATFORM
    broker = PLATFORM
    pacing = Pacing.WALL_CLOCK

    def __init__(self, config: MockConfig, *, clock: Clock, restored: JsonDict | None) -> None:
        self.config = config
        self._wall = clock
        self._interval = config.quote_interval_ms
        self._sigma = sigma_per_step(float(config.volatility), self._interval / 1000)
        self._pull = self._interval / 1000 / 86_400  # back to the level over about a day
        self._max_catch_up = max(1, CATCH_UP_SECONDS * 1000 // self._interval)
        self._clock = _TickClock(clock)
        self.exchange = SimulatedExchange(
            symbols=config.symbols,
            config=BacktestConfig(
                initial_cash=config.initial_cash,
                commission=config.commission,
                slippage_bps=config.slippage_bps,
                currency="USD",
            ),
            clock=self._clock,
            last_price=self._last_price,
        )
        self._symbols = {s: _Symbol(s, config.timeframes) for s in config.symbols}
        self._events: list[Event] = []
        self._quotes_pending = False  # quote events wait in _events (bounds an undrained queue)
        self._rng = random.Random(config.seed)
        now_ms = _ms(clock())
        phase = config.tick_phase_ms % self._interval
        self._origin_ms = now_ms - (now_ms - phase) % self._interval  # a tick instant, <= now
        self._tick = 0  # ticks done since the origin
        self._closed = False
        if restored is None:
            self._seed_history()
        else:
            self._restore(restored)

    # -- time ---------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self._wall()

    def next_due(self) -> float | None:
        """Seconds to the next tick (0 when it is already due)."""
        due_ms = self._origin_ms + (self._tick + 1) * self._interval
        return max(0.0, (due_ms - _ms(self._wall())) / 1000)

    def advance(self, now: datetime) -> None:
        """Play every tick due by `now`. After a stall longer than CATCH_UP_SECONDS the walk
        jumps over the rest in one step per symbol (as wide as the time skipped), so a stalled
        host catches up with bounded work; only the last tick's quotes are streamed."""
        target = (_ms(now) - self._origin_ms) // self._interval
        if target <= self._tick:
            return
        self._take_exchange_events()
        skipped = target - self._tick - self._max_catch_up
        if skipped > 0:
            self._jump(skipped)
        try:
            while self._tick < target:
                self._play_tick(quotes=self._tick + 1 == target)
        finally:
            self._clock.pinned = None  # between ticks, actions are stamped with the wall clock

    def _jump(self, ticks: int) -> None:
        sigma = self._sigma * ticks**0.5
        for sym in self._symbols.values():
            sym.mid = step_cents(self._rng, sym.mid, sym.level, sigma, min(1.0, self._pull * ticks))
        self._tick += ticks

    def _play_tick(self, *, quotes: bool) -> None:
        self._tick += 1
        stamp = self._tick_time()
        self._clock.pinned = stamp
        epoch = (self._origin_ms + self._tick * self._interval) // 1000
        ex = self.exchange
        for sym in self._symbols.values():
            before = sym.mid
            sym.mid = step_cents(self._rng, before, sym.level, self._sigma, self._pull)
            self._candles(sym, epoch, abs(sym.mid - before) + 1, stamp)
            ex.ledger.mark(sym.name, cents(sym.mid))
        if quotes:
            if self._quotes_pending:  # nobody drained the last ones: a newer quote supersedes
                self._events = [e for e in self._events if not isinstance(e, QuoteEvent)]
            self._events.extend(QuoteEvent(self.quote(s), stamp) for s in self._symbols)
            self._quotes_pending = True
        for name in self._symbols:
            if ex.open_by_symbol.get(name):
                self._match(name, epoch)
        self._events.extend(ex.take_events())

    def _match(self, symbol: str, epoch: int) -> None:
        """Buys against the ask, sells against the bid; the bar's far end leaves room for
        slippage, which the exchange clamps to the bar."""
        quote = self.quote(symbol)
        slip = self.config.slippage_bps
        ask, bid = quote.ask, quote.bid
        ex = self.exchange
        process_bar(
            ex,
            symbol,
            epoch,
            ask,
            apply_slippage(ask, Side.BUY, slip),
            ask,
            Decimal(1),
            side=Side.BUY,
        )
        process_bar(
            ex,
            symbol,
            epoch,
            bid,
            bid,
            apply_slippage(bid, Side.SELL, slip),
            Decimal(1),
            side=Side.SELL,
        )

    # -- candles ------------------------------------------------------------------------------

    def _candles(self, sym: _Symbol, epoch: int, volume: int, stamp: datetime) -> None:
        start = bucket_start(epoch, "1m")
        forming = sym.forming
        if forming is not None and forming.start != start:
            self._complete_minute(sym, forming.row(), stamp)
            forming = None
        if forming is None:
            sym.forming = Forming(start, sym.mid, sym.mid, sym.mid, sym.mid, volume)
        else:
            forming.add(sym.mid, sym.mid, sym.mid, volume)

    def _complete_minute(self, sym: _Symbol, row: BarTuple, stamp: datetime | None) -> None:
        """Keep a completed 1m bar, and stream it and the coarser bars it completes (`stamp`
        None: history being seeded, nothing streams)."""
        sym.bars.append(row)
        self._stream(sym, "1m", [row], stamp)
        for tf, aggregator in sym.aggregators.items():
            self._stream(sym, tf, aggregator.add(row), stamp)

    def _stream(self, sym: _Symbol, tf: str, rows: list[BarTuple], stamp: datetime | None) -> None:
        if stamp is not None and rows and tf in self.config.timeframes:
            self._events.extend(CandleEvent(to_bar(sym.name, tf, r), stamp) for r in rows)

    def _seed_history(self) -> None:
        """Recent 1m history from the first request: walked backwards from the starting price,
        ending where the current minute starts (its bar forms from the live ticks)."""
        first = bucket_start(self._origin_ms // 1000, "1m")
        for sym in self._symbols.values():
            rows = backward_history(
                sym.name,
                seed=self.config.seed,
                close=sym.mid,
                before=first,
                volatility=float(self.config.volatility),
                count=HISTORY_BARS,
            )
            for row in rows:
                self._complete_minute(sym, row, None)
            sym.forming = Forming(first, sym.mid, sym.mid, sym.mid, sym.mid, 0)

    def quote(self, symbol: str) -> Quote:
        """The current top of book; bid < ask always. Raises SymbolNotFound."""
        sym = self._symbols.get(symbol)
        if sym is None:
            raise SymbolNotFound(symbol)
        # half the spread, at least one cent each side, so bid < ask at any price
        half = max(1, -(-sym.mid * int(self.config.spread_bps * 100) // 2_000_000))
        return Quote(
            symbol=symbol,
            provider=PLATFORM,
            bid=cents(sym.mid - half),
            ask=cents(sym.mid + half),
            last=cents(sym.mid),
            timestamp=self._tick_time(),
        )

    def history(
        self,
        symbol: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[Bar]:
        """Completed 1m bars (the market's own; the host resamples them to any timeframe)
        stamped within [start, end], the last `limit` of them, at most KEPT_BARS. Raises
        SymbolNotFound."""
        sym = self._symbols.get(symbol)
        if sym is None:
            raise SymbolNotFound(symbol)
        lo = None if start is None else start.timestamp()
        hi = None if end is None else end.timestamp()
        rows = [r for r in sym.bars if (lo is None or r[0] >= lo) and (hi is None or r[0] <= hi)]
        if limit is not None:
            rows = rows[-limit:] if limit > 0 else []
        return [to_bar(symbol, "1m", r) for r in rows]

    def drain_events(self) -> list[Event]:
        """Candles, quotes, orders, fills, positions and account changes since the last drain."""
        self._take_exchange_events()
        events, self._events = self._events, []
        self._quotes_pending = False
        return events

    def capabilities(self) -> JsonDict:
        return dict(CAPABILITIES)

    def status(self) -> JsonDict:
        return {
            "connected": not self._closed,
            "last_heartbeat": timestamp_str(self._tick_time()),
            "latency_ms": 0,  # the market is in-process
        }

    def circuit_breakers(self) -> JsonDict:
        return {
            "adapter": {"state": "closed", "failure_count": 0},
            "exit_order": {"state": "closed", "failure_count": 0},
        }

    def close(self) -> None:
        self._closed = True

    # -- snapshot -----------------------------------------------------------------------------

    def snapshot(self) -> JsonDict:
        """The walk, the bars and the book, as JSON; `build` with it as `restored` carries on
        from exactly here (events not yet drained are not part of it)."""
        rng_version, rng_state, gauss_next = self._rng.getstate()
        return {
            "version": SNAPSHOT_VERSION,
            "quote_interval_ms": self._interval,
            "origin_ms": self._origin_ms,
            "tick": self._tick,
            "rng": [rng_version, list(rng_state), gauss_next],
            "symbols": {
                s.name: {
                    "mid": s.mid,
                    "forming": None if s.forming is None else list(s.forming.row()),
                    "aggregating": {
                        tf: None if a.forming is None else list(a.forming.row())
                        for tf, a in s.aggregators.items()
                    },
                    "bars": [list(r) for r in s.bars],
                }
                for s in self._symbols.values()
            },
            "exchange": exchange_to_json(self.exchange),
        }

    def _restore(self, state: JsonDict) -> None:
        if state.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"mock snapshot version {state.get('version')!r} is not supported")
        if set(state["symbols"]) != set(self._symbols):
            raise ValueError("the snapshot's symbols are not this session's symbols")
        if state["quote_interval_ms"] != self._interval:
            raise ValueError("the snapshot's quote_interval_ms is not this session's")
        self._origin_ms, self._tick = int(state["origin_ms"]), int(state["tick"])
        version, rng_state, gauss_next = state["rng"]
        self._rng.setstate((version, tuple(rng_state), gauss_next))
        for name, saved in state["symbols"].items():
            sym = self._symbols[name]
            sym.mid = int(saved["mid"])
            sym.forming = _forming(saved["forming"])
            for tf, aggregator in sym.aggregators.items():
                aggregator.forming = _forming(saved["aggregating"].get(tf))
            sym.bars.extend(_row(r) for r in saved["bars"])
        restore_exchange(self.exchange, state["exchange"])

    # -- internals ----------------------------------------------------------------------------

    def _tick_time(self) -> datetime:
        """When the last tick played happened (the origin before the first)."""
        return EPOCH + (self._origin_ms + self._tick * self._interval) * ONE_MS

    def _last_price(self, symbol: str) -> Decimal | None:
        sym = self._symbols.get(symbol)
        return None if sym is None else cents(sym.mid)

    def _take_exchange_events(self) -> None:
        """Strategy actions since the last tick go out before the next tick's events."""
        if self.exchange.events or self.exchange.account_changed:
            self._events.extend(self.exchange.take_events())


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("the mock market's clock must give tz-aware UTC datetimes")
    return (moment - EPOCH) // ONE_MS  # integer arithmetic: no float rounding of the ms


def _row(raw: Any) -> BarTuple:
    epoch, o, h, low, c, v = (int(x) for x in raw)
    return (epoch, o, h, low, c, v)


def _forming(raw: Any) -> Forming | None:
    return None if raw is None else Forming(*_row(raw))


_CHECKED: ProviderFactory = build  # mypy proves here that `build` makes a Provider
