"""Finding and telling backtests apart, in a real Chromium: the list filtered by strategy and
sorted by Sharpe, a running backtest cancelled from the list, a run renamed from its page and its
"What was run" panel read, a run deleted after its confirmation page, and "Clone and edit" landing
on the backtest form prefilled with every input."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.services import sign_up
from config.sample_data import head_of
from runtimes.models import SessionResult, Source, State, TradingSession
from strategies.services import EXAMPLES_DIR, register_dataset, upload_strategy_version
from tests.browser.conftest import log_in
from tests.browser.test_journeys import PASSWORD
from tests.runtimes.results import run_in_process

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(120)]


def _workspace_with_runs(tmp_path):
    """Ada's workspace: SMA v1 and v2 and RSI v1, three completed runs of them (real engine
    results, Sharpe set apart) and one run whose host is gone while it runs."""
    owner = sign_up(email="ada@example.com", password=PASSWORD)
    workspace = owner.memberships.get().workspace
    dataset = register_dataset(workspace=workspace, name="BTCUSDT 1m", files={
        "BTCUSDT": head_of("crypto-1m/BTCUSDT.csv", 300, tmp_path / "BTCUSDT.csv")})
    code = (EXAMPLES_DIR / "sma_crossover.py").read_bytes()
    sma1, sma2, rsi = (upload_strategy_version(
        workspace=workspace, author=owner, strategy=name, filename="sma_crossover.py",
        content=code + extra) for name, extra in (("SMA", b""), ("SMA", b"\n# v2\n"),
                                                  ("RSI", b"")))
    runs = {}
    for minute, (label, version, sharpe, every) in enumerate((
            ("sma-a", sma1, "9.5", 10), ("sma-b", sma2, "10.2", 25), ("rsi-a", rsi, "-1", 15))):
        session = run_in_process(workspace=workspace, by=owner, dataset=dataset, every=every)
        result = SessionResult.objects.get(session=session)
        result.metrics = {**result.metrics, "sharpe": sharpe}
        result.save(update_fields=["metrics"])
        TradingSession.objects.filter(pk=session.pk).update(
            source=Source.HOSTED, strategy_version=version, name=label,
            created_at=session.created_at + timedelta(minutes=minute),
            params={"fast": every, "slow": 30}, slippage_bps=Decimal(2),
            start=datetime(2021, 4, 2, tzinfo=UTC),
            end=datetime(2021, 4, 2, 4, tzinfo=UTC), commission={"percent": "0.1"})
        runs[label] = session
    runs["running"] = TradingSession.objects.create(
        workspace=workspace, created_by=owner, dataset=dataset, symbols=["BTCUSDT"],
        timeframe="1m", source=Source.HOSTED, strategy_version=sma1, state=State.RUNNING,
        name="long one", batches=30, lease_expires_at=timezone.now() - timedelta(minutes=1))
    return runs, (sma1, sma2, rsi)


def _log_in(page) -> None:
    log_in(page, "ada@example.com", PASSWORD)


def _names(page) -> list[str]:
    return page.locator("#backtest-rows tbody tr td:nth-child(2) strong").all_inner_texts()


def test_the_list_is_filtered_sorted_and_a_running_backtest_cancelled(
        page, screenshot, tmp_path):
    runs, (sma1, _sma2, _rsi) = _workspace_with_runs(tmp_path)
    _log_in(page)
    page.goto("/app/backtests/")
    expect(page.locator("#backtest-rows tbody tr")).to_have_count(4)
    screenshot("backtests")

    page.get_by_label("Strategy").select_option(label="SMA")  # submits itself
    expect(page).to_have_url(re.compile(rf"strategy={sma1.strategy_id}"))
    assert _names(page) == ["long one", "sma-b", "sma-a"]
    page.get_by_role("link", name="Sharpe").click()
    expect(page.locator("a[aria-sort=descending]")).to_have_text("Sharpe")
    assert _names(page) == ["sma-b", "sma-a", "long one"]  # not completed: last
    expect(page.get_by_label("Strategy")).to_have_value(str(sma1.strategy_id))
    screenshot("backtests-filtered-sorted")
    screenshot("backtests-filtered-sorted", mobile=True)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel long one").click()
    expect(page.get_by_text("long one is cancelled.")).to_be_visible()
    expect(page.locator(f"#run-{runs['running'].pk} .state-cancelled")).to_have_count(1)


def test_a_run_is_renamed_read_deleted_after_confirmation_and_cloned_into_a_form(
        page, screenshot, tmp_path):
    runs, (sma1, _sma2, _rsi) = _workspace_with_runs(tmp_path)
    _log_in(page)
    page.goto(f"/app/backtests/{runs['sma-a'].pk}/")

    page.get_by_label("Name").fill("SMA fast 10")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("SMA fast 10")
    page.get_by_text("What was run").click()
    panel = page.locator("#what-was-run")
    expect(panel.get_by_role("link", name="SMA v1")).to_have_attribute(
        "href", f"/app/strategies/{sma1.strategy_id}/versions/1/")
    expect(panel).to_contain_text("fast=10, slow=30")
    expect(panel).to_contain_text("Market orders fill at the next bar's open, moved 2 bps")
    screenshot("result-what-was-run")

    page.get_by_label("Clone into").select_option(label="v2")
    page.get_by_role("button", name="Clone and edit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Run a backtest of SMA v2")
    expect(page.get_by_label("Symbols")).to_have_value("BTCUSDT")
    expect(page.get_by_label("From (UTC)")).to_have_value("2021-04-02T00:00")
    expect(page.get_by_label("To (UTC)")).to_have_value("2021-04-02T04:00")
    expect(page.get_by_label("Slippage (basis points)")).to_have_value("2")
    expect(page.get_by_label("Commission (% of notional)")).to_have_value("0.1")
    expect(page.get_by_label("Parameters (JSON object)")).to_have_value(
        '{\n "fast": 10,\n "slow": 30\n}')
    screenshot("clone-and-edit")

    page.goto("/app/backtests/")
    page.get_by_role("link", name="Delete rsi-a").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete the backtest rsi-a?")
    screenshot("delete-confirmation")
    page.get_by_role("button", name="Delete the backtest").click()
    expect(page.get_by_text("Deleted rsi-a.")).to_be_visible()
    assert "rsi-a" not in _names(page)
    assert not TradingSession.objects.filter(pk=runs["rsi-a"].pk).exists()
