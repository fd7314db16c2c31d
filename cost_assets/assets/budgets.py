"""``mart/budget_status``: where each budget of ``COST_ASSETS_BUDGETS`` stands, per day (present only when
a budgets file is configured). The pure arithmetic is ``costing/budget_status.py``; the file is read and
validated when the definitions load (``cost_assets/budgets.py``)."""

import dagster as dg
import polars as pl

from cost_assets import schemas
from cost_assets.assets.costs import RUN_COSTS
from cost_assets.assets.policies import MART_ASSET, PARTITIONED
from cost_assets.assets.raw import BILLING_USAGE, CLUSTERS, JOBS
from cost_assets.assets.reconciliation import ATTRIBUTED_COSTS
from cost_assets.budgets import Budget, load
from cost_assets.checks import CONTRACT_DESCRIPTION, add_daily_metadata, contract_result
from cost_assets.costing.budget_status import LOOKBACK_DAYS, budget_status, spend_rows
from cost_assets.costing.closure import closed_days
from cost_assets.partitions import window_days

BUDGET_STATUS = dg.AssetKey(["mart", "budget_status"])
# Each day needs its period so far and the 28 days before it for the forecast's weekday profile.
LOOKBACK = dg.TimeWindowPartitionMapping(start_offset=-LOOKBACK_DAYS, end_offset=0)


class BudgetBook(dg.ConfigurableResource):
    """The budgets file (``COST_ASSETS_BUDGETS``); validated when the definitions load, read when a run starts."""

    path: str

    def budgets(self) -> list[Budget]:
        return load(self.path)


@dg.asset(
    key=BUDGET_STATUS,
    group_name="mart",
    kinds={"polars", "duckdb"},
    metadata=PARTITIONED,
    ins={
        "attributed": dg.AssetIn(ATTRIBUTED_COSTS, partition_mapping=LOOKBACK),
        "run_costs": dg.AssetIn(RUN_COSTS, partition_mapping=LOOKBACK),
        "jobs": dg.AssetIn(JOBS, partition_mapping=LOOKBACK),
        "clusters": dg.AssetIn(CLUSTERS, partition_mapping=LOOKBACK),
        "billing": dg.AssetIn(BILLING_USAGE, partition_mapping=LOOKBACK),
    },
    check_specs=[
        dg.AssetCheckSpec("contract", asset=BUDGET_STATUS, blocking=True, description=CONTRACT_DESCRIPTION),
        dg.AssetCheckSpec(
            "within_budget", asset=BUDGET_STATUS, description="WARN when a budget is exceeded or forecast to be"
        ),
    ],
    pool="duckdb_writer",
    **MART_ASSET,
)
def budget_status_asset(
    context: dg.AssetExecutionContext,
    budgets: BudgetBook,
    attributed: pl.DataFrame,
    run_costs: pl.DataFrame,
    jobs: pl.DataFrame,
    clusters: pl.DataFrame,
    billing: pl.DataFrame,
):
    """Per budget and day: period-to-date spend (the bill's attributed $ for closed days, the estimate of the
    same kind for days whose bill still lags, and which is which), the forecast to the period's end
    (trailing weekday profile), remaining, the state (ok / warning / exceeded / forecast_exceeded) and the
    date the highest crossed threshold was first crossed."""
    days = window_days(context.partition_time_window)
    closed = set(closed_days(billing).filter("closed")["usage_date"].to_list())
    frame = budget_status(spend_rows(attributed, run_costs, jobs, clusters, billing), closed, budgets.budgets(), days)
    add_daily_metadata(
        context,
        frame,
        days,
        lambda f, _: {
            "states": dg.MetadataValue.json(dict(f.group_by("state").len().sort("state").iter_rows())),
            "estimated_days": int(f["estimated_days"].max() or 0),
        },
    )
    yield dg.Output(frame)
    yield contract_result(schemas.BudgetStatus, frame, BUDGET_STATUS)
    over = frame.filter(pl.col("state").is_in(["exceeded", "forecast_exceeded"]))
    yield dg.AssetCheckResult(
        check_name="within_budget",
        asset_key=BUDGET_STATUS,
        passed=over.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description="every budget within its amount and forecast"
        if not over.height
        else "; ".join(sorted({f"{r['budget']}: {r['state']}" for r in over.iter_rows(named=True)})),
        metadata={"over": over.height},
    )
