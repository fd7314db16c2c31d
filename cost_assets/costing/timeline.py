"""Cluster timeline: raw cluster events → elementary segments of constant state and node counts.

A segment is the unit every later step prices and shares: within it the cluster's state, its
provisioned/ready worker counts and its on-demand/spot split are constant, so cost is a constant rate
times its duration. Segments are clipped to the window ``[day_start, day_end)`` and cut at every hour
boundary, because the bill is hourly and reconciliation compares hour by hour.

Rules (DESIGN §4, reference §2.2 and §8 pitfalls 5–7), chosen where the model leaves room:

* **State machine.** CREATING / STARTING / RESTARTING / RUNNING / RESIZING switch the cluster *up*;
  UPSIZE_COMPLETED and ADD_NODES_FAILED end a resize (state RUNNING); TERMINATING switches it *down*.
  Other events (NODES_LOST, DECOMMISSION_*, …) keep the state. Only *up* segments are emitted: a down
  cluster costs nothing, so a terminated stretch has no row.
* **Billing flags.** ``vm_billable`` for every up state (VMs are paid from the request until
  TERMINATING); ``dbu_billable`` only in RUNNING / RESIZING (no DBUs while spinning up, Overwatch rule).
* **Counts.** A *life* starts at CREATING/STARTING; within a life the worker count of each event is
  ``current_num_workers``, else ``target_num_workers``, else ``cluster_size`` (fixed or autoscale min),
  forward-filled. EDITED changes the config, not the nodes, so its sizes are ignored. Only when a life's
  first event carries no count at all does the cluster config (num_workers / autoscale min) fill in.
  ``ready_workers`` = that count while DBU-billable (0 otherwise); ``provisioned_workers`` = the count,
  or ``max(count, target)`` while CREATING/STARTING/RESTARTING/RESIZING because requested VMs are paid
  from the request (upsize), and on NODES_LOST the lost VMs stop costing at once.
* **Single node.** ``is_single_node`` clusters have the driver only (0 workers whatever events say).
* **Spot.** Spot-type ``availability`` (SPOT*, PREEMPTIBLE*) with ``first_on_demand = k`` (null → 1,
  the Databricks default): the driver is on-demand when ``k ≥ 1``, the first ``k − 1`` workers are
  on-demand, the rest spot. Other availability (or none) → all on-demand.
* **Fallback after eviction.** On a ``*_WITH_FALLBACK*`` cluster, NODES_LOST with reason
  SPOT_INSTANCE_TERMINATION records ``evicted`` (= workers before − workers after, summed over the life)
  and the post-loss ``floor`` count. Workers above the floor, up to ``evicted``, are the replacements
  and are on-demand: ``on_demand = min(workers, base_on_demand + clamp(workers − floor, 0, evicted))``.
* **Imputation** (``is_imputed``). If a cluster's first known event can only happen on an up cluster
  (TERMINATING, RESIZING, UPSIZE_COMPLETED, NODES_LOST) the look-back is missing: the cluster is taken
  as RUNNING from ``min(first event, day_start)``. If the cluster snapshot says TERMINATED with a
  ``terminated_time`` but no TERMINATING event closes it, a TERMINATING is imputed there.
* **Window end.** A cluster still up at ``day_end`` is closed at ``day_end`` (re-opened next day by
  that day's look-back events).
* **Pools.** With a ``pools`` frame (instance_pool_id, node_type_id, cloud, usage_date, idle_instances
  [, workspace_id]) each pool yields ``pool_idle`` segments over the whole window: ``idle_instances``
  on-demand VMs, no driver, VM-billable, never DBU-billable; ``cluster_id`` is the pool id.
"""

import datetime as dt

import polars as pl

Frame = pl.DataFrame | pl.LazyFrame

