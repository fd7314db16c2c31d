"""Billing watermarks: per usage day, a fingerprint of its bill records.

``raw/billing_usage`` stores them in its materialization metadata; ``late_billing_sensor`` compares them
with the billing source's current ones to find the days whose bill changed afterwards. The fingerprint is
the newest ``ingestion_date`` *and* the record count and net quantity, so records ingested later on the
same date, and sources without ingestion dates (the legacy CSV), are noticed too.
"""

import datetime as dt
import hashlib

import polars as pl

METADATA_KEY = "billing_fingerprints"


def bill_fingerprints(billing: pl.DataFrame, days: list[dt.date]) -> dict[str, dict]:
    """Per usage day (ISO): latest ingestion date, record count, net quantity and a digest of record ids."""
    per_day = billing.group_by("usage_date").agg(
        pl.col("ingestion_date").max().alias("latest"),
        pl.len().alias("records"),
        pl.col("usage_quantity").sum().alias("quantity"),
        pl.col("record_id").sort().str.join("|").alias("ids"),
    )
    found = {r["usage_date"]: r for r in per_day.iter_rows(named=True)}
    out = {}
    for day in days:
        r = found.get(day)
        out[day.isoformat()] = {
            "latest_ingestion": r["latest"].isoformat() if r and r["latest"] else None,
            "records": r["records"] if r else 0,
            "quantity": round(r["quantity"], 9) if r else 0.0,
            "digest": hashlib.sha256((r["ids"] if r else "").encode()).hexdigest()[:16],
        }
    return out
