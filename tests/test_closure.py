"""A day is closed when it has a bill and the bill was ingested at least 24 h past the day's end."""

import datetime as dt

import polars as pl

from cost_assets.costing.closure import closed_days


def test_a_day_closes_once_the_bill_has_moved_two_ingestion_dates_past_it():
    d = [dt.date(2026, 1, 5) + dt.timedelta(days=i) for i in range(4)]
    # Each day's ORIGINAL records arrive the next day; 01-05 gets a correction on 01-08. Watermark: 01-08.
    bill = pl.DataFrame(
        {"usage_date": [d[0], d[0], d[1], d[2], d[3]], "ingestion_date": [d[1], d[3], d[2], d[3], None]},
        schema={"usage_date": pl.Date, "ingestion_date": pl.Date},
    )
    out = closed_days(bill)
    # 01-05 and 01-06: 01-08 ≥ day + 2 → closed; 01-07 needs 01-09 and 01-08 needs 01-10 → open. 01-06 is
    # closed although its own records were only ingested on 01-07: the feed has moved on past it.
    assert out["closed"].to_list() == [True, True, False, False]
    assert set(out["newest_ingestion"]) == {dt.date(2026, 1, 8)}


def test_no_ingestion_date_known_means_open():
    bill = pl.DataFrame(
        {"usage_date": [dt.date(2026, 1, 1)], "ingestion_date": [None]},
        schema={"usage_date": pl.Date, "ingestion_date": pl.Date},
    )
    assert closed_days(bill)["closed"].to_list() == [False]
