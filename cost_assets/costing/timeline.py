"""Cluster timeline: raw cluster events → elementary segments of constant state and node counts.

A segment is the unit every later step prices and shares: within it the cluster's state, its
provisioned/ready worker counts and its on-demand/spot split are constant, so cost is a constant rate
times its duration. Segments are clipped to the window ``[day_start, day_end)`` and cut at every hour
boundary, because the bill is hourly and reconciliation compares hour by hour.

Performance: one sort of the events (on a categorical code of the cluster id: grouping needs contiguity,
not lexical order), then only linear passes. Per-cluster forward-fills, cum-sums and shifts use
sorted-group expressions (``ffill_within`` …) instead of hash windows, imputed segments are built beside
the main stream, and the hour split keeps row order, so segments leave grouped by cluster and ordered in
time (pricing and the sweep rely on that to skip sorts). The million-row frames carry no per-row
string but the cluster id: event types and states are small codes (``state``/``segment_kind`` are
``Enum`` in the core frame, strings in the public output) and cluster-level columns (workspace, node
types, …) are joined per cluster at the end.

Rules (the cost model of docs/design.md and the known pitfalls of cluster events), chosen where the model
leaves room:

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
  as RUNNING from ``day_start`` (count: that event's target, else current, else the config). If the
  cluster snapshot says TERMINATED with a ``terminated_time`` after the last event and no TERMINATING
  closed it, the last segment ends at ``terminated_time``.
* **Window end.** A cluster still up at ``day_end`` is closed at ``day_end`` (re-opened next day by
  that day's look-back events).
* **Pools.** With a ``pools`` frame (instance_pool_id, node_type_id, cloud, usage_date, idle_instances
  [, workspace_id]) each pool yields ``pool`` segments over the whole window: ``idle_instances``
  on-demand VMs, no driver, VM-billable, never DBU-billable; ``cluster_id`` is the pool id.
"""

import datetime as dt

import polars as pl

from cost_assets.costing.frames import ENGINE, Frame, cumsum_within, ffill_within, group_starts, lazy, shift_within
from cost_assets.schemas import UTC_TS
from cost_assets.vocabulary import EVENT_TYPES, SEGMENT_KINDS, SEGMENT_STATES

# State codes: 0 is a down (terminated) cluster, which never becomes a segment.
STATE_NAMES = ["TERMINATED", *SEGMENT_STATES]
STATE = pl.Enum(STATE_NAMES)
SEGMENT_KIND = pl.Enum(SEGMENT_KINDS)
_S = {name: code for code, name in enumerate(STATE_NAMES)}
UP_STATES = [_S[n] for n in ("CREATING", "STARTING", "RESTARTING", "RUNNING", "RESIZING")]
DBU_STATES = [_S["RUNNING"], _S["RESIZING"]]
REQUESTING_STATES = [_S[n] for n in ("CREATING", "STARTING", "RESTARTING", "RESIZING")]
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
# Event types as Int8 codes (their index in the API's list; -1 for a type this code does not know).
EV = {name: code for code, name in enumerate(EVENT_TYPES)}
LIFE_STARTS = [EV["CREATING"], EV["STARTING"]]
IMPLIES_UP = [EV[n] for n in ("TERMINATING", "RESIZING", "UPSIZE_COMPLETED", "NODES_LOST")]
# Tie-break for events with the same timestamp: the lifecycle order they happen in.
EVENT_ORDER = {
    "CREATING": 0,
    "STARTING": 1,
    "RESTARTING": 2,
    "RUNNING": 3,
    "RESIZING": 4,
    "UPSIZE_COMPLETED": 5,
    "ADD_NODES_FAILED": 5,
    "NODES_LOST": 6,
    "TERMINATING": 9,
}
CORE_COLUMNS = [
    "usage_date",
    "cluster_id",
    "segment_kind",
    "segment_start",
    "segment_end",
    "hour_start",
    "state",
    "provisioned_workers",
    "ready_workers",
    "driver_provisioned",
    "driver_ready",
    "driver_on_demand",
    "on_demand_workers",
    "spot_workers",
    "vm_billable",
    "dbu_billable",
    "is_imputed",
]
ATTRIBUTE_COLUMNS = ["cloud", "driver_node_type_id", "node_type_id", "cluster_source", "workload", "is_photon"]
SEGMENT_COLUMNS = ["workspace_id", *CORE_COLUMNS, *ATTRIBUTE_COLUMNS]
HOUR = dt.timedelta(hours=1)
ONE_US = dt.timedelta(microseconds=1)


