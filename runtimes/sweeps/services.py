"""Writes of parameter sweeps: create one (its points, then as many backtests as the workspace's
quota has room for), move it on as its backtests end (more points, the walk-forward's
out-of-sample stage, its end), cancel it. Reads that several interfaces share (progress, the
point table) are in runtimes/sweeps/results.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts.models import User, Workspace
from config.errors import ApiError
from runtimes.core.wire import decimal_str
from runtimes.hosting import quotas
from runtimes.models import LIVE_STATES, TERMINAL_STATES, Source, State, TradingSession
from runtimes.services import (
    cancel_session,
    check_hosted_run,
    check_period,
    create_hosted_backtest,
)
from runtimes.sweeps.models import Phase, Sweep, SweepPoint, SweepState
from runtimes.sweeps.results import METRICS, rank_key
from runtimes.sweeps.space import GRID, Space, SpaceError, parse_space
from strategies.models import Dataset, DatasetFile, StrategyVersion

MAX_OOS_TOP = 10  # best in-sample points run again out of sample
ONE_TICK = timedelta(seconds=1)  # ranges are inclusive and whole seconds: in-sample ends before


@dataclass(frozen=True)
class Split:
    """A walk-forward split of the range: a fraction (0-1, exclusive) or a date, and how many
    of the best in-sample points run out of sample."""

    fraction: Decimal | None = None
    at: datetime | None = None
    top: int = 3


def create_sweep(
    *, workspace: Workspace, created_by: User, version: StrategyVersion, dataset: Dataset,
    name: str, space: Space, metric: str = "sharpe", symbols: list[str] | None = None,
    start: datetime | None = None, end: datetime | None = None,
    initial_cash: Decimal = Decimal(100_000), commission: dict[str, Decimal] | None = None,
    slippage_bps: Decimal = Decimal(0), split: Split | None = None,
) -> Sweep:
    """Record a sweep of `version` over `space` and start as many of its points as the
    workspace's hosted-backtest quota has room for; the others wait for slots as points end.

    Raises ApiError NOT_FOUND (404) for a version or dataset of another workspace;
    VALIDATION_ERROR (400) {field: [message]} for a bad metric, split, symbols or range;
    SANDBOX_UNAVAILABLE (400) as `create_hosted_backtest`; QUOTA_EXCEEDED (429) when the
    workspace may run no hosted backtest at all (its points would wait for ever)."""
    check_hosted_run(workspace=workspace, version=version, dataset=dataset)
    _check_some_quota(workspace)
    if metric not in METRICS:
        raise invalid("metric", f"Unknown metric; one of {', '.join(METRICS)}.")
    chosen = _symbols(dataset, symbols)
    first, last = _range(dataset, chosen, start, end)
    split_at = None if split is None else _split_at(split, first, last)
    if split_at is not None:
        _check_split_ranges(dataset, chosen, start, end, split_at,
                            field="split_at" if split.at is not None else "split_fraction")
    points = space.points()
    if not points:
        raise invalid("parameters", "The space has no points.")
    with transaction.atomic():
        sweep = Sweep.objects.create(
            workspace=workspace, created_by=created_by, name=name[:100], version=version,
            dataset=dataset, symbols=chosen, start=start, end=end, initial_cash=initial_cash,
            commission={k: decimal_str(v) for k, v in (commission or {}).items()},
            slippage_bps=slippage_bps, space=space_json(space), metric=metric,
            split_at=split_at, oos_top=0 if split is None else split.top)
        phase = Phase.FULL if split_at is None else Phase.IN_SAMPLE
        SweepPoint.objects.bulk_create(
            SweepPoint(sweep=sweep, index=i, phase=phase, params=p) for i, p in enumerate(points))
        _release_points(sweep)
    return sweep


def sweep_arguments(data: dict[str, Any], *, version: StrategyVersion) -> dict[str, Any]:
    """`create_sweep`'s keyword arguments from the API's or the form's validated fields
    (`from`/`to` already named start/end). Raises ApiError VALIDATION_ERROR for a bad space."""
    try:
        space = parse_space(mode=data.get("mode", GRID), parameters=data.get("parameters"),
                            fixed=data.get("fixed"), samples=data.get("samples"),
                            seed=data.get("seed"))
    except SpaceError as error:
        raise space_error(error) from None
    split = None
    if data.get("split_at") is not None or data.get("split_fraction") is not None:
        split = Split(fraction=data.get("split_fraction"), at=data.get("split_at"),
                      top=data.get("oos_top") or 3)
    return {
        "name": data.get("name") or f"{version.strategy.name} v{version.number} sweep",
        "space": space, "metric": data.get("metric", "sharpe"), "symbols": data.get("symbols"),
        "start": data.get("start"), "end": data.get("end"),
        "initial_cash": data.get("initial_cash", Decimal(100_000)),
        "commission": dict(data.get("commission") or {}),
        "slippage_bps": data.get("slippage_bps", Decimal(0)), "split": split,
    }


def invalid(field: str, message: str) -> ApiError:
    """The API's envelope for a bad field of a sweep."""
    return ApiError("VALIDATION_ERROR", "The sweep has invalid fields; see details.",
                    details={field: [message]})


