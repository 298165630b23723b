"""A parameter sweep in a real Chromium: started from a strategy version's page, watched to the
end (its points are real hosted backtests of the SMA example on the test worker), its points
table sorted by a column, its best points and heatmap read, then deleted from its page."""

from __future__ import annotations

import re

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import expect

from accounts.services import sign_up
from config.sample_data import head_of
from runtimes.sandbox.runner import probe_bubblewrap
from runtimes.sweeps.models import Sweep
from strategies.services import EXAMPLES_DIR, register_dataset, upload_strategy_version
from tests.browser.conftest import log_in

SUPPORT = probe_bubblewrap()
pytestmark = [
    pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(150),
    pytest.mark.skipif(not django_settings.CELERY_EMBEDDED_WORKER,
                       reason="needs the embedded worker (settings are overridden in-process)"),
    pytest.mark.skipif(not SUPPORT.available,
                       reason=f"bubblewrap unavailable here: {SUPPORT.reason}"),
]

PASSWORD = "a-long-and-unusual-passphrase-42"


def returns_in_table_order(page) -> list[float]:
    cells = page.locator("#sweep-points tbody tr td:nth-child(4)")
    return [float(v) for v in cells.evaluate_all("cells => cells.map(c => c.dataset.value)")]


def test_a_sweep_is_started_from_a_version_watched_to_the_end_and_its_results_read(
        page, screenshot, tmp_path, celery_worker, daphne_url, settings):
    settings.PLATFORM_INTERNAL_URL = daphne_url
    owner = sign_up(email="ada@example.com", password=PASSWORD)
    workspace = owner.memberships.get().workspace
    version = upload_strategy_version(workspace=workspace, author=owner, strategy="SMA crossover",
                                      filename="sma_crossover.py",
                                      content=(EXAMPLES_DIR / "sma_crossover.py").read_bytes())
    register_dataset(workspace=workspace, name="BTCUSDT 1m", files={
        "BTCUSDT": head_of("crypto-1m/BTCUSDT.csv", 300, tmp_path / "BTCUSDT.csv")})

    log_in(page, "ada@example.com", PASSWORD)
    page.goto(f"/app/strategies/{version.strategy_id}/versions/1/")
    page.get_by_role("link", name="Sweep parameters").click()
    page.get_by_label("Name").fill("SMA fast x slow")
    page.get_by_label("Dataset").select_option(label="BTCUSDT 1m (1m)")
    page.get_by_label("Parameters to sweep (JSON object)").fill(
        '{"fast": [3, 5], "slow": {"start": 10, "stop": 20, "step": 10}}')
    page.get_by_label("Fixed parameters (JSON object)").fill('{"quantity": "0.5"}')
    page.get_by_label("Rank points by").select_option(label="Return")
    screenshot("sweep-new")
    page.get_by_role("button", name="Start the sweep").click()

    expect(page).to_have_url(re.compile(r"/app/sweeps/[0-9a-f-]{36}/$"))
    expect(page.locator("h1")).to_contain_text("SMA fast x slow")
    screenshot("sweep-running")
    expect(page.locator("#sweep-state")).to_have_text("Completed", timeout=90_000)  # reloads
    expect(page.locator("#sweep-progress")).to_contain_text("4 done · 0 failed")
    expect(page.locator("#sweep-points tbody tr")).to_have_count(4)
    expect(page.locator("#sweep-best li")).to_have_count(4)
    expect(page.locator("table.heatmap tbody tr")).to_have_count(2)
    expect(page.locator("table.heatmap tbody td.heat-none")).to_have_count(0)
    screenshot("sweep-completed")

    page.locator("#sweep-points th", has_text="Return").click()
    expect(page.locator("#sweep-points th[aria-sort=ascending]")).to_have_text("Return")
    ascending = returns_in_table_order(page)
    assert ascending == sorted(ascending)
    page.locator("#sweep-points th", has_text="Return").click()
    expect(page.locator("#sweep-points th[aria-sort=descending]")).to_have_text("Return")
    assert returns_in_table_order(page) == sorted(ascending, reverse=True)
    best = page.locator("#sweep-best li").first
    assert best.locator("strong").inner_text() == page.locator(
        "#sweep-points tbody tr").first.locator("td").nth(3).inner_text()

    page.locator("select[name=aggregate]").select_option("mean")
    expect(page).to_have_url(re.compile(r"aggregate=mean"))
    page.locator("#sweep-points tbody tr a").first.click()
    expect(page).to_have_url(re.compile(r"/app/backtests/[0-9a-f-]{36}/$"))
    page.go_back()
    screenshot("sweep-completed", mobile=True)
    assert Sweep.objects.get().state == "completed"

    page.locator("#sweep-delete").click()
    expect(page.locator("#sweep-delete-impact")).to_contain_text("their 4 backtests")
    screenshot("sweep-delete")
    page.get_by_role("button", name="Delete the sweep").click()
    expect(page).to_have_url(re.compile(r"/app/sweeps/$"))
    expect(page.locator("body")).to_contain_text("Deleted the sweep SMA fast x slow and its 4 "
                                                 "backtests.")
    assert not Sweep.objects.exists()
