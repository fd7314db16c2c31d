"""The cloud bill handed out: ``mart.attributed_cloud_costs``, and each run's share of both bills.

Every charge of a Databricks resource (VMs, disks, network, IPs, storage; ``cloud_match.py`` keys it to a
cluster or pool) is split among the consumers of that key by the estimate's **VM-$ shares** — not DBU
shares: VMs bill through start-up, tear-down and pool idle, when no DBUs accrue. A managed disk charge goes
by the estimate's **disk-$ shares** (node-hours: a spot and an on-demand node carry the same disk), falling
back to the VM-$ shares where the estimate has no disk $; a NIC or an IP goes with its VMs.

* ``hour_share`` — an hourly charge, by the consumers' VM $ of that hour of the key;
* ``day_share`` — a daily charge (Azure's exports), or an hourly one whose hour the estimate has nothing
  for (a VM billed for a minute the event log puts in the next hour), by the VM $ of the key's day;
* ``no_estimate`` / ``warehouse`` / ``untagged`` — nothing to split by: the whole charge is
  ``unattributed`` with that reason, never dropped.

Shares are the VM $ (disk $) of each consumer over the key's total; where the estimate has none (unpriced),
by runtime. They sum to 1, so per day and currency Σ attributed = Σ billed, for billed and effective cost
alike (:func:`conservation_gaps`, a blocking check). The amounts stay in the bill's currency.

A run's total cost is the sum of its shares of both bills (:func:`run_total_costs`): the DBU bill's
attributed $ (``mart.attributed_costs``) plus the cloud bill's attributed effective cost (USD charges).

Pure polars, no Dagster.
"""

import polars as pl

from cost_assets.costing.cloud_match import KEYED_COLUMNS, keyed_cloud, keyed_estimate
from cost_assets.costing.frames import Frame, lazy
from cost_assets.vocabulary import CURRENCY

TOLERANCE_USD = 0.01
KIND_KEY = ["usage_date", "resource_kind", "resource_key"]
CHARGE = [*KIND_KEY, "period_start", "grain", "service_category", "currency_code"]
CONSUMER = ["workspace_id", "cluster_id", "consumer", "run_id", "task_run_id", "job_id"]
COLUMNS = [
    *KEYED_COLUMNS,
    *CONSUMER,
    "share",
    "billed_cost",
    "effective_cost",
    "currency_code",
    "reason",
]
UNATTRIBUTED_REASON = {"untagged": "untagged", "warehouse": "warehouse"}


# The estimate's money each kind of charge is handed out by, in order of preference (then runtime).
SHARE_MONEY = {"managed_disk": ["disk_cost_usd", "vm_cost_usd"], "other": ["vm_cost_usd"]}


def _shares(est: pl.DataFrame, by: list[str], money: list[str]) -> pl.DataFrame:
    """Each consumer's share of the key's ``money`` within ``by``: the first money column with a positive
    total there, else runtime (the money is unknown or 0)."""
    grouped = est.group_by(*by, *CONSUMER).agg(
        *[pl.col(m).fill_null(0.0).sum().alias(f"_{m}") for m in money], pl.col("runtime_hours").sum().alias("_hours")
    )
    weights = [*[f"_{m}" for m in money], "_hours"]
    share = None
    for col in weights:
        total = pl.col(col).sum().over(by)
        share = (pl.when(total > 0) if share is None else share.when(total > 0)).then(pl.col(col) / total)
    return grouped.with_columns(share.alias("share")).filter(pl.col("share") > 0).drop(weights)


