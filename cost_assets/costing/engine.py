"""The cost engine's entry points: raw + reference frames for one day → ``mart`` tables.

Pure polars, no Dagster: assets call these functions and store what they return.

The estimate is computed once per day, in three steps that are also the assets' lineage:

* :func:`timeline_for_day` → the hour-cut cluster and pool timeline (see ``timeline.py``), spec timelines
  of purged clusters included (``spec.py``); :func:`stored_segments` is its ``mart/cluster_segments`` form
  (:func:`segments_for_day` both at once);
* :func:`estimate` → ``mart/estimated_costs``: the segments priced and shared out, at the grain the bill
  is reconciled at: cluster × hour × SKU × consumer, with each consumer's share of the cluster-hour;
* :func:`roll_up` → ``mart/run_costs``: the estimate summed per task run × cluster × day, plus one
  ``idle`` row per shared cluster (and per pool) × day.

:func:`cost_by_cluster_hour` and :func:`run_costs` chain those steps from the raw frames (tests, benchmarks);
they never build the stored form of the segments, which only the asset needs.

Input handling (why): frames may hold more than the day (a backfill reads a range), so every input is
reduced to the day by *time* rather than trusting one partition: task runs overlapping the day are
clipped to it and de-duplicated by ``task_run_id``; events before the day's end are all used (look-back
included) and de-duplicated; ``clusters``/``jobs`` take the snapshot nearest the day. Task runs
without a cluster (serverless, ``cluster_id`` null) are not in ``run_costs``: serverless cost is
attributed from the bill's usage metadata, never through a cluster timeline. A task run on a cluster
that has no event at all (no timeline can be built) is ``unpriced`` with null money: its cost is
unknown, not $0.

Scale: the day is processed in batches of clusters above :data:`SEGMENTS_PER_BATCH` segments (clusters
are independent, so the result is the same and peak memory follows the batch). A job cluster's run-free
money goes to its runs in consecutive stretches of its run-free hours (``allocate.py``), at most a row per run
and hour it takes money in.
The million-row frames are keyed by dense integers (cluster ``ck``, cluster-hour ``ck × 24 + hour``, run
row number) so that per-cluster, per-hour and per-run columns are gathered, not hash-joined. Speed and
memory against the bare polars sweep floor at 100k task runs, 10k clusters and 1M events on 2 threads:
``benchmarks/RESULTS.md``.
"""

import datetime as dt
from typing import NamedTuple

import numpy as np
import polars as pl

from cost_assets import schemas
from cost_assets.costing.allocate import allocate_keyed, shared_cluster_flags
from cost_assets.costing.frames import ENGINE, Frame, group_starts, lazy
from cost_assets.costing.price import MONEY_COLUMNS, price_segments_lazy
from cost_assets.costing.scope import resolve_tags
from cost_assets.costing.spec import with_spec_events
from cost_assets.costing.timeline import cluster_attributes, segment_core, stored_form
from cost_assets.costing.workspace_ids import qualified, shared_across_workspaces, unqualified
from cost_assets.timeutil import day_bounds

# The engine's output columns are the contracts' (the pandera models are the one source of truth).
RUN_COSTS_COLUMNS = list(schemas.RunCosts.to_schema().columns)
HOURLY_COLUMNS = list(schemas.EstimatedCosts.to_schema().columns)
# Clusters are processed in batches of about this many segments (bounded memory, same result).
SEGMENTS_PER_BATCH = 1_500_000
RUN_ATTRS = ["task_run_id", "run_id", "job_id", "task_key", "workspace_id"]
SLIM_COLUMNS = [
    "cluster_id",
    "segment_kind",
    "segment_start",
    "segment_end",
    "hour_start",
    "sku_name",
    *MONEY_COLUMNS,
    "unpriced",
]


def _nearest_snapshot(frame: Frame, key: list[str], day: dt.date) -> pl.LazyFrame:
    """One row per key: the snapshot whose usage_date is nearest the day (the day itself if present)."""
    distance = (pl.col("usage_date") - pl.lit(day)).dt.total_days().abs()
    return lazy(frame).sort(distance, descending=True).unique(key, keep="last", maintain_order=False)


