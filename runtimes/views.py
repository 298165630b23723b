"""Dashboard pages of backtests: the workspace's sessions (refreshed while any runs), a
session's page: its progress while it runs, its results once it completed, CSV exports; and
finished backtests compared side by side.

Thin: sessions are reached through the current workspace (a foreign id is a 404); what a result
page shows is read by `runtimes.result_pages`, a comparison by `runtimes.comparison`.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from accounts.models import Membership
from accounts.views import workspace_page
from config.errors import ApiError
from runtimes import backtests, comparison, result_pages, services, trade_pages, what_was_run
from runtimes.core.datasets import DatasetError
from runtimes.forms import HostedBacktestForm
from runtimes.hosting import dispatch
from runtimes.models import SessionResult, State, TradingSession
from strategies.models import Dataset, StrategyVersion
from strategies.previews import period_candles

SESSIONS_PER_PAGE = 25
CSV_KINDS = ("equity", "trades", "orders", "round-trips")


def _sessions_page(request: HttpRequest, membership: Membership) -> dict[str, object]:
    """The list's page: the workspace's sessions filtered and sorted by the GET parameters
    (runtimes/backtests.py; a bad value is said and left out), with what the filters offer."""
    workspace = membership.workspace
    problem = ""
    try:
        query = backtests.parse_list_query(request.GET, workspace=workspace)
    except ApiError as error:
        query, problem = backtests.ListQuery(), error.message
    sessions = backtests.listed(
        TradingSession.objects.for_workspace(workspace)
        .select_related("dataset", "strategy_version__strategy").with_total_bars(), query)
    page = Paginator(sessions, SESSIONS_PER_PAGE).get_page(request.GET.get("page"))
    positions = dispatch.queue_positions()
    for session in page:  # shown beside the state (runtimes/_state.html)
        session.queue_position = positions.get(str(session.pk))
        session.headline = backtests.headline_cards(session)
    return {"page": page, "any_live": any(not s.is_terminal for s in page),
            "query": query, "query_string": urlencode(query.params()), "problem": problem,
            "sorts": backtests.sort_links(query),
            "filtered": bool(query.params()) or bool(problem),
            "choices": backtests.filter_choices(workspace)}


@workspace_page
def backtest_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    return render(request, "runtimes/backtest_list.html", _sessions_page(request, membership))


@workspace_page
def backtest_rows(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The list's table alone: what the list page polls every 2 s while a session runs."""
    return render(request, "runtimes/_backtest_rows.html", _sessions_page(request, membership))


def _session(membership: Membership, session_id: uuid.UUID) -> TradingSession:
    session = get_object_or_404(
        TradingSession.objects.for_workspace(membership.workspace)
        .select_related("dataset", "strategy_version__strategy").with_total_bars(), pk=session_id)
    session.queue_position = dispatch.queue_position(session)
    return session


@workspace_page
def backtest_new(request: HttpRequest, membership: Membership,
                 version_id: uuid.UUID) -> HttpResponse:
    """The "Run a backtest" form of a strategy version (`?from=<run>`: prefilled with every
    input of one of the workspace's runs, "Clone and edit"); a valid one starts a hosted
    backtest and leads to its page. Service refusals stay in the form, with what was typed."""
    version = get_object_or_404(StrategyVersion.objects.for_workspace(membership.workspace)
                                .select_related("strategy"), pk=version_id)
    datasets = Dataset.objects.for_workspace(membership.workspace)
    source = _cloned_run(request, membership)
    form = HostedBacktestForm(request.POST or None, datasets=datasets,
                              initial=None if source is None
                              else HostedBacktestForm.initial_from(source))
    if request.method == "POST":
        if not membership.can_trade():
            raise PermissionDenied("Your role does not allow running backtests.")
        if form.is_valid():
            try:
                session = services.create_hosted_backtest(
                    workspace=membership.workspace, created_by=request.user, version=version,
                    **form.service_arguments())
            except ApiError as error:
                field = {"from": "start", "to": "end"}.get(error.details.get("field"),
                                              error.details.get("field"))
                form.add_error(field if field in form.fields else None, error.message)
            else:
                if form.cleaned_data["name"].strip():
                    backtests.rename_backtest(session=session, name=form.cleaned_data["name"])
                return redirect("backtest_detail", session.pk)
    return render(request, "runtimes/backtest_new.html", {
        "form": form, "version": version, "strategy": version.strategy, "source": source,
        "support": services.hosted_runs_support(),
        "allow_unsandboxed": settings.SANDBOX_ALLOW_UNSANDBOXED,
    })


def _cloned_run(request: HttpRequest, membership: Membership) -> TradingSession | None:
    """The run named by `?from=` (one of the workspace's: else a 404), or None without one."""
    text = request.GET.get("from")
    if not text:
        return None
    try:
        run_id = uuid.UUID(text)
    except ValueError:
        raise Http404("No such backtest.") from None
    return get_object_or_404(TradingSession.objects.for_workspace(membership.workspace)
                             .select_related("strategy_version__strategy"), pk=run_id)


def _price_chart(session: TradingSession, result: SessionResult
                 ) -> tuple[dict[str, dict[str, Any]], str]:
    """The price chart's data of the session's symbols over its period, and why there is none
    when its dataset's files can no longer be read."""
    if session.dataset is None:
        return {}, ""
    try:
        candles = period_candles(session.dataset, session.symbols, start=session.start,
                                 end=session.end, candles=result_pages.PRICE_CANDLES)
    except (DatasetError, OSError) as exc:
        return {}, str(exc)
    return result_pages.price_chart(candles, result.trades,
                                    markers=result_pages.PRICE_MARKERS), ""


