"""Timeframe names, lengths, bucket alignment and annualisation."""

from decimal import Decimal

import pytest

from runtimes.core.timeframes import (
    TimeframeError,
    bucket_start,
    parse_timeframe,
    periods_per_year,
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


def test_periods_per_year_per_calendar():
    assert periods_per_year("1d", "crypto") == Decimal(365)
    assert periods_per_year("1m", "crypto") == Decimal(525_600)
    assert periods_per_year("1d", "stocks") == Decimal(252)
    assert periods_per_year("1w", "stocks") == Decimal(52)
    assert periods_per_year("1m", "stocks") == Decimal(98_280)
    assert periods_per_year("1h", "stocks") == Decimal("1638")
