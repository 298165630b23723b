"""The Trading API of a session no host runs: not started yet (created or queued), or ended.

Reads answer at once from what the platform knows without the host: before the start, the
configured account (the initial cash, nothing held, no orders); after the end, the final state
the host stored on the session's result (account, positions, orders, trades, session info;
runtimes/hosting/host.py writes it for completed, failed and cancelled runs alike). Anything
that would act, or that needs a market (quotes, bars), is refused by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from runtimes.core.errors import OrderNotFound, OrderValidationError, PositionNotFound
from runtimes.core.wire import decimal_str
from runtimes.core.wire_parse import parse_datetime_param, parse_limit, parse_status_filter
from runtimes.hosting.risk import RiskGuard
from runtimes.models import SessionResult, TradingSession

JsonDict = dict[str, Any]
# What a session no host runs can answer; the other operations need the host.
READABLE_OPS = frozenset({"session", "account", "list_positions", "get_position", "list_orders",
                          "order_history", "get_order", "list_trades"})
TERMINAL_ORDER_STATUSES = frozenset({"FILLED", "CANCELLED", "REJECTED", "EXPIRED"})


class FinalStateLost(Exception):
    """The session ran but ended without storing its final state (its host crashed)."""


def stored_reply(session: TradingSession, op: str, path: dict[str, str], query: dict[str, str],
                 *, extra_info: JsonDict | None = None) -> Any:
    """The body of `op` (one of READABLE_OPS) for `session`, which no host runs. Raises the
    core's TradingError (not found, bad filter) as a live session would; FinalStateLost when
    an ended session that had started stored nothing."""
    state = _state_of(session)
    if op == "session":
        return {**state["session_info"], "state": session.state, **(extra_info or {})}
    if op == "account":
        return state["account"]
    if op == "list_positions":
        symbol = query.get("symbol")
        return [p for p in state["positions"] if symbol is None or p.get("symbol") == symbol]
    if op == "get_position":
        wanted = path["position_id"]
        for position in state["positions"]:
            if wanted in (position.get("id"), position.get("symbol")):
                return position  # type: ignore[no-any-return]
        raise PositionNotFound(wanted)
    if op == "get_order":
        for order in state["orders"]:
            if order.get("id") == path["order_id"]:
                return order  # type: ignore[no-any-return]
        raise OrderNotFound(path["order_id"])
    if op in ("list_orders", "order_history"):
        keep_terminal = op == "order_history"
        orders = [o for o in state["orders"]
                  if (o.get("status") in TERMINAL_ORDER_STATUSES) == keep_terminal]
        return _order_filter(query)(orders)
    assert op == "list_trades", op
    return _trade_filter(query)(state["trades"])


def _state_of(session: TradingSession) -> JsonDict:
    result = SessionResult.objects.filter(session=session).defer("equity", "metrics").first()
    if result is not None and result.account:
        return {"account": result.account, "positions": result.positions,
                "orders": result.orders, "trades": result.trades,
                "session_info": result.session_info}
    if session.started_at is None:  # no strategy ever traded: what it was configured with
        return _configured_state(session)
    raise FinalStateLost(str(session.pk))  # a host that crashed, or a result from before


def _configured_state(session: TradingSession) -> JsonDict:
    cash = decimal_str(Decimal(session.initial_cash))
    return {
        "account": {"balance": cash, "equity": cash, "margin_used": "0",
                    "margin_available": cash, "unrealized_pnl": "0", "currency": "USD"},
        "positions": [], "orders": [], "trades": [],
        "session_info": {
            "id": str(session.pk), "platform": session.platform,
            "symbols": list(session.symbols), "timeframe": session.timeframe,
            "subscriptions": session.subscriptions(),
            **RiskGuard.for_session(session).session_fields(),
            "events_sent": session.events_sent, "events_acked": session.events_acked,
            "batches": session.batches, "simulated_time": None,
        },
    }


# -- filters, as the host applies them to live orders and trades (runtimes/hosting/commands.py) --


def _order_filter(query: dict[str, str]) -> Callable[[list[JsonDict]], list[JsonDict]]:
    symbol, side = query.get("symbol"), query.get("side")
    statuses = parse_status_filter(query.get("status"))
    wanted = None if statuses is None else {s.value for s in statuses}
    if side is not None and side.upper() not in ("BUY", "SELL"):
        raise OrderValidationError.invalid("side", side, "must be one of BUY, SELL")
    client_id, oco = query.get("client_order_id"), query.get("oco_group_id")
    within = _period(query)
    limit = parse_limit(query.get("limit"))

    def keep(order: JsonDict) -> bool:
        return ((symbol is None or order.get("symbol") == symbol)
                and (wanted is None or order.get("status") in wanted)
                and (side is None or order.get("side") == side.upper())
                and (client_id is None or order.get("client_order_id") == client_id)
                and (oco is None or order.get("oco_group_id") == oco)
                and within(order.get("created_at")))

    return lambda orders: _limited([o for o in orders if keep(o)], limit)


def _trade_filter(query: dict[str, str]) -> Callable[[list[JsonDict]], list[JsonDict]]:
    symbol, order_id = query.get("symbol"), query.get("order_id")
    within = _period(query)
    limit = parse_limit(query.get("limit"))

    def keep(trade: JsonDict) -> bool:
        return ((symbol is None or trade.get("symbol") == symbol)
                and (order_id is None or trade.get("order_id") == order_id)
                and within(trade.get("timestamp")))

    return lambda trades: _limited([t for t in trades if keep(t)], limit)


def _period(query: dict[str, str]) -> Callable[[str | None], bool]:
    since = parse_datetime_param("since", query.get("since"))
    until = parse_datetime_param("until", query.get("until"))

    def within(stamp: str | None) -> bool:
        if since is None and until is None:
            return True
        if stamp is None:
            return False
        moment = datetime.fromisoformat(stamp)
        return (since is None or moment >= since) and (until is None or moment <= until)

    return within


def _limited(rows: list[JsonDict], limit: int | None) -> list[JsonDict]:
    return rows if limit is None else rows[-limit:] if limit else []
