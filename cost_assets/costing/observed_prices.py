"""Observed effective VM prices per node type and pricing model: ``mart.observed_vm_prices``.

The price sheet has one on-demand and one spot price per node type; the cloud bill has what the VMs really
cost: the hour's spot market, reservations and savings plans (amortized in the effective cost). This sets
them side by side so the sheet can be tuned, and so the pre-launch estimate can use what was paid
(``COST_ASSETS_VM_PRICES=observed``, :func:`trailing`).

How a VM charge gets its node type: ``cloud_match`` keys it to a cluster or a pool; the cluster's driver and
worker node types (a pool's node type) are the candidates. One candidate is the answer; with two (a driver
of another type), the one the charge's SKU description names (``BoxUsage:m5.xlarge``, ``Standard_DS3_v2
Spot``); otherwise the charge is left out (counted, never guessed). Its VM-hours are the bill's consumed
quantity (FOCUS ``ConsumedQuantity``, Azure ``Quantity``: hours for VMs); a charge without one is left out.

Per day × cloud × node type × pricing model × currency: VM-hours, billed and effective cost,
``effective_per_hour = effective ÷ hours`` and the sheet's price in force at the day's start
(``sheet_per_hour``: the spot price for spot VMs — the on-demand price when the sheet has none — else the
on-demand price), ``ratio_to_sheet = effective_per_hour ÷ sheet_per_hour``. Days add up: a trailing window's
price is Σ effective ÷ Σ hours (:func:`trailing`), never an average of daily prices.

Pure polars, no Dagster.
"""

import datetime as dt

import polars as pl

from cost_assets.costing.cloud_match import keyed_cloud
from cost_assets.costing.frames import Frame, lazy
from cost_assets.timeutil import day_bounds
from cost_assets.vocabulary import CLOUD_PRICING_MODELS

KEY = ["usage_date", "cloud", "node_type_id", "pricing_model", "currency_code"]
COLUMNS = [
    *KEY,
    "charges",
    "node_hours",
    "billed_cost",
    "effective_cost",
    "effective_per_hour",
    "sheet_per_hour",
    "ratio_to_sheet",
]
# The pricing models of a usage charge (the parser's ``other`` is not usage).
VM_PRICING_MODELS = [m for m in CLOUD_PRICING_MODELS if m != "other"]


def _candidates(clusters: Frame) -> pl.LazyFrame:
    """resource_kind, resource_key (lower case, as ``cloud_match``) → the node types its VMs can be."""
    frame = lazy(clusters)
    names = frame.collect_schema().names()
    pool = pl.coalesce("instance_pool_id", "driver_instance_pool_id").str.to_lowercase()
    cluster_rows = frame.filter(pool.is_null()).select(
        pl.lit("cluster").alias("resource_kind"),
        pl.col("cluster_id").str.to_lowercase().alias("resource_key"),
        pl.concat_list(pl.col("node_type_id"), pl.col("driver_node_type_id")).alias("node_type_id"),
    )
    pool_types = [pl.col("node_type_id")]
    if "pool_node_type_id" in names:
        pool_types.append(pl.col("pool_node_type_id"))
    pool_rows = frame.filter(pool.is_not_null()).select(
        pl.lit("pool").alias("resource_kind"),
        pool.alias("resource_key"),
        pl.concat_list(*pool_types).alias("node_type_id"),
    )
    return (
        pl.concat([cluster_rows, pool_rows])
        .explode("node_type_id")
        .drop_nulls("node_type_id")
        .unique(["resource_kind", "resource_key", "node_type_id"])
    )


def typed_vm_charges(cloud: Frame, clusters: Frame) -> pl.DataFrame:
    """The Databricks VM usage charges with their node type and VM-hours (``node_hours``); charges whose node
    type cannot be told (untagged, a warehouse, two candidates and a SKU naming neither) or that have no
    consumed quantity get a null ``node_type_id``."""
    vms = keyed_cloud(cloud, clusters).filter(
        (pl.col("service_category") == "vm_compute") & pl.col("pricing_model").is_in(VM_PRICING_MODELS)
    )
    vms = vms.with_row_index("_charge")
    sku = pl.col("sku_description").fill_null("").str.to_lowercase()
    picked = (
        vms.lazy()
        .select("_charge", "resource_kind", "resource_key", "sku_description")
        .join(_candidates(clusters), on=["resource_kind", "resource_key"], how="inner")
        .with_columns(
            pl.len().over("_charge").alias("_n"),
            sku.str.contains(pl.col("node_type_id").str.to_lowercase(), literal=True).alias("_named"),
        )
        .with_columns(pl.col("_named").sum().over("_charge").alias("_n_named"))
        .filter((pl.col("_n") == 1) | (pl.col("_named") & (pl.col("_n_named") == 1)))
        .select("_charge", "node_type_id")
        .collect()
    )
    hours = pl.col("consumed_quantity")
    return (
        vms.join(picked, on="_charge", how="left")
        .with_columns(
            pl.when(hours > 0).then(pl.col("node_type_id")).alias("node_type_id"),
            hours.alias("node_hours"),
        )
        .drop("_charge")
    )


