"""Risk limits and kill switches of a trading session, enforced in the order path outside the
strategy and before the engine sees an order (trading-api.md section 5).

A blocked order is 422 ORDER_REJECTED whose `details.reject_code` names the limit, and an
event-free `SessionAudit` row (buffered, written in bulk). The host owns one `RiskGuard`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from runtimes.core.domain import ZERO, Order, OrderRequest, Side
from runtimes.core.engine import BacktestConfig
from runtimes.core.errors import OrderRejected, TradingError
from runtimes.core.exchange_risk import reference_price
from runtimes.core.exchange_sizing import sizing_amount
from runtimes.core.provider import Venue
from runtimes.core.wire import decimal_str
from runtimes.models import (
    Deployment,
    DeploymentState,
    KillSwitch,
    SessionAudit,
    TradingSession,
)

KILL_SWITCH_TTL_S: Final = 1.0  # the kill flags are read from the database at most this often
# The host re-reads them between messages this long before they expire (more than its inbox
# poll, runtimes/hosting/host.py POLL_SECONDS), so that an order finds them fresh and never
# waits on that read; an order that finds them expired all the same (a busy host) reads them.
KILL_SWITCH_REFRESH_AHEAD_S: Final = 0.2
AUDIT_FLUSH_S: Final = 1.0  # buffered audit rows are written at most this long after the first
AUDIT_FLUSH_ROWS: Final = 500
RATE_WINDOW: Final = timedelta(minutes=1)
DEFAULT_CONFIG: Final = BacktestConfig()
PAUSED_SCOPE: Final = "deployment"  # the kill state of a paused deployment's session


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Limits of one session; None means no limit. Quantities are in units of the instrument,
    notional and loss in the account currency. `allowed_symbols` None allows any symbol."""

    max_order_quantity: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position_quantity: Decimal | None = None
    max_open_orders: int | None = None
    max_orders_per_minute: int | None = None
    daily_loss_limit: Decimal | None = None
    allowed_symbols: tuple[str, ...] | None = None

    def as_json(self) -> dict[str, Any]:
        """Wire form: decimals as normalised strings, counts as ints, symbols as a list."""
        out: dict[str, Any] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Decimal):
                value = decimal_str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[field.name] = value
        return out

    def as_columns(self) -> dict[str, Any]:
        """The TradingSession columns these limits are stored in (one per limit; every symbol
        is allowed when `allowed_symbols` is None)."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        values["allowed_symbols"] = list(self.allowed_symbols or ())
        return values


class RiskBlocked(OrderRejected):
    """An order a risk limit or kill switch refuses (422 ORDER_REJECTED, reject_code = limit)."""

    def __init__(self, reject_code: str, message: str, **details: Any) -> None:
        super().__init__(message, reject_code=reject_code, details=details)


@dataclass(frozen=True, slots=True)
class KillState:
    active: bool = False
    scope: str | None = None  # "session", "workspace" or "deployment" (paused)
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"active": self.active, "scope": self.scope, "reason": self.reason}


class RiskGuard:
    """The order-path checks of one session, run in the host thread.

    Order of checks (the first that fails names the reject_code): KILL_SWITCH,
    DAILY_LOSS_LIMIT, ALLOWED_SYMBOLS, MAX_ORDER_QUANTITY, MAX_ORDER_NOTIONAL,
    MAX_POSITION_QUANTITY, MAX_OPEN_ORDERS, MAX_ORDERS_PER_MINUTE. Modifies that grow an order
    (more quantity or more notional) get the first six; closing a position gets none.
    """

    def __init__(
        self,
        *,
        session_id: Any,
        workspace_id: Any,
        limits: RiskLimits,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = timezone.now,
    ) -> None:
        self.session_id, self.workspace_id, self.limits = session_id, workspace_id, limits
        self.monotonic, self.now = monotonic, now
        self._kill = KillState()
        self._kill_read_at: float | None = None
        self._killed_here: KillState | None = None  # set by the kill command: never expires
        self._sent: deque[datetime] = deque()  # simulated times of orders let through
        self._day: date | None = None
        self._day_start_equity = ZERO
        self._audit: list[SessionAudit] = []
        self._audit_since: float | None = None

    @classmethod
    def for_session(cls, session: TradingSession, **clocks: Any) -> RiskGuard:
        return cls(session_id=session.pk, workspace_id=session.workspace_id,
                   limits=session.risk_limits(), **clocks)

    # -- the order path -------------------------------------------------------------------------

    def check_submit(self, engine: Venue, request: OrderRequest, *, body: Any) -> None:
        """Raise RiskBlocked (and buffer its audit row) when `request` may not be submitted;
        otherwise count it against the rate limit."""
        try:
            self._check_new(engine, request)
        except RiskBlocked as blocked:
            self._record_block(engine, "submit_order", body, blocked)
            raise
        self._sent.append(engine.now)

    def check_modify(
        self, engine: Venue, order: Order, changes: dict[str, Decimal], *, body: Any
    ) -> None:
        """Raise RiskBlocked when the modification of open `order` grows it past a limit. A
        modify that shrinks or keeps size and notional is never blocked (it reduces risk)."""
        if order.awaits_sizing:
            self._check_modify_sized(engine, order, changes, body=body)
            return
        quantity = changes.get("quantity") or order.quantity
        last = last_price(engine, order.symbol)
        before = _notional(order.order_type, order.limit_price, order.stop_price, last,
                           order.quantity)
        after = _notional(order.order_type, changes.get("limit_price") or order.limit_price,
                          changes.get("stop_price") or order.stop_price, last, quantity)
        pricier = before is not None and after is not None and after > before
        if quantity <= order.quantity and not pricier:
            return
        try:
            self._check_kill_and_loss(engine)
            self._check_size(engine, order.symbol, order.side, quantity, after,
                             growth=quantity - order.quantity, reduce_only=order.reduce_only)
        except RiskBlocked as blocked:
            self._record_block(engine, "modify_order", {"order_id": order.id, **body}, blocked)
            raise

    def _check_modify_sized(
        self, engine: Venue, order: Order, changes: dict[str, Decimal], *, body: Any
    ) -> None:
        """A new limit or stop of an order sized at fill changes what its amount buys: a lower
        price buys more, checked as a growth by the quantity limits."""
        limit = changes.get("limit_price") or order.limit_price
        stop = changes.get("stop_price") or order.stop_price
        before = _expected_quantity(engine, order)
        after = _expected_quantity(engine, order, limit_price=limit, stop_price=stop)
        if after <= before:
            return
        equity = engine.account().equity if order.equity_fraction is not None else ZERO
        try:
            self._check_kill_and_loss(engine)
            self._check_size(engine, order.symbol, order.side, after,
                             sizing_amount(order, equity), growth=after - before,
                             reduce_only=order.reduce_only)
        except RiskBlocked as blocked:
            self._record_block(engine, "modify_order", {"order_id": order.id, **body}, blocked)
            raise

    def kill(self, reason: str) -> None:
        """The session's kill switch, told by the management API: effective at once."""
        self._killed_here = KillState(True, "session", reason)

    def forget_kill_state(self) -> None:
        """A workspace switch changed: read the flags again at the next order."""
        self._kill_read_at = None

    def kill_state(self) -> KillState:
        """The kill switch in force: this session's, else the workspace's (cached for a second)."""
        if self._killed_here is not None:
            return self._killed_here
        self._read_kill_state_older_than(KILL_SWITCH_TTL_S)
        return self._kill

    def refresh_kill_state(self) -> None:
        """Between messages, on the host's thread: read the kill flags again when they are
        about to expire, so the order path finds them cached (the read took 1.6 ms p50, up to
        160 ms under load, in the order that made it)."""
        if self._killed_here is None:
            self._read_kill_state_older_than(KILL_SWITCH_TTL_S - KILL_SWITCH_REFRESH_AHEAD_S)

    def _read_kill_state_older_than(self, seconds: float) -> None:
        moment = self.monotonic()
        if self._kill_read_at is None or moment - self._kill_read_at >= seconds:
            self._kill = self._read_kill_state()
            self._kill_read_at = moment

    def session_fields(self) -> dict[str, Any]:
        """What `GET /v1/session` shows of risk: the limits and the kill switch."""
        return {"risk_limits": self.limits.as_json(), "kill_switch": self.kill_state().as_json()}

    def flush(self) -> None:
        """Write the buffered audit rows in one bulk insert (the host calls it at the end)."""
        if self._audit:
            rows, self._audit, self._audit_since = self._audit, [], None
            SessionAudit.objects.bulk_create(rows, batch_size=1000)

    # -- checks ---------------------------------------------------------------------------------

    def _check_new(self, engine: Venue, request: OrderRequest) -> None:
        limits = self.limits
        self._check_kill_and_loss(engine)
        allowed = limits.allowed_symbols
        if allowed is not None and request.symbol not in allowed:
            raise RiskBlocked("ALLOWED_SYMBOLS", f"ALLOWED_SYMBOLS: {request.symbol} is not one "
                              f"of the allowed symbols {', '.join(allowed)}",
                              limit=list(allowed), value=request.symbol)
        quantity, notional = self._size_of(engine, request)
        self._check_size(engine, request.symbol, request.side, quantity, notional,
                         growth=quantity, reduce_only=request.reduce_only)
        open_orders = len(engine.orders(open_only=True))
        if limits.max_open_orders is not None and open_orders >= limits.max_open_orders:
            raise RiskBlocked("MAX_OPEN_ORDERS", f"MAX_OPEN_ORDERS: {open_orders} orders are "
                              f"open, the limit is {limits.max_open_orders}",
                              limit=limits.max_open_orders, value=open_orders)
        per_minute = limits.max_orders_per_minute
        if per_minute is not None:
            sent = self._sent_in_last_minute(engine.now)
            if sent >= per_minute:
                raise RiskBlocked("MAX_ORDERS_PER_MINUTE", f"MAX_ORDERS_PER_MINUTE: {sent} "
                                  f"orders in the last simulated minute, the limit is "
                                  f"{per_minute}", limit=per_minute, value=sent)

    def _size_of(self, engine: Venue, request: OrderRequest) -> tuple[Decimal, Decimal | None]:
        """Quantity and notional of a new order. One sized at fill (notional, equity_fraction)
        is checked by its amount and the quantity that amount buys at the expected price; with
        no price yet, quantity limits fail closed as the notional limit does."""
        last = last_price(engine, request.symbol)
        if not request.sized_at_fill:
            return request.quantity, _notional(request.order_type, request.limit_price,
                                               request.stop_price, last, request.quantity)
        # Only a fraction needs the equity (a broker's account is a REST call).
        equity = engine.account().equity if request.equity_fraction is not None else ZERO
        amount = sizing_amount(request, equity)
        price = reference_price(request.order_type, request.limit_price, request.stop_price,
                                last)
        if price:
            return amount / price, amount
        cap = self.limits.max_order_quantity or self.limits.max_position_quantity
        if cap is not None:
            raise RiskBlocked("MAX_ORDER_QUANTITY", "MAX_ORDER_QUANTITY: an order sized at fill "
                              "cannot be checked against the quantity limits before a price "
                              "is seen", limit=decimal_str(cap), value=None)
        return ZERO, amount

    def _check_kill_and_loss(self, engine: Venue) -> None:
        kill = self.kill_state()
        if kill.scope == PAUSED_SCOPE:
            raise RiskBlocked("DEPLOYMENT_PAUSED", "DEPLOYMENT_PAUSED: the deployment is paused; "
                              "new orders are refused until it is resumed (open orders stay)",
                              scope=kill.scope, reason=kill.reason)
        if kill.active:
            raise RiskBlocked("KILL_SWITCH", f"KILL_SWITCH: the {kill.scope} kill switch is on"
                              + (f" ({kill.reason})" if kill.reason else ""),
                              scope=kill.scope, reason=kill.reason)
        limit = self.limits.daily_loss_limit
        if limit is None:
            return
        loss = self._day_start(engine) - engine.account().equity
        if loss >= limit:
            raise RiskBlocked("DAILY_LOSS_LIMIT", f"DAILY_LOSS_LIMIT: equity fell "
                              f"{decimal_str(loss)} since the start of the day, the limit is "
                              f"{decimal_str(limit)}", limit=decimal_str(limit),
                              value=decimal_str(loss))

    def _check_size(
        self,
        engine: Venue,
        symbol: str,
        side: Side,
        quantity: Decimal,
        notional: Decimal | None,
        *,
        growth: Decimal,
        reduce_only: bool,
    ) -> None:
        limits = self.limits
        if limits.max_order_quantity is not None and quantity > limits.max_order_quantity:
            raise RiskBlocked("MAX_ORDER_QUANTITY", f"MAX_ORDER_QUANTITY: quantity "
                              f"{decimal_str(quantity)} is above the limit "
                              f"{decimal_str(limits.max_order_quantity)}",
                              limit=decimal_str(limits.max_order_quantity),
                              value=decimal_str(quantity))
        cap = limits.max_order_notional
        if cap is not None and (notional is None or notional > cap):
            # Fail closed: an order that cannot be priced yet cannot be shown to be small.
            shown = "unknown (no price yet)" if notional is None else decimal_str(notional)
            raise RiskBlocked("MAX_ORDER_NOTIONAL", f"MAX_ORDER_NOTIONAL: notional {shown} is "
                              f"above the limit {decimal_str(cap)}", limit=decimal_str(cap),
                              value=None if notional is None else decimal_str(notional))
        cap = limits.max_position_quantity
        if cap is not None and not reduce_only:
            worst = _worst_position(engine, symbol, growth * side.sign)
            if worst.is_infinite():
                raise RiskBlocked("MAX_POSITION_QUANTITY", f"MAX_POSITION_QUANTITY: the {symbol} "
                                  "position cannot be bounded: a working order sized at fill "
                                  "has no price yet", limit=decimal_str(cap), value=None)
            if worst > cap:
                raise RiskBlocked("MAX_POSITION_QUANTITY", f"MAX_POSITION_QUANTITY: the "
                                  f"{symbol} position could reach {decimal_str(worst)} with "
                                  f"the working orders, above the limit {decimal_str(cap)}",
                                  limit=decimal_str(cap), value=decimal_str(worst))

    def _sent_in_last_minute(self, now: datetime) -> int:
        while self._sent and self._sent[0] <= now - RATE_WINDOW:
            self._sent.popleft()
        return len(self._sent)

    def _day_start(self, engine: Venue) -> Decimal:
        """Equity at the start of the current simulated day (in the session's timezone),
        rebuilt from the fills and closes before that instant, once per day."""
        zone = ZoneInfo(config_of(engine).session_timezone)
        day = engine.now.astimezone(zone).date()
        if day != self._day:
            start = datetime.combine(day, day_time.min, zone).astimezone(UTC)
            self._day, self._day_start_equity = day, equity_at(engine, start)
        return self._day_start_equity

    # -- database -------------------------------------------------------------------------------

    def _read_kill_state(self) -> KillState:
        workspace_reason = KillSwitch.objects.filter(
            workspace_id=OuterRef("workspace_id"), active=True).values("reason")[:1]
        paused = Deployment.objects.filter(current_session_id=OuterRef("pk"),
                                           state=DeploymentState.PAUSED)
        row = (TradingSession.objects.filter(pk=self.session_id)
               .annotate(workspace_reason=Subquery(workspace_reason), paused=Exists(paused))
               .values("kill_switch_active", "kill_switch_reason", "workspace_reason", "paused")
               .first())
        if row is None:
            return KillState()
        if row["kill_switch_active"]:
            return KillState(True, "session", row["kill_switch_reason"])
        if row["workspace_reason"] is not None:
            return KillState(True, "workspace", row["workspace_reason"])
        if row["paused"]:  # a pause refuses new orders like a switch but cancels nothing
            return KillState(True, PAUSED_SCOPE, "deployment paused")
        return KillState()

    def _record_block(
        self, engine: Venue, op: str, body: Any, blocked: RiskBlocked
    ) -> None:
        details = {"op": op, "request": body, **blocked.details}
        self._audit.append(SessionAudit(
            session_id=self.session_id, kind=SessionAudit.Kind.ORDER_BLOCKED,
            reject_code=blocked.reject_code, message=blocked.message[:300], details=details,
            simulated_at=engine.now, created_at=self.now(),
        ))
        moment = self.monotonic()
        if self._audit_since is None:
            self._audit_since = moment
        if len(self._audit) >= AUDIT_FLUSH_ROWS or moment - self._audit_since >= AUDIT_FLUSH_S:
            self.flush()