def _day_runs(job_runs: Frame, day: dt.date) -> pl.DataFrame:
    """Task runs on a cluster overlapping the day, clipped to it, with a validated ``weight``."""
    start, end = day_bounds(day)
    runs = lazy(job_runs)
    has_weight = "weight" in runs.collect_schema().names()
    run_end = pl.coalesce("end_time", pl.lit(end, pl.Datetime("us")))
    clipped_start = pl.max_horizontal("start_time", pl.lit(start, pl.Datetime("us")))
    clipped_end = pl.min_horizontal(run_end, pl.lit(end, pl.Datetime("us")))
    out = (
        runs.filter(pl.col("cluster_id").is_not_null() & (pl.col("compute_type") != "serverless"))
        .filter(
            (clipped_end > clipped_start)
            | ((pl.col("start_time") == run_end) & (pl.col("start_time") >= start) & (pl.col("start_time") < end))
        )
        .sort("usage_date")
        .unique(["workspace_id", "task_run_id"], keep="last", maintain_order=False)
        .select(
            *RUN_ATTRS,
            "cluster_id",
            "compute_type",
            clipped_start.alias("run_start"),
            clipped_end.alias("run_end"),
            (pl.col("weight").cast(pl.Float64) if has_weight else pl.lit(1.0)).alias("weight"),
        )
        # In id order: the row number stands in for the id in the sweep, which orders runs that start together.
        .sort("task_run_id", "workspace_id")
        .collect(engine=ENGINE)
    )
    bad = out.filter(~(pl.col("weight") > 0))
    if bad.height:
        raise ValueError(f"job_runs.weight must be > 0 (task_run_id {bad['task_run_id'].head(10).to_list()})")
    return out


class Timeline(NamedTuple):
    """One day's timeline as the estimate uses it (the stored ``mart/cluster_segments`` form is wider).

    ``core``: segments with ``timeline.CORE_COLUMNS`` (kind and state as ``Enum`` codes), grouped by cluster
    and in time order within each; ``seen``: ``cluster_id, workspace_id`` of every cluster with a cluster
    segment on the day (a run on any other cluster has no timeline), the workspace from its events.
    """

    core: pl.DataFrame
    seen: pl.DataFrame
    # Its cluster and pool ids are qualified by workspace (two workspaces share one: ``workspace_ids.py``);
    # the estimate and the stored form then qualify their inputs alike and strip their outputs.
    qualified: bool = False


