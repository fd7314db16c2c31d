"""Reference layer: the price tables, one snapshot per day (windows inside are half-open [start, end)).

Each daily partition holds the price sheet (bundled + ``COST_ASSETS_PRICES`` overrides, or the Azure
Retail Prices API) as it stood when that day was materialized, with its effective-dated windows. Why
daily and not one unpartitioned table: the marts read the prices, and Dagster never puts unpartitioned
and partitioned assets in one run — a range backfill of the whole graph then became three runs (the
prices, the raw tables, then the marts waiting for the prices). As daily assets with the same single-run
policy, the prices are refreshed in every daily run and a backfill of everything is one run; each day
also records the prices it was costed with.
"""

import datetime as dt

import dagster as dg
import polars as pl

from cost_assets import schemas
from cost_assets.assets.guarded import contract_gate
from cost_assets.assets.policies import DAILY_ASSET, PARTITIONED
from cost_assets.checks import add_daily_metadata, contract_result, contract_spec
from cost_assets.partitions import window_days
from cost_assets.resources.prices import PriceCatalog
from cost_assets.resources.warehouse import ADDED_COLUMNS

DBU_PRICES = dg.AssetKey(["ref", "dbu_prices"])
INSTANCE_TYPES = dg.AssetKey(["ref", "instance_types"])


def per_day(frame: pl.DataFrame, days: list[dt.date]) -> pl.DataFrame:
    """One copy of the sheet per day, stamped with its ``usage_date``."""
    return pl.concat([frame.with_columns(pl.lit(day).alias("usage_date")) for day in days])


def snapshot(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """The prices of ``day`` as the engine reads them (without ``usage_date``)."""
    return frame.filter(pl.col("usage_date") == day).drop("usage_date")


@dg.asset(
    key=DBU_PRICES,
    group_name="ref",
    kinds={"yaml", "duckdb"},
    metadata=PARTITIONED,
    check_specs=[contract_spec(DBU_PRICES, schemas.DailyDbuPrices)],
    pool="duckdb_writer",
    **DAILY_ASSET,
)
def dbu_prices(context: dg.AssetExecutionContext, prices: PriceCatalog):
    """$/DBU per SKU (cloud × tier × workload × Photon) over effective windows: list, contract (after
    discounts) and effective price, and the SKU's Photon DBU factor as data. Bundled sheet plus the
    COST_ASSETS_PRICES overrides; with the system-tables bill, the account's system.billing.list_prices
    (docs/account-scale.md; a WARN in the run log and the sheet when not granted). One snapshot per day."""
    days = window_days(context.partition_time_window)
    frame = per_day(prices.dbu_prices(), days)
    yield from contract_gate(context, [contract_result(schemas.DailyDbuPrices, frame, DBU_PRICES)])
    add_daily_metadata(
        context,
        frame,
        days,
        lambda f, _: {
            "skus": f["sku_name"].n_unique(),
            "clouds": ", ".join(sorted(f["cloud"].unique())),
            "sources": ", ".join(sorted(f["source"].unique())),  # e.g. system.billing.list_prices
        },
    )
    yield dg.Output(frame)


@dg.asset(
    key=INSTANCE_TYPES,
    group_name="ref",
    kinds={"yaml", "duckdb"},
    metadata={**PARTITIONED, ADDED_COLUMNS: ["disk_type", "disks_per_node", "disk_per_hour"]},
    check_specs=[contract_spec(INSTANCE_TYPES, schemas.DailyInstanceTypes)],
    pool="duckdb_writer",
    **DAILY_ASSET,
)
def instance_types(context: dg.AssetExecutionContext, prices: PriceCatalog):
    """Node types per cloud over effective windows: DBU/hour (non-Photon), vCPUs, memory, on-demand and
    spot VM $/hour, and the managed disks each node carries ($/hour); one snapshot per day."""
    days = window_days(context.partition_time_window)
    frame = per_day(prices.instance_types(), days)
    yield from contract_gate(context, [contract_result(schemas.DailyInstanceTypes, frame, INSTANCE_TYPES)])
    add_daily_metadata(
        context, frame, days, lambda f, _: {"node_types": f.height, "clouds": ", ".join(sorted(f["cloud"].unique()))}
    )
    yield dg.Output(frame)