def config_of(venue: Venue) -> BacktestConfig:
    """The execution settings of `venue`: the engine's own in a backtest; the defaults (UTC
    days) for a provider that has none."""
    config = getattr(venue, "config", None)
    return config if isinstance(config, BacktestConfig) else DEFAULT_CONFIG


def last_price(venue: Venue, symbol: str) -> Decimal | None:
    """The last price of `symbol` seen (None before any): the engine's last close in a
    backtest (no quote built on the order path), the last trade of a quote elsewhere."""
    last_close = getattr(venue, "last_close", None)
    if last_close is not None:
        value: Decimal | None = last_close(symbol)
        return value
    try:
        return venue.quote(symbol).last
    except TradingError:
        return None


def equity_at(engine: Venue, moment: datetime) -> Decimal:
    """Account equity just before `moment`: the initial cash moved by every earlier fill, plus
    the positions then held marked at the last close before `moment`."""
    cash = config_of(engine).initial_cash
    held: dict[str, Decimal] = {}
    for fill in engine.fills():
        if fill.timestamp >= moment:
            break  # fills are recorded in time order
        signed = fill.quantity * fill.side.sign
        cash -= signed * fill.price + fill.commission
        held[fill.symbol] = held.get(fill.symbol, ZERO) + signed
    before = moment - timedelta(seconds=1)
    for symbol, quantity in held.items():
        if quantity:
            cash += quantity * engine.history(symbol, end=before, limit=1)[-1].close
    return cash


