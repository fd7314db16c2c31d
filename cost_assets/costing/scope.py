"""Tag precedence and ``mart/cost_by_scope``: who owns an attributed dollar.

**Tag precedence** (per tag key, independently): **job tags > cluster custom tags > pool tags > the
bill's ``custom_tags``**. Why this order:

* a run belongs to its job whatever cluster it ran on: a job tagged ``team=ml`` on a shared cluster
  tagged ``team=analytics`` is ``ml`` money (job tags are the most specific statement of ownership);
* a cluster's own custom tags describe everything on it that has no job (idle time, notebooks);
* pool tags are inherited by the VMs of pool-backed clusters (on AWS the VMs carry the pool's tags, not
  the cluster's), so they are a fallback for clusters that are not tagged themselves;
* the bill's ``custom_tags`` are last: they are the only tags for resources the REST side does not
  describe (warehouses, endpoints, serverless without a job), and for everything else they repeat what
  the sources above already say.

Precedence is per key, so a job tagged only ``team`` on a cluster tagged ``cost_center`` gets both. An
empty string counts as no tag. The dimensions are ``vocabulary.TAG_DIMENSIONS``; each source is the snapshot
nearest the row's ``usage_date`` (jobs and clusters are daily snapshots).

``cost_by_scope`` rolls attributed dollars up per day × workspace × dimension × value; a row without a
value for a dimension counts under ``vocabulary.UNTAGGED`` so every dimension sums to the same total.
"""

import polars as pl

from cost_assets import schemas
from cost_assets.costing.frames import Frame, lazy
from cost_assets.vocabulary import CURRENCY, NOT_CONFIGURED, SCOPE_DIMENSIONS, TAG_DIMENSIONS, UNTAGGED

COST_BY_SCOPE_COLUMNS = list(schemas.CostByScope.to_schema().columns)


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.str.strip_chars() != "").then(expr)


def tags_from_json(column: str, prefix: str) -> list[pl.Expr]:
    """The tag dimensions read from a JSON tag map column, as ``<prefix><dimension>``.

    Path matching rather than decoding: a malformed map yields no tags instead of failing the day.
    """
    source = pl.col(column).fill_null("{}")
    return [_blank_to_null(source.str.json_path_match(f"$.{t}")).alias(f"{prefix}{t}") for t in TAG_DIMENSIONS]


def _nearest(frame: pl.LazyFrame, snapshots: pl.LazyFrame, by: list[str]) -> pl.LazyFrame:
    """Left-join the snapshot nearest each row's ``usage_date`` (by ``by``); rows keep their order."""
    if "usage_date" not in snapshots.collect_schema().names():
        return frame.join(snapshots.unique(by, keep="last"), on=by, how="left")
    return (
        frame.with_row_index("_row")
        .sort("usage_date")
        .join_asof(snapshots.sort("usage_date"), on="usage_date", by=by, strategy="nearest", check_sortedness=False)
        .sort("_row")
        .drop("_row")
    )


def job_snapshots(jobs: Frame) -> pl.LazyFrame:
    """Per (workspace, job, day): the job's tag dimensions and creator, prefixed ``job_``."""
    return lazy(jobs).select(
        "workspace_id",
        "job_id",
        "usage_date",
        *[_blank_to_null(pl.col(t)).alias(f"job_{t}") for t in TAG_DIMENSIONS],
        pl.col("creator_user_name").alias("job_creator"),
        pl.col("job_name"),
    )


