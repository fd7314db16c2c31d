"""Reconciliation: the estimate brought to the bill's grain (resource × hour × SKU) and compared.

Pure polars, no Dagster. Builds ``mart/reconciliation``; ``attribute.py`` then hands the billed amount of
each grain row to consumers, ``serving.py`` splits the endpoint rows over requests.

**The bill side.** ``raw/billing_usage`` (any source, one normalized shape). The billed amount of a grain
row is the *plain sum* of ``usage_quantity`` over ORIGINAL + RETRACTION + RESTATEMENT: a RETRACTION
negates its original, the RESTATEMENT carries the corrected value (``record_type``). Filtering ORIGINAL
would over-count, ``abs()`` would double-count. The hour is ``usage_start_time`` (truncated to the
hour): legacy CSV rows were already mapped by the parser to the hour their end-of-hour stamp closes, so
nothing is shifted here.

**Resource of a usage row** (from the identifiers in its ``usage_metadata``), first match wins:
``cluster_id`` → ``cluster``; ``warehouse_id`` → ``warehouse``; ``endpoint_name`` → ``endpoint``;
anything else → ``serverless`` (no compute resource: serverless jobs/notebooks and account-level
products). A serverless row's ``resource_id`` is its ``job_run_id``, else ``job:<job_id>``, else its
``billing_origin_product``, else ``(unknown)`` — so serverless job runs reconcile (and attribute) one by
one, directly from the bill, never through a cluster timeline. ``job_id`` / ``job_run_id`` are kept on
the grain row when the bill names exactly one (job clusters and serverless; never on all-purpose
compute, where Databricks leaves them empty).

**Billed $** = Σ per usage row of ``usage_quantity × effective_price`` of that SKU, with the price row
chosen like Databricks' canonical ``list_prices`` join (``price_start < usage_end ≤ price_end``, i.e. the
half-open window ``[price_start_time, price_end_time)`` that holds the hour's last instant), on
``cloud`` (the row's, else ``default_cloud``: the legacy CSV has none), ``sku_name`` and ``usage_unit``.
Only USD price rows are used (as the engine does); a SKU without a price makes the grain row's billed $
**null** and ``unpriced`` true — never $0.

**The estimate side.** ``engine.cost_by_cluster_hour`` rows (cluster × hour × SKU × consumer), summed
per cluster × hour × SKU. Estimated $ is DBU $ at the effective price (VM $ is not on the Databricks
bill). If any consumer row of the grain is ``unpriced`` the estimated DBUs and $ are null (a partial sum
would look like a real number). Grain rows with no billing and an estimate of exactly 0 DBUs (VM-only
hours: a cluster starting, an idle pool) are dropped — they are not on the Databricks bill and agree
with it; their VM $ stays in ``mart/run_costs``.

**Absent sides.** A grain row with no usage record (``billing_records`` = 0) has ``billed_dbus`` =
``billed_cost_usd`` = 0 (nothing billed so far is a fact); one with no estimate has null ``estimated_*``
(not estimated is unknown). So a null dollar amount always means *unknown*, never *none*.
``custom_tags`` is the bill's tag map of the grain row (null when nothing is billed): the only tag
source for resources the REST side does not describe.

**Ratio and delta.** ``ratio = estimated_dbus / billed_dbus`` (DBUs, so it is defined without prices);
``delta_dbus`` / ``delta_usd`` = billed − estimated (positive: the bill is higher than the estimate);
null when either side is unknown (no estimate, an unpriced estimate, an unpriced SKU for the $).
``within_tolerance`` is ``|ratio − 1| ≤ tolerance`` (5 % by default), or both sides 0.

**Reason codes** (``vocabulary.RECONCILIATION_REASONS``), **in precedence order** (the first that
applies is the row's ``reason``; the boolean columns keep the facts a lower-precedence code would have
shown):

1. ``unpriced``     — billed DBUs whose SKU has no price at the hour, or an unpriced estimate: money is
   unknown, so nothing else can be judged;
2. ``sku_mismatch`` — the resource-hour is billed under a SKU the estimate does not have *and*
   estimated under a SKU the bill does not have (e.g. Photon/tier inferred wrong): both rows get it;
3. ``workspace_not_configured`` — billed in a workspace an account of several does not list
   (``configured``: the listed ids; None for one workspace, which owns the whole bill): nothing of that
   workspace is fetched, so it has no estimate and never could (kept apart from ``no_estimate``, which
   is a gap in a workspace that is fetched);
4. ``no_estimate``  — billed, but no estimate for this SKU of the resource-hour (serverless, warehouses,
   endpoints, missing events, a cluster the REST side never showed);
5. ``no_billing``   — estimated DBUs > 0 but nothing billed (late billing, or a phantom estimate);
6. ``correction``   — the bill of the grain row has RETRACTION/RESTATEMENT records (the day must be
   re-materialized when they land; ``within_tolerance`` still tells whether the corrected bill matches);
7. ``mismatch``     — ``|ratio − 1|`` above the tolerance;
8. ``ok``.
"""

