"""Billing watermarks: per usage day, the newest ``ingestion_date`` of its bill records.

``raw/billing_usage`` stores them in its materialization metadata; ``late_billing_sensor`` compares them
with the billing source's current ones to find the days whose bill changed afterwards.
"""

import datetime as dt

import polars as pl

METADATA_KEY = "ingestion_watermarks"


def ingestion_watermarks(billing: pl.DataFrame, days: list[dt.date]) -> dict[str, str | None]:
    """Per usage day (ISO): the newest ingestion_date of its records (None: no dated records)."""
    latest = dict(billing.group_by("usage_date").agg(pl.col("ingestion_date").max()).iter_rows())
    return {d.isoformat(): (latest[d].isoformat() if latest.get(d) else None) for d in days}
