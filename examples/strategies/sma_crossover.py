"""SMA crossover on one symbol: buy when the fast simple moving average crosses above the slow
one, sell everything when it crosses back below.

A plain `tektii` SDK script; it runs unchanged on a laptop against Parity and hosted on it.
Connection: TEKTII_TRADING_GATEWAY_URL and TEKTII_TRADING_GATEWAY_API_KEY (read by the SDK).
Parameters: PARITY_STRATEGY_PARAMS, a JSON object, all optional:
    {"symbol": "BTCUSDT", "fast": 10, "slow": 30, "quantity": "1"}
`symbol` defaults to the symbol of the first candle seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections import deque
from decimal import Decimal

from tektii import AsyncTradingGateway, CandleEvent, OrderEvent, TektiiError

log = logging.getLogger("sma_crossover")

DEFAULTS = {"symbol": None, "fast": 10, "slow": 30, "quantity": "1"}


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


class SmaCrossover:
    def __init__(self, gw: AsyncTradingGateway, params: dict) -> None:
        self.gw = gw
        self.symbol = params["symbol"]
        self.fast, self.slow = int(params["fast"]), int(params["slow"])
        if not 0 < self.fast < self.slow:
            raise SystemExit("need 0 < fast < slow")
        self.quantity = Decimal(str(params["quantity"]))
        self.closes: deque[Decimal] = deque(maxlen=self.slow)
        self.fast_above: bool | None = None
        self.orders = 0

    async def on_candle(self, bar) -> None:
        if self.symbol is None:
            self.symbol = bar.symbol
            log.info("trading %s (fast %d, slow %d)", self.symbol, self.fast, self.slow)
        if bar.symbol != self.symbol:
            return
        self.closes.append(Decimal(bar.close))
        if len(self.closes) < self.slow:
            return
        recent = list(self.closes)[-self.fast:]
        fast_above = sum(recent) / self.fast > sum(self.closes) / self.slow
        if self.fast_above is not None and fast_above != self.fast_above:
            await (self.buy() if fast_above else self.sell())
        self.fast_above = fast_above

    async def buy(self) -> None:
        try:
            order = await self.gw.submit_order(self.symbol, "buy", self.quantity)
        except TektiiError as exc:  # rejected (422), risk limit, connection: log and carry on
            log.warning("buy %s %s refused: %s", self.quantity, self.symbol, exc)
            return
        self.orders += 1
        log.info("buy %s %s: order %s %s", self.quantity, self.symbol, order.id, order.status)

    async def sell(self) -> None:
        try:
            closing = await self.gw.close_all_positions(symbol=self.symbol)
        except TektiiError as exc:
            log.warning("closing %s failed: %s", self.symbol, exc)
            return
        if not closing:
            log.info("cross down but no %s position to close", self.symbol)
        self.orders += len(closing)
        for order in closing:
            log.info("sell %s: order %s %s", self.symbol, order.id, order.status)

    def on_order(self, order) -> None:
        if order.status == "REJECTED":
            log.warning("order %s rejected: %s", order.id, order.reject_reason)


async def main() -> int:
    params = load_params(DEFAULTS)
    _exit_cleanly_on_sigterm()
    async with AsyncTradingGateway() as gw:
        strategy = SmaCrossover(gw, params)
        stream = gw.stream(on_backtest_complete=lambda _: log.info("backtest complete"))
        async with stream as events:
            async for event in events:
                if isinstance(event, CandleEvent):
                    await strategy.on_candle(event.bar)
                elif isinstance(event, OrderEvent):
                    strategy.on_order(event.order)
    log.info("finished; %d orders placed", strategy.orders)
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
