"""When a day's bill is final enough to judge: the one definition budgets and anomaly detection share.

Databricks bills land 12–48 h after the usage and corrections follow for days, so a day is **closed** when
its bill's newest ``ingestion_date`` is at least 24 h after the day's end — that is, on or after the day
two days later (``ingestion_date`` is a date). Before that, the day is **open**: its billed figures may
still grow, and anything that judges spend uses the estimate for it instead (budgets) or does not score
it yet (anomalies).
"""

import datetime as dt

import polars as pl

from cost_assets.costing.frames import Frame, lazy

CLOSE_AFTER = dt.timedelta(days=2)  # day end + 24 h, in whole ingestion dates


def closed_days(billing: Frame) -> pl.DataFrame:
    """``usage_date, newest_ingestion, closed`` per usage day of ``raw/billing_usage`` rows."""
    return (
        lazy(billing)
        .group_by("usage_date")
        .agg(pl.col("ingestion_date").max().alias("newest_ingestion"))
        .with_columns(
            (pl.col("newest_ingestion") >= pl.col("usage_date") + CLOSE_AFTER).fill_null(False).alias("closed")
        )
        .sort("usage_date")
        .collect()
    )
