"""Dashboard pages of backtests: the list (state badges, progress, polling only while a session
runs) and a completed session's result page (metric cards, downsampled chart data, sorted and
paginated trades and orders, CSV exports), reached only through the current workspace."""

from __future__ import annotations

import json
import re
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from runtimes.models import State, TradingSession
from tests.runtimes.results import completed_session, run_in_process, synthetic_result


def _embedded(page: str, element_id: str):
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>',
                      page, re.S)
    return json.loads(found.group(1))


@pytest.fixture
def finished(owner, workspace, dataset):
    return run_in_process(workspace=workspace, by=owner, dataset=dataset)


def _running(owner, workspace, dataset, batches=75):
    return TradingSession.objects.create(workspace=workspace, created_by=owner, dataset=dataset,
                                         symbols=["BTCUSDT"], timeframe="1m",
                                         state=State.RUNNING, batches=batches)


def test_an_empty_backtest_list_says_how_to_start(sign_in, owner, workspace):
    text = sign_in(owner, workspace).get(reverse("backtest_list")).content.decode()

    assert "No backtests yet" in text
    assert reverse("strategy_list") in text and reverse("api_key_create") in text


def test_the_list_polls_while_a_session_runs_and_shows_its_progress(
        sign_in, owner, workspace, dataset, finished):
    client = sign_in(owner, workspace)
    _running(owner, workspace, dataset, batches=75)

    text = client.get(reverse("backtest_list")).content.decode()
    rows = client.get(reverse("backtest_rows")).content.decode()

    assert 'hx-trigger="every 2s"' in text and rows.startswith('<div id="backtest-rows" hx-get=')
    assert 'aria-valuenow="25"' in text and "75 of 300 bars" in text  # 300 bars in the dataset
    assert 'class="state state-running">Running<' in text
    assert 'class="state state-completed">Completed<' in text


def test_the_list_stops_polling_when_no_session_runs(sign_in, owner, workspace, finished):
    rows = sign_in(owner, workspace).get(reverse("backtest_rows")).content.decode()

    assert "hx-trigger" not in rows and 'aria-valuenow="100"' in rows


def test_a_running_session_page_polls_its_progress_and_reloads_once_it_ended(
        sign_in, owner, workspace, dataset):
    client = sign_in(owner, workspace)
    session = _running(owner, workspace, dataset)

    page = client.get(reverse("backtest_detail", args=[session.pk])).content.decode()
    running = client.get(reverse("backtest_progress", args=[session.pk]))
    session.finish(to=State.FAILED, now=session.created_at, reason="the strategy crashed")
    ended = client.get(reverse("backtest_progress", args=[session.pk]))

    assert 'hx-trigger="every 2s"' in page and "Running" in page
    assert "HX-Refresh" not in running
    assert ended["HX-Refresh"] == "true" and "the strategy crashed" in ended.content.decode()


def test_the_result_page_shows_metric_cards_the_chart_data_and_the_contract(
        sign_in, owner, workspace, finished):
    page = sign_in(owner, workspace).get(
        reverse("backtest_detail", args=[finished.pk])).content.decode()

    metrics = finished.result.metrics
    assert '<div class="label">Total return</div><div class="value pos">0.23%</div>' in page
    assert '<div class="label">Max drawdown</div><div class="value neg">-0.87%</div>' in page
    assert f'<div class="label">Trades</div><div class="value ">{metrics["number_of_trades"]}<' \
        in page
    chart = _embedded(page, "equity-data")
    assert len(chart["equity"]["time"]) == 300 and chart["equity"]["value"][0] == "100000"
    assert chart["drawdown"]["value"][0] == "0" and min(map(float, chart["drawdown"]["value"])) \
        == pytest.approx(-float(metrics["max_drawdown"]), abs=1e-5)
    assert "Execution contract" in page and "Slippage rule" in page
    assert 'id="logs"' in page


def test_trades_are_paginated_50_a_page_and_sorted_by_any_column(
        sign_in, owner, workspace, dataset):
    session = completed_session(workspace=workspace, by=owner, dataset=dataset)
    synthetic_result(session, trades=120)
    client = sign_in(owner, workspace)
    url = reverse("backtest_detail", args=[session.pk])

    first = client.get(url).content.decode()
    last = client.get(url, {"trades_page": 3, "trades_sort": "-price"}).content.decode()

    assert "1\u201350 of 120 · page 1 of 3" in first
    assert "101\u2013120 of 120 · page 3 of 3" in last
    prices = re.findall(r'<td class="num">(500\d\d)</td><td class="num">0.5</td>', last)
    assert len(prices) == 20 and prices == sorted(prices, reverse=True)
    assert 'href="?trades_page=1&amp;trades_sort=price#trades" aria-sort="descending"' in last


def test_csv_exports_stream_every_row(sign_in, owner, workspace, finished):
    client = sign_in(owner, workspace)

    def lines(kind):
        response = client.get(reverse("backtest_csv", args=[finished.pk, kind]))
        assert response.streaming and response["Content-Type"] == "text/csv; charset=utf-8"
        return b"".join(response.streaming_content).decode().splitlines()

    equity, trades, orders = lines("equity"), lines("trades"), lines("orders")
    assert equity[0] == "timestamp,equity" and len(equity) == 301
    assert trades[0].startswith("id,order_id,symbol,side") and len(trades) == 1 + len(
        finished.result.trades)
    assert len(orders) == 1 + len(finished.result.orders)
    assert client.get(reverse("backtest_csv", args=[finished.pk, "secrets"])).status_code == 404


def test_a_stranger_gets_404_for_every_backtest_page_of_another_workspace(
        sign_in, stranger, stranger_workspace, finished):
    client = sign_in(stranger, stranger_workspace)
    urls = [reverse("backtest_detail", args=[finished.pk]),
            reverse("backtest_progress", args=[finished.pk]),
            reverse("backtest_csv", args=[finished.pk, "trades"])]

    assert [client.get(url).status_code for url in urls] == [404, 404, 404]
    assert str(finished.pk) not in client.get(reverse("backtest_list")).content.decode()


def test_a_result_with_10000_trades_renders_one_page_with_few_queries(
        sign_in, owner, workspace, dataset, capsys):
    session = completed_session(workspace=workspace, by=owner, dataset=dataset)
    synthetic_result(session, trades=10_000)  # 10,000 orders and 20,000 equity points too
    client = sign_in(owner, workspace)
    url = reverse("backtest_detail", args=[session.pk])
    client.get(url)  # warm up templates and caches

    timings = []
    for _ in range(3):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, {"trades_sort": "-price", "orders_page": 7})
            timings.append(time.perf_counter() - started)

    page = response.content.decode()
    assert response.status_code == 200 and len(queries) <= 8
    assert page.count('<td class="num">0.5</td>') == 50  # one page of trades, not 10,000
    assert len(_embedded(page, "equity-data")["equity"]["time"]) <= 2000
    with capsys.disabled():
        print(f"\n10,000-trade result page: best {min(timings) * 1000:.0f} ms, "
              f"{len(queries)} queries, {len(page) // 1024} KiB")
