"""Datasets and strategies in a real Chromium: a bad upload lists its bad rows by line, a
dataset's page shows each symbol's own range, a dataset used by a schedule cannot be deleted
(the page names it) while an unused one is deleted after its confirmation, and two versions of
a strategy are compared."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.services import sign_up
from config.sample_data import head_of
from runtimes.schedules.services import create_schedule
from strategies.models import Dataset
from strategies.services import register_dataset, upload_dataset, upload_strategy_version
from tests.browser.conftest import log_in
from tests.browser.test_journeys import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(120)]

HEADER = "timestamp,open,high,low,close,volume\n"
CODE = ('import tektii\n\nDEFAULTS = {{"fast": {fast}, "slow": 30}}\n\n\n'
        "def cross(a, b):\n    return {test}\n")
V1 = CODE.format(fast=10, test="a > b").encode()
V2 = CODE.format(fast=12, test="a >= b").encode()


@pytest.fixture
def person(page):
    owner = sign_up(email="grace@example.com", password=PASSWORD)
    log_in(page, "grace@example.com", PASSWORD)
    return owner, owner.memberships.get().workspace


def test_a_bad_upload_lists_its_bad_rows_by_the_files_line_numbers(page, screenshot, tmp_path,
                                                                    person):
    rows = [f"2021-04-02T00:{m:02d}:00Z,1,1,1,1,1\n" for m in range(30)]
    for line in (7, 12, 20):  # lines of the file: the header is line 1
        rows[line - 2] = rows[line - 2].replace(",1,1,1,1,1", ",1,1,1,oops,1")
    bad = tmp_path / "BTCUSDT.csv"
    bad.write_text(HEADER + "".join(rows))

    page.goto("/app/datasets/new/")
    page.get_by_label("Name").fill("My minute bars")
    page.locator("[data-dropzone] input[type=file]").set_input_files(str(bad))
    page.get_by_label("Timeframe (optional)").fill("1m")
    page.get_by_role("button", name="Upload").click()

    problems = page.locator("#upload-problems")
    expect(problems.get_by_role("heading")).to_have_text("Nothing was stored: 3 problems to fix")
    expect(problems.locator("tbody tr td:nth-child(2)")).to_have_text(["7", "12", "20"])
    expect(problems.locator("tbody tr").first).to_contain_text("Close 'oops' is not a number")
    expect(page.get_by_label("Name")).to_have_value("My minute bars")
    expect(page.get_by_label("Timeframe (optional)")).to_have_value("1m")
    screenshot("bad-rows")
    screenshot("bad-rows", mobile=True)


def test_a_dataset_page_shows_each_symbols_own_range(page, screenshot, tmp_path, person):
    owner, workspace = person
    dataset = register_dataset(workspace=workspace, name="BTC & ETH", by=owner, files={
        "BTCUSDT": head_of("crypto-1m/BTCUSDT.csv", 100, tmp_path / "BTCUSDT.csv"),
        "ETHUSDT": head_of("crypto-1m/ETHUSDT.csv", 150, tmp_path / "ETHUSDT.csv")})

    page.goto(f"/app/datasets/{dataset.pk}/")
    rows = page.locator("#symbol-ranges tbody tr")
    expect(rows.nth(0)).to_contain_text("BTCUSDT1002021-04-02 00:002021-04-02 01:39")
    expect(rows.nth(1)).to_contain_text("ETHUSDT1502021-04-02 00:002021-04-02 02:29")
    expect(page.locator("#ranges-differ")).to_be_visible()
    screenshot("symbol-ranges")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    expect(page.get_by_text("(differs by symbol)")).to_be_visible()


def test_a_dataset_used_by_a_schedule_is_refused_and_an_unused_one_deleted(
        page, screenshot, person):
    owner, workspace = person
    daily = (HEADER + "".join(f"2021-04-{d:02d}T00:00:00Z,1,1,1,1,1\n" for d in range(1, 21))
             ).encode()
    used, unused = (upload_dataset(workspace=workspace, by=owner, name=name,
                                   files={"SPY": ("SPY.csv", daily)}) for name in ("Used", "Spare"))
    version = upload_strategy_version(workspace=workspace, author=owner, strategy="SMA",
                                      filename="sma.py", content=V1)
    create_schedule(workspace=workspace, created_by=owner, name="nightly", version=version,
                    dataset=used, cron_expression="0 6 * * *", rolling_days=5)

    page.goto(f"/app/datasets/{used.pk}/")
    page.get_by_role("link", name="Delete").click()
    expect(page.locator("#delete-refused")).to_have_text(
        "It cannot be deleted: it is used by schedule 'nightly'. Delete or change it first.")
    expect(page.locator("button.btn-danger")).to_have_count(0)
    screenshot("delete-refused")

    page.goto(f"/app/datasets/{unused.pk}/")
    page.get_by_role("link", name="Delete").click()
    expect(page.locator("#delete-impact")).to_contain_text(
        "Backtests (and other finished runs) that used it are deleted with it, results "
        "included: none used it.")
    screenshot("delete-confirm")
    page.get_by_role("button", name="Delete Spare").click()
    expect(page.get_by_text("Dataset Spare deleted.")).to_be_visible()
    assert list(Dataset.objects.values_list("name", flat=True)) == ["Used"]


def test_two_versions_are_compared(page, screenshot, person):
    owner, workspace = person
    for code in (V1, V2):
        version = upload_strategy_version(workspace=workspace, author=owner, strategy="SMA",
                                          filename="sma.py", content=code)

    page.goto(f"/app/strategies/{version.strategy_id}/")
    page.get_by_role("link", name="Compare versions").click()
    page.get_by_label("From").select_option("1")
    page.get_by_label("To").select_option("2")
    page.get_by_role("button", name="Compare").click()

    expect(page.get_by_role("heading", name="v1 → v2")).to_be_visible()
    expect(page.locator("#parameter-changes tbody tr")).to_have_text(["fast1012"])
    expect(page.locator(".diff-add")).to_have_text(['+DEFAULTS = {"fast": 12, "slow": 30}',
                                                    "+    return a >= b"])
    expect(page.locator(".diff-del")).to_have_text(['-DEFAULTS = {"fast": 10, "slow": 30}',
                                                    "-    return a > b"])
    screenshot("version-diff")
    screenshot("version-diff", mobile=True)
