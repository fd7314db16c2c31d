"""Billing sources: every bill format normalized into the one ``raw.billing_usage`` schema.

Legacy CSV files, the Account API download (the same CSV over HTTP) and ``system.billing.usage``
through a SQL warehouse all go through the shared parsers in ``cost_assets.ingest.parse``, so a record
looks the same whichever source delivered it (only ``billing_source`` says where it came from).
"""

import datetime as dt
import glob
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl

from cost_assets.ingest import parse, pushdown
from cost_assets.ingest.http import ApiClient
from cost_assets.ingest.sql import Param, StatementClient, add_link_stats, statement
from cost_assets.resources.databricks import DatabricksConnection


@contextmanager
def _reporting(client: ApiClient, stats: dict | None) -> Iterator[None]:
    """Copies the client's call statistics into ``stats`` when the block ends, also when it raises."""
    try:
        yield
    finally:
        if stats is not None:
            stats.update(client.stats())


class BillingSource(dg.ConfigurableResource):
    """Abstract: ``usage(days)`` returns every usage record (all record types) of those usage dates.

    ``stats``: a dict the caller owns (None: not wanted). Sources that fetch over HTTP add their
    client's :meth:`~cost_assets.ingest.http.ApiClient.stats` to it (``calls``, ``calls/<endpoint>``,
    ``retries``, ``retries/<endpoint>``, ``http_<status>``, ``throttled_s``, ...), so the raw asset can
    show what the bill cost in calls under ``api/...`` metadata. Sources without HTTP leave it unchanged.
    An out-parameter and not a second return value: the frame stays the one result every caller (the
    sensor too) uses, and the dict is filled even when the fetch fails, so retries that ended in a
    failure can still be reported.
    """

    def usage(self, days: list[dt.date], stats: dict | None = None) -> pl.DataFrame:
        raise NotImplementedError(f"{type(self).__name__} does not provide billing usage")

    def describe(self) -> str:
        """The source as a user configured it, for messages ("no bill for D from <this>")."""
        return type(self).__name__


class CsvBillingSource(BillingSource):
    """Legacy billable-usage CSV files (the Account API download format), a path or a glob."""

    path: str

    def describe(self) -> str:
        return f"the legacy CSV {self.path}"

    def usage(self, days: list[dt.date], stats: dict | None = None) -> pl.DataFrame:
        files = sorted(glob.glob(self.path)) or ([self.path] if Path(self.path).exists() else [])
        if not files:
            raise FileNotFoundError(f"COST_ASSETS_BILLING_SOURCE csv: no file matches {self.path!r}")
        frames = [parse.legacy_csv_frame(Path(f).read_text(encoding="utf-8"), f) for f in files]
        frame = pl.concat(frames)
        return frame.filter(pl.col("usage_date").is_in(days)).unique("record_id", keep="last", maintain_order=True)


class AccountApiBillingSource(BillingSource):
    """The Account API billable-usage download (the legacy CSV): one call per month range.

    Needs account-level credentials (an account admin's token, or an OAuth service principal of the
    account) against the account host, e.g. ``https://accounts.azuredatabricks.net``.
    """

    connection: DatabricksConnection
    account_id: str

    def describe(self) -> str:
        return f"the Account API usage download (account {self.account_id})"

    def usage(self, days: list[dt.date], stats: dict | None = None) -> pl.DataFrame:
        first, last = min(days), max(days)
        start_month, end_month = f"{first:%Y-%m}", f"{last:%Y-%m}"
        with self.connection.client("account", self.account_id) as client, _reporting(client, stats):
            text = client.get_text(
                f"/api/2.0/accounts/{self.account_id}/usage/download",
                {"start_month": start_month, "end_month": end_month, "personal_data": "false"},
            )
        frame = parse.legacy_csv_frame(
            text, f"Account API usage download {start_month}..{end_month}", source="account_api"
        )
        return frame.filter(pl.col("usage_date").is_in(days)).unique("record_id", keep="last", maintain_order=True)


class SystemTablesBillingSource(BillingSource):
    """``system.billing.usage`` through a SQL warehouse (SQL Statement Execution API), every record type.

    One parameterized statement per call (the days are DATE parameters, never spliced into the text).
    ``pushdown`` (the default): the warehouse reduces and prices the rows and only the aggregates travel,
    as Arrow through EXTERNAL_LINKS (:mod:`cost_assets.ingest.pushdown`); off: the raw rows come as
    JSON_ARRAY INLINE (for warehouses whose result links this machine cannot reach, e.g. storage behind a
    firewall). Both give the same ``raw/billing_usage`` rows.
    """

    connection: DatabricksConnection
    warehouse_id: str
    wait_timeout_s: int = 30
    timeout_s: float = 900.0
    pushdown: bool = True

    def describe(self) -> str:
        return f"system.billing.usage (SQL warehouse {self.warehouse_id})"

    def usage(self, days: list[dt.date], stats: dict | None = None) -> pl.DataFrame:
        params = [Param("first_day", min(days).isoformat(), "DATE"), Param("last_day", max(days).isoformat(), "DATE")]
        sql: StatementClient | None = None
        try:
            with self.connection.client() as client, _reporting(client, stats):
                sql = StatementClient(
                    client, self.warehouse_id, wait_timeout_s=self.wait_timeout_s, timeout_s=self.timeout_s
                )
                if self.pushdown:
                    reduced = sql.query_arrow(statement("billing_usage_pushdown"), params)
                    if stats is not None:
                        stats.update(pushdown.priced_totals(reduced))
                    rows = pushdown.usage_rows(reduced)
                else:
                    rows = sql.query(statement("billing_usage"), params)
        finally:
            if stats is not None and sql is not None:  # also when the fetch failed, like _reporting
                add_link_stats(stats, sql.link_stats)
        return parse.system_usage_frame(rows, "system_tables").filter(pl.col("usage_date").is_in(days))
