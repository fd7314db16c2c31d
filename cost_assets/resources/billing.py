"""Billing sources: every bill format normalized into the one ``raw.billing_usage`` schema."""

import datetime as dt
import glob
from pathlib import Path

import dagster as dg
import polars as pl

from cost_assets.ingest import parse


class BillingSource(dg.ConfigurableResource):
    """Abstract: ``usage(days)`` returns every usage record (all record types) of those usage dates."""

    def usage(self, days: list[dt.date]) -> pl.DataFrame:
        raise NotImplementedError(f"{type(self).__name__} does not provide billing usage")


class CsvBillingSource(BillingSource):
    """Legacy billable-usage CSV files (the Account API download format), a path or a glob."""

    path: str

    def usage(self, days: list[dt.date]) -> pl.DataFrame:
        files = sorted(glob.glob(self.path)) or ([self.path] if Path(self.path).exists() else [])
        if not files:
            raise FileNotFoundError(f"COST_ASSETS_BILLING_SOURCE csv: no file matches {self.path!r}")
        frames = [parse.legacy_csv_frame(Path(f).read_text(encoding="utf-8"), f) for f in files]
        frame = pl.concat(frames)
        return frame.filter(pl.col("usage_date").is_in(days)).unique("record_id", keep="last", maintain_order=True)