def _estimate(
    timeline: Timeline,
    job_runs: Frame,
    clusters: Frame,
    instance_types: Frame,
    dbu_prices: Frame,
    day: dt.date,
    tier: str,
    pools: Frame | None,
) -> pl.DataFrame:
    """The day's estimate, in batches of clusters.

    Clusters are independent (a cluster's cost only depends on its own events, prices and runs), so the
    day is processed in a few batches of clusters (by hash of the id): peak memory follows the batch,
    not the day, and the result is identical.
    """
    snapshot = _nearest_snapshot(clusters, ["cluster_id"], day).collect(engine=ENGINE)
    if pools is None:
        pools = pools_from_clusters(clusters)
    per_cluster = {
        "runs": _day_runs(job_runs, day),
        "clusters": snapshot,
        "attributes": cluster_attributes(snapshot, pools).collect(engine=ENGINE),
        "owners": _job_cluster_owners(snapshot.lazy()).collect(engine=ENGINE),
        "core": timeline.core,
        "seen": timeline.seen,
    }
    batches = max(1, -(-timeline.core.height // SEGMENTS_PER_BATCH))
    parts = []
    for k in range(batches):
        mine = _in_batch("cluster_id", k, batches)
        part = {name: frame.filter(mine) for name, frame in per_cluster.items()} if batches > 1 else per_cluster
        parts.append(_estimate_batch(**part, prices=(instance_types, dbu_prices, tier), day=day))
    return pl.concat(parts, how="vertical_relaxed") if batches > 1 else parts[0]


def _estimate_batch(
    core: pl.DataFrame,
    seen: pl.DataFrame,
    runs: pl.DataFrame,
    clusters: pl.DataFrame,
    attributes: pl.DataFrame,
    owners: pl.DataFrame,
    prices: tuple[Frame, Frame, str],
    day: dt.date,
) -> pl.DataFrame:
    """Prices → sweep → estimate rows for one batch of clusters.

    The allocation rows (one per consumer × run × cluster × hour, keyed by a dense cluster key ``ck``)
    already have the estimate's grain, so per-cluster and per-cluster-hour columns are gathered by index
    (``ck``; ``ck × 24 + hour``) instead of joined: at a million rows a hash join costs more than the rest.
    """
    # Slim path: the million-row frames carry only what the money needs; cluster-level attributes
    # (cloud, node types, workload, Photon) are joined per cluster × price epoch inside the pricing.
    priced = (
        price_segments_lazy(core, *prices[:2], prices[2], attributes=attributes)
        .select(SLIM_COLUMNS)
        .collect(engine=ENGINE)
    )
    # Segments arrive grouped by cluster and ordered in time: first rows are per-cluster facts
    # (the day's first SKU, "has cost"), found by a linear pass instead of a group-by.
    first, first_hour = _first_rows(priced)
    # Clusters with nodes whose disks have no price: their disk $ is unknown (null), never $0.
    disk_unknown = priced.filter(pl.col("disk_cost_usd").is_null() & ~pl.col("unpriced")).select("cluster_id").unique()
    flags = shared_cluster_flags(first, runs, clusters).collect(engine=ENGINE)
    # allocate treats task_run_id as an opaque key: given the run's row number, the run columns are
    # gathered by it afterwards instead of joined.
    rows, keys = allocate_keyed(priced, runs.with_columns(pl.int_range(pl.len()).alias("task_run_id")), flags)
    del priced
    # Per cluster key (row i is ck i): a cluster's workspace is the snapshot's, else its events'; a cluster
    # without a timeline on the day (no lifecycle event, or none that puts it up while its runs ran) cannot
    # say what its runs cost: unknown, not $0. Shared or not, and the run a job cluster's name gives it to.
    per_ck = (
        keys.lazy()
        .join(attributes.lazy().select("cluster_id", "workspace_id"), on="cluster_id", how="left")
        .join(
            seen.lazy().select("cluster_id", pl.col("workspace_id").alias("_ev_ws"), pl.lit(True).alias("_seen")),
            on="cluster_id",
            how="left",
        )
        .join(flags.lazy(), on="cluster_id", how="left")
        .join(owners.lazy(), on="cluster_id", how="left")
        .with_columns(pl.col("cluster_id").is_in(disk_unknown["cluster_id"].implode()).alias("_disk_unknown"))
        .select(
            "cluster_id",
            pl.coalesce("workspace_id", "_ev_ws").alias("_cluster_ws"),
            pl.col("_seen").fill_null(False),
            "_disk_unknown",
            "is_shared_cluster",
            "_owner_job",
            "_owner_run",
        )
        .sort(pl.int_range(pl.len()))  # keep the keys' order (the join may not)
        .collect(engine=ENGINE)
    )
    # Per cluster-hour (ck × 24 + hour of the day): the hour's first SKU, whether it has a segment, and the
    # hour's DBUs and $ over all its consumers (what each consumer's share is of).
    start, _ = day_bounds(day)
    hour_of_day = (pl.col("hour_start") - pl.lit(start, pl.Datetime("us"))).dt.total_hours()
    rows = rows.with_columns(hour_of_day.alias("_ckh"))
    lo, hi = rows.select(pl.col("_ckh").min().alias("lo"), pl.col("_ckh").max().alias("hi")).row(0)
    if rows.height and not (lo >= 0 and hi < 24):
        raise ValueError(f"estimate rows outside the day {day} (hour_start must fall on it)")
    rows = rows.with_columns((pl.col("ck").cast(pl.Int64) * 24 + pl.col("_ckh")).alias("_ckh"))
    # Cluster-hours are a dense index: their sums and first rows are scattered into arrays, not joined
    # (Float64 stated: numpy's bincount of no rows is an integer array).
    slots = keys.height * 24
    at = rows["_ckh"].to_numpy()
    total = rows.select(pl.col("dbu_cost_usd") + pl.col("vm_cost_usd") + pl.col("disk_cost_usd")).to_series()
    first = first_hour.join(keys, on="cluster_id").select(
        (pl.col("ck").cast(pl.Int64) * 24 + hour_of_day).alias("_ckh"), "sku_name"
    )
    per_hour = pl.DataFrame(
        [
            pl.repeat(None, slots, dtype=pl.String, eager=True)
            .scatter(first["_ckh"], first["sku_name"])
            .alias("sku_name"),
            pl.repeat(False, slots, eager=True).scatter(first["_ckh"], True).alias("_has_segment"),
            pl.Series("cluster_dbus", np.bincount(at, rows["dbus"].to_numpy(), slots), pl.Float64),
            pl.Series("cluster_total_cost_usd", np.bincount(at, total.to_numpy(), slots), pl.Float64),
        ]
    )
    run_cols = runs.select("task_run_id", "run_id", "job_id", "task_key", pl.col("workspace_id").alias("_run_ws"))
    rows = rows.with_columns(
        *[per_ck[c].gather(rows["ck"]) for c in per_ck.columns],
        *[per_hour[c].gather(rows["_ckh"]) for c in per_hour.columns],
        *[run_cols[c].gather(rows["task_run_id"]) for c in run_cols.columns],
    )
    out = (
        rows.lazy()
        .with_columns(
            pl.col("unpriced") | ((pl.col("consumer") == "run") & ~pl.col("_seen")),
            pl.when(~pl.col("_disk_unknown")).then(pl.col("disk_cost_usd")).alias("disk_cost_usd"),
            pl.when(pl.col("cluster_dbus") > 0).then(pl.col("dbus") / pl.col("cluster_dbus")).alias("dbu_share"),
            pl.when(pl.col("cluster_total_cost_usd") > 0)
            .then(total / pl.col("cluster_total_cost_usd"))
            .alias("cost_share"),
            pl.coalesce(pl.when(pl.col("_has_segment")).then(pl.col("_cluster_ws")), "_run_ws").alias("workspace_id"),
            pl.col("hour_start").dt.date().alias("usage_date"),
        )
        .pipe(_hand_job_cluster_idle_to_its_run)
        .pipe(_finish_money)
    )
    # Not sorted: at a million rows the sort would cost more than the rest of the step (order is not stored).
    return out.select(HOURLY_COLUMNS).collect(engine=ENGINE)


def _in_batch(column: str, k: int, batches: int) -> pl.Expr:
    """Stable batch of an id (same id → same batch in every frame of the process)."""
    return (pl.col(column).hash(seed=7) % batches) == k


def _first_rows(priced: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """First priced segment of each cluster and of each cluster-hour (one string comparison pass).

    ``unique`` keeps the keys unique even if the grouped order were ever broken.
    """
    cols = ["cluster_id", "hour_start", "segment_kind", "sku_name"]
    marks = priced.select(*cols, group_starts("cluster_id").alias("_c")).with_columns(
        (pl.col("_c") | group_starts("hour_start")).alias("_h")
    )
    first = marks.filter("_c").select(cols).unique("cluster_id", keep="first", maintain_order=True)
    first_hour = marks.filter("_h").select(cols).unique(["cluster_id", "hour_start"], keep="first", maintain_order=True)
    return first, first_hour


POOL_COLUMNS = ["pool_node_type_id", "pool_min_idle_instances", "pool_custom_tags"]


def pools_from_clusters(clusters: Frame) -> pl.DataFrame | None:
    """Idle instance-pool VMs per day, from the pool details on ``raw.clusters``: each pool the day's clusters
    draw from keeps its ``min_idle_instances`` warm all day (VM $, no DBUs). None when no cluster has a pool.

    The API shows only a pool's current idle count, never its history, so the configured minimum is the
    estimate (a pool's extra idle instances above it are not seen).
    """
    frame = lazy(clusters)
    if not set(POOL_COLUMNS) <= set(frame.collect_schema().names()):
        return None
    pools = (
        frame.filter(pl.col("pool_node_type_id").is_not_null())
        .group_by("usage_date", "instance_pool_id")
        .agg(
            pl.col("workspace_id").first(),
            pl.col("cloud").first(),
            pl.col("pool_node_type_id").first().alias("node_type_id"),
            pl.col("pool_min_idle_instances").max().fill_null(0).alias("idle_instances"),
            pl.col("pool_custom_tags").first().alias("custom_tags"),
        )
        .sort("usage_date", "instance_pool_id")
        .collect(engine=ENGINE)
    )
    return pools if pools.height else None


def pools_with_listed(clusters: Frame, listed: Frame) -> pl.DataFrame | None:
    """:func:`pools_from_clusters` plus the listed pools (``raw/instance_pools``) that no cluster of the day
    names (worker or driver pool): a warm pool nobody drew from still pays for ``min_idle_instances`` VMs all
    day. The pools clusters name keep the details from ``raw/clusters``, so their estimate is unchanged."""
    named = (
        lazy(clusters)
        .select("usage_date", "workspace_id", pl.concat_list("instance_pool_id", "driver_instance_pool_id").alias("p"))
        .explode("p")
        .drop_nulls("p")
        .rename({"p": "instance_pool_id"})
        .unique()
    )
    unused = (
        lazy(listed)
        .filter(pl.col("node_type_id").is_not_null())
        .join(named, on=["usage_date", "workspace_id", "instance_pool_id"], how="anti")
        .select(
            "usage_date",
            "instance_pool_id",
            pl.col("workspace_id").cast(pl.String),
            "cloud",
            "node_type_id",
            pl.col("min_idle_instances").cast(pl.Int64).alias("idle_instances"),
            "custom_tags",
        )
        .collect(engine=ENGINE)
    )
    used = pools_from_clusters(clusters)
    if not unused.height:
        return used
    both = unused if used is None else pl.concat([used, unused.select(used.columns)], how="vertical_relaxed")
    return both.sort("usage_date", "instance_pool_id")


def _job_cluster_owners(clusters: pl.LazyFrame) -> pl.LazyFrame:
    """Per job cluster, the job and run its name gives it to (Databricks names them ``job-<job>-run-<run>``)."""
    ids = pl.col("cluster_name").str.extract_groups(r"^job-(\d+)-run-(\d+)$")
    return (
        clusters.filter(pl.col("cluster_source") == "JOB")
        .select(
            "cluster_id",
            ids.struct.field("1").cast(pl.Int64).alias("_owner_job"),
            ids.struct.field("2").cast(pl.Int64).alias("_owner_run"),
        )
        .filter(pl.col("_owner_run").is_not_null())
    )


def _hand_job_cluster_idle_to_its_run(frame: pl.LazyFrame) -> pl.LazyFrame:
    """A job cluster belongs to its run even on a day without its tasks (a tear-down after midnight): its
    run-free money is that run's (``task_run_id`` null), never idle. Unnamed job clusters stay idle.
    ``frame`` carries the owner columns of :func:`_job_cluster_owners`."""
    move = (pl.col("consumer") == "idle") & pl.col("_owner_run").is_not_null()
    return frame.with_columns(
        pl.when(move).then(pl.lit("run")).otherwise(pl.col("consumer")).alias("consumer"),
        pl.when(move).then(pl.col("_owner_run")).otherwise(pl.col("run_id")).alias("run_id"),
        pl.when(move).then(pl.col("_owner_job")).otherwise(pl.col("job_id")).alias("job_id"),
    ).drop("_owner_job", "_owner_run")


def _finish_money(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Null every money column of an unpriced row (never $0) and add the total: DBU + VM + disk $ (a disk
    without a price is null in ``disk_cost_usd`` and flagged by the ``priced`` check, not counted as $0)."""
    priced = ~pl.col("unpriced")
    total = pl.col("dbu_cost_usd") + pl.col("vm_cost_usd") + pl.col("disk_cost_usd").fill_null(0.0)
    return frame.with_columns(
        *[pl.when(priced).then(pl.col(m)).alias(m) for m in MONEY_COLUMNS],
        pl.when(priced).then(total).alias("total_cost_usd"),
        pl.lit("USD").alias("currency_code"),
    )


def timeline_for_day(
    clusters: Frame, events: Frame, day: dt.date, pools: Frame | None = None, job_runs: Frame | None = None
) -> Timeline:
    """The day's :class:`Timeline`: the hour-cut cluster and pool timeline (``timeline.segment_core``).
    ``pools`` defaults to the pools on ``clusters`` (:func:`pools_from_clusters`); with ``job_runs``,
    clusters rebuilt from their run's spec get the spec's timeline (``spec.py``)."""
    start, end = day_bounds(day)
    shared = shared_across_workspaces(clusters, events, job_runs)
    if shared:  # ids two workspaces share: qualified by workspace until the output
        clusters, events, pools, job_runs = map(qualified, (clusters, events, pools, job_runs))
    snapshot = _nearest_snapshot(clusters, ["cluster_id"], day)
    if pools is None:
        pools = pools_from_clusters(clusters)
    if job_runs is not None:
        events = with_spec_events(snapshot, job_runs, events)
    core, workspaces = segment_core(snapshot, events, start, end, pools)
    # Segments come grouped by cluster (pools last): one linear pass finds the clusters with a segment.
    with_segment = core.filter(group_starts("cluster_id") & (pl.col("segment_kind") == "cluster")).select("cluster_id")
    seen = with_segment.join(workspaces, on="cluster_id", how="left", maintain_order="left")
    return Timeline(core, seen, shared)


def stored_segments(timeline: Timeline, clusters: Frame, day: dt.date, pools: Frame | None = None) -> pl.DataFrame:
    """``mart/cluster_segments`` rows of a :class:`Timeline` (``clusters`` and ``pools`` as given to
    :func:`timeline_for_day`): grouped by cluster and in time order within each."""
    if timeline.qualified:
        clusters, pools = qualified(clusters), qualified(pools)
    if pools is None:
        pools = pools_from_clusters(clusters)
    snapshot = _nearest_snapshot(clusters, ["cluster_id"], day)
    out = stored_form(timeline.core, timeline.seen, snapshot, pools).collect(engine=ENGINE)
    return unqualified(out) if timeline.qualified else out


def segments_for_day(
    clusters: Frame, events: Frame, day: dt.date, pools: Frame | None = None, job_runs: Frame | None = None
) -> pl.DataFrame:
    """``mart/cluster_segments`` for one day (:func:`timeline_for_day` in its stored form)."""
    return stored_segments(timeline_for_day(clusters, events, day, pools, job_runs), clusters, day, pools)


def estimate(
    timeline: Timeline,
    job_runs: Frame,
    clusters: Frame,
    instance_types: Frame,
    dbu_prices: Frame,
    day: dt.date,
    tier: str = "PREMIUM",
    pools: Frame | None = None,
) -> pl.DataFrame:
    """``mart/estimated_costs`` for one day: cluster × hour × SKU × consumer (columns :data:`HOURLY_COLUMNS`),
    estimated DBUs and $ and each consumer's share of the cluster-hour.

    ``timeline``: the day's :func:`timeline_for_day` (the stored ``mart/cluster_segments`` rows are its wider
    form, written beside the estimate, never read back).
    ``dbu_share`` / ``cost_share`` are the consumer's part of the cluster-hour's DBUs / total $ (null when the
    hour has none); reconciliation multiplies the billed amount of that cluster-hour by them. Money columns
    are null on unpriced rows; shares use the priced part only. A job cluster's run-free hours go to its runs
    (``task_run_id`` set), or, on a day without its runs, to the run its name gives it to (``task_run_id``
    null). Ids that two workspaces share are told apart by workspace (``workspace_ids.py``)."""
    if timeline.qualified:
        job_runs, clusters, pools = qualified(job_runs), qualified(clusters), qualified(pools)
        return unqualified(_estimate(timeline, job_runs, clusters, instance_types, dbu_prices, day, tier, pools))
    return _estimate(timeline, job_runs, clusters, instance_types, dbu_prices, day, tier, pools)


def roll_up(estimated: Frame, jobs: Frame, clusters: Frame, pools: Frame | None = None) -> pl.DataFrame:
    """``mart/run_costs`` from :func:`estimate` rows (any number of days): per day, one row per task run ×
    cluster and one ``idle`` row per cluster with run-free cost — always one per shared cluster and pool,
    $0 when runs filled every hour — with the tags resolved as on the attributed bill (job > cluster > pool).
    A row touching an unpriced hour has null money (never a partial sum)."""
    est = lazy(estimated)
    # A disk $ with an unknown part is unknown (null), never a partial sum.
    sums = [
        pl.when(pl.col(c).is_null().any()).then(None).otherwise(pl.col(c).sum()).alias(c)
        if c == "disk_cost_usd"
        else pl.col(c).sum()
        for c in ["runtime_hours", *MONEY_COLUMNS]
    ]
    # A cluster is (workspace, cluster id): two workspaces may share an id (``workspace_ids.py``).
    cluster = ["usage_date", "workspace_id", "cluster_id"]
    per_cluster = est.group_by(cluster).agg(
        pl.col("sku_name").sort_by("hour_start").first(),
        pl.col("is_shared_cluster").first().fill_null(True),
    )
    rows = est.group_by(*cluster, "consumer", "task_run_id").agg(
        *sums,
        pl.col("unpriced").any(),
        *[pl.col(c).drop_nulls().first() for c in ("run_id", "job_id", "task_key")],
    )
    # Shared clusters and pools always show their idle row (a job cluster's run-free money is its run's).
    idle = (
        per_cluster.filter(pl.col("is_shared_cluster"))
        .select(*cluster, pl.lit("idle").alias("consumer"))
        .join(rows.filter(pl.col("consumer") == "idle"), on=[*cluster, "consumer"], how="anti", nulls_equal=True)
        .with_columns(
            *[pl.lit(0.0).alias(c) for c in ["runtime_hours", *MONEY_COLUMNS]], pl.lit(False).alias("unpriced")
        )
    )
    out = (
        pl.concat([rows, idle], how="diagonal_relaxed")
        .join(per_cluster, on=cluster, how="left", nulls_equal=True)
        .pipe(_finish_money)
    )
    pool_tags = pools if pools is not None and "custom_tags" in lazy(pools).collect_schema().names() else None
    out = resolve_tags(out, jobs=jobs, clusters=clusters, pools=pool_tags)
    return (
        out.select(RUN_COSTS_COLUMNS)
        .sort(["usage_date", "cluster_id", "consumer", "task_run_id"], nulls_last=True)
        .collect(engine=ENGINE)
    )


def cost_by_cluster_hour(
    job_runs: Frame,
    clusters: Frame,
    events: Frame,
    instance_types: Frame,
    dbu_prices: Frame,
    day: dt.date,
    tier: str = "PREMIUM",
    pools: Frame | None = None,
) -> pl.DataFrame:
    """:func:`estimate` of the day straight from the raw frames (the timeline never takes its stored form)."""
    timeline = timeline_for_day(clusters, events, day, pools, job_runs)
    return estimate(timeline, job_runs, clusters, instance_types, dbu_prices, day, tier, pools)


def run_costs(
    job_runs: Frame,
    jobs: Frame,
    clusters: Frame,
    events: Frame,
    instance_types: Frame,
    dbu_prices: Frame,
    day: dt.date,
    tier: str = "PREMIUM",
    pools: Frame | None = None,
) -> pl.DataFrame:
    """``mart/run_costs`` for one day straight from the raw frames (columns :data:`RUN_COSTS_COLUMNS`)."""
    hourly = cost_by_cluster_hour(job_runs, clusters, events, instance_types, dbu_prices, day, tier, pools)
    return roll_up(hourly, jobs, clusters, pools)
