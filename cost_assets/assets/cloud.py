"""The cloud bill (VMs, disks, network billed by Azure, AWS or GCP) next to the Databricks bill.

Registered only when ``COST_ASSETS_CLOUD_BILL`` names the provider's cost export files (docs/cloud-bill.md):

* ``raw/cloud_costs`` — the exports parsed (``ingest/cloud_bill.py``), the latest export of a day winning.
  A bad file fails the step naming file, row and column; a day whose charges shrink without credits to
  explain it keeps its stored rows (``guard.py``); no file at all is a WARN, and stored days stay;
* ``mart/vm_reconciliation`` — the estimate's VM and disk $ against the bill (``costing/vm_reconcile.py``);
* ``mart/attributed_cloud_costs`` — the Databricks resources' cloud $ handed to runs, idle and
  unattributed by the estimate's VM-$ shares; per day Σ attributed = Σ billed (a blocking ERROR check);
* ``mart/run_total_costs`` — each run's share of both bills (``costing/cloud_attribute.py``);
* ``mart/observed_vm_prices`` — the bill's effective $ per VM-hour by node type and pricing model against
  the price sheet's (``costing/observed_prices.py``), for tuning the sheet and for the pre-launch estimate.
"""

import datetime as dt

import dagster as dg
import polars as pl

from cost_assets import guard, schemas
from cost_assets.assets.costs import ESTIMATED_COSTS
from cost_assets.assets.guarded import (
    Guarded,
    contract_gate,
    days_present_check,
    read_optional,
    sources_check,
    sources_spec,
    table_name,
)
from cost_assets.assets.policies import DAILY_ASSET, MART_FRESHNESS, PARTITIONED, SOURCE_RETRY
from cost_assets.assets.raw import CLUSTERS
from cost_assets.assets.reconciliation import ATTRIBUTED_COSTS
from cost_assets.assets.reference import INSTANCE_TYPES, snapshot
from cost_assets.checks import CONTRACT_DESCRIPTION, add_daily_metadata, contract_result, contract_spec, markdown_table
from cost_assets.costing import cloud_attribute, observed_prices, vm_reconcile
from cost_assets.ingest.cloud_bill import costs_frame, day_fingerprints
from cost_assets.partitions import window_days
from cost_assets.resources.cloud_bill import CloudBill
from cost_assets.resources.warehouse import ADDED_COLUMNS, Ledger

CLOUD_COSTS = dg.AssetKey(["raw", "cloud_costs"])
VM_RECONCILIATION = dg.AssetKey(["mart", "vm_reconciliation"])
ATTRIBUTED_CLOUD_COSTS = dg.AssetKey(["mart", "attributed_cloud_costs"])
RUN_TOTAL_COSTS = dg.AssetKey(["mart", "run_total_costs"])
OBSERVED_VM_PRICES = dg.AssetKey(["mart", "observed_vm_prices"])
CLOUD_BILL_PRESENT = "cloud_bill_present"
# Per day, a fingerprint of the charges stored (the late cloud bill sensor compares it with the files).
FINGERPRINTS = "cloud_bill_fingerprints"
CONSERVES = "conserves_the_cloud_bill"


def _guard_view(frame: pl.DataFrame) -> pl.DataFrame:
    """The cloud bill in the shape the bill's guard rule reads: the effective cost is the quantity, and a
    negative charge (a credit, a refund) plays the part of a RETRACTION — a day whose cost drops because
    credits arrived is accepted, one whose charges vanished is not."""
    return frame.select(
        "usage_date",
        pl.col("effective_cost").alias("usage_quantity"),
        pl.when(pl.col("effective_cost") < 0)
        .then(pl.lit("RETRACTION"))
        .otherwise(pl.lit("ORIGINAL"))
        .alias("record_type"),
    )


