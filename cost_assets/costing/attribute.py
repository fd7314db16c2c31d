"""Attribution: every billed dollar of ``mart/reconciliation`` handed to a run, idle or ``unattributed``.

Pure polars, no Dagster. Builds ``mart/attributed_costs``, its per-day conservation gap (the blocking
ERROR check) and the per-day accuracy metrics.

**How a billed grain row (resource × hour × SKU) is handed out** — the estimate only decides *shares*,
the bill decides the *amount* (``attributed = billed × share``, DBUs and $ alike):

1. *Exact*: the estimate has the same resource-hour and SKU → its consumer rows (runs, idle) share it.
2. *Residual*: the resource-hour is estimated only under SKUs the bill does not have (``sku_mismatch``:
   Photon or tier inferred wrong) → those estimate rows share it, because they describe the same cluster
   time. Their estimated $ is split over the unmatched billed SKUs by billed DBUs so it is not counted
   twice.
3. *Hour*: the resource-hour is estimated, but all its estimated SKUs are billed too → the whole hour's
   estimate shares it (estimated $ stays on the exact rows).
4. *No estimate* for the resource-hour → by the bill's own metadata (serverless compute has no cluster,
   so it is never attributed through a cluster timeline): a row whose bill names one ``job_run_id`` (serverless jobs,
   job clusters) is that run's (``consumer='run'``, ``task_run_id`` null; a bill naming only a
   ``job_id`` gives a run row with null ``run_id``, so the job's tags still apply); an endpoint row is
   ``unattributed`` with reason ``serving`` (its split over requests, by tokens, is
   ``mart/serving_costs``; :func:`cost_assets.costing.scope.cost_by_scope` can take that split so tenant
   and user totals include serving); anything else is ``unattributed``.

**Shares** inside a grain row: by estimated DBUs; if the estimate has no DBUs there (unpriced node type,
the estimate thinks the cluster was still starting) by estimated total $ (DBU + VM); then by runtime; if
all are zero the row is ``unattributed`` with reason ``no_share``. The shares are renormalized per grain
row, so they sum to exactly 1 and money is conserved by construction.

**Estimate rows with no billing** are kept with ``billed_* = 0`` and their estimated $, reason
``no_billing`` (or ``unpriced``), so an unbilled estimate is visible rather than dropped.

**Reason** of an attributed row (``vocabulary.ATTRIBUTION_REASONS``): the grain row's reconciliation
reason, except where the attribution path says more: ``serving`` (endpoint), ``serverless`` (no compute
resource; consumer says whether a job run was found), ``warehouse`` (no warehouse estimate yet),
``no_share`` (see above). ``unpriced`` always wins: that money is unknown.

**Workspaces not configured.** For an account of several workspaces (``configured``: their ids), a bill row
of any other workspace is ``unattributed`` with reason ``workspace_not_configured`` (nothing of that
workspace is fetched, so no run can own it; unless unpriced). One workspace (``configured`` None) owns the
whole bill.

**Tags** (team, tenant, project, cost_center) by :func:`cost_assets.costing.scope.resolve_tags`:
job tags > cluster custom tags > pool tags > the bill's custom tags.
"""

from collections.abc import Collection

import polars as pl

from cost_assets import schemas
from cost_assets.costing.frames import Frame, lazy
from cost_assets.costing.reconcile import GRAIN, RESOURCE_HOUR, TOLERANCE
from cost_assets.costing.scope import resolve_tags
from cost_assets.vocabulary import CONSUMERS, CURRENCY, NOT_CONFIGURED

CONSUMER_KEY = ["consumer", "run_id", "task_run_id", "job_id"]
ATTRIBUTED_COLUMNS = list(schemas.AttributedCosts.to_schema().columns)
_WEIGHTS = ["_w_dbu", "_w_cost", "_w_time"]
_BILLED = ["billed_dbus", "billed_cost_usd", "reason", "job_run_id", "custom_tags", "usage_date"]


