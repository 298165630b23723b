"""A completed backtest's trades in a real Chromium: the round trips table is sorted by P&L and
paged without reloading the page (a marker set on window survives, the URL stays), the monthly
returns heatmap, the benchmark cards and the equity chart with its buy-and-hold line."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.services import sign_up
from config.sample_data import head_of
from strategies.services import register_dataset
from tests.browser.conftest import log_in
from tests.browser.test_journeys import PASSWORD, assert_chart_drawn
from tests.runtimes.results import run_in_process

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(120)]


def _nets(page) -> list[float]:
    return [float(v) for v in page.locator("#round-trips td[data-net]").evaluate_all(
        "cells => cells.map(cell => cell.dataset.net)")]


def test_round_trips_are_sorted_by_pnl_and_paged_without_reloading_the_page(
        page, screenshot, tmp_path):
    owner = sign_up(email="ada@example.com", password=PASSWORD)
    workspace = owner.memberships.get().workspace
    dataset = register_dataset(workspace=workspace, name="BTCUSDT 1m", files={
        "BTCUSDT": head_of("crypto-1m/BTCUSDT.csv", 300, tmp_path / "BTCUSDT.csv")})
    finished = run_in_process(workspace=workspace, by=owner, dataset=dataset, every=2)
    trips = len(finished.result.round_trips)
    assert trips > 50  # two pages

    log_in(page, "ada@example.com", PASSWORD)
    page.goto(f"/app/backtests/{finished.pk}/")
    address = page.url
    page.evaluate("window.notReloaded = 'still here'")
    table = page.locator("#round-trips")
    expect(table.locator("tbody tr")).to_have_count(50)
    expect(page.get_by_role("heading", name="Fills")).to_be_visible()

    table.get_by_role("link", name="Net P&L").click()
    expect(table.locator("a[aria-sort=ascending]")).to_have_text("Net P&L")
    ascending = _nets(page)
    assert ascending == sorted(ascending) and len(ascending) == 50
    table.get_by_role("link", name="Net P&L").click()
    expect(table.locator("a[aria-sort=descending]")).to_have_text("Net P&L")
    descending = _nets(page)
    assert descending == sorted(descending, reverse=True)
    table.get_by_role("link", name="Next →").click()
    expect(table).to_contain_text(f"51\u2013{trips} of {trips} · page 2 of 2")
    rest = _nets(page)
    assert len(rest) == trips - 50 and rest == sorted(rest, reverse=True)
    assert rest[0] <= descending[-1]
    assert page.evaluate("window.notReloaded") == "still here" and page.url == address
    screenshot("trades-page-2")

    heatmap = page.locator("table.heatmap")
    expect(heatmap).to_be_visible()
    expect(heatmap.locator("tbody th")).to_have_text("2021")
    expect(heatmap.locator("td.heat-none")).to_have_count(11)  # April 2021 only
    expect(page.locator(".benchmark-card", has_text="Beta")).to_be_visible()
    expect(page.locator(".benchmark-card", has_text="Buy & hold return")).not_to_contain_text("—")
    expect(page.locator("table.per-symbol tbody tr")).to_have_count(1)
    expect(page.locator("#equity-chart")).to_have_attribute("data-benchmark", "benchmark-data")
    assert_chart_drawn(page, "#equity-chart")
    expect(page.locator(".chart-legend", has_text="Buy & hold")).to_be_visible()
    screenshot("result-trades")
    screenshot("result-trades", mobile=True)
    shots = screenshot("part").parent
    for name, selector in (("table", "#round-trips"), ("heatmap", "table.heatmap"),
                           ("benchmark", "#benchmark"), ("equity", "#equity-chart")):
        page.locator(selector).screenshot(path=str(shots / f"trades-{name}.png"))