from collections.abc import Collection

import polars as pl

from cost_assets import schemas
from cost_assets.costing.frames import Frame, lazy
from cost_assets.costing.timeline import ONE_US
from cost_assets.vocabulary import CURRENCY, NOT_CONFIGURED

TOLERANCE = 0.05
GRAIN = ["workspace_id", "resource_type", "resource_id", "hour_start", "sku_name"]
RESOURCE_HOUR = ["workspace_id", "resource_type", "resource_id", "hour_start"]
RECONCILIATION_COLUMNS = list(schemas.Reconciliation.to_schema().columns)


def resource_of_usage() -> list[pl.Expr]:
    """``resource_type`` and ``resource_id`` of a ``BillingUsage`` row (see module doc)."""
    serverless_id = pl.coalesce(
        pl.col("job_run_id").cast(pl.String),
        pl.lit("job:") + pl.col("job_id").cast(pl.String),
        pl.col("billing_origin_product"),
        pl.lit("(unknown)"),
    )
    kind = (
        pl.when(pl.col("cluster_id").is_not_null())
        .then(pl.lit("cluster"))
        .when(pl.col("warehouse_id").is_not_null())
        .then(pl.lit("warehouse"))
        .when(pl.col("endpoint_name").is_not_null())
        .then(pl.lit("endpoint"))
        .otherwise(pl.lit("serverless"))
    )
    rid = pl.coalesce("cluster_id", "warehouse_id", "endpoint_name", serverless_id)
    return [kind.alias("resource_type"), rid.alias("resource_id")]


def _priced_usage(billing: Frame, dbu_prices: Frame, default_cloud: str) -> pl.LazyFrame:
    """Usage rows with their grain keys and ``usage_cost_usd`` (null when the SKU has no price)."""
    prices = (
        lazy(dbu_prices)
        .filter(pl.col("currency_code") == CURRENCY)
        .select(
            "cloud",
            "sku_name",
            "usage_unit",
            pl.col("price_start_time").alias("_from"),
            pl.col("price_end_time").alias("_to"),
            "effective_price",
        )
        .sort("_from")
    )
    usage = (
        lazy(billing)
        .with_columns(
            *resource_of_usage(),
            pl.col("usage_start_time").dt.truncate("1h").alias("hour_start"),
            pl.coalesce(pl.col("cloud"), pl.lit(default_cloud.upper())).alias("cloud"),
            # The hour's last instant: the canonical list_prices join uses usage_end_time ∈ (start, end].
            (pl.col("usage_end_time") - ONE_US).alias("_priced_at"),
        )
        .sort("_priced_at")
    )
    joined = usage.join_asof(
        prices,
        left_on="_priced_at",
        right_on="_from",
        by=["cloud", "sku_name", "usage_unit"],
        strategy="backward",
        check_sortedness=False,
    )
    in_window = pl.col("_to").is_null() | (pl.col("_priced_at") < pl.col("_to"))
    price = pl.when(in_window).then(pl.col("effective_price"))
    return joined.with_columns((pl.col("usage_quantity") * price).alias("usage_cost_usd"))


