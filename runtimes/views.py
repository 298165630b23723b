"""Dashboard pages of backtests: the workspace's sessions (refreshed while any runs), a
session's page: its progress while it runs, its results once it completed, CSV exports; and
finished backtests compared side by side.

Thin: sessions are reached through the current workspace (a foreign id is a 404); what a result
page shows is read by `runtimes.result_pages`, a comparison by `runtimes.comparison`.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.models import Membership
from accounts.views import workspace_page
from config.errors import ApiError
from runtimes import comparison, result_pages, services
from runtimes.core.datasets import DatasetError
from runtimes.forms import HostedBacktestForm
from runtimes.hosting import dispatch
from runtimes.models import SessionResult, State, TradingSession
from strategies.models import Dataset, StrategyVersion
from strategies.previews import period_candles

SESSIONS_PER_PAGE = 25
CSV_KINDS = ("equity", "trades", "orders")


def _sessions_page(request: HttpRequest, membership: Membership) -> dict[str, object]:
    sessions = (TradingSession.objects.for_workspace(membership.workspace)
                .filter(sweep__isnull=True)  # a sweep's points are on its own page
                .select_related("dataset").with_total_bars().order_by("-created_at"))
    page = Paginator(sessions, SESSIONS_PER_PAGE).get_page(request.GET.get("page"))
    positions = dispatch.queue_positions()
    for session in page:  # shown beside the state (runtimes/_state.html)
        session.queue_position = positions.get(str(session.pk))
    return {"page": page, "any_live": any(not s.is_terminal for s in page)}


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
    """The "Run a backtest" form of a strategy version; a valid one starts a hosted backtest
    and leads to its page. Service refusals stay in the form, with what was typed."""
    version = get_object_or_404(StrategyVersion.objects.for_workspace(membership.workspace)
                                .select_related("strategy"), pk=version_id)
    datasets = Dataset.objects.for_workspace(membership.workspace)
    form = HostedBacktestForm(request.POST or None, datasets=datasets)
    if request.method == "POST":
        if not membership.can_trade():
            raise PermissionDenied("Your role does not allow running backtests.")
        if form.is_valid():
            try:
                session = services.create_hosted_backtest(
                    workspace=membership.workspace, created_by=request.user, version=version,
                    **form.service_arguments())
            except ApiError as error:
                field = {"from": "start"}.get(error.details.get("field"),
                                              error.details.get("field"))
                form.add_error(field if field in form.fields else None, error.message)
            else:
                return redirect("backtest_detail", session.pk)
    return render(request, "runtimes/backtest_new.html", {
        "form": form, "version": version, "strategy": version.strategy,
        "support": services.hosted_runs_support(),
        "allow_unsandboxed": settings.SANDBOX_ALLOW_UNSANDBOXED,
    })


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
    })


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
    header, rows = result_pages.csv_export(kind, result)
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
        "runs": comparison.chart_runs(sessions), "rows": comparison.metric_rows(sessions)})
