"""The result page's trade analysis: the round trips table (sorted and paged by a fragment htmx
swaps in, or by reloading without JavaScript), per-symbol table, monthly heatmap, benchmark
cards and line, the round trips CSV; old results say why they have none; a stranger gets 404."""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from runtimes.core.trade_analysis import ROUND_TRIP_FIELDS
from runtimes.models import SessionResult
from runtimes.trade_pages import benchmark_cards, duration_text, monthly_heatmap
from tests.runtimes.results import completed_session, run_in_process, synthetic_result

pytestmark = pytest.mark.django_db


def _embedded(page: str, element_id: str):
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>',
                      page, re.S)
    return None if found is None else json.loads(found.group(1))


@pytest.fixture
def finished(owner, workspace, dataset):
    return run_in_process(workspace=workspace, by=owner, dataset=dataset)


def _trip(n: int) -> list:
    """Round trip `n`: net P&L (n * 37) % 101 - 50, so sorting by it reorders every page."""
    net = (n * 37) % 101 - 50
    return [n, "BTCUSDT", "LONG" if n % 2 else "SHORT", "1", f"2021-04-02T{n % 24:02}:00:00Z",
            "100", f"2021-04-02T{n % 24:02}:30:00Z", str(100 + net), str(net), "0", str(net),
            str(net / 100), 1800, "-1", "-0.01", "2", "0.02",
            "end_of_data" if n == 1 else "signal"]


def _with_trips(session, count: int) -> SessionResult:
    result = synthetic_result(session, trades=4)
    result.round_trips = [_trip(n) for n in range(1, count + 1)]
    result.analysis = {"round_trips": {"count": count, "closed": count - 1, "open": 1},
                       "symbols": [], "monthly": [], "benchmark": {}}
    result.save(update_fields=["round_trips", "analysis"])
    return result


def _nets(fragment: str) -> list[int]:
    return [int(v) for v in re.findall(r'data-net="(-?\d+)"', fragment)]


def test_the_result_page_lists_round_trips_per_symbol_monthly_returns_and_the_benchmark(
        sign_in, owner, workspace, finished):
    page = sign_in(owner, workspace).get(
        reverse("backtest_detail", args=[finished.pk])).content.decode()

    result = finished.result
    trips = result.round_trips
    assert len(trips) == result.analysis["round_trips"]["count"] > 0
    assert '<h2>Trades</h2>' in page and '<h2>Fills</h2>' in page
    assert f"1\u2013{min(50, len(trips))} of {len(trips)} · page 1 of" in page
    assert page.count('<td class="num pnl') == min(50, len(trips))
    first = dict(zip(ROUND_TRIP_FIELDS, trips[0], strict=True))
    assert f'data-net="{first["net_pnl"]}"' in page
    assert reverse("backtest_csv", args=[finished.pk, "round-trips"]) in page
    # per symbol, the heatmap's April cell, the benchmark's cards and line
    assert '<table class="per-symbol">' in page and "<td>BTCUSDT</td>" in page
    april = Decimal(result.analysis["monthly"][0]["months"][3])  # the only month: darkest
    tone = "pos" if april > 0 else "neg"
    assert ('<th scope="row">2021</th>' + '<td class="num heat-none"></td>' * 3
            + f'<td class="num heat-{tone}-4">{april * 100:,.2f}%</td>') in page
    assert "Buy &amp; hold return" in page and "Alpha (annualised)" in page
    assert _embedded(page, "benchmark-data") == result.analysis["benchmark"]["curve"]
    assert 'data-benchmark="benchmark-data"' in page


def test_the_table_links_fetch_the_fragment_and_fall_back_to_reloading_the_page(
        sign_in, owner, workspace, dataset):
    session = completed_session(workspace=workspace, by=owner, dataset=dataset)
    _with_trips(session, 120)
    client = sign_in(owner, workspace)
    fragment_url = reverse("backtest_round_trips", args=[session.pk])

    page = client.get(reverse("backtest_detail", args=[session.pk])).content.decode()
    by_pnl = client.get(fragment_url, {"trips_sort": "-net_pnl"}).content.decode()
    second = client.get(fragment_url, {"trips_sort": "-net_pnl", "trips_page": 2}
                        ).content.decode()

    assert (f'href="?trips_sort=net_pnl&amp;trips_page=1#trips" '
            f'hx-get="{fragment_url}?trips_sort=net_pnl&amp;trips_page=1" '
            f'hx-target="#round-trips" hx-swap="outerHTML"') in page
    assert by_pnl.lstrip().startswith('<div id="round-trips"')
    every = sorted(((n * 37) % 101 - 50 for n in range(1, 121)), reverse=True)
    assert _nets(by_pnl) == every[:50] and _nets(second) == every[50:100]
    assert "51\u2013100 of 120 · page 2 of 3" in second and "<html" not in second
    assert (f'hx-get="{fragment_url}?trips_sort=-net_pnl&amp;trips_page=3"') in second
    reloaded = client.get(reverse("backtest_detail", args=[session.pk]),
                          {"trips_sort": "-net_pnl", "trips_page": 2}).content.decode()
    assert _nets(reloaded) == every[50:100]


