"""``ref/dbu_prices`` from the account's ``system.billing.list_prices`` (queries/list_prices.sql).

``list_prices`` has the account's real list price windows per SKU but none of what the engine also needs
from a price row: the SKU's tier, workload, Photon flag and Photon DBU factor, or the contract discount.
Those stay from the price sheet (with the COST_ASSETS_PRICES overrides), matched on cloud and SKU name; the
prices and their windows come from the account. A SKU the sheet does not describe cannot be used by the
engine (it has no workload) and is left out and counted; a sheet SKU the account does not list keeps its
sheet prices. Only ``DBU`` prices in USD are taken, as the engine prices DBUs in USD.
"""

import polars as pl

from cost_assets.timeutil import naive_utc

SOURCE = "system.billing.list_prices"
_ATTRIBUTES = ["cloud", "sku_name", "tier", "workload", "is_photon", "photon_dbu_factor", "contract_discount"]


def dbu_prices_from_list_prices(sheet: pl.DataFrame, list_prices: list[dict]) -> tuple[pl.DataFrame, list[str]]:
    """The sheet's ``ref.dbu_prices`` frame with the account's list prices in place of its own, and the SKUs
    left out (listed by the account, unknown to the sheet)."""
    rows = [
        {
            "cloud": str(r["cloud"]).upper(),
            "sku_name": r["sku_name"],
            "price_start_time": naive_utc(r["price_start_time"]),
            "price_end_time": naive_utc(r["price_end_time"]) if r.get("price_end_time") else None,
            "list_price": float(r["list_price"]),
        }
        for r in list_prices
        if r.get("usage_unit") == "DBU" and r.get("currency_code") == "USD"
    ]
    if not rows:
        return sheet, []
    account = pl.DataFrame(rows).with_columns(
        pl.col("price_start_time", "price_end_time").cast(sheet["price_start_time"].dtype)
    )
    # The sheet row in force when the account's window starts (else the sheet's first one for the SKU):
    # a SKU's Photon factor can change over time.
    attributes = sheet.select(*_ATTRIBUTES, "price_start_time").sort("price_start_time")
    account = account.sort("price_start_time")
    in_force = account.join_asof(
        attributes, on="price_start_time", by=["cloud", "sku_name"], strategy="backward", check_sortedness=False
    )
    first = account.join_asof(
        attributes, on="price_start_time", by=["cloud", "sku_name"], strategy="forward", check_sortedness=False
    )
    priced = in_force.with_columns(
        pl.coalesce(in_force[c], first[c]).alias(c) for c in _ATTRIBUTES if c not in ("cloud", "sku_name")
    ).filter(pl.col("workload").is_not_null())
    unknown = sorted(set(account["sku_name"]) - set(priced["sku_name"]))
    from_account = priced.with_columns(
        pl.lit("DBU").alias("usage_unit"),
        pl.lit("USD").alias("currency_code"),
        (pl.col("list_price") * (1 - pl.col("contract_discount"))).alias("contract_price"),
        pl.lit(SOURCE).alias("source"),
    ).with_columns(pl.col("contract_price").alias("effective_price"))
    kept = sheet.join(priced.select("cloud", "sku_name").unique(), on=["cloud", "sku_name"], how="anti")
    return pl.concat([kept, from_account.select(sheet.columns)]).sort(
        ["cloud", "sku_name", "price_start_time"]
    ), unknown
