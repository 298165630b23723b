"""Template tags of a backtest's pages (result and status alike): the actions on the run
(rename, re-run, clone and edit, cancel, delete) and the "What was run" panel, so that the
pages' views need not gather them."""

from __future__ import annotations

from typing import Any

from django import template

from runtimes import what_was_run as inputs_of
from runtimes.models import TradingSession
from strategies.models import StrategyVersion

register = template.Library()


@register.inclusion_tag("runtimes/_backtest_actions.html", takes_context=True)
def backtest_actions(context: template.Context, session: TradingSession) -> dict[str, Any]:
    """The run's buttons; the versions of its strategy to clone it into (hosted runs)."""
    membership = context.get("current_membership")
    version = session.strategy_version
    versions = ([] if version is None else
                list(StrategyVersion.objects.filter(strategy_id=version.strategy_id)
                     .order_by("-number").values_list("pk", "number")[:100]))
    return {"session": session, "versions": versions, "csrf_token": context.get("csrf_token"),
            "can_trade": membership is not None and membership.can_trade()}


@register.inclusion_tag("runtimes/_what_was_run.html")
def what_was_run(session: TradingSession, *, open: bool = False) -> dict[str, Any]:
    """The run's inputs and its execution contract in sentences; folded unless `open`, its
    summary line the inputs that tell runs apart."""
    shown = inputs_of.inputs(session)
    summary = " · ".join(text for label, text in shown
                         if label in ("Parameters", "Symbols", "Range"))
    return {"session": session, "inputs": shown, "summary": summary, "open": open,
            "sentences": inputs_of.contract_sentences(
                session.backtest_config().execution_contract())}