def test_the_trip_still_open_at_the_end_is_marked_in_the_table(
        sign_in, owner, workspace, dataset):
    session = completed_session(workspace=workspace, by=owner, dataset=dataset)
    _with_trips(session, 3)

    page = sign_in(owner, workspace).get(
        reverse("backtest_detail", args=[session.pk])).content.decode()

    assert page.count('<tr class="trip-open">') == 1 and "End of data (open)" in page
    assert "not counted in the Trades metric" in page


def test_an_old_result_without_the_analysis_says_so_and_keeps_its_fills(
        sign_in, owner, workspace, dataset):
    session = completed_session(workspace=workspace, by=owner, dataset=dataset)
    synthetic_result(session, trades=4)

    page = sign_in(owner, workspace).get(
        reverse("backtest_detail", args=[session.pk])).content.decode()

    assert 'id="no-analysis"' in page and "run it again to see them" in page
    assert "<h2>Fills</h2>" in page and 'id="round-trips"' not in page
    assert _embedded(page, "benchmark-data") is None and "Buy &amp; hold" not in page


def test_the_round_trips_csv_has_every_trip_with_its_stored_values(
        sign_in, owner, workspace, finished):
    response = sign_in(owner, workspace).get(
        reverse("backtest_csv", args=[finished.pk, "round-trips"]))

    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == ",".join(ROUND_TRIP_FIELDS)
    assert lines[1].split(",") == [str(v) for v in finished.result.round_trips[0]]
    assert len(lines) == 1 + len(finished.result.round_trips)


def test_a_stranger_gets_404_for_the_round_trips_of_another_workspace(
        sign_in, stranger, stranger_workspace, finished):
    client = sign_in(stranger, stranger_workspace)

    assert client.get(reverse("backtest_round_trips", args=[finished.pk])).status_code == 404
    assert client.get(reverse("backtest_csv", args=[finished.pk, "round-trips"])
                      ).status_code == 404


def test_100000_round_trips_render_one_page_of_them(
        sign_in, owner, workspace, dataset, capsys):
    session = completed_session(workspace=workspace, by=owner, dataset=dataset)
    _with_trips(session, 100_000)
    client = sign_in(owner, workspace)
    url = reverse("backtest_round_trips", args=[session.pk])

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        fragment = client.get(url, {"trips_sort": "-net_pnl", "trips_page": 1500})
        elapsed = time.perf_counter() - started
    page = client.get(reverse("backtest_detail", args=[session.pk]))

    text = fragment.content.decode()
    assert fragment.status_code == 200 and len(_nets(text)) == 50 and len(queries) <= 4
    assert "74951\u201375000 of 100000 · page 1500 of 2000" in text
    assert len(page.content) < 400_000
    with capsys.disabled():
        print(f"\n100,000 round trips: a sorted page in {elapsed * 1000:.0f} ms, "
              f"the result page {len(page.content) // 1024} KiB")


def test_heat_shades_scale_with_the_largest_month_and_totals_take_the_sign():
    rows = monthly_heatmap({"monthly": [
        {"year": 2021, "months": ["0.1", "-0.05", "0.024", None, "0"] + [None] * 7,
         "total": "-0.01"}]})

    cells = rows[0]["months"]
    assert [c["tone"] for c in cells[:5]] == [
        "heat-pos-4", "heat-neg-2", "heat-pos-1", "heat-none", "heat-0"]
    assert cells[0]["text"] == "10.00%" and cells[3]["text"] == ""
    assert rows[0]["total"] == {"text": "-1.00%", "tone": "heat-neg-total"}


def test_benchmark_cards_say_when_annualised_figures_come_from_a_short_run():
    short = benchmark_cards({"benchmark": {
        "total_return": "0.0143", "cagr": "68569298.01", "alpha": None, "beta": None,
        "daily_returns": 1, "days_per_year": 365, "span_seconds": 18000}})
    long = benchmark_cards({"benchmark": {
        "total_return": "-0.2", "cagr": "-0.1", "alpha": "0.031", "beta": "0.8",
        "daily_returns": 63, "days_per_year": 252, "span_seconds": 91 * 86400}})

    assert [(c["value"], c["tone"], c["hint"]) for c in short] == [
        ("1.43%", "pos", ""), ("6,856,929,801.00%", "pos", "annualised from 1 day"),
        ("—", "", "needs two daily returns"), ("—", "", "needs two daily returns")]
    assert [(c["value"], c["tone"], c["hint"]) for c in long] == [
        ("-20.00%", "neg", ""), ("-10.00%", "neg", ""), ("3.10%", "pos", ""), ("0.80", "", "")]


def test_durations_read_as_the_two_largest_units():
    assert [duration_text(s) for s in (0, 45, 60 * 45, 3600 * 2 + 300, 86400 * 3 + 3600 * 4)] \
        == ["0s", "45s", "45m", "2h 5m", "3d 4h"]
