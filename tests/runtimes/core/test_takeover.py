"""What a host taking a wall-clock session over reconciles (runtimes/core/takeover.py): open
orders, positions, the fills after the last one journaled; and the `connection` frame saying so."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from runtimes.core.takeover import reconcile, takeover_frame

NOW = datetime(2026, 12, 6, 12, 0, 5, tzinfo=UTC)


class Venue:
    """Just what reconcile reads."""

    def __init__(self, fills, open_orders=(), positions=()):
        self._fills, self._open, self._positions = list(fills), list(open_orders), list(positions)

    def fills(self, *, symbol=None, order_id=None):
        return list(self._fills)

    def orders(self, *, open_only=False, symbol=None):
        assert open_only
        return list(self._open)

    def positions(self):
        return list(self._positions)


def fill(fill_id):
    return SimpleNamespace(id=fill_id)


def test_the_fills_after_the_last_journaled_one_are_reconciled():
    venue = Venue([fill("f-1"), fill("f-2"), fill("f-3")],
                  open_orders=[SimpleNamespace(id="ord-4")],
                  positions=[SimpleNamespace(symbol="AAPL")])

    found = reconcile(venue, last_journaled_fill_id="f-1")

    assert found.as_json() == {"open_orders": ["ord-4"], "positions": ["AAPL"],
                               "fills_since_last_event": ["f-2", "f-3"]}


def test_every_fill_is_reconciled_when_none_was_journaled_or_the_venue_forgot_it():
    venue = Venue([fill("f-1"), fill("f-2")])

    assert [f.id for f in reconcile(venue, last_journaled_fill_id=None).fills_since] == [
        "f-1", "f-2"]
    assert [f.id for f in reconcile(venue, last_journaled_fill_id="f-0").fills_since] == [
        "f-1", "f-2"]
    assert reconcile(venue, last_journaled_fill_id="f-2").fills_since == ()


def test_the_takeover_frame_follows_the_reference_connection_shape_with_what_was_reconciled():
    found = reconcile(Venue([fill("f-1")], positions=[SimpleNamespace(symbol="MSFT")]),
                      last_journaled_fill_id=None)

    frame = takeover_frame(found, broker="mock", reason="moved", gap_ms=21_500, timestamp=NOW,
                           event_id="evt-100001")

    assert frame == {
        "type": "connection",
        "event": "BROKER_RECONNECTED",
        "broker": "mock",
        "gap_duration_ms": 21_500,
        "timestamp": "2026-12-06T12:00:05Z",
        "event_id": "evt-100001",
        "reason": "moved",
        "reconciled": {"open_orders": [], "positions": ["MSFT"],
                       "fills_since_last_event": ["f-1"]},
    }
