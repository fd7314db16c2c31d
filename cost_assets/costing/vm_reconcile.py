"""The estimate's VM and disk dollars set against the cloud bill: ``mart.vm_reconciliation``.

One row per day × period × resource key (cluster, pool, warehouse or untagged resource; see
``cloud_match.py``) × service category × currency. The period is the hour when every Databricks charge of
the day is hourly, else the day (Azure's exports are daily): estimate and bill are summed to it.

The bill side is the **effective cost** (what the resource really cost, commitments amortized): a VM
covered by a reservation or a savings plan is billed $0 when it runs, so its billed cost says nothing
about the VM. ``ratio = estimated ÷ effective``, ``delta = effective − estimated``. The estimate has two
service categories: ``vm_compute`` (its VM $, ``estimated_vm_cost_usd``) and ``managed_disk`` (the nodes'
disk $, ``estimated_disk_cost_usd``).

Reasons, the first that applies wins (:data:`~cost_assets.vocabulary.VM_RECONCILIATION_REASONS`):

* ``untagged`` — a Databricks resource without a cluster, pool or warehouse tag;
* ``not_estimated_component`` — network, public IPs, storage: the estimate prices VMs and disks only;
* ``other_currency`` — billed in a currency other than the estimate's (USD), not compared;
* ``no_cloud_bill`` — VMs estimated, nothing billed (the export lags a day or two, or tags are missing);
* ``no_estimate`` — VMs billed, nothing estimated (a warehouse, a cluster the workspace tables miss);
* ``ok`` — within 5 % of the effective cost;
* ``spot_price`` — spot VMs: the bill has the hour's market price, the sheet one spot price;
* ``commitment_discount`` — reservation or savings-plan VMs: a discount the sheet's price does not have;
* ``mismatch`` — anything else off by more than 5 %.

Pure polars, no Dagster.
"""

import polars as pl

from cost_assets.costing.cloud_match import KEYED_COLUMNS, keyed_cloud, keyed_estimate, period_start
from cost_assets.costing.frames import Frame, lazy
from cost_assets.vocabulary import CURRENCY

TOLERANCE = 0.05
# The service categories the estimate prices, and the estimate's column for each.
ESTIMATED = {"vm_compute": "vm_cost_usd", "managed_disk": "disk_cost_usd"}
KEY = ["usage_date", "period_start", "resource_kind", "resource_key", "service_category"]
COLUMNS = [
    *KEYED_COLUMNS,
    "workspace_id",
    "cloud_rows",
    "pricing_models",
    "estimated_vm_cost_usd",
    "estimated_disk_cost_usd",
    "billed_cost",
    "effective_cost",
    "list_cost",
    "currency_code",
    "ratio",
    "delta",
    "reason",
]


def day_grains(keyed: pl.DataFrame) -> pl.DataFrame:
    """usage_date → ``hour`` when every Databricks charge of the day is hourly, else ``day``."""
    return keyed.group_by("usage_date").agg(
        pl.when((pl.col("grain") == "hour").all()).then(pl.lit("hour")).otherwise(pl.lit("day")).alias("grain")
    )


def vm_reconciliation(cloud: Frame, estimated: Frame, clusters: Frame, tolerance: float = TOLERANCE) -> pl.DataFrame:
    """``mart.vm_reconciliation`` for the days in ``cloud`` and ``estimated`` (rows of :data:`COLUMNS`)."""
    bill = keyed_cloud(cloud, clusters)
    if "disk_cost_usd" not in lazy(estimated).collect_schema().names():  # an estimate from before disks
        estimated = lazy(estimated).with_columns(pl.lit(None, pl.Float64).alias("disk_cost_usd"))
    est = keyed_estimate(estimated, clusters, bill)
    grains = day_grains(bill)
    bill = (
        bill.drop("grain", "period_start")
        .join(grains, on="usage_date", how="left")
        .with_columns(period_start(pl.col("grain"), "charge_period_start").alias("period_start"))
        .group_by(*KEY, "grain", "currency_code")
        .agg(
            pl.len().cast(pl.Int64).alias("cloud_rows"),
            pl.col("pricing_model").unique().sort().str.join(",").alias("pricing_models"),
            pl.col("billed_cost").sum(),
            pl.col("effective_cost").sum(),
            pl.when(pl.col("list_cost").is_not_null().all()).then(pl.col("list_cost").sum()).alias("list_cost"),
        )
    )
    est = est.join(grains, on="usage_date", how="left").with_columns(
        pl.col("grain").fill_null("hour"),
        period_start(pl.col("grain").fill_null("hour"), "hour_start").alias("period_start"),
    )
    est = pl.concat(
        [
            est.with_columns(pl.lit(category).alias("service_category"))
            .group_by(*KEY, "grain")
            .agg(
                pl.col("workspace_id").drop_nulls().first(),
                # null when any part of the estimate is unpriced: an unknown price is never $0
                pl.when(pl.col(column).is_not_null().all()).then(pl.col(column).sum()).alias("_estimated"),
            )
            for category, column in ESTIMATED.items()
        ]
    )
    joined = (
        bill.join(est, on=KEY, how="full", coalesce=True, suffix="_est")
        .with_columns(
            pl.coalesce("grain", "grain_est").alias("grain"),
            pl.col("cloud_rows").fill_null(0).cast(pl.Int64),
            pl.col("currency_code").fill_null(CURRENCY),
        )
        # a disk nobody billed and the estimate has no dollar for (no disk price, or no node up) says nothing
        .filter(
            (pl.col("service_category") != "managed_disk")
            | (pl.col("cloud_rows") > 0)
            | (pl.col("_estimated").fill_null(0.0) > 0)
        )
    )
    est_usd, eff = pl.col("_estimated"), pl.col("effective_cost")
    ratio = pl.when(eff > 0).then(est_usd / eff)
    models = pl.col("pricing_models").fill_null("")
    reason = (
        pl.when(pl.col("resource_kind") == "untagged")
        .then(pl.lit("untagged"))
        .when(~pl.col("service_category").is_in(list(ESTIMATED)))
        .then(pl.lit("not_estimated_component"))
        .when(pl.col("currency_code") != CURRENCY)
        .then(pl.lit("other_currency"))
        .when(eff.is_null())
        .then(pl.lit("no_cloud_bill"))
        .when(est_usd.is_null())
        .then(pl.lit("no_estimate"))
        .when((ratio - 1).abs() <= tolerance)
        .then(pl.lit("ok"))
        .when(models.str.contains("spot"))
        .then(pl.lit("spot_price"))
        .when(models.str.contains("reservation|savings_plan"))
        .then(pl.lit("commitment_discount"))
        .otherwise(pl.lit("mismatch"))
    )
    comparable = pl.col("currency_code") == CURRENCY
    return (
        joined.with_columns(
            pl.when(comparable).then(ratio).alias("ratio"),
            pl.when(comparable).then(eff - est_usd).alias("delta"),
            reason.alias("reason"),
            *[
                pl.when(pl.col("service_category") == category).then(est_usd).alias(f"estimated_{column}")
                for category, column in ESTIMATED.items()
            ],
        )
        .select(COLUMNS)
        .sort(KEY)
    )
