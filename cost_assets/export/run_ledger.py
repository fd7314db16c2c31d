"""The per-run ledger: one row per run (task run × cluster) and day with the original calculator's figures.

Every export that publishes per-run numbers builds them HERE, so the same run gets the same numbers
everywhere: the Postgres table ``finops.calculator_run_costs`` and the Observability Service payload both
take :func:`run_ledger` (and :func:`calculation_version`) as they are, renaming columns at most. Pure polars,
no Dagster.

**Rows.** The ``run`` rows of ``mart/run_costs`` (the estimate, one per task run × cluster × day; a job
cluster's run-free time is a row with ``task_run_id`` null), outer-joined with the ``run`` rows of
``mart/attributed_costs`` (the bill handed out) on ``usage_date, workspace_id, cluster (resource_id),
run_id, task_run_id`` (a serverless run's ``cluster_id`` is null). A run the bill names but the estimate
lacks (serverless jobs, a job cluster without events) is a row too, with null estimated figures. Idle and
unattributed money is not a run's and stays out (the FOCUS export and ``mart/attributed_costs`` carry
it); so do bill rows naming only a job and no run (``run_id`` null).

**Figures.** ``cost_basis`` is ``billed`` once any of the run's attributed rows is on the bill (a reason
other than ``no_billing``), else ``estimated``. Billed: ``dbu_cost_usd`` is the run's attributed DBU $
(the Databricks bill, its share by estimated DBUs), ``vm_total_cost_usd`` the estimated VM $ plus the
estimated $ of the nodes' managed disks (both on the cloud bill, not the Databricks one; a disk whose node
type has no disk price is left out, as in ``mart/run_costs``' total, and flagged by its ``priced`` check).
Estimated: both from the estimate. ``total_cost_usd`` = ``dbu_cost_usd + vm_total_cost_usd``; a serverless
run's VM $ is 0 (its VMs are in the DBU price).
Unknown money stays null and ``unpriced`` is true — never $0: an unpriced estimate, a billed row the
bill could not price, or the VMs of a run only the bill knows.

**calculation_version** names the code and the figures: the package version plus a digest of the day's
ledger, so a re-materialized day with the same figures has the same version (and the exports' idempotency
keys repeat), while a day restated by a late bill gets a new one that receivers accept as new.
"""

import hashlib
import importlib.metadata
import json

import polars as pl

from cost_assets.costing.frames import Frame, lazy
from cost_assets.vocabulary import CURRENCY, TAG_DIMENSIONS

KEY = ["usage_date", "workspace_id", "cluster_id", "run_id", "task_run_id"]
COLUMNS = [
    *KEY,
    "job_id",
    "calculator_id",
    "task_key",
    "runtime_hours",
    "dbus",
    "billed_dbus",
    "estimated_dbu_cost_usd",
    "estimated_vm_cost_usd",
    "estimated_total_cost_usd",
    "billed_dbu_cost_usd",
    "dbu_cost_usd",
    "vm_total_cost_usd",
    "total_cost_usd",
    "cost_basis",
    "unpriced",
    "currency_code",
    *TAG_DIMENSIONS,
    "tags",
]
COST_BASES = ["billed", "estimated"]
# Figures are rounded to 1e-9 (of a DBU, an hour, a dollar): the marts' floats can differ in their last bits
# between two materializations of the same day (summation order), and the version digest and the exports'
# idempotency keys must not.
DECIMALS = 9
FIGURES = [
    "runtime_hours",
    "dbus",
    "billed_dbus",
    "estimated_dbu_cost_usd",
    "estimated_vm_cost_usd",
    "estimated_total_cost_usd",
    "billed_dbu_cost_usd",
    "dbu_cost_usd",
    "vm_total_cost_usd",
    "total_cost_usd",
]


def _known_sum(column: str) -> pl.Expr:
    """The group's sum, null when any part is unknown: an unknown amount never becomes a smaller known one."""
    return pl.when(pl.col(column).is_null().any()).then(None).otherwise(pl.col(column).sum())


