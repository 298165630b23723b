"""Finished backtests made directly in the database, for the pages that show results: a real
in-process run of the engine (runtimes.core.engine.run_backtest) stored exactly as the session
host stores it (with its trade analysis), or a synthetic result of any size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from runtimes.core.datasets import load_market_data
from runtimes.core.domain import OrderRequest, Side
from runtimes.core.engine import BacktestConfig, run_backtest
from runtimes.hosting.host import store_completed_result
from runtimes.models import SessionResult, State, TradingSession

START = datetime(2021, 4, 1, tzinfo=UTC)


def completed_session(*, workspace, by, dataset, **fields) -> TradingSession:
    return TradingSession.objects.create(
        workspace=workspace, created_by=by, dataset=dataset,
        symbols=sorted(dataset.paths()), timeframe=dataset.timeframe, state=State.COMPLETED,
        created_at=START, started_at=START, finished_at=START + timedelta(minutes=1), **fields)


def run_in_process(*, workspace, by, dataset, every: int = 10) -> TradingSession:
    """A completed session whose result is a real run: buy 1 of the first symbol every
    twice `every` bars, sell it `every` bars later."""
    market = load_market_data(dataset.paths())
    symbol = sorted(dataset.paths())[0]

    def trade(engine, batch) -> None:
        step = engine.steps_done
        if step % every == 0:
            side = Side.BUY if step // every % 2 else Side.SELL
            if side is Side.BUY or engine.positions():
                engine.submit_order(OrderRequest(symbol=symbol, side=side, quantity=Decimal(1)))

    result = run_backtest(market, on_batch=trade)
    session = completed_session(workspace=workspace, by=by, dataset=dataset,
                                batches=len(result.equity_curve))
    store_completed_result(session, result, data=market,
                           initial_cash=BacktestConfig().initial_cash)
    # read again: the row cached on `session` predates the equity and trips written as text
    return TradingSession.objects.get(pk=session.pk)


def synthetic_result(session: TradingSession, *, trades: int) -> SessionResult:
    """`trades` fills of as many orders, and one equity point a minute for twice as long."""
    def stamp(minute: int) -> str:
        return (START + timedelta(minutes=minute)).isoformat()

    fills = [{"id": f"T{i}", "order_id": f"O{i}", "symbol": "BTCUSDT",
              "side": "BUY" if i % 2 == 0 else "SELL", "quantity": "1",
              "price": str(Decimal(50_000) + i % 97), "commission": "0.5",
              "commission_currency": "USD", "is_maker": False,
              "timestamp": stamp(2 * i).replace("+00:00", "Z")} for i in range(trades)]
    orders = [{"id": f"O{i}", "symbol": "BTCUSDT", "side": fills[i]["side"],
               "order_type": "MARKET", "quantity": "1", "filled_quantity": "1",
               "remaining_quantity": "0", "average_fill_price": fills[i]["price"],
               "status": "FILLED", "time_in_force": "GTC", "created_at": fills[i]["timestamp"],
               "updated_at": fills[i]["timestamp"]} for i in range(trades)]
    equity = [[stamp(m), str(Decimal(100_000) + (m % 500) - 250)] for m in range(2 * trades)]
    metrics = {"total_return": "0.0123", "max_drawdown": "0.0051", "sharpe": "1.234",
               "number_of_trades": trades // 2, "final_equity": "101230.5"}
    return SessionResult.objects.create(session=session, orders=orders, trades=fills,
                                        equity=equity, metrics=metrics)
