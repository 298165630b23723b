"""Deleting a strategy (every version) or a dataset: what it would take with it, what refuses it,
and the deletion itself with its stored files.

Refused (409 IN_USE, naming them) while a deployment, a backtest schedule or a running sweep
uses it, or while a session over it still runs. The backtests and other finished sessions that
used it, and the ended sweeps over it (with their points' backtests), are deleted with it,
results included: the confirmation counts them first (docs/strategies-and-datasets.md says why).
Strategies do not import runtimes (pyproject's app boundaries): sessions, deployments, schedules
and sweeps are reached through the reverse relations runtimes declares on these models.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Model, ProtectedError, QuerySet

from accounts.models import Membership
from config.errors import ApiError
from strategies.models import Dataset, Strategy, StrategyVersion

logger = logging.getLogger(__name__)

NAMED_PER_KIND = 5  # a refusal names this many users of each kind, then counts the rest


@dataclass(frozen=True)
class DeletionImpact:
    """What deleting a strategy or dataset means. `users` ("deployment 'BTC live'", …) refuse
    it; `sessions` finished sessions and `sweeps` ended sweeps go with it; `versions` counts a
    strategy's versions."""

    users: tuple[str, ...]
    sessions: int
    versions: int = 0
    sweeps: int = 0

    @property
    def allowed(self) -> bool:
        return not self.users

    def refusal(self) -> str:
        """'used by deployment 'BTC live' and schedule 'nightly''."""
        return "used by " + " and ".join(self.users)


class InUseError(ApiError):
    """409 IN_USE: a deployment, schedule or running session uses what was to be deleted."""

    def __init__(self, what: str, impact: DeletionImpact) -> None:
        super().__init__(
            "IN_USE", f"Cannot delete {what}: it is {impact.refusal()}. Delete or change them "
                      "first.", status_code=409, details={"used_by": list(impact.users)})


def require_can_delete(membership: Membership) -> None:
    """Deleting is editing: owners and members, never viewers (403)."""
    if not membership.can_edit():
        raise ApiError("FORBIDDEN", "Viewers cannot delete; ask an owner for the member role.",
                       status_code=403)


# -- what a deletion would do --------------------------------------------------------------------


def strategy_deletion(strategy: Strategy) -> DeletionImpact:
    versions = StrategyVersion.objects.filter(strategy=strategy)
    sessions = _sessions_model().objects.filter(strategy_version__strategy=strategy)
    sweeps = _sweeps_model().objects.filter(version__strategy=strategy)
    users = [
        _named("deployment", versions, "deployments__name"),
        _named("schedule", versions, "schedules__name"),
        _running_sweeps(sweeps),
        _running(sessions),
    ]
    return DeletionImpact(users=tuple(u for u in users if u), sessions=sessions.count(),
                          versions=versions.count(), sweeps=sweeps.count())


def dataset_deletion(dataset: Dataset) -> DeletionImpact:
    datasets = Dataset.objects.filter(pk=dataset.pk)
    sessions = _sessions_model().objects.filter(dataset=dataset)
    sweeps = _sweeps_model().objects.filter(dataset=dataset)
    users = [_named("schedule", datasets, "schedules__name"), _running_sweeps(sweeps),
             _running(sessions)]
    return DeletionImpact(users=tuple(u for u in users if u), sessions=sessions.count(),
                          sweeps=sweeps.count())


def _sessions_model() -> Any:
    # TradingSession, through the relation it declares on StrategyVersion (no runtimes import).
    return StrategyVersion._meta.get_field("sessions").related_model


def _sweeps_model() -> Any:
    # Sweep, through the relation it declares on StrategyVersion (no runtimes import).
    return StrategyVersion._meta.get_field("sweeps").related_model


def _running_sweeps(sweeps: QuerySet[Any]) -> str:
    # "running" is runtimes.sweeps.models.SweepState.RUNNING (not imported: app boundaries);
    # an ended sweep is deleted with what it used, a running one must be cancelled first.
    named = _named("running sweep", sweeps.filter(state="running"), "name")
    if not named:
        return ""
    return f"{named} (cancel {'them' if named.startswith('running sweeps') else 'it'} first)"


def _named(kind: str, rows: QuerySet[Any], name_path: str) -> str:
    names = sorted(set(rows.filter(**{f"{name_path}__isnull": False})
                       .values_list(name_path, flat=True)))
    if not names:
        return ""
    shown = ", ".join(repr(n) for n in names[:NAMED_PER_KIND])
    rest = f" and {len(names) - NAMED_PER_KIND} more" if len(names) > NAMED_PER_KIND else ""
    return f"{kind}{'s' if len(names) > 1 else ''} {shown}{rest}"


