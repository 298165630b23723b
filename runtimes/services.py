"""Writes of the runtimes app: creating and cancelling trading sessions, kill switches; and the
JSON the management API shows of sessions and their results."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from accounts.models import BrokerCredential, User, Workspace
from config.errors import ApiError
from runtimes.backtests import default_name
from runtimes.core.dataset_errors import DatasetError
from runtimes.core.datasets import load_bar_series
from runtimes.core.platforms import PLATFORMS
from runtimes.core.provider import Pacing
from runtimes.core.wire import decimal_str
from runtimes.credentials import check_connection
from runtimes.hosting import dispatch, quotas
from runtimes.hosting.bus import BusUnavailable, get_bus
from runtimes.hosting.leases import end_session_of_lost_host, host_is_gone
from runtimes.hosting.risk import RiskLimits
from runtimes.models import (
    LIVE_STATES,
    KillSwitch,
    Platform,
    SessionAudit,
    SessionResult,
    Source,
    State,
    TradingSession,
)
from runtimes.providers import registry
from runtimes.sandbox.runner import SandboxSupport, probe_bubblewrap
from strategies.models import Dataset, DatasetFile, StrategyVersion
from strategies.services import bar_cache

# A hosted strategy starts within seconds; its idle time is the engine's, not a person's.
HOSTED_CONNECT_TIMEOUT_S = 60
HOSTED_IDLE_TIMEOUT_S = 120


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
    risk_limits: RiskLimits | None = None,
) -> TradingSession:
    """Record a remote-strategy backtest over `dataset`. It holds no worker until its strategy's
    first request or socket queues it (runtimes/dispatch.py).

    `symbols` None means every symbol of the dataset; `timeframe` must be the dataset's (no
    resampling of the stream; the bars endpoint resamples). `risk_limits` None means none;
    its `allowed_symbols` None means the session's symbols. Raises ApiError INVALID_VALUE (400)
    for symbols or a timeframe the dataset lacks, or an empty period; VALIDATION_ERROR (400)
    for allowed symbols outside the session's; QUOTA_EXCEEDED (429) when the workspace has as
    many live remote sessions as its quota allows (runtimes/quotas.py).
    """
    return _record_backtest(
        workspace=workspace, created_by=created_by, dataset=dataset, symbols=symbols,
        timeframe=timeframe, start=start, end=end, initial_cash=initial_cash,
        commission=commission, slippage_bps=slippage_bps, connect_timeout_s=connect_timeout_s,
        idle_timeout_s=idle_timeout_s, risk_limits=risk_limits, source=Source.REMOTE)


def check_hosted_run(*, workspace: Workspace, version: StrategyVersion, dataset: Dataset) -> None:
    """Refuse a hosted run this workspace may not start here: ApiError NOT_FOUND (404) for a
    version or dataset of another workspace, SANDBOX_UNAVAILABLE (400) when bubblewrap cannot
    run here and SANDBOX_ALLOW_UNSANDBOXED is off (the reason says why)."""
    if version.strategy.workspace_id != workspace.pk or dataset.workspace_id != workspace.pk:
        raise ApiError("NOT_FOUND", "No such strategy version or dataset.", status_code=404)
    support = hosted_runs_support()
    if not support.available and not settings.SANDBOX_ALLOW_UNSANDBOXED:
        raise ApiError("SANDBOX_UNAVAILABLE", f"Hosted runs are refused here: {support.reason}; "
                       "unsandboxed development runs are not allowed.",
                       details={"reason": support.reason})


def create_hosted_backtest(
    *,
    workspace: Workspace,
    created_by: User,
    version: StrategyVersion,
    dataset: Dataset,
    symbols: list[str] | None = None,
    timeframe: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    initial_cash: Decimal = Decimal(100_000),
    commission: dict[str, Decimal] | None = None,
    slippage_bps: Decimal = Decimal(0),
    params: dict[str, Any] | None = None,
) -> TradingSession:
    """Record a backtest of `version` run by the platform in the sandbox (runtimes/hosted.py),
    queued for a worker at once (runtimes/dispatch.py); the strategy gets `params` as
    PARITY_STRATEGY_PARAMS.

    Validation as `create_backtest_session`. Raises ApiError NOT_FOUND (404) for a version or
    dataset of another workspace, SANDBOX_UNAVAILABLE (400) when bubblewrap cannot run here and
    SANDBOX_ALLOW_UNSANDBOXED is off (the reason says why); QUOTA_EXCEEDED (429) as
    `create_backtest_session`.
    """
    check_hosted_run(workspace=workspace, version=version, dataset=dataset)
    return _record_backtest(
        workspace=workspace, created_by=created_by, dataset=dataset, symbols=symbols,
        timeframe=timeframe, start=start, end=end, initial_cash=initial_cash,
        commission=commission or {}, slippage_bps=slippage_bps,
        connect_timeout_s=HOSTED_CONNECT_TIMEOUT_S, idle_timeout_s=HOSTED_IDLE_TIMEOUT_S,
        risk_limits=None, source=Source.HOSTED, strategy_version=version,
        params=dict(params or {}))


def check_platform(platform: str) -> None:
    """Raise ApiError INVALID_VALUE (400) {field: "platform"} for a platform this build has no
    provider for (the registry, runtimes/providers/registry.py), naming the available ones."""
    available = registry.available()
    if platform not in available:
        known = "an unknown platform" if platform not in PLATFORMS else "not available here"
        raise ApiError("INVALID_VALUE", f"{platform!r} is {known}; available platforms: "
                       f"{', '.join(available)}.",
                       details={"field": "platform", "provided": platform,
                                "available": available})


def create_live_session(
    *,
    workspace: Workspace,
    created_by: User,
    platform: str,
    symbols: list[str],
    timeframe: str,
    timeframes: list[str],
    initial_cash: Decimal,
    options: dict[str, Any],
    connect_timeout_s: int,
    risk_limits: RiskLimits | None = None,
    connection: BrokerCredential | None = None,
) -> TradingSession:
    """Record a remote-strategy session on a wall-clock platform (`mock`, a broker's paper
    platform through one of the workspace's `connection`s): no dataset, the market runs in real
    time until the session is stopped. It holds no worker until its strategy's first request or
    socket queues it (runtimes/dispatch.py).

    Raises ApiError INVALID_VALUE (400) for a platform without a provider here, a backtest
    (which needs a dataset: create_backtest_session) or a live platform (real money is traded
    by a deployment, which an owner confirms: runtimes/deployments.py); VALIDATION_ERROR (400)
    for allowed symbols outside the session's or a missing or mismatched connection;
    QUOTA_EXCEEDED (429) as `create_backtest_session`.
    """
    check_platform(platform)
    spec = PLATFORMS[platform]
    if spec.pacing != Pacing.WALL_CLOCK:
        raise ApiError("INVALID_VALUE", f"A {platform} session needs a dataset.",
                       details={"field": "dataset", "provided": None})
    if spec.live:
        raise ApiError("INVALID_VALUE", f"{spec.label} trades real money: open it as a "
                       "deployment, which an owner confirms and whose risk limits are set "
                       "(POST /api/v1/workspaces/{ws}/deployments).",
                       details={"field": "platform", "provided": platform})
    check_connection(spec=spec, workspace=workspace, connection=connection)
    chosen = list(dict.fromkeys(symbols))
    limits = _limits_for(risk_limits or RiskLimits(), chosen)
    now = timezone.now()
    with transaction.atomic():
        quotas.lock_workspace(workspace)
        quotas.check_quota(workspace=workspace,
                           kind=quotas.kind_of(platform=platform, source=Source.REMOTE))
        return TradingSession.objects.create(
            workspace=workspace, created_by=created_by, platform=platform,
            source=Source.REMOTE, state=State.CREATED, created_at=now, symbols=chosen,
            timeframe=timeframe, timeframes=[t for t in dict.fromkeys(timeframes)
                                             if t != timeframe],
            initial_cash=initial_cash, options=options, connect_timeout_s=connect_timeout_s,
            connection=connection, **limits.as_columns(),
        )


def hosted_runs_support() -> SandboxSupport:
    """Whether hosted runs get the bubblewrap sandbox on this machine (probed once, cached)."""
    return probe_bubblewrap()


def _record_backtest(
    *, workspace: Workspace, created_by: User, dataset: Dataset, symbols: list[str] | None,
    timeframe: str | None, start: datetime | None, end: datetime | None, initial_cash: Decimal,
    commission: dict[str, Decimal], slippage_bps: Decimal, connect_timeout_s: int,
    idle_timeout_s: int, risk_limits: RiskLimits | None, source: str, **hosted: Any,
) -> TradingSession:
    files = {f.symbol: f for f in dataset.files.all()}
    chosen = list(dict.fromkeys(symbols)) if symbols else sorted(files)
    missing = [s for s in chosen if s not in files]
    if missing:
        raise ApiError("INVALID_VALUE", f"The dataset has no data for {', '.join(missing)}; "
                       f"its symbols are {', '.join(sorted(files))}.",
                       details={"field": "symbols", "provided": missing,
                                "available": sorted(files)})
    if timeframe and timeframe != dataset.timeframe:
        raise ApiError("INVALID_VALUE", f"The dataset's timeframe is {dataset.timeframe}.",
                       details={"field": "timeframe", "provided": timeframe})
    check_period(files=[files[s] for s in chosen], timeframe=dataset.timeframe, start=start,
                 end=end)
    limits = _limits_for(risk_limits or RiskLimits(), chosen)
    with transaction.atomic():
        quotas.lock_workspace(workspace)
        quotas.check_quota(workspace=workspace,
                           kind=quotas.kind_of(platform=Platform.BACKTEST, source=source))
        session = _create_session(
            workspace=workspace, created_by=created_by, dataset=dataset, symbols=chosen,
            start=start, end=end, initial_cash=initial_cash, commission=commission,
            slippage_bps=slippage_bps, connect_timeout_s=connect_timeout_s,
            idle_timeout_s=idle_timeout_s, limits=limits, source=source, **hosted)
        if source == Source.HOSTED:  # a remote session asks for a worker at first contact
            dispatch.enqueue_dispatch()
    return session


def check_period(*, files: list[DatasetFile], timeframe: str, start: datetime | None,
                 end: datetime | None) -> None:
    """Refuse, before anything runs, a period the chosen symbols' files have no bar in: start
    not before end, a range outside their data (each symbol's own first and last bar), or a
    range between their bars. Raises ApiError INVALID_VALUE (400) with details.field "from" or
    "to" (the bound to change) and the data's range."""
    if start and end and start >= end:
        raise ApiError("INVALID_VALUE", "The start of the date range must be before its end.",
                       details={"field": "from", "from": _stamp(start), "to": _stamp(end)})
    if not files or (start is None and end is None):
        return
    first = min(f.first_timestamp for f in files)
    last = max(f.last_timestamp for f in files)
    span = {"first": _stamp(first), "last": _stamp(last)}
    outside = ("from" if start and start > last else "to" if end and end < first else None)
    if outside is not None:
        raise ApiError("INVALID_VALUE", f"The date range is outside the dataset "
                       f"({first:%Y-%m-%d} to {last:%Y-%m-%d}).",
                       details={"field": outside, "dataset_range": span})
    if _bars_in_period(files, timeframe=timeframe, start=start, end=end) == 0:
        raise ApiError("INVALID_VALUE", f"The date range holds no bars of "
                       f"{', '.join(f.symbol for f in files)} (the data runs from "
                       f"{first:%Y-%m-%d} to {last:%Y-%m-%d}, with gaps).",
                       details={"field": "from", "dataset_range": span})


def _bars_in_period(files: list[DatasetFile], *, timeframe: str, start: datetime | None,
                    end: datetime | None) -> int | None:
    """How many bars the files have in [start, end], read as the run reads them (through the
    cache of parsed files, which this fills for it), or None when a file cannot be read: the
    run then fails with the dataset's own reason."""
    cache = bar_cache()
    total = 0
    for file in files:
        try:
            series = load_bar_series(file.path, symbol=file.symbol, timeframe=timeframe,
                                     cache=cache)
        except (DatasetError, OSError):
            return None
        total += len(series.slice(start, end))
    return total


def _create_session(
    *, workspace: Workspace, created_by: User, dataset: Dataset, symbols: list[str],
    start: datetime | None, end: datetime | None, initial_cash: Decimal,
    commission: dict[str, Decimal], slippage_bps: Decimal, connect_timeout_s: int,
    idle_timeout_s: int, limits: RiskLimits, source: str, **hosted: Any,
) -> TradingSession:
    queued = source == Source.HOSTED
    now = timezone.now()
    return TradingSession.objects.create(
        workspace=workspace,
        created_by=created_by,
        platform=Platform.BACKTEST,
        source=source,
        name=default_name(version=hosted.get("strategy_version"), dataset=dataset,
                          symbols=symbols, start=start, end=end),
        state=State.QUEUED if queued else State.CREATED,
        created_at=now,
        queued_at=now if queued else None,
        dataset=dataset,
        symbols=symbols,
        timeframe=dataset.timeframe,
        start=start,
        end=end,
        initial_cash=initial_cash,
        commission={k: decimal_str(v) for k, v in commission.items()},
        slippage_bps=slippage_bps,
        connect_timeout_s=connect_timeout_s,
        idle_timeout_s=idle_timeout_s,
        **limits.as_columns(),
        **hosted,
    )


def _limits_for(limits: RiskLimits, symbols: list[str]) -> RiskLimits:
    if limits.allowed_symbols is None:
        return replace(limits, allowed_symbols=tuple(symbols))
    outside = [s for s in limits.allowed_symbols if s not in symbols]
    if outside:
        raise ApiError("VALIDATION_ERROR", "The request has invalid fields; see details.",
                       details={"allowed_symbols": [f"not symbols of this session: "
                                                    f"{', '.join(outside)}"]})
    return replace(limits, allowed_symbols=tuple(dict.fromkeys(limits.allowed_symbols)))


def cancel_session(*, session: TradingSession, now: datetime, reason: str = "cancelled") -> bool:
    """Cancel a live session. Not yet picked up by a worker (created or queued): cancelled here
    at once. Picked up: the host is told over the bus and stops within a poll interval,
    journaling what it has; its host gone (runtimes/leases.py): cancelled here at once. Returns
    False if the session had already ended."""
    if session.transition(to=State.CANCELLED, allowed_from={State.CREATED, State.QUEUED},
                          finished_at=now, failure_reason=reason):
        return True
    if _ended_in_place_of_lost_host(session, to=State.CANCELLED, reason=reason, now=now):
        return True
    if session.is_terminal:
        return False
    get_bus().post(str(session.id), {"kind": "cancel", "reason": reason})
    return True


def _ended_in_place_of_lost_host(
    session: TradingSession, *, to: str, reason: str, now: datetime
) -> bool:
    # Reads the row afresh (state and lease); the fence makes a race with the host harmless.
    session.refresh_from_db(fields=["state", "lease_fence", "lease_expires_at"])
    return host_is_gone(session, now=now) and end_session_of_lost_host(
        session=session, to=to, reason=reason, now=now)


def kill_session(
    *, session: TradingSession, set_by: User, reason: str, now: datetime
) -> bool:
    """Set the session's kill switch (one-way): its host refuses new orders with reject_code
    KILL_SWITCH and cancels the open ones; its host gone (runtimes/leases.py), the session is
    cancelled here at once. Audited. Returns False if it was already set."""
    reason = reason[:300]
    with transaction.atomic():
        updated = TradingSession.objects.filter(pk=session.pk, kill_switch_active=False).update(
            kill_switch_active=True, kill_switch_reason=reason, kill_switch_set_by=set_by,
            kill_switch_set_at=now)
        if not updated:
            return False
        SessionAudit.objects.create(
            session=session, kind=SessionAudit.Kind.KILL_SWITCH, reject_code="KILL_SWITCH",
            message="session kill switch set", created_at=now,
            details={"scope": "session", "reason": reason, "set_by": str(set_by.pk)})
        if session.state in LIVE_STATES:
            _tell_host_after_commit(session, scope="session", reason=reason)
    _ended_in_place_of_lost_host(session, to=State.CANCELLED, now=now,
                                 reason=f"kill switch: {reason}" if reason else "kill switch")
    return True


def set_workspace_kill_switch(
    *, workspace: Workspace, active: bool, reason: str, set_by: User, now: datetime
) -> KillSwitch:
    """Turn the workspace's kill switch on or off. On: every live session of the workspace
    refuses new orders (its host re-reads the flag within a second, and is told at once to
    cancel its open orders). Off: they accept orders again. Audited per live session."""
    reason = reason[:300]
    with transaction.atomic():
        switch, _ = KillSwitch.objects.update_or_create(
            workspace=workspace,
            defaults={"active": active, "reason": reason, "set_by": set_by, "set_at": now})
        live = list(TradingSession.objects.for_workspace(workspace).filter(state__in=LIVE_STATES))
        SessionAudit.objects.bulk_create([
            SessionAudit(session=s, kind=SessionAudit.Kind.KILL_SWITCH,
                         reject_code="KILL_SWITCH" if active else "",
                         message=f"workspace kill switch {'set' if active else 'released'}",
                         details={"scope": "workspace", "active": active, "reason": reason,
                                  "set_by": str(set_by.pk)}, created_at=now)
            for s in live])
        if active:
            for session in live:
                _tell_host_after_commit(session, scope="workspace", reason=reason)
    return switch


def _tell_host_after_commit(session: TradingSession, *, scope: str, reason: str) -> None:
    # A command nobody waits for (the reply goes nowhere): the host cancels the open orders
    # between two batches, and the strategy sees the cancels as events.
    command = {"kind": "command", "request": f"kill-{uuid.uuid4().hex}", "op": "kill_switch",
               "path": {}, "query": {}, "body": {"scope": scope, "reason": reason}}
    session_id = str(session.id)
    transaction.on_commit(lambda: get_bus().post(session_id, command))


def kill_switch_json(switch: KillSwitch | None) -> dict[str, Any]:
    """The management API's view of a workspace kill switch (never set: inactive)."""
    if switch is None:
        return {"active": False, "reason": "", "set_by": None, "set_at": None}
    return {"active": switch.active, "reason": switch.reason,
            "set_by": None if switch.set_by_id is None else str(switch.set_by_id),
            "set_at": _stamp(switch.set_at)}


def session_results_json(*, session: TradingSession) -> dict[str, Any]:
    """Metrics, execution contract and an equity summary of a finished backtest. Raises
    ApiError NOT_FOUND (404) while the session has no results."""
    result = session_result(session=session)
    equity = result.equity
    summary: dict[str, Any] = {"points": len(equity)}
    if equity:
        def point(row: list[str]) -> dict[str, str]:
            return {"timestamp": _stamp_text(row[0]), "equity": row[1]}

        summary.update(
            first=point(equity[0]), last=point(equity[-1]),
            high=point(max(equity, key=lambda row: Decimal(row[1]))),
            low=point(min(equity, key=lambda row: Decimal(row[1]))))
    return {
        "session": str(session.id),
        "state": session.state,
        "metrics": result.metrics,
        "execution_contract": session.backtest_config().execution_contract(),
        "equity": summary,
        "orders": len(result.orders),
        "trades": len(result.trades),
        # Round trips, per symbol, monthly returns and the benchmark; null for a result stored
        # before they were computed. The trips themselves: GET .../round-trips.
        "analysis": result.analysis or None,
    }


def session_result(*, session: TradingSession) -> SessionResult:
    """The result row of a session. Raises ApiError NOT_FOUND until the session completed."""
    result = SessionResult.objects.filter(session=session).first()
    if result is None:
        raise ApiError("NOT_FOUND", f"The session has no results (it is {session.state}).",
                       status_code=404, details={"state": session.state})
    return result


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _stamp_text(text: str) -> str:
    return text.replace("+00:00", "Z")


def session_json(session: TradingSession, *, origin: str,
                 positions: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The management API's view of a session; `base_url` is where the strategy connects;
    `queue_position` its place in line while queued (from `positions`, when a list computed
    them once: `dispatch.queue_positions()`)."""
    stamp = _stamp
    return {
        "id": str(session.id),
        "name": session.title,
        "workspace": str(session.workspace_id),
        "platform": session.platform,
        "source": session.source,
        "state": session.state,
        "queue_position": (dispatch.queue_position(session) if positions is None
                           else positions.get(str(session.pk))),
        "failure_reason": session.failure_reason,
        # What happened and what to do, as the dashboard says it (runtimes/failures.py).
        "failure_message": "" if (failure := session.failure()) is None else failure.message,
        "dataset": None if session.dataset_id is None else str(session.dataset_id),
        "symbols": session.symbols,
        "timeframe": session.timeframe,
        "timeframes": [session.timeframe, *session.timeframes],
        "options": session.options,
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
        "risk_limits": session.risk_limits().as_json(),
        "kill_switch": {"active": session.kill_switch_active,
                        "reason": session.kill_switch_reason,
                        "set_at": stamp(session.kill_switch_set_at)},
        "base_url": f"{origin}/sessions/{session.id}",
    }


def backtest_json(session: TradingSession, *, origin: str, with_output: bool,
                  positions: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The management API's view of a hosted backtest: the session, its strategy version and
    parameters, which sandbox applied, its progress and (`with_output`) its captured output."""
    version = session.strategy_version
    body = {
        **session_json(session, origin=origin, positions=positions),
        "strategy": None if version is None else str(version.strategy_id),
        "version": None if version is None else version.number,
        "params": session.params,
        "sandboxed": session.sandboxed,
        "progress": backtest_progress(session),
        "output_tail": session.output_tail,
        "output_truncated_bytes": session.output_truncated_bytes,
    }
    if with_output:
        body["output"] = session.output
    return body


PROGRESS_TIMEOUT_S = 1.0


def backtest_progress(session: TradingSession) -> float | None:
    """The share (0-1) of the session's simulated period done: 1 once completed, 0 before it
    runs; while it runs, the host's simulated time over the period (None if it does not answer).
    """
    if session.state == State.COMPLETED:
        return 1.0
    if session.state != State.RUNNING:
        return 0.0 if session.state in LIVE_STATES else None
    try:
        reply = get_bus().request(str(session.id), {"op": "session", "path": {}, "query": {},
                                                    "body": None}, timeout=PROGRESS_TIMEOUT_S)
    except BusUnavailable:
        return None
    simulated = reply.body.get("simulated_time") if reply.status == 200 else None
    first, last = simulated_period(session)
    if simulated is None or first is None or last is None or last <= first:
        return 0.0 if simulated is None else None
    moment = datetime.fromisoformat(simulated.replace("Z", "+00:00"))
    return round(min(max((moment - first) / (last - first), 0.0), 1.0), 4)


def simulated_period(session: TradingSession) -> tuple[datetime | None, datetime | None]:
    """The first and last moment a backtest simulates: its symbols' data within its range
    (None, None for a session without a dataset)."""
    bounds = DatasetFile.objects.filter(dataset_id=session.dataset_id,
                                        symbol__in=session.symbols).aggregate(
        first=Min("first_timestamp"), last=Max("last_timestamp"))
    first = max(filter(None, (bounds["first"], session.start)), default=None)
    last = min(filter(None, (bounds["last"], session.end)), default=None)
    return first, last
