"""Reference layer: effective-dated prices (unpartitioned; windows are half-open [start, end)).

They carry a single-run backfill policy like every daily asset: a partition-range run that selects them
too (``dagster asset materialize --select '*' --partition-range A...B``) needs every selected asset to
be single-run, and materializes them once, in that same run.
"""

import dagster as dg

from cost_assets import schemas
from cost_assets.assets.raw import contract_gate
from cost_assets.checks import contract_result, contract_spec, frame_metadata
from cost_assets.resources.prices import PriceCatalog

DBU_PRICES = dg.AssetKey(["ref", "dbu_prices"])
INSTANCE_TYPES = dg.AssetKey(["ref", "instance_types"])


@dg.asset(key=DBU_PRICES, group_name="ref", kinds={"yaml", "duckdb"},
          check_specs=[contract_spec(DBU_PRICES, schemas.DbuPrices)], pool="duckdb_writer",
          backfill_policy=dg.BackfillPolicy.single_run())
def dbu_prices(context: dg.AssetExecutionContext, prices: PriceCatalog):
    """$/DBU per SKU (cloud × tier × workload × Photon) over effective windows: list, contract (after
    discounts) and effective price, and the SKU's Photon DBU factor as data. Bundled sheet plus the
    COST_ASSETS_PRICES overrides."""
    frame = prices.dbu_prices()
    yield from contract_gate(context, [contract_result(schemas.DbuPrices, frame, DBU_PRICES)])
    yield dg.Output(frame, metadata=frame_metadata(frame, skus=frame["sku_name"].n_unique(),
                                                   clouds=", ".join(sorted(frame["cloud"].unique()))))


@dg.asset(key=INSTANCE_TYPES, group_name="ref", kinds={"yaml", "duckdb"},
          check_specs=[contract_spec(INSTANCE_TYPES, schemas.InstanceTypes)], pool="duckdb_writer",
          backfill_policy=dg.BackfillPolicy.single_run())
def instance_types(context: dg.AssetExecutionContext, prices: PriceCatalog):
    """Node types per cloud over effective windows: DBU/hour (non-Photon), vCPUs, memory, on-demand and
    spot VM $/hour."""
    frame = prices.instance_types()
    yield from contract_gate(context, [contract_result(schemas.InstanceTypes, frame, INSTANCE_TYPES)])
    yield dg.Output(frame, metadata=frame_metadata(frame, node_types=frame.height,
                                                   clouds=", ".join(sorted(frame["cloud"].unique()))))