# ---------------------------------------------------------------- cluster attributes
def workload_of(cluster_source: pl.Expr) -> pl.Expr:
    """SKU workload of a cluster: JOB → jobs, PIPELINE → dlt_core, anything else → all_purpose."""
    return (
        pl.when(cluster_source == "JOB")
        .then(pl.lit("jobs"))
        .when(cluster_source == "PIPELINE")
        .then(pl.lit("dlt_core"))
        .otherwise(pl.lit("all_purpose"))
    )


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
            "workspace_id",
            "cloud",
            "node_type_id",
            "driver_node_type_id",
            "cluster_source",
            workload_of(pl.col("cluster_source")).alias("workload"),
            # Pitfall 13: Photon from the flag, the runtime engine or the version string.
            (
                pl.col("is_photon")
                | (pl.col("runtime_engine") == "PHOTON").fill_null(False)
                | pl.col("spark_version").fill_null("").str.contains("-photon-")
            ).alias("is_photon"),
            "is_single_node",
            spot_like.alias("spot_like"),
            avail.str.contains("WITH_FALLBACK").alias("spot_fallback"),
            pl.col("first_on_demand").fill_null(1).alias("first_on_demand"),
            pl.coalesce("num_workers", "autoscale_min_workers", pl.lit(0, pl.Int64)).alias("cfg_workers"),
            pl.when(pl.col("state") == "TERMINATED").then(pl.col("terminated_time")).alias("close_at"),
        )
    )


def _pool_rows(pools: Frame, clusters: Frame) -> pl.LazyFrame:
    p = lazy(pools).sort("usage_date").unique("instance_pool_id", keep="last", maintain_order=False)
    if "workspace_id" not in p.collect_schema().names():
        owner = (
            lazy(clusters)
            .filter(pl.col("instance_pool_id").is_not_null())
            .group_by("instance_pool_id")
            .agg(pl.col("workspace_id").min())
        )
        p = p.join(owner, on="instance_pool_id", how="left")
    return p


def cluster_attributes(clusters: Frame, pools: Frame | None = None) -> pl.LazyFrame:
    """Per cluster (or pool) id: workspace and what prices it (cloud, node types, source, workload, Photon)."""
    cfg = cluster_config(clusters).select("cluster_id", "workspace_id", *ATTRIBUTE_COLUMNS)
    if pools is None:
        return cfg
    pool = _pool_rows(pools, clusters).select(
        pl.col("instance_pool_id").alias("cluster_id"),
        pl.col("workspace_id").cast(pl.String),
        "cloud",
        pl.lit(None, pl.String).alias("driver_node_type_id"),
        "node_type_id",
        pl.lit(None, pl.String).alias("cluster_source"),
        pl.lit(None, pl.String).alias("workload"),
        pl.lit(False).alias("is_photon"),
    )
    return pl.concat([cfg, pool], how="vertical_relaxed")