def space_error(error: SpaceError) -> ApiError:
    return invalid(error.field, error.message)


def space_json(space: Space) -> dict[str, Any]:
    axes = {n: ({"min": a[1], "max": a[2]} if isinstance(a, tuple) else a)
            for n, a in space.axes.items()}
    return {"mode": space.mode, "parameters": axes, "fixed": space.fixed,
            "samples": space.samples, "seed": space.seed}


def advance_sweep(*, sweep_id: Any, now: datetime) -> Sweep | None:
    """Move a running sweep on: start waiting points while the quota has room, start the
    out-of-sample stage once every in-sample point ended, and end the sweep once every point
    did. Idempotent (any worker, any number of times); None for an unknown sweep."""
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().filter(pk=sweep_id).first()
        if sweep is None or sweep.state != SweepState.RUNNING:
            return sweep
        _release_points(sweep)
        if _all_ended(sweep) and sweep.walk_forward and not _has_oos(sweep):
            _start_out_of_sample(sweep)
            _release_points(sweep)
        if _all_ended(sweep):
            Sweep.objects.filter(pk=sweep.pk, state=SweepState.RUNNING).update(
                state=SweepState.COMPLETED, finished_at=now)
            sweep.state, sweep.finished_at = SweepState.COMPLETED, now
    return sweep


def session_ended(*, session_id: Any, now: datetime) -> None:
    """A worker's host returned: if its session was a sweep's point, move the sweep on."""
    sweep_id = (TradingSession.objects.filter(pk=session_id)
                .values_list("sweep_id", flat=True).first())
    if sweep_id is not None:
        advance_sweep(sweep_id=sweep_id, now=now)


def advance_running_sweeps(*, now: datetime) -> int:
    """The periodic pass (beat): move every running sweep on, so that points cancelled or
    reaped outside a host (which tells nobody) still free their slots. Reads across
    workspaces on purpose: each sweep is advanced within its own. Returns how many ran."""
    ids = list(Sweep.objects.filter(state=SweepState.RUNNING).values_list("pk", flat=True))
    for sweep_id in ids:
        advance_sweep(sweep_id=sweep_id, now=now)
    return len(ids)


def cancel_sweep(*, sweep: Sweep, now: datetime) -> bool:
    """Cancel a running sweep as a whole: points not started are dropped (they keep no
    session), queued and running backtests are cancelled. False if it had ended already."""
    with transaction.atomic():
        if not Sweep.objects.filter(pk=sweep.pk, state=SweepState.RUNNING).update(
                state=SweepState.CANCELLED, finished_at=now):
            return False
        sweep.state, sweep.finished_at = SweepState.CANCELLED, now
    live = TradingSession.objects.for_workspace(sweep.workspace).filter(
        sweep=sweep, state__in=LIVE_STATES)
    for session in live:
        cancel_session(session=session, now=now, reason="the sweep was cancelled")
    return True


