"""Writes of the runtimes app: creating and cancelling trading sessions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts.models import User, Workspace
from config.errors import ApiError
from runtimes.bus import get_bus
from runtimes.core.wire import decimal_str
from runtimes.models import Platform, Source, State, TradingSession
from strategies.models import Dataset


def create_backtest_session(
    *,
    workspace: Workspace,
    created_by: User,
    dataset: Dataset,
    symbols: list[str] | None,
    timeframe: str | None,
    start: datetime | None,
    end: datetime | None,
    initial_cash: Decimal,
    commission: dict[str, Decimal],
    slippage_bps: Decimal,
    connect_timeout_s: int,
    idle_timeout_s: int,
) -> TradingSession:
    """Record a remote-strategy backtest over `dataset` and enqueue its host after commit.

    `symbols` None means every symbol of the dataset; `timeframe` must be the dataset's (no
    resampling yet). Raises ApiError INVALID_VALUE (400) for symbols or a timeframe the dataset
    lacks, or an empty period.
    """
    available = sorted(dataset.files.values_list("symbol", flat=True))
    chosen = list(dict.fromkeys(symbols)) if symbols else available
    missing = [s for s in chosen if s not in available]
    if missing:
        raise ApiError("INVALID_VALUE", "The dataset has no data for some symbols.",
                       details={"field": "symbols", "provided": missing, "available": available})
    if timeframe and timeframe != dataset.timeframe:
        raise ApiError("INVALID_VALUE", f"The dataset's timeframe is {dataset.timeframe}.",
                       details={"field": "timeframe", "provided": timeframe})
    if start and end and start >= end:
        raise ApiError("INVALID_VALUE", "from must be before to.", details={"field": "from"})
    session = TradingSession.objects.create(
        workspace=workspace,
        created_by=created_by,
        platform=Platform.BACKTEST,
        source=Source.REMOTE,
        dataset=dataset,
        symbols=chosen,
        timeframe=dataset.timeframe,
        start=start,
        end=end,
        initial_cash=initial_cash,
        commission={k: decimal_str(v) for k, v in commission.items()},
        slippage_bps=slippage_bps,
        connect_timeout_s=connect_timeout_s,
        idle_timeout_s=idle_timeout_s,
    )
    from runtimes.tasks import run_session

    session_id = str(session.id)
    transaction.on_commit(lambda: run_session.delay(session_id))
    return session


def cancel_session(*, session: TradingSession, now: datetime, reason: str = "cancelled") -> bool:
    """Cancel a live session. Not yet picked up by a worker: cancelled here at once. Hosted: the
    host is told over the bus and stops within a poll interval, journaling what it has. Returns
    False if the session had already ended."""
    if session.transition(to=State.CANCELLED, allowed_from={State.CREATED},
                          finished_at=now, failure_reason=reason):
        return True
    session.refresh_from_db(fields=["state"])
    if session.is_terminal:
        return False
    get_bus().post(str(session.id), {"kind": "cancel", "reason": reason})
    return True


def session_json(session: TradingSession, *, origin: str) -> dict[str, Any]:
    """The management API's view of a session; `base_url` is where the strategy connects."""
    def stamp(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat().replace("+00:00", "Z")

    return {
        "id": str(session.id),
        "workspace": str(session.workspace_id),
        "platform": session.platform,
        "source": session.source,
        "state": session.state,
        "failure_reason": session.failure_reason,
        "dataset": None if session.dataset_id is None else str(session.dataset_id),
        "symbols": session.symbols,
        "timeframe": session.timeframe,
        "from": stamp(session.start),
        "to": stamp(session.end),
        "initial_cash": decimal_str(Decimal(session.initial_cash)),
        "commission": session.commission,
        "slippage_bps": decimal_str(Decimal(session.slippage_bps)),
        "connect_timeout_s": session.connect_timeout_s,
        "idle_timeout_s": session.idle_timeout_s,
        "events_sent": session.events_sent,
        "events_acked": session.events_acked,
        "batches": session.batches,
        "created_at": stamp(session.created_at),
        "started_at": stamp(session.started_at),
        "finished_at": stamp(session.finished_at),
        "base_url": f"{origin}/sessions/{session.id}",
    }
