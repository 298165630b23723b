"""RSI mean reversion on one symbol: when RSI falls below `oversold`, buy with a bracket (a
stop-loss below and a take-profit above the entry) and let the bracket take the position out.

A plain `tektii` SDK script; it runs unchanged on a laptop against Parity and hosted on it.
Connection: TEKTII_TRADING_GATEWAY_URL and TEKTII_TRADING_GATEWAY_API_KEY (read by the SDK).
Parameters: PARITY_STRATEGY_PARAMS, a JSON object, all optional:
    {"symbol": "BTCUSDT", "period": 14, "oversold": 30, "quantity": "1",
     "stop_loss_pct": "1", "take_profit_pct": "2"}
`symbol` defaults to the symbol of the first candle seen; the percentages are of the last close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from decimal import Decimal

from tektii import AsyncTradingGateway, CandleEvent, OrderEvent, PositionEvent, TektiiError

log = logging.getLogger("rsi_mean_reversion")

DEFAULTS = {"symbol": None, "period": 14, "oversold": 30, "quantity": "1",
            "stop_loss_pct": "1", "take_profit_pct": "2"}
DONE = {"REJECTED", "CANCELLED", "EXPIRED"}


def load_params(defaults: dict) -> dict:
    """Defaults overridden by the JSON object in PARITY_STRATEGY_PARAMS (unknown keys ignored)."""
    raw = os.environ.get("PARITY_STRATEGY_PARAMS", "").strip()
    try:
        given = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise SystemExit(f"PARITY_STRATEGY_PARAMS is not valid JSON: {exc}") from None
    if not isinstance(given, dict):
        raise SystemExit("PARITY_STRATEGY_PARAMS must be a JSON object")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        log.warning("ignoring unknown parameters: %s", ", ".join(unknown))
    return {**defaults, **{k: v for k, v in given.items() if k in defaults}}


class WilderRsi:
    """Relative strength index with Wilder's smoothing, fed one close at a time."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.previous: Decimal | None = None
        self.gains: list[Decimal] = []
        self.losses: list[Decimal] = []
        self.avg_gain = self.avg_loss = Decimal(0)

    def update(self, close: Decimal) -> Decimal | None:
        """The RSI after `close`, or None while warming up."""
        if self.previous is None:
            self.previous = close
            return None
        change, self.previous = close - self.previous, close
        gain, loss = max(change, Decimal(0)), max(-change, Decimal(0))
        if len(self.gains) < self.period:
            self.gains.append(gain)
            self.losses.append(loss)
            if len(self.gains) < self.period:
                return None
            self.avg_gain = sum(self.gains) / self.period
            self.avg_loss = sum(self.losses) / self.period
        else:
            self.avg_gain = (self.avg_gain * (self.period - 1) + gain) / self.period
            self.avg_loss = (self.avg_loss * (self.period - 1) + loss) / self.period
        if self.avg_loss == 0:
            return Decimal(100)
        return 100 - 100 / (1 + self.avg_gain / self.avg_loss)


class RsiMeanReversion:
    def __init__(self, gw: AsyncTradingGateway, params: dict) -> None:
        self.gw = gw
        self.symbol = params["symbol"]
        self.rsi = WilderRsi(int(params["period"]))
        self.oversold = Decimal(str(params["oversold"]))
        self.quantity = Decimal(str(params["quantity"]))
        self.stop_loss = Decimal(str(params["stop_loss_pct"])) / 100
        self.take_profit = Decimal(str(params["take_profit_pct"])) / 100
        self.entry_id: str | None = None  # the working or filled entry; None when flat
        self.orders = 0

    async def on_candle(self, bar) -> None:
        if self.symbol is None:
            self.symbol = bar.symbol
            log.info("trading %s", self.symbol)
        if bar.symbol != self.symbol:
            return
        close = Decimal(bar.close)
        rsi = self.rsi.update(close)
        if rsi is not None and rsi < self.oversold and self.entry_id is None:
            await self.enter(close, rsi)

    async def enter(self, close: Decimal, rsi: Decimal) -> None:
        tick = Decimal(1).scaleb(close.as_tuple().exponent)  # prices as precise as the data's
        stop = (close * (1 - self.stop_loss)).quantize(tick)
        target = (close * (1 + self.take_profit)).quantize(tick)
        try:
            order = await self.gw.submit_order(self.symbol, "buy", self.quantity,
                                               stop_loss=stop, take_profit=target)
        except TektiiError as exc:  # rejected (422), risk limit, connection: log and carry on
            log.warning("entry refused: %s", exc)
            return
        self.entry_id, self.orders = order.id, self.orders + 1
        log.info("RSI %.1f: buy %s %s, stop %s, target %s (order %s)", rsi, self.quantity,
                 self.symbol, stop, target, order.id)

    def on_order(self, order) -> None:
        if order.status == "REJECTED":
            log.warning("order %s rejected: %s", order.id, order.reject_reason)
        if order.id == self.entry_id and order.status in DONE:
            self.entry_id = None  # the entry never filled: flat again

    def on_position(self, event) -> None:
        if event.position.symbol == self.symbol and event.event == "POSITION_CLOSED":
            log.info("position closed, realized P&L %s", event.position.realized_pnl)
            self.entry_id = None


async def main() -> int:
    params = load_params(DEFAULTS)
    _exit_cleanly_on_sigterm()
    async with AsyncTradingGateway() as gw:
        strategy = RsiMeanReversion(gw, params)
        stream = gw.stream(on_backtest_complete=lambda _: log.info("backtest complete"))
        async with stream as events:
            async for event in events:
                if isinstance(event, CandleEvent):
                    await strategy.on_candle(event.bar)
                elif isinstance(event, OrderEvent):
                    strategy.on_order(event.order)
                elif isinstance(event, PositionEvent):
                    strategy.on_position(event)
    log.info("finished; %d entries placed", strategy.orders)
    return 0


def _exit_cleanly_on_sigterm() -> None:
    task = asyncio.current_task()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sys.exit(asyncio.run(main()))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(0)
