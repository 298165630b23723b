"""Trading API commands executed by a session host against its engine, JSON in and JSON out.

A command is `{"op": ..., "path": {...}, "query": {...}, "body": ...}` exactly as the view received
it; it is parsed here with `wire_parse` (the view has already parsed it once to answer 400s without
a round trip) because only JSON crosses the bus. Runs in the host thread: the engine is
single-threaded. Core errors become their envelope with their status.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from runtimes.bus import Reply
from runtimes.core import wire
from runtimes.core.domain import Order, OrderStatus, OrderType, Side
from runtimes.core.engine import BacktestEngine
from runtimes.core.errors import OrderValidationError, TradingError, UnsupportedOperation
from runtimes.core.wire_parse import (
    parse_close_position_request,
    parse_datetime_param,
    parse_limit,
    parse_modify_request,
    parse_order_request,
    parse_status_filter,
)

JsonDict = dict[str, Any]
PROVIDER = "backtest"

CAPABILITIES: JsonDict = {
    "supported_asset_classes": ["CRYPTO", "STOCK"],
    "supported_order_types": ["MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TRAILING_STOP"],
    "position_mode": "NETTING",
    "features": ["bracket_orders", "oco_orders", "client_order_id_idempotency", "event_ack"],
    "max_leverage": "1",
}
CIRCUIT_BREAKERS: JsonDict = {
    "adapter": {"state": "closed", "failure_count": 0},
    "exit_order": {"state": "closed", "failure_count": 0},
}


def execute(engine: BacktestEngine, command: JsonDict) -> Reply:
    """Run one command; never raises for a client error (the reply carries the envelope).
    `session` is not here: the host answers it, since it knows the session rather than the
    engine."""
    handler = HANDLERS.get(command.get("op", ""))
    if handler is None:
        body = {"code": "INVALID_REQUEST", "message": "unknown operation", "details": {}}
        return Reply(404, body)
    try:
        return handler(engine, command.get("path") or {}, command.get("query") or {},
                       command.get("body"))
    except TradingError as exc:
        return Reply(exc.status, exc.as_dict())


# -- filters ------------------------------------------------------------------------------------


def _order_filter(query: JsonDict) -> Callable[[list[Order]], list[Order]]:
    symbol = query.get("symbol")
    statuses = parse_status_filter(query.get("status"))
    side = query.get("side")
    if side is not None and side.upper() not in Side.__members__:
        raise OrderValidationError.invalid("side", side, "must be one of BUY, SELL")
    client_id, oco = query.get("client_order_id"), query.get("oco_group_id")
    since = parse_datetime_param("since", query.get("since"))
    until = parse_datetime_param("until", query.get("until"))
    limit = parse_limit(query.get("limit"))

    def keep(order: Order) -> bool:
        return (
            (symbol is None or order.symbol == symbol)
            and (statuses is None or order.status in statuses)
            and (side is None or order.side.value == side.upper())
            and (client_id is None or order.client_order_id == client_id)
            and (oco is None or order.oco_group_id == oco)
            and _within(order.created_at, since, until)
        )

    def apply(orders: list[Order]) -> list[Order]:
        kept = [o for o in orders if keep(o)]
        return kept if limit is None else kept[-limit:] if limit else []

    return apply


def _within(moment: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or moment >= since) and (until is None or moment <= until)


# -- handlers -----------------------------------------------------------------------------------
# Each takes (engine, path, query, body) and returns a Reply.


def _account(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    return Reply(200, wire.account_json(engine.account()))


def _submit(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    # The exchange makes client_order_id idempotent: a repeat returns the first order.
    order = engine.submit_order(parse_order_request(body))
    return Reply(201, wire.order_handle_json(order))


def _open_orders(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    orders = _order_filter(query)(engine.orders(open_only=True))
    return Reply(200, [wire.order_json(o) for o in orders])


def _history(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    terminal = [o for o in engine.all_orders() if o.status.is_terminal]
    return Reply(200, [wire.order_json(o) for o in _order_filter(query)(terminal)])


def _get_order(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    return Reply(200, wire.order_json(engine.order(path["order_id"])))


def _modify_order(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    changes = parse_modify_request(body).changes()
    order, previous = engine.modify_order(path["order_id"], **changes)
    answer: JsonDict = {"order": wire.order_json(order)}
    if previous is not None:
        answer["previous_order_id"] = previous
    return Reply(200, answer)


def _cancel_order(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    order = engine.cancel_order(path["order_id"])
    return Reply(200, {"success": order.status == OrderStatus.CANCELLED,
                       "order": wire.order_json(order)})


def _cancel_all(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    cancelled = engine.cancel_all(query.get("symbol"))
    return Reply(200, {"cancelled_count": len(cancelled), "failed_count": 0,
                       "failed_order_ids": []})


def _positions(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    symbol = query.get("symbol")
    found = [p for p in engine.positions() if symbol is None or p.symbol == symbol]
    return Reply(200, [wire.position_json(p) for p in found])


def _get_position(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    return Reply(200, wire.position_json(engine.position(path["position_id"])))


def _modify_position(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    engine.position(path["position_id"])  # 404 first, as for any unknown position
    raise UnsupportedOperation("modifying a position", PROVIDER)


def _closing_order(engine: BacktestEngine, symbol: str) -> Order | None:
    """A working reduce-only market order on `symbol`: the position is already being closed.
    The SDK retries close DELETEs on timeouts and 5xx, so a repeat must not submit a second one.
    (Resting reduce-only limits and stops, e.g. a take-profit, do not count.)"""
    return next((o for o in engine.orders(open_only=True, symbol=symbol)
                 if o.reduce_only and o.order_type == OrderType.MARKET), None)


def _close_position(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    request = parse_close_position_request(body)
    symbol = engine.position(path["position_id"]).symbol
    closing = _closing_order(engine, symbol) if request.order_type == OrderType.MARKET else None
    if closing is not None:
        return Reply(200, wire.order_handle_json(closing))
    order = engine.close_position(
        path["position_id"],
        quantity=request.quantity,
        order_type=request.order_type.value,
        limit_price=request.limit_price,
    )
    return Reply(200, wire.order_handle_json(order))


def _close_all(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    symbol = query.get("symbol")
    held = [p for p in engine.positions() if symbol is None or p.symbol == symbol]
    orders = [_closing_order(engine, p.symbol) or engine.close_position(p.symbol) for p in held]
    return Reply(200, [wire.order_handle_json(o) for o in orders])


def _trades(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    since = parse_datetime_param("since", query.get("since"))
    until = parse_datetime_param("until", query.get("until"))
    limit = parse_limit(query.get("limit"))
    fills = [
        f for f in engine.fills(symbol=query.get("symbol"), order_id=query.get("order_id"))
        if _within(f.timestamp, since, until)
    ]
    if limit is not None:
        fills = fills[-limit:] if limit else []
    return Reply(200, [wire.fill_json(f) for f in fills])


def _quote(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    return Reply(200, wire.quote_json(engine.quote(path["symbol"])))


def _bars(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    symbol, timeframe = path["symbol"], query.get("timeframe")
    if not timeframe:
        raise OrderValidationError.missing("timeframe")
    bars = engine.history(
        symbol,
        start=parse_datetime_param("start", query.get("start")),
        end=parse_datetime_param("end", query.get("end")),
        limit=parse_limit(query.get("limit")),
    )
    if bars and bars[0].timeframe != timeframe:
        # Resampling on request is not offered yet; the session's own timeframe is.
        raise OrderValidationError.invalid(
            "timeframe", timeframe, f"must be the session's timeframe {bars[0].timeframe}")
    return Reply(200, [wire.bar_json(b, PROVIDER) for b in bars])


def _status(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    # Simulated time is the backtest's heartbeat: it is what "now" means to the strategy.
    return Reply(200, {"connected": True, "last_heartbeat": wire.timestamp_str(engine.now),
                       "latency_ms": 0})


def _capabilities(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    return Reply(200, CAPABILITIES)


def _circuit_breakers(engine: BacktestEngine, path: JsonDict, query: JsonDict, body: Any) -> Reply:
    return Reply(200, CIRCUIT_BREAKERS)


Handler = Callable[[BacktestEngine, JsonDict, JsonDict, Any], Reply]
HANDLERS: dict[str, Handler] = {
    "account": _account,
    "submit_order": _submit,
    "list_orders": _open_orders,
    "order_history": _history,
    "get_order": _get_order,
    "modify_order": _modify_order,
    "cancel_order": _cancel_order,
    "cancel_all_orders": _cancel_all,
    "list_positions": _positions,
    "get_position": _get_position,
    "modify_position": _modify_position,
    "close_position": _close_position,
    "close_all_positions": _close_all,
    "list_trades": _trades,
    "quote": _quote,
    "bars": _bars,
    "status": _status,
    "capabilities": _capabilities,
    "circuit_breakers": _circuit_breakers,
    "reset_circuit_breakers": _circuit_breakers,
}
# Commands that can create events (orders, fills): the host streams those events after them.
ACTIONS = frozenset({
    "submit_order", "modify_order", "cancel_order", "cancel_all_orders", "close_position",
    "close_all_positions",
})
