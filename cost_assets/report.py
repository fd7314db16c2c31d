"""Read-only summaries of the DuckDB warehouse (what `cost-assets run` prints), read through
:mod:`cost_assets.read`: a missing database or table, or a file held by a writer, is a ``WarehouseError``
that says so. The daily figures and the budgets are the `cost-assets report` queries
(:mod:`cost_assets.reports.ledger`), so a number means the same in both places."""

import datetime as dt
from collections.abc import Sequence

import polars as pl

from cost_assets import read
from cost_assets.reports import ledger

# The tables the pipeline writes, in every schema it writes.
TABLES = """
select table_schema, table_name from information_schema.tables
where table_schema in ('raw', 'ref', 'mart') order by 1, 2
"""
# Rows of one of them (its quoted schema and name filled in: SQL has no placeholders for identifiers).
ROW_COUNT = "select count(*) from {schema}.{table}"

BILLED_SCHEMA = {
    "usage_date": pl.Date,
    "billed_dbus": pl.Float64,
    "billed_usd": pl.Float64,
    "unpriced_dbus": pl.Float64,
}
LEDGER_SCHEMA = {
    "usage_date": pl.Date,
    "estimated_usd": pl.Float64,
    "runs_usd": pl.Float64,
    "idle_usd": pl.Float64,
    "unattributed_usd": pl.Float64,
}


def table_counts(database: str, tables: Sequence[str] | None = None) -> pl.DataFrame:
    """Rows per table in every schema the pipeline writes (a Delta ledger on object storage cannot be listed:
    ``tables`` names the ``layer.table`` to count there)."""
    with read.connect(database, tables) as con:
        tables = con.execute(TABLES).fetchall()
        rows = []
        for s, t in tables:
            count = con.execute(ROW_COUNT.format(schema=read.quote(s), table=read.quote(t))).fetchone()[0]
            rows.append({"table": f"{s}.{t}", "rows": count})
    return pl.DataFrame(rows, schema={"table": pl.Utf8, "rows": pl.Int64})


def billed_by_day(database: str, first: dt.date, last: dt.date) -> pl.DataFrame:
    """Billed DBUs and dollars per usage date in [first, last] (days with a bill)."""
    days = ledger.daily(database, ledger.Window(first, last))
    return days.filter(pl.col("billed_dbus").is_not_null()).select(list(BILLED_SCHEMA)).cast(BILLED_SCHEMA)


def ledger_by_day(database: str, first: dt.date, last: dt.date) -> pl.DataFrame:
    """Per day: the estimate (DBU + VM $) and where the billed DBU dollars went."""
    days = ledger.daily(database, ledger.Window(first, last)).rename({"estimated_total_usd": "estimated_usd"})
    days = days.filter(pl.col("estimated_usd").is_not_null() | pl.col("runs_usd").is_not_null())
    return days.select(list(LEDGER_SCHEMA)).cast(LEDGER_SCHEMA)


def budgets_on(database: str, day: dt.date) -> pl.DataFrame | None:
    """Each budget's state on ``day``; None when no budgets are configured (no ``mart.budget_status``)."""
    report = ledger.budget(database, ledger.Window(day, day))
    return None if report.notes else report.tables["budgets"]