def delete_sweep(*, sweep: Sweep) -> int:
    """Delete an ended sweep with its points and their backtests (results, journals, share
    links). Raises ApiError INVALID_TRANSITION (409) while it runs (cancel it first) or while
    a cancelled point's backtest is still stopping. Returns how many backtests went."""
    with transaction.atomic():
        locked = Sweep.objects.select_for_update().filter(pk=sweep.pk).first()
        if locked is None:
            return 0
        if locked.state == SweepState.RUNNING:
            raise ApiError("INVALID_TRANSITION", "The sweep is running: cancel it first, then "
                           "delete it.", status_code=409, details={"state": locked.state})
        sessions = TradingSession.objects.for_workspace(locked.workspace).filter(sweep=locked)
        if sessions.filter(state__in=LIVE_STATES).exists():
            raise ApiError("INVALID_TRANSITION", "Some of the sweep's backtests are still "
                           "stopping; delete it once they have.", status_code=409,
                           details={"state": locked.state})
        count = sessions.count()
        sessions.delete()
        locked.delete()  # its points go with it (CASCADE)
    return count


# -- inside advance_sweep's transaction ----------------------------------------------------------


def _release_points(sweep: Sweep) -> int:
    """Start waiting points while the workspace's hosted-backtest quota has room (the row lock
    on the workspace keeps two sweeps from taking the same slot). Returns how many started."""
    waiting = list(_waiting(sweep).order_by("phase", "index"))
    if not waiting:
        return 0
    quotas.lock_workspace(sweep.workspace)
    free = _free_slots(sweep.workspace)
    started = 0
    for point in waiting:
        if started >= free:
            break
        try:
            with transaction.atomic():  # a refusal leaves nothing of the point's backtest
                session = _start_point(sweep, point)
        except ApiError as exc:
            if exc.error_code == "QUOTA_EXCEEDED":
                break
            # Any other refusal would refuse again at every pass and keep the sweep running
            # for ever: the point fails with the reason, and the sweep carries on.
            point.failure_reason = exc.message[:500]
            point.save(update_fields=["failure_reason"])
            continue
        point.session = session
        point.save(update_fields=["session"])
        started += 1
    return started


def _waiting(sweep: Sweep) -> Any:
    """The points that have neither started nor been refused."""
    return sweep.points.filter(session__isnull=True, failure_reason="")


def _check_some_quota(workspace: Workspace) -> None:
    kind = quotas.HOSTED_BACKTEST
    if quotas.quota_limit(workspace=workspace, kind=kind) > 0:
        return
    raise ApiError(
        "QUOTA_EXCEEDED",
        f"This workspace may run no {kind.label} at all (its limit is 0), so no point of a sweep "
        f"could start. To raise the limit, ask an administrator to set '{kind.field}' in "
        f"Workspace quotas (Django admin) or the default {kind.setting}.",
        status_code=429, details={"kind": kind.name, "limit": 0, "running": 0})


def _free_slots(workspace: Workspace) -> int:
    kind = quotas.HOSTED_BACKTEST
    live = (TradingSession.objects.for_workspace(workspace)
            .filter(platform=kind.platform, source=Source.HOSTED, state__in=LIVE_STATES).count())
    return max(0, quotas.quota_limit(workspace=workspace, kind=kind) - live)


def _start_point(sweep: Sweep, point: SweepPoint) -> TradingSession:
    start, end = sweep.start, sweep.end
    if point.phase == Phase.IN_SAMPLE:
        end = sweep.split_at - ONE_TICK if sweep.split_at else end
    elif point.phase == Phase.OUT_OF_SAMPLE:
        start = sweep.split_at
    session = create_hosted_backtest(
        workspace=sweep.workspace, created_by=sweep.created_by, version=sweep.version,
        dataset=sweep.dataset, symbols=sweep.symbols, start=start, end=end,
        initial_cash=Decimal(sweep.initial_cash),
        commission={k: Decimal(v) for k, v in sweep.commission.items()},
        slippage_bps=Decimal(sweep.slippage_bps), params=point.params)
    TradingSession.objects.filter(pk=session.pk).update(sweep=sweep)
    session.sweep = sweep
    return session


