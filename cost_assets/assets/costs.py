"""Cost layer: cluster timelines and per-run cost estimates (the pure engine in cost_assets.costing).

Assets here are thin: load the day's raw and reference frames, call the engine per day of the window,
write the frame, and judge it with checks (contract as a blocking ERROR; unpriced and sanity as WARN).
"""

import datetime as dt

import dagster as dg
import polars as pl

from cost_assets import schemas
from cost_assets.assets.raw import CLUSTER_EVENTS, CLUSTERS, DAILY_ASSET, JOB_RUNS, JOBS, PARTITIONED
from cost_assets.assets.reference import DBU_PRICES, INSTANCE_TYPES, snapshot
from cost_assets.checks import add_daily_metadata, contract_result, markdown_table
from cost_assets.costing import engine
from cost_assets.partitions import window_days
from cost_assets.resources.databricks import DatabricksWorkspace
from cost_assets.resources.prices import PriceCatalog
from cost_assets.resources.simulated import SimulatedWorkspace

CLUSTER_SEGMENTS = dg.AssetKey(["mart", "cluster_segments"])
RUN_COSTS = dg.AssetKey(["mart", "run_costs"])
RAW_INS = {"job_runs": dg.AssetIn(JOB_RUNS), "jobs": dg.AssetIn(JOBS), "clusters": dg.AssetIn(CLUSTERS),
           "events": dg.AssetIn(CLUSTER_EVENTS), "instance_types": dg.AssetIn(INSTANCE_TYPES),
           "dbu_prices": dg.AssetIn(DBU_PRICES)}
# Accuracy against the simulated world's ground truth (DESIGN §4): a run is "accurate" within 2 %.
ACCURACY_TOLERANCE = 0.02


def per_day(days: list[dt.date], build) -> pl.DataFrame:
    """Run the engine for each day of the window and stack the days (a single-run backfill)."""
    return pl.concat([build(day) for day in days], how="vertical_relaxed")


@dg.asset(
    key=CLUSTER_SEGMENTS, group_name="mart", kinds={"polars", "duckdb"}, metadata=PARTITIONED,
    ins={"clusters": dg.AssetIn(CLUSTERS), "events": dg.AssetIn(CLUSTER_EVENTS)},
    check_specs=[dg.AssetCheckSpec("contract", asset=CLUSTER_SEGMENTS, blocking=True)],
    pool="duckdb_writer", **DAILY_ASSET,
)
def cluster_segments(context: dg.AssetExecutionContext, clusters: pl.DataFrame, events: pl.DataFrame):
    """Each cluster's timeline as elementary segments (constant state and node counts), clipped to the day
    and cut at every hour: provisioned and ready workers, driver, on-demand vs spot, and whether VMs and
    DBUs are billable. Built from events (worker counts never from the config alone)."""
    days = window_days(context.partition_time_window)
    frame = per_day(days, lambda d: engine.segments_for_day(clusters, events, d))
    add_daily_metadata(context, frame, days, lambda f, _: {"clusters": f["cluster_id"].n_unique()})
    yield dg.Output(frame)
    yield contract_result(schemas.ClusterSegments, frame, CLUSTER_SEGMENTS)


def _unpriced_check(frame: pl.DataFrame, clusters: pl.DataFrame) -> dg.AssetCheckResult:
    """WARN when rows have no price: names the node types / SKUs and their hours (never a silent $0)."""
    bad = frame.filter(pl.col("unpriced"))
    node_types = clusters.unique("cluster_id", keep="last").select("cluster_id", "node_type_id", "driver_node_type_id")
    detail = (bad.join(node_types, on="cluster_id", how="left")
              .group_by("node_type_id", "driver_node_type_id", "sku_name")
              .agg(pl.col("runtime_hours").sum().round(3).alias("run_hours"), pl.col("cluster_id").n_unique()
                   .alias("clusters"), pl.len().alias("rows"))
              .sort("run_hours", descending=True))
    return dg.AssetCheckResult(
        check_name="priced", asset_key=RUN_COSTS, passed=bad.height == 0, severity=dg.AssetCheckSeverity.WARN,
        description=f"{bad.height} unpriced row(s)" if bad.height else "every row has a price",
        metadata={"unpriced_rows": bad.height, "unpriced": dg.MetadataValue.md(markdown_table(detail, 20))})


def _sanity_checks(context: dg.AssetExecutionContext, frame: pl.DataFrame, job_runs: pl.DataFrame,
                   days: list[dt.date]) -> list[dg.AssetCheckResult]:
    """The original calculator's sanity rules, per day, as WARN checks."""
    daily = (frame.group_by("usage_date").agg(pl.col("total_cost_usd").sum(), pl.col("dbu_cost_usd").sum())
             .sort("usage_date"))
    totals = {r["usage_date"]: r for r in daily.iter_rows(named=True)}
    days_with_runs = set(job_runs.filter(pl.col("cluster_id").is_not_null())["usage_date"].to_list())
    zero = [d for d in days if d in days_with_runs and not (totals.get(d) or {}).get("total_cost_usd")]
    share = {d: r["dbu_cost_usd"] / r["total_cost_usd"] for d, r in totals.items() if r["total_cost_usd"]}
    off_share = {str(d): round(s, 3) for d, s in share.items() if not 0.2 <= s <= 0.8}
    previous = _previous_totals(context, days[0])
    jumps = {}
    for d in days:
        today, before = (totals.get(d) or {}).get("total_cost_usd"), previous.get(d - dt.timedelta(days=1))
        if today and before and abs(today / before - 1) > 0.5:
            jumps[str(d)] = f"{before:,.2f} → {today:,.2f}"
        previous[d] = today
    warn = dg.AssetCheckSeverity.WARN
    return [
        dg.AssetCheckResult(check_name="nonzero_when_runs", asset_key=RUN_COSTS, passed=not zero, severity=warn,
                            metadata={"days_with_runs_but_no_cost": ", ".join(map(str, zero)) or "none"}),
        dg.AssetCheckResult(check_name="dbu_share_plausible", asset_key=RUN_COSTS, passed=not off_share,
                            severity=warn, description="DBU $ between 20 % and 80 % of the total",
                            metadata={"dbu_share_by_day": {str(d): round(s, 3) for d, s in share.items()},
                                      "outside": off_share or "none"}),
        dg.AssetCheckResult(check_name="day_over_day", asset_key=RUN_COSTS, passed=not jumps, severity=warn,
                            description="total changed by more than 50 % from the day before",
                            metadata={"jumps": jumps or "none"}),
    ]


def _previous_totals(context: dg.AssetExecutionContext, first: dt.date) -> dict:
    """The stored total of the day before the window: ``total_cost_usd`` of the latest materialization of
    that day's partition (each partition's metadata holds its own day's total)."""
    before = first - dt.timedelta(days=1)
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RUN_COSTS, asset_partitions=[before.isoformat()]), limit=1, ascending=False)
    for rec in records.records:
        entry = rec.asset_materialization.metadata.get("total_cost_usd") if rec.asset_materialization else None
        if entry is not None and entry.value is not None:
            return {before: float(entry.value)}
    return {}


def truth_accuracy(frame: pl.DataFrame, truth: pl.DataFrame) -> dict:
    """Share of runs whose estimated day cost is within 2 % of the ground truth (simulated world only);
    unrounded (``frame_metadata`` rounds by name)."""
    est = frame.filter(pl.col("consumer") == "run").group_by("usage_date", "run_id").agg(
        pl.col("total_cost_usd").sum().alias("estimated"))
    real = truth.filter(pl.col("consumer") == "run").group_by("usage_date", "run_id").agg(
        pl.col("total_cost_usd").sum().alias("truth"))
    both = real.join(est, on=["usage_date", "run_id"], how="left").with_columns(
        ((pl.col("estimated") - pl.col("truth")).abs() / pl.col("truth")).alias("error"))
    if both.height == 0:
        return {}
    return {"truth/runs": both.height,
            "truth/within_2pct_share": float((both["error"] <= ACCURACY_TOLERANCE).mean()),
            "truth/median_abs_error": float(both["error"].median()),
            "truth/estimated_usd": float(est["estimated"].sum()),
            "truth/true_usd": float(real["truth"].sum())}


def _cost_totals(frame: pl.DataFrame) -> dict:
    """The estimate's dollars (total, DBU, VM, idle) and its unpriced rows."""
    return {"total_cost_usd": float(frame["total_cost_usd"].sum() or 0.0),
            "dbu_cost_usd": float(frame["dbu_cost_usd"].sum() or 0.0),
            "vm_cost_usd": float(frame["vm_cost_usd"].sum() or 0.0),
            "idle_cost_usd": float(frame.filter(pl.col("consumer") == "idle")["total_cost_usd"].sum() or 0.0),
            "unpriced_rows": int(frame["unpriced"].sum())}


@dg.asset(
    key=RUN_COSTS, group_name="mart", kinds={"polars", "duckdb"}, metadata=PARTITIONED, ins=RAW_INS,
    check_specs=[dg.AssetCheckSpec("contract", asset=RUN_COSTS, blocking=True),
                 dg.AssetCheckSpec("priced", asset=RUN_COSTS, description="unpriced node types / SKUs"),
                 dg.AssetCheckSpec("nonzero_when_runs", asset=RUN_COSTS),
                 dg.AssetCheckSpec("dbu_share_plausible", asset=RUN_COSTS),
                 dg.AssetCheckSpec("day_over_day", asset=RUN_COSTS)],
    pool="duckdb_writer", **DAILY_ASSET,
)
def run_costs(context: dg.AssetExecutionContext, workspace: DatabricksWorkspace, prices: PriceCatalog,
              job_runs: pl.DataFrame, jobs: pl.DataFrame, clusters: pl.DataFrame, events: pl.DataFrame,
              instance_types: pl.DataFrame, dbu_prices: pl.DataFrame):
    """Estimated cost of every task run × cluster × day (DBUs, DBU $, VM $), shared clusters split per
    elementary interval among the runs active in it, plus one idle row per shared cluster × day. A job
    cluster's start-up and tear-down belong to its run."""
    days = window_days(context.partition_time_window)
    context.log.info(f"estimating {job_runs.height} task-run rows over {len(days)} day(s)")
    frame = per_day(days, lambda d: engine.run_costs(job_runs, jobs, clusters, events, snapshot(instance_types, d),
                                                    snapshot(dbu_prices, d), d, tier=prices.tier))
    truth = workspace.ground_truth_run_costs(days) if isinstance(workspace, SimulatedWorkspace) else None

    def day_totals(day_frame: pl.DataFrame, day: dt.date) -> dict:
        totals = _cost_totals(day_frame)
        if truth is not None:
            totals.update(truth_accuracy(day_frame, truth.filter(pl.col("usage_date") == day)))
        return totals

    add_daily_metadata(context, frame, days, day_totals)
    yield dg.Output(frame)
    yield contract_result(schemas.RunCosts, frame, RUN_COSTS)
    yield _unpriced_check(frame, clusters)
    yield from _sanity_checks(context, frame, job_runs, days)
