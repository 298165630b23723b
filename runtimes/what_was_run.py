"""What a backtest was run with, as a person reads it: its inputs (strategy version, parameters,
data, range, money, costs), its execution contract in sentences, and which inputs differ between
runs set side by side. Reads only; plain data for the templates."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from runtimes.models import TradingSession

# The commission's parts as BacktestConfig.execution_contract() describes them, and how to say
# each per fill.
_COMMISSION_PARTS = (("percent_of_notional", "{}% of the notional"),
                     ("per_share", "{} per unit"), ("fixed_per_fill", "{} per fill"))


def _number(text: Any) -> str:
    """A decimal string as people write it: thousands separated, no trailing zeros."""
    try:
        value = Decimal(str(text))
    except ArithmeticError:
        return str(text)
    if value == value.to_integral():
        return f"{value:,.0f}"
    return f"{value.normalize():,f}"


def range_text(session: TradingSession) -> str:
    """"2024-01-01 00:00 → 2024-03-31 00:00 UTC"; an open bound is the dataset's own."""
    start, end = session.start, session.end
    if start is not None and end is not None:
        return f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC"
    if start is not None:
        return f"from {start:%Y-%m-%d %H:%M} UTC to the dataset's end"
    if end is not None:
        return f"from the dataset's start to {end:%Y-%m-%d %H:%M} UTC"
    return "the whole dataset"


def commission_text(commission: dict[str, Any]) -> str:
    """"0.1% of the notional + 1 per fill, at least 2 per fill" or "none"."""
    parts = [template.format(_number(commission[key])) for key, template in _COMMISSION_PARTS
             if Decimal(str(commission.get(key) or 0))]
    if not parts:
        return "none"
    minimum = Decimal(str(commission.get("minimum_per_fill") or 0))
    text = " + ".join(parts)
    return f"{text}, at least {_number(minimum)} per fill" if minimum else text


_BUYING_POWER = {
    "cash": "buys need cash for their notional and commission (open buy orders reserve it); "
            "sells only reduce a long position: no short selling",
    "margin": "exposure may reach {leverage} times equity; short selling is allowed",
}
_SAME_BAR = {
    "pessimistic": "When one bar could reach both the stop and the target of a bracket (or "
                   "the two orders of an OCO group), the stop is taken to fill first: the "
                   "pessimistic choice.",
    "optimistic": "When one bar could reach both the stop and the target of a bracket (or the "
                  "two orders of an OCO group), the target is taken to fill first: the "
                  "optimistic choice.",
}


def contract_sentences(contract: dict[str, Any]) -> list[str]:
    """The execution contract (BacktestConfig.execution_contract()) as sentences: the account,
    when orders act, how market, limit and stop orders fill, slippage, commission, volume, the
    same-bar rule, day orders and how equity is marked."""
    account, costs = contract["account"], contract["costs"]
    slippage = Decimal(costs["slippage_bps"])
    moved = (f", moved {_number(slippage)} bps against the order by slippage (kept within the "
             f"bar's low and high)" if slippage else ", with no slippage")
    volume = contract["partial_fills"]["max_volume_share"]
    kind = "margin" if account["short_selling"] else "cash"
    power = _BUYING_POWER[kind].format(leverage=_number(account["leverage"]))
    return [
        f"A {kind} account in {account['currency']} starting with "
        f"{_number(account['initial_cash'])}: {power}.",
        "An order placed while the strategy sees a bar acts from the next bar: bars are "
        "stamped with their open time and seen once they closed.",
        f"Market orders fill at the next bar's open{moved}.",
        "Limit orders fill at the open when it is at or better than the limit, else at the "
        "limit when the bar reaches it.",
        "Stop orders fill at the open when the bar gaps through the stop, else at the stop "
        "when the bar reaches it.",
        f"Commission: {commission_text(costs['commission'])}.",
        "Orders fill in full whatever the bar's volume." if volume is None else
        f"All fills of a bar take at most {_number(Decimal(volume) * 100)}% of its volume; "
        "the rest keeps working.",
        _SAME_BAR[contract["same_bar_stop_and_target"]["rule"]],
        f"Day orders end with the trading day in {contract['day_session_timezone']}; equity "
        "is cash plus positions at the last close, after every bar.",
    ]


def inputs(session: TradingSession) -> list[tuple[str, str]]:
    """`[(label, text)]`: every input of the run, in the order of the backtest form."""
    version = session.strategy_version
    return [
        ("Strategy", f"{version.strategy.name} v{version.number}" if version is not None
         else "Remote strategy (API key)"),
        ("Parameters", _params_text(session.params)),
        ("Dataset", session.dataset.name if session.dataset is not None else "—"),
        ("Symbols", ", ".join(session.symbols) or "—"),
        ("Timeframe", session.timeframe),
        ("Range", range_text(session)),
        ("Initial cash", _number(session.initial_cash)),
        ("Commission", commission_text(
            session.backtest_config().execution_contract()["costs"]["commission"])),
        ("Slippage", f"{_number(session.slippage_bps)} bps"),
    ]


def _params_text(params: dict[str, Any]) -> str:
    if not params:
        return "none (the strategy's defaults)"
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in params.items())


def differing_inputs(sessions: Sequence[TradingSession]) -> list[dict[str, Any]]:
    """`[{label, values}]`: the inputs that are not the same in every run (one value per run,
    "—" where a run has no such parameter); parameters key by key. Empty: all inputs equal."""
    keys = sorted({key for session in sessions for key in session.params})
    shown = [dict(inputs(session)) for session in sessions]
    rows = [(label, [run[label] for run in shown]) for label in shown[0]
            if label != "Parameters"]
    rows[1:1] = [(f"Parameter {key}", [json.dumps(s.params[key]) if key in s.params else "—"
                                       for s in sessions]) for key in keys]
    return [{"label": label, "values": values} for label, values in rows
            if len(set(values)) > 1]