def _all_ended(sweep: Sweep) -> bool:
    live = sweep.points.filter(session__isnull=False).exclude(
        session__state__in=TERMINAL_STATES)
    return not _waiting(sweep).exists() and not live.exists()


def _has_oos(sweep: Sweep) -> bool:
    return sweep.points.filter(phase=Phase.OUT_OF_SAMPLE).exists()


def _start_out_of_sample(sweep: Sweep) -> None:
    """The walk-forward's second stage: the `oos_top` best completed in-sample points by the
    sweep's metric, each run again on the out-of-sample range."""
    from runtimes.sweeps.results import point_rows

    rows = [r for r in point_rows(sweep) if r["phase"] == Phase.IN_SAMPLE
            and r["state"] == State.COMPLETED and r["metrics"].get(sweep.metric) is not None]
    rows.sort(key=lambda r: rank_key(r, sweep.metric))
    SweepPoint.objects.bulk_create(
        SweepPoint(sweep=sweep, index=i, phase=Phase.OUT_OF_SAMPLE, params=r["params"],
                   checks_id=r["point_id"])
        for i, r in enumerate(rows[:sweep.oos_top]))


# -- validation ----------------------------------------------------------------------------------


def _symbols(dataset: Dataset, symbols: list[str] | None) -> list[str]:
    available = sorted(dataset.files.values_list("symbol", flat=True))
    chosen = list(dict.fromkeys(symbols)) if symbols else available
    missing = [s for s in chosen if s not in available]
    if missing:
        raise invalid("symbols", f"The dataset has no data for {', '.join(missing)}; it has "
                      f"{', '.join(available)}.")
    return chosen


def _range(dataset: Dataset, symbols: list[str], start: datetime | None,
           end: datetime | None) -> tuple[datetime, datetime]:
    """The range the points run over: the given one within the symbols' data."""
    data_first, data_last = dataset.bounds(symbols)
    first = max(filter(None, (data_first, start)), default=None)
    last = min(filter(None, (data_last, end)), default=None)
    if first is None or last is None or first >= last:
        raise invalid("start", "The range is empty: from must be before to, within the "
                      "dataset's data.")
    return first, last


def _check_split_ranges(dataset: Dataset, symbols: list[str], start: datetime | None,
                        end: datetime | None, split_at: datetime, *, field: str) -> None:
    """Refuse a split whose in-sample or out-of-sample range holds no bar, as the points'
    backtests would be refused (the out-of-sample ones only once the in-sample ones ran)."""
    files = list(DatasetFile.objects.filter(dataset=dataset, symbol__in=symbols))
    for label, part_start, part_end in (("in-sample", start, split_at - ONE_TICK),
                                        ("out-of-sample", split_at, end)):
        try:
            check_period(files=files, timeframe=dataset.timeframe, start=part_start,
                         end=part_end)
        except ApiError as error:
            raise invalid(field, f"The {label} range: {error.message} Move the split.") from None


def _split_at(split: Split, first: datetime, last: datetime) -> datetime:
    if not 1 <= split.top <= MAX_OOS_TOP:
        raise invalid("oos_top", f"1 to {MAX_OOS_TOP} best points run out of sample.")
    if split.at is not None:
        if not first < split.at <= last:
            raise invalid("split_at", f"The split must fall inside the range "
                          f"({first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC).")
        return split.at
    fraction = split.fraction
    if fraction is None or not Decimal("0.05") <= fraction <= Decimal("0.95"):
        raise invalid("split_fraction", "The in-sample share is from 0.05 to 0.95.")
    seconds = (last - first).total_seconds() * float(fraction)
    return (first + timedelta(seconds=int(seconds))).replace(microsecond=0)


