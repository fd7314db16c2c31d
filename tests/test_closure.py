"""A day is closed when its bill's newest ingestion is at least 24 h after the day's end."""

import datetime as dt

import polars as pl

from cost_assets.costing.closure import closed_days


def test_a_day_closes_two_ingestion_dates_later():
    d = dt.date(2026, 1, 5)
    bill = pl.DataFrame(
        {
            "usage_date": [d, d, d + dt.timedelta(days=1), d + dt.timedelta(days=2)],
            # 01-05: ORIGINAL on 01-06 (12–24 h after its end) and a correction on 01-07 (≥ 24 h): closed.
            # 01-06: only its ORIGINAL on 01-07: open. 01-07: no ingestion date known: open.
            "ingestion_date": [d + dt.timedelta(days=1), d + dt.timedelta(days=2), d + dt.timedelta(days=1), None],
        },
        schema={"usage_date": pl.Date, "ingestion_date": pl.Date},
    )
    out = closed_days(bill)
    assert out["closed"].to_list() == [True, False, False]
    assert out["newest_ingestion"].to_list()[0] == dt.date(2026, 1, 7)