def resolve_tags(
    frame: Frame,
    jobs: Frame | None = None,
    clusters: Frame | None = None,
    pools: Frame | None = None,
) -> pl.LazyFrame:
    """Add the tag dimensions to ``frame`` by precedence job > cluster > pool > bill (module doc).

    ``frame`` needs ``usage_date``, ``workspace_id``, ``job_id`` and ``cluster_id`` (either may be null)
    and may have ``custom_tags`` (the bill's, canonical JSON). ``jobs``: ``raw/jobs``; ``clusters``:
    ``raw/clusters`` (custom_tags, instance_pool_id); ``pools``: ``instance_pool_id, custom_tags``
    [+ ``usage_date``]. Missing sources simply contribute nothing. Also adds ``job_creator`` and
    ``cluster_creator`` (for the ``user`` dimension).
    """
    out = lazy(frame)
    names = out.collect_schema().names()
    out = out.with_columns(*(tags_from_json("custom_tags", "bill_") if "custom_tags" in names else []))
    sources = ["job_", "cluster_", "pool_", "bill_"]
    if jobs is not None:
        snaps = job_snapshots(jobs).drop("job_name")
        out = _nearest(out, snaps, ["workspace_id", "job_id"])
    if clusters is not None:
        # A cluster is (workspace, id) where both sides say the workspace: two workspaces may share an id.
        by_cluster = (
            ["workspace_id", "cluster_id"]
            if "workspace_id" in lazy(clusters).collect_schema().names()
            else ["cluster_id"]
        )
        snaps = lazy(clusters).select(
            *by_cluster,
            "usage_date",
            *tags_from_json("custom_tags", "cluster_"),
            pl.col("instance_pool_id").alias("_pool_id"),
            pl.col("creator_user_name").alias("cluster_creator"),
        )
        out = _nearest(out, snaps, by_cluster)
    if pools is not None and clusters is not None:
        pool_cols = lazy(pools).collect_schema().names()
        snaps = lazy(pools).select(
            pl.col("instance_pool_id").alias("_pool_id"),
            *(["usage_date"] if "usage_date" in pool_cols else []),
            *tags_from_json("custom_tags", "pool_"),
        )
        out = _nearest(out, snaps, ["_pool_id"])
    present = set(out.collect_schema().names())
    out = out.with_columns(
        *[pl.lit(None, pl.String).alias(c) for c in ["job_creator", "cluster_creator"] if c not in present]
    )
    return out.with_columns(
        pl.coalesce([pl.col(f"{s}{t}") for s in sources if f"{s}{t}" in present] or [pl.lit(None, pl.String)])
        .cast(pl.String)
        .alias(t)
        for t in TAG_DIMENSIONS
    ).drop([f"{s}{t}" for s in sources for t in TAG_DIMENSIONS if f"{s}{t}" in present], "_pool_id", strict=False)


def job_users(jobs: Frame, billing: Frame | None = None) -> pl.LazyFrame:
    """Per (workspace, job): the user its money counts for — the bill's ``run_as`` (the identity the job
    runs as, the most frequent one) when the bill names one, else the job's creator."""
    creators = (
        lazy(jobs)
        .sort("usage_date")
        .group_by("workspace_id", "job_id")
        .agg(pl.col("creator_user_name").drop_nulls().last().alias("_creator"))
    )
    if billing is None:
        return creators.select("workspace_id", "job_id", pl.col("_creator").alias("job_user"))
    run_as = (
        lazy(billing)
        .filter(pl.col("job_id").is_not_null() & pl.col("run_as").is_not_null())
        .group_by("workspace_id", "job_id", "run_as")
        .agg(pl.len().alias("_n"))
        .sort(["_n", "run_as"], descending=[True, False])
        .group_by("workspace_id", "job_id")
        .agg(pl.col("run_as").first())
    )
    return creators.join(run_as, on=["workspace_id", "job_id"], how="full", coalesce=True).select(
        "workspace_id", "job_id", pl.coalesce("run_as", "_creator").alias("job_user")
    )


def cluster_money_id() -> pl.Expr:
    """The cluster of a ``mart/attributed_costs`` row (its resource, when that is a cluster), else null."""
    return pl.when(pl.col("resource_type") == "cluster").then(pl.col("resource_id"))


def with_user(
    rows: pl.LazyFrame,
    cluster_id: pl.Expr,
    jobs: Frame | None = None,
    clusters: Frame | None = None,
    billing: Frame | None = None,
) -> pl.LazyFrame:
    """Add ``user``, the one rule every consumer of the ``user`` dimension shares (cost_by_scope, the
    anomaly monitors, budgets), so a user's money is the same sum wherever it is counted.

    ``user`` = the job's user (:func:`job_users`: the bill's ``run_as``, else the job's creator; needs
    ``jobs``), else the creator of the row's cluster (``cluster_id``, an expression giving the row's
    cluster or null; needs ``clusters``: the latest non-null creator of its snapshots), else null. ``rows``
    needs ``workspace_id`` and ``job_id``; a missing source contributes nothing.
    """
    if jobs is not None:
        rows = rows.join(job_users(jobs, billing), on=["workspace_id", "job_id"], how="left")
    else:
        rows = rows.with_columns(pl.lit(None, pl.String).alias("job_user"))
    if clusters is not None:
        creators = (
            lazy(clusters)
            .sort("usage_date")
            .group_by(pl.col("cluster_id").alias("_cluster_id"))
            .agg(pl.col("creator_user_name").drop_nulls().last().alias("_cluster_user"))
        )
        rows = rows.with_columns(cluster_id.alias("_cluster_id")).join(creators, on="_cluster_id", how="left")
    else:
        rows = rows.with_columns(pl.lit(None, pl.String).alias("_cluster_user"))
    return rows.with_columns(pl.coalesce("job_user", "_cluster_user").alias("user")).drop(
        "job_user", "_cluster_user", "_cluster_id", strict=False
    )


