"""Price catalog resource: ``ref.instance_types`` and ``ref.dbu_prices`` frames."""

import dagster as dg
import polars as pl

from cost_assets.ingest.azure_prices import AZURE_PRICES_URL, vm_prices, with_vm_prices
from cost_assets.prices import PriceSheet, load_price_sheet


class PriceCatalog(dg.ConfigurableResource):
    """Abstract: the node-type and DBU price tables (effective-dated), and the account's tier."""

    tier: str = "PREMIUM"  # STANDARD | PREMIUM | ENTERPRISE: with workload and Photon it picks the SKU
    cloud: str = "AZURE"  # the cloud of bill rows that name none (the legacy CSV has no cloud column)

    def token_prices(self) -> pl.DataFrame:
        return self.sheet().token_prices_frame()

    def sheet(self) -> PriceSheet:
        raise NotImplementedError(f"{type(self).__name__} does not provide prices")

    def instance_types(self) -> pl.DataFrame:
        return self.sheet().instance_types_frame()

    def dbu_prices(self) -> pl.DataFrame:
        return self.sheet().dbu_prices_frame()


class BundledPriceCatalog(PriceCatalog):
    """The price sheet shipped with the package, plus the overrides file named by COST_ASSETS_PRICES."""

    overrides_path: str | None = None

    def sheet(self) -> PriceSheet:
        return load_price_sheet(self.overrides_path)


class AzureRetailPriceCatalog(BundledPriceCatalog):
    """The price sheet with Azure VM $/hour (on-demand and spot) from the Azure Retail Prices API for one
    region; DBU/hour and every other cloud stay from the sheet (the API has no DBU rates)."""

    region: str  # an armRegionName, e.g. "eastus"
    prices_url: str = AZURE_PRICES_URL

    def instance_types(self) -> pl.DataFrame:
        sheet = super().instance_types()
        azure = sheet.filter(pl.col("cloud") == "AZURE")["node_type_id"].unique().to_list()
        return with_vm_prices(sheet, vm_prices(self.region, azure, base_url=self.prices_url))
