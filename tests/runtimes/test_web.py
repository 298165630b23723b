"""Dashboard pages of backtests: the list (state badges, progress, polling only while a session
runs) and a completed session's result page (metric cards, downsampled chart data, the price
chart's candles and fill markers, sorted and paginated trades and orders, CSV exports), reached
only through the current workspace."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from config.sample_data import head_of
from runtimes import result_pages
from runtimes.models import SessionResult, State, TradingSession
from strategies.services import register_dataset
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
    assert '<progress class="progress" max="100" value="25"' in text
    assert "75 of 300 bars" in text  # 300 bars in the dataset
    assert 'class="state state-running">Running<' in text
    assert 'class="state state-completed">Completed<' in text


def test_the_list_stops_polling_when_no_session_runs(sign_in, owner, workspace, finished):
    rows = sign_in(owner, workspace).get(reverse("backtest_rows")).content.decode()

    # A completed row shows its headline metrics, not a full progress bar.
    assert "hx-trigger" not in rows and "<progress" not in rows


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


def test_the_price_chart_embeds_every_bar_and_a_marker_per_fill_of_a_short_run(
        sign_in, owner, workspace, finished):
    page = sign_in(owner, workspace).get(
        reverse("backtest_detail", args=[finished.pk])).content.decode()

    prices = _embedded(page, "price-data")
    trades = finished.result.trades
    assert list(prices) == ["BTCUSDT"]
    btc = prices["BTCUSDT"]
    assert len(btc["time"]) == 300 and btc["time"][0] == 1617321600  # 2021-04-02T00:00Z
    assert btc["open"][0] == "58720.45" and btc["close"][-1] == btc["close"][299]
    assert btc["fills"] == btc["shown"] == len(trades) > 0
    assert btc["markers"] == {  # one-minute bars: a fill's candle is its own bar
        "time": [int(datetime.fromisoformat(t["timestamp"]).timestamp()) for t in trades],
        "side": [t["side"] for t in trades]}
    assert 'id="price-chart"' in page and f"{len(trades)} fills, 300 candles" in page


def _bar_file(path):
    """Ten one-minute bars from 2021-04-02T00:00Z: open 100+i, high 110+i (150 at 00:03), low
    90+i (50 at 00:06), close 101+i."""
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(10):
        high, low = 150 if i == 3 else 110 + i, 50 if i == 6 else 90 + i
        rows.append(f"2021-04-02T00:0{i}:00Z,{100 + i},{high},{low},{101 + i},1")
    path.write_text("\n".join(rows) + "\n")
    return path


def _fill(n, side, quantity, stamp):
    return {"id": f"T{n}", "order_id": f"O{n}", "symbol": "X", "side": side,
            "quantity": quantity, "price": "100", "commission": "0", "commission_currency": "USD",
            "is_maker": False, "timestamp": f"2021-04-02T00:{stamp}Z"}


def test_the_price_chart_aggregates_candles_and_keeps_whole_round_trips_of_fills(
        sign_in, owner, workspace, tmp_path, monkeypatch):
    dataset = register_dataset(workspace=workspace, name="X and Y", files={
        "X": _bar_file(tmp_path / "X.csv"), "Y": _bar_file(tmp_path / "Y.csv")})
    session = completed_session(workspace=workspace, by=owner, dataset=dataset)
    TradingSession.objects.filter(pk=session.pk).update(  # bars 00:01…00:08 of X only
        symbols=["X"], start=datetime(2021, 4, 2, 0, 1, tzinfo=UTC),
        end=datetime(2021, 4, 2, 0, 8, tzinfo=UTC))
    SessionResult.objects.create(session=session, orders=[], equity=[], metrics={}, trades=[
        _fill(0, "BUY", "1", "00:00"),  # before the period
        _fill(1, "BUY", "1", "02:00"), _fill(2, "SELL", "1", "03:00"),  # trip A: long 1
        _fill(3, "SELL", "2", "05:00"),  # trip B: short 2…
        _fill(4, "BUY", "4", "06:00"),  # …reversed to long 2: ends B, opens C
        _fill(5, "SELL", "2", "08:30"),  # trip C ends inside the last bar, 00:08…00:09
        _fill(6, "BUY", "1", "09:00"),  # after the period
    ])
    monkeypatch.setattr(result_pages, "PRICE_CANDLES", 3)  # buckets of 3, 3 and 2 bars
    monkeypatch.setattr(result_pages, "PRICE_MARKERS", 4)  # 5 fills: A and C kept, not B
    client = sign_in(owner, workspace)

    page = client.get(reverse("backtest_detail", args=[session.pk])).content.decode()

    at = [1617321660, 1617321840, 1617322020]  # 00:01, 00:04, 00:07
    assert _embedded(page, "price-data") == {"X": {
        "time": at, "open": ["101", "104", "107"], "high": ["150", "116", "118"],
        "low": ["91", "50", "97"], "close": ["104", "107", "109"],
        "markers": {"time": [at[0], at[0], at[1], at[2]], "side": ["BUY", "SELL", "BUY", "SELL"]},
        "fills": 5, "shown": 4}}
    assert "showing 4 of 5 fills (whole round trips, evenly spread), 3 candles" in page

    monkeypatch.setattr(result_pages, "PRICE_MARKERS", 3)  # only trip C fits
    markers = _embedded(client.get(reverse("backtest_detail", args=[session.pk])).content
                        .decode(), "price-data")["X"]["markers"]
    assert markers == {"time": [at[1], at[2]], "side": ["BUY", "SELL"]}


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
        sign_in, owner, workspace, tmp_path, capsys):
    # 21,000 one-minute bars from 2021-04-02: most of the fills
    btc = head_of("crypto-1m/BTCUSDT.csv", 21_000, tmp_path / "BTCUSDT.csv")
    dataset = register_dataset(workspace=workspace, name="BTC 1m, 2 weeks", files={"BTCUSDT": btc})
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
    assert response.status_code == 200 and len(queries) <= 6  # the price chart adds one
    assert page.count('<td class="num">0.5</td>') == 50  # one page of trades, not 10,000
    assert len(_embedded(page, "equity-data")["equity"]["time"]) <= 2000
    prices = _embedded(page, "price-data")["BTCUSDT"]
    assert 1900 <= len(prices["time"]) <= 2000 and prices["fills"] == 10_000 - 720  # from 04-02
    markers = prices["markers"]
    assert 900 <= prices["shown"] == len(markers["time"]) <= 1000
    assert markers["side"].count("BUY") == markers["side"].count("SELL")  # whole round trips
    assert markers["time"] == sorted(markers["time"])
    assert f"showing {prices['shown']} of {prices['fills']} fills" in page
    with capsys.disabled():
        print(f"\n10,000-trade result page: best {min(timings) * 1000:.0f} ms, "
              f"{len(queries)} queries, {len(page) // 1024} KiB")


def test_a_cancelled_run_keeps_its_status_page_though_its_final_state_is_stored(
        sign_in, owner, workspace, dataset):
    # The host stores a cancelled run's final state on a result row, for the Trading API; the
    # dashboard shows its status (and reason), not an empty report.
    session = completed_session(workspace=workspace, by=owner, dataset=dataset)
    TradingSession.objects.filter(pk=session.pk).update(state=State.CANCELLED,
                                                        failure_reason="cancelled by test")
    SessionResult.objects.create(session=session, orders=[], trades=[], equity=[], metrics={},
                                 account={"equity": "100000"}, positions=[])

    page = sign_in(owner, workspace).get(reverse("backtest_detail", args=[session.pk]))

    assert page.templates[0].name == "runtimes/backtest_status.html"


# -- the list: names, headline metrics, filters and sorts -----------------------------------------


def _named_run(owner, workspace, dataset, name, minute, metrics, state=State.COMPLETED):
    session = TradingSession.objects.create(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=["BTCUSDT"],
        timeframe="1m", state=state, name=name,
        created_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=minute))
    SessionResult.objects.create(session=session, metrics=metrics, equity=[["t", "1"]] * 100)
    return session


def test_a_row_shows_the_name_platform_range_and_headline_metrics(
        sign_in, owner, workspace, dataset):
    run = _named_run(owner, workspace, dataset, "fast=5", 1, {
        "total_return": "0.0123", "sharpe": "1.5", "max_drawdown": "0.05",
        "number_of_trades": 12})
    TradingSession.objects.filter(pk=run.pk).update(
        start=datetime(2021, 4, 2, tzinfo=UTC), end=datetime(2021, 4, 3, tzinfo=UTC))

    rows = sign_in(owner, workspace).get(reverse("backtest_rows")).content.decode()

    row = re.search(rf'<tr id="run-{run.pk}">(.*?)</tr>', rows, re.S).group(1)
    assert "<strong>fast=5</strong>" in row and "Remote strategy (API key) · BTC 1m" in row
    assert '<td class="hide-mobile">Backtest<div class="muted small nowrap">2021-04-02 → ' \
           '2021-04-03</div></td>' in row
    assert re.findall(r'<span class="(?:pos|neg|)">([^<]*)</span>', row) == [
        "1.23%", "1.50", "-5.00%", "12"]


def test_sorting_by_sharpe_orders_numbers_not_strings_and_keeps_the_filters(
        sign_in, owner, workspace, dataset, btc_csv):
    other = register_dataset(workspace=workspace, name="Other", files={"BTCUSDT": btc_csv})
    runs = [_named_run(owner, workspace, dataset, name, minute, {"sharpe": sharpe})
            for minute, (name, sharpe) in enumerate((("nine", "9"), ("ten", "10"),
                                                     ("minus", "-2")))]
    _named_run(owner, workspace, other, "elsewhere", 9, {"sharpe": "50"})
    client = sign_in(owner, workspace)

    page = client.get(reverse("backtest_list"), {"dataset": str(dataset.pk),
                                                 "sort": "-sharpe"}).content.decode()

    shown = re.findall(r"<strong>(\w+)</strong>", page)
    assert shown == ["ten", "nine", "minus"] and len(runs) == 3
    assert f'<option value="{dataset.pk}" selected>BTC 1m</option>' in page
    # The column's link reverses the order and keeps the filter.
    assert f'href="?dataset={dataset.pk}&amp;sort=sharpe" aria-sort="descending"' in page


def test_paging_and_polling_keep_the_filters_and_the_sort(
        sign_in, owner, workspace, dataset, monkeypatch):
    from runtimes import views

    monkeypatch.setattr(views, "SESSIONS_PER_PAGE", 2)
    for minute in range(3):
        _named_run(owner, workspace, dataset, f"run{minute}", minute, {})
    _running(owner, workspace, dataset)

    page = sign_in(owner, workspace).get(reverse("backtest_list"), {
        "dataset": str(dataset.pk), "sort": "name"}).content.decode()

    kept = f"dataset={dataset.pk}&amp;sort=name"
    assert f'hx-get="{reverse("backtest_rows")}?{kept}&amp;page=1"' in page
    assert f'href="?{kept}&amp;page=2">Next →</a>' in page


def test_a_bad_filter_is_said_and_the_list_left_unfiltered(sign_in, owner, workspace, dataset):
    _named_run(owner, workspace, dataset, "kept", 1, {})

    page = sign_in(owner, workspace).get(reverse("backtest_list"), {"sort": "luck"}) \
        .content.decode()

    assert "sort is one of created, name, return, sharpe, drawdown, trades" in page
    assert "<strong>kept</strong>" in page


def test_a_filter_that_matches_nothing_says_so(sign_in, owner, workspace, dataset):
    _named_run(owner, workspace, dataset, "kept", 1, {})

    page = sign_in(owner, workspace).get(reverse("backtest_list"), {"state": "failed"}) \
        .content.decode()

    assert "No backtest matches these filters" in page and "No backtests yet" not in page


def test_the_list_of_many_runs_reads_metrics_only_in_a_bounded_number_of_queries(
        sign_in, owner, workspace, dataset):
    SessionResult.objects.bulk_create([SessionResult(
        session=TradingSession.objects.create(
            workspace=workspace, created_by=owner, dataset=dataset, symbols=["BTCUSDT"],
            timeframe="1m", state=State.COMPLETED, name=f"run {i}"),
        metrics={"sharpe": str(i)}, equity=[["t", "1"]] * 1000) for i in range(60)])
    client = sign_in(owner, workspace)

    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("backtest_list"), {"sort": "-sharpe"}).content.decode()

    assert re.findall(r"<strong>(run \d+)</strong>", page)[:3] == ["run 59", "run 58", "run 57"]
    results = [q["sql"] for q in queries if "runtimes_sessionresult" in q["sql"]]
    assert results and not any('"runtimes_sessionresult"."equity"' in sql for sql in results)
    assert len(queries) <= 15
