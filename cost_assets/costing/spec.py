"""A timeline for a cluster the APIs no longer know: estimated from its run's spec.

Terminated clusters are purged after their retention and their events (kept ~30 days) go with them, so
a backfill of an older day finds runs whose cluster has neither details nor events. Fetching rebuilds the
cluster from its run's ``new_cluster`` spec (``raw.clusters.reason = 'cluster_not_found'``); this module
gives such a cluster, when it has no event of its own, the simplest timeline the spec supports:

* up (RUNNING) from its first task run's start to its last task run's end — start-up and tear-down are
  not known, so they are not estimated;
* with the spec's worker count: ``num_workers``, or ``autoscale.min_workers`` (the size an autoscaling
  cluster starts at; a scale-up is not known either).

The events are synthetic and never stored: the engine adds them in memory, so ``raw.cluster_events``
only ever holds what the API said. A rebuilt cluster *with* events (purged, events not yet) uses them.
"""

import polars as pl

from cost_assets.costing.frames import Frame, lazy
from cost_assets.vocabulary import CLUSTER_NOT_FOUND


def spec_events(clusters: Frame, job_runs: Frame, events: Frame) -> pl.DataFrame:
    """RUNNING / TERMINATING events (``raw.cluster_events`` columns) for the clusters rebuilt from a spec
    that have no event in ``events``; empty when there are none (or the frames predate the ``reason``)."""
    schema = lazy(events).collect_schema()
    rebuilt = lazy(clusters)
    if "reason" not in rebuilt.collect_schema().names():
        return pl.DataFrame(schema=schema)
    with_events = lazy(events).select("cluster_id").unique()
    spans = (
        rebuilt.filter(pl.col("reason") == CLUSTER_NOT_FOUND)
        .sort("usage_date")
        .unique("cluster_id", keep="last")
        .join(with_events, on="cluster_id", how="anti")
        .select(
            "cluster_id",
            "workspace_id",
            "usage_date",
            pl.coalesce("num_workers", "autoscale_min_workers", pl.lit(0, pl.Int64)).alias("workers"),
        )
        .join(
            lazy(job_runs)
            .filter(pl.col("start_time").is_not_null())
            .group_by("cluster_id")
            .agg(pl.col("start_time").min().alias("up"), pl.col("end_time").max().alias("down")),
            on="cluster_id",
            how="inner",
        )
    )
    up = spans.select(
        "usage_date",
        "workspace_id",
        "cluster_id",
        pl.col("up").alias("timestamp"),
        pl.lit("RUNNING").alias("event_type"),
        pl.col("workers").alias("current_num_workers"),
        pl.col("workers").alias("cluster_size_num_workers"),
    )
    down = spans.filter(pl.col("down").is_not_null()).select(
        "usage_date",
        "workspace_id",
        "cluster_id",
        pl.col("down").alias("timestamp"),
        pl.lit("TERMINATING").alias("event_type"),
    )
    out = pl.concat([up, down], how="diagonal").collect().with_columns(pl.lit(False).alias("is_lookback"))
    return out.select([pl.col(c).cast(t) if c in out.columns else pl.lit(None, t).alias(c) for c, t in schema.items()])


def with_spec_events(clusters: Frame, job_runs: Frame, events: Frame) -> Frame:
    """``events`` plus :func:`spec_events` (``events`` itself when no cluster needs them)."""
    synthetic = spec_events(clusters, job_runs, events)
    return events if synthetic.height == 0 else pl.concat([lazy(events), synthetic.lazy()], how="vertical_relaxed")
