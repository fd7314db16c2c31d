"""Simulation only: ``sim/vm_cost_accuracy``, the estimate's VM $ against the simulated cloud bill's truth.

``build_defs()`` registers it only with ``COST_ASSETS_CLOUD_BILL=simulated[:focus|:azure]`` (which needs
the simulated workspace), so the production cloud assets (``assets/cloud.py``) never see the simulator.
"""

import dagster as dg
import polars as pl

from cost_assets import schemas
from cost_assets.assets.cloud import VM_RECONCILIATION
from cost_assets.assets.policies import DAILY_ASSET, PARTITIONED
from cost_assets.checks import CONTRACT_DESCRIPTION, add_daily_metadata, contract_result
from cost_assets.partitions import window_days
from cost_assets.resources.simulated import SimulatedCloudBill
from cost_assets.resources.warehouse import ADDED_COLUMNS
from cost_assets.simulation import vm_accuracy

VM_COST_ACCURACY = dg.AssetKey(["sim", "vm_cost_accuracy"])


@dg.asset(
    key=VM_COST_ACCURACY,
    group_name="sim",
    kinds={"polars", "duckdb"},
    metadata={**PARTITIONED, ADDED_COLUMNS: ["estimated_disk_cost_usd", "true_disk_cost_usd"]},
    ins={"recon": dg.AssetIn(VM_RECONCILIATION)},
    check_specs=[
        dg.AssetCheckSpec("contract", asset=VM_COST_ACCURACY, blocking=True, description=CONTRACT_DESCRIPTION)
    ],
    pool="duckdb_writer",
    **DAILY_ASSET,
)
def vm_cost_accuracy(context: dg.AssetExecutionContext, cloud_bill: SimulatedCloudBill, recon: pl.DataFrame):
    """Per cluster or pool and period of ``mart/vm_reconciliation``: the estimated VM $ against what the
    VMs really cost in the simulated world (every VM, tags lost or not; spot at the hour's market price,
    reserved VMs amortized), with the absolute relative error, and the estimated disk $ against the VMs'
    true disk $; per day the totals (``truth/*`` metadata)."""
    days = window_days(context.partition_time_window)
    frame = vm_accuracy.vm_cost_accuracy(
        recon.filter(pl.col("usage_date").is_in(days)), cloud_bill.ground_truth_vm_costs(days)
    )
    add_daily_metadata(context, frame, days, lambda f, _: vm_accuracy.day_summary(f))
    summary = vm_accuracy.day_summary(frame)
    yield dg.Output(frame, metadata=summary)
    yield contract_result(schemas.VmCostAccuracy, frame, VM_COST_ACCURACY)
