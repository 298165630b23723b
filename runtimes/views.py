"""Dashboard pages of backtests: the workspace's sessions (refreshed while any runs) and a
session's page: its progress while it runs, its results once it completed, CSV exports.

Thin: sessions are reached through the current workspace (a foreign id is a 404); what a result
page shows is read by `runtimes.result_pages`.
"""

from __future__ import annotations

import uuid

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render

from accounts.models import Membership
from accounts.views import workspace_page
from runtimes import result_pages
from runtimes.models import SessionResult, TradingSession

SESSIONS_PER_PAGE = 25
CSV_KINDS = ("equity", "trades", "orders")


def _sessions_page(request: HttpRequest, membership: Membership) -> dict[str, object]:
    sessions = (TradingSession.objects.for_workspace(membership.workspace)
                .select_related("dataset").with_total_bars().order_by("-created_at"))
    page = Paginator(sessions, SESSIONS_PER_PAGE).get_page(request.GET.get("page"))
    return {"page": page, "any_live": any(not s.is_terminal for s in page)}


@workspace_page
def backtest_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    return render(request, "runtimes/backtest_list.html", _sessions_page(request, membership))


@workspace_page
def backtest_rows(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The list's table alone: what the list page polls every 2 s while a session runs."""
    return render(request, "runtimes/_backtest_rows.html", _sessions_page(request, membership))


def _session(membership: Membership, session_id: uuid.UUID) -> TradingSession:
    return get_object_or_404(
        TradingSession.objects.for_workspace(membership.workspace)
        .select_related("dataset").with_total_bars(), pk=session_id)


@workspace_page
def backtest_detail(request: HttpRequest, membership: Membership,
                    session_id: uuid.UUID) -> HttpResponse:
    session = _session(membership, session_id)
    result = SessionResult.objects.filter(session=session).first()
    if result is None:
        return render(request, "runtimes/backtest_status.html", {"session": session})
    return render(request, "runtimes/backtest_result.html", {
        "session": session,
        "result": result,
        "cards": result_pages.metric_cards(result.metrics),
        "chart": result_pages.equity_chart(result.equity),
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