def billed_grain(billing: Frame, dbu_prices: Frame, default_cloud: str) -> pl.LazyFrame:
    """The bill per resource × hour × SKU: net DBUs, $ (null if any row is unpriced), corrections."""
    one = pl.col("job_id").min() == pl.col("job_id").max()
    one_run = pl.col("job_run_id").min() == pl.col("job_run_id").max()
    return (
        _priced_usage(billing, dbu_prices, default_cloud)
        .group_by(GRAIN)
        .agg(
            # Only DBU quantities are DBUs; other units (GPU_HOUR, DSU, ...) still count in the dollars.
            pl.col("usage_quantity").filter(pl.col("usage_unit") == "DBU").sum().alias("billed_dbus"),
            pl.len().cast(pl.Int64).alias("billing_records"),
            pl.col("usage_cost_usd").sum().alias("_billed_cost"),
            (pl.col("usage_cost_usd").is_null() & (pl.col("usage_quantity") != 0)).any().alias("unpriced"),
            (pl.col("record_type") != "ORIGINAL").any().alias("has_correction"),
            pl.when(one).then(pl.col("job_id").min()).alias("job_id"),
            pl.when(one_run).then(pl.col("job_run_id").min()).alias("job_run_id"),
            pl.col("custom_tags").drop_nulls().first().alias("custom_tags"),
        )
        .with_columns(
            pl.when(~pl.col("unpriced")).then(pl.col("_billed_cost")).alias("billed_cost_usd"),
            pl.lit(True).alias("_billed"),
        )
        .drop("_billed_cost")
    )


def estimated_grain(estimate_hourly: Frame) -> pl.LazyFrame:
    """The engine's cluster × hour × SKU × consumer rows summed to the bill's grain."""
    return (
        lazy(estimate_hourly)
        .with_columns(pl.lit("cluster").alias("resource_type"), pl.col("cluster_id").alias("resource_id"))
        .group_by(GRAIN)
        .agg(
            pl.col("dbus").sum().alias("_est_dbus"),
            pl.col("dbu_cost_usd").sum().alias("_est_cost"),
            pl.col("unpriced").any().alias("estimate_unpriced"),
        )
        .with_columns(
            pl.when(~pl.col("estimate_unpriced")).then(pl.col("_est_dbus")).alias("estimated_dbus"),
            pl.when(~pl.col("estimate_unpriced")).then(pl.col("_est_cost")).alias("estimated_cost_usd"),
            pl.lit(True).alias("_estimated"),
        )
        .drop("_est_dbus", "_est_cost")
    )


def _reason(tolerance: float, configured: Collection[str] | None) -> list[pl.Expr]:
    billed, estimated = pl.col("_billed"), pl.col("_estimated")
    foreign = pl.lit(False) if configured is None else ~pl.col("workspace_id").is_in(list(configured))
    ratio = pl.when(pl.col("billed_dbus") != 0).then(pl.col("estimated_dbus") / pl.col("billed_dbus"))
    both_zero = (pl.col("billed_dbus") == 0) & (pl.col("estimated_dbus") == 0)
    within = both_zero | ((ratio - 1).abs() <= tolerance)
    crossed = pl.col("_crossed")
    reason = (
        pl.when(pl.col("unpriced") | pl.col("estimate_unpriced"))
        .then(pl.lit("unpriced"))
        .when(crossed & (billed ^ estimated))
        .then(pl.lit("sku_mismatch"))
        .when(foreign)
        .then(pl.lit(NOT_CONFIGURED))
        .when(~estimated)
        .then(pl.lit("no_estimate"))
        .when(~billed)
        .then(pl.lit("no_billing"))
        .when(pl.col("has_correction"))
        .then(pl.lit("correction"))
        .when(~within.fill_null(False))
        .then(pl.lit("mismatch"))
        .otherwise(pl.lit("ok"))
    )
    return [ratio.alias("ratio"), within.fill_null(False).alias("within_tolerance"), reason.alias("reason")]


