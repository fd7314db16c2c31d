"""The cost engine's entry points: raw + reference frames for one day → ``mart`` tables.

Pure polars, no Dagster: assets call these functions and store what they return.

* :func:`segments_for_day` → ``mart/cluster_segments`` (the timeline, see ``timeline.py``);
* :func:`run_costs` → ``mart/run_costs``: one row per task run × cluster × day, plus one ``idle`` row per
  shared cluster (and per pool) × day;
* :func:`cost_by_cluster_hour` → the hourly grain reconciliation hands the bill out with: cluster × hour
  × SKU × consumer, with each consumer's share of the cluster-hour.

Input handling (why): frames may hold more than the day (a backfill reads a range), so every input is
reduced to the day by *time* rather than trusting one partition: task runs overlapping the day are
clipped to it and de-duplicated by ``task_run_id``; events before the day's end are all used (look-back
included) and de-duplicated; ``clusters``/``jobs`` take the snapshot nearest the day. Task runs
without a cluster (serverless, ``cluster_id`` null) are not in ``run_costs``: serverless cost is
attributed from the bill's usage metadata, never through a cluster timeline. A task run on a cluster
that has no event at all (no timeline can be built) is ``unpriced`` with null money: its cost is
unknown, not $0.

Scale: the day is processed in batches of clusters above :data:`EVENTS_PER_BATCH` events (clusters are
independent, so the result is the same and peak memory follows the batch). ``run_costs`` hands job
clusters' run-free money to runs once per day; ``cost_by_cluster_hour`` does it per hour (same totals).
See ``benchmarks/RESULTS.md``: ~2–2.3× the bare polars sweep floor and ~0.7 GB peak at 100k task runs,
10k clusters and 1M events on 2 threads.
"""

import datetime as dt

import polars as pl

from cost_assets.costing.allocate import allocate, shared_cluster_flags
from cost_assets.costing.price import MONEY_COLUMNS, price_segments_lazy
from cost_assets.costing.scope import resolve_tags
from cost_assets.costing.spec import with_spec_events
from cost_assets.costing.timeline import (
    ENGINE,
    Frame,
    cluster_attributes,
    cluster_segments_lazy,
    group_starts,
    lazy,
    segment_core,
)
from cost_assets.schemas import TAG_COLUMNS
from cost_assets.timeutil import day_bounds

RUN_COSTS_COLUMNS = [
    "usage_date",
    "workspace_id",
    "consumer",
    "run_id",
    "task_run_id",
    "job_id",
    "task_key",
    "cluster_id",
    "sku_name",
    "is_shared_cluster",
    "runtime_hours",
    "dbus",
    "dbu_cost_usd",
    "vm_cost_usd",
    "total_cost_usd",
    "currency_code",
    "unpriced",
    "team",
    "tenant",
    "project",
    "cost_center",
]
HOURLY_COLUMNS = [
    "usage_date",
    "workspace_id",
    "cluster_id",
    "hour_start",
    "sku_name",
    "is_shared_cluster",
    "consumer",
    "run_id",
    "task_run_id",
    "job_id",
    "runtime_hours",
    *MONEY_COLUMNS,
    "total_cost_usd",
    "currency_code",
    "unpriced",
    "cluster_dbus",
    "cluster_total_cost_usd",
    "dbu_share",
    "cost_share",
]
# Clusters are processed in batches of about this many events (bounded memory, same result).
EVENTS_PER_BATCH = 1_500_000
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
        .unique("task_run_id", keep="last", maintain_order=False)
        .select(
            *RUN_ATTRS,
            "cluster_id",
            "compute_type",
            clipped_start.alias("run_start"),
            clipped_end.alias("run_end"),
            (pl.col("weight").cast(pl.Float64) if has_weight else pl.lit(1.0)).alias("weight"),
        )
        .collect(engine=ENGINE)
    )
    bad = out.filter(~(pl.col("weight") > 0))
    if bad.height:
        raise ValueError(f"job_runs.weight must be > 0 (task_run_id {bad['task_run_id'].head(10).to_list()})")
    return out


