"""Writes of scheduled backtests: schedules with their django-celery-beat entry (created, changed,
paused and deleted together), and each run: the window it covers, the hosted backtest it starts
and a ScheduleRun row saying what happened.

Every problem with a schedule's settings is an ApiError VALIDATION_ERROR (400) whose details name
the field, so the API and the dashboard show it next to the input.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Min
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from accounts.models import User, Workspace
from config.errors import ApiError
from runtimes import services as runtimes_services
from runtimes.core.decimals import InvalidDecimal, parse_decimal
from runtimes.schedules.models import CRON_FIELDS, BacktestSchedule, RunStatus, ScheduleRun
from strategies.models import Dataset, StrategyVersion

logger = logging.getLogger(__name__)

TASK_NAME = "runtimes.run_schedule"  # migration 0008 renamed the beat entries of before
MIN_INTERVAL_MINUTES = 5
MAX_INTERVAL_MINUTES = 366 * 24 * 60  # a year: longer is a cron expression's job
INTERVAL_TOO_SHORT = f"The interval must be at least {MIN_INTERVAL_MINUTES} minutes."
INTERVAL_TOO_LONG = f"The interval must be at most {MAX_INTERVAL_MINUTES} minutes (366 days)."
MAX_ROLLING_DAYS = 100 * 366  # a century of data; more is no window (and overflows a date)
# Fields a PATCH may change; the version and dataset are chosen again by creating a schedule.
EDITABLE_FIELDS = ("name", "symbols", "timeframe", "initial_cash", "commission", "slippage_bps",
                   "params", "rolling_days", "start", "end", "cron_expression",
                   "interval_minutes")
COMMISSION_KEYS = frozenset({"percent", "per_share", "fixed", "minimum"})


def _invalid(field: str, message: str, **details: Any) -> ApiError:
    return ApiError("VALIDATION_ERROR", message, details={"field": field, **details})


# -- creating, changing, pausing, deleting -------------------------------------------------------


def create_schedule(
    *,
    workspace: Workspace,
    created_by: User,
    name: str,
    version: StrategyVersion,
    dataset: Dataset,
    cron_expression: str = "",
    interval_minutes: int | None = None,
    rolling_days: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    symbols: list[str] | None = None,
    timeframe: str = "",
    initial_cash: Decimal = Decimal(100_000),
    commission: dict[str, Any] | None = None,
    slippage_bps: Decimal = Decimal(0),
    params: dict[str, Any] | None = None,
    paused: bool = False,
) -> BacktestSchedule:
    """A new schedule of `version` over `dataset` and its beat entry (enabled unless `paused`).

    Give exactly one cadence (a 5-field cron expression in UTC, or `interval_minutes` ≥ 5) and
    one window (`rolling_days`: the last N days ending at the dataset's last bar, or `start` and
    `end` inside the dataset). Raises ApiError VALIDATION_ERROR (400, details.field) otherwise,
    or when the version or dataset belongs to another workspace.
    """
    if version.strategy.workspace_id != workspace.pk or dataset.workspace_id != workspace.pk:
        raise _invalid("version" if version.strategy.workspace_id != workspace.pk else "dataset",
                       "No such version or dataset in this workspace.")
    schedule = BacktestSchedule(
        workspace=workspace, created_by=created_by, name=name.strip(), version=version,
        dataset=dataset, cron_expression=" ".join(cron_expression.split()),
        interval_minutes=interval_minutes, rolling_days=rolling_days, start=start, end=end,
        symbols=list(dict.fromkeys(symbols or [])), timeframe=timeframe,
        initial_cash=initial_cash, commission=_commission_json(commission or {}),
        slippage_bps=slippage_bps, params=params or {}, paused=paused)
    validate_schedule(schedule)
    with _unique_name(schedule.name), transaction.atomic():
        schedule.periodic_task = PeriodicTask.objects.create(
            name=f"{TASK_NAME}:{schedule.pk}", task=TASK_NAME,
            kwargs=json.dumps({"schedule_id": str(schedule.pk)}), enabled=not paused,
            **_cadence(schedule))
        schedule.save(force_insert=True)
    return schedule


def update_schedule(*, schedule: BacktestSchedule, changes: dict[str, Any]) -> BacktestSchedule:
    """Apply `changes` (a subset of EDITABLE_FIELDS) and keep the beat entry in step.

    Setting one cadence clears the other (a cron expression replaces an interval and back), and
    likewise for the window (rolling days or fixed dates). Raises ApiError VALIDATION_ERROR.
    """
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise _invalid(unknown[0], f"{unknown[0]} cannot be changed.")
    changes = {**_cleared_alternatives(changes), **changes}
    if "cron_expression" in changes:
        changes["cron_expression"] = " ".join((changes["cron_expression"] or "").split())
    if "commission" in changes:
        changes["commission"] = _commission_json(changes["commission"] or {})
    if "name" in changes:
        changes["name"] = (changes["name"] or "").strip()
    for field, value in changes.items():
        setattr(schedule, field, value)
    validate_schedule(schedule)
    with _unique_name(schedule.name), transaction.atomic():
        schedule.save(update_fields=list(changes))
        if {"cron_expression", "interval_minutes"} & set(changes):
            task = schedule.periodic_task
            assert task is not None
            for field, value in _cadence(schedule).items():
                setattr(task, field, value)
            task.save(update_fields=["crontab", "interval"])
    return schedule


def _cleared_alternatives(changes: dict[str, Any]) -> dict[str, Any]:
    cleared: dict[str, Any] = {}
    if changes.get("cron_expression"):
        cleared["interval_minutes"] = None
    if changes.get("interval_minutes") is not None:
        cleared["cron_expression"] = ""
    if changes.get("rolling_days") is not None:
        cleared.update(start=None, end=None)
    if changes.get("start") is not None or changes.get("end") is not None:
        cleared["rolling_days"] = None
    return cleared


@contextmanager
def _unique_name(name: str) -> Iterator[None]:
    """Turn the unique constraint on (workspace, name) into a validation error on `name`."""
    try:
        yield
    except IntegrityError:
        raise _invalid("name", f"A schedule named {name!r} already exists.") from None


def set_paused(*, schedule: BacktestSchedule, paused: bool) -> bool:
    """Pause or resume: flips the row (conditionally) and the beat entry's `enabled`. Returns
    whether this call changed anything (False when it already was in that state)."""
    with transaction.atomic():
        changed = BacktestSchedule.objects.filter(
            pk=schedule.pk, paused=not paused).update(paused=paused) == 1
        schedule.paused = paused
        task = schedule.periodic_task
        if changed and task is not None:
            task.enabled = not paused
            task.save(update_fields=["enabled", "last_run_at"])
    return changed


def delete_schedule(*, schedule: BacktestSchedule) -> None:
    """Delete the schedule, its run history (the backtests stay) and its beat entry."""
    schedule.delete()  # the post_delete receiver below removes the beat entry


@receiver(post_delete, sender=BacktestSchedule)
def _delete_beat_entry(sender: type, instance: BacktestSchedule, **kwargs: Any) -> None:
    # A receiver rather than code in delete_schedule: schedules also go when their workspace,
    # version or dataset is deleted (cascades), and beat must not keep firing for them.
    if instance.periodic_task_id is not None:
        PeriodicTask.objects.filter(pk=instance.periodic_task_id).delete()


# -- validation ----------------------------------------------------------------------------------


def validate_schedule(schedule: BacktestSchedule) -> None:
    """Check every setting of an unsaved or changed schedule. Raises ApiError VALIDATION_ERROR
    naming the first bad field."""
    if not schedule.name:
        raise _invalid("name", "A schedule needs a name.")
    _check_cadence(schedule)
    dataset = schedule.dataset
    available = sorted(dataset.files.values_list("symbol", flat=True))
    missing = [s for s in schedule.symbols if s not in available]
    if missing:
        raise _invalid("symbols", f"The dataset has no data for {', '.join(missing)}.",
                       available=available)
    if schedule.timeframe and schedule.timeframe != dataset.timeframe:
        raise _invalid("timeframe", f"The dataset's timeframe is {dataset.timeframe}.")
    if schedule.initial_cash <= 0:
        raise _invalid("initial_cash", "The initial cash must be positive.")
    if schedule.slippage_bps < 0:
        raise _invalid("slippage_bps", "Slippage cannot be negative.")
    if not isinstance(schedule.params, dict):
        raise _invalid("params", "Parameters are a JSON object.")
    _check_window(schedule, dataset_range(schedule))


def _check_cadence(schedule: BacktestSchedule) -> None:
    if bool(schedule.cron_expression) == (schedule.interval_minutes is not None):
        raise _invalid("cron_expression", "Give either a cron expression or an interval in "
                                          "minutes, not both and not neither.")
    if schedule.interval_minutes is not None:
        if schedule.interval_minutes < MIN_INTERVAL_MINUTES:
            raise _invalid("interval_minutes", INTERVAL_TOO_SHORT)
        if schedule.interval_minutes > MAX_INTERVAL_MINUTES:
            raise _invalid("interval_minutes", INTERVAL_TOO_LONG)
        return
    parts = schedule.cron_expression.split()
    if len(parts) != len(CRON_FIELDS):
        raise _invalid("cron_expression", f"A cron expression has 5 fields (minute hour "
                                          f"day-of-month month day-of-week); got {len(parts)}.")
    for field, value in zip(CRON_FIELDS, parts, strict=True):
        try:  # django-celery-beat's own field validators: what beat itself will accept
            CrontabSchedule._meta.get_field(field).clean(value, None)
        except ValidationError as exc:
            label = field.replace("_", " ")
            raise _invalid("cron_expression", f"The cron expression's {label} field {value!r} "
                                              f"is invalid: {' '.join(exc.messages)}",
                           cron_field=field) from None
    try:  # and what Celery's crontab makes of the whole
        CrontabSchedule(timezone=schedule.timezone, **schedule.cron_parts()).schedule  # noqa: B018
    except ValueError as exc:
        raise _invalid("cron_expression", f"The cron expression is invalid: {exc}") from None


def _check_window(schedule: BacktestSchedule, bounds: tuple[datetime, datetime]) -> None:
    first, last = bounds
    if schedule.rolling_days is not None:
        if schedule.start is not None or schedule.end is not None:
            raise _invalid("rolling_days", "Give either rolling days or fixed dates, not both.")
        if schedule.rolling_days < 1:
            raise _invalid("rolling_days", "The rolling window must be at least 1 day.")
        if schedule.rolling_days > MAX_ROLLING_DAYS:
            raise _invalid("rolling_days", f"The rolling window must be at most "
                                           f"{MAX_ROLLING_DAYS} days.")
        if last - timedelta(days=schedule.rolling_days) < first:
            days = (last - first).days
            raise _invalid("rolling_days", f"The dataset covers {days} days ({first:%Y-%m-%d} "
                                           f"to {last:%Y-%m-%d}); the window must fit in it.")
        return
    if schedule.start is None or schedule.end is None:
        raise _invalid("start" if schedule.start is None else "end",
                       "Give rolling days, or both a start and an end.")
    if schedule.start >= schedule.end:
        raise _invalid("end", "The end must be after the start.")
    if schedule.start < first or schedule.end > last:
        raise _invalid("start" if schedule.start < first else "end",
                       f"The dates must lie inside the dataset: {first:%Y-%m-%d %H:%M} to "
                       f"{last:%Y-%m-%d %H:%M} UTC.")


def dataset_range(schedule: BacktestSchedule) -> tuple[datetime, datetime]:
    """The first and last bar of the schedule's symbols (every symbol when none are chosen)."""
    files = schedule.dataset.files.all()
    if schedule.symbols:
        files = files.filter(symbol__in=schedule.symbols)
    bounds = files.aggregate(first=Min("first_timestamp"), last=Max("last_timestamp"))
    if bounds["first"] is None:
        raise _invalid("dataset", "The dataset has no bars.")
    return bounds["first"], bounds["last"]


