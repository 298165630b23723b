"""The bar spacing of a file (the most common gap), how it is said, and where a kept bar was in
the file after blank lines and bad rows."""

from runtimes.core.datasets_spacing import RowPlaces, bar_spacing, describe_seconds

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