# ---------------------------------------------------------------- events → per-event state
def _sorted_events(events: Frame, day_end: dt.datetime) -> pl.LazyFrame:
    """Lifecycle-relevant events before ``day_end`` as compact codes, sorted per cluster, deduplicated."""
    has_count = pl.any_horizontal(
        pl.col(c).is_not_null()
        for c in ("current_num_workers", "target_num_workers", "cluster_size_num_workers", "cluster_size_min_workers")
    )
    code = pl.col("code")
    relevant = code.is_in([EV[k] for k in (*STATE_OF_EVENT, "NODES_LOST")]) | (has_count & (code != EV["EDITED"]))
    state_of_code = {EV[k]: _S[v] for k, v in STATE_OF_EVENT.items()}
    ev = (
        lazy(events)
        .filter(pl.col("timestamp") < day_end)
        # One string lookup per event; everything after works on the Int8 code.
        .with_columns(pl.col("event_type").replace_strict(EV, default=-1, return_dtype=pl.Int8).alias("code"))
        .filter(relevant)
        .select(
            "cluster_id",
            # Grouping needs contiguity, not lexical order: sorting on a categorical code (fixed width)
            # is much cheaper in time and memory than on the string.
            pl.col("cluster_id").cast(pl.Categorical).to_physical().alias("_ck"),
            "timestamp",
            "code",
            code.replace_strict({EV[k]: v for k, v in EVENT_ORDER.items()}, default=7, return_dtype=pl.Int8).alias(
                "order"
            ),
            code.replace_strict(state_of_code, default=None, return_dtype=pl.Int8).alias("state_ev"),
            # A downscale is logged as RESIZING with target < current and no completion event follows:
            # the decommissioned workers stop at once, so the count is the target from that event on.
            pl.when((code == EV["RESIZING"]) & (pl.col("target_num_workers") < pl.col("current_num_workers")))
            .then(pl.col("target_num_workers"))
            .otherwise(pl.col("current_num_workers"))
            .cast(pl.Int32)
            .alias("current_num_workers"),
            pl.col("target_num_workers").cast(pl.Int32),
            pl.coalesce("cluster_size_num_workers", "cluster_size_min_workers").cast(pl.Int32).alias("size_workers"),
            ((code == EV["NODES_LOST"]) & (pl.col("reason_code") == "SPOT_INSTANCE_TERMINATION")).alias("spot_loss"),
            pl.col("workspace_id").cast(pl.Categorical),
        )
        .collect(engine=ENGINE)
    )
    # Events usually arrive grouped by cluster and in time (the API lists each cluster's events in order):
    # then one linear check replaces the sort.
    new_cluster = group_starts("_ck")
    in_order = ev.select(
        (new_cluster.sum() == pl.col("_ck").n_unique())
        & (
            new_cluster
            | (pl.col("timestamp") > pl.col("timestamp").shift())
            | ((pl.col("timestamp") == pl.col("timestamp").shift()) & (pl.col("order") >= pl.col("order").shift()))
        ).all()
    ).item()
    if not in_order:
        ev = ev.sort(["_ck", "timestamp", "order"])
    # Several partitions may repeat an event (look-back of one day = events of the previous day). A repeat
    # that is not adjacent (same instant, another type in between) only yields an empty, dropped segment.
    return ev.lazy().filter(group_starts("_ck", "timestamp", "code"))


def _node_columns() -> list[list[pl.Expr]]:
    """From state/count/target/evicted/floor: the billing flags and the node split (see module doc)."""
    state, count, spot = pl.col("state"), pl.col("count"), pl.col("spot_like").fill_null(False)
    single = pl.col("is_single_node").fill_null(False)
    prov = pl.col("provisioned_workers")
    base = pl.min_horizontal(prov, (pl.col("first_on_demand") - 1).clip(lower_bound=0))
    replaced = pl.min_horizontal((prov - pl.col("floor")).clip(lower_bound=0), pl.col("evicted")).fill_null(0)
    return [
        [
            pl.when(single).then(0).otherwise(count).alias("count"),
            pl.when(single)
            .then(0)
            .when(state.is_in(REQUESTING_STATES))
            .then(pl.max_horizontal(count, "target"))
            .otherwise(count)
            .alias("provisioned_workers"),
            state.is_in(UP_STATES).fill_null(False).alias("vm_billable"),
            state.is_in(DBU_STATES).fill_null(False).alias("dbu_billable"),
        ],
        [
            pl.when(pl.col("dbu_billable")).then(count).otherwise(0).alias("ready_workers"),
            pl.col("vm_billable").alias("driver_provisioned"),
            pl.col("dbu_billable").alias("driver_ready"),
            (~spot | (pl.col("first_on_demand") >= 1)).alias("driver_on_demand"),
            pl.when(~spot).then(prov).otherwise(pl.min_horizontal(prov, base + replaced)).alias("on_demand_workers"),
        ],
        [(prov - pl.col("on_demand_workers")).alias("spot_workers")],
    ]