UP_STATES = ["CREATING", "STARTING", "RESTARTING", "RUNNING", "RESIZING"]
DBU_STATES = ["RUNNING", "RESIZING"]
REQUESTING_STATES = ["CREATING", "STARTING", "RESTARTING", "RESIZING"]
STATE_OF_EVENT = {
    "CREATING": "CREATING",
    "STARTING": "STARTING",
    "RESTARTING": "RESTARTING",
    "RUNNING": "RUNNING",
    "RESIZING": "RESIZING",
    "UPSIZE_COMPLETED": "RUNNING",
    "ADD_NODES_FAILED": "RUNNING",
    "TERMINATING": "TERMINATED",
}
LIFE_STARTS = ["CREATING", "STARTING"]
IMPLIES_UP = ["TERMINATING", "RESIZING", "UPSIZE_COMPLETED", "NODES_LOST"]
# Tie-break for events with the same timestamp: the lifecycle order they happen in.
EVENT_ORDER = {"CREATING": 0, "STARTING": 1, "RESTARTING": 2, "RUNNING": 3, "RESIZING": 4,
               "UPSIZE_COMPLETED": 5, "ADD_NODES_FAILED": 5, "NODES_LOST": 6, "TERMINATING": 9}
IMPUTED_OPEN_ORDER = -1
IMPUTED_CLOSE_ORDER = 10

SEGMENT_COLUMNS = [
    "workspace_id", "usage_date", "cluster_id", "segment_kind", "segment_start", "segment_end",
    "hour_start", "state", "provisioned_workers", "ready_workers", "driver_provisioned", "driver_ready",
    "driver_on_demand", "on_demand_workers", "spot_workers", "vm_billable", "dbu_billable", "is_imputed",
    "cloud", "driver_node_type_id", "node_type_id", "cluster_source", "workload", "is_photon",
]
HOUR = dt.timedelta(hours=1)
ONE_US = dt.timedelta(microseconds=1)


def lazy(frame: Frame) -> pl.LazyFrame:
    """Accept eager or lazy input everywhere; work lazily so polars can plan the whole query."""
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def workload_of(cluster_source: pl.Expr) -> pl.Expr:
    """SKU workload of a cluster: JOB → jobs, PIPELINE → dlt_core, anything else → all_purpose."""
    return (pl.when(cluster_source == "JOB").then(pl.lit("jobs"))
            .when(cluster_source == "PIPELINE").then(pl.lit("dlt_core"))
            .otherwise(pl.lit("all_purpose")))


def cluster_config(clusters: Frame) -> pl.LazyFrame:
    """One row per cluster (latest snapshot) with what the timeline and the price join need."""
    avail = pl.col("availability").fill_null("")
    spot_like = avail.str.contains("SPOT") | avail.str.contains("PREEMPTIBLE")
    return (
        lazy(clusters)
        .sort("usage_date")
        .unique("cluster_id", keep="last", maintain_order=False)
        .select(
            "cluster_id",
            pl.col("workspace_id").alias("cfg_workspace_id"),
            "cloud", "node_type_id", "driver_node_type_id", "cluster_source",
            workload_of(pl.col("cluster_source")).alias("workload"),
            # Pitfall 13: Photon from the flag, the runtime engine or the version string.
            (pl.col("is_photon") | (pl.col("runtime_engine") == "PHOTON").fill_null(False)
             | pl.col("spark_version").fill_null("").str.contains("-photon-")).alias("is_photon"),
            "is_single_node",
            spot_like.alias("spot_like"),
            avail.str.contains("WITH_FALLBACK").alias("spot_fallback"),
            pl.col("first_on_demand").fill_null(1).alias("first_on_demand"),
            pl.coalesce("num_workers", "autoscale_min_workers", pl.lit(0, pl.Int64)).alias("cfg_workers"),
            pl.col("state").alias("cfg_state"),
            "terminated_time",
        )
    )


