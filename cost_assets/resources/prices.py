"""Price catalog resource: ``ref.instance_types`` and ``ref.dbu_prices`` frames."""

import dagster as dg
import polars as pl

from cost_assets.ingest.azure_prices import AZURE_PRICES_URL, vm_prices, with_vm_prices
from cost_assets.ingest.list_prices import dbu_prices_from_list_prices
from cost_assets.ingest.sql import SqlStatementError, StatementClient, statement
from cost_assets.prices import PriceSheet, load_price_sheet
from cost_assets.resources.databricks import DatabricksConnection


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


class SystemTablesPriceCatalog(PriceCatalog):
    """``base``'s prices, with the account's ``system.billing.list_prices`` in place of the sheet's DBU list
    prices (:mod:`cost_assets.ingest.list_prices`); used when the bill comes from the system tables, so
    estimate and bill are priced alike. An optional source: when the statement fails (``system.billing``
    not granted or not enabled) the run log WARNs and the sheet's prices are used."""

    base: BundledPriceCatalog
    connection: DatabricksConnection
    warehouse_id: str

    def sheet(self) -> PriceSheet:
        return self.base.sheet()

    def instance_types(self) -> pl.DataFrame:
        return self.base.instance_types()

    def dbu_prices(self) -> pl.DataFrame:
        sheet = self.base.dbu_prices()
        log = dg.get_dagster_logger()
        try:
            with self.connection.client() as client:
                rows = StatementClient(client, self.warehouse_id).query(statement("list_prices"))
        except SqlStatementError as e:
            log.warning(f"system.billing.list_prices unavailable ({e}); ref/dbu_prices uses the bundled price sheet")
            return sheet
        frame, unknown = dbu_prices_from_list_prices(sheet, rows)
        if unknown:
            log.warning(
                f"system.billing.list_prices: {len(unknown)} SKU(s) the price sheet does not describe (no workload "
                f"or Photon factor), left out: {', '.join(unknown[:20])}"
            )
        return frame