def _with_nodes(frame: pl.LazyFrame) -> pl.LazyFrame:
    for step in _node_columns():
        frame = frame.with_columns(step)
    return frame


def _with_config(ev: pl.LazyFrame, cfg: pl.LazyFrame) -> pl.LazyFrame:
    """``ev`` (grouped by cluster) with ``_new_cluster`` and its cluster's ``cfg`` columns: ``cfg`` (one row per
    cluster) is joined to each group's first event and gathered per event by the group's index, so the
    million events are never hash-joined on the cluster id string."""
    ev = (
        ev.with_columns(group_starts("_ck").alias("_new_cluster"))
        .with_columns((pl.col("_new_cluster").cum_sum() - 1).alias("_g"))
        .collect(engine=ENGINE)
    )
    per_group = (
        ev.lazy()
        .filter("_new_cluster")
        .select("cluster_id")
        .join(cfg, on="cluster_id", how="left", maintain_order="left")
        .drop("cluster_id")
        .collect(engine=ENGINE)
    )
    return ev.with_columns(per_group[c].gather(ev["_g"]) for c in per_group.columns).drop("_g").lazy()


def _event_states(ev: pl.LazyFrame, cfg: pl.LazyFrame) -> pl.LazyFrame:
    """Per sorted event: the state and node counts that hold from it to the next event."""
    code = pl.col("code")
    new_cluster = pl.col("_new_cluster")
    life_start = pl.col("_life_start")
    count = pl.col("count")
    is_eviction = pl.col("spot_loss") & pl.col("spot_fallback").fill_null(False)
    state_ff = ffill_within(pl.col("state_ev"), new_cluster)
    opened = pl.when(new_cluster).then(code).forward_fill().is_in(IMPLIES_UP)
    frame = (
        _with_config(ev, cfg)
        .with_columns(
            (new_cluster | code.is_in(LIFE_STARTS)).alias("_life_start"),
            pl.coalesce(state_ff, pl.when(opened).then(pl.lit(_S["RUNNING"], pl.Int8))).alias("state"),
            (state_ff.is_null() & opened).alias("is_imputed"),
            pl.coalesce("current_num_workers", "target_num_workers", "size_workers").alias("_count_ev"),
            pl.coalesce("target_num_workers", "current_num_workers", "size_workers").alias("_target_ev"),
        )
        .with_columns(
            ffill_within(pl.col("_count_ev"), life_start).fill_null(pl.col("cfg_workers")).fill_null(0).alias("count"),
            ffill_within(pl.col("_target_ev"), life_start).alias("target"),
        )
        .with_columns(
            pl.col("target").fill_null(count),
            (shift_within(count, life_start) - count).clip(lower_bound=0).fill_null(0).alias("_lost"),
        )
        .with_columns(
            cumsum_within(pl.when(is_eviction).then(pl.col("_lost")).otherwise(0), life_start).alias("evicted"),
            ffill_within(pl.when(is_eviction).then(count), life_start).alias("floor"),
        )
    )
    return _with_nodes(frame)


