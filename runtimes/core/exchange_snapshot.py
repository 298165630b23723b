"""The whole state of a SimulatedExchange as JSON, and back: orders, working state, fills, ledger.

A wall-clock market (the `mock` provider) keeps its book in a SimulatedExchange; a host that takes
a session over after a crash restores it from the last snapshot and carries on exactly. Decimals
are strings, datetimes ISO 8601, enums their values; the frozen dataclasses are rebuilt from their
type hints, so a new optional field of Order or Fill needs no change here.
"""

from __future__ import annotations

import dataclasses
import types
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from runtimes.core.domain import Fill, Order
from runtimes.core.exchange import SimulatedExchange
from runtimes.core.exchange_accounting import PositionState
from runtimes.core.exchange_matching import Working

JsonDict = dict[str, Any]
T = TypeVar("T")
SNAPSHOT_VERSION = 1


def exchange_to_json(ex: SimulatedExchange) -> JsonDict:
    """Everything `ex` holds but its configuration, clock, price source and undrained events."""
    ledger = ex.ledger
    return {
        "version": SNAPSHOT_VERSION,
        "orders": [dataclass_to_json(o) for o in ex.orders_by_id.values()],
        "working": {oid: _working_to_json(w) for oid, w in ex.working.items()},
        "open_by_symbol": {sym: list(book) for sym, book in ex.open_by_symbol.items()},
        "by_client_id": dict(ex.by_client_id),
        "fills": [dataclass_to_json(f) for f in ex.fills],
        "leg_tranches": dict(ex.leg_tranches),
        "account_changed": ex.account_changed,
        "order_seq": ex._order_seq,
        "fill_seq": ex._fill_seq,
        "ledger": {
            "cash": str(ledger.cash),
            "fees": str(ledger.fees),
            "realized": str(ledger.realized),
            "version": ledger.version,
            "positions": {s: _position_to_json(p) for s, p in ledger.positions.items()},
            "closed": {s: _position_to_json(p) for s, p in ledger.closed.items()},
        },
    }


def restore_exchange(ex: SimulatedExchange, state: JsonDict) -> None:
    """Load `state` (from exchange_to_json) into a freshly built `ex`. Raises ValueError for a
    snapshot of another version."""
    if state.get("version") != SNAPSHOT_VERSION:
        raise ValueError(f"exchange snapshot version {state.get('version')!r} is not supported")
    ex.orders_by_id = {o["id"]: dataclass_from_json(Order, o) for o in state["orders"]}
    ex.working = {oid: _working_from_json(w) for oid, w in state["working"].items()}
    ex.open_by_symbol = {s: dict.fromkeys(ids) for s, ids in state["open_by_symbol"].items()}
    ex.by_client_id = dict(state["by_client_id"])
    ex.fills = [dataclass_from_json(Fill, f) for f in state["fills"]]
    ex.leg_tranches = {k: int(v) for k, v in state["leg_tranches"].items()}
    ex.account_changed = bool(state["account_changed"])
    ex._order_seq = int(state["order_seq"])
    ex._fill_seq = int(state["fill_seq"])
    led = state["ledger"]
    ledger = ex.ledger
    ledger.cash, ledger.fees = Decimal(led["cash"]), Decimal(led["fees"])
    ledger.realized, ledger.version = Decimal(led["realized"]), int(led["version"])
    ledger.positions = {s: _position_from_json(p) for s, p in led["positions"].items()}
    ledger.closed = {s: _position_from_json(p) for s, p in led["closed"].items()}


# -- dataclasses --------------------------------------------------------------------------------


def dataclass_to_json(value: Any) -> JsonDict:
    """A frozen dataclass of Decimals, datetimes, enums, strings, bools and ints as JSON."""
    return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}


def dataclass_from_json(cls: type[T], data: JsonDict) -> T:
    """Rebuild `cls` from dataclass_to_json's output, converting by the field types."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = get_type_hints(cls)
    return cls(**{name: _from_json(hints[name], raw) for name, raw in data.items()})


_HINTS: dict[type, dict[str, Any]] = {}  # type hints per dataclass, resolved once


def _to_json(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _from_json(hint: Any, raw: Any) -> Any:
    if raw is None:
        return None
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        hint = next(a for a in get_args(hint) if a is not type(None))
    if hint is Decimal:
        return Decimal(raw)
    if hint is datetime:
        return datetime.fromisoformat(raw)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(raw)
    return raw


# -- exchange internals -------------------------------------------------------------------------


def _working_to_json(w: Working) -> JsonDict:
    day = w.session_day
    return {
        "seq": w.seq,
        "triggered": w.triggered,
        "extreme": None if w.extreme is None else str(w.extreme),
        "session_day": day.isoformat() if isinstance(day, date) else None,
        "notional": str(w.notional),
        "same_bar": w.same_bar,
    }


def _working_from_json(data: JsonDict) -> Working:
    extreme = data["extreme"]
    w = Working(
        int(data["seq"]),
        extreme=None if extreme is None else Decimal(extreme),
        same_bar=bool(data["same_bar"]),
    )
    w.triggered = bool(data["triggered"])
    day = data["session_day"]
    w.session_day = None if day is None else date.fromisoformat(day)
    w.notional = Decimal(data["notional"])
    return w


def _position_to_json(p: PositionState) -> JsonDict:
    return {
        "symbol": p.symbol,
        "quantity": str(p.quantity),
        "cost": str(p.cost),
        "realized": str(p.realized),
        "opened_at": p.opened_at.isoformat(),
        "updated_at": p.updated_at.isoformat(),
        "last_price": str(p.last_price),
        "long": p.long,
    }


def _position_from_json(data: JsonDict) -> PositionState:
    p = PositionState(
        data["symbol"], datetime.fromisoformat(data["opened_at"]), Decimal(data["last_price"])
    )
    p.quantity, p.cost = Decimal(data["quantity"]), Decimal(data["cost"])
    p.realized = Decimal(data["realized"])
    p.updated_at = datetime.fromisoformat(data["updated_at"])
    p.long = bool(data["long"])
    return p