def _estimate_rows(estimate_hourly: Frame) -> pl.LazyFrame:
    """Engine rows keyed like the bill, with the three share weights and the estimated DBU $."""
    return lazy(estimate_hourly).select(
        "workspace_id",
        pl.lit("cluster").alias("resource_type"),
        pl.col("cluster_id").alias("resource_id"),
        "hour_start",
        "sku_name",
        *CONSUMER_KEY,
        pl.col("dbus").fill_null(0.0).alias("_w_dbu"),
        (pl.col("dbu_cost_usd").fill_null(0.0) + pl.col("vm_cost_usd").fill_null(0.0)).alias("_w_cost"),
        pl.col("runtime_hours").fill_null(0.0).alias("_w_time"),
        pl.when(~pl.col("unpriced")).then(pl.col("dbu_cost_usd")).alias("_est_cost"),
    )


def _sum_consumers(frame: pl.LazyFrame, est_cost: pl.Expr | None) -> pl.LazyFrame:
    """One row per billed grain row × consumer (several estimated SKUs may feed one billed row).

    ``est_cost`` None: the rows carry no estimated $ (it is already on other rows).
    """
    known = pl.col("_est_cost").null_count() == 0
    return frame.group_by(*GRAIN, *CONSUMER_KEY, *_BILLED).agg(
        *[pl.col(w).sum() for w in _WEIGHTS],
        (pl.lit(None, pl.Float64) if est_cost is None else pl.when(known).then(est_cost.sum())).alias("_est_cost"),
    )