# ---------------------------------------------------------------- segments
def split_at_hours(frame: pl.LazyFrame, start: str, end: str) -> pl.LazyFrame:
    """Cut ``[start, end)`` rows at hour boundaries; adds ``hour_start``. Zero-length rows keep one piece.

    Row order is kept (pieces of a row follow each other in time), so a frame sorted by group and time
    stays sorted; only rows that cross an hour build a range.
    """
    first_hour = pl.col(start).dt.truncate("1h")
    last_instant = pl.max_horizontal(pl.col(end) - ONE_US, pl.col(start))
    crosses = first_hour != last_instant.dt.truncate("1h")
    hours = (
        pl.when(crosses).then(pl.datetime_ranges(first_hour, last_instant, "1h")).otherwise(pl.concat_list(first_hour))
    )
    return (
        frame.with_columns(hours.alias("hour_start"))
        .explode("hour_start")
        .with_columns(
            pl.max_horizontal(start, "hour_start").alias(start),
            pl.min_horizontal(end, pl.col("hour_start") + HOUR).alias(end),
        )
    )


def _pool_segments(pools: Frame, day_start: dt.datetime, day_end: dt.datetime) -> pl.LazyFrame:
    """Idle pool VMs: VM $ but no DBUs, over the whole window, one constant count per pool and day."""
    hours = pl.LazyFrame({"hour_start": pl.datetime_range(day_start, day_end - HOUR, "1h", eager=True)})
    n = pl.col("idle_instances").round(0).cast(pl.Int64)
    return (
        lazy(pools)
        .filter((pl.col("usage_date") >= day_start.date()) & (pl.col("usage_date") < day_end.date()))
        .join(hours.with_columns(pl.col("hour_start").dt.date().alias("usage_date")), on="usage_date")
        .filter(n > 0)
        .sort("instance_pool_id", "hour_start")
        .select(
            "usage_date",
            pl.col("instance_pool_id").alias("cluster_id"),
            pl.lit("pool", SEGMENT_KIND).alias("segment_kind"),
            pl.col("hour_start").alias("segment_start"),
            (pl.col("hour_start") + HOUR).alias("segment_end"),
            "hour_start",
            pl.lit("POOL_IDLE", STATE).alias("state"),
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
        )
    )