def cost_by_scope(
    attributed: Frame,
    jobs: Frame,
    clusters: Frame | None = None,
    billing: Frame | None = None,
    serving_costs: Frame | None = None,
) -> pl.DataFrame:
    """``mart/cost_by_scope``: daily attributed $ per workspace × dimension × value.

    Dimensions: the tag dimensions (already resolved on ``attributed`` by precedence), ``job``
    (``job_id``) and ``user`` (for job money: the bill's ``run_as`` else the job's creator, see
    :func:`job_users`; for idle/unattributed money on a cluster: the cluster's creator). Missing values
    are ``vocabulary.UNTAGGED``.

    With ``serving_costs`` (``mart/serving_costs``), endpoint money is taken from there instead of the
    ``attributed`` endpoint rows (which it replaces, never adds to; not those of a workspace the account
    does not list, which serving_costs leaves out): it is split by the requests'
    ``tenant`` / ``user``, so tenant and user totals include model serving. Every dimension then still
    sums to the attributed total of the day (serving_costs conserves each endpoint-hour's bill).
    """
    att = lazy(attributed)
    if serving_costs is not None:  # it has no endpoint of an unlisted workspace: those rows stay
        att = att.filter((pl.col("resource_type") != "endpoint") | (pl.col("reason") == NOT_CONFIGURED))
    rows = with_user(att, cluster_money_id(), jobs, clusters, billing).select(
        "usage_date",
        "workspace_id",
        *TAG_DIMENSIONS,
        pl.col("job_id").cast(pl.String).alias("job"),
        "user",
        "billed_dbus",
        "billed_cost_usd",
        "estimated_cost_usd",
        "consumer",
    )
    if serving_costs is not None:
        rows = pl.concat([rows, _serving_rows(serving_costs)], how="diagonal_relaxed")
    long = rows.unpivot(
        index=["usage_date", "workspace_id", "billed_dbus", "billed_cost_usd", "estimated_cost_usd", "consumer"],
        on=SCOPE_DIMENSIONS,
        variable_name="dimension",
        value_name="value",
    ).with_columns(pl.coalesce(_blank_to_null(pl.col("value")), pl.lit(UNTAGGED)).alias("value"))

    def by_consumer(kind: str) -> pl.Expr:
        return pl.col("billed_cost_usd").filter(pl.col("consumer") == kind).sum().alias(f"{kind}_cost_usd")

    return (
        long.group_by("usage_date", "workspace_id", "dimension", "value")
        .agg(
            pl.col("billed_dbus").sum(),
            # Unknown money (an unpriced SKU) keeps the total unknown rather than silently smaller.
            pl.when(pl.col("billed_cost_usd").null_count() == 0)
            .then(pl.col("billed_cost_usd").sum())
            .alias("billed_cost_usd"),
            pl.col("estimated_cost_usd").sum(),
            by_consumer("run"),
            by_consumer("idle"),
            by_consumer("unattributed"),
            by_consumer("serving"),
        )
        .with_columns(pl.lit(CURRENCY).alias("currency_code"))
        .select(COST_BY_SCOPE_COLUMNS)
        .sort(["usage_date", "workspace_id", "dimension", "value"])
        .collect()
    )


def _serving_rows(serving_costs: Frame) -> pl.LazyFrame:
    """serving_costs groups as attributed-like rows: tenant and user from the requests, no job."""
    return lazy(serving_costs).select(
        "usage_date",
        "workspace_id",
        pl.when(pl.col("tenant") != UNTAGGED).then(pl.col("tenant")).alias("tenant"),
        pl.when(pl.col("user") != UNTAGGED).then(pl.col("user")).alias("user"),
        pl.col("actual_dbus").alias("billed_dbus"),
        pl.col("actual_usd").alias("billed_cost_usd"),
        pl.col("estimated_usd").alias("estimated_cost_usd"),
        pl.lit("serving").alias("consumer"),
    )