def _sheet_prices(instance_types: Frame, day: dt.date) -> pl.LazyFrame:
    """cloud, node_type_id → on-demand and spot $/h in force at the day's start (USD rows)."""
    start, _ = day_bounds(day)
    at = pl.lit(start, pl.Datetime("us"))
    return (
        lazy(instance_types)
        .filter(
            (pl.col("currency_code") == "USD")
            & (pl.col("effective_from") <= at)
            & (pl.col("effective_to").is_null() | (pl.col("effective_to") > at))
        )
        .select(
            "cloud",
            "node_type_id",
            pl.col("vm_on_demand_per_hour").alias("_on_demand"),
            pl.coalesce("vm_spot_per_hour", "vm_on_demand_per_hour").alias("_spot"),
        )
        .unique(["cloud", "node_type_id"])
    )


def _with_sheet(frame: pl.LazyFrame, sheet: pl.LazyFrame) -> pl.LazyFrame:
    """``sheet_per_hour`` (spot VMs: the spot price, others: on-demand) and ``ratio_to_sheet``."""
    sheet_price = pl.when(pl.col("pricing_model") == "spot").then(pl.col("_spot")).otherwise(pl.col("_on_demand"))
    per_hour = pl.when(pl.col("node_hours") > 0).then(pl.col("effective_cost") / pl.col("node_hours"))
    return (
        frame.join(sheet, on=["cloud", "node_type_id"], how="left")
        .with_columns(per_hour.alias("effective_per_hour"), sheet_price.alias("sheet_per_hour"))
        .with_columns(
            pl.when((pl.col("currency_code") == "USD") & (pl.col("sheet_per_hour") > 0))
            .then(pl.col("effective_per_hour") / pl.col("sheet_per_hour"))
            .alias("ratio_to_sheet")
        )
        .drop("_on_demand", "_spot")
    )


def observed_vm_prices(cloud: Frame, clusters: Frame, instance_types: Frame, day: dt.date) -> pl.DataFrame:
    """``mart.observed_vm_prices`` for ``day`` (rows of :data:`COLUMNS`); ``instance_types`` is the day's
    price sheet (``ref.instance_types`` without ``usage_date``)."""
    typed = typed_vm_charges(lazy(cloud).filter(pl.col("usage_date") == day), clusters)
    grouped = (
        typed.lazy()
        .filter(pl.col("node_type_id").is_not_null())
        .group_by("usage_date", pl.col("provider").alias("cloud"), "node_type_id", "pricing_model", "currency_code")
        .agg(
            pl.len().cast(pl.Int64).alias("charges"),
            pl.col("node_hours").sum(),
            pl.col("billed_cost").sum(),
            pl.col("effective_cost").sum(),
        )
    )
    return _with_sheet(grouped, _sheet_prices(instance_types, day)).select(COLUMNS).sort(KEY).collect()


def trailing(observed: Frame, instance_types: Frame, day: dt.date) -> pl.DataFrame:
    """The days of ``observed`` summed per cloud × node type × pricing model × currency: VM-hours, costs,
    ``days``, and the window's effective $/h (Σ effective ÷ Σ hours) against the sheet in force on ``day``."""
    summed = (
        lazy(observed)
        .group_by("cloud", "node_type_id", "pricing_model", "currency_code")
        .agg(
            pl.col("usage_date").n_unique().cast(pl.Int64).alias("days"),
            pl.col("charges").sum(),
            pl.col("node_hours").sum(),
            pl.col("billed_cost").sum(),
            pl.col("effective_cost").sum(),
        )
    )
    return (
        _with_sheet(summed, _sheet_prices(instance_types, day))
        .sort("cloud", "node_type_id", "pricing_model", "currency_code")
        .collect()
    )
