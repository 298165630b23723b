"""Backtest settings and the execution contract recorded with every result.

`BacktestConfig` is what a backtest is run with; `execution_contract()` writes every assumption
the simulated exchange makes into a JSON-able dict (Decimals as strings), so a result always says
how its fills were made. docs/backtest-semantics.md explains each entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from runtimes.core.costs import Commission, preset

CONTRACT_VERSION: Final = "1"
# Orders sized at fill (notional, equity_fraction) round down to this many units of a symbol.
DEFAULT_QUANTITY_STEP: Final = Decimal("0.00000001")
AccountType = Literal["cash", "margin"]
SameBarRule = Literal["pessimistic", "optimistic"]


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """Settings of one backtest. `None` fields take the platform preset's value, else a default.

    Raises ValueError on inconsistent settings (e.g. leverage on a cash account).
    """

    initial_cash: Decimal = Decimal(100_000)
    account_type: AccountType = "cash"
    leverage: Decimal = Decimal(1)
    commission: Commission | None = None
    slippage_bps: Decimal = Decimal(0)
    max_volume_share: Decimal | None = None
    platform_preset: str | None = None
    stop_take_same_bar: SameBarRule = "pessimistic"
    day_session_timezone: str | None = None
    currency: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    quantity_step: Decimal = DEFAULT_QUANTITY_STEP
    quantity_steps: dict[str, Decimal] = field(default_factory=dict)  # per symbol, overrides

    def __post_init__(self) -> None:
        if self.account_type not in ("cash", "margin"):
            raise ValueError("account_type must be 'cash' or 'margin'")
        if self.initial_cash < 0:
            raise ValueError("initial_cash must not be negative")
        if self.leverage < 1 or (self.account_type == "cash" and self.leverage != 1):
            raise ValueError("leverage must be >= 1, and exactly 1 on a cash account")
        if self.slippage_bps < 0:
            raise ValueError("slippage_bps must not be negative")
        share = self.max_volume_share
        if share is not None and not 0 < share <= 1:
            raise ValueError("max_volume_share must be in (0, 1]")
        steps = [self.quantity_step, *self.quantity_steps.values()]
        if any(not step.is_finite() or step <= 0 for step in steps):
            raise ValueError("quantity steps must be positive")
        if self.stop_take_same_bar not in ("pessimistic", "optimistic"):
            raise ValueError("stop_take_same_bar must be 'pessimistic' or 'optimistic'")
        if self.platform_preset is not None:
            preset(self.platform_preset)  # raises KeyError for an unknown preset
        ZoneInfo(self.session_timezone)  # raises for an unknown zone

    @property
    def is_margin(self) -> bool:
        return self.account_type == "margin"

    def step_for(self, symbol: str) -> Decimal:
        """The quantity step that orders sized at fill round down to, for `symbol`."""
        return self.quantity_steps.get(symbol, self.quantity_step)

    @property
    def pessimistic(self) -> bool:
        return self.stop_take_same_bar == "pessimistic"

    @property
    def resolved_commission(self) -> Commission:
        if self.commission is not None:
            return self.commission
        if self.platform_preset is not None:
            return preset(self.platform_preset).commission
        return Commission()

    @property
    def session_timezone(self) -> str:
        if self.day_session_timezone is not None:
            return self.day_session_timezone
        if self.platform_preset is not None:
            return preset(self.platform_preset).day_session_timezone
        return "UTC"

    @property
    def resolved_currency(self) -> str:
        if self.currency is not None:
            return self.currency
        if self.platform_preset is not None:
            return preset(self.platform_preset).currency
        return "USD"

    def execution_contract(self) -> dict[str, Any]:
        """Every assumption behind the fills, JSON-able (Decimals as strings)."""
        return {
            "contract_version": CONTRACT_VERSION,
            "platform_preset": self.platform_preset,
            "account": {
                "type": self.account_type,
                "initial_cash": str(self.initial_cash),
                "currency": self.resolved_currency,
                "leverage": str(self.leverage),
                "short_selling": self.is_margin,
                "position_mode": "NETTING",
                "buying_power": _BUYING_POWER[self.account_type],
                "liquidation": "none: margin calls and liquidations are not simulated",
            },
            "costs": {
                "commission": self.resolved_commission.describe(),
                "slippage_bps": str(self.slippage_bps),
                "slippage_rule": "fill price moved against the taker by slippage_bps, "
                "then clamped to the bar's [low, high]",
            },
            "fills": dict(_FILL_RULES),
            "partial_fills": {
                "max_volume_share": None
                if self.max_volume_share is None
                else str(self.max_volume_share),
                "rule": "per bar and symbol, all fills together take at most max_volume_share "
                "of the bar's volume; the rest stays working (IOC/FOK: see time_in_force)",
            },
            "same_bar_stop_and_target": {
                "rule": self.stop_take_same_bar,
                "meaning": _SAME_BAR[self.stop_take_same_bar],
            },
            "time_in_force": {
                "GTC": "works until filled or cancelled",
                "DAY": f"expires when the first bar of a later trading day arrives; the day is "
                f"the calendar date in {self.session_timezone} of the first bar the order "
                "could act on",
                "IOC": "one chance on the next bar of its symbol; any unfilled rest expires",
                "FOK": "one chance on the next bar; fills completely in that bar or expires "
                "without any fill",
            },
            "sizing_at_fill": {
                "rule": "an order given by notional or equity_fraction gets its quantity at its "
                "first fill: amount / fill price (after slippage), rounded down to the quantity "
                "step; equity_fraction uses the equity at that moment; the notional excludes "
                "commission, and a cash buy is sized down so quantity x price + commission <= "
                "cash; nothing fits one step: rejected (INVALID_QUANTITY)",
                "quantity_step": str(self.quantity_step),
                "quantity_steps": {s: str(v) for s, v in sorted(self.quantity_steps.items())},
            },
            "day_session_timezone": self.session_timezone,
            "marking": "equity = cash + positions marked at the last close seen, after every bar",
            "determinism": "no wall clock, no randomness; ids are sequential (ord-N, fill-N)",
            "extra": dict(self.extra),
        }


_BUYING_POWER: Final = {
    "cash": "buys need cash >= notional + commission (open buy orders reserve their notional); "
    "sells only from a long position (no short selling)",
    "margin": "gross exposure after an order <= equity x leverage; shorting allowed",
}

_SAME_BAR: Final = {
    "pessimistic": "when one bar could fill both a stop and a limit of one OCO group or bracket "
    "and neither filled at the open, the stop fills first and the limit is cancelled",
    "optimistic": "when one bar could fill both a stop and a limit of one OCO group or bracket "
    "and neither filled at the open, the limit fills first and the stop is cancelled",
}

_FILL_RULES: Final = {
    "no_look_ahead": "an order placed while the strategy sees bar t acts from the next bar of "
    "its symbol (bars are stamped with their open time and seen after they close)",
    "MARKET": "fills at the next bar's open",
    "LIMIT": "buy: open <= limit fills at the open, else low <= limit fills at the limit "
    "(sell mirrored)",
    "STOP": "buy: open >= stop fills at the open (gap), else high >= stop fills at the stop "
    "(sell mirrored)",
    "STOP_LIMIT": "triggers like a STOP, then works as a LIMIT; triggered at the open it may "
    "fill in the same bar; triggered inside the bar it fills at the stop only when the limit "
    "allows that price, else from the next bar on",
    "TRAILING_STOP": "trigger level trails the highest high (sell) / lowest low (buy) of the bars "
    "it has seen, starting from the last close at placement; a bar is checked against the level "
    "of the bars before it, then the level moves",
    "order_within_bar": "fills at the open first; then stops before limits (pessimistic) or "
    "limits before stops (optimistic); then submission order",
    "brackets": "stop_loss (STOP) and take_profit (LIMIT) legs are placed, GTC and reduce-only, "
    "for each filled quantity of the entry; they act in the entry's bar only if the entry "
    "filled at that bar's open, else from the next bar; they are one OCO pair; they are "
    "cancelled when the position becomes flat",
    "oco": "when an order of an oco_group_id fills completely, its open siblings are cancelled",
    "reduce_only": "rejected at submit unless it reduces the position; at fill time capped at the "
    "position size; cancelled if the position is already flat",
    "client_order_id": "idempotent per session: a second submit returns the first order",
    "insufficient_funds_at_fill": "an order that can no longer be paid for when it would fill "
    "is rejected (ORDER_REJECTED, INSUFFICIENT_BALANCE / INSUFFICIENT_MARGIN)",
    "modify": "in place: same order id, ORDER_MODIFIED; takes effect from the next bar",
}
