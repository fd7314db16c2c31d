"""Read-only summaries of the DuckDB warehouse (what `cost-assets run` prints)."""

import duckdb
import polars as pl

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


def table_counts(database: str) -> pl.DataFrame:
    """Rows per table in every schema the pipeline writes."""
    with duckdb.connect(database, read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('raw', 'ref', 'mart') order by 1, 2").fetchall()
        rows = [{"table": f"{s}.{t}", "rows": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0]}
                for s, t in tables]
    return pl.DataFrame(rows, schema={"table": pl.Utf8, "rows": pl.Int64})


def billed_by_day(database: str, first, last) -> pl.DataFrame:
    """Billed DBUs and dollars per usage date in [first, last]."""
    with duckdb.connect(database, read_only=True) as con:
        rows = con.execute(BILLED_BY_DAY, [first, last]).fetchall()
    return pl.DataFrame(rows, schema={"usage_date": pl.Date, "billed_dbus": pl.Float64, "billed_usd": pl.Float64,
                                      "unpriced_dbus": pl.Float64}, orient="row")


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


def ledger_by_day(database: str, first, last) -> pl.DataFrame:
    """Per day: the estimate (DBU + VM $) and where the billed DBU dollars went."""
    with duckdb.connect(database, read_only=True) as con:
        rows = con.execute(LEDGER_BY_DAY, [first, last, first, last]).fetchall()
    return pl.DataFrame(rows, schema={"usage_date": pl.Date, "estimated_usd": pl.Float64, "runs_usd": pl.Float64,
                                      "idle_usd": pl.Float64, "unattributed_usd": pl.Float64}, orient="row")
