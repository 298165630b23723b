"""Tests of runtimes/core/daily.py: equity resampled to UTC days and the returns between them."""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal as D

from runtimes.core.daily import daily_closes, daily_returns


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 3, day, hour, minute, tzinfo=UTC)


def test_each_day_keeps_its_last_value_and_a_day_without_points_has_none():
    points = [(at(1, 10), D(100)), (at(1, 23, 59), D(101)), (at(2, 0), D(99)),
              (at(4, 12), D(103))]
    assert daily_closes(points) == [(date(2024, 3, 1), D(101)), (date(2024, 3, 2), D(99)),
                                    (date(2024, 3, 4), D(103))]


def test_days_are_utc_days_whatever_the_offset_of_the_times():
    new_york = timezone(timedelta(hours=-5))
    points = [(datetime(2024, 3, 1, 20, 0, tzinfo=new_york), D(1)),  # 01:00 UTC on the 2nd
              (datetime(2024, 3, 1, 18, 0, tzinfo=new_york), D(2))]  # 23:00 UTC on the 1st
    assert daily_closes(points) == [(date(2024, 3, 2), D(1)), (date(2024, 3, 1), D(2))]


def test_returns_run_from_close_to_close_and_the_initial_value_dates_the_first_day():
    closes = [(date(2024, 3, 1), D(110)), (date(2024, 3, 2), D(99))]
    assert daily_returns(closes) == [(date(2024, 3, 2), D("-0.1"))]
    assert daily_returns(closes, initial=D(100)) == [(date(2024, 3, 1), D("0.1")),
                                                     (date(2024, 3, 2), D("-0.1"))]


def test_returns_are_undefined_after_a_value_at_or_below_zero():
    closes = [(date(2024, 3, 1), D(0)), (date(2024, 3, 2), D(5))]
    assert daily_returns(closes) == []
    assert daily_returns([(date(2024, 3, 1), D(5))], initial=D(0)) == []
    assert daily_returns([]) == []
