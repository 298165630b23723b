"""Trading API commands executed by a session host against its provider, JSON in and JSON out.

A command is `{"op": ..., "path": {...}, "query": {...}, "body": ...}` exactly as the view received
it; it is parsed here with `wire_parse` (the view has already parsed it once to answer 400s without
a round trip) because only JSON crosses the bus. Runs in the host thread: a provider is
single-threaded. Core errors become their envelope with their status. Orders pass the session's
`RiskGuard` (risk limits, kill switches) before the provider sees them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from runtimes.core import wire
from runtimes.core.bars import Bar, BarSeries, epoch_to_datetime
from runtimes.core.datasets import resample
from runtimes.core.domain import Order, OrderStatus, OrderType, Side
from runtimes.core.errors import OrderNotModifiable, OrderValidationError, TradingError
from runtimes.core.provider import Pacing, Provider, Venue
from runtimes.core.timeframes import TIMEFRAME_SECONDS, TIMEFRAMES, bucket_start
from runtimes.core.wire_parse import (
    parse_close_position_request,
    parse_datetime_param,
    parse_limit,
    parse_modify_request,
    parse_order_request,
    parse_status_filter,
)
from runtimes.hosting.bus import Reply
from runtimes.hosting.risk import RiskGuard

JsonDict = dict[str, Any]
DEFAULT_BARS: Final = 100  # the reference's adapters answer 100 bars when no limit is given
EXIT_FIELDS: Final = ("stop_loss", "take_profit")

@dataclass(frozen=True, slots=True)
class Call:
    """One command as a handler sees it. `guard` is None when the host runs without risk
    controls (in-process tools and tests of a bare provider)."""

    provider: Provider
    path: JsonDict
    query: JsonDict
    body: Any
    guard: RiskGuard | None = None


def execute(
    provider: Provider, command: JsonDict, *, guard: RiskGuard | None = None
) -> Reply:
    """Run one command; never raises for a client error (the reply carries the envelope).
    `session` is not here: the host answers it, since it knows the session rather than the
    provider."""
    handler = HANDLERS.get(command.get("op", ""))
    if handler is None:
        body = {"code": "INVALID_REQUEST", "message": "unknown operation", "details": {}}
        return Reply(404, body)
    call = Call(provider, command.get("path") or {}, command.get("query") or {},
                command.get("body"), guard)
    try:
        return handler(call)
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


def _account(call: Call) -> Reply:
    return Reply(200, wire.account_json(call.provider.account()))


def _submit(call: Call) -> Reply:
    venue, request = call.provider, parse_order_request(call.body)
    # The exchange makes client_order_id idempotent: a repeat returns the first order, and is
    # not a new order for the risk limits either (an SDK retry must see the same answer).
    known = venue.order_by_client_id(request.client_order_id or "")
    if known is not None:
        return Reply(201, wire.order_handle_json(known))
    if call.guard is not None:
        call.guard.check_submit(venue, request, body=call.body)
    return Reply(201, wire.order_handle_json(venue.submit_order(request)))


def _open_orders(call: Call) -> Reply:
    orders = _order_filter(call.query)(call.provider.orders(open_only=True))
    return Reply(200, [wire.order_json(o) for o in orders])


def _history(call: Call) -> Reply:
    terminal = [o for o in call.provider.all_orders() if o.status.is_terminal]
    return Reply(200, [wire.order_json(o) for o in _order_filter(call.query)(terminal)])


def _get_order(call: Call) -> Reply:
    return Reply(200, wire.order_json(call.provider.order(call.path["order_id"])))


def _modify_order(call: Call) -> Reply:
    venue, order_id = call.provider, call.path["order_id"]
    changes = parse_modify_request(call.body).changes()
    current = venue.order(order_id)
    if call.guard is not None and not current.status.is_terminal:
        call.guard.check_modify(venue, current, changes, body=call.body)
    order, previous = venue.modify_order(order_id, **changes)
    answer: JsonDict = {"order": wire.order_json(order)}
    if previous is not None:
        answer["previous_order_id"] = previous
    return Reply(200, answer)


def _cancel_order(call: Call) -> Reply:
    order = call.provider.cancel_order(call.path["order_id"])
    return Reply(200, {"success": order.status == OrderStatus.CANCELLED,
                       "order": wire.order_json(order)})


def _cancel_all(call: Call) -> Reply:
    return Reply(200, _cancel_open_orders(call.provider, call.query.get("symbol")))


def _cancel_open_orders(venue: Venue, symbol: str | None) -> JsonDict:
    """CancelAllResult of cancelling every open order (of `symbol`), one at a time so that an
    order that cannot be cancelled is counted rather than failing the rest."""
    cancelled, failed = 0, []
    for order in venue.orders(open_only=True, symbol=symbol):
        try:
            venue.cancel_order(order.id)
            cancelled += 1
        except TradingError:
            # Already gone with an earlier cancel (e.g. its OCO sibling): cancelled all the same.
            if venue.order(order.id).status is OrderStatus.CANCELLED:
                cancelled += 1
            else:
                failed.append(order.id)
    return {"cancelled_count": cancelled, "failed_count": len(failed),
            "failed_order_ids": failed}


def _positions(call: Call) -> Reply:
    symbol = call.query.get("symbol")
    found = [p for p in call.provider.positions() if symbol is None or p.symbol == symbol]
    return Reply(200, [wire.position_json(p) for p in found])


def _get_position(call: Call) -> Reply:
    return Reply(200, wire.position_json(call.provider.position(call.path["position_id"])))


def _modify_position(call: Call) -> Reply:
    """Move the exits of a position (reference 2.2): the live stop-loss legs get the new stop
    price, the take-profit legs the new limit price; working entries of the symbol that carry
    a bracket get it too, so their later tranches are placed at the new levels. Not a risk
    check: moving protection never adds exposure."""
    venue, moves = call.provider, _exit_moves(call.body)
    position = venue.position(call.path["position_id"])
    missing = [kind for kind in moves if not _exit_legs(venue, position.symbol, kind)]
    if missing:
        error = OrderNotModifiable(position.id, reason=f"no live {' or '.join(missing)} exit "
                                                       f"legs to move for position")
        error.details = {"position_id": position.id, "missing": missing}
        raise error
    answer: JsonDict = {"position_id": position.id}
    for kind, price in moves.items():
        for entry in venue.orders(open_only=True, symbol=position.symbol):
            if entry.parent_order_id is None and getattr(entry, kind) not in (None, price):
                venue.modify_order(entry.id, **{kind: price})  # also moves that entry's legs
        legs = _exit_legs(venue, position.symbol, kind)
        field = "stop_price" if kind == "stop_loss" else "limit_price"
        for leg in legs:
            if getattr(leg, field) != price:
                venue.modify_order(leg.id, **{field: price})
        answer[kind] = {"order_ids": [leg.id for leg in legs],
                        "trigger_price": wire.decimal_str(price)}
    return Reply(200, answer)


def _exit_moves(body: Any) -> dict[str, Any]:
    """The new trigger prices of a move-exits body: at least one, each a positive decimal."""
    given = ({k: body[k] for k in EXIT_FIELDS if body.get(k) is not None}
             if isinstance(body, dict) else body)
    if given == {}:
        raise OrderValidationError("give at least one of: stop_loss, take_profit",
                                   code="INVALID_REQUEST")
    return parse_modify_request(given).changes()  # a non-object body is INVALID_REQUEST there


def _exit_legs(venue: Venue, symbol: str, kind: str) -> list[Order]:
    """Live exit legs of `symbol` (orders placed for a filled entry): stops or take-profits."""
    wanted = OrderType.STOP if kind == "stop_loss" else OrderType.LIMIT
    return [o for o in venue.orders(open_only=True, symbol=symbol)
            if o.parent_order_id is not None and o.order_type is wanted]


def _closing_order(venue: Venue, symbol: str) -> Order | None:
    """A working reduce-only market order on `symbol`: the position is already being closed.
    The SDK retries close DELETEs on timeouts and 5xx, so a repeat must not submit a second one.
    (Resting reduce-only limits and stops, e.g. a take-profit, do not count.)"""
    return next((o for o in venue.orders(open_only=True, symbol=symbol)
                 if o.reduce_only and o.order_type == OrderType.MARKET), None)


def _close_position(call: Call) -> Reply:
    # Deliberately outside the risk checks: flattening must work even with the kill switch on.
    venue, request = call.provider, parse_close_position_request(call.body)
    symbol = venue.position(call.path["position_id"]).symbol
    closing = _closing_order(venue, symbol) if request.order_type == OrderType.MARKET else None
    if closing is not None:
        return Reply(200, wire.order_handle_json(closing))
    order = venue.close_position(
        call.path["position_id"],
        quantity=request.quantity,
        order_type=request.order_type.value,
        limit_price=request.limit_price,
    )
    return Reply(200, wire.order_handle_json(order))


def _close_all(call: Call) -> Reply:
    venue, symbol = call.provider, call.query.get("symbol")
    held = [p for p in venue.positions() if symbol is None or p.symbol == symbol]
    orders = [_closing_order(venue, p.symbol) or venue.close_position(p.symbol) for p in held]
    return Reply(200, [wire.order_handle_json(o) for o in orders])


def _trades(call: Call) -> Reply:
    query = call.query
    since = parse_datetime_param("since", query.get("since"))
    until = parse_datetime_param("until", query.get("until"))
    limit = parse_limit(query.get("limit"))
    fills = [
        f for f in call.provider.fills(symbol=query.get("symbol"), order_id=query.get("order_id"))
        if _within(f.timestamp, since, until)
    ]
    if limit is not None:
        fills = fills[-limit:] if limit else []
    return Reply(200, [wire.fill_json(f) for f in fills])


def _quote(call: Call) -> Reply:
    return Reply(200, wire.quote_json(call.provider.quote(call.path["symbol"])))


def _bars(call: Call) -> Reply:
    """Bars seen so far in the session's timeframe or any whole multiple of it (resampled)."""
    query, timeframe = call.query, call.query.get("timeframe")
    if not timeframe:
        raise OrderValidationError.missing("timeframe")
    if timeframe not in TIMEFRAME_SECONDS:
        raise OrderValidationError.invalid("timeframe", timeframe,
                                           f"must be one of {', '.join(TIMEFRAMES)}")
    start = parse_datetime_param("start", query.get("start"))
    end = parse_datetime_param("end", query.get("end"))
    limit = parse_limit(query.get("limit"))
    bars = bars_in_timeframe(call.provider, call.path["symbol"], timeframe, start=start, end=end,
                             limit=DEFAULT_BARS if limit is None else limit)
    return Reply(200, [wire.bar_json(b, call.provider.platform) for b in bars])


