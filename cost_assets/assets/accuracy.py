"""Simulation only: ``sim/run_cost_accuracy``, the estimate against the simulated world's ground truth.

``build_defs()`` registers this asset only when the workspace is the simulated one, so the production
assets never see the simulator; on a live workspace there is no truth to compare with.
"""

import dagster as dg
import polars as pl

from cost_assets import schemas
from cost_assets.assets.costs import RUN_COSTS
from cost_assets.assets.policies import DAILY_ASSET, PARTITIONED
from cost_assets.checks import CONTRACT_DESCRIPTION, add_daily_metadata, contract_result
from cost_assets.partitions import window_days
from cost_assets.resources.simulated import SimulatedWorkspace
from cost_assets.simulation import accuracy

RUN_COST_ACCURACY = dg.AssetKey(["sim", "run_cost_accuracy"])


@dg.asset(
    key=RUN_COST_ACCURACY,
    group_name="sim",
    kinds={"polars", "duckdb"},
    metadata=PARTITIONED,
    ins={"run_costs": dg.AssetIn(RUN_COSTS)},
    check_specs=[
        dg.AssetCheckSpec("contract", asset=RUN_COST_ACCURACY, blocking=True, description=CONTRACT_DESCRIPTION),
        dg.AssetCheckSpec(
            "runs_within_2pct",
            asset=RUN_COST_ACCURACY,
            description="≥ 95 % of runs within 2 % of the ground truth, every day",
        ),
    ],
    pool="duckdb_writer",
    **DAILY_ASSET,
)
def run_cost_accuracy(context: dg.AssetExecutionContext, workspace: SimulatedWorkspace, run_costs: pl.DataFrame):
    """Each job run's estimated day cost (``mart/run_costs``) against what it really cost in the simulated
    world, with the absolute relative error; per day the share of runs within 2 % (``truth/*`` metadata)."""
    days = window_days(context.partition_time_window)
    frame = accuracy.run_cost_accuracy(
        run_costs.filter(pl.col("usage_date").is_in(days)), workspace.ground_truth_run_costs(days)
    )
    add_daily_metadata(context, frame, days, lambda f, _: accuracy.day_summary(f))
    yield dg.Output(frame)
    yield contract_result(schemas.RunCostAccuracy, frame, RUN_COST_ACCURACY)
    shares = {
        str(d): accuracy.day_summary(frame.filter(pl.col("usage_date") == d)).get("truth/within_2pct_share")
        for d in days
    }
    low = {d: round(s, 4) for d, s in shares.items() if s is not None and s < accuracy.TARGET_SHARE}
    yield dg.AssetCheckResult(
        check_name="runs_within_2pct",
        asset_key=RUN_COST_ACCURACY,
        passed=not low,
        severity=dg.AssetCheckSeverity.WARN,
        description="every day has ≥ 95 % of runs within 2 % of the truth"
        if not low
        else f"{len(low)} day(s) below 95 % of runs within 2 %",
        metadata={
            "share_by_day": {d: None if s is None else round(s, 4) for d, s in shares.items()},
            "below_target": low or "none",
        },
    )
