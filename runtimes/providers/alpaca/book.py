"""This session's part of an Alpaca account: its orders, its fills, and what was already told.

Alpaca is the record; the book holds what the session needs between calls: the latest state of
its orders (from REST answers and trade updates), the fills it saw (stream and reconciled
activities), which events went out already (each once), and the orders of the session that do
not carry its client_order_id prefix (a bracket's legs, a close_position order).

Shared by the host's thread and the SDK's stream thread: every method takes the lock.
"""

from __future__ import annotations

import threading
from datetime import datetime
from decimal import Decimal
from typing import Any

from runtimes.core.domain import Fill, Order, OrderRequest
from runtimes.core.exchange_snapshot import dataclass_from_json, dataclass_to_json
from runtimes.providers.broker_common import Bounded


class Book:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.orders: dict[str, Order] = {}
        self.foreign: dict[str, str | None] = {}  # session order id without our prefix -> parent
        self.closing: set[str] = set()  # close_position orders (reduce-only)
        self.oco_groups: dict[str, str] = {}  # alpaca order id -> the strategy's oco_group_id
        # An OCO group's first order waits here (a local PENDING order) until its pair arrives
        # and both go to Alpaca as one `oco` order; its local id stays the strategy's id for it.
        self.held_oco: dict[str, tuple[Order, OrderRequest]] = {}  # group -> (local order, request)
        self.alias: dict[str, str] = {}  # alpaca order id -> the local id the strategy knows
        self.fills: list[Fill] = []
        self._executions = Bounded()
        self._fill_keys = Bounded()  # (order id, cumulative filled qty): stream vs activity
        self._event_keys = Bounded()
        self.announced = Bounded()  # order ids whose ORDER_CREATED/MODIFIED went out
        self.opened_at: dict[str, datetime] = {}  # symbol -> when the session saw it open
        self.position_updated: dict[str, datetime] = {}
        self.last_fill_at: datetime | None = None

    def remember(self, order: Order) -> None:
        with self.lock:
            self.orders[order.id] = order

    def add_fill(self, fill: Fill, *, cumulative: Decimal | None) -> bool:
        """Keep `fill` unless it was seen (by execution id, or by its order's cumulative filled
        quantity when an activity and a stream update name the same execution differently)."""
        with self.lock:
            key = None if cumulative is None else (fill.order_id, str(cumulative.normalize()))
            if fill.id in self._executions or (key is not None and key in self._fill_keys):
                return False
            self._executions.add(fill.id)
            if key is not None:
                self._fill_keys.add(key)
            self.fills.append(fill)
            self.fills.sort(key=lambda f: f.timestamp)
            if self.last_fill_at is None or fill.timestamp > self.last_fill_at:
                self.last_fill_at = fill.timestamp
            self.position_updated[fill.symbol] = fill.timestamp
            self.opened_at.setdefault(fill.symbol, fill.timestamp)
            return True

    def first_time(self, key: tuple[str, str, str]) -> bool:
        """True the first time a (order id, event, filled qty) non-fill event is seen."""
        with self.lock:
            return bool(self._event_keys.add(key))

    def announce(self, order_id: str) -> bool:
        with self.lock:
            return bool(self.announced.add(order_id))

    def alpaca_id(self, order_id: str) -> str:
        """The Alpaca id of an order the strategy names (its own id but for a paired OCO leg)."""
        with self.lock:
            for alpaca, local in self.alias.items():
                if local == order_id:
                    return alpaca
            return order_id

    def held(self, order_id: str) -> tuple[str, Order] | None:
        """(group, order) of an OCO order still waiting for its pair."""
        with self.lock:
            for group, (order, _) in self.held_oco.items():
                if order.id == order_id:
                    return group, order
            return None

    def knows(self, order_id: str) -> bool:
        with self.lock:
            return order_id in self.orders or order_id in self.foreign

    # -- snapshot -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            open_orders = {o.id: str(o.filled_quantity)
                           for o in self.orders.values() if o.is_open}
            # Alpaca's ids of those (an OCO order the strategy knows by its local id)
            at_alpaca = set(open_orders) | {a for a, local in self.alias.items()
                                            if local in open_orders}
            return {
                "last_fill_at": (None if self.last_fill_at is None
                                 else self.last_fill_at.isoformat()),
                "executions": self._executions.items()[-1000:],
                "fill_keys": [list(k) for k in self._fill_keys.items()[-1000:]],
                "open_orders": open_orders,
                "foreign": {k: v for k, v in self.foreign.items() if k in at_alpaca},
                "closing": sorted(self.closing & at_alpaca),
                "oco_groups": {k: v for k, v in self.oco_groups.items() if k in at_alpaca},
                "alias": {k: v for k, v in self.alias.items() if v in open_orders},
                "announced": [i for i in self.announced.items() if i in open_orders],
                # an OCO leg still waiting here for its pair: Alpaca does not know it yet
                "held_oco": {group: {"order": dataclass_to_json(order),
                                     "request": dataclass_to_json(request)}
                             for group, (order, request) in self.held_oco.items()},
            }

    def restore(self, state: dict[str, Any]) -> None:
        with self.lock:
            stamp = state.get("last_fill_at")
            self.last_fill_at = None if stamp is None else datetime.fromisoformat(stamp)
            for execution in state.get("executions", ()):
                self._executions.add(execution)
            for order_id, cumulative in state.get("fill_keys", ()):
                self._fill_keys.add((order_id, cumulative))
            self.foreign.update(state.get("foreign", {}))
            self.closing.update(state.get("closing", ()))
            self.oco_groups.update(state.get("oco_groups", {}))
            self.alias.update(state.get("alias", {}))
            for order_id in state.get("announced", ()):
                self.announced.add(order_id)
            for group, held in state.get("held_oco", {}).items():
                order = dataclass_from_json(Order, held["order"])
                self.held_oco[group] = (order, dataclass_from_json(OrderRequest, held["request"]))
                self.orders[order.id] = order