def _commission_json(commission: dict[str, Any]) -> dict[str, str]:
    unknown = sorted(set(commission) - COMMISSION_KEYS)
    if unknown:
        raise _invalid("commission", f"Unknown commission fields: {', '.join(unknown)}.")
    values = {key: _commission_value(key, value) for key, value in commission.items()}
    if any(v < 0 for v in values.values()):
        raise _invalid("commission", "Commission values cannot be negative.")
    return {key: str(value) for key, value in values.items()}


def _commission_value(key: str, raw: object) -> Decimal:
    """One commission value, as the sessions' commission fields take it (16 digits, 6 places)."""
    try:
        return parse_decimal(raw, field=f"commission.{key}", places=6, digits=16)
    except InvalidDecimal as error:
        if error.code != "INVALID_VALUE":
            raise _invalid("commission", "Commission values are decimal numbers.") from None
        raise ApiError("INVALID_VALUE", error.message, details=error.details) from None


def _cadence(schedule: BacktestSchedule) -> dict[str, Any]:
    """The beat entry's `crontab` and `interval` (one of them None) for the schedule."""
    if schedule.cron_expression:
        crontab, _ = CrontabSchedule.objects.get_or_create(timezone=schedule.timezone,
                                                           **schedule.cron_parts())
        return {"crontab": crontab, "interval": None}
    interval, _ = IntervalSchedule.objects.get_or_create(every=schedule.interval_minutes,
                                                         period=IntervalSchedule.MINUTES)
    return {"crontab": None, "interval": interval}


