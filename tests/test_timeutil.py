"""The one place epoch milliseconds, naive UTC datetimes and days are converted."""

import datetime as dt

import pytest

from cost_assets.timeutil import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    day_bounds,
    day_start_ms,
    from_ms,
    ms_to_dt,
    naive_utc,
    to_ms,
)


def test_the_units_are_consistent():
    assert (MINUTE_MS * 60, HOUR_MS * 24) == (HOUR_MS, DAY_MS)
    assert dt.timedelta(milliseconds=DAY_MS) == dt.timedelta(days=1)


def test_ms_round_trips_exactly():
    t = dt.datetime(2025, 7, 1, 12, 34, 56, 1000)
    for k in range(2000):
        ms = to_ms(t) + k
        assert to_ms(from_ms(ms)) == ms
    # Float arithmetic (seconds × 1000, truncated) is one millisecond short on instants like these.
    for ms in (2_105_981_513, 2_198_877_773_851):
        assert to_ms(from_ms(ms)) == ms
    assert to_ms(dt.datetime(2025, 7, 1, 0, 0, 0, 999)) == to_ms(dt.datetime(2025, 7, 1))  # sub-ms is floored


def test_ms_to_dt_reads_zero_and_none_as_not_set():
    assert ms_to_dt(None) is None and ms_to_dt(0) is None
    assert from_ms(0) == dt.datetime(1970, 1, 1)
    assert ms_to_dt(1_751_328_000_000) == dt.datetime(2025, 7, 1)


def test_day_start_ms_is_the_day_bound():
    day = dt.date(2025, 7, 1)
    lo, hi = day_bounds(day)
    assert day_start_ms(day) == to_ms(lo) == 1_751_328_000_000
    assert to_ms(hi) - to_ms(lo) == DAY_MS
    assert day_start_ms(day) == int(dt.datetime(2025, 7, 1, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    "value",
    [
        "2025-07-01T10:00:00Z",
        "2025-07-01T10:00:00.000Z",
        "2025-07-01 10:00:00",
        " 2025-07-01T12:00:00+02:00 ",
        dt.datetime(2025, 7, 1, 10),
        dt.datetime(2025, 7, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    ],
)
def test_naive_utc(value):
    assert naive_utc(value) == dt.datetime(2025, 7, 1, 10)
    assert naive_utc(value).tzinfo is None