def _ordered_events(events: Frame, cfg: pl.LazyFrame, day_start: dt.datetime,
                    day_end: dt.datetime) -> pl.LazyFrame:
    """Lifecycle-relevant events before ``day_end`` plus imputed open/close events, sorted per cluster."""
    has_count = pl.any_horizontal(
        pl.col(c).is_not_null() for c in ("current_num_workers", "target_num_workers",
                                           "cluster_size_num_workers", "cluster_size_min_workers"))
    ev = (
        lazy(events)
        .filter(pl.col("timestamp") < day_end)
        .filter(pl.col("event_type").is_in(list(STATE_OF_EVENT)) | (pl.col("event_type") == "NODES_LOST")
                | (has_count & (pl.col("event_type") != "EDITED")))
        .unique(["cluster_id", "timestamp", "event_type"], keep="first", maintain_order=False)
        .select(
            "workspace_id", "cluster_id", "timestamp", "event_type", "current_num_workers",
            "target_num_workers",
            pl.coalesce("cluster_size_num_workers", "cluster_size_min_workers").alias("size_workers"),
            "reason_code",
            pl.col("event_type").replace_strict(EVENT_ORDER, default=7, return_dtype=pl.Int8).alias("order"),
            pl.lit(False).alias("is_imputed"),
        )
    )
    first = (
        ev.group_by("cluster_id")
        .agg(pl.all().sort_by(["timestamp", "order"]).first())
        .filter(pl.col("event_type").is_in(IMPLIES_UP))
    )
    # Missing look-back: the first event implies an up cluster, so open it before that event.
    opened = first.select(
        "workspace_id", "cluster_id",
        pl.min_horizontal("timestamp", pl.lit(day_start, pl.Datetime("us")))
        .alias("timestamp"),
        pl.lit("RUNNING").alias("event_type"),
        pl.lit(None, pl.Int64).alias("current_num_workers"),
        pl.coalesce("target_num_workers", "current_num_workers").alias("target_num_workers"),
        pl.col("size_workers"),
        pl.lit(None, pl.String).alias("reason_code"),
        pl.lit(IMPUTED_OPEN_ORDER, pl.Int8).alias("order"),
        pl.lit(True).alias("is_imputed"),
    )
    # Snapshot says TERMINATED but no TERMINATING came: close at terminated_time (no-op if already down).
    closed = (
        cfg.filter((pl.col("cfg_state") == "TERMINATED") & pl.col("terminated_time").is_not_null()
                   & (pl.col("terminated_time") < day_end))
        .join(ev.select("cluster_id").unique(), on="cluster_id", how="semi")
        .select(
            pl.col("cfg_workspace_id").alias("workspace_id"), "cluster_id",
            pl.col("terminated_time").alias("timestamp"),
            pl.lit("TERMINATING").alias("event_type"),
            pl.lit(None, pl.Int64).alias("current_num_workers"),
            pl.lit(None, pl.Int64).alias("target_num_workers"),
            pl.lit(None, pl.Int64).alias("size_workers"),
            pl.lit(None, pl.String).alias("reason_code"),
            pl.lit(IMPUTED_CLOSE_ORDER, pl.Int8).alias("order"),
            pl.lit(True).alias("is_imputed"),
        )
    )
    return pl.concat([ev, opened, closed], how="vertical_relaxed").sort(["cluster_id", "timestamp", "order"])