def segment_core(
    clusters: Frame, events: Frame, day_start: dt.datetime, day_end: dt.datetime, pools: Frame | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Segments with :data:`CORE_COLUMNS` only, and per cluster seen in the events its first workspace.

    Rows come grouped by cluster and ordered in time (pools last), which the allocation relies on to
    skip a sort.

    The engine prices these slim rows and joins cluster-level columns per cluster; the second frame
    (``cluster_id, workspace_id``) also tells which clusters have any lifecycle event at all.
    """
    cfg = cluster_config(clusters).select(
        "cluster_id", "is_single_node", "spot_like", "spot_fallback", "first_on_demand", "cfg_workers", "close_at"
    )
    start, end = pl.lit(day_start, UTC_TS), pl.lit(day_end, UTC_TS)
    last_of_cluster = pl.col("_ck").ne_missing(pl.col("_ck").shift(-1))
    # Snapshot says TERMINATED after the last event but no TERMINATING came: close there.
    closed_at = (
        pl.when((pl.col("close_at") > pl.col("timestamp")) & (pl.col("close_at") < end))
        .then(pl.col("close_at"))
        .otherwise(end)
    )
    keep = [c for c in CORE_COLUMNS if c not in ("hour_start", "usage_date", "segment_kind")]
    opener_inputs = ["_new_cluster", "code", "timestamp", "target_num_workers", "current_num_workers"]
    opener_inputs += ["size_workers", "cfg_workers", "is_single_node", "spot_like", "first_on_demand"]
    # Materialized once: the main segments, the imputed openers and the workspaces all read it.
    ev = (
        _event_states(_sorted_events(events, day_end), cfg)
        .with_columns(
            pl.max_horizontal("timestamp", start).alias("segment_start"),
            pl.when(last_of_cluster)
            .then(closed_at)
            .otherwise(pl.col("timestamp").shift(-1))
            .clip(upper_bound=end)
            .alias("segment_end"),
            (pl.col("is_imputed") | (last_of_cluster & (closed_at < end))).alias("is_imputed"),
        )
        .select(*keep, *[c for c in opener_inputs if c not in keep], "workspace_id")
        .collect(engine=ENGINE)
    )
    workspaces = ev.filter(pl.col("_new_cluster")).select("cluster_id", pl.col("workspace_id").cast(pl.String))
    seg = ev.lazy().filter(pl.col("vm_billable") & (pl.col("segment_end") > pl.col("segment_start")))
    # Missing look-back: the first event implies an up cluster → RUNNING from day_start until it.
    opener = (
        ev.lazy()
        .filter(pl.col("_new_cluster") & pl.col("code").is_in(IMPLIES_UP) & (pl.col("timestamp") > start))
        .with_columns(
            start.alias("segment_start"),
            pl.col("timestamp").alias("segment_end"),
            pl.lit(_S["RUNNING"], pl.Int8).alias("state"),
            pl.coalesce("target_num_workers", "current_num_workers", "size_workers", "cfg_workers", pl.lit(0))
            .cast(pl.Int64)
            .alias("count"),
            pl.lit(0, pl.Int64).alias("evicted"),
            pl.lit(None, pl.Int64).alias("floor"),
            pl.lit(True).alias("is_imputed"),
        )
        .with_columns(pl.col("count").alias("target"))
        .pipe(_with_nodes)
    )
    opener = opener.select(keep).collect(engine=ENGINE)
    seg = seg.select(keep)
    if opener.height:  # rare (missing look-back): put the openers in front of their cluster's rows
        seg = pl.concat([opener.lazy(), seg]).sort("cluster_id", "segment_start", maintain_order=True)
    core = (
        split_at_hours(seg, "segment_start", "segment_end")
        .with_columns(
            pl.col("hour_start").dt.date().alias("usage_date"),
            pl.lit("cluster", SEGMENT_KIND).alias("segment_kind"),
            pl.col("state").replace_strict(dict(enumerate(STATE_NAMES)), return_dtype=STATE),
        )
        .select(CORE_COLUMNS)
    )
    if pools is not None:
        core = pl.concat([core, _pool_segments(pools, day_start, day_end)], how="vertical_relaxed")
    return core.collect(engine=ENGINE), workspaces


def cluster_segments_lazy(
    clusters: Frame, events: Frame, day_start: dt.datetime, day_end: dt.datetime, pools: Frame | None = None
) -> pl.LazyFrame:
    """:func:`cluster_segments` as a LazyFrame (the timeline itself is computed eagerly)."""
    core, workspaces = segment_core(clusters, events, day_start, day_end, pools)
    return stored_form(core, workspaces, clusters, pools)


def stored_form(core: Frame, workspaces: Frame, clusters: Frame, pools: Frame | None = None) -> pl.LazyFrame:
    """The stored form of :func:`segment_core` rows (:data:`SEGMENT_COLUMNS`): cluster-level columns joined
    per cluster, the workspace from the cluster's config else from its events (``workspaces``), and the
    state and kind codes as strings."""
    attrs = cluster_attributes(clusters, pools).rename({"workspace_id": "_cfg_ws"})
    return (
        lazy(core)
        .join(attrs, on="cluster_id", how="left")
        .join(lazy(workspaces), on="cluster_id", how="left")
        .with_columns(
            pl.coalesce("_cfg_ws", "workspace_id").alias("workspace_id"),
            pl.col("state").cast(pl.String),
            pl.col("segment_kind").cast(pl.String),
        )
        .select(SEGMENT_COLUMNS)
    )


def cluster_segments(
    clusters: Frame, events: Frame, day_start: dt.datetime, day_end: dt.datetime, pools: Frame | None = None
) -> pl.DataFrame:
    """Elementary segments per cluster over ``[day_start, day_end)``, cut at every hour (see module doc).

    ``clusters`` and ``events`` follow ``schemas.Clusters`` / ``schemas.ClusterEvents``; events before
    ``day_start`` (the look-back) fix the state at the window start. Columns: :data:`SEGMENT_COLUMNS`.
    """
    return (
        cluster_segments_lazy(clusters, events, day_start, day_end, pools)
        .sort(["cluster_id", "segment_start"])
        .collect(engine=ENGINE)
    )
