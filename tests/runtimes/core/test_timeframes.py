"""Timeframe names, lengths, bucket alignment, annualisation and the calendar guess."""

from datetime import date
from decimal import Decimal

import pytest

from runtimes.core.timeframes import (
    TimeframeError,
    bucket_start,
    days_per_year,
    guess_calendar,
    is_crypto_pair,
    parse_timeframe,
    timeframe_for_seconds,
    timeframe_seconds,
)


def test_protocol_timeframes_have_their_lengths_in_seconds():
    assert timeframe_seconds("1m") == 60
    assert timeframe_seconds("4h") == 14_400
    assert timeframe_seconds("1w") == 604_800
    assert timeframe_for_seconds(300) == "5m"
    assert timeframe_for_seconds(7) is None


def test_unknown_timeframe_error_lists_the_valid_names():
    with pytest.raises(TimeframeError) as caught:
        parse_timeframe("3m")
    assert str(caught.value) == (
        "unknown timeframe '3m'; expected one of 1m, 2m, 5m, 10m, 15m, 30m, 1h, 2h, 4h, 12h, 1d, 1w"
    )


def test_weekly_buckets_start_on_monday_utc():
    # 2021-04-08 is a Thursday; its week started on Monday 2021-04-05.
    assert bucket_start(1617840000 + 3600, "1w") == 1617580800
    assert bucket_start(1617840000 + 3600, "1d") == 1617840000


def test_days_per_year_per_calendar():
    assert (days_per_year("stocks"), days_per_year("crypto")) == (Decimal(252), Decimal(365))
    with pytest.raises(TimeframeError):
        days_per_year("forex")  # type: ignore[arg-type]


@pytest.mark.parametrize(("symbol", "crypto"), [
    ("BTCUSDT", True), ("ethusdc", True), ("BTC/USD", True), ("eth-usdt", True),
    ("SOLEUR", True), ("AAPL", False), ("BRK.B", False), ("BRK-B", False), ("GOOGL", False),
    ("USDT", False), ("ETH", False), ("SPY", False),
])
def test_a_crypto_pair_is_a_base_and_a_known_quote(symbol: str, crypto: bool) -> None:
    assert is_crypto_pair(symbol) is crypto


def test_calendar_is_crypto_for_a_pair_or_a_weekend_day_else_stocks():
    monday, saturday = date(2024, 3, 4), date(2024, 3, 9)
    assert guess_calendar(["AAPL"], [monday]) == "stocks"
    assert guess_calendar(["AAPL"], [monday, saturday]) == "crypto"
    assert guess_calendar(["AAPL", "BTCUSDT"], [monday]) == "crypto"
    assert guess_calendar([], []) == "stocks"
