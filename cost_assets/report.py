"""Read-only summaries of the DuckDB warehouse (what `cost-assets run` prints), read through
:mod:`cost_assets.read`: a missing database or table, or a file held by a writer, is a ``WarehouseError``
that says so."""

import polars as pl

from cost_assets import read

# The tables the pipeline writes, in every schema it writes.
TABLES = """
select table_schema, table_name from information_schema.tables
where table_schema in ('raw', 'ref', 'mart') order by 1, 2
"""
# Rows of one of them (its quoted schema and name filled in: SQL has no placeholders for identifiers).
ROW_COUNT = "select count(*) from {schema}.{table}"

# Billed per day, from mart.reconciliation so there is one definition of "billed": the plain sum over all
# record types, priced at the effective $/DBU of the hour (the default cloud for rows without one).
BILLED_BY_DAY = """
select usage_date,
       sum(billed_dbus) as billed_dbus,
       sum(billed_cost_usd) as billed_usd,
       sum(case when unpriced then billed_dbus else 0 end) as unpriced_dbus
from mart.reconciliation
where usage_date between ? and ?
group by usage_date order by usage_date
"""

# The ledger per day: estimated run + idle cost (DBU + VM), billed $ handed to runs, idle and unattributed.
LEDGER_BY_DAY = """
with est as (
  select usage_date, sum(total_cost_usd) as estimated_usd from mart.run_costs
  where usage_date between ? and ? group by usage_date),
led as (
  select usage_date,
         sum(case when consumer = 'run' then billed_cost_usd else 0 end) as runs_usd,
         sum(case when consumer = 'idle' then billed_cost_usd else 0 end) as idle_usd,
         sum(case when consumer = 'unattributed' then billed_cost_usd else 0 end) as unattributed_usd
  from mart.attributed_costs where usage_date between ? and ? group by usage_date)
select coalesce(est.usage_date, led.usage_date) as usage_date, estimated_usd, runs_usd, idle_usd, unattributed_usd
from est full join led on est.usage_date = led.usage_date order by 1
"""

# Where each budget stands on the last day of the run (mart.budget_status exists only with budgets).
BUDGETS_ON = """
select budget, scope, period, amount_usd, spend_to_date_usd, forecast_usd, state, estimated_days, missing_days
from mart.budget_status where usage_date = ? order by budget
"""

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


def table_counts(database: str) -> pl.DataFrame:
    """Rows per table in every schema the pipeline writes."""
    with read.connect(database) as con:
        tables = con.execute(TABLES).fetchall()
        rows = []
        for s, t in tables:
            count = con.execute(ROW_COUNT.format(schema=read.quote(s), table=read.quote(t))).fetchone()[0]
            rows.append({"table": f"{s}.{t}", "rows": count})
    return pl.DataFrame(rows, schema={"table": pl.Utf8, "rows": pl.Int64})


def billed_by_day(database: str, first, last) -> pl.DataFrame:
    """Billed DBUs and dollars per usage date in [first, last]."""
    return read.fetch(database, BILLED_BY_DAY, [first, last]).cast(BILLED_SCHEMA)


def ledger_by_day(database: str, first, last) -> pl.DataFrame:
    """Per day: the estimate (DBU + VM $) and where the billed DBU dollars went."""
    return read.fetch(database, LEDGER_BY_DAY, [first, last, first, last]).cast(LEDGER_SCHEMA)


def budgets_on(database: str, day) -> pl.DataFrame | None:
    """Each budget's state on ``day``; None when no budgets are configured (no ``mart.budget_status``)."""
    try:
        return read.fetch(database, BUDGETS_ON, [day])
    except read.TableMissingError:
        return None