def attributed_cloud_costs(cloud: Frame, estimated: Frame, clusters: Frame) -> pl.DataFrame:
    """``mart.attributed_cloud_costs`` (rows of :data:`COLUMNS`) for the days in ``cloud``."""
    keyed = keyed_cloud(cloud, clusters)
    charges = (
        keyed.group_by(CHARGE)
        .agg(pl.col("billed_cost").sum(), pl.col("effective_cost").sum())
        .with_row_index("_charge")
    )
    if "disk_cost_usd" not in lazy(estimated).collect_schema().names():  # an estimate from before disks
        estimated = lazy(estimated).with_columns(pl.lit(None, pl.Float64).alias("disk_cost_usd"))
    est = keyed_estimate(estimated, clusters, keyed).with_columns(pl.col("hour_start").alias("period_start"))
    kind = pl.when(pl.col("service_category") == "managed_disk").then(pl.lit("managed_disk")).otherwise(pl.lit("other"))
    parts = []
    for share_kind, money in SHARE_MONEY.items():
        mine = charges.filter(kind == share_kind)
        hourly = mine.filter(pl.col("grain") == "hour").join(
            _shares(est, [*KIND_KEY, "period_start"], money), on=[*KIND_KEY, "period_start"], how="inner"
        )
        daily = mine.join(hourly.select("_charge").unique(), on="_charge", how="anti").join(
            _shares(est, KIND_KEY, money), on=KIND_KEY, how="inner"
        )
        parts += [
            hourly.with_columns(pl.lit("hour_share").alias("reason")),
            daily.with_columns(pl.lit("day_share").alias("reason")),
        ]
    handed = pl.concat(parts, how="vertical_relaxed")
    left = charges.join(handed.select("_charge").unique(), on="_charge", how="anti").with_columns(
        *[pl.lit(None).alias(c) for c in CONSUMER if c != "consumer"],
        pl.lit("unattributed").alias("consumer"),
        pl.lit(1.0).alias("share"),
        pl.col("resource_kind").replace_strict(UNATTRIBUTED_REASON, default="no_estimate").alias("reason"),
    )
    out = pl.concat([handed, left.select(handed.columns)], how="vertical_relaxed").with_columns(
        (pl.col("billed_cost") * pl.col("share")).alias("billed_cost"),
        (pl.col("effective_cost") * pl.col("share")).alias("effective_cost"),
    )
    return (
        out.select(COLUMNS)
        .cast({"run_id": pl.Int64, "task_run_id": pl.Int64, "job_id": pl.Int64})
        .sort([*CHARGE, "consumer", "cluster_id", "run_id", "task_run_id"], nulls_last=True)
    )


def conservation_gaps(cloud: Frame, attributed: Frame) -> pl.DataFrame:
    """Per day and currency: the Databricks charges' billed and effective cost vs what was attributed;
    ``ok`` when both gaps are under a cent. A day with charges but no attributed rows shows as a gap."""
    money = [pl.col("billed_cost").sum(), pl.col("effective_cost").sum()]
    billed = lazy(cloud).filter(pl.col("is_databricks")).group_by("usage_date", "currency_code").agg(money)
    handed = lazy(attributed).group_by("usage_date", "currency_code").agg(money)
    return (
        billed.join(handed, on=["usage_date", "currency_code"], how="full", coalesce=True, suffix="_attributed")
        .with_columns(
            pl.col(c).fill_null(0.0)
            for c in ["billed_cost", "effective_cost", "billed_cost_attributed", "effective_cost_attributed"]
        )
        .with_columns(
            (pl.col("billed_cost_attributed") - pl.col("billed_cost")).alias("billed_gap"),
            (pl.col("effective_cost_attributed") - pl.col("effective_cost")).alias("effective_gap"),
        )
        .with_columns(
            ((pl.col("billed_gap").abs() < TOLERANCE_USD) & (pl.col("effective_gap").abs() < TOLERANCE_USD)).alias("ok")
        )
        .sort("usage_date", "currency_code")
        .collect()
    )


RUN_KEY = ["usage_date", "workspace_id", "consumer", "run_id", "task_run_id", "job_id"]


def run_total_costs(attributed_dbu: Frame, attributed_cloud: Frame) -> pl.DataFrame:
    """Each consumer's share of both bills per day: the DBU bill's attributed $ plus the cloud bill's
    attributed effective cost (USD charges only: the project's amounts are USD). Runs, idle and
    unattributed alike, so the column totals are the two bills."""
    dbu = (
        lazy(attributed_dbu).group_by(RUN_KEY).agg(pl.col("billed_cost_usd").fill_null(0.0).sum().alias("dbu_cost_usd"))
    )
    cloud = (
        lazy(attributed_cloud)
        .filter(pl.col("currency_code") == CURRENCY)
        .group_by(RUN_KEY)
        .agg(pl.col("effective_cost").sum().alias("cloud_cost_usd"))
    )
    return (
        dbu.join(cloud, on=RUN_KEY, how="full", coalesce=True, nulls_equal=True)
        .with_columns(pl.col("dbu_cost_usd").fill_null(0.0), pl.col("cloud_cost_usd").fill_null(0.0))
        .with_columns(
            (pl.col("dbu_cost_usd") + pl.col("cloud_cost_usd")).alias("total_cost_usd"),
            pl.lit(CURRENCY).alias("currency_code"),
        )
        .sort(RUN_KEY, nulls_last=True)
        .collect()
    )