def _event_states(ev: pl.LazyFrame, cfg: pl.LazyFrame) -> pl.LazyFrame:
    """Per event (already sorted): the state and node counts that hold from it to the next event."""
    life = ["cluster_id", "life"]
    state = pl.col("state")
    count = pl.col("count")
    is_eviction = ((pl.col("event_type") == "NODES_LOST") & (pl.col("reason_code") == "SPOT_INSTANCE_TERMINATION")
                   & pl.col("spot_fallback").fill_null(False))
    workers = pl.when(pl.col("is_single_node").fill_null(False)).then(pl.lit(0, pl.Int64))
    return (
        ev.join(cfg, on="cluster_id", how="left", maintain_order="left")
        .with_columns(
            pl.col("event_type").replace_strict(STATE_OF_EVENT, default=None, return_dtype=pl.String)
            .forward_fill().over("cluster_id").alias("state"),
            pl.col("event_type").is_in(LIFE_STARTS).cum_sum().over("cluster_id").alias("life"),
            pl.coalesce("current_num_workers", "target_num_workers", "size_workers").alias("count_ev"),
            pl.coalesce("target_num_workers", "current_num_workers", "size_workers").alias("target_ev"),
        )
        .with_columns(
            pl.col("count_ev").forward_fill().over(life).fill_null(pl.col("cfg_workers")).fill_null(0).alias("count"),
            pl.col("target_ev").forward_fill().over(life).alias("target"),
        )
        .with_columns(
            pl.col("target").fill_null(count),
            (pl.col("count").shift(1).over(life) - count).clip(lower_bound=0).fill_null(0).alias("lost"),
        )
        .with_columns(
            pl.when(is_eviction).then(pl.col("lost")).otherwise(0).cum_sum().over(life).alias("evicted"),
            pl.when(is_eviction).then(count).forward_fill().over(life).alias("floor"),
        )
        .with_columns(
            workers.otherwise(count).alias("count"),
            workers.otherwise(
                pl.when(state.is_in(REQUESTING_STATES)).then(pl.max_horizontal(count, "target")).otherwise(count)
            ).alias("provisioned_workers"),
        )
        .with_columns(
            state.is_in(UP_STATES).fill_null(False).alias("vm_billable"),
            state.is_in(DBU_STATES).fill_null(False).alias("dbu_billable"),
        )
        .with_columns(
            pl.when(pl.col("dbu_billable")).then(count).otherwise(0).alias("ready_workers"),
            pl.col("vm_billable").alias("driver_provisioned"),
            pl.col("dbu_billable").alias("driver_ready"),
            (~pl.col("spot_like").fill_null(False) | (pl.col("first_on_demand") >= 1)).alias("driver_on_demand"),
        )
        .with_columns(_on_demand_workers().alias("on_demand_workers"))
        .with_columns((pl.col("provisioned_workers") - pl.col("on_demand_workers")).alias("spot_workers"))
    )


def _on_demand_workers() -> pl.Expr:
    """first_on_demand counts the driver first; fallback replacements above the post-eviction floor."""
    prov = pl.col("provisioned_workers")
    base = pl.min_horizontal(prov, (pl.col("first_on_demand") - 1).clip(lower_bound=0))
    replaced = pl.min_horizontal((prov - pl.col("floor")).clip(lower_bound=0), pl.col("evicted")).fill_null(0)
    return (pl.when(~pl.col("spot_like").fill_null(False)).then(prov)
            .otherwise(pl.min_horizontal(prov, base + replaced)))


def split_at_hours(frame: pl.LazyFrame, start: str, end: str) -> pl.LazyFrame:
    """Cut ``[start, end)`` rows at hour boundaries; adds ``hour_start``. Zero-length rows keep one piece."""
    first_hour = pl.col(start).dt.truncate("1h")
    last_instant = pl.max_horizontal(pl.col(end) - ONE_US, pl.col(start))
    return (
        frame.with_columns(pl.datetime_ranges(first_hour, last_instant, "1h").alias("hour_start"))
        .explode("hour_start")
        .with_columns(
            pl.max_horizontal(start, "hour_start").alias(start),
            pl.min_horizontal(end, pl.col("hour_start") + HOUR).alias(end),
        )
    )


