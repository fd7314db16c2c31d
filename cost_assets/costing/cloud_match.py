"""Which cluster or pool a cloud charge belongs to, and the estimate brought to the same keys.

Databricks tags the VMs it launches: a cluster's own VMs carry ``ClusterId``; VMs taken from an instance
pool carry only the pool's tags (``DatabricksInstancePoolId``), whichever cluster uses them, and idle pool
VMs carry nothing else. So both bills meet on a *resource key*:

* ``cluster`` — a cluster that does not draw from a pool (the key is its id);
* ``pool`` — a pool: its idle VMs (the estimate's pool rows, whose ``cluster_id`` is the pool id) and every
  cluster drawing from it (its ``instance_pool_id``, else its ``driver_instance_pool_id``; a driver from a
  second pool is counted with the workers' pool). A charge tagged with the id of a cluster known to draw
  from a pool is keyed by the pool too, so both sides agree;
* ``warehouse`` — a SQL warehouse's VMs (``SqlWarehouseId``); the estimate has none;
* ``untagged`` — a Databricks resource with none of those tags (keyed by its cloud resource id).

Ids are compared lower-cased (Google Cloud lower-cases label values). Pure polars, no Dagster.
"""

import polars as pl

from cost_assets.costing.frames import Frame, lazy

NO_RESOURCE = "(no resource id)"
# Where a keyed charge stands: its day, period, grain, resource key and service category. Both cloud marts
# (``vm_reconcile.py``, ``cloud_attribute.py``) lead with these columns, so their rows line up.
KEYED_COLUMNS = ["usage_date", "period_start", "grain", "resource_kind", "resource_key", "service_category"]


def period_start(grain: pl.Expr, column: str) -> pl.Expr:
    """The period a timestamp falls in: its hour where ``grain`` is ``hour``, else its day. One rule, so the
    bill's periods (:func:`keyed_cloud`) and the reconciliation's (``vm_reconcile.py``) are the same."""
    return pl.when(grain == "hour").then(pl.col(column).dt.truncate("1h")).otherwise(pl.col(column).dt.truncate("1d"))


def pool_of_cluster(clusters: Frame) -> pl.DataFrame:
    """cluster id (lower case) → the pool its VMs come from, for clusters that draw from one."""
    return (
        lazy(clusters)
        .select(
            pl.col("cluster_id").str.to_lowercase().alias("_cluster"),
            pl.coalesce("instance_pool_id", "driver_instance_pool_id").str.to_lowercase().alias("_pool"),
        )
        .filter(pl.col("_pool").is_not_null())
        .unique("_cluster", keep="last")
        .collect()
    )


def pool_ids(clusters: Frame) -> list[str]:
    """Every pool the clusters draw from (lower case): the estimate's rows with such a ``cluster_id`` are
    the pool's idle VMs."""
    frame = lazy(clusters).collect()
    ids = pl.concat([frame["instance_pool_id"], frame["driver_instance_pool_id"]]).drop_nulls().str.to_lowercase()
    return ids.unique().to_list()


def keyed_cloud(cloud: Frame, clusters: Frame) -> pl.DataFrame:
    """The Databricks charges of ``raw.cloud_costs`` with ``resource_kind``, ``resource_key`` and
    ``period_start`` (the hour of an hourly charge, else the day it starts)."""
    pools = pool_of_cluster(clusters).lazy()
    cluster = pl.col("cluster_id").str.to_lowercase()
    return (
        lazy(cloud)
        .filter(pl.col("is_databricks"))
        .with_columns(cluster.alias("_cluster"))
        .join(pools, on="_cluster", how="left")
        .with_columns(
            pl.when(pl.col("_pool").is_not_null())
            .then(pl.lit("pool"))
            .when(pl.col("cluster_id").is_not_null())
            .then(pl.lit("cluster"))
            .when(pl.col("instance_pool_id").is_not_null())
            .then(pl.lit("pool"))
            .when(pl.col("sql_warehouse_id").is_not_null())
            .then(pl.lit("warehouse"))
            .otherwise(pl.lit("untagged"))
            .alias("resource_kind"),
            pl.coalesce(
                "_pool",
                "_cluster",
                pl.col("instance_pool_id").str.to_lowercase(),
                pl.col("sql_warehouse_id").str.to_lowercase(),
                "resource_id",
                pl.lit(NO_RESOURCE),
            ).alias("resource_key"),
            period_start(pl.col("grain"), "charge_period_start").alias("period_start"),
        )
        .drop("_cluster", "_pool")
        .collect()
    )


def keyed_estimate(estimated: Frame, clusters: Frame, bill: pl.DataFrame) -> pl.DataFrame:
    """``mart.estimated_costs`` rows with ``resource_kind`` / ``resource_key`` (:func:`keyed_cloud`'s keys).

    A row whose ``cluster_id`` is a pool's id is that pool's idle VMs: a pool the clusters draw from, or one
    the keyed ``bill`` has charges of — a warm pool no cluster used that day has no cluster to name it."""
    pools = pool_of_cluster(clusters).lazy()
    cluster = pl.col("cluster_id").str.to_lowercase()
    known = pool_ids(clusters) + bill.filter(pl.col("resource_kind") == "pool")["resource_key"].unique().to_list()
    return (
        lazy(estimated)
        .with_columns(cluster.alias("_cluster"))
        .join(pools, on="_cluster", how="left")
        .with_columns(
            pl.when(pl.col("_pool").is_not_null() | pl.col("_cluster").is_in(known))
            .then(pl.lit("pool"))
            .otherwise(pl.lit("cluster"))
            .alias("resource_kind"),
            pl.coalesce("_pool", "_cluster").alias("resource_key"),
        )
        .drop("_cluster", "_pool")
        .collect()
    )