def _present(days: list[dt.date], frame: pl.DataFrame, source: str) -> dg.AssetCheckResult:
    """WARN for each day without a single charge: the exports lag a day or more, a $0 day is not a fact."""
    return days_present_check(
        CLOUD_BILL_PRESENT,
        CLOUD_COSTS,
        days,
        frame,
        absent=lambda d: f"no cloud charges for {d} in {source}",
        lag="cost exports lag 1–2 days",
        complete=f"every day has charges in {source}",
        metadata_key="days_without_charges",
    )


@dg.asset(
    key=CLOUD_COSTS,
    group_name="raw",
    kinds={"csv", "parquet", "duckdb"},
    metadata=PARTITIONED,
    check_specs=[
        contract_spec(CLOUD_COSTS, schemas.CloudCosts),
        sources_spec(CLOUD_COSTS, "the cloud cost export files (none found)"),
        dg.AssetCheckSpec(CLOUD_BILL_PRESENT, asset=CLOUD_COSTS, description="WARN for a day without any charge"),
    ],
    pool="duckdb_writer",
    retry_policy=SOURCE_RETRY,
    **DAILY_ASSET,
)
def cloud_costs(context: dg.AssetExecutionContext, cloud_bill: CloudBill, ledger: Ledger):
    """Every charge of the day in the cloud provider's cost exports (FOCUS from AWS, Azure or GCP, or the
    Azure cost details export): charge period, resource, service category, pricing model, billed /
    effective / list cost, currency and the tags Databricks puts on its VMs. The latest export of a day
    wins. A bad file fails naming file, row and column, and nothing is written."""
    days = window_days(context.partition_time_window)
    source = cloud_bill.describe()
    files = 0

    def read() -> pl.DataFrame:
        nonlocal files
        frame, files = cloud_bill.costs(days)
        return frame

    got = read_optional(context, ledger, CLOUD_COSTS, days, costs_frame([]), read, source=source, what="cloud bill")
    frame, stored, problems = got.frame, got.stored, got.problems
    if problems:  # nothing was read: every stored day stays as it is
        verdict = None
    else:
        checks = guard.check_days(
            table_name(CLOUD_COSTS),
            _guard_view(stored),
            _guard_view(frame),
            days,
            guard.BILL,
            ledger.shrink_threshold,
            unit="(effective cost)",
        )
        verdict = Guarded(context, f"the cloud bill ({source})", days, checks)
        verdict.fail_if_nothing_written()
        frame = guard.keep_stored(frame, stored, verdict.kept)
    yield from contract_gate(context, [contract_result(schemas.CloudCosts, frame, CLOUD_COSTS)])
    yield sources_check(CLOUD_COSTS, problems)
    yield _present(days, frame, source)
    add_daily_metadata(
        context,
        frame,
        days,
        lambda f, day: {
            FINGERPRINTS: dg.MetadataValue.json(day_fingerprints(f, [day])),
            "databricks_charges": int(f["is_databricks"].sum()),
            "databricks_effective_cost": float(f.filter(pl.col("is_databricks"))["effective_cost"].sum()),
            "files": f["source_file"].n_unique(),
        },
    )
    yield dg.Output(frame, metadata={"source": source, "files_found": files, **(verdict.metadata() if verdict else {})})
    if verdict:
        verdict.fail_if_refused()