@workspace_page
def backtest_detail(request: HttpRequest, membership: Membership,
                    session_id: uuid.UUID) -> HttpResponse:
    session = _session(membership, session_id)
    # A failed or cancelled run keeps a result row too (its final state, for the Trading API);
    # its page stays the status page, with the reason.
    result = SessionResult.objects.filter(session=session, session__state=State.COMPLETED).first()
    if result is None:
        return render(request, "runtimes/backtest_status.html", {"session": session})
    prices, unreadable = _price_chart(session, result)
    return render(request, "runtimes/backtest_result.html", {
        "session": session,
        "result": result,
        "cards": result_pages.metric_cards(result.metrics),
        "chart": result_pages.equity_chart(result.equity),
        "prices": prices,
        "prices_unreadable": unreadable,
        "trades": result_pages.table_page(result.trades, columns=result_pages.TRADE_COLUMNS,
                                          query=request.GET, prefix="trades"),
        "orders": result_pages.table_page(result.orders, columns=result_pages.ORDER_COLUMNS,
                                          query=request.GET, prefix="orders"),
        "contract": result_pages.contract_sections(
            session.backtest_config().execution_contract()),
        **_trade_sections(request, session, result),
    })


def _trade_sections(request: HttpRequest, session: TradingSession, result: SessionResult
                    ) -> dict[str, Any]:
    """Round trips, per symbol, monthly returns and the benchmark; `analysis` is empty for a
    result stored before they existed (the page says so instead)."""
    analysis = result.analysis
    if not analysis:
        return {"analysis": None}
    partial = reverse("backtest_round_trips", args=[session.pk])
    return {
        "analysis": analysis,
        "trips": trade_pages.round_trip_table(result.round_trips, query=request.GET,
                                              partial_url=partial),
        "symbol_rows": trade_pages.symbol_rows(analysis),
        "heatmap": trade_pages.monthly_heatmap(analysis),
        "months": trade_pages.MONTHS,
        "benchmark_cards": trade_pages.benchmark_cards(analysis),
        "benchmark_curve": analysis.get("benchmark", {}).get("curve"),
    }


@workspace_page
def backtest_round_trips(request: HttpRequest, membership: Membership,
                         session_id: uuid.UUID) -> HttpResponse:
    """The round trips table alone, sorted and paged as asked: what the result page's table
    links fetch (htmx) to change page or order without reloading the page."""
    session = _session(membership, session_id)
    rows = trade_pages.stored_round_trips(session) if session.state == State.COMPLETED else None
    if rows is None:
        raise Http404("No results.")
    partial = reverse("backtest_round_trips", args=[session.pk])
    return render(request, "runtimes/_round_trips.html", {
        "session": session,
        "trips": trade_pages.round_trip_table(rows, query=request.GET, partial_url=partial)})


@workspace_page
def backtest_progress(request: HttpRequest, membership: Membership,
                      session_id: uuid.UUID) -> HttpResponse:
    """The status panel alone, polled while the session runs; once it ended, the page reloads."""
    session = _session(membership, session_id)
    response = render(request, "runtimes/_backtest_progress.html", {"session": session})
    if session.is_terminal:
        response["HX-Refresh"] = "true"
    return response


@workspace_page
def backtest_live(request: HttpRequest, membership: Membership,
                  session_id: uuid.UUID) -> HttpResponse:
    """The live view of a session: its events as they stream, open orders, positions and
    account, fed by the dashboard socket of `runtimes.dashboard_consumers`."""
    session = _session(membership, session_id)
    return render(request, "runtimes/backtest_live.html", {"session": session})


@workspace_page
def backtest_csv(request: HttpRequest, membership: Membership, session_id: uuid.UUID,
                 kind: str) -> StreamingHttpResponse:
    if kind not in CSV_KINDS:
        raise Http404("No such export.")
    session = _session(membership, session_id)
    result = get_object_or_404(SessionResult, session=session)
    header, rows = (trade_pages.csv_export(result) if kind == "round-trips"
                    else result_pages.csv_export(kind, result))
    response = StreamingHttpResponse(result_pages.csv_lines(header, rows),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="backtest-{session.pk}-{kind}.csv"'
    return response


# -- comparing backtests -------------------------------------------------------------------------


@workspace_page
def backtest_compare(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Finished backtests (`?ids=a,b` or repeated `ids`, from the list's checkboxes) overlaid:
    normalised equity curves and metrics side by side."""
    try:
        ids = comparison.parse_ids(request.GET.getlist("ids"))
        sessions = comparison.compared_sessions(workspace=membership.workspace, ids=ids)
    except ApiError as exc:
        return render(request, "runtimes/backtest_compare.html", {"problem": exc.message},
                      status=400)
    return render(request, "runtimes/backtest_compare.html", {
        "runs": comparison.chart_runs(sessions), "rows": comparison.metric_rows(sessions),
        "inputs": what_was_run.differing_inputs(sessions)})


# -- a session's captured output and failure -------------------------------------------------


@workspace_page
def backtest_logs(request: HttpRequest, membership: Membership,
                  session_id: uuid.UUID) -> HttpResponse:
    """A hosted run's whole captured output, fetched when its collapsed log is opened (it can
    be most of a result page's weight)."""
    session = get_object_or_404(
        TradingSession.objects.for_workspace(membership.workspace).only("pk", "output"),
        pk=session_id)
    return render(request, "runtimes/_session_output.html", {"session": session})
