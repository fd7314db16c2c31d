"""The cloud bill resource: the provider's cost export files named by ``COST_ASSETS_CLOUD_BILL``."""

import datetime as dt

import dagster as dg
import polars as pl

from cost_assets.ingest import cloud_bill
from cost_assets.ingest.fetch import SourceUnavailable


class CloudBill(dg.ConfigurableResource):
    """FOCUS exports (AWS, Azure, GCP) or Azure cost details exports, CSV or Parquet, by path, glob or
    folder. ``format``: ``focus`` / ``azure_cost`` forces the shape; None tells it from the columns."""

    path: str
    format: str | None = None

    def describe(self) -> str:
        return f"the cloud cost export {self.path}"

    def costs(self, days: list[dt.date]) -> tuple[pl.DataFrame, int]:
        """The charges of ``days`` (the latest export of each day wins) and how many files were read.

        No file at all raises :class:`SourceUnavailable` (the asset warns and keeps what is stored); a bad
        file raises ``InputError`` naming the file, the row and the column."""
        files = cloud_bill.export_files(self.path)
        if not files:
            raise SourceUnavailable(f"COST_ASSETS_CLOUD_BILL: no CSV or Parquet file matches {self.path!r}")
        return cloud_bill.read_exports(files, days, self.format), len(files)
