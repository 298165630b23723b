"""The bar spacing of a file (the most common gap), how it is said, and where a kept bar was in
the file after blank lines and bad rows."""

import pytest

from runtimes.core.dataset_errors import DatasetError
from runtimes.core.datasets_spacing import (
    RowPlaces,
    bar_spacing,
    check_timeframe,
    describe_seconds,
    inferred_spacing,
)

DAY = 86_400


def test_the_spacing_is_the_most_common_gap_and_the_smaller_on_a_tie():
    weekdays = [0, DAY, 2 * DAY, 3 * DAY, 4 * DAY, 7 * DAY, 8 * DAY]  # a weekend in between
    assert bar_spacing(weekdays) == DAY
    assert bar_spacing([0, 60, 180]) == 60
    assert bar_spacing([0]) is None and bar_spacing([]) is None


def test_spacings_are_said_in_the_largest_whole_unit():
    assert [describe_seconds(s) for s in (60, 90, 7_200, DAY, 3 * DAY, 7 * DAY, 1)] == [
        "1 minute", "90 seconds", "2 hours", "1 day", "3 days", "1 week", "1 second"]


def test_row_places_follow_skipped_rows_and_lines():
    places = RowPlaces()
    for index, row, line in [(0, 1, 2), (1, 2, 3), (2, 4, 6), (3, 5, 7), (4, 6, 9)]:
        places.note(index, row, line)
    assert [places.of(i) for i in range(5)] == [(1, 2), (2, 3), (4, 6), (5, 7), (6, 9)]
    assert len(places.starts) == 3  # one entry per change of step, not per bar


def _places(count: int) -> RowPlaces:
    places = RowPlaces()
    places.note(0, 1, 2)  # bar i is data row i + 1, line i + 2 (after the header)
    return places


def test_an_illiquid_minute_series_most_often_two_minutes_apart_is_read_as_1m():
    # 20 gaps of 2 minutes, 10 of 1 minute: the bars are minutes with gaps.
    stamps = [0]
    for gap in [120, 120, 60] * 10:
        stamps.append(stamps[-1] + gap)
    assert (bar_spacing(stamps), inferred_spacing(stamps)) == (120, 60)
    assert check_timeframe(stamps, _places(len(stamps)), None, "X.csv") == "1m"


def test_one_stray_bar_of_a_daily_file_is_a_bad_row_not_a_12h_timeframe():
    stamps = [i * DAY for i in range(40)]
    stamps.insert(10, 9 * DAY + DAY // 2)  # one bar at noon between two days
    assert inferred_spacing(stamps) == DAY
    with pytest.raises(DatasetError) as refused:
        check_timeframe(stamps, _places(len(stamps)), None, "X.csv")
    # the stray bar (index 10, line 12) and the day after it are both 12 hours apart
    assert str(refused.value) == ("X.csv line 12: bar is 12 hours after the previous one, less "
                                  "than one 1d bar (and 1 more bad row)")
