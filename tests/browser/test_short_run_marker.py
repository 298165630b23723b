"""In a real Chromium: the result page of a run of three days marks its annualised figures
(CAGR, Sharpe, Sortino, volatility) with an asterisk whose title says why, and nothing else."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.services import sign_up
from config.sample_data import head_of
from strategies.services import register_dataset
from tests.browser.conftest import SCREENSHOTS, log_in
from tests.runtimes.results import run_in_process

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(120)]

PASSWORD = "a-long-and-unusual-passphrase-42"


def test_the_annualised_cards_of_a_short_run_are_marked_and_explained(page, screenshot, tmp_path,
                                                                      request):
    owner = sign_up(email="ada@example.com", password=PASSWORD)
    workspace = owner.memberships.get().workspace
    dataset = register_dataset(workspace=workspace, name="BTCUSDT 1m", files={
        "BTCUSDT": head_of("crypto-1m/BTCUSDT.csv", 3 * 1440, tmp_path / "BTCUSDT.csv")})
    finished = run_in_process(workspace=workspace, by=owner, dataset=dataset)

    log_in(page, "ada@example.com", PASSWORD)
    page.goto(f"/app/backtests/{finished.pk}/")

    markers = page.locator(".metric abbr.short-run")
    expect(markers).to_have_count(4)  # CAGR, Sharpe, Sortino, Volatility
    marked = page.locator(".metric .label:has(abbr.short-run)").all_inner_texts()
    assert [m.upper() for m in marked] == ["CAGR *", "SHARPE *", "SORTINO *", "VOLATILITY *"]
    expect(markers.first).to_have_attribute(
        "title", "Annualised from 3 days of returns, under a quarter of a year: a few weeks "
        "extrapolated to a year, mostly noise (docs/metrics.md).")
    expect(page.locator(".metric", has_text="Total return").locator("abbr")).to_have_count(0)
    markers.first.hover()
    screenshot("result")
    cards = SCREENSHOTS / f"{request.node.name}-cards.png"
    page.get_by_role("region", name="Metrics").screenshot(path=str(cards))
