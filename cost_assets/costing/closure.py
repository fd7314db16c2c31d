"""When a day's bill is final enough to judge: the one definition budgets and anomaly detection share.

Databricks bills land 12–48 h after the usage and corrections follow for days. A day is **closed** when
it has bill records and the bill as held has been ingested at least 24 h past the day's end: the newest
``ingestion_date`` of any record is on or after the day two days later (``ingestion_date`` is a date, so
this is the first date certain to be ≥ 24 h after the day's end). Before that the day is **open**: its
billed figures may still grow, and anything that judges spend uses the estimate for it (budgets) or does
not score it yet (anomalies). The watermark is the whole bill's, not the day's own: a day whose records
were never corrected has only its next-day ingestion, yet it is final once the feed has moved on.
"""

import datetime as dt

import polars as pl

from cost_assets.costing.frames import Frame, lazy

CLOSE_AFTER = dt.timedelta(days=2)  # the day's end + 24 h, in whole ingestion dates


def closed_days(billing: Frame) -> pl.DataFrame:
    """``usage_date, newest_ingestion, closed`` per usage day of ``raw/billing_usage`` rows, where
    ``newest_ingestion`` is the bill's watermark (the newest ingestion date of any record given)."""
    bill = lazy(billing)
    watermark = bill.select(pl.col("ingestion_date").max().alias("newest_ingestion"))
    return (
        bill.select("usage_date")
        .unique()
        .join(watermark, how="cross")
        .with_columns(
            (pl.col("newest_ingestion") >= pl.col("usage_date") + CLOSE_AFTER).fill_null(False).alias("closed")
        )
        .sort("usage_date")
        .collect()
    )
