"""Reconciliation: the estimate (``mart/estimated_costs``) set against the bill, and the bill handed out.

One step builds both tables: attribution hands each billed resource-hour out by the shares the
reconciliation matched it with. The conservation check — per day, Σ attributed $ = Σ billed $ to the
cent — is a blocking ERROR: nothing downstream runs on a ledger that does not add up.
"""

import dagster as dg
import polars as pl

from cost_assets import schemas
from cost_assets.assets.costs import ESTIMATED_COSTS
from cost_assets.assets.policies import DAILY_ASSET, MART_FRESHNESS, PARTITIONED
from cost_assets.assets.raw import BILLING_USAGE, CLUSTERS, JOBS
from cost_assets.assets.reference import DBU_PRICES, snapshot
from cost_assets.checks import CONTRACT_DESCRIPTION, add_daily_metadata, contract_result, markdown_table, rounded_frame
from cost_assets.costing import attribute, reconcile
from cost_assets.partitions import window_days
from cost_assets.resources.databricks import DatabricksWorkspace
from cost_assets.resources.prices import PriceCatalog
from cost_assets.vocabulary import NOT_CONFIGURED

RECONCILIATION = dg.AssetKey(["mart", "reconciliation"])
ATTRIBUTED_COSTS = dg.AssetKey(["mart", "attributed_costs"])


@dg.multi_asset(
    outs={
        "reconciliation": dg.AssetOut(
            key=RECONCILIATION,
            group_name="mart",
            kinds={"polars", "duckdb"},
            metadata=PARTITIONED,
            freshness_policy=MART_FRESHNESS,
            description="Estimated vs billed DBUs and $ per resource × hour × SKU (billed = plain sum over "
            "ORIGINAL, RETRACTION and RESTATEMENT), ratio, delta and a reason code: ok, no_estimate, "
            "no_billing, unpriced, sku_mismatch, workspace_not_configured, correction, mismatch.",
        ),
        "attributed_costs": dg.AssetOut(
            key=ATTRIBUTED_COSTS,
            group_name="mart",
            kinds={"polars", "duckdb"},
            metadata=PARTITIONED,
            freshness_policy=MART_FRESHNESS,
            description="The bill handed out: each billed resource-hour's dollars split by the estimate's "
            "shares among runs and idle; hours without an estimate go to 'unattributed' with the reason. "
            "Sums to the bill, per day, to the cent.",
        ),
    },
    ins={
        "estimated": dg.AssetIn(ESTIMATED_COSTS),
        "billing": dg.AssetIn(BILLING_USAGE),
        "jobs": dg.AssetIn(JOBS),
        "clusters": dg.AssetIn(CLUSTERS),
        "dbu_prices": dg.AssetIn(DBU_PRICES),
    },
    # What each table is made of (the UI's lineage): the bill meets the estimate, then is handed out.
    internal_asset_deps={
        "reconciliation": {ESTIMATED_COSTS, BILLING_USAGE, DBU_PRICES},
        "attributed_costs": {RECONCILIATION, ESTIMATED_COSTS, JOBS, CLUSTERS},
    },
    check_specs=[
        dg.AssetCheckSpec("contract", asset=RECONCILIATION, blocking=True, description=CONTRACT_DESCRIPTION),
        dg.AssetCheckSpec("contract", asset=ATTRIBUTED_COSTS, blocking=True, description=CONTRACT_DESCRIPTION),
        dg.AssetCheckSpec(
            "conserves_the_bill",
            asset=ATTRIBUTED_COSTS,
            blocking=True,
            description="per day Σ attributed $ = Σ billed $ (to $0.01)",
        ),
    ],
    pool="duckdb_writer",
    **DAILY_ASSET,
)
def reconcile_and_attribute(
    context: dg.AssetExecutionContext,
    prices: PriceCatalog,
    workspace: DatabricksWorkspace,
    estimated: pl.DataFrame,
    billing: pl.DataFrame,
    jobs: pl.DataFrame,
    clusters: pl.DataFrame,
    dbu_prices: pl.DataFrame,
):
    """Reconcile each day of the window, then attribute; checks judge the whole window, metadata is per day."""
    days = window_days(context.partition_time_window)
    configured = workspace.configured_workspace_ids()
    recon_days, attributed_days = [], []
    for day in days:
        estimate = estimated.filter(pl.col("usage_date") == day)
        recon = reconcile.reconciliation(
            billing.filter(pl.col("usage_date") == day),
            estimate,
            snapshot(dbu_prices, day),
            prices.cloud,
            configured=configured,
        )
        recon_days.append(recon)
        attributed_days.append(
            attribute.attributed_costs(recon, estimate, jobs=jobs, clusters=clusters, configured=configured)
        )
    recon = pl.concat(recon_days, how="vertical_relaxed")
    attributed = pl.concat(attributed_days, how="vertical_relaxed")
    quality = attribute.accuracy(recon, attributed)
    gaps = attribute.conservation_gaps(recon, attributed)

    add_daily_metadata(context, recon, days, lambda f, _: _reconciliation_totals(f), output_name="reconciliation")
    yield dg.Output(recon, output_name="reconciliation")
    add_daily_metadata(
        context,
        attributed,
        days,
        lambda f, day: {
            "attributed_usd": float(f["billed_cost_usd"].sum() or 0.0),
            **_accuracy_metadata(quality.filter(pl.col("usage_date") == day)),
        },
        output_name="attributed_costs",
    )
    yield dg.Output(attributed, output_name="attributed_costs", metadata=_not_configured_metadata(attributed))
    yield contract_result(schemas.Reconciliation, recon, RECONCILIATION)
    yield contract_result(schemas.AttributedCosts, attributed, ATTRIBUTED_COSTS)
    bad = gaps.filter(~pl.col("ok"))
    yield dg.AssetCheckResult(
        check_name="conserves_the_bill",
        asset_key=ATTRIBUTED_COSTS,
        passed=bad.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description="every day's attributed dollars equal its billed dollars"
        if not bad.height
        else f"{bad.height} day(s) where attributed ≠ billed",
        metadata={
            "max_abs_gap_usd": float(gaps["gap_usd"].abs().max() or 0.0),
            "days": dg.MetadataValue.md(
                markdown_table(gaps.select("usage_date", "billed_cost_usd", "attributed_cost_usd", "gap_usd", "ok"), 31)
            ),
        },
    )


