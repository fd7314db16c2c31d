"""Azure Retail Prices API client: Linux on-demand and Spot VM $/hour per armSkuName.

The API is unauthenticated and pages with ``NextPageLink`` (an absolute URL; null, empty or absent on
the last page; a page may hold fewer items than the page size and still not be the last). Only meters a
Databricks cluster can run on are kept: ``type == "Consumption"`` (not ``DevTestConsumption`` or
``Reservation``, whose price is for a whole term), not Windows (``productName`` ending in " Windows"),
not "Low Priority", priced per "1 Hour" from the first tier. Spot meters have ``skuName`` ending in
" Spot". When an armSkuName still has several prices, the latest ``effectiveStartDate`` wins; if meters
with that same date disagree, that is an error naming them, never a silent pick.

:func:`with_vm_prices` overlays the result on ``ref.instance_types`` rows (DBU/hour stays from the price
sheet: the Retail Prices API has no DBU rates per VM).
"""

from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

import polars as pl

from cost_assets.ingest.http import ApiClient
from cost_assets.timeutil import naive_utc

AZURE_PRICES_URL = "https://prices.azure.com/api/retail/prices"
API_VERSION = "2023-01-01-preview"
SOURCE = "azure_retail_prices"
SKUS_PER_QUERY = 10  # armSkuName terms per OData filter, to keep URLs short
VM_PRICES_SCHEMA = {
    "node_type_id": pl.String,
    "vm_on_demand_per_hour": pl.Float64,
    "vm_spot_per_hour": pl.Float64,
    "currency_code": pl.String,
    "effective_from": pl.Datetime("us"),
}


class AzurePriceError(ValueError):
    """The price list cannot be turned into one price per VM and kind (names the meters involved)."""


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def vm_filter(region: str, arm_sku_names: Iterable[str] = ()) -> str:
    """The OData ``$filter`` for a region's VM consumption meters (values are case-sensitive)."""
    text = f"serviceName eq 'Virtual Machines' and armRegionName eq {_quote(region)} and priceType eq 'Consumption'"
    names = sorted(set(arm_sku_names))
    if names:
        text += " and (" + " or ".join(f"armSkuName eq {_quote(n)}" for n in names) + ")"
    return text


def retail_price_items(
    client: ApiClient, odata_filter: str, currency: str = "USD", path: str = "/api/retail/prices"
) -> Iterator[dict]:
    """Every item for the filter, following ``NextPageLink`` (only to the same scheme and host)."""
    origin = urlsplit(client.base_url)
    params: dict | None = {
        "api-version": API_VERSION,
        "currencyCode": currency,
        "meterRegion": "primary",
        "$filter": odata_filter,
    }
    url = path
    while True:
        page = client.get_json(url, params)
        yield from page.get("Items") or []
        url = page.get("NextPageLink") or ""
        if not url:
            return
        target = urlsplit(url)
        if (target.scheme, target.netloc) != (origin.scheme, origin.netloc):
            raise AzurePriceError(f"NextPageLink leaves {origin.scheme}://{origin.netloc}: {url!r}")
        params = None  # the link carries the query (and the skip token)


def is_linux_vm_meter(item: dict) -> bool:
    """A Linux pay-as-you-go (on-demand or Spot) hourly meter: what a Databricks node is billed on."""
    names = f"{item.get('skuName', '')} {item.get('meterName', '')}"
    return (
        item.get("type") == "Consumption"
        and not str(item.get("productName", "")).endswith(" Windows")
        and "Low Priority" not in names
        and item.get("unitOfMeasure") == "1 Hour"
        and float(item.get("tierMinimumUnits") or 0) == 0
    )


def select_vm_prices(items: Iterable[dict]) -> pl.DataFrame:
    """Items → one row per armSkuName with on-demand and spot $/hour (VM_PRICES_SCHEMA)."""
    chosen: dict[tuple[str, str], dict] = {}
    for item in filter(is_linux_vm_meter, items):
        kind = "spot" if str(item.get("skuName", "")).endswith(" Spot") else "on_demand"
        key = (item["armSkuName"], kind)
        best = chosen.get(key)
        if best is None or item["effectiveStartDate"] > best["effectiveStartDate"]:
            chosen[key] = item
        elif item["effectiveStartDate"] == best["effectiveStartDate"] and item["retailPrice"] != best["retailPrice"]:
            raise AzurePriceError(
                f"{item['armSkuName']} ({kind}): meters {best['meterId']} ({best['productName']} / "
                f"{best['skuName']}: {best['retailPrice']}) and {item['meterId']} ({item['productName']} / "
                f"{item['skuName']}: {item['retailPrice']}) disagree from {item['effectiveStartDate']}"
            )
    rows = []
    for (sku, kind), item in sorted(chosen.items()):
        if kind != "on_demand":
            continue
        spot = chosen.get((sku, "spot"))
        rows.append(
            {
                "node_type_id": sku,
                "vm_on_demand_per_hour": float(item["retailPrice"]),
                "vm_spot_per_hour": float(spot["retailPrice"]) if spot else None,
                "currency_code": item["currencyCode"],
                "effective_from": naive_utc(item["effectiveStartDate"]),
            }
        )
    return pl.DataFrame(rows, schema=VM_PRICES_SCHEMA, orient="row") if rows else pl.DataFrame(schema=VM_PRICES_SCHEMA)


def vm_prices(
    region: str,
    arm_sku_names: Iterable[str],
    *,
    currency: str = "USD",
    base_url: str = AZURE_PRICES_URL,
    timeout_s: float = 30.0,
    max_requests_per_second: float | None = 5.0,
) -> pl.DataFrame:
    """Linux on-demand and Spot VM $/hour in ``region`` for ``arm_sku_names`` (e.g. ``Standard_DS3_v2``).

    Node types without an on-demand Linux meter are absent from the result.
    """
    names = sorted(set(arm_sku_names))
    parts = urlsplit(base_url)
    items: list[dict] = []
    with ApiClient(
        f"{parts.scheme}://{parts.netloc}",
        timeout_s=timeout_s,
        max_requests_per_second=max_requests_per_second,
        name="Azure Retail Prices API",
    ) as client:
        for i in range(0, len(names), SKUS_PER_QUERY):
            items.extend(
                retail_price_items(client, vm_filter(region, names[i : i + SKUS_PER_QUERY]), currency, parts.path)
            )
    return select_vm_prices(items)


def with_vm_prices(instance_types: pl.DataFrame, prices: pl.DataFrame) -> pl.DataFrame:
    """``ref.instance_types`` with the Azure rows' VM $/hour replaced where the price list has the node type.

    Rows of other clouds and node types the list lacks keep their price-sheet values and source.
    """
    joined = instance_types.join(
        prices.select(
            "node_type_id",
            pl.lit("AZURE").alias("cloud"),
            pl.col("vm_on_demand_per_hour").alias("_on_demand"),
            pl.col("vm_spot_per_hour").alias("_spot"),
            pl.col("currency_code").alias("_currency"),
        ),
        on=["cloud", "node_type_id"],
        how="left",
    )
    hit = pl.col("_on_demand").is_not_null()
    return joined.with_columns(
        vm_on_demand_per_hour=pl.when(hit).then("_on_demand").otherwise("vm_on_demand_per_hour"),
        vm_spot_per_hour=pl.when(hit).then("_spot").otherwise("vm_spot_per_hour"),
        currency_code=pl.when(hit).then("_currency").otherwise("currency_code"),
        source=pl.when(hit).then(pl.lit(SOURCE)).otherwise("source"),
    ).select(instance_types.columns)
