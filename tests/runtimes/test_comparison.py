"""Finished backtests side by side: the compare API's exact answer for two stored results (equity
normalised to 1 at the start, downsampled to at most 1,000 points), its limits (2 to 8 ids) and
isolation (another workspace's id is a 404), and the compare page with the list's checkboxes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from runtimes import comparison
from runtimes.models import SessionResult, TradingSession
from tests.runtimes.results import completed_session, run_in_process, synthetic_result

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_runs(owner, workspace, dataset):
    """A real engine run and a synthetic one over "BTC 1m"."""
    real = run_in_process(workspace=workspace, by=owner, dataset=dataset)
    synthetic = completed_session(workspace=workspace, by=owner, dataset=dataset)
    synthetic_result(synthetic, trades=4)  # equity 99750, 99751, … 99757 a minute apart
    return real, synthetic


def _running(workspace, owner, dataset):
    return TradingSession.objects.create(workspace=workspace, created_by=owner, dataset=dataset,
                                         symbols=["BTCUSDT"], timeframe="1m", state="running")


@pytest.fixture
def compare_url(workspace):
    def url(*sessions, ws=None):
        ids = ",".join(str(getattr(s, "pk", s)) for s in sessions)
        return f"/api/v1/workspaces/{ws or workspace.pk}/backtests/compare?ids={ids}"

    return url


def test_compare_answers_each_run_with_metrics_and_its_equity_normalised_to_one(
        api_client, owner, two_runs, compare_url):
    real, synthetic = two_runs
    api_client.force_login(owner)

    response = api_client.get(compare_url(synthetic, real))

    assert response.status_code == 200, response.content
    first, second = response.json()["backtests"]
    assert (first["id"], second["id"]) == (str(synthetic.pk), str(real.pk))
    assert first["label"] == f"BTC 1m · 2021-04-01 00:00 · {str(synthetic.pk)[:8]}"
    assert second["label"] == f"BTC 1m · 2021-04-01 00:00 · {str(real.pk)[:8]}"
    assert first["metrics"] == {"total_return": "0.0123", "max_drawdown": "0.0051",
                                "sharpe": "1.234", "number_of_trades": 2,
                                "final_equity": "101230.5"}
    assert first["equity"] == {
        "time": [f"2021-04-01T00:0{m}:00Z" for m in range(8)],
        "value": ["1", "1.00001003", "1.00002005", "1.00003008", "1.0000401", "1.00005013",
                  "1.00006015", "1.00007018"]}
    stored = SessionResult.objects.get(session=real)
    assert second["metrics"] == stored.metrics
    start, end = Decimal(stored.equity[0][1]), Decimal(stored.equity[-1][1])
    assert len(second["equity"]["time"]) == len(stored.equity) == 300
    assert second["equity"]["value"][0] == "1"
    assert Decimal(second["equity"]["value"][-1]) == (end / start).quantize(Decimal("1e-8"))


def test_a_long_curve_is_downsampled_to_at_most_1000_points_keeping_both_ends(
        api_client, owner, workspace, dataset, two_runs, compare_url):
    long_run = completed_session(workspace=workspace, by=owner, dataset=dataset)
    synthetic_result(long_run, trades=2500)  # 5,000 equity points
    api_client.force_login(owner)

    curve = api_client.get(compare_url(long_run, two_runs[1])).json()["backtests"][0]["equity"]

    assert 900 < len(curve["time"]) <= 1000
    assert (curve["time"][0], curve["value"][0]) == ("2021-04-01T00:00:00Z", "1")
    assert curve["time"][-1] == "2021-04-04T11:19:00Z"  # minute 4,999
    assert min(curve["value"], key=Decimal) == "1"  # the lowest point (99750) is kept
    assert max(curve["value"], key=Decimal) == "1.00500251"  # and the highest (100249)


@pytest.mark.parametrize("count", [1, 9])
def test_fewer_than_two_or_more_than_eight_ids_are_a_400(api_client, owner, workspace, dataset,
                                                         compare_url, count):
    sessions = [completed_session(workspace=workspace, by=owner, dataset=dataset)
                for _ in range(count)]
    api_client.force_login(owner)

    response = api_client.get(compare_url(*sessions))

    assert response.status_code == 400
    assert response.json() == {"code": "VALIDATION_ERROR",
                               "message": f"Compare 2 to 8 backtests; got {count}.",
                               "details": {"field": "ids"}}


def test_malformed_ids_and_unfinished_backtests_are_400s(api_client, owner, workspace, dataset,
                                                        two_runs, compare_url):
    running = _running(workspace, owner, dataset)
    api_client.force_login(owner)

    malformed = api_client.get(compare_url(two_runs[0], "not-an-id"))
    unfinished = api_client.get(compare_url(two_runs[0], running))

    assert (malformed.status_code, malformed.json()["details"]) == (400, {"field": "ids"})
    assert unfinished.status_code == 400
    assert unfinished.json()["details"] == {"field": "ids", "without_results": [str(running.pk)]}


def test_another_workspaces_backtest_is_a_404_even_beside_ones_own(
        api_client, owner, stranger, stranger_workspace, two_runs, compare_url):
    api_client.force_login(stranger)
    theirs = completed_session(workspace=stranger_workspace, by=stranger,
                               dataset=two_runs[0].dataset)
    synthetic_result(theirs, trades=2)

    assert api_client.get(compare_url(theirs, two_runs[0], ws=stranger_workspace.pk)
                          ).status_code == 404
    assert api_client.get(compare_url(*two_runs)).status_code == 404  # acme's URL


def test_metric_rows_mark_the_best_value_in_the_right_direction(owner, workspace, dataset,
                                                                two_runs):
    real, synthetic = two_runs
    SessionResult.objects.filter(session=real).update(metrics={
        "total_return": "0.05", "max_drawdown": "0.02", "sharpe": "1.234",
        "number_of_trades": 9})
    sessions = comparison.compared_sessions(workspace=workspace, ids=[real.pk, synthetic.pk])

    rows = {row["label"]: row["cells"] for row in comparison.metric_rows(sessions)}

    assert [(c["value"], c["best"]) for c in rows["Total return"]] == [("5.00%", True),
                                                                       ("1.23%", False)]
    assert [(c["value"], c["best"]) for c in rows["Max drawdown"]] == [("-2.00%", False),
                                                                       ("-0.51%", True)]
    assert [c["best"] for c in rows["Sharpe"]] == [False, False]  # equal: nothing to mark
    assert [c["best"] for c in rows["Trades"]] == [False, False]  # more is not better
    assert [(c["value"], c["best"]) for c in rows["CAGR"]] == [("—", False), ("—", False)]


# -- pages ---------------------------------------------------------------------------------------


def test_the_backtest_list_offers_completed_backtests_for_comparison(sign_in, owner, workspace,
                                                                     dataset, two_runs):
    running = _running(workspace, owner, dataset)

    page = sign_in(owner, workspace).get(reverse("backtest_list")).content.decode()

    assert f'action="{reverse("backtest_compare")}"' in page
    for session in two_runs:
        assert f'name="ids" value="{session.pk}"' in page
    assert f'value="{running.pk}"' not in page


def test_the_compare_page_overlays_the_curves_and_sets_metrics_side_by_side(
        sign_in, owner, workspace, two_runs):
    real, synthetic = two_runs
    SessionResult.objects.filter(session=real).update(metrics={"total_return": "0.05"})
    url = f"{reverse('backtest_compare')}?ids={real.pk}&ids={synthetic.pk}"

    response = sign_in(owner, workspace).get(url)

    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-chart="compare"' in page and 'id="compare-data"' in page
    assert f"BTC 1m · 2021-04-01 00:00 · {str(synthetic.pk)[:8]}" in page
    assert "#3b5bdb" in page and "#e8590c" in page  # one colour per run, in the legend
    assert '<td class="num best"><span class="pos">5.00%</span></td>' in page
    assert '<td class="num"><span class="pos">1.23%</span></td>' in page
    assert page.count("num best") == 1  # the only metric both runs have
    assert reverse("backtest_detail", args=[real.pk]) in page


def test_the_compare_page_explains_why_one_backtest_is_not_enough(sign_in, owner, workspace,
                                                                 two_runs):
    response = sign_in(owner, workspace).get(
        f"{reverse('backtest_compare')}?ids={two_runs[0].pk}")

    assert response.status_code == 400
    assert "Compare 2 to 8 backtests; got 1." in response.content.decode()


def test_the_compare_page_is_a_404_for_another_workspaces_backtest(
        sign_in, stranger, stranger_workspace, two_runs):
    ids = ",".join(str(s.pk) for s in two_runs)

    response = sign_in(stranger, stranger_workspace).get(
        f"{reverse('backtest_compare')}?ids={ids}")

    assert response.status_code == 404


def test_a_named_run_is_labelled_by_its_name(owner, workspace, two_runs):
    real, synthetic = two_runs
    TradingSession.objects.filter(pk=real.pk).update(name="fast=5")
    sessions = comparison.compared_sessions(workspace=workspace, ids=[real.pk, synthetic.pk])

    assert comparison.labels(sessions) == ["fast=5", "BTC 1m · 2021-04-01 00:00"]


def test_the_compare_page_says_all_inputs_are_equal_when_none_differ(
        sign_in, owner, workspace, two_runs):
    real, synthetic = two_runs
    url = f"{reverse('backtest_compare')}?ids={real.pk}&ids={synthetic.pk}"

    page = sign_in(owner, workspace).get(url).content.decode()

    assert '<p class="all-inputs-equal">All inputs equal:' in page
    assert "inputs-table" not in page


def test_the_compare_page_and_api_list_the_inputs_that_differ(
        api_client, sign_in, owner, workspace, two_runs):
    real, synthetic = two_runs
    TradingSession.objects.filter(pk=synthetic.pk).update(
        params={"fast": 8}, initial_cash=Decimal(5000))
    api_client.force_login(owner)

    page = sign_in(owner, workspace).get(
        f"{reverse('backtest_compare')}?ids={real.pk}&ids={synthetic.pk}").content.decode()
    answer = api_client.get(f"/api/v1/workspaces/{workspace.pk}/backtests/compare"
                            f"?ids={real.pk},{synthetic.pk}").json()

    assert answer["differing_inputs"] == [
        {"label": "Parameter fast", "values": ["—", "8"]},
        {"label": "Initial cash", "values": ["100,000", "5,000"]}]
    assert "<tr><td>Parameter fast</td><td>—</td><td>8</td></tr>" in page
    assert "All inputs equal" not in page