@dg.multi_asset(
    outs={
        "vm_reconciliation": dg.AssetOut(
            key=VM_RECONCILIATION,
            group_name="mart",
            kinds={"polars", "duckdb"},
            metadata={**PARTITIONED, ADDED_COLUMNS: ["estimated_disk_cost_usd"]},
            freshness_policy=MART_FRESHNESS,
            description="Estimated VM and disk $ vs the cloud bill's effective cost per cluster or pool × hour (× day "
            "where the export is daily) × service category, ratio, delta and a reason: ok, no_estimate, "
            "no_cloud_bill, spot_price, commitment_discount, not_estimated_component, untagged, "
            "other_currency, mismatch.",
        ),
        "attributed_cloud_costs": dg.AssetOut(
            key=ATTRIBUTED_CLOUD_COSTS,
            group_name="mart",
            kinds={"polars", "duckdb"},
            metadata=PARTITIONED,
            freshness_policy=MART_FRESHNESS,
            description="The cloud bill of Databricks resources (VMs, disks, network) handed to runs, idle "
            "and unattributed by the estimate's VM-$ shares (disks by its disk-$ shares); sums to the billed "
            "and effective cost per day.",
        ),
        "run_total_costs": dg.AssetOut(
            key=RUN_TOTAL_COSTS,
            group_name="mart",
            kinds={"polars", "duckdb"},
            metadata=PARTITIONED,
            freshness_policy=MART_FRESHNESS,
            description="Each run's (and idle's, unattributed's) share of both bills per day: the DBU bill's "
            "attributed $ plus the cloud bill's attributed effective cost.",
        ),
        "observed_vm_prices": dg.AssetOut(
            key=OBSERVED_VM_PRICES,
            group_name="mart",
            kinds={"polars", "duckdb"},
            metadata=PARTITIONED,
            freshness_policy=MART_FRESHNESS,
            description="The cloud bill's effective $ per VM-hour by node type × pricing model (on-demand, spot, "
            "reservation, savings plan) per day, against the price sheet's price: what to tune the sheet to; "
            "COST_ASSETS_VM_PRICES=observed prices the pre-launch estimate with it.",
        ),
    },
    ins={
        "cloud": dg.AssetIn(CLOUD_COSTS),
        "estimated": dg.AssetIn(ESTIMATED_COSTS),
        "clusters": dg.AssetIn(CLUSTERS),
        "attributed": dg.AssetIn(ATTRIBUTED_COSTS),
        "instance_types": dg.AssetIn(INSTANCE_TYPES),
    },
    internal_asset_deps={
        "vm_reconciliation": {CLOUD_COSTS, ESTIMATED_COSTS, CLUSTERS},
        "attributed_cloud_costs": {CLOUD_COSTS, ESTIMATED_COSTS, CLUSTERS},
        "run_total_costs": {ATTRIBUTED_COSTS, ATTRIBUTED_CLOUD_COSTS},
        "observed_vm_prices": {CLOUD_COSTS, CLUSTERS, INSTANCE_TYPES},
    },
    check_specs=[
        dg.AssetCheckSpec("contract", asset=VM_RECONCILIATION, blocking=True, description=CONTRACT_DESCRIPTION),
        dg.AssetCheckSpec("contract", asset=ATTRIBUTED_CLOUD_COSTS, blocking=True, description=CONTRACT_DESCRIPTION),
        dg.AssetCheckSpec("contract", asset=RUN_TOTAL_COSTS, blocking=True, description=CONTRACT_DESCRIPTION),
        dg.AssetCheckSpec("contract", asset=OBSERVED_VM_PRICES, blocking=True, description=CONTRACT_DESCRIPTION),
        dg.AssetCheckSpec(
            CONSERVES,
            asset=ATTRIBUTED_CLOUD_COSTS,
            blocking=True,
            description="per day and currency Σ attributed = Σ billed and effective cost of Databricks resources "
            "(to 0.01)",
        ),
    ],
    pool="duckdb_writer",
    **DAILY_ASSET,
)
def reconcile_and_attribute_cloud(
    context: dg.AssetExecutionContext,
    cloud: pl.DataFrame,
    estimated: pl.DataFrame,
    clusters: pl.DataFrame,
    attributed: pl.DataFrame,
    instance_types: pl.DataFrame,
):
    """Each day of the window: the estimate's VM $ against the cloud bill, the bill handed out, each run's
    total of both bills, the observed VM prices; the conservation check judges the whole window."""
    days = window_days(context.partition_time_window)
    recon, handed, totals, observed = [], [], [], []
    for day in days:
        bill, estimate = cloud.filter(pl.col("usage_date") == day), estimated.filter(pl.col("usage_date") == day)
        day_clusters = clusters.filter(pl.col("usage_date") == day)
        recon.append(vm_reconcile.vm_reconciliation(bill, estimate, day_clusters))
        handed.append(cloud_attribute.attributed_cloud_costs(bill, estimate, day_clusters))
        totals.append(cloud_attribute.run_total_costs(attributed.filter(pl.col("usage_date") == day), handed[-1]))
        observed.append(observed_prices.observed_vm_prices(bill, day_clusters, snapshot(instance_types, day), day))
    recon_frame = pl.concat(recon, how="vertical_relaxed").select(vm_reconcile.COLUMNS)
    handed_frame = pl.concat(handed, how="vertical_relaxed").select(cloud_attribute.COLUMNS)
    totals_frame = pl.concat(totals, how="vertical_relaxed")
    observed_frame = pl.concat(observed, how="vertical_relaxed").select(observed_prices.COLUMNS)
    gaps = cloud_attribute.conservation_gaps(cloud, handed_frame)

    add_daily_metadata(
        context,
        recon_frame,
        days,
        lambda f, _: {
            "estimated_vm_cost_usd": float(f["estimated_vm_cost_usd"].sum() or 0.0),
            "estimated_disk_cost_usd": float(f["estimated_disk_cost_usd"].sum() or 0.0),
            "effective_vm_cost_usd": float(
                f.filter((pl.col("service_category") == "vm_compute") & (pl.col("currency_code") == "USD"))[
                    "effective_cost"
                ].sum()
                or 0.0
            ),
            "reasons": dg.MetadataValue.json(dict(f.group_by("reason").len().sort("reason").iter_rows())),
        },
        output_name="vm_reconciliation",
    )
    yield dg.Output(recon_frame, output_name="vm_reconciliation")
    add_daily_metadata(
        context,
        handed_frame,
        days,
        lambda f, _: {
            "attributed_effective_cost": float(f["effective_cost"].sum() or 0.0),
            "unattributed_effective_cost": float(
                f.filter(pl.col("consumer") == "unattributed")["effective_cost"].sum() or 0.0
            ),
        },
        output_name="attributed_cloud_costs",
    )
    yield dg.Output(handed_frame, output_name="attributed_cloud_costs")
    add_daily_metadata(
        context,
        totals_frame,
        days,
        lambda f, _: {"total_cost_usd": float(f["total_cost_usd"].sum() or 0.0)},
        output_name="run_total_costs",
    )
    yield dg.Output(totals_frame, output_name="run_total_costs")
    add_daily_metadata(
        context,
        observed_frame,
        days,
        lambda f, _: {
            "node_types": f["node_type_id"].n_unique(),
            "node_hours": float(f["node_hours"].sum() or 0.0),
        },
        output_name="observed_vm_prices",
    )
    yield dg.Output(observed_frame, output_name="observed_vm_prices")
    yield contract_result(schemas.VmReconciliation, recon_frame, VM_RECONCILIATION)
    yield contract_result(schemas.AttributedCloudCosts, handed_frame, ATTRIBUTED_CLOUD_COSTS)
    yield contract_result(schemas.RunTotalCosts, totals_frame, RUN_TOTAL_COSTS)
    yield contract_result(schemas.ObservedVmPrices, observed_frame, OBSERVED_VM_PRICES)
    yield conservation_result(gaps)


def conservation_result(gaps: pl.DataFrame) -> dg.AssetCheckResult:
    """The blocking check: every day's (and currency's) attributed cloud cost equals its billed cost."""
    bad = gaps.filter(~pl.col("ok"))
    return dg.AssetCheckResult(
        check_name=CONSERVES,
        asset_key=ATTRIBUTED_CLOUD_COSTS,
        passed=bad.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description="every day's attributed cloud cost equals the billed cost of its Databricks resources"
        if not bad.height
        else f"{bad.height} day(s) where attributed ≠ billed cloud cost",
        metadata={
            "max_abs_gap": float(
                max(gaps["billed_gap"].abs().max() or 0.0, gaps["effective_gap"].abs().max() or 0.0)
                if gaps.height
                else 0.0
            ),
            "days": dg.MetadataValue.md(markdown_table(gaps, 31)),
        },
    )
