"""The "top 10" markdown tables a roll-up's materialization shows in the Dagster UI (``mart/cost_by_scope``):
by team, by job, and the idle clusters, for one day. Pure polars; the asset wraps them as markdown metadata.

Money is the Databricks bill (DBU $) handed out, formatted like ``cost-assets report`` ($1,234.56), with each
row's share of the day's bill; the estimate of that bill (DBU $) stands beside it for comparison.
"""

import polars as pl

from cost_assets.reports.render import cell

TOP = 10


def _markdown(rows: pl.DataFrame, labels: dict[str, str]) -> str:
    if rows.is_empty():
        return "_nothing billed_"
    lines = ["| " + " | ".join(labels.values()) + " |", "|" + "---|" * len(labels)]
    for row in rows.iter_rows(named=True):
        lines.append("| " + " | ".join(cell(c, row[c]).replace("|", "\\|") for c in labels) + " |")
    return "\n".join(lines)


def top_values(scope_day: pl.DataFrame, dimension: str, n: int = TOP) -> str:
    """The ``n`` values of ``dimension`` with the most billed $ in one day of ``mart.cost_by_scope``."""
    rows = scope_day.filter(pl.col("dimension") == dimension)
    total = rows["billed_cost_usd"].sum()
    rows = (
        rows.group_by("value")
        .agg(pl.col("billed_cost_usd").sum().alias("billed_usd"), pl.col("estimated_cost_usd").sum().alias("est_usd"))
        .with_columns((pl.col("billed_usd") / total if total else pl.lit(None, pl.Float64)).alias("bill_share"))
        .sort(["billed_usd", "value"], descending=[True, False], nulls_last=True)
        .head(n)
    )
    labels = {"value": dimension, "billed_usd": "billed $ (bill, DBU)", "bill_share": "of bill"}
    return _markdown(rows, {**labels, "est_usd": "est. DBU $"})


def idle_clusters(attributed_day: pl.DataFrame, n: int = TOP) -> str:
    """The ``n`` clusters with the most billed idle $ in one day of ``mart.attributed_costs``."""
    total = attributed_day["billed_cost_usd"].sum()
    rows = (
        attributed_day.filter(pl.col("consumer") == "idle")
        .group_by("resource_id")
        .agg(pl.col("billed_cost_usd").sum().alias("idle_usd"))
        .filter(pl.col("idle_usd") > 0)
        .with_columns((pl.col("idle_usd") / total if total else pl.lit(None, pl.Float64)).alias("bill_share"))
        .sort(["idle_usd", "resource_id"], descending=[True, False])
        .head(n)
    )
    return _markdown(rows, {"resource_id": "cluster", "idle_usd": "idle billed $", "bill_share": "of bill"})


def day_tops(scope_day: pl.DataFrame, attributed_day: pl.DataFrame) -> dict[str, str]:
    """The three tables of one day, by metadata key."""
    return {
        "top_10_teams": top_values(scope_day, "team"),
        "top_10_jobs": top_values(scope_day, "job"),
        "top_10_idle_clusters": idle_clusters(attributed_day),
    }
