"""This session's part of a Binance account: its orders, its fills, what was already told, the
last trade id seen per symbol (where a reconcile starts), the account's balances as last known,
and the plans the provider carries out itself (emulated brackets, OCO orders waiting for their
pair).

Binance is the record; the book is what the session needs between calls. Shared by the host's
thread and the stream thread: every method takes the lock.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from runtimes.core.domain import ZERO, Fill, Order
from runtimes.providers.broker_common import Bounded

SNAPSHOT_SEEN: Final = 500




@dataclass(slots=True)
class BracketPlan:
    """An emulated bracket: once the entry fills, an OCO (take profit + stop loss) on the filled
    quantity, replaced as the filled quantity grows."""

    entry_id: str
    symbol: str
    exit_side: str  # "SELL" after a buy entry
    stop_loss: str | None
    take_profit: str | None
    placed_quantity: str = "0"  # the quantity of the OCO now working ("0": none)
    list_id: int | None = None
    leg_ids: tuple[str, ...] = ()
    done: bool = False  # the entry ended unfilled, or an exit filled

    def as_json(self) -> dict[str, Any]:
        found = asdict(self)
        found["leg_ids"] = list(self.leg_ids)
        return found

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> BracketPlan:
        return cls(**{**raw, "leg_ids": tuple(raw.get("leg_ids") or ())})


@dataclass(frozen=True, slots=True)
class Balance:
    free: Decimal
    locked: Decimal
    as_of_ms: int  # Binance's time of the value (an event's `u`/`E`; a REST read's time)

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


class Book:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.orders: dict[str, Order] = {}  # by the id the strategy knows
        self.order_client_ids: dict[str, str] = {}  # order id -> its Binance client id
        self.strategy_ids: dict[str, str] = {}  # a hashed Binance client id -> strategy's id
        self.alias: dict[str, str] = {}  # Binance orderId -> the local id the strategy knows
        self.held_oco: dict[str, tuple[Order, Any]] = {}  # group -> (local order, request)
        self.oco_groups: dict[str, str] = {}  # order id -> the strategy's oco_group_id
        self.parents: dict[str, str] = {}  # an emulated bracket's exit order -> its entry
        self.closing: set[str] = set()  # client ids of close_position orders
        self.replacing: set[str] = set()  # client ids of cancelReplace's new orders
        self.plans: dict[str, BracketPlan] = {}  # entry id -> plan
        self.fills: list[Fill] = []
        self.trades = Bounded()  # (orderId, tradeId) seen
        self.events = Bounded()  # (orderId, execution type, cumulative qty) seen
        self.announced = Bounded()
        self.last_trade_ids: dict[str, int] = {}  # symbol -> the highest tradeId seen
        self.balances: dict[str, Balance] = {}
        self.balances_read_ms = 0  # Binance's time of the last REST read of the account
        self.entries: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (avg entry, realized)
        # (asset, amount, the fill's price, its symbol): converted to the quote when read
        self.commission_paid: list[tuple[str, Decimal, Decimal, str]] = []
        self.opened_at: dict[str, datetime] = {}

    def remember(self, order: Order) -> None:
        with self.lock:
            self.orders[order.id] = order

    def local_id(self, binance_id: str) -> str:
        with self.lock:
            return self.alias.get(binance_id, binance_id)

    def binance_id(self, order_id: str) -> str:
        with self.lock:
            for binance, local in self.alias.items():
                if local == order_id:
                    return binance
            return order_id

    def add_fill(self, fill: Fill, order_id: str, trade_id: int) -> bool:
        """Keep `fill` unless its (order, trade) was seen."""
        with self.lock:
            if not self.trades.add((order_id, trade_id)):
                return False
            self.fills.append(fill)
            self.fills.sort(key=lambda f: f.timestamp)
            if trade_id > self.last_trade_ids.get(fill.symbol, -1):
                self.last_trade_ids[fill.symbol] = trade_id
            self.opened_at.setdefault(fill.symbol, fill.timestamp)
            return True

    def filled(self, order_id: str) -> Decimal:
        with self.lock:
            return sum((f.quantity for f in self.fills if f.order_id == order_id), ZERO)

    def first_time(self, key: tuple[str, str, str]) -> bool:
        with self.lock:
            return bool(self.events.add(key))

    def announce(self, order_id: str) -> bool:
        with self.lock:
            return bool(self.announced.add(order_id))

    def held(self, order_id: str) -> tuple[str, Order] | None:
        with self.lock:
            for group, (order, _) in self.held_oco.items():
                if order.id == order_id:
                    return group, order
            return None

    def open_count(self, symbol: str) -> int:
        with self.lock:
            return sum(1 for o in self.orders.values() if o.symbol == symbol and o.is_open)

    # -- snapshot -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Small: the last trade ids, recent dedupe keys, what the open orders need (their ids,
        hashed client ids, aliases, groups, parents) and the pending plans."""
        with self.lock:
            open_ids = {o.id for o in self.orders.values() if o.is_open}
            binance_open = {b for b, local in self.alias.items() if local in open_ids}
            return {
                "last_trade_ids": dict(self.last_trade_ids),
                "trades": [list(k) for k in self.trades.items()[-SNAPSHOT_SEEN:]],
                "announced": [i for i in self.announced.items() if i in open_ids],
                "open_orders": {i: self.order_client_ids.get(i, "") for i in open_ids},
                "strategy_ids": {c: s for c, s in self.strategy_ids.items()
                                 if c in {self.order_client_ids.get(i) for i in open_ids}},
                "alias": {b: self.alias[b] for b in binance_open},
                "oco_groups": {i: g for i, g in self.oco_groups.items() if i in open_ids},
                "parents": {i: p for i, p in self.parents.items() if i in open_ids},
                "closing": sorted(self.closing & {self.order_client_ids.get(i)
                                                  for i in open_ids}),
                "plans": [p.as_json() for p in self.plans.values() if not p.done],
                "entries": {s: [str(a), str(r)] for s, (a, r) in self.entries.items()},
            }

    def restore(self, state: dict[str, Any]) -> None:
        with self.lock:
            self.last_trade_ids.update({s: int(t) for s, t in
                                        (state.get("last_trade_ids") or {}).items()})
            for order_id, trade_id in state.get("trades") or ():
                self.trades.add((str(order_id), int(trade_id)))
            for order_id in state.get("announced") or ():
                self.announced.add(order_id)
            self.order_client_ids.update(state.get("open_orders") or {})
            self.strategy_ids.update(state.get("strategy_ids") or {})
            self.alias.update(state.get("alias") or {})
            self.oco_groups.update(state.get("oco_groups") or {})
            self.parents.update(state.get("parents") or {})
            self.closing.update(state.get("closing") or ())
            for raw in state.get("plans") or ():
                plan = BracketPlan.from_json(raw)
                self.plans[plan.entry_id] = plan
            for symbol, (average, realized) in (state.get("entries") or {}).items():
                self.entries[symbol] = (Decimal(average), Decimal(realized))