def _running(sessions: QuerySet[Any]) -> str:
    live = sessions.live().count()
    if not live:
        return ""
    if live == 1:
        return "a session that is still running (cancel it first)"
    return f"{live} sessions that are still running (cancel them first)"


# -- deleting ------------------------------------------------------------------------------------


def delete_strategy(*, membership: Membership, strategy: Strategy) -> DeletionImpact:
    """Delete `strategy` (of `membership.workspace`), every version and their stored files, and
    the finished sessions that ran them. Raises ApiError FORBIDDEN (403, viewers) and InUseError
    (409). Returns what was deleted."""
    return _delete(membership, strategy, f"the strategy {strategy.name!r}",
                   impact_of=strategy_deletion,
                   sessions={"strategy_version__strategy": strategy},
                   sweeps={"version__strategy": strategy}, files_of=_files_of_strategy)


def delete_dataset(*, membership: Membership, dataset: Dataset) -> DeletionImpact:
    """Delete `dataset` (of `membership.workspace`), the files it stored (files registered where
    they already were, like the demo's, stay) and the finished sessions over it. Raises ApiError
    FORBIDDEN (403, viewers) and InUseError (409). Returns what was deleted."""
    return _delete(membership, dataset, f"the dataset {dataset.name!r}",
                   impact_of=dataset_deletion, sessions={"dataset": dataset},
                   sweeps={"dataset": dataset}, files_of=_files_of_dataset)


def _delete(membership: Membership, row: Any, what: str, *,
            impact_of: Callable[[Any], DeletionImpact], sessions: dict[str, Any],
            sweeps: dict[str, Any], files_of: Callable[[Any], Callable[[], None]]
            ) -> DeletionImpact:
    """Check and delete `row` under its row lock, with the ended sessions and sweeps matching
    `sessions` and `sweeps`; its files (`files_of`, read under the lock) go once that
    commits."""
    require_can_delete(membership)
    _own(membership, row)
    with transaction.atomic():
        type(row).objects.select_for_update().filter(pk=row.pk).first()
        impact = impact_of(row)
        if not impact.allowed:
            raise InUseError(what, impact)
        remove_files = files_of(row)
        _delete_rows(what, row, _sessions_model().objects.filter(**sessions),
                     _sweeps_model().objects.filter(**sweeps))
        transaction.on_commit(remove_files)
    return impact


def _files_of_strategy(strategy: Strategy) -> Callable[[], None]:
    stored = set(strategy.versions.values_list("storage_name", flat=True))
    return lambda: _remove_stored(stored)


def _files_of_dataset(dataset: Dataset) -> Callable[[], None]:
    paths = list(dataset.files.values_list("path", flat=True))
    return lambda: _remove_uploaded(paths)


def _own(membership: Membership, row: Strategy | Dataset) -> None:
    if row.workspace_id != membership.workspace_id:
        raise ValueError("the row belongs to another workspace")


def _delete_rows(what: str, row: Model, sessions: QuerySet[Any], sweeps: QuerySet[Any]) -> None:
    # Only what has ended: a backtest or sweep started since the check (starting one does not
    # take the row lock above) stays, and its PROTECT reference refuses the deletion below
    # rather than losing a running session.
    live = sessions.live().values("pk")
    try:
        # their points' backtests go with them (CASCADE)
        sweeps.exclude(state="running").exclude(sessions__in=live).delete()
        sessions.exclude(pk__in=live).delete()
        row.delete()
    except ProtectedError as exc:  # something new refers to it since the check
        users = sorted({f"{type(o)._meta.verbose_name} {str(o)!r}" for o in exc.protected_objects})
        raise InUseError(what, DeletionImpact(users=tuple(users[:NAMED_PER_KIND]),
                                              sessions=0)) from None


def _remove_stored(storage_names: set[str]) -> None:
    for name in storage_names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("could not remove %s from storage", name)


def _remove_uploaded(paths: list[str]) -> None:
    """Remove the files an upload stored under the default storage, and their folder; a path
    outside it was registered where it was and is not ours to remove."""
    root = Path(default_storage.path("")).resolve()
    folders = set()
    for path in map(Path, paths):
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            continue
        relative = resolved.relative_to(root).as_posix()
        _remove_stored({relative})
        folders.add(resolved.parent)
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty
