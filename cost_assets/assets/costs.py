"""Cost layer: the estimate, computed once per day (the pure engine in cost_assets.costing).

raw tables → ``mart/cluster_segments`` (the timeline) → ``mart/estimated_costs`` (priced and shared out,
cluster × hour × SKU × consumer) → ``mart/run_costs`` (its daily roll-up per task run), three tables of one
step so that the next never reads a million-row table back. Reconciliation reads ``mart/estimated_costs``.
Assets here are thin: load the frames, call the engine per day of the
window, write the frame, and judge it with checks (contract as a blocking ERROR; unpriced and sanity as
WARN).
"""

import datetime as dt

import dagster as dg
import polars as pl

from cost_assets import schemas
from cost_assets.assets.guarded import stored_rows
from cost_assets.assets.policies import DAILY_ASSET, MART_FRESHNESS, PARTITIONED
from cost_assets.assets.raw import CLUSTER_EVENTS, CLUSTERS, INSTANCE_POOLS, JOB_RUNS, JOBS
from cost_assets.assets.reference import DBU_PRICES, INSTANCE_TYPES, snapshot
from cost_assets.checks import CONTRACT_DESCRIPTION, add_daily_metadata, contract_result, markdown_table
from cost_assets.costing import engine
from cost_assets.ingest import parse
from cost_assets.partitions import window_days
from cost_assets.resources.prices import PriceCatalog
from cost_assets.resources.warehouse import ADDED_COLUMNS, Ledger

CLUSTER_SEGMENTS = dg.AssetKey(["mart", "cluster_segments"])
ESTIMATED_COSTS = dg.AssetKey(["mart", "estimated_costs"])
RUN_COSTS = dg.AssetKey(["mart", "run_costs"])


def per_day(days: list[dt.date], build) -> pl.DataFrame:
    """Run the engine for each day of the window and stack the days (a single-run backfill)."""
    return pl.concat([build(day) for day in days], how="vertical_relaxed")


def _unpriced_check(frame: pl.DataFrame, clusters: pl.DataFrame) -> dg.AssetCheckResult:
    """WARN when rows have no price: names the node types / SKUs and their hours (never a silent $0). A node
    type without a disk price leaves only the row's disk $ unknown (``disk_cost_usd`` null): named too."""
    no_disk = ~pl.col("unpriced") & pl.col("disk_cost_usd").is_null()
    bad = frame.filter(pl.col("unpriced") | no_disk)
    node_types = clusters.unique("cluster_id", keep="last").select("cluster_id", "node_type_id", "driver_node_type_id")
    detail = (
        bad.join(node_types, on="cluster_id", how="left")
        .group_by("node_type_id", "driver_node_type_id", "sku_name", no_disk.alias("disk_price_only"))
        .agg(
            pl.col("runtime_hours").sum().round(3).alias("run_hours"),
            pl.col("cluster_id").n_unique().alias("clusters"),
            pl.len().alias("rows"),
        )
        .sort("run_hours", descending=True)
    )
    return dg.AssetCheckResult(
        check_name="priced",
        asset_key=RUN_COSTS,
        passed=bad.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{bad.height} unpriced row(s) (disk price only: {bad.filter(no_disk).height})"
        if bad.height
        else "every row has a price",
        metadata={
            "unpriced_rows": bad.height,
            "disk_unpriced_rows": bad.filter(no_disk).height,
            "unpriced": dg.MetadataValue.md(markdown_table(detail, 20)),
        },
    )


def _sanity_checks(
    context: dg.AssetExecutionContext, frame: pl.DataFrame, job_runs: pl.DataFrame, days: list[dt.date]
) -> list[dg.AssetCheckResult]:
    """The original calculator's sanity rules, per day, as WARN checks."""
    daily = (
        frame.group_by("usage_date")
        .agg(pl.col("total_cost_usd").sum(), pl.col("dbu_cost_usd").sum())
        .sort("usage_date")
    )
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
        dg.AssetCheckResult(
            check_name="nonzero_when_runs",
            asset_key=RUN_COSTS,
            passed=not zero,
            severity=warn,
            metadata={"days_with_runs_but_no_cost": ", ".join(map(str, zero)) or "none"},
        ),
        dg.AssetCheckResult(
            check_name="dbu_share_plausible",
            asset_key=RUN_COSTS,
            passed=not off_share,
            severity=warn,
            description="DBU $ between 20 % and 80 % of the total",
            metadata={
                "dbu_share_by_day": {str(d): round(s, 3) for d, s in share.items()},
                "outside": off_share or "none",
            },
        ),
        dg.AssetCheckResult(
            check_name="day_over_day",
            asset_key=RUN_COSTS,
            passed=not jumps,
            severity=warn,
            description="total changed by more than 50 % from the day before",
            metadata={"jumps": jumps or "none"},
        ),
    ]


def _previous_totals(context: dg.AssetExecutionContext, first: dt.date) -> dict:
    """The stored total of the day before the window: ``total_cost_usd`` of the latest materialization of
    that day's partition (each partition's metadata holds its own day's total)."""
    before = first - dt.timedelta(days=1)
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RUN_COSTS, asset_partitions=[before.isoformat()]), limit=1, ascending=False
    )
    for rec in records.records:
        entry = rec.asset_materialization.metadata.get("total_cost_usd") if rec.asset_materialization else None
        if entry is not None and entry.value is not None:
            return {before: float(entry.value)}
    return {}


def _cost_totals(frame: pl.DataFrame) -> dict:
    """The estimate's dollars (total, DBU, VM, idle) and its unpriced rows."""
    return {
        "total_cost_usd": float(frame["total_cost_usd"].sum() or 0.0),
        "dbu_cost_usd": float(frame["dbu_cost_usd"].sum() or 0.0),
        "vm_cost_usd": float(frame["vm_cost_usd"].sum() or 0.0),
        "disk_cost_usd": float(frame["disk_cost_usd"].sum() or 0.0),
        "idle_cost_usd": float(frame.filter(pl.col("consumer") == "idle")["total_cost_usd"].sum() or 0.0),
        "unpriced_rows": int(frame["unpriced"].sum()),
    }


_MART = {
    "group_name": "mart",
    "kinds": {"polars", "duckdb"},
    "metadata": PARTITIONED,
    "freshness_policy": MART_FRESHNESS,
}


@dg.multi_asset(
    outs={
        "cluster_segments": dg.AssetOut(
            key=CLUSTER_SEGMENTS,
            **_MART,
            description="Each cluster's (and warm pool's) timeline as elementary segments (constant state and "
            "node counts), clipped to the day and cut at every hour: provisioned and ready workers, driver, "
            "on-demand vs spot, and whether VMs and DBUs are billable. Built from events (worker counts never "
            "from the config alone); a purged cluster without events from its run's spec.",
        ),
        "estimated_costs": dg.AssetOut(
            key=ESTIMATED_COSTS,
            **{**_MART, "metadata": {**PARTITIONED, ADDED_COLUMNS: ["disk_cost_usd"]}},
            description="The estimate at the bill's grain: cluster (or pool) × hour × SKU × consumer with DBUs, "
            "DBU $ (list, contract, effective), VM $ and the nodes' disk $, and each consumer's share of the "
            "cluster-hour. Shared "
            "clusters are split per elementary interval among the task runs active in it; run-free time is "
            "idle, except on a job cluster, whose start-up and tear-down belong to its run. Each day is priced "
            "with its own price snapshot.",
        ),
        "run_costs": dg.AssetOut(
            key=RUN_COSTS,
            **{**_MART, "metadata": {**PARTITIONED, ADDED_COLUMNS: ["disk_cost_usd"]}},
            description="Estimated cost of every task run × cluster × day (DBUs, DBU $, VM $, disk $): the estimate "
            "summed per run, plus one idle row per shared cluster and warm pool × day, with team, tenant, "
            "project and cost_center resolved as on the attributed bill.",
        ),
    },
    ins={
        "job_runs": dg.AssetIn(JOB_RUNS),
        "jobs": dg.AssetIn(JOBS),
        "clusters": dg.AssetIn(CLUSTERS),
        "events": dg.AssetIn(CLUSTER_EVENTS),
        "instance_types": dg.AssetIn(INSTANCE_TYPES),
        "dbu_prices": dg.AssetIn(DBU_PRICES),
    },
    # Read from the ledger, not as an input: a ledger from before the table has none (no unused pools then).
    deps=[INSTANCE_POOLS],
    # How a dollar flows (the UI's lineage): the timeline, then the estimate from it, then its roll-up.
    internal_asset_deps={
        "cluster_segments": {CLUSTERS, CLUSTER_EVENTS, JOB_RUNS, INSTANCE_POOLS},
        "estimated_costs": {CLUSTER_SEGMENTS, JOB_RUNS, CLUSTERS, INSTANCE_POOLS, INSTANCE_TYPES, DBU_PRICES},
        "run_costs": {ESTIMATED_COSTS, JOB_RUNS, JOBS, CLUSTERS},
    },
    check_specs=[
        dg.AssetCheckSpec("contract", asset=CLUSTER_SEGMENTS, blocking=True, description=CONTRACT_DESCRIPTION),
        dg.AssetCheckSpec("contract", asset=ESTIMATED_COSTS, blocking=True, description=CONTRACT_DESCRIPTION),
        dg.AssetCheckSpec("contract", asset=RUN_COSTS, blocking=True, description=CONTRACT_DESCRIPTION),
        dg.AssetCheckSpec(
            "priced",
            asset=RUN_COSTS,
            description="WARN: rows whose node type, SKU or node disks have no price ($ null, never $0)",
        ),
        dg.AssetCheckSpec(
            "nonzero_when_runs", asset=RUN_COSTS, description="WARN: a day with job runs on clusters but $0 estimated"
        ),
        dg.AssetCheckSpec(
            "dbu_share_plausible",
            asset=RUN_COSTS,
            description="WARN: the estimate's DBU $ outside 20–80 % of its DBU + VM $ on a day",
        ),
        dg.AssetCheckSpec(
            "day_over_day", asset=RUN_COSTS, description="WARN: the estimate (DBU + VM $) moved > 50 % in a day"
        ),
    ],
    pool="duckdb_writer",
    **DAILY_ASSET,
)
def estimate(
    context: dg.AssetExecutionContext,
    prices: PriceCatalog,
    ledger: Ledger,
    job_runs: pl.DataFrame,
    jobs: pl.DataFrame,
    clusters: pl.DataFrame,
    events: pl.DataFrame,
    instance_types: pl.DataFrame,
    dbu_prices: pl.DataFrame,
):
    """The day's estimate, once: segments → estimated costs → run costs. One step, so that neither million-row
    table is read back from storage by the next; each table still has its own contract and metadata."""
    days = window_days(context.partition_time_window)
    context.log.info(
        f"estimating {job_runs.height:,} task-run rows and {events.height:,} events over {len(days)} day(s)"
    )
    # Warm pools no cluster draws from are estimated too (idle VMs), from raw/instance_pools where stored.
    listed = stored_rows(ledger, INSTANCE_POOLS, days, parse.instance_pools_frame([], days[0], "", ""))
    pools = engine.pools_with_listed(clusters, listed)
    # The estimate works on each day's timeline as computed; the stored segments are its wider form.
    timelines = {d: engine.timeline_for_day(clusters, events, d, pools, job_runs) for d in days}
    segments = per_day(days, lambda d: engine.stored_segments(timelines[d], clusters, d, pools))
    add_daily_metadata(
        context,
        segments,
        days,
        lambda f, _: {
            "clusters": f.filter(pl.col("segment_kind") == "cluster")["cluster_id"].n_unique(),
            "pools": f.filter(pl.col("segment_kind") == "pool")["cluster_id"].n_unique(),
        },
        output_name="cluster_segments",
    )
    yield dg.Output(segments, output_name="cluster_segments")
    yield contract_result(schemas.ClusterSegments, segments, CLUSTER_SEGMENTS)

    estimated = per_day(
        days,
        lambda d: engine.estimate(
            timelines.pop(d),
            job_runs,
            clusters,
            snapshot(instance_types, d),
            snapshot(dbu_prices, d),
            d,
            prices.tier,
            pools,
        ),
    )
    add_daily_metadata(context, estimated, days, lambda f, _: _cost_totals(f), output_name="estimated_costs")
    yield dg.Output(estimated, output_name="estimated_costs")
    yield contract_result(schemas.EstimatedCosts, estimated, ESTIMATED_COSTS)

    frame = engine.roll_up(estimated, jobs, clusters)
    add_daily_metadata(context, frame, days, lambda f, _: _cost_totals(f), output_name="run_costs")
    yield dg.Output(frame, output_name="run_costs")
    yield contract_result(schemas.RunCosts, frame, RUN_COSTS)
    yield _unpriced_check(frame, clusters)
    yield from _sanity_checks(context, frame, job_runs, days)