def _pool_segments(pools: Frame, clusters: Frame, day_start: dt.datetime, day_end: dt.datetime) -> pl.LazyFrame:
    """Idle pool VMs: VM $ but no DBUs, over the whole window, one constant count per pool and day."""
    p = lazy(pools)
    names = p.collect_schema().names()
    if "workspace_id" not in names:
        owner = (lazy(clusters).filter(pl.col("instance_pool_id").is_not_null())
                 .group_by("instance_pool_id").agg(pl.col("workspace_id").min()))
        p = p.join(owner, on="instance_pool_id", how="left")
    hours = pl.LazyFrame({"hour_start": pl.datetime_range(day_start, day_end - HOUR, "1h", eager=True)})
    n = pl.col("idle_instances").round(0).cast(pl.Int64)
    return (
        p.filter((pl.col("usage_date") >= day_start.date()) & (pl.col("usage_date") < day_end.date()))
        .join(hours.with_columns(pl.col("hour_start").dt.date().alias("usage_date")), on="usage_date")
        .filter(n > 0)
        .select(
            pl.col("workspace_id").cast(pl.String), "usage_date",
            pl.col("instance_pool_id").alias("cluster_id"),
            pl.lit("pool_idle").alias("segment_kind"),
            pl.col("hour_start").alias("segment_start"),
            (pl.col("hour_start") + HOUR).alias("segment_end"),
            "hour_start",
            pl.lit("POOL_IDLE").alias("state"),
            n.alias("provisioned_workers"),
            pl.lit(0, pl.Int64).alias("ready_workers"),
            pl.lit(False).alias("driver_provisioned"),
            pl.lit(False).alias("driver_ready"),
            pl.lit(False).alias("driver_on_demand"),
            n.alias("on_demand_workers"),
            pl.lit(0, pl.Int64).alias("spot_workers"),
            pl.lit(True).alias("vm_billable"),
            pl.lit(False).alias("dbu_billable"),
            pl.lit(False).alias("is_imputed"),
            "cloud",
            pl.lit(None, pl.String).alias("driver_node_type_id"),
            "node_type_id",
            pl.lit(None, pl.String).alias("cluster_source"),
            pl.lit(None, pl.String).alias("workload"),
            pl.lit(False).alias("is_photon"),
        )
    )


def cluster_segments_lazy(clusters: Frame, events: Frame, day_start: dt.datetime, day_end: dt.datetime,
                          pools: Frame | None = None) -> pl.LazyFrame:
    """Lazy form of :func:`cluster_segments`, for composing into the engine's single query plan."""
    cfg = cluster_config(clusters)
    ev = _event_states(_ordered_events(events, cfg, day_start, day_end), cfg)
    same_next = pl.col("cluster_id") == pl.col("cluster_id").shift(-1)
    seg = (
        ev.with_columns(
            pl.max_horizontal("timestamp", pl.lit(day_start, pl.Datetime("us"))).alias("segment_start"),
            pl.when(same_next).then(pl.col("timestamp").shift(-1)).otherwise(pl.lit(day_end, pl.Datetime("us")))
            .clip(upper_bound=pl.lit(day_end, pl.Datetime("us"))).alias("segment_end"),
        )
        .filter(pl.col("vm_billable") & (pl.col("segment_end") > pl.col("segment_start")))
        .with_columns(
            pl.coalesce("workspace_id", "cfg_workspace_id").alias("workspace_id"),
            pl.lit("cluster").alias("segment_kind"),
        )
    )
    seg = split_at_hours(seg, "segment_start", "segment_end").with_columns(
        pl.col("hour_start").dt.date().alias("usage_date"))
    seg = seg.select(SEGMENT_COLUMNS)
    if pools is not None:
        seg = pl.concat([seg, _pool_segments(pools, clusters, day_start, day_end).select(SEGMENT_COLUMNS)],
                        how="vertical_relaxed")
    return seg


def cluster_segments(clusters: Frame, events: Frame, day_start: dt.datetime, day_end: dt.datetime,
                     pools: Frame | None = None) -> pl.DataFrame:
    """Elementary segments per cluster over ``[day_start, day_end)``, cut at every hour (see module doc).

    ``clusters`` and ``events`` follow ``schemas.Clusters`` / ``schemas.ClusterEvents``; events before
    ``day_start`` (the look-back) fix the state at the window start.
    """
    return (cluster_segments_lazy(clusters, events, day_start, day_end, pools)
            .sort(["cluster_id", "segment_start"]).collect())
