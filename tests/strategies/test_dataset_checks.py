"""Datasets one can trust: a timeframe checked against the timestamps (real data), every bad row
up to a hundred with the file's own line number, and each symbol's own range on the page and in
the API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from config.sample_data import open_series
from strategies.models import Dataset, SymbolRange
from strategies.services import DatasetUploadError, upload_dataset

pytestmark = pytest.mark.django_db

HEADER = "timestamp,open,high,low,close,volume\n"


def real(series: str, rows: int | None = None) -> bytes:
    """The first `rows` bars (all when None) of a real file of /work/shared/data (or data/)."""
    with open_series(series) as source:
        lines = source.readlines()
    return "".join(lines if rows is None else lines[:rows + 1]).encode()


def minute_bars(count: int, bad: dict[int, str] | None = None) -> bytes:
    """`count` one-minute bars; `bad` replaces the close of some data rows (1-based)."""
    rows = [f"2021-04-02T{i // 60:02d}:{i % 60:02d}:00Z,1,1,1,{(bad or {}).get(i + 1, '1')},1\n"
            for i in range(count)]
    return (HEADER + "".join(rows)).encode()


def refused(workspace, owner, files, **kwargs) -> DatasetUploadError:
    with pytest.raises(DatasetUploadError) as caught:
        upload_dataset(workspace=workspace, by=owner, name="D", files=files, **kwargs)
    assert not Dataset.objects.exists()
    return caught.value


# -- the timeframe given, against the timestamps ---------------------------------------------------


def test_real_daily_bars_uploaded_as_one_minute_bars_are_refused_with_the_spacing_found(
        workspace, owner):
    error = refused(workspace, owner, {"AAPL": ("AAPL.csv", real("stocks-daily/AAPL.csv"))},
                    timeframe="1m")

    assert error.problems == [{
        "file": "AAPL.csv", "row": None, "line": None, "column": None,
        "problem": "the rows are 1 day apart but the timeframe given is 1m; give 1d, or leave "
                   "the timeframe empty to have it read from the file"}]
    assert error.message.startswith("AAPL.csv: the rows are 1 day apart but the timeframe "
                                    "given is 1m")


def test_real_minute_bars_with_exchange_outages_keep_their_timeframe(workspace, owner):
    eth = real("crypto-1m/ETHUSDT.csv")
    assert refused(workspace, owner, {"ETHUSDT": ("ETHUSDT.csv", eth)},
                   timeframe="1h").problems[0]["problem"] == (
        "the rows are 1 minute apart but the timeframe given is 1h; give 1m, or leave the "
        "timeframe empty to have it read from the file")

    dataset = upload_dataset(workspace=workspace, by=owner, name="ETH", timeframe="1m",
                             files={"ETHUSDT": ("ETHUSDT.csv", eth)})
    assert dataset.timeframe == "1m"


def test_real_daily_stocks_with_weekends_and_holidays_are_read_as_daily(workspace, owner):
    dataset = upload_dataset(workspace=workspace, by=owner, name="SPY",
                             files={"SPY": ("SPY.csv", real("stocks-daily/SPY.csv"))})
    assert dataset.timeframe == "1d"


# -- bad rows --------------------------------------------------------------------------------------


def test_a_file_whose_line_7_is_bad_is_reported_at_line_7(workspace, owner):
    error = refused(workspace, owner, {"X": ("x.csv", minute_bars(10, bad={6: "abc"}))})

    assert error.problems == [{"file": "x.csv", "row": 6, "line": 7, "column": "close",
                               "problem": "close 'abc' is not a number"}]
    assert error.message == "x.csv line 7: close 'abc' is not a number"


def test_every_bad_row_is_listed_up_to_a_hundred_and_the_rest_counted(workspace, owner):
    bad = {row: "x" for row in range(1, 251, 2)}  # 125 bad rows
    error = refused(workspace, owner, {"X": ("x.csv", minute_bars(300, bad=bad))})

    assert len(error.problems) == 100 and error.more == 25
    assert [p["line"] for p in error.problems[:3]] == [2, 4, 6]
    assert error.problems[-1] == {"file": "x.csv", "row": 199, "line": 200, "column": "close",
                                  "problem": "close 'x' is not a number"}
    assert error.message == "x.csv line 2: close 'x' is not a number (and 124 more)"
    assert error.details["more"] == 25


def test_the_bound_of_a_hundred_holds_over_several_files(workspace, owner):
    bad = {row: "x" for row in range(1, 61)}
    error = refused(workspace, owner, {"A": ("a.csv", minute_bars(60, bad=bad)),
                                       "B": ("b.csv", minute_bars(60, bad=bad))})

    assert [p["file"] for p in error.problems] == ["a.csv"] * 60 + ["b.csv"] * 40
    assert error.more == 20


def test_the_upload_page_lists_every_bad_row_by_line_and_keeps_what_was_typed(
        sign_in, owner, workspace):
    upload = SimpleUploadedFile("X.csv", minute_bars(300, bad={r: "x" for r in range(1, 251, 2)}))
    response = sign_in(owner, workspace).post(reverse("dataset_upload"), {
        "name": "My bars", "timeframe": "1m", "files": [upload]})

    text = response.content.decode()
    assert response.status_code == 400
    assert 'value="My bars"' in text and 'value="1m"' in text
    assert "Nothing was stored: 125 problems to fix" in text
    assert text.count("<tr><td><code>X.csv</code></td>") == 100
    assert '<td class="num">200</td><td>close</td>' in text
    assert "… and 25 more not listed" in text


def test_the_api_envelope_lists_the_bad_rows_bounded(api_client, owner, workspace):
    api_client.force_login(owner)
    response = api_client.post(f"/api/v1/workspaces/{workspace.pk}/datasets/", {
        "name": "Bad", "file_X": SimpleUploadedFile(
            "x.csv", minute_bars(300, bad={r: "x" for r in range(1, 251, 2)}))},
        format="multipart")

    body = response.json()
    assert response.status_code == 400
    assert (body["code"], body["message"]) == (
        "VALIDATION_ERROR", "x.csv line 2: close 'x' is not a number (and 124 more)")
    assert len(body["details"]["problems"]) == 100 and body["details"]["more"] == 25
    assert body["details"]["problems"][0] == {"file": "x.csv", "row": 1, "line": 2,
                                              "column": "close",
                                              "problem": "close 'x' is not a number"}


# -- each symbol's own range -----------------------------------------------------------------------


@pytest.fixture
def coins(workspace, owner):
    """BTCUSDT to 2021-04-02 01:39 and ETHUSDT to 02:29: real bars, different ends."""
    return upload_dataset(workspace=workspace, by=owner, name="BTC & ETH", files={
        "BTCUSDT": ("BTCUSDT.csv", real("crypto-1m/BTCUSDT.csv", 100)),
        "ETHUSDT": ("ETHUSDT.csv", real("crypto-1m/ETHUSDT.csv", 150))})


def test_each_symbol_keeps_its_own_range(coins):
    start = datetime(2021, 4, 2, tzinfo=UTC)
    assert coins.symbol_ranges() == {
        "BTCUSDT": SymbolRange("BTCUSDT", start, datetime(2021, 4, 2, 1, 39, tzinfo=UTC), 100),
        "ETHUSDT": SymbolRange("ETHUSDT", start, datetime(2021, 4, 2, 2, 29, tzinfo=UTC), 150)}
    assert list(coins.symbol_ranges(["ETHUSDT", "DOGE"])) == ["ETHUSDT"]
    span = coins.span()
    assert (span.first, span.last, span.differ) == (
        start, datetime(2021, 4, 2, 2, 29, tzinfo=UTC), True)


def test_the_dataset_pages_show_each_symbols_range(sign_in, owner, workspace, coins):
    client = sign_in(owner, workspace)
    page = client.get(reverse("dataset_detail", args=[coins.pk])).content.decode()
    listing = client.get(reverse("dataset_list")).content.decode()

    assert "Period <strong>2021-04-02 00:00</strong> → <strong>2021-04-02 02:29</strong>" in page
    assert 'id="ranges-differ"' in page
    assert ('<td class="num">150</td><td class="nowrap">2021-04-02 00:00</td>'
            '<td class="nowrap">2021-04-02 02:29</td>') in page
    assert ('<td class="num">100</td><td class="nowrap">2021-04-02 00:00</td>'
            '<td class="nowrap">2021-04-02 01:39</td>') in page
    assert "(differs by symbol)" in listing
    assert "BTCUSDT: 2021-04-02 → 2021-04-02; ETHUSDT: 2021-04-02 → 2021-04-02" in listing


def test_the_api_gives_each_symbols_range_and_the_whole_period(api_client, owner, workspace,
                                                               coins):
    api_client.force_login(owner)
    body = api_client.get(f"/api/v1/workspaces/{workspace.pk}/datasets/{coins.pk}/").json()

    assert (body["first_timestamp"], body["last_timestamp"], body["ranges_differ"]) == (
        "2021-04-02T00:00:00Z", "2021-04-02T02:29:00Z", True)
    assert [(f["symbol"], f["rows"], f["first_timestamp"], f["last_timestamp"])
            for f in body["files"]] == [
        ("BTCUSDT", 100, "2021-04-02T00:00:00Z", "2021-04-02T01:39:00Z"),
        ("ETHUSDT", 150, "2021-04-02T00:00:00Z", "2021-04-02T02:29:00Z")]