def reconciliation(
    billing: Frame,
    estimate_hourly: Frame,
    dbu_prices: Frame,
    default_cloud: str,
    tolerance: float = TOLERANCE,
    configured: Collection[str] | None = None,
) -> pl.DataFrame:
    """``mart/reconciliation``: estimated vs billed DBUs and $ per resource × hour × SKU (see module doc).

    ``billing``: ``raw/billing_usage`` rows (``schemas.BillingUsage``); ``estimate_hourly``:
    ``engine.cost_by_cluster_hour`` rows (``engine.HOURLY_COLUMNS``), any number of days;
    ``dbu_prices``: ``ref/dbu_prices``; ``default_cloud``: the cloud of usage rows that carry none;
    ``configured``: the workspace ids of an account of several (None: one workspace).
    Columns: :data:`RECONCILIATION_COLUMNS`.
    """
    billed = billed_grain(billing, dbu_prices, default_cloud)
    estimated = estimated_grain(estimate_hourly)
    joined = billed.join(estimated, on=GRAIN, how="full", coalesce=True, nulls_equal=True).with_columns(
        pl.col("_billed").fill_null(False),
        pl.col("_estimated").fill_null(False),
        pl.col("unpriced").fill_null(False),
        pl.col("has_correction").fill_null(False),
        pl.col("estimate_unpriced").fill_null(False),
        pl.col("billing_records").fill_null(0),
    )
    # A resource-hour billed under a SKU the estimate lacks and estimated under one the bill lacks (judged
    # before VM-only rows are dropped: the estimate's SKU is the cluster's whatever its DBUs).
    # An estimate without a SKU (a cluster with no timeline) is unpriced, not a SKU mismatch.
    billed_only = pl.col("_billed") & ~pl.col("_estimated")
    estimated_only = pl.col("_estimated") & ~pl.col("_billed") & pl.col("sku_name").is_not_null()
    joined = joined.with_columns(
        (billed_only.any().over(RESOURCE_HOUR) & estimated_only.any().over(RESOURCE_HOUR)).alias("_crossed")
    )
    estimate_known = pl.col("_estimated") & ~pl.col("estimate_unpriced")
    # An estimate-only grain row with exactly 0 DBUs is a VM-only hour: not on the Databricks bill.
    keep = pl.col("_billed") | pl.col("estimate_unpriced") | (pl.col("estimated_dbus") > 0)
    out = (
        joined.filter(keep)
        .with_columns(
            # Nothing billed (yet) is a fact, $0; a missing estimate is unknown and stays null.
            pl.col("billed_dbus").fill_null(0.0),
            pl.when(pl.col("_billed")).then(pl.col("billed_cost_usd")).otherwise(0.0).alias("billed_cost_usd"),
        )
        .with_columns(_reason(tolerance, configured))
        .with_columns(
            (pl.col("billed_dbus").fill_null(0.0) - pl.col("estimated_dbus").fill_null(0.0)).alias("delta_dbus"),
            (pl.col("billed_cost_usd").fill_null(0.0) - pl.col("estimated_cost_usd").fill_null(0.0)).alias("delta_usd"),
        )
        .with_columns(
            # An unknown side (no or unpriced estimate, unpriced bill) makes the difference unknown too.
            pl.when(estimate_known & ~pl.col("unpriced")).then(pl.col("delta_usd")).alias("delta_usd"),
            pl.when(estimate_known).then(pl.col("delta_dbus")).alias("delta_dbus"),
            pl.col("hour_start").dt.date().alias("usage_date"),
            pl.lit(CURRENCY).alias("currency_code"),
        )
    )
    return out.select(RECONCILIATION_COLUMNS).sort(GRAIN, nulls_last=True).collect()
