"""Accounting invariants of the engine under random bars, orders and settings (Hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from runtimes.core.bars import Bar
from runtimes.core.costs import Commission
from runtimes.core.domain import OrderRequest, OrderType, Side, TimeInForce
from runtimes.core.engine import BacktestConfig, BacktestEngine
from runtimes.core.engine_result import EquityCurve
from runtimes.core.errors import OrderRejected, TradingError
from runtimes.core.market_data import MarketData
from tests.runtimes.core.scenario import T0

D = Decimal
CENT = D("0.01")


@st.composite
def bar_rows(draw: st.DrawFn) -> list[Bar]:
    count = draw(st.integers(min_value=2, max_value=10))
    price = draw(st.integers(min_value=5_000, max_value=15_000))
    made = []
    for i in range(count):
        open_ = max(100, price + draw(st.integers(-400, 400)))
        close = max(100, open_ + draw(st.integers(-400, 400)))
        high = max(open_, close) + draw(st.integers(0, 200))
        low = max(1, min(open_, close) - draw(st.integers(0, 200)))
        volume = D(draw(st.integers(0, 20)))
        stamp = T0 + timedelta(days=i)
        made.append(
            Bar("AAA", "1d", stamp, *(D(v) * CENT for v in (open_, high, low, close)), volume)
        )
        price = close
    return made


@dataclass(frozen=True)
class Action:
    side: Side
    order_type: OrderType
    quantity: Decimal
    offset: int  # price distance from the last close, in cents
    time_in_force: TimeInForce
    bracket: bool


actions = st.builds(
    Action,
    side=st.sampled_from(Side),
    order_type=st.sampled_from(
        [OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT]
    ),
    quantity=st.sampled_from([D(1), D(2), D("0.5"), D(5)]),
    offset=st.integers(-300, 300),
    time_in_force=st.sampled_from(TimeInForce),
    bracket=st.booleans(),
)

configs = st.builds(
    BacktestConfig,
    initial_cash=st.sampled_from([D(1000), D(250)]),
    account_type=st.just("margin"),
    leverage=st.sampled_from([D(1), D(2)]),
    commission=st.builds(
        Commission,
        percent=st.sampled_from([D(0), D("0.1")]),
        per_share=st.sampled_from([D(0), D("0.01")]),
        minimum=st.sampled_from([D(0), D(1)]),
    ),
    slippage_bps=st.sampled_from([D(0), D(5), D(50)]),
    max_volume_share=st.sampled_from([None, D("0.5")]),
    stop_take_same_bar=st.sampled_from(["pessimistic", "optimistic"]),
) | st.builds(BacktestConfig, initial_cash=st.sampled_from([D(1000), D(250)]))


def request_for(action: Action, last: Decimal) -> OrderRequest:
    price = max(CENT, last + D(action.offset) * CENT)
    fields: dict[str, Decimal] = {}
    if action.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        fields["limit_price"] = price
    if action.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        fields["stop_price"] = price
    if action.bracket:
        fields["stop_loss"] = max(CENT, last - D(2))
        fields["take_profit"] = last + D(2)
    return OrderRequest(
        symbol="AAA",
        side=action.side,
        quantity=action.quantity,
        order_type=action.order_type,
        time_in_force=action.time_in_force,
        **fields,
    )


def run(rows: list[Bar], plan: list[list[Action]], config: BacktestConfig) -> BacktestEngine:
    """Run the plan, checking the per-step invariants on the way."""
    engine = BacktestEngine(MarketData.from_bars(rows), config)
    step = 0
    while engine.next_batch() is not None:
        check_equity_is_cash_plus_marked_positions(engine)
        last = engine.last_close("AAA")
        assert last is not None
        for action in plan[step] if step < len(plan) else []:
            try:
                engine.submit_order(request_for(action, last))
            except OrderRejected:
                pass
            except TradingError as error:  # validation: only an impossible bracket may fail
                assert error.code == "INVALID_VALUE"
        step += 1
    return engine


def check_equity_is_cash_plus_marked_positions(engine: BacktestEngine) -> None:
    account = engine.account()
    marked = sum(
        (p.signed_quantity * engine.last_close(p.symbol) for p in engine.positions()), D(0)
    )  # type: ignore[operator]
    assert account.equity == account.cash + marked
    assert account.equity == account.balance + account.unrealized_pnl


plans = st.lists(st.lists(actions, max_size=2), max_size=10)


@settings(max_examples=150, deadline=None)
@given(rows=bar_rows(), plan=plans, config=configs)
def test_accounting_invariants_hold_for_any_orders(rows, plan, config):
    engine = run(rows, plan, config)
    account = engine.account()
    bars_by_time = {b.timestamp: b for b in rows}
    for fill in engine.fills():
        bar = bars_by_time[fill.timestamp]
        assert bar.low <= fill.price <= bar.high, "a fill outside its bar's range"
    for order in engine.orders():
        filled = sum((f.quantity for f in engine.fills(order_id=order.id)), D(0))
        assert order.filled_quantity == filled
        assert order.remaining_quantity == order.quantity - filled
        assert order.remaining_quantity >= 0
    # realised + unrealised PnL equals the equity change less fees, exactly
    change = account.equity - config.initial_cash
    assert account.realized_pnl + account.unrealized_pnl - account.total_commission == change
    assert sum((f.commission for f in engine.fills()), D(0)) == account.total_commission
    if not config.is_margin:
        assert all(p.side == "LONG" for p in engine.positions())
        assert account.cash >= 0


@settings(max_examples=40, deadline=None)
@given(rows=bar_rows(), plan=plans, config=configs)
def test_same_inputs_give_the_same_outputs(rows, plan, config):
    first, second = run(rows, plan, config), run(rows, plan, config)
    assert repr(first.fills()) == repr(second.fills())
    assert repr(first.orders()) == repr(second.orders())
    data = MarketData.from_bars(rows)
    curve = list(EquityCurve(data, first._holdings_by_step))
    assert curve == list(EquityCurve(data, second._holdings_by_step))
    assert curve[-1].equity == first.account().equity
    assert EquityCurve(data, first._holdings_by_step)[-1] == curve[-1]