class _Day:
    """Everything the public functions share for one day, built once.

    Clusters are independent (a cluster's cost only depends on its own events, prices and runs), so the
    day is processed in a few batches of clusters (by hash of the id): peak memory follows the batch,
    not the day, and the result is identical. Only small results are kept per batch: the hourly
    allocation rows, the first priced segment per cluster and per cluster-hour (SKU, kind), and the
    clusters seen in the events.
    """

    def __init__(
        self,
        job_runs: Frame,
        jobs: Frame,
        clusters: Frame,
        events: Frame,
        instance_types: Frame,
        dbu_prices: Frame,
        day: dt.date,
        tier: str,
        pools: Frame | None,
        events_per_batch: int | None = None,
        hourly_handoff: bool = True,
    ) -> None:
        self.day = day
        start, end = day_bounds(day)
        self.clusters = _nearest_snapshot(clusters, ["cluster_id"], day).collect(engine=ENGINE)
        if pools is None:
            pools = pools_from_clusters(clusters)
        self.jobs = _nearest_snapshot(jobs, ["workspace_id", "job_id"], day)
        self.runs = _day_runs(job_runs, day)
        attributes = cluster_attributes(self.clusters, pools).collect(engine=ENGINE)
        events = lazy(with_spec_events(self.clusters, job_runs, events)).filter(pl.col("timestamp") < end)
        n_events = events.select(pl.len()).collect(engine=ENGINE).item()
        batches = max(1, -(-n_events // (events_per_batch or EVENTS_PER_BATCH)))
        parts: dict[str, list[pl.DataFrame]] = {"alloc": [], "first": [], "first_hour": [], "seen": [], "flags": []}
        for k in range(batches):
            mine = _in_batch("cluster_id", k, batches)
            part = self._batch(
                runs=self.runs.filter(mine),
                clusters=self.clusters.filter(mine),
                events=events.filter(mine),
                pools=None if pools is None else lazy(pools).filter(_in_batch("instance_pool_id", k, batches)),
                attributes=attributes.filter(mine),
                prices=(instance_types, dbu_prices, tier),
                window=(start, end),
                hourly_handoff=hourly_handoff,
            )
            for name, frame in part.items():
                parts[name].append(frame)
        self.alloc, self.first, self.first_hour, seen, self.flags = (
            pl.concat(parts[n], how="vertical_relaxed") for n in ("alloc", "first", "first_hour", "seen", "flags")
        )
        # Workspace per cluster: the snapshot's, else the events'.
        self.workspaces = (
            attributes.lazy()
            .select("cluster_id", "workspace_id")
            .join(seen.lazy().rename({"workspace_id": "_ev_ws"}), on="cluster_id", how="full", coalesce=True)
            .select("cluster_id", pl.coalesce("workspace_id", "_ev_ws").alias("workspace_id"))
            .collect(engine=ENGINE)
        )

    @staticmethod
    def _batch(runs, clusters, events, pools, attributes, prices, window, hourly_handoff) -> dict[str, pl.DataFrame]:
        """Timeline → prices → sweep for one batch of clusters; returns only the small results."""
        core, seen = segment_core(clusters, events, *window, pools)
        # Slim path: the million-row frames carry only what the money needs; cluster-level attributes
        # (cloud, node types, workload, Photon) are joined per cluster × price epoch inside the pricing.
        priced = (
            price_segments_lazy(core, *prices[:2], prices[2], attributes=attributes)
            .select(SLIM_COLUMNS)
            .collect(engine=ENGINE)
        )
        del core
        # Segments arrive grouped by cluster and ordered in time: first rows are per-cluster facts
        # (the day's first SKU, "has cost"), found by a linear pass instead of a group-by.
        first, first_hour = _first_rows(priced)
        flags = shared_cluster_flags(first, runs, clusters).collect(engine=ENGINE)
        # A cluster with no lifecycle event at all has no timeline: its runs' cost is unknown, not $0.
        no_timeline = ~pl.col("cluster_id").is_in(seen["cluster_id"].implode())
        alloc = allocate(priced, runs, flags, hourly_handoff).with_columns(
            pl.col("unpriced") | ((pl.col("consumer") == "run") & no_timeline)
        )
        return {
            "alloc": alloc,
            "first": first,
            "first_hour": first_hour,
            "seen": seen,
            "flags": flags,
        }

    def cluster_attrs(self) -> pl.LazyFrame:
        """Per cluster: workspace, SKU of the day (first priced one), shared flag and custom-tag columns."""
        # json_path_match, not json_decode: one malformed tag map must not fail the whole day.
        tags = self.clusters.lazy().select(
            "cluster_id", *[pl.col("custom_tags").str.json_path_match(f"$.{t}").alias(t) for t in TAG_COLUMNS]
        )
        # The day's SKU of a cluster is its first segment's (a cluster has one SKU unless the sheet renames it).
        seg = (
            self.first.lazy().select("cluster_id", "sku_name").join(self.workspaces.lazy(), on="cluster_id", how="left")
        )
        return seg.join(self.flags.lazy(), on="cluster_id", how="full", coalesce=True).join(
            tags, on="cluster_id", how="left"
        )


def _in_batch(column: str, k: int, batches: int) -> pl.Expr:
    """Stable batch of an id (same id → same batch in every frame of the process)."""
    return pl.lit(True) if batches == 1 else (pl.col(column).hash(seed=7) % batches) == k


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
        .agg(pl.col("workspace_id").first(), pl.col("cloud").first(),
             pl.col("pool_node_type_id").first().alias("node_type_id"),
             pl.col("pool_min_idle_instances").max().fill_null(0).alias("idle_instances"),
             pl.col("pool_custom_tags").first().alias("custom_tags"))
        .sort("usage_date", "instance_pool_id")
        .collect(engine=ENGINE)
    )
    return pools if pools.height else None


def _job_cluster_owners(clusters: pl.LazyFrame) -> pl.LazyFrame:
    """Per job cluster, the job and run its name gives it to (Databricks names them ``job-<job>-run-<run>``)."""
    ids = pl.col("cluster_name").str.extract_groups(r"^job-(\d+)-run-(\d+)$")
    return (
        clusters.filter(pl.col("cluster_source") == "JOB")
        .select("cluster_id", ids.struct.field("1").cast(pl.Int64).alias("_owner_job"),
                ids.struct.field("2").cast(pl.Int64).alias("_owner_run"))
        .filter(pl.col("_owner_run").is_not_null())
    )


def _hand_job_cluster_idle_to_its_run(frame: pl.LazyFrame, clusters: pl.LazyFrame) -> pl.LazyFrame:
    """A job cluster belongs to its run even on a day without its tasks (a tear-down after midnight): its
    run-free money is that run's (``task_run_id`` null), never idle. Unnamed job clusters stay idle."""
    move = (pl.col("consumer") == "idle") & pl.col("_owner_run").is_not_null()
    return (
        frame.join(_job_cluster_owners(clusters), on="cluster_id", how="left")
        .with_columns(
            pl.when(move).then(pl.lit("run")).otherwise(pl.col("consumer")).alias("consumer"),
            pl.when(move).then(pl.col("_owner_run")).otherwise(pl.col("run_id")).alias("run_id"),
            pl.when(move).then(pl.col("_owner_job")).otherwise(pl.col("job_id")).alias("job_id"),
        )
        .drop("_owner_job", "_owner_run")
    )


def _finish_money(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Null every money column of an unpriced row (never $0) and add the total."""
    priced = ~pl.col("unpriced")
    return frame.with_columns(
        *[pl.when(priced).then(pl.col(m)).alias(m) for m in MONEY_COLUMNS],
        pl.when(priced).then(pl.col("dbu_cost_usd") + pl.col("vm_cost_usd")).alias("total_cost_usd"),
        pl.lit("USD").alias("currency_code"),
    )


def segments_for_day(clusters: Frame, events: Frame, day: dt.date, pools: Frame | None = None,
                     job_runs: Frame | None = None) -> pl.DataFrame:
    """``mart/cluster_segments`` for one day: the hour-cut cluster (and pool) timeline. With ``job_runs``,
    clusters rebuilt from their run's spec get the spec's timeline (``spec.py``), as in the estimate."""
    start, end = day_bounds(day)
    snapshot = _nearest_snapshot(clusters, ["cluster_id"], day)
    if job_runs is not None:
        events = with_spec_events(snapshot, job_runs, events)
    return (
        cluster_segments_lazy(snapshot, events, start, end, pools)
        .sort(["cluster_id", "segment_start"])
        .collect(engine=ENGINE)
    )


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
    """``mart/run_costs`` for one day (columns :data:`RUN_COSTS_COLUMNS`, see module doc)."""
    d = _Day(job_runs, jobs, clusters, events, instance_types, dbu_prices, day, tier, pools, hourly_handoff=False)
    attrs = d.cluster_attrs()
    sums = [pl.col(c).sum() for c in ["runtime_hours", *MONEY_COLUMNS]]
    alloc = d.alloc.lazy()
    run_rows = (
        alloc.filter(pl.col("consumer") == "run")
        .group_by("cluster_id", "task_run_id")
        .agg(*sums, pl.col("unpriced").any())
        .join(d.runs.lazy().select(*RUN_ATTRS, "cluster_id"), on=["cluster_id", "task_run_id"], how="left")
        .join(attrs.select("cluster_id", "sku_name", "is_shared_cluster"), on="cluster_id", how="left")
        .with_columns(pl.lit("run").alias("consumer"))
    )
    idle_sums = alloc.filter(pl.col("consumer") == "idle").group_by("cluster_id").agg(*sums, pl.col("unpriced").any())
    with_cost = d.first.lazy().select("cluster_id")
    has_runs = d.runs.lazy().select("cluster_id").unique().with_columns(pl.lit(True).alias("_has_runs"))
    # Shared clusters always get their idle row; a job cluster only when no run of the day took its cost.
    idle_rows = (
        attrs.join(with_cost, on="cluster_id", how="semi")
        .join(has_runs, on="cluster_id", how="left")
        .filter(pl.col("is_shared_cluster").fill_null(True) | pl.col("_has_runs").is_null())
        .join(idle_sums, on="cluster_id", how="left")
        .with_columns(
            *[pl.col(c).fill_null(0.0) for c in ["runtime_hours", *MONEY_COLUMNS]],
            pl.col("unpriced").fill_null(False),
            pl.lit("idle").alias("consumer"),
            *[pl.lit(None, pl.Int64).alias(c) for c in ["run_id", "task_run_id", "job_id"]],
            pl.lit(None, pl.String).alias("task_key"),
        )
    )
    out = pl.concat([run_rows.pipe(_finish_money), idle_rows.drop(TAG_COLUMNS, strict=False).pipe(_finish_money)],
                    how="diagonal_relaxed").with_columns(pl.lit(d.day).alias("usage_date"))
    # The same tag precedence as the attributed bill (job > cluster > pool), so both tables agree.
    out = _hand_job_cluster_idle_to_its_run(out, d.clusters.lazy())
    pool_tags = pools if pools is not None and "custom_tags" in lazy(pools).collect_schema().names() else None
    out = resolve_tags(out, jobs=jobs, clusters=clusters, pools=pool_tags)
    return (
        out.with_columns(pl.col("is_shared_cluster").fill_null(True))
        .select(RUN_COSTS_COLUMNS)
        .sort(["cluster_id", "consumer", "task_run_id"], nulls_last=True)
        .collect(engine=ENGINE)
    )


def cost_by_cluster_hour(
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
    """Cluster × hour × SKU × consumer: estimated DBUs and $ and each consumer's share of the hour.

    ``dbu_share`` / ``cost_share`` are the consumer's part of the cluster-hour's DBUs / total $ (null when
    the hour has none); reconciliation multiplies the billed amount of that cluster-hour by them.
    Money columns are null on unpriced rows; shares use the priced part only.
    """
    d = _Day(job_runs, jobs, clusters, events, instance_types, dbu_prices, day, tier, pools)
    sku_hour = (
        d.first_hour.lazy()
        .select("cluster_id", "hour_start", "sku_name")
        .join(d.workspaces.lazy(), on="cluster_id", how="left")
    )
    total = pl.col("dbu_cost_usd") + pl.col("vm_cost_usd")
    hour = ["cluster_id", "hour_start"]
    rows = (
        d.alloc.lazy()
        .group_by(*hour, "consumer", "task_run_id")
        .agg(*[pl.col(c).sum() for c in ["runtime_hours", *MONEY_COLUMNS]], pl.col("unpriced").any())
        .with_columns(
            pl.col("dbus").sum().over(hour).alias("cluster_dbus"),
            total.sum().over(hour).alias("cluster_total_cost_usd"),
        )
        .with_columns(
            pl.when(pl.col("cluster_dbus") > 0).then(pl.col("dbus") / pl.col("cluster_dbus")).alias("dbu_share"),
            pl.when(pl.col("cluster_total_cost_usd") > 0)
            .then(total / pl.col("cluster_total_cost_usd"))
            .alias("cost_share"),
        )
        .join(sku_hour, on=hour, how="left")
        .join(
            d.runs.lazy().select("task_run_id", "run_id", "job_id", pl.col("workspace_id").alias("_run_ws")),
            on="task_run_id",
            how="left",
        )
        .join(d.flags.lazy(), on="cluster_id", how="left")
        .with_columns(
            pl.coalesce("workspace_id", "_run_ws").alias("workspace_id"),
            pl.col("hour_start").dt.date().alias("usage_date"),
        )
        .pipe(_hand_job_cluster_idle_to_its_run, d.clusters.lazy())
        .pipe(_finish_money)
    )
    return rows.select(HOURLY_COLUMNS).sort([*hour, "consumer", "task_run_id"], nulls_last=True).collect(engine=ENGINE)