def _estimated(run_costs: Frame) -> pl.LazyFrame:
    return (
        lazy(run_costs)
        .filter(pl.col("consumer") == "run", pl.col("run_id").is_not_null())
        .group_by(KEY)
        .agg(
            pl.col("job_id").first(),
            pl.col("task_key").first(),
            pl.col("runtime_hours").sum(),
            _known_sum("dbus").alias("dbus"),
            *[
                _known_sum(src).alias(dst)
                for src, dst in (
                    ("dbu_cost_usd", "estimated_dbu_cost_usd"),
                    ("vm_cost_usd", "estimated_vm_cost_usd"),
                    ("total_cost_usd", "estimated_total_cost_usd"),
                )
            ],
            pl.col("disk_cost_usd").sum().alias("_disk"),  # known disk $ (null: no disk price, left out)
            *[pl.col(t).first() for t in TAG_DIMENSIONS],
        )
    )


def _billed(attributed: Frame) -> pl.LazyFrame:
    return (
        lazy(attributed)
        .filter(pl.col("consumer") == "run", pl.col("run_id").is_not_null())
        # A serverless run has no cluster (its resource_id is the run's own id): cluster_id is null then.
        .with_columns(pl.when(pl.col("resource_type") == "cluster").then(pl.col("resource_id")).alias("cluster_id"))
        .group_by(KEY)
        .agg(
            pl.col("job_id").first().alias("billed_job_id"),
            (pl.col("resource_type") == "serverless").all().alias("serverless"),
            (pl.col("reason") != "no_billing").any().alias("on_bill"),
            pl.col("billed_dbus").sum(),
            _known_sum("billed_cost_usd").alias("billed_dbu_cost_usd"),
            *[pl.col(t).first().alias(f"billed_{t}") for t in TAG_DIMENSIONS],
        )
    )


def run_ledger(run_costs: Frame, attributed: Frame) -> pl.DataFrame:
    """The ledger rows (``COLUMNS``) of the days in ``run_costs`` / ``attributed``, sorted by ``KEY``."""
    joined = _estimated(run_costs).join(_billed(attributed), on=KEY, how="full", coalesce=True, nulls_equal=True)
    billed = pl.col("on_bill").fill_null(False)
    dbu = pl.when(billed).then(pl.col("billed_dbu_cost_usd")).otherwise(pl.col("estimated_dbu_cost_usd"))
    # Serverless compute's VMs are in its DBU price (no cloud bill): VM $0. Any other run only the bill
    # knows (a job cluster without an estimate) has an unknown VM $: null, never $0.
    vm = (
        pl.when(pl.col("serverless").fill_null(False))
        .then(0.0)
        .otherwise(pl.col("estimated_vm_cost_usd") + pl.col("_disk").fill_null(0.0))
    )
    tags = sorted(TAG_DIMENSIONS)
    return (
        joined.with_columns(
            pl.coalesce("job_id", "billed_job_id").alias("job_id"),
            *[pl.coalesce(t, f"billed_{t}").alias(t) for t in TAG_DIMENSIONS],
            pl.col("billed_dbus").fill_null(0.0),
        )
        .with_columns(
            pl.col("job_id").cast(pl.String).alias("calculator_id"),
            dbu.alias("dbu_cost_usd"),
            vm.alias("vm_total_cost_usd"),
            (dbu + vm).alias("total_cost_usd"),
            pl.when(billed).then(pl.lit("billed")).otherwise(pl.lit("estimated")).alias("cost_basis"),
            pl.lit(CURRENCY).alias("currency_code"),
            pl.struct(tags).struct.json_encode().alias("tags"),
        )
        .with_columns(pl.col("total_cost_usd").is_null().alias("unpriced"), pl.col(FIGURES).round(DECIMALS))
        .select(COLUMNS)
        .sort(KEY, nulls_last=True)
        .collect()
    )


def calculation_version(ledger: pl.DataFrame) -> str:
    """``<package version>+<12 hex digits>``: the code's version and a digest of the ledger's figures
    (rows in ``KEY`` order), so the same figures always give the same version."""
    digest = hashlib.sha256()
    for row in ledger.select(COLUMNS).sort(KEY, nulls_last=True).iter_rows():
        digest.update(json.dumps(row, default=str).encode())
    return f"{importlib.metadata.version('cost_assets')}+{digest.hexdigest()[:12]}"
