"""Cash, netting positions and PnL of the simulated exchange.

Positions keep a signed quantity and a signed cost basis (what was paid for what is still held).
Realised PnL takes out the cost of the closed part, so realised + unrealised PnL always equals the
change in cash plus market value before fees, exactly, whatever rounding the average price needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final

from runtimes.core.domain import ZERO, Account, Position, PositionSide

# Partial closes divide the cost basis; fixed decimals keep every later sum exact.
COST_QUANTUM: Final = Decimal("1e-12")


class PositionChange(StrEnum):
    POSITION_OPENED = "POSITION_OPENED"
    POSITION_MODIFIED = "POSITION_MODIFIED"
    POSITION_CLOSED = "POSITION_CLOSED"


class PositionState:
    """Mutable netting position of one symbol (the exchange's own book, never handed out)."""

    __slots__ = (
        "cost",
        "last_price",
        "long",
        "opened_at",
        "quantity",
        "realized",
        "symbol",
        "updated_at",
    )

    def __init__(self, symbol: str, opened_at: datetime, last_price: Decimal) -> None:
        self.symbol = symbol
        self.quantity = ZERO  # signed: > 0 long, < 0 short
        self.cost = ZERO  # signed cost basis of the open quantity
        self.realized = ZERO
        self.opened_at = opened_at
        self.updated_at = opened_at
        self.last_price = last_price
        self.long = True  # side of the last non-flat quantity, so a closed position keeps it

    @property
    def market_value(self) -> Decimal:
        return self.quantity * self.last_price

    @property
    def unrealized(self) -> Decimal:
        return self.quantity * self.last_price - self.cost

    def snapshot(self, leverage: Decimal | None) -> Position:
        """The frozen, wire-shaped view of this position."""
        size = abs(self.quantity)
        return Position(
            id=position_id(self.symbol),
            symbol=self.symbol,
            side=PositionSide.LONG if self.long else PositionSide.SHORT,
            quantity=size,
            average_entry_price=abs(self.cost) / size if size else ZERO,
            current_price=self.last_price,
            unrealized_pnl=self.unrealized,
            realized_pnl=self.realized,
            opened_at=self.opened_at,
            updated_at=self.updated_at,
            leverage=leverage,
        )


def position_id(symbol: str) -> str:
    """Deterministic id of the netting position of `symbol`."""
    return f"pos-{symbol}"


@dataclass(frozen=True, slots=True)
class FillEffect:
    """What one fill did to its position."""

    change: PositionChange
    realized: Decimal
    position: PositionState


class Ledger:
    """Cash, fees and the netting positions of one account."""

    __slots__ = ("cash", "closed", "fees", "positions", "realized", "version")

    def __init__(self, initial_cash: Decimal) -> None:
        self.cash = initial_cash
        self.fees = ZERO
        self.realized = ZERO
        self.positions: dict[str, PositionState] = {}
        # last state of positions that went flat, so `position(id)` can still show them
        self.closed: dict[str, PositionState] = {}
        self.version = 0  # bumped by every fill, so readers can cache what they derive

    def apply_fill(
        self, symbol: str, signed_qty: Decimal, price: Decimal, fee: Decimal, now: datetime
    ) -> FillEffect:
        """Book a fill of `signed_qty` (buy > 0) at `price` paying `fee`; return its effect."""
        self.cash -= signed_qty * price + fee
        self.fees += fee
        self.version += 1
        state = self.positions.get(symbol)
        change = PositionChange.POSITION_MODIFIED
        if state is None:
            state = self.positions[symbol] = PositionState(symbol, now, price)
            change = PositionChange.POSITION_OPENED
        before = state.quantity
        realized = _net_into(state, signed_qty, price)
        self.realized += realized
        if before and state.quantity and (before > 0) != (state.quantity > 0):
            state.opened_at = now  # flipped: the position on the other side opens now
        state.updated_at = now
        state.last_price = price
        if state.quantity:
            state.long = state.quantity > 0
        if not state.quantity:
            del self.positions[symbol]
            self.closed[symbol] = state
            change = PositionChange.POSITION_CLOSED
        return FillEffect(change, realized, state)

    def mark(self, symbol: str, price: Decimal) -> None:
        """Mark the position of `symbol` (if any) to `price`."""
        state = self.positions.get(symbol)
        if state is not None:
            state.last_price = price

    def market_value(self) -> Decimal:
        return sum((p.market_value for p in self.positions.values()), ZERO)

    def gross_exposure(self) -> Decimal:
        return sum((abs(p.market_value) for p in self.positions.values()), ZERO)

    def equity(self) -> Decimal:
        """Cash plus every position marked at its last price."""
        if not self.positions:
            return self.cash
        return self.cash + self.market_value()

    def account(self, *, leverage: Decimal, margin: bool, currency: str) -> Account:
        """The account summary; `balance` is cash plus the cost basis of what is held."""
        unrealized = sum((p.unrealized for p in self.positions.values()), ZERO)
        equity = self.equity()
        margin_used = self.gross_exposure() / leverage if margin else ZERO
        return Account(
            balance=equity - unrealized,
            equity=equity,
            margin_used=margin_used,
            margin_available=equity - margin_used if margin else self.cash,
            unrealized_pnl=unrealized,
            realized_pnl=self.realized,
            total_commission=self.fees,
            currency=currency,
            cash=self.cash,
        )


def _net_into(state: PositionState, signed_qty: Decimal, price: Decimal) -> Decimal:
    """Net a fill into `state`; return the realised PnL (before fees) of the closed part."""
    held = state.quantity
    if not held or (held > 0) == (signed_qty > 0):
        state.quantity = held + signed_qty
        state.cost += signed_qty * price
        return ZERO
    closing = min(abs(signed_qty), abs(held))
    closing_signed = closing if signed_qty > 0 else -closing
    if closing == abs(held):
        removed = state.cost
    else:
        removed = (state.cost * closing / abs(held)).quantize(COST_QUANTUM)
    realized = -closing_signed * price - removed
    state.cost -= removed
    state.quantity = held + closing_signed
    state.realized += realized
    opening = signed_qty - closing_signed
    if opening:  # the fill flipped the position: the rest opens the other side
        state.quantity += opening
        state.cost += opening * price
    return realized
