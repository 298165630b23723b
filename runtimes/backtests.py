"""Finding and telling backtests apart: their names (defaulted from strategy, version and range,
editable), the list's filters and sorts (one parser for the dashboard and the management API),
the headline metrics of completed runs, renaming and deleting a run.

Metrics are JSON strings in SessionResult.metrics; the list sorts by them in the database, each
cast to a float (the same SQL shape on SQLite and PostgreSQL), without loading the results'
equity, orders or trades.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.db import transaction
from django.db.models import Case, F, FloatField, QuerySet, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Lower

from accounts.models import User, Workspace
from config.errors import ApiError
from runtimes.models import NAME_MAX_LENGTH, TERMINAL_STATES, State, TradingSession
from runtimes.result_pages import metric_cards
from strategies.models import Dataset, Strategy, StrategyVersion

# The headline of a completed run: (metrics key, its card's label on the result page), in the
# list's column order.
HEADLINE = (("total_return", "Total return"), ("sharpe", "Sharpe"),
            ("max_drawdown", "Max drawdown"), ("number_of_trades", "Trades"))
# Sort keys of the list (a leading "-" reverses): what each sorts by.
SORT_KEYS = {"created": "created_at", "name": "name", "return": "total_return",
             "sharpe": "sharpe", "drawdown": "max_drawdown", "trades": "number_of_trades"}
DEFAULT_SORT = "-created"
# A column's first click sorts best first (newest, A to Z, highest return, smallest drawdown…).
FIRST_CLICK = {"created": "-created", "name": "name", "return": "-return", "sharpe": "-sharpe",
               "drawdown": "drawdown", "trades": "-trades"}
# The version filter offers at most this many versions (by strategy, newest version first).
MAX_VERSION_CHOICES = 300
FILTERS = ("strategy", "version", "dataset", "state", "sort")


# -- names ---------------------------------------------------------------------------------------


def default_name(*, version: StrategyVersion | None, dataset: Dataset, symbols: list[str],
                 start: datetime | None, end: datetime | None) -> str:
    """"SMA crossover v3 · 2024-01-01 → 2024-03-31": the strategy and version (the dataset's
    name for a remote strategy's run), then the range; a missing bound is the chosen symbols'
    first or last bar in the dataset. At most NAME_MAX_LENGTH characters."""
    if start is None or end is None:
        first, last = dataset.bounds(symbols)
        start, end = start or first, end or last
    period = " → ".join(f"{moment:%Y-%m-%d}" for moment in (start, end) if moment is not None)
    suffix = f" v{version.number}" if version is not None else ""
    room = NAME_MAX_LENGTH - len(suffix) - len(period) - 3
    what = version.strategy.name if version is not None else dataset.name
    head = (what if len(what) <= room else what[:room - 1] + "…") + suffix
    return f"{head} · {period}" if period else head


def rename_backtest(*, session: TradingSession, name: str) -> None:
    """Give the run a new name (surrounding spaces dropped). Raises ApiError INVALID_VALUE (400)
    {field: "name"} for an empty name or one longer than NAME_MAX_LENGTH."""
    name = name.strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        raise ApiError("INVALID_VALUE", f"A name has 1 to {NAME_MAX_LENGTH} characters.",
                       details={"field": "name", "provided": name[:NAME_MAX_LENGTH + 1]})
    session.name = name
    session.save(update_fields=["name"])


def rerun_backtest(*, session: TradingSession, by: User) -> TradingSession:
    """A new hosted backtest with every input of `session` (version, dataset, symbols, range,
    cash, costs, parameters), queued at once. Raises ApiError INVALID_VALUE (400) for a run the
    platform did not host (a remote strategy starts its own runs); else as
    services.create_hosted_backtest (quota, sandbox)."""
    from runtimes import services  # services names new runs with default_name: import at use

    version, dataset = session.strategy_version, session.dataset
    if version is None or dataset is None:
        raise ApiError("INVALID_VALUE", "Only a hosted backtest can be re-run from here: a "
                       "remote strategy starts its own runs.", details={"field": "session"})
    return services.create_hosted_backtest(
        workspace=session.workspace, created_by=by, version=version, dataset=dataset,
        symbols=list(session.symbols), timeframe=session.timeframe, start=session.start,
        end=session.end, initial_cash=Decimal(session.initial_cash),
        commission={key: Decimal(value) for key, value in (session.commission or {}).items()},
        slippage_bps=Decimal(session.slippage_bps), params=dict(session.params))


# -- deleting ------------------------------------------------------------------------------------


def delete_backtest(*, session: TradingSession) -> None:
    """Delete an ended run with its result, event journal, audits, tokens and share links (a
    schedule's run history keeps its line, without the link). Raises ApiError INVALID_TRANSITION
    (409) while it runs (cancel it first) or when it is a deployment's (its history)."""
    names = list(session.deployments.values_list("name", flat=True)[:3])
    if names:
        raise ApiError("INVALID_TRANSITION", f"This session is part of the history of the "
                       f"deployment {', '.join(names)}; it stays with it.", status_code=409,
                       details={"deployments": names})
    with transaction.atomic():
        deleted, _ = TradingSession.objects.filter(pk=session.pk,
                                                   state__in=TERMINAL_STATES).delete()
    if not deleted:
        session.refresh_from_db(fields=["state"])
        state = session.get_state_display().lower()
        raise ApiError("INVALID_TRANSITION", f"The backtest is {state}: cancel it first, then "
                       "delete it.", status_code=409, details={"state": session.state})


# -- the list: filters, sorts, headline metrics --------------------------------------------------


@dataclass(frozen=True)
class ListQuery:
    """What the list shows: each filter None when not set; `sort` a SORT_KEYS key, maybe "-"."""

    strategy: uuid.UUID | None = None
    version: uuid.UUID | None = None
    dataset: uuid.UUID | None = None
    state: str | None = None
    sort: str = DEFAULT_SORT

    def params(self) -> dict[str, str]:
        """The query parameters that give this query back (unset and default ones left out)."""
        return {name: str(value) for name, value in asdict(self).items()
                if value is not None and not (name == "sort" and value == DEFAULT_SORT)}


API_PAGE_SIZE = 100  # backtests per page of the management API's list
MAX_PAGE = 10_000


def parse_list_query(params: Mapping[str, str], *, workspace: Workspace) -> ListQuery:
    """The list's query from GET parameters `strategy`, `version`, `dataset` (ids of the
    workspace's), `state` and `sort`; empty ones are unset. Raises ApiError INVALID_VALUE (400)
    {field, provided} for a malformed value or an id the workspace does not have."""
    values = {name: (params.get(name) or "").strip() for name in FILTERS}
    found = {name: _owned_id(name, values[name], model, workspace)
             for name, model in (("strategy", Strategy), ("version", StrategyVersion),
                                 ("dataset", Dataset))}
    state = values["state"] or None
    if state is not None and state not in State.values:
        raise _invalid("state", state, f"state is one of {', '.join(State.values)}.")
    sort = values["sort"] or DEFAULT_SORT
    if sort.removeprefix("-") not in SORT_KEYS:
        raise _invalid("sort", sort, f"sort is one of {', '.join(SORT_KEYS)}, each with a "
                                     "leading - for the reverse order.")
    return ListQuery(**found, state=state, sort=sort)


def parse_page(params: Mapping[str, str]) -> int:
    """The 1-based page number of `page` (default 1). Raises ApiError INVALID_VALUE (400)
    {field, provided} unless it is a whole number from 1 to MAX_PAGE."""
    text = (params.get("page") or "1").strip()
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(MAX_PAGE))
    if not digits or not 1 <= int(text) <= MAX_PAGE:
        raise _invalid("page", text, f"page is a whole number from 1 to {MAX_PAGE}.")
    return int(text)


def _owned_id(field: str, text: str, model: Any, workspace: Workspace) -> uuid.UUID | None:
    if not text:
        return None
    try:
        value = uuid.UUID(text)
    except ValueError:
        raise _invalid(field, text, f"{field} must be the id of one of this workspace's "
                                    f"{field}s.") from None
    if not model.objects.for_workspace(workspace).filter(pk=value).exists():
        raise _invalid(field, text, f"This workspace has no {field} {text}.")
    return value


def _invalid(field: str, provided: str, message: str) -> ApiError:
    return ApiError("INVALID_VALUE", message, details={"field": field, "provided": provided[:100]})


def listed(sessions: QuerySet[TradingSession], query: ListQuery) -> QuerySet[TradingSession]:
    """`sessions` (already the workspace's) filtered and sorted by `query`, each annotated with
    `result_metrics` (its result's metrics, None until it has one); runs without the sorted
    metric (not completed) come last either way."""
    if query.strategy is not None:
        sessions = sessions.filter(strategy_version__strategy_id=query.strategy)
    if query.version is not None:
        sessions = sessions.filter(strategy_version_id=query.version)
    if query.dataset is not None:
        sessions = sessions.filter(dataset_id=query.dataset)
    if query.state is not None:
        sessions = sessions.filter(state=query.state)
    sessions = hide_sweep_points(sessions)
    key = SORT_KEYS[query.sort.removeprefix("-")]
    order = _sort_expression(key)
    descending = query.sort.startswith("-")
    # A run's captured output can be a megabyte: no list shows it (the failure's sentence reads
    # the short tail).
    return with_headline(sessions.defer("output")).order_by(
        order.desc(nulls_last=True) if descending else order.asc(nulls_last=True),
        "-created_at", "pk")


def with_headline(sessions: QuerySet[TradingSession]) -> QuerySet[TradingSession]:
    """`sessions`, each annotated with `result_metrics` (its result's metrics, None until it
    has one) for `headline`, without reading the result's other columns."""
    return sessions.annotate(result_metrics=F("result__metrics"))


def hide_sweep_points(sessions: QuerySet[TradingSession]) -> QuerySet[TradingSession]:
    """A parameter sweep's points leave the list: its sweep has a page of its own."""
    return sessions.filter(sweep__isnull=True)


def _sort_expression(key: str) -> Any:
    if key == "created_at":
        return F("created_at")
    if key == "name":
        return Lower("name")
    # Only a completed run's metrics rank it; a failed run's result has metrics too.
    return Case(When(state=State.COMPLETED,
                     then=Cast(KeyTextTransform(key, "result__metrics"), FloatField())),
                default=Value(None), output_field=FloatField())


def headline(session: TradingSession) -> dict[str, Any] | None:
    """The headline metrics of a completed run annotated by `listed` (as stored: decimal
    strings, an int for trades), None for another."""
    metrics = getattr(session, "result_metrics", None)
    if session.state != State.COMPLETED or not isinstance(metrics, dict):
        return None
    return {key: metrics.get(key) for key, _label in HEADLINE}


def headline_cards(session: TradingSession) -> list[dict[str, str]] | None:
    """The headline of a completed run as the result page's cards show them (formatted, toned),
    in HEADLINE's order; None for a run that did not complete."""
    metrics = headline(session)
    if metrics is None:
        return None
    cards = {card["label"]: card for card in metric_cards(metrics)}
    return [cards[label] for _key, label in HEADLINE]


def sort_links(query: ListQuery) -> dict[str, dict[str, str]]:
    """Per sort key `{href, state}`: the query string that sorts by it (the reverse order when
    it is the current one; the filters kept) and "ascending"/"descending" for the current."""
    links = {}
    for key, first in FIRST_CLICK.items():
        state = ("descending" if query.sort == f"-{key}" else
                 "ascending" if query.sort == key else "")
        sort = (key if state == "descending" else f"-{key}") if state else first
        params = {**query.params(), "sort": sort}
        links[key] = {"href": "?" + urlencode(params), "state": state}
    return links


def filter_choices(workspace: Workspace) -> dict[str, list[tuple[str, str]]]:
    """What the list's filters offer: the workspace's strategies, versions (at most
    MAX_VERSION_CHOICES, by strategy), datasets and the states, as (value, label)."""
    versions = (StrategyVersion.objects.for_workspace(workspace).select_related("strategy")
                .order_by("strategy__name", "-number")[:MAX_VERSION_CHOICES])
    return {
        "strategy": [(str(s.pk), s.name) for s in
                     Strategy.objects.for_workspace(workspace).order_by("name")],
        "version": [(str(v.pk), f"{v.strategy.name} v{v.number}") for v in versions],
        "dataset": [(str(d.pk), d.name) for d in
                    Dataset.objects.for_workspace(workspace).order_by("name")],
        "state": list(State.choices),
    }
