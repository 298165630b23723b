"""A backtest's symbols and date range are checked against its dataset before it runs
(runtimes/services.py `check_period`): each symbol's own range, start before end, a range with
no bars; the message names the data's range, the management API's envelope the field, and the
dashboard's form shows it on that field with what was typed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse

from config.errors import ApiError
from runtimes.models import TradingSession
from runtimes.sandbox import runner as sandbox
from runtimes.sandbox.runner import SandboxSupport, StrategyRuntime

HEADER = "timestamp,open,high,low,close,volume\n"


def hourly(first: datetime, hours: int) -> str:
    return "".join(f"{(first + timedelta(hours=h)):%Y-%m-%dT%H:%M:%SZ},10,11,9,10,1\n"
                   for h in range(hours))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def with_sandbox(monkeypatch):
    monkeypatch.setitem(sandbox._probe_cache, StrategyRuntime.current(),
                        SandboxSupport(True, "bubblewrap sandbox works"))


@pytest.fixture
def two_ranges(workspace, tmp_path: Path):
    """BTC hourly on April 2nd and 4th (a gap on the 3rd); ETH hourly April 2nd to 6th."""
    from strategies.services import register_dataset

    btc, eth = tmp_path / "BTCUSDT.csv", tmp_path / "ETHUSDT.csv"
    btc.write_text(HEADER + hourly(at("2021-04-02T00:00"), 6) + hourly(at("2021-04-04T00:00"), 6))
    eth.write_text(HEADER + hourly(at("2021-04-02T00:00"), 5 * 24))
    return register_dataset(workspace=workspace, name="BTC & ETH 1h",
                            files={"BTCUSDT": btc, "ETHUSDT": eth})


@pytest.fixture
def version(owner, workspace):
    from strategies.services import upload_strategy_version

    return upload_strategy_version(workspace=workspace, author=owner, strategy="s",
                                   filename="main.py", content=b"print('hi')\n")


def create(owner, workspace, dataset, version, **options) -> TradingSession:
    from runtimes.services import create_hosted_backtest

    return create_hosted_backtest(workspace=workspace, created_by=owner, version=version,
                                  dataset=dataset, **options)


def refusal(owner, workspace, dataset, version, **options) -> tuple[str, dict]:
    with pytest.raises(ApiError) as raised:
        create(owner, workspace, dataset, version, **options)
    assert (raised.value.error_code, raised.value.status_code) == ("INVALID_VALUE", 400)
    return raised.value.message, raised.value.details


def test_a_range_after_a_symbols_data_is_refused_with_that_symbols_own_range(
        with_sandbox, owner, workspace, two_ranges, version):
    message, details = refusal(owner, workspace, two_ranges, version, symbols=["BTCUSDT"],
                               start=at("2021-04-05T00:00"), end=at("2021-04-06T00:00"))

    assert message == "The date range is outside the dataset (2021-04-02 to 2021-04-04)."
    assert details == {"field": "from", "dataset_range": {
        "first": "2021-04-02T00:00:00Z", "last": "2021-04-04T05:00:00Z"}}
    # ETH runs longer than BTC: the same range is fine for it, and for both together.
    assert create(owner, workspace, two_ranges, version, symbols=["ETHUSDT"],
                  start=at("2021-04-05T00:00"), end=at("2021-04-06T00:00")).state == "queued"
    assert create(owner, workspace, two_ranges, version,
                  start=at("2021-04-05T00:00"), end=at("2021-04-06T00:00")).state == "queued"


def test_a_range_that_ends_before_the_data_names_the_to_field(
        with_sandbox, owner, workspace, two_ranges, version):
    message, details = refusal(owner, workspace, two_ranges, version, end=at("2021-03-01T00:00"))

    assert message == "The date range is outside the dataset (2021-04-02 to 2021-04-06)."
    assert details["field"] == "to"


def test_a_start_not_before_the_end_is_refused(with_sandbox, owner, workspace, two_ranges,
                                               version):
    message, details = refusal(owner, workspace, two_ranges, version,
                               start=at("2021-04-03T00:00"), end=at("2021-04-03T00:00"))

    assert message == "The start of the date range must be before its end."
    assert details == {"field": "from", "from": "2021-04-03T00:00:00Z",
                       "to": "2021-04-03T00:00:00Z"}


def test_a_range_inside_a_gap_of_the_data_has_no_bars_and_is_refused(
        with_sandbox, owner, workspace, two_ranges, version):
    message, details = refusal(owner, workspace, two_ranges, version, symbols=["BTCUSDT"],
                               start=at("2021-04-03T00:00"), end=at("2021-04-03T12:00"))

    assert message == ("The date range holds no bars of BTCUSDT (the data runs from 2021-04-02 "
                       "to 2021-04-04, with gaps).")
    assert details["field"] == "from"
    assert not TradingSession.objects.exists()


def test_symbols_the_dataset_lacks_are_named_with_the_ones_it_has(
        with_sandbox, owner, workspace, two_ranges, version):
    message, details = refusal(owner, workspace, two_ranges, version,
                               symbols=["ETHUSDT", "SOLUSDT", "DOGEUSDT"])

    assert message == ("The dataset has no data for SOLUSDT, DOGEUSDT; its symbols are "
                       "BTCUSDT, ETHUSDT.")
    assert details == {"field": "symbols", "provided": ["SOLUSDT", "DOGEUSDT"],
                       "available": ["BTCUSDT", "ETHUSDT"]}


def test_a_remote_backtest_is_checked_the_same_way(owner, workspace, two_ranges):
    from runtimes.services import create_backtest_session

    with pytest.raises(ApiError) as raised:
        create_backtest_session(
            workspace=workspace, created_by=owner, dataset=two_ranges, symbols=["BTCUSDT"],
            timeframe=None, start=at("2022-01-01T00:00"), end=None,
            initial_cash=Decimal(1000), commission={}, slippage_bps=Decimal(0),
            connect_timeout_s=30, idle_timeout_s=30)

    assert raised.value.message == (
        "The date range is outside the dataset (2021-04-02 to 2021-04-04).")


def test_the_api_answers_an_out_of_range_backtest_with_the_envelope_and_its_field(
        with_sandbox, api_client, owner, workspace, two_ranges, version):
    api_client.force_login(owner)

    answer = api_client.post(f"/api/v1/workspaces/{workspace.pk}/backtests", {
        "version": str(version.pk), "dataset": str(two_ranges.pk), "symbols": ["BTCUSDT"],
        "from": "2021-05-01T00:00:00Z", "initial_cash": "5000"}, format="json")

    assert answer.status_code == 400
    assert answer.json() == {
        "code": "INVALID_VALUE",
        "message": "The date range is outside the dataset (2021-04-02 to 2021-04-04).",
        "details": {"field": "from", "dataset_range": {"first": "2021-04-02T00:00:00Z",
                                                       "last": "2021-04-04T05:00:00Z"}}}


def test_the_dashboard_form_shows_the_range_error_on_its_field_and_keeps_what_was_typed(
        with_sandbox, sign_in, owner, workspace, two_ranges, version):
    client = sign_in(owner, workspace)

    page = client.post(reverse("backtest_new", args=[version.pk]), {
        "dataset": two_ranges.pk, "symbols": "BTCUSDT", "start": "2021-04-01T00:00",
        "end": "2021-04-01T12:00", "initial_cash": "5000", "commission_percent": "0",
        "slippage_bps": "0", "params": "{}"}).content.decode()

    assert page.count("The date range is outside the dataset (2021-04-02 to 2021-04-04).") == 1
    end_field = page[page.index('name="end"') - 300:page.index('name="end"') + 200]
    assert "The date range is outside the dataset" in end_field
    assert 'value="2021-04-01T12:00' in page and 'value="5000"' in page
    assert not TradingSession.objects.exists()