def _reconciliation_totals(recon: pl.DataFrame) -> dict:
    """Billed and estimated dollars, billed DBUs and the rows per reason code."""
    return {
        "billed_usd": float(recon["billed_cost_usd"].sum() or 0.0),
        "billed_dbus": float(recon["billed_dbus"].sum() or 0.0),
        "estimated_usd": float(recon["estimated_cost_usd"].sum() or 0.0),
        "reasons": dg.MetadataValue.json(dict(recon.group_by("reason").len().sort("reason").iter_rows())),
    }


def _accuracy_metadata(quality: pl.DataFrame) -> dict:
    """One day's accuracy (its rows per workspace as a small table) and its dollar-weighted headline
    numbers, unrounded (``frame_metadata`` rounds by name)."""
    if quality.height == 0:
        return {"accuracy": dg.MetadataValue.md("_no billed usage_")}
    billed = float(quality["billed_cost_usd"].sum() or 0.0)

    def weighted(column: str) -> float:
        return float((quality[column].fill_null(0) * quality["billed_cost_usd"]).sum() / billed) if billed else 0.0

    shown = [
        c
        for c in (
            "usage_date",
            "billed_cost_usd",
            "matched_share",
            "cluster_matched_share",
            "coverage",
            "idle_cost_usd",
            "unattributed_cost_usd",
            "unpriced_billed_dbus",
        )
        if c in quality.columns
    ]
    return {
        "accuracy/within_5pct_share": weighted("matched_share"),
        "accuracy/coverage": weighted("coverage"),
        "accuracy/unattributed_usd": float(quality["unattributed_cost_usd"].sum() or 0.0),
        "accuracy/unpriced_billed_dbus": float(quality["unpriced_billed_dbus"].sum() or 0.0),
        "accuracy": dg.MetadataValue.md(markdown_table(rounded_frame(quality.select(shown)), 31)),
    }


def _not_configured_metadata(attributed: pl.DataFrame) -> dict:
    """The billed $ of workspaces the account's workspaces file does not list (empty when there are none)."""
    foreign = (
        attributed.filter(pl.col("reason") == NOT_CONFIGURED)
        .group_by("workspace_id")
        .agg(pl.col("billed_cost_usd").sum())
        .sort("workspace_id")
    )
    if foreign.height == 0:
        return {}
    return {
        "workspaces_not_configured": ", ".join(f"{w} (${usd:,.2f})" for w, usd in foreign.iter_rows()),
        "workspace_not_configured_usd": float(foreign["billed_cost_usd"].sum()),
    }
