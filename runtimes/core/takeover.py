"""A wall-clock session taken over by a new host: what it reconciles with its provider, and the
`connection` frame that tells the strategy. Framework-free.

The new host restores the provider from the last persisted snapshot (a broker's provider reads the
broker, which is the record), then asks it for the state a strategy must re-read: open orders,
positions, and the fills since the last one the journal recorded (those the strategy may never have
been told of). The frame follows the reference's `connection`/`BROKER_RECONNECTED` shape
(`broker`, `gap_duration_ms`) plus our `reason` and `reconciled` fields (trading-api.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from runtimes.core.domain import Fill, Order, Position
from runtimes.core.provider import Venue
from runtimes.core.wire import connection_frame

JsonDict = dict[str, Any]
TAKEOVER_EVENT: Final = "BROKER_RECONNECTED"  # the reference's event after a reconciled gap


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The provider's state as the new host found it."""

    open_orders: tuple[Order, ...]
    positions: tuple[Position, ...]
    fills_since: tuple[Fill, ...]  # after the last fill the journal recorded, oldest first

    def as_json(self) -> JsonDict:
        return {
            "open_orders": [o.id for o in self.open_orders],
            "positions": [p.symbol for p in self.positions],
            "fills_since_last_event": [f.id for f in self.fills_since],
        }


def reconcile(venue: Venue, *, last_journaled_fill_id: str | None) -> Reconciliation:
    """Read open orders, positions and the fills after `last_journaled_fill_id` (every fill when
    None, or when the venue no longer knows that fill) from `venue`. Raises what the venue raises
    (a broker that cannot be reached)."""
    fills = venue.fills()
    ids = [f.id for f in fills]
    start = ids.index(last_journaled_fill_id) + 1 if last_journaled_fill_id in ids else 0
    return Reconciliation(
        open_orders=tuple(venue.orders(open_only=True)),
        positions=tuple(venue.positions()),
        fills_since=tuple(fills[start:]),
    )


def takeover_frame(
    reconciliation: Reconciliation,
    *,
    broker: str,
    reason: str,
    gap_ms: int,
    timestamp: datetime,
    event_id: str,
) -> JsonDict:
    """`connection`/BROKER_RECONNECTED: the session carried on on another worker after `gap_ms`;
    `reason` says why it moved, `reconciled` what the new host found."""
    frame = connection_frame(
        TAKEOVER_EVENT,
        timestamp=timestamp,
        event_id=event_id,
        broker=broker,
        gap_duration_ms=max(0, gap_ms),
    )
    frame["reason"] = reason
    frame["reconciled"] = reconciliation.as_json()
    return frame