# -- running -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def window_of(schedule: BacktestSchedule) -> Window:
    """The period a run covers: the fixed dates, or the last `rolling_days` days ending at the
    last bar of the schedule's symbols. Raises ApiError VALIDATION_ERROR when it no longer fits
    the dataset."""
    bounds = dataset_range(schedule)
    _check_window(schedule, bounds)
    if schedule.rolling_days is not None:
        return Window(start=bounds[1] - timedelta(days=schedule.rolling_days), end=bounds[1])
    assert schedule.start is not None and schedule.end is not None
    return Window(start=schedule.start, end=schedule.end)


def run_schedule_now(
    *, schedule: BacktestSchedule, now: datetime, even_if_paused: bool = False
) -> ScheduleRun | None:
    """Start the schedule's hosted backtest over its window and record a ScheduleRun.

    Returns None (and records nothing) when the schedule is paused, unless `even_if_paused` (a
    person pressing "Run now"). Never raises for a failed start: the run is recorded as failed
    with the error's text, so beat's failures are visible in the run history.
    """
    if schedule.paused and not even_if_paused:
        return None
    window: Window | None = None
    try:
        window = window_of(schedule)
        with transaction.atomic():  # a failure inside must not poison the caller's transaction
            session = runtimes_services.create_hosted_backtest(
                workspace=schedule.workspace, created_by=schedule.created_by,
                version=schedule.version, dataset=schedule.dataset,
                symbols=schedule.symbols or None, timeframe=schedule.timeframe or None,
                start=window.start, end=window.end, initial_cash=Decimal(schedule.initial_cash),
                commission={k: Decimal(v) for k, v in schedule.commission.items()},
                slippage_bps=Decimal(schedule.slippage_bps), params=dict(schedule.params))
    except ApiError as exc:
        return _record(schedule, now, window, error=exc.message)
    except Exception as exc:  # beat must see a failed run, never a task that died
        logger.exception("scheduled backtest %s failed to start", schedule.pk)
        return _record(schedule, now, window, error=f"{type(exc).__name__}: {exc}")
    return _record(schedule, now, window, session=session)


def _record(schedule: BacktestSchedule, now: datetime, window: Window | None, *,
            session: Any = None, error: str = "") -> ScheduleRun:
    return ScheduleRun.objects.create(
        schedule=schedule, session=session, started_at=now,
        status=RunStatus.FAILED if error else RunStatus.STARTED, error=error,
        window_start=window.start if window else None, window_end=window.end if window else None)
