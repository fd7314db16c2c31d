"""Read-only summaries of the DuckDB warehouse (what `cost-assets run` prints), read through
:mod:`cost_assets.read`: a missing database or table, or a file held by a writer, is a ``WarehouseError``
that says so. The daily figures and the budgets are the `cost-assets report` queries
(:mod:`cost_assets.reports.ledger`), so a number means the same in both places."""

import datetime as dt
from collections.abc import Mapping, Sequence

import polars as pl

from cost_assets import read
from cost_assets.reports import ledger
from cost_assets.vocabulary import NOT_CONFIGURED

# The tables the pipeline writes, in every schema it writes.
TABLES = """
select table_schema, table_name from information_schema.tables
where table_schema in ('raw', 'ref', 'mart') order by 1, 2
"""
# What the bill handed out says of 'unattributed' when it holds no workspace the account leaves out.
SERVING_NOTE = [
    "  (model serving is in 'unattributed' here, as the bill names no run; its split per request:",
    "  mart/serving_costs, `cost-assets report serving`)",
]
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


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def _status(row: Mapping[str, object], names: Mapping[str, str]) -> str:
    if row["not_configured_usd"] is not None:
        return "not configured"
    return "ok" if row["workspace_id"] in names else "not listed"


def workspace_lines(database: str, first: dt.date, last: dt.date, names: Mapping[str, str]) -> list[str]:
    """The run summary's workspaces: id, name, status, job runs and billed $ of each, then the bill of the
    workspaces the account does not list on a line of its own. ``names``: the account's workspaces (id →
    name); with one workspace (empty ``names``) and no unlisted workspace, nothing: the summary stays as it
    was. Status ``ok``: a listed workspace (the summary follows a run that succeeded, and a workspace that
    could not be fetched fails the run); ``not configured``: billed, not listed (reason
    workspace_not_configured); ``not listed``: stored rows of a workspace the account no longer lists."""
    rows = ledger.workspaces(database, ledger.Window(first, last))
    unlisted = rows.filter(pl.col("not_configured_usd").is_not_null())
    if len(names) <= 1 and unlisted.is_empty():
        return []
    stored = set(rows["workspace_id"].to_list())
    nothing = [{"workspace_id": w, "runs": 0, "billed_usd": 0.0, "not_configured_usd": None} for w in names]
    listed = rows.filter(pl.col("not_configured_usd").is_null()).iter_rows(named=True)
    # Listed ones first (most billed first, then those with nothing stored), the unlisted ones last.
    every = [*listed, *(r for r in nothing if r["workspace_id"] not in stored), *unlisted.iter_rows(named=True)]
    width = max((len(n) for n in names.values()), default=1)
    lines = ["\nWorkspaces (billed DBU $ over the days; more: `cost-assets report top --by workspace`)"]
    for r in every:
        wid, billed = r["workspace_id"] or "(none)", _usd(r["billed_usd"])
        name, status = names.get(wid, "—"), _status(r, names)
        lines.append(f"  {wid:<18} {name:<{width}}  {status:<14} {r['runs']:>7,} runs  {billed:>14}")
    if not unlisted.is_empty():
        total = unlisted["not_configured_usd"].sum()
        lines.append(
            f"  workspaces not configured ({unlisted.height}; unattributed, reason {NOT_CONFIGURED}): {_usd(total)}"
        )
    return lines


def unattributed_note(database: str, first: dt.date, last: dt.date) -> list[str]:
    """What 'unattributed' holds, under the bill handed out: model serving (as always), and, when the bill
    names workspaces the account does not list, the split read from ``mart.attributed_costs.reason``:
    model serving $ + workspace_not_configured $ + other $ (warehouses, serverless without a run, …)."""
    by_reason = dict(ledger.unattributed(database, ledger.Window(first, last)).select("reason", "billed_usd").rows())
    if NOT_CONFIGURED not in by_reason:
        return SERVING_NOTE
    unlisted = by_reason.pop(NOT_CONFIGURED) or 0.0
    serving = by_reason.pop("serving", None) or 0.0
    other = sum(v or 0.0 for v in by_reason.values())
    return [
        f"  (unattributed {_usd(serving + unlisted + other)} = model serving {_usd(serving)} + {NOT_CONFIGURED} "
        f"{_usd(unlisted)} + other {_usd(other)};",
        "  model serving: the bill names no run, its split per request: mart/serving_costs, `cost-assets report "
        "serving`;",
        f"  {NOT_CONFIGURED}: workspaces the account does not list, nothing of them is fetched)",
    ]