def _shared_rows(billed: pl.LazyFrame, est: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Billed grain rows handed out by estimate shares, and the billed rows without any estimate."""
    est_keys = est.select(GRAIN).unique().with_columns(pl.lit(True).alias("_exact"))
    billed_keys = billed.select(GRAIN)
    residual = est.join(billed_keys, on=GRAIN, how="anti", nulls_equal=True)
    residual_hours = residual.select(RESOURCE_HOUR).unique().with_columns(pl.lit(True).alias("_residual"))
    est_hours = est.select(RESOURCE_HOUR).unique().with_columns(pl.lit(True).alias("_hour"))
    modes = (
        billed.join(est_keys, on=GRAIN, how="left", nulls_equal=True)
        .join(residual_hours, on=RESOURCE_HOUR, how="left", nulls_equal=True)
        .join(est_hours, on=RESOURCE_HOUR, how="left", nulls_equal=True)
        .with_columns(
            pl.when(pl.col("_exact"))
            .then(pl.lit("exact"))
            .when(pl.col("_residual"))
            .then(pl.lit("residual"))
            .when(pl.col("_hour"))
            .then(pl.lit("hour"))
            .otherwise(pl.lit("none"))
            .alias("_mode")
        )
    )
    rows = modes.select(*GRAIN, *_BILLED, "_mode")
    exact = rows.filter(pl.col("_mode") == "exact").join(est, on=GRAIN, how="inner", nulls_equal=True)
    # Residual estimated $ is split over the hour's unmatched billed SKUs by their billed DBUs.
    res_rows = rows.filter(pl.col("_mode") == "residual").with_columns(
        pl.when(pl.col("billed_dbus").sum().over(RESOURCE_HOUR) != 0)
        .then(pl.col("billed_dbus") / pl.col("billed_dbus").sum().over(RESOURCE_HOUR))
        .otherwise(1.0 / pl.len().over(RESOURCE_HOUR))
        .alias("_est_part")
    )
    est_hour = est.drop("sku_name")
    res = res_rows.join(residual.drop("sku_name"), on=RESOURCE_HOUR, how="inner", nulls_equal=True)
    hour = rows.filter(pl.col("_mode") == "hour").join(est_hour, on=RESOURCE_HOUR, how="inner", nulls_equal=True)
    shared = pl.concat(
        [
            _sum_consumers(exact, pl.col("_est_cost")),
            _sum_consumers(res, pl.col("_est_cost") * pl.col("_est_part")),
            _sum_consumers(hour, None),
        ],
        how="vertical_relaxed",
    )
    return shared, rows.filter(pl.col("_mode") == "none").drop("_mode")


def _apply_shares(shared: pl.LazyFrame) -> pl.LazyFrame:
    """billed × share per consumer; a grain row with no usable weight goes whole to ``unattributed``."""
    sums = {w: pl.col(w).sum().over(GRAIN) for w in _WEIGHTS}
    share = (
        pl.when(sums["_w_dbu"] > 0)
        .then(pl.col("_w_dbu") / sums["_w_dbu"])
        .when(sums["_w_cost"] > 0)
        .then(pl.col("_w_cost") / sums["_w_cost"])
        .when(sums["_w_time"] > 0)
        .then(pl.col("_w_time") / sums["_w_time"])
    )
    with_share = shared.with_columns(share.alias("_share"))
    handed = with_share.with_columns(
        (pl.col("billed_dbus") * pl.col("_share").fill_null(0.0)).alias("billed_dbus"),
        (pl.col("billed_cost_usd") * pl.col("_share").fill_null(0.0)).alias("billed_cost_usd"),
        pl.col("_est_cost").alias("estimated_cost_usd"),
    )
    no_share = (
        with_share.filter(pl.col("_share").is_null())
        .select(*GRAIN, *_BILLED)
        .unique(GRAIN)
        .with_columns(
            pl.lit("unattributed").alias("consumer"),
            *[pl.lit(None, pl.Int64).alias(c) for c in ["run_id", "task_run_id", "job_id"]],
            pl.lit(None, pl.Float64).alias("estimated_cost_usd"),
            pl.when(pl.col("reason") == "unpriced")
            .then(pl.lit("unpriced"))
            .otherwise(pl.lit("no_share"))
            .alias("reason"),
        )
    )
    return pl.concat([handed, no_share], how="diagonal_relaxed")


def _unestimated_rows(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Billed rows with no estimate for their resource-hour: the bill's job run, or ``unattributed``."""
    kind = pl.col("resource_type")
    by_type = (
        pl.when(pl.col("reason") == "unpriced")
        .then(pl.lit("unpriced"))
        .when(kind == "endpoint")
        .then(pl.lit("serving"))
        .when(kind == "serverless")
        .then(pl.lit("serverless"))
        .when(kind == "warehouse")
        .then(pl.lit("warehouse"))
        .otherwise(pl.col("reason"))
    )
    # A bill naming only the job (no run id) still says whose money it is: consumer run, run_id null.
    is_run = (pl.col("job_run_id").is_not_null() | pl.col("_job_id").is_not_null()) & (kind != "endpoint")
    return rows.with_columns(
        pl.when(is_run).then(pl.lit("run")).otherwise(pl.lit("unattributed")).alias("consumer"),
        pl.when(is_run).then(pl.col("job_run_id")).alias("run_id"),
        pl.lit(None, pl.Int64).alias("task_run_id"),
        pl.when(is_run).then(pl.col("_job_id")).alias("job_id"),
        pl.lit(None, pl.Float64).alias("estimated_cost_usd"),
        by_type.alias("reason"),
    )


def _not_configured(rows: pl.LazyFrame, configured: Collection[str]) -> pl.LazyFrame:
    """Rows of a workspace outside ``configured``: unattributed, reason ``workspace_not_configured`` (an
    unpriced row stays ``unpriced``)."""
    foreign = ~pl.col("workspace_id").is_in(list(configured))
    return rows.with_columns(
        pl.when(foreign).then(pl.lit("unattributed")).otherwise(pl.col("consumer")).alias("consumer"),
        *[pl.when(~foreign).then(pl.col(c)).alias(c) for c in ("run_id", "task_run_id", "job_id")],
        pl.when(foreign & (pl.col("reason") != "unpriced"))
        .then(pl.lit(NOT_CONFIGURED))
        .otherwise(pl.col("reason"))
        .alias("reason"),
    )


def attributed_costs(
    reconciliation: Frame,
    estimate_hourly: Frame,
    jobs: Frame | None = None,
    clusters: Frame | None = None,
    pools: Frame | None = None,
    configured: Collection[str] | None = None,
) -> pl.DataFrame:
    """``mart/attributed_costs``: the bill handed out per resource × hour × SKU × consumer.

    ``reconciliation``: :func:`cost_assets.costing.reconcile.reconciliation` output; ``estimate_hourly``:
    the same ``engine.cost_by_cluster_hour`` rows it was built from; ``jobs`` / ``clusters`` / ``pools``
    (``instance_pool_id, custom_tags``): tag sources, optional. Columns :data:`ATTRIBUTED_COLUMNS`;
    per day Σ ``billed_cost_usd`` equals the reconciliation's (see :func:`conservation_gaps`).
    """
    recon = lazy(reconciliation)
    est = _estimate_rows(estimate_hourly)
    billed = recon.filter(pl.col("billing_records") > 0).select(*GRAIN, *_BILLED, pl.col("job_id").alias("_job_id"))
    shared, none = _shared_rows(billed.drop("_job_id"), est)
    none = none.join(billed.select(*GRAIN, "_job_id"), on=GRAIN, how="left", nulls_equal=True)
    # Estimates with no billing, unless a sku_mismatch row of their hour already used them as residual.
    residual_used = billed.join(est.select(GRAIN).unique(), on=GRAIN, how="anti", nulls_equal=True).select(
        RESOURCE_HOUR
    )
    unbilled = (
        recon.filter(pl.col("billing_records") == 0)
        .select(*GRAIN, *_BILLED)
        .join(residual_used.unique(), on=RESOURCE_HOUR, how="anti", nulls_equal=True)
        .join(est, on=GRAIN, how="inner", nulls_equal=True)
        .with_columns(
            pl.lit(0.0).alias("billed_dbus"),
            pl.lit(0.0).alias("billed_cost_usd"),
            pl.col("_est_cost").alias("estimated_cost_usd"),
        )
    )
    rows = pl.concat([_apply_shares(shared), _unestimated_rows(none), unbilled], how="diagonal_relaxed")
    if configured is not None:
        rows = _not_configured(rows, configured)
    tagged = resolve_tags(
        rows.with_columns(
            pl.when(pl.col("resource_type") == "cluster").then(pl.col("resource_id")).alias("cluster_id")
        ),
        jobs,
        clusters,
        pools,
    )
    return (
        tagged.with_columns(pl.lit(CURRENCY).alias("currency_code"))
        .select(ATTRIBUTED_COLUMNS)
        .sort([*GRAIN, "consumer", "task_run_id", "run_id"], nulls_last=True)
        .collect()
    )


def _day_sums(frame: Frame, prefix: str) -> pl.LazyFrame:
    return (
        lazy(frame)
        .group_by("usage_date", "workspace_id")
        .agg(
            pl.col("billed_cost_usd").fill_null(0.0).sum().alias(f"{prefix}_cost_usd"),
            pl.col("billed_dbus").fill_null(0.0).sum().alias(f"{prefix}_dbus"),
            pl.col("billed_dbus").filter(pl.col("billed_cost_usd").is_null()).sum().alias(f"{prefix}_unpriced_dbus"),
        )
    )


def conservation_gaps(
    reconciliation: Frame, attributed: Frame, tolerance_usd: float = 0.01, tolerance_dbus: float = 0.001
) -> pl.DataFrame:
    """Per day × workspace: Σ attributed vs Σ billed, in $ and DBUs (the lead's blocking ERROR check).

    ``gap_* = attributed − billed``; ``ok`` is true when both gaps are within tolerance (default
    $0.01 and 0.001 DBU) and the DBUs of unknown money (unpriced SKU) agree too. A day present on one
    side only shows the whole other side as its gap.
    """
    keys = ["usage_date", "workspace_id"]
    out = (
        _day_sums(reconciliation, "billed")
        .join(_day_sums(attributed, "attributed"), on=keys, how="full", coalesce=True, nulls_equal=True)
        .with_columns(pl.exclude(keys).fill_null(0.0))
        .with_columns(
            (pl.col("attributed_cost_usd") - pl.col("billed_cost_usd")).alias("gap_usd"),
            (pl.col("attributed_dbus") - pl.col("billed_dbus")).alias("gap_dbus"),
            (pl.col("attributed_unpriced_dbus") - pl.col("billed_unpriced_dbus")).alias("gap_unpriced_dbus"),
        )
        .with_columns(
            (
                (pl.col("gap_usd").abs() <= tolerance_usd)
                & (pl.col("gap_dbus").abs() <= tolerance_dbus)
                & (pl.col("gap_unpriced_dbus").abs() <= tolerance_dbus)
            ).alias("ok"),
            pl.lit(CURRENCY).alias("currency_code"),
        )
    )
    return out.sort(keys, nulls_last=True).collect()


ACCURACY_COLUMNS = [
    "usage_date",
    "workspace_id",
    "billed_cost_usd",
    "estimated_cost_usd",
    "matched_cost_usd",
    "matched_share",
    "cluster_billed_cost_usd",
    "cluster_matched_share",
    "run_cost_usd",
    "coverage",
    "idle_cost_usd",
    "unattributed_cost_usd",
    "unpriced_billed_dbus",
    "estimate_unpriced_billed_usd",
    "no_billing_estimated_usd",
    "currency_code",
]


def accuracy(reconciliation: Frame, attributed: Frame, tolerance: float = TOLERANCE) -> pl.DataFrame:
    """Per day × workspace: how well the estimate explains the bill (the accuracy metrics).

    * ``matched_share``: share of billed $ on grain rows whose estimate is within ``tolerance`` of the
      billed DBUs (``|ratio − 1| ≤ 5 %``); ``cluster_matched_share`` the same over cluster rows only
      (the resources the engine estimates: serverless, warehouse and endpoint $ have no estimate there);
    * ``coverage``: share of billed $ attributed to runs; ``idle_cost_usd``, ``unattributed_cost_usd``;
    * unknown money: ``unpriced_billed_dbus`` (billed DBUs whose SKU has no price: their $ is unknown),
      ``estimate_unpriced_billed_usd`` (billed $ on rows whose estimate is unpriced),
      ``no_billing_estimated_usd`` (estimated $ nothing was billed for).

    Shares are null on a day with no priced billed $.
    """
    keys = ["usage_date", "workspace_id"]
    billed = pl.col("billed_cost_usd").fill_null(0.0)
    within = ((pl.col("ratio") - 1).abs() <= tolerance) | (
        (pl.col("billed_dbus") == 0) & (pl.col("estimated_dbus") == 0)
    )
    is_cluster = pl.col("resource_type") == "cluster"
    rec = (
        lazy(reconciliation)
        .group_by(keys)
        .agg(
            billed.sum().alias("billed_cost_usd"),
            pl.col("estimated_cost_usd").sum(),
            billed.filter(within.fill_null(False)).sum().alias("matched_cost_usd"),
            billed.filter(is_cluster).sum().alias("cluster_billed_cost_usd"),
            billed.filter(is_cluster & within.fill_null(False)).sum().alias("_cluster_matched"),
            pl.col("billed_dbus").filter(pl.col("unpriced")).sum().alias("unpriced_billed_dbus"),
            billed.filter(pl.col("estimate_unpriced")).sum().alias("estimate_unpriced_billed_usd"),
            pl.col("estimated_cost_usd").filter(pl.col("billing_records") == 0).sum().alias("no_billing_estimated_usd"),
        )
    )
    consumer_cost = (
        lazy(attributed)
        .group_by(keys)
        .agg(
            pl.col("billed_cost_usd").filter(pl.col("consumer") == kind).sum().alias(f"{kind}_cost_usd")
            for kind in CONSUMERS
        )
    )

    def share(num: str, den: str) -> pl.Expr:
        return pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den))

    return (
        rec.join(consumer_cost, on=keys, how="left", nulls_equal=True)
        .with_columns(
            share("matched_cost_usd", "billed_cost_usd").alias("matched_share"),
            share("_cluster_matched", "cluster_billed_cost_usd").alias("cluster_matched_share"),
            share("run_cost_usd", "billed_cost_usd").alias("coverage"),
            pl.lit(CURRENCY).alias("currency_code"),
        )
        .select(ACCURACY_COLUMNS)
        .sort(keys, nulls_last=True)
        .collect()
    )
