"""Ids a workspace makes unique, not the account: cluster and pool ids that two workspaces share.

Databricks makes cluster, pool, job and run ids unique within a workspace; an account of several
workspaces (``COST_ASSETS_WORKSPACES``) may repeat one, e.g. workspaces created from one template, or
fixtures copied between them. Tables key such ids together with ``workspace_id``. The engine's sweep keys
clusters by ``cluster_id`` alone (one string key over a million segments), so when the day's clusters share
an id across workspaces it qualifies cluster and pool ids with their workspace on the way in
(``<workspace_id>␟<id>``, the ASCII unit separator, which no Databricks id contains) and strips it on the
way out. The common case, no shared id, pays one group-by over the clusters table and nothing else.

Limit: the check reads ``raw/clusters``; a shared id that only the events or the runs name (a cluster that
``clusters/get`` no longer knows) is not qualified.
"""

from typing import TypeVar

import polars as pl

from cost_assets.costing.frames import ENGINE, Frame, lazy

SEP = "\x1f"
F = TypeVar("F", pl.DataFrame, pl.LazyFrame)
ID_COLUMNS = ("cluster_id", "instance_pool_id", "driver_instance_pool_id")


def shared_across_workspaces(clusters: Frame) -> bool:
    """Whether a cluster or pool id of ``clusters`` (``raw/clusters`` rows) belongs to two workspaces."""
    frame = lazy(clusters)
    names = frame.collect_schema().names()
    if "workspace_id" not in names:
        return False
    ids = [c for c in ID_COLUMNS if c in names]
    pairs = pl.concat(
        [frame.select("workspace_id", pl.col(c).alias("_id")) for c in ids], how="vertical_relaxed"
    ).drop_nulls("_id")
    return bool(
        pairs.group_by("_id")
        .agg(pl.col("workspace_id").n_unique() > 1)
        .select(pl.any("workspace_id"))
        .collect(engine=ENGINE)
        .item()
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
