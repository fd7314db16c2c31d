"""Ids a workspace makes unique, not the account: cluster and pool ids that two workspaces share.

Databricks makes cluster, pool, job and run ids unique within a workspace; an account of several
workspaces (``COST_ASSETS_WORKSPACES``) may repeat one, e.g. workspaces created from one template, or
fixtures copied between them. Tables key such ids together with ``workspace_id``. The engine's sweep keys
clusters by ``cluster_id`` alone (one string key over a million segments), so when the day's clusters share
an id across workspaces it qualifies cluster and pool ids with their workspace on the way in
(``<workspace_id>␟<id>``, the ASCII unit separator, which no Databricks id contains) and strips it on the
way out. An account of one workspace pays one count over its clusters and task runs; with more, the check
also reads the events (a cluster ``clusters/get`` no longer knows is named only there and by its runs).
"""

from typing import TypeVar

import polars as pl

from cost_assets.costing.frames import ENGINE, Frame, lazy

SEP = "\x1f"
F = TypeVar("F", pl.DataFrame, pl.LazyFrame)
ID_COLUMNS = ("cluster_id", "instance_pool_id", "driver_instance_pool_id")


def shared_across_workspaces(clusters: Frame, events: Frame | None = None, job_runs: Frame | None = None) -> bool:
    """Whether a cluster or pool id of ``clusters`` (``raw/clusters``), ``events`` or ``job_runs`` belongs to
    two workspaces (a cluster ``clusters/get`` no longer knows is named by its events and runs only). When
    the clusters and the runs name one workspace, the events are not read."""
    frames = [lazy(f) for f in (clusters, job_runs, events) if f is not None]
    frames = [f for f in frames if "workspace_id" in f.collect_schema().names()]
    if not frames:
        return False
    small = pl.concat([f.select(pl.col("workspace_id").cast(pl.String)) for f in frames[:2]])
    if small.select(pl.col("workspace_id").n_unique()).collect(engine=ENGINE).item() < 2:
        return False
    pairs = [
        f.select(pl.col("workspace_id").cast(pl.String), pl.col(c).alias("_id"))
        for f in frames
        for c in ID_COLUMNS
        if c in f.collect_schema().names()
    ]
    per_id = pl.concat(pairs).drop_nulls("_id").group_by("_id")
    return bool(
        per_id.agg(pl.col("workspace_id").n_unique() > 1).select(pl.any("workspace_id")).collect(engine=ENGINE).item()
    )


def qualified(frame: F | None) -> F | None:
    """``frame`` with its id columns as ``<workspace_id>␟<id>`` (rows without a workspace keep the bare id)."""
    if frame is None:
        return None
    names = frame.collect_schema().names()
    if "workspace_id" not in names:
        return frame
    workspace = pl.col("workspace_id").cast(pl.String)
    return frame.with_columns(
        pl.when(workspace.is_not_null())
        .then(pl.concat_str(workspace, pl.lit(SEP), pl.col(c)))
        .otherwise(pl.col(c))
        .alias(c)
        for c in ID_COLUMNS
        if c in names
    )


def unqualified(frame: pl.DataFrame, columns: tuple[str, ...] = ("cluster_id",)) -> pl.DataFrame:
    """``frame`` with the workspace prefix of :func:`qualified` taken off ``columns``."""
    return frame.with_columns(pl.col(c).str.replace(f"^[^{SEP}]*{SEP}", "") for c in columns)
