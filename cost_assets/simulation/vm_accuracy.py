"""The estimate's VM and disk dollars against the simulated cloud bill's ground truth.

``mart/vm_reconciliation`` sets the estimate against the bill; the bill is what the tags let it say (a VM
whose tags were lost is ``untagged``). The truth (``cloud_bill.true_vm_costs``) knows every VM's cluster,
so this measures the estimate itself: per cluster or pool and period of the reconciliation (the hour of an
hourly export, the day of a daily one), estimated VM $ against the true VM $ (spot at the hour's market
price, reserved VMs at the amortized price), and its disk $ against the VMs' true disk $. Simulation only
(``assets/cloud_accuracy.py``).
"""

import polars as pl

# A key-period is accurate when its estimate is within 10 % of the truth.
TOLERANCE = 0.10
KEY = ["usage_date", "period_start", "resource_kind", "resource_key"]
COLUMNS = [
    *KEY,
    "grain",
    "estimated_vm_cost_usd",
    "billed_vm_cost_usd",
    "true_vm_cost_usd",
    "abs_rel_error",
    "estimated_disk_cost_usd",
    "true_disk_cost_usd",
]


def vm_cost_accuracy(recon: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """``recon``: ``mart/vm_reconciliation`` rows; ``truth``: ``true_vm_costs`` rows of the same days.
    One row per cluster or pool and period either side knows; a missing side is $0 (the truth knows every
    VM, so a key-period the estimate lacks was really missed); an unpriced estimate is null, its error too."""
    keyed = recon.filter(pl.col("resource_kind").is_in(["cluster", "pool"]))
    if "estimated_disk_cost_usd" not in keyed.columns:  # a reconciliation from before disks
        keyed = keyed.with_columns(pl.lit(None, pl.Float64).alias("estimated_disk_cost_usd"))
    vms = keyed.filter(pl.col("service_category") == "vm_compute")
    disks = (
        keyed.filter(pl.col("service_category") == "managed_disk")
        .group_by(KEY)
        .agg(
            pl.when(pl.col("estimated_disk_cost_usd").is_not_null().all())
            .then(pl.col("estimated_disk_cost_usd").sum())
            .alias("_est_disk")
        )
    )
    grains = vms.group_by("usage_date").agg(pl.col("grain").first())
    estimated = vms.group_by(*KEY, "grain").agg(
        # null when any part is unpriced: an unknown price is never $0
        pl.when(pl.col("estimated_vm_cost_usd").is_not_null().all())
        .then(pl.col("estimated_vm_cost_usd").sum())
        .alias("estimated_vm_cost_usd"),
        pl.col("effective_cost").sum().alias("billed_vm_cost_usd"),
        pl.lit(True).alias("_reconciled"),
    )
    true = (
        truth.with_columns(pl.col("hour_start").dt.date().alias("usage_date"))
        .join(grains, on="usage_date", how="left")
        .with_columns(pl.col("grain").fill_null("hour"))
        .with_columns(
            pl.when(pl.col("grain") == "hour")
            .then(pl.col("hour_start"))
            .otherwise(pl.col("hour_start").dt.truncate("1d"))
            .alias("period_start")
        )
        .group_by(*KEY, "grain")
        .agg(pl.col("true_vm_cost_usd").sum(), pl.col("true_disk_cost_usd").sum())
    )
    joined = (
        estimated.join(true, on=KEY, how="full", coalesce=True, suffix="_truth")
        .join(disks, on=KEY, how="left")
        .with_columns(
            pl.coalesce("grain", "grain_truth").alias("grain"),
            # a side without the key-period has $0 there; an unpriced estimate stays unknown
            pl.when(pl.col("_reconciled").is_null())
            .then(0.0)
            .otherwise("estimated_vm_cost_usd")
            .alias("estimated_vm_cost_usd"),
            pl.col("billed_vm_cost_usd", "true_vm_cost_usd", "true_disk_cost_usd").fill_null(0.0),
            # a key-period without a disk row had no disk $ in the estimate
            pl.when(pl.col("_reconciled").is_null())
            .then(0.0)
            .otherwise(pl.col("_est_disk").fill_null(0.0))
            .alias("estimated_disk_cost_usd"),
        )
    )
    error = (pl.col("estimated_vm_cost_usd") - pl.col("true_vm_cost_usd")).abs() / pl.col("true_vm_cost_usd")
    return (
        joined.with_columns(pl.when(pl.col("true_vm_cost_usd") > 0).then(error).alias("abs_rel_error"))
        .select(COLUMNS)
        .sort(KEY)
    )


def day_summary(day: pl.DataFrame) -> dict[str, float | int]:
    """One day's headline numbers (``truth/*`` metadata): the totals and how close the estimate came."""
    if day.height == 0:
        return {"truth/key_periods": 0}
    true, est = float(day["true_vm_cost_usd"].sum()), float(day["estimated_vm_cost_usd"].sum() or 0.0)
    true_disk, est_disk = float(day["true_disk_cost_usd"].sum()), float(day["estimated_disk_cost_usd"].sum() or 0.0)
    judged = day.filter(pl.col("abs_rel_error").is_not_null())
    return {
        "truth/true_disk_usd": true_disk,
        "truth/estimated_disk_usd": est_disk,
        "truth/disk_day_abs_rel_error": abs(est_disk - true_disk) / true_disk if true_disk else 0.0,
        "truth/key_periods": day.height,
        "truth/true_vm_usd": true,
        "truth/estimated_vm_usd": est,
        "truth/billed_tagged_vm_usd": float(day["billed_vm_cost_usd"].sum()),
        "truth/day_abs_rel_error": abs(est - true) / true if true else 0.0,
        "truth/within_10pct_share": float((judged["abs_rel_error"] <= TOLERANCE).mean() or 0.0)
        if judged.height
        else 0.0,
    }
