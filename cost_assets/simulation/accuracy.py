"""The estimate against a simulated world's ground truth: how close each run's estimated cost is.

Only simulated worlds have a truth, so only the simulated deployment registers the asset that uses this
(``assets/accuracy.py``); production code never imports the simulator.
"""

import polars as pl

# A run is accurate when its estimated day cost is within 2 % of the truth; the target is 95 % of runs.
TOLERANCE = 0.02
TARGET_SHARE = 0.95


def run_cost_accuracy(run_costs: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Per day and job run: estimated vs true DBU + VM $ and the absolute relative error. The world's run
    truth has no disks, so the estimate's disk $ (in its ``total_cost_usd``) is left out here; the disks are
    measured against the simulated cloud bill (``vm_accuracy.py``).

    ``run_costs``: ``mart/run_costs`` rows; ``truth``: ``truth.run_costs`` rows of the same days. Every run
    the truth knows is a row; a run the estimate misses has a null estimate and counts as a 100 % error.
    """

    def day_cost(frame: pl.DataFrame, name: str, *extra: pl.Expr) -> pl.DataFrame:
        return (
            frame.filter(pl.col("consumer") == "run")
            .group_by("usage_date", "run_id")
            .agg(*extra, (pl.col("dbu_cost_usd") + pl.col("vm_cost_usd")).sum().alias(name))
        )

    estimated = day_cost(run_costs, "estimated_usd", pl.col("workspace_id").drop_nulls().first())
    error = (pl.col("estimated_usd") - pl.col("true_usd")).abs() / pl.col("true_usd")
    return (
        day_cost(truth, "true_usd")
        .join(estimated, on=["usage_date", "run_id"], how="left")
        .with_columns(
            pl.when(pl.col("estimated_usd").is_null())
            .then(1.0)  # missed by the estimate
            .when(pl.col("true_usd") > 0)
            .then(error)
            .otherwise((pl.col("estimated_usd") != 0).cast(pl.Float64))  # a free run: right only at $0
            .alias("abs_rel_error")
        )
        .with_columns((pl.col("abs_rel_error") <= TOLERANCE).alias("within_tolerance"))
        .select(
            "usage_date", "workspace_id", "run_id", "estimated_usd", "true_usd", "abs_rel_error", "within_tolerance"
        )
        .sort("usage_date", "run_id")
    )


def day_summary(day: pl.DataFrame) -> dict[str, float | int]:
    """One day's headline numbers (the ``truth/*`` metadata), unrounded."""
    if day.height == 0:
        return {"truth/runs": 0}
    return {
        "truth/runs": day.height,
        "truth/within_2pct_share": float(day["within_tolerance"].mean()),
        "truth/median_abs_error": float(day["abs_rel_error"].median()),
        "truth/estimated_usd": float(day["estimated_usd"].sum() or 0.0),
        "truth/true_usd": float(day["true_usd"].sum() or 0.0),
    }