def _expected_quantity(engine: Venue, order: Order, *, limit_price: Decimal | None = None,
                       stop_price: Decimal | None = None) -> Decimal:
    """What a working order sized at fill (its quantity still unknown) would buy at its
    expected price now (or at a new `limit_price` / `stop_price`). With no price yet it is
    unbounded: the limits fail closed, as they do for a new sized order."""
    price = reference_price(order.order_type, limit_price or order.limit_price,
                            stop_price or order.stop_price, last_price(engine, order.symbol))
    if not price:
        return Decimal("Infinity")
    equity = engine.account().equity if order.equity_fraction is not None else ZERO
    return sizing_amount(order, equity) / price


def _notional(
    order_type: Any, limit_price: Decimal | None, stop_price: Decimal | None,
    last: Decimal | None, quantity: Decimal,
) -> Decimal | None:
    price = reference_price(order_type, limit_price, stop_price, last)
    return None if price is None else quantity * price


def _worst_position(engine: Venue, symbol: str, extra: Decimal) -> Decimal:
    """The largest absolute position `symbol` could reach if every working order that can add
    to it filled, plus `extra` (signed). Reduce-only orders (exit legs) only shrink it."""
    held = next((p.signed_quantity for p in engine.positions() if p.symbol == symbol), ZERO)
    buys = sells = ZERO
    for order in engine.orders(open_only=True, symbol=symbol):
        if not order.reduce_only:
            pending = (_expected_quantity(engine, order) if order.awaits_sizing
                       else order.remaining_quantity)
            if order.side is Side.BUY:
                buys += pending
            else:
                sells += pending
    longest = held + buys + max(extra, ZERO)
    shortest = held - sells + min(extra, ZERO)
    return max(longest, -shortest, ZERO)
