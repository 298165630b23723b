"""The Trading API's routes under a session's base URL, as data: what `runtimes/urls.py` turns
into Django paths and what a hosted strategy's local channel (runtimes/hosting/channel.py)
matches requests against, so both transports serve exactly the same operations.

A route is a path template (`<path:name>` takes the rest of the path, slashes included, as
Django's converter does; `<str:name>` one segment) and its HTTP methods' command names.
Framework-free.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

HEALTH: Final = "health"  # answered from the session itself, never sent to the provider

TRADING_ROUTES: Final[tuple[tuple[str, dict[str, str]], ...]] = (
    ("v1/account", {"get": "account"}),
    ("v1/orders", {"post": "submit_order", "get": "list_orders", "delete": "cancel_all_orders"}),
    ("v1/orders/history", {"get": "order_history"}),
    ("v1/orders/<path:order_id>", {"get": "get_order", "patch": "modify_order",
                                   "delete": "cancel_order"}),
    ("v1/positions", {"get": "list_positions", "delete": "close_all_positions"}),
    ("v1/positions/<path:position_id>", {"get": "get_position", "patch": "modify_position",
                                         "delete": "close_position"}),
    ("v1/trades", {"get": "list_trades"}),
    ("v1/quotes/<path:symbol>", {"get": "quote"}),
    ("v1/bars/<path:symbol>", {"get": "bars"}),
    ("v1/capabilities", {"get": "capabilities"}),
    ("v1/status", {"get": "status"}),
    ("v1/circuit-breakers", {"get": "circuit_breakers"}),
    ("v1/circuit-breakers/reset", {"post": "reset_circuit_breakers"}),
    ("v1/session", {"get": "session"}),
)

_CONVERTERS: Final = {"path": ".+", "str": "[^/]+"}
_PARAMETER = re.compile(r"<(path|str):([a-z_]+)>")


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A path that names an operation: its methods' commands and its path parameters."""

    ops: dict[str, str]
    params: dict[str, str]


def _compile(template: str) -> re.Pattern[str]:
    pattern, last = "", 0
    for found in _PARAMETER.finditer(template):
        pattern += re.escape(template[last:found.start()])
        pattern += f"(?P<{found.group(2)}>{_CONVERTERS[found.group(1)]})"
        last = found.end()
    return re.compile(pattern + re.escape(template[last:]))


# In table order: the first match wins, as Django's resolver does ("v1/orders/history" before
# "v1/orders/<path:order_id>").
_COMPILED: Final = tuple((_compile(template), ops) for template, ops in
                         ((HEALTH, {"get": HEALTH}), *TRADING_ROUTES))


def match_route(relative_path: str) -> RouteMatch | None:
    """The route of a percent-decoded path relative to the session's base ("v1/orders/abc"),
    or None when no route has that path."""
    for pattern, ops in _COMPILED:
        found = pattern.fullmatch(relative_path)
        if found is not None:
            return RouteMatch(ops, found.groupdict())
    return None


def command_query(lists: Iterable[tuple[str, list[str]]]) -> dict[str, str]:
    """Query parameters as a command carries them, from (name, values) pairs: the last value of
    each, `status` joined (several statuses filter together)."""
    return {name: ",".join(values) if name == "status" else values[-1]
            for name, values in lists}
