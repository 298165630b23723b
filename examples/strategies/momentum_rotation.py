"""Momentum rotation over several symbols: every `rebalance_every` bars, hold the `top_k` symbols
with the best trailing return over `lookback` bars (an equal share of equity each) and sell the
rest.

A plain `tektii` SDK script; it runs unchanged on a laptop against Parity and hosted on it.
Connection: TEKTII_TRADING_GATEWAY_URL and TEKTII_TRADING_GATEWAY_API_KEY (read by the SDK).
Parameters: PARITY_STRATEGY_PARAMS, a JSON object, all optional:
    {"symbols": ["AAPL", "MSFT"], "lookback": 20, "rebalance_every": 5, "top_k": 2,
     "invested": "0.95", "quantity_decimals": 0}
`symbols` defaults to every symbol the session streams; `invested` is the share of equity to put
to work; quantities are rounded down to `quantity_decimals` (0: whole shares).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections import defaultdict, deque
from decimal import ROUND_DOWN, Decimal

from tektii import AsyncTradingGateway, CandleEvent, OrderEvent, TektiiError

log = logging.getLogger("momentum_rotation")

DEFAULTS = {"symbols": None, "lookback": 20, "rebalance_every": 5, "top_k": 2,
            "invested": "0.95", "quantity_decimals": 0}
DONE = {"FILLED", "REJECTED", "CANCELLED", "EXPIRED"}


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


class MomentumRotation:
    def __init__(self, gw: AsyncTradingGateway, params: dict) -> None:
        self.gw = gw
        self.wanted = set(params["symbols"]) if params["symbols"] else None
        self.lookback = int(params["lookback"])
        self.rebalance_every = int(params["rebalance_every"])
        self.top_k = int(params["top_k"])
        self.invested = Decimal(str(params["invested"]))
        self.unit = Decimal(1).scaleb(-int(params["quantity_decimals"]))
        window = self.lookback + 1
        self.closes: dict[str, deque[Decimal]] = defaultdict(lambda: deque(maxlen=window))
        self.current_time = None
        self.bars = 0
        self.target: set[str] = set()  # the symbols to hold
        self.held: set[str] = set()  # as of the last look at the positions
        self.working: dict[str, str] = {}  # symbol -> id of a buy not filled yet
        self.orders = 0

    async def on_candle(self, bar) -> None:
        if self.wanted is not None and bar.symbol not in self.wanted:
            return
        # The candles of one timestamp arrive together; the first candle of the next timestamp
        # means the previous bar is complete for every symbol.
        if bar.timestamp != self.current_time:
            if self.current_time is not None:
                await self.on_bar_closed()
            self.current_time = bar.timestamp
        self.closes[bar.symbol].append(Decimal(bar.close))

    async def on_bar_closed(self) -> None:
        self.bars += 1
        if self.bars % self.rebalance_every == 0:
            returns = {s: c[-1] / c[0] - 1 for s, c in self.closes.items()
                       if len(c) > self.lookback}
            if len(returns) >= self.top_k:  # else still warming up
                ranked = sorted(returns, key=lambda s: (-returns[s], s))
                self.target = set(ranked[: self.top_k])
                await self.rebalance()
                return
        if self.target - self.held - set(self.working):
            await self.rebalance()  # buys that waited for the cash of earlier sales

    async def rebalance(self) -> None:
        try:
            self.held = {p.symbol for p in await self.gw.list_positions()}
            account = await self.gw.get_account()
        except TektiiError as exc:
            log.warning("cannot read positions or account, skipping this rebalance: %s", exc)
            return
        log.info("rebalance: hold %s (now %s)", sorted(self.target), sorted(self.held))
        for symbol in sorted(self.held - self.target):
            await self.close(symbol)
        budget = Decimal(account.equity) * self.invested / self.top_k
        cash = min(Decimal(account.balance), Decimal(account.margin_available))
        for symbol in sorted(self.target - self.held - set(self.working)):
            price = self.closes[symbol][-1]
            quantity = (min(budget, cash) / price).quantize(self.unit, ROUND_DOWN)
            if quantity * price < budget / 2:
                continue  # wait until the sales have filled rather than buy a sliver
            if await self.buy(symbol, quantity):
                cash -= quantity * price

    async def close(self, symbol: str) -> None:
        try:
            closing = await self.gw.close_all_positions(symbol=symbol)
        except TektiiError as exc:
            log.warning("closing %s failed: %s", symbol, exc)
            return
        self.orders += len(closing)

    async def buy(self, symbol: str, quantity: Decimal) -> bool:
        try:
            order = await self.gw.submit_order(symbol, "buy", quantity)
        except TektiiError as exc:  # rejected (422), risk limit, connection: log and carry on
            log.warning("buy %s %s refused: %s", quantity, symbol, exc)
            return False
        self.orders += 1
        if order.status not in DONE:
            self.working[symbol] = order.id
        log.info("buy %s %s: order %s %s", quantity, symbol, order.id, order.status)
        return True

    def on_order(self, order) -> None:
        if order.status == "REJECTED":
            log.warning("order %s (%s) rejected: %s", order.id, order.symbol, order.reject_reason)
        if order.status in DONE and self.working.get(order.symbol) == order.id:
            del self.working[order.symbol]
            if order.status == "FILLED":
                self.held.add(order.symbol)


async def main() -> int:
    params = load_params(DEFAULTS)
    _exit_cleanly_on_sigterm()
    async with AsyncTradingGateway() as gw:
        strategy = MomentumRotation(gw, params)
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