def bars_in_timeframe(
    venue: Venue,
    symbol: str,
    timeframe: str,
    *,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[Bar]:
    """The last `limit` bars of `symbol` in `timeframe` stamped within [start, end], built from
    the bars seen so far (never a future one).

    A coarser bucket is shown only once complete: when the venue's time has reached its end,
    i.e. the bar of the session's timeframe that closes it has been seen whole. Until then its
    partial values are left out, so a bar never changes after a strategy has read it. Raises
    SymbolNotFound, or OrderValidationError INVALID_VALUE {field: "timeframe", provided} for a
    timeframe that is not a whole multiple of the session's.
    """
    latest = venue.history(symbol, limit=1)
    if not latest:
        return []  # nothing of the symbol seen yet
    base = latest[0].timeframe
    base_s, target_s = TIMEFRAME_SECONDS[base], TIMEFRAME_SECONDS[timeframe]
    if target_s == base_s:
        return venue.history(symbol, start=start, end=end, limit=limit)
    if target_s < base_s or target_s % base_s:
        raise OrderValidationError.invalid(
            "timeframe", timeframe, f"must be {base} (the session's timeframe) or a whole "
                                    f"multiple of it")
    hi = bucket_start(_closed_until(venue, base_s), timeframe)
    if end is not None:
        hi = min(hi, bucket_start(_epoch(end), timeframe) + target_s)
    lo = None
    if start is not None:
        first = bucket_start(_epoch(start), timeframe)
        lo = first if first == _epoch(start) else first + target_s
    if limit == 0 or (lo is not None and lo >= hi):
        return []
    # Each bucket holds at most `factor` source bars, so this many source bars cover at least
    # limit + 1 buckets; when the fetch is cut by the count, its first bucket may be partial.
    fetch = (limit + 1) * (target_s // base_s)
    source = venue.history(symbol, start=None if lo is None else epoch_to_datetime(lo),
                            end=epoch_to_datetime(hi - 1), limit=fetch)
    if not source:
        return []
    buckets = list(resample(BarSeries.from_bars(source), timeframe))
    if len(source) == fetch:
        buckets = buckets[1:]
    return buckets[-limit:]


def _closed_until(venue: Venue, base_s: int) -> int:
    """The epoch up to which bars of the session's timeframe are complete: in simulated time,
    the close of the bar at `now` (it was seen whole); on the wall clock, the start of the bar
    still forming at `now`."""
    now = _epoch(venue.now)
    if getattr(venue, "pacing", Pacing.SIMULATED) == Pacing.SIMULATED:
        return now + base_s
    return now - now % base_s


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _status(call: Call) -> Reply:
    return Reply(200, call.provider.status())


def _capabilities(call: Call) -> Reply:
    return Reply(200, call.provider.capabilities())


def _circuit_breakers(call: Call) -> Reply:
    return Reply(200, call.provider.circuit_breakers())


def _kill_switch(call: Call) -> Reply:
    """Posted by the management API when a kill switch is set: stop new orders (a session's
    switch at once; a workspace's is re-read from the database) and cancel the open ones."""
    body = call.body if isinstance(call.body, dict) else {}
    if call.guard is not None:
        if body.get("scope") == "session":
            call.guard.kill(str(body.get("reason") or ""))
        else:
            call.guard.forget_kill_state()
    return Reply(200, _cancel_open_orders(call.provider, None))


def _risk_changed(call: Call) -> Reply:
    """Posted by the management API when a deployment is paused or resumed: read the kill and
    pause flags again at the next order (nothing is cancelled: a pause keeps open orders)."""
    if call.guard is not None:
        call.guard.forget_kill_state()
    return Reply(200, {})


Handler = Callable[[Call], Reply]
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
    "kill_switch": _kill_switch,
    "risk_changed": _risk_changed,
}
# Commands that can create events (orders, fills): the host streams those events after them.
ACTIONS = frozenset({
    "submit_order", "modify_order", "cancel_order", "cancel_all_orders", "modify_position",
    "close_position", "close_all_positions", "kill_switch",
})
