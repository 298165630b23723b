"""Trade updates to events: which update makes which order event, and the position and account
events of fills, queued as dues and completed at drain time from one read of Alpaca's positions
and account (however many fills a drain holds)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Final

from runtimes.core.domain import ZERO, Account, Position
from runtimes.core.events import (
    AccountEvent,
    Event,
    OrderEventKind,
    PositionEvent,
    PositionEventKind,
)
from runtimes.providers.alpaca import mapping as m

# updates that announce an order (ORDER_CREATED once; usually the submit said it already)
CREATING: Final = frozenset({"new", "accepted", "pending_new", "accepted_for_bidding", "held",
                             "pending_review"})
EVENT_KINDS: Final[dict[str, OrderEventKind]] = {
    "canceled": OrderEventKind.ORDER_CANCELLED,
    "replaced": OrderEventKind.ORDER_CANCELLED,  # the old order; the new one is ORDER_MODIFIED
    "expired": OrderEventKind.ORDER_EXPIRED,
    "done_for_day": OrderEventKind.ORDER_EXPIRED,
    "rejected": OrderEventKind.ORDER_REJECTED,
    "suspended": OrderEventKind.ORDER_REJECTED,
    "pending_cancel": OrderEventKind.ORDER_MODIFIED,
    "pending_replace": OrderEventKind.ORDER_MODIFIED,
    "stopped": OrderEventKind.ORDER_MODIFIED,
    "restated": OrderEventKind.ORDER_MODIFIED,
}


@dataclass(frozen=True, slots=True)
class PositionDue:
    """A fill's position event, completed at drain time from Alpaca's position."""

    symbol: str
    signed_fill: Decimal  # the fill's quantity, negative for a sell
    after: Decimal | None  # signed, after the fill (the update's position_qty; None: unknown)
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class AccountDue:
    timestamp: datetime


Queued = Event | PositionDue | AccountDue


def complete(queued: list[Queued], positions: dict[str, Position], account: Account,
             opened_at: dict[str, datetime]) -> list[Event]:
    """The events of `queued` with each position due made a PositionEvent and the last account
    due an AccountEvent (one account event per drain). `opened_at` (symbol -> when the session
    saw the position open) forgets a symbol whose position closed."""
    last_account = max((i for i, q in enumerate(queued) if isinstance(q, AccountDue)),
                       default=-1)
    events: list[Event] = []
    for index, item in enumerate(queued):
        if isinstance(item, PositionDue):
            events.append(position_event(item, positions.get(item.symbol), opened_at))
        elif isinstance(item, AccountDue):
            if index == last_account:
                events.append(AccountEvent(account, item.timestamp))
        else:
            events.append(item)
    return events


def position_event(due: PositionDue, found: Position | None,
                   opened_at: dict[str, datetime]) -> PositionEvent:
    """The position after one fill: its size from the update (an activity has none: then
    Alpaca's position now), its prices from Alpaca's position read at drain time."""
    after = due.after
    if after is None:
        after = ZERO if found is None else found.signed_quantity
    before = after - due.signed_fill
    if after == 0:
        kind = PositionEventKind.POSITION_CLOSED
    elif before == 0 or (before > 0) != (after > 0):
        kind = PositionEventKind.POSITION_OPENED
    else:
        kind = PositionEventKind.POSITION_MODIFIED
    opened = opened_at.get(due.symbol, due.timestamp)
    if found is None:  # closed at Alpaca: what is known of it, flat
        position = m.to_position({"symbol": due.symbol, "qty": "0"}, opened_at=opened,
                                 updated_at=due.timestamp)
    else:
        position = replace(found, quantity=abs(after), updated_at=due.timestamp)
    if kind is PositionEventKind.POSITION_CLOSED:
        opened_at.pop(due.symbol, None)
    return PositionEvent(kind, position, due.timestamp)
