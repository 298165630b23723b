"""The management API's view of a backtest's trade analysis: round trips 100 a page, sorted by
any field (an unknown one is the error envelope), the analysis in the results body, and a
stranger's 404."""

from __future__ import annotations

import pytest

from runtimes.core.trade_analysis import ROUND_TRIP_FIELDS
from runtimes.models import State, TradingSession
from tests.runtimes.results import completed_session, run_in_process, synthetic_result
from tests.runtimes.test_trade_pages import _with_trips

pytestmark = pytest.mark.django_db


def _url(session, tail: str) -> str:
    return f"/api/v1/workspaces/{session.workspace_id}/sessions/{session.pk}{tail}"


def test_round_trips_come_a_hundred_a_page_sorted_by_any_field(
        owner_client, owner, workspace, dataset):
    session = completed_session(workspace=workspace, by=owner, dataset=dataset)
    _with_trips(session, 250)
    url = _url(session, "/round-trips")

    first = owner_client.get(url).json()
    by_pnl = owner_client.get(url, {"sort": "-net_pnl", "page": 3}).json()

    assert (first["count"], len(first["results"])) == (250, 100)
    assert list(first["results"][0]) == list(ROUND_TRIP_FIELDS)
    assert [t["number"] for t in first["results"][:3]] == [1, 2, 3]
    assert first["next"] == f"http://testserver{url}?page=2"
    every = sorted(((n * 37) % 101 - 50 for n in range(1, 251)), reverse=True)
    assert [int(t["net_pnl"]) for t in by_pnl["results"]] == every[200:]
    assert by_pnl["next"] is None
    by_time = owner_client.get(url, {"sort": "exit_time"}).json()["results"]
    assert [t["exit_time"] for t in by_time] == sorted(t["exit_time"] for t in by_time)


def test_an_unknown_sort_field_is_refused_with_the_fields_there_are(
        owner_client, owner, workspace, dataset):
    session = completed_session(workspace=workspace, by=owner, dataset=dataset)
    _with_trips(session, 3)

    response = owner_client.get(_url(session, "/round-trips"), {"sort": "-password"})

    assert response.status_code == 400
    assert response.json() == {
        "code": "INVALID_VALUE", "message": "Round trips cannot be sorted by password.",
        "details": {"sort": "-password", "fields": list(ROUND_TRIP_FIELDS)}}


def test_the_results_body_carries_the_analysis_or_null_for_an_old_result(
        owner_client, owner, workspace, dataset):
    finished = run_in_process(workspace=workspace, by=owner, dataset=dataset)
    old = completed_session(workspace=workspace, by=owner, dataset=dataset)
    synthetic_result(old, trades=4)

    body = owner_client.get(_url(finished, "/results")).json()

    assert body["analysis"] == finished.result.analysis
    assert body["analysis"]["round_trips"]["count"] == len(finished.result.round_trips)
    assert set(body["analysis"]) == {"round_trips", "symbols", "monthly", "benchmark"}
    assert owner_client.get(_url(old, "/results")).json()["analysis"] is None
    assert owner_client.get(_url(old, "/round-trips")).json()["count"] == 0


def test_a_stranger_gets_404_for_the_round_trips_of_another_workspace(
        owner, workspace, dataset, stranger_client):
    session = completed_session(workspace=workspace, by=owner, dataset=dataset)
    _with_trips(session, 3)

    response = stranger_client.get(_url(session, "/round-trips"))

    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


def test_round_trips_are_404_until_the_session_has_results(
        owner_client, owner, workspace, dataset):
    running = completed_session(workspace=workspace, by=owner, dataset=dataset)
    TradingSession.objects.filter(pk=running.pk).update(state=State.RUNNING)

    response = owner_client.get(_url(running, "/round-trips"))

    assert response.status_code == 404
    assert response.json()["details"] == {"state": "running"}
