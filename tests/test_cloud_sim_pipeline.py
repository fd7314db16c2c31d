"""The simulated cloud bill through the daily pipeline for a week: every Databricks-tagged cloud $ handed
out (Σ attributed = Σ billed per day, VMs alone too), and the accuracy asset measuring the estimate."""

import polars as pl
import pytest

from cost_assets.definitions import build_defs
from cost_assets.resources.warehouse import read_table
from tests.conftest import run_daily, sim_environ

FIRST, LAST = "2026-01-05", "2026-01-11"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> str:
    database = tmp_path_factory.mktemp("cloud-sim") / "ledger.duckdb"
    defs = build_defs(sim_environ(database, COST_ASSETS_CLOUD_BILL="simulated"))
    result = run_daily(defs, FIRST, LAST)
    assert result.success
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks["mart/attributed_cloud_costs", "conserves_the_cloud_bill"] is True
    return str(database)


def test_a_simulated_week_of_vm_dollars_is_conserved(ledger: str):
    cloud = read_table(ledger, "raw.cloud_costs")
    handed = read_table(ledger, "mart.attributed_cloud_costs")
    assert cloud["usage_date"].n_unique() == 7

    def per_day(frame: pl.DataFrame) -> dict:
        return dict(
            frame.group_by("usage_date")
            .agg(pl.col("billed_cost").sum(), pl.col("effective_cost").sum())
            .sort("usage_date")
            .select("usage_date", pl.concat_list("billed_cost", "effective_cost"))
            .iter_rows()
        )

    databricks = cloud.filter(pl.col("is_databricks"))
    billed, attributed = per_day(databricks), per_day(handed)
    assert billed.keys() == attributed.keys()
    for day in billed:
        assert attributed[day] == pytest.approx(billed[day], abs=0.01)
    # the VMs alone: runs + idle + unattributed VM $ = the VMs' billed $ (reserved hours billed 0)
    vms = per_day(databricks.filter(pl.col("service_category") == "vm_compute"))
    handed_vms = per_day(handed.filter(pl.col("service_category") == "vm_compute"))
    for day in vms:
        assert handed_vms[day] == pytest.approx(vms[day], abs=0.01)
    # the bill holds what the DBU bill does not: spot, reserved (billed 0), untagged and non-Databricks rows
    assert {"spot", "reservation", "on_demand"} <= set(databricks["pricing_model"])
    assert (databricks.filter(pl.col("pricing_model") == "reservation")["billed_cost"] == 0).all()
    assert not cloud["is_databricks"].all()
    assert handed.filter(pl.col("consumer") == "unattributed").height > 0


def test_the_accuracy_asset_measures_the_estimate_against_the_truth(ledger: str):
    accuracy = read_table(ledger, "sim.vm_cost_accuracy")
    assert accuracy["usage_date"].n_unique() == 7
    clusters = accuracy.filter(pl.col("resource_kind") == "cluster")
    true, estimated = clusters["true_vm_cost_usd"].sum(), clusters["estimated_vm_cost_usd"].sum()
    assert true > 0 and abs(estimated - true) / true < 0.15
    # The tiny world's pool: no cluster draws from it, but raw/instance_pools lists it, so the estimate has
    # its warm idle VMs (min_idle_instances all day) as the truth does, every hour.
    pool = accuracy.filter(pl.col("resource_kind") == "pool")
    assert pool.height == 7 * 24 and (pool["estimated_vm_cost_usd"] > 0).all()
    assert pool["true_vm_cost_usd"].sum() > 0 and (pool["abs_rel_error"] < 0.01).all()


def test_the_late_cloud_bill_sensor_sees_no_change_in_the_simulated_bill(tmp_path):
    import datetime as dt

    import dagster as dg

    from cost_assets.assets.cloud import CLOUD_COSTS
    from cost_assets.cloud_sensor import cloud_bill_sensor
    from tests.conftest import QUIET

    defs = build_defs(sim_environ(tmp_path / "w.duckdb", COST_ASSETS_CLOUD_BILL="simulated"))
    instance = dg.DagsterInstance.ephemeral()
    today = dt.datetime.now(dt.UTC).date()
    for d in (today - dt.timedelta(days=4), today - dt.timedelta(days=3)):  # inside the sensor's look-back
        result = dg.materialize(
            defs.assets,
            selection=dg.AssetSelection.assets(CLOUD_COSTS),
            partition_key=d.isoformat(),
            instance=instance,
            resources=defs.resources,
            run_config=QUIET,
        )
        assert result.success
    context = dg.build_sensor_context(
        instance=instance, resources={"cloud_bill": defs.resources["cloud_bill"]}, definitions=defs
    )
    # both days read again (one window of two days, not the day-by-day runs): the same fingerprints
    tick = cloud_bill_sensor.evaluate_tick(context)
    assert not tick.run_requests and "cloud bill unchanged for 2 materialized day(s)" in tick.skip_message
