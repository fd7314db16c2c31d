"""The cloud bill assets through Dagster on the simulated workspace: registered only with
COST_ASSETS_CLOUD_BILL, a tagged VM matched to its cluster's runs, the conservation check, a bad file failing
with file/row/column while nothing stored is lost, and missing files degrading to a WARN."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from cost_assets import guard
from cost_assets.assets.cloud import CLOUD_COSTS, _guard_view
from cost_assets.cloud_sensor import cloud_bill_sensor
from cost_assets.definitions import build_defs
from cost_assets.resources.warehouse import read_table
from tests.conftest import QUIET, run_daily, sim_environ
from tests.test_cloud_costing import bill, charge

DAY = "2026-01-05"
HEADER = (
    "ProviderName,BillingAccountId,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ServiceCategory,x_UsageType,"
    "ResourceId,PricingCategory,BilledCost,EffectiveCost,ListCost,BillingCurrency,Tags"
)


def _line(cluster: str | None, hour: dt.datetime, usage: str, resource: str, cost: float) -> str:
    tags = (
        f'{{""user:ClusterId"":""{cluster}"",""user:Vendor"":""Databricks""}}'
        if cluster
        else '{""user:Vendor"":""Databricks""}'
    )
    end = hour + dt.timedelta(hours=1)
    return (
        f"AWS,acct,{hour:%Y-%m-%dT%H:%M:%SZ},{end:%Y-%m-%dT%H:%M:%SZ},Usage,Compute,{usage},{resource},Standard,"
        f'{cost},{cost},{cost},USD,"{tags}"'
    )


def test_without_the_setting_no_cloud_asset_is_registered(tmp_path):
    keys = {
        k.to_user_string()
        for k in build_defs(sim_environ(tmp_path / "d.duckdb")).resolve_asset_graph().get_all_asset_keys()
    }
    assert not keys & {
        "raw/cloud_costs",
        "mart/vm_reconciliation",
        "mart/attributed_cloud_costs",
        "mart/run_total_costs",
    }


def test_the_cloud_bill_through_the_daily_pipeline(tmp_path):
    database, exports = tmp_path / "ledger.duckdb", tmp_path / "exports"
    exports.mkdir()
    defs = build_defs(sim_environ(database, COST_ASSETS_CLOUD_BILL=str(exports)))
    graph = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw/cloud_costs", "mart/vm_reconciliation", "mart/attributed_cloud_costs", "mart/run_total_costs"} <= graph

    # 1. No export yet: a WARN, the day succeeds, the marts are empty but exist.
    result = run_daily(defs, DAY)
    assert result.success
    warns = {(e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert warns["cloud_costs", "sources_complete"] is False and warns["cloud_costs", "cloud_bill_present"] is False

    # 2. The export bills, for the busiest estimated cluster-hour, exactly its estimated VM $ (an on-demand
    #    VM), plus an EBS volume of that cluster ($0.05) and an untagged Databricks VM ($0.19).
    est = read_table(str(database), "mart.estimated_costs")
    top = (
        est.group_by("cluster_id", "hour_start")
        .agg(pl.col("vm_cost_usd").sum())
        .sort("vm_cost_usd", "cluster_id", "hour_start", descending=True)
        .row(0, named=True)
    )
    cluster, hour, vm = top["cluster_id"], top["hour_start"], round(top["vm_cost_usd"], 6)
    lines = [
        _line(cluster, hour, "USE1-BoxUsage:m5.xlarge", "i-0vm", vm),
        _line(cluster, hour, "USE1-EBS:VolumeUsage.gp3", "vol-0disk", 0.05),
        _line(None, hour, "USE1-BoxUsage:m5.xlarge", "i-0orphan", 0.19),
    ]
    (exports / "focus.csv").write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    result = run_daily(defs, DAY)
    assert result.success
    checks = {(e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks["attributed_cloud_costs", "conserves_the_cloud_bill"]
    assert checks["cloud_costs", "cloud_bill_present"] and checks["cloud_costs", "sources_complete"]

    recon = read_table(str(database), "mart.vm_reconciliation")
    vm_row = recon.filter(resource_key=cluster.lower(), service_category="vm_compute", period_start=hour).row(
        0, named=True
    )
    assert vm_row["reason"] == "ok" and vm_row["ratio"] == pytest.approx(1.0, abs=1e-6)
    assert recon.filter(resource_kind="untagged")["reason"].to_list() == ["untagged"]

    handed = read_table(str(database), "mart.attributed_cloud_costs")
    # Σ attributed = the Databricks charges: vm + 0.05 + 0.19
    assert handed["effective_cost"].sum() == pytest.approx(vm + 0.05 + 0.19)
    assert handed.filter(consumer="unattributed")["effective_cost"].sum() == pytest.approx(0.19)
    # the VM went to the cluster-hour's consumers in the estimate's VM-$ proportions, its disk in the
    # estimate's disk-$ proportions
    shares = (
        est.filter(cluster_id=cluster, hour_start=hour)
        .group_by("consumer", "task_run_id")
        .agg(pl.col("vm_cost_usd").sum(), pl.col("disk_cost_usd").sum())
    )
    disk = shares["disk_cost_usd"].sum()
    got = (
        handed.filter(resource_key=cluster.lower())
        .group_by("consumer", "task_run_id")
        .agg(pl.col("effective_cost").sum())
    )
    expected = shares.with_columns(
        (pl.col("vm_cost_usd") / vm * vm + pl.col("disk_cost_usd") / disk * 0.05).alias("effective_cost")
    ).drop("vm_cost_usd", "disk_cost_usd")

    def by_consumer(frame: pl.DataFrame, column: str) -> dict:
        return {(r["consumer"], r["task_run_id"]): r[column] for r in frame.iter_rows(named=True)}

    assert by_consumer(got, "effective_cost") == pytest.approx(by_consumer(expected, "effective_cost"))

    totals = read_table(str(database), "mart.run_total_costs")
    dbu = read_table(str(database), "mart.attributed_costs")["billed_cost_usd"].sum()
    assert totals["total_cost_usd"].sum() == pytest.approx(dbu + vm + 0.05 + 0.19)

    # 3. A bad file: the step fails naming file, row and column, and the stored day is unchanged.
    stored = read_table(str(database), "raw.cloud_costs")
    (exports / "late.csv").write_text(
        HEADER + "\n" + lines[0] + "\n" + lines[1].replace(",0.05,0.05,", ",0.05,n/a,") + "\n"
    )
    result = run_daily(defs, DAY, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert f"{exports / 'late.csv'}: data row 2: column EffectiveCost: not a number: 'n/a'" in message
    assert read_table(str(database), "raw.cloud_costs").equals(stored)

    # 4. The files vanish (an unmounted share): WARN, and the stored charges stay.
    for f in exports.iterdir():
        f.unlink()
    result = run_daily(defs, DAY)
    assert result.success
    assert read_table(str(database), "raw.cloud_costs").equals(stored)


def test_a_day_whose_charges_shrink_without_credits_is_refused_and_credits_are_accepted():
    day = dt.date(2026, 1, 5)
    stored = bill(charge(1, cost=6.0), charge(2, cost=4.0))  # $10 stored
    shrunk = bill(charge(1, cost=4.0))  # $4: a drop of 60 % > 50 %, no credit explains it
    credited = bill(charge(1, cost=6.0), charge(2, cost=4.0), charge(3, cost=-6.0, charge_category="Credit"))
    # net $4 too, but the charges before credits are still $10: a correction, accepted

    def verdict(new: pl.DataFrame) -> str | None:
        (check,) = guard.check_days(
            "raw.cloud_costs", _guard_view(stored), _guard_view(new), [day], guard.BILL, 0.5, unit="$"
        )
        return check.reason

    assert "dropped by 60%" in verdict(shrunk)
    assert verdict(credited) is None
    assert verdict(bill()) == "the source returned no rows for a day that is stored"


def test_a_late_cloud_export_rematerializes_exactly_its_day(tmp_path):
    today = dt.datetime.now(dt.UTC).date()
    day, other = today - dt.timedelta(days=3), today - dt.timedelta(days=4)  # inside the look-back
    at = dt.datetime.combine
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "early.csv").write_text(
        HEADER + "\n" + _line("c1", at(other, dt.time(10)), "BoxUsage", "i-1", 1.0) + "\n"
    )
    defs = build_defs(sim_environ(tmp_path / "w.duckdb", COST_ASSETS_CLOUD_BILL=str(exports)))
    assert "cloud_bill_sensor" in {s.name for s in defs.sensors}
    instance = dg.DagsterInstance.ephemeral()

    def materialize(d: dt.date) -> None:
        result = dg.materialize(
            defs.assets,
            selection=dg.AssetSelection.assets(CLOUD_COSTS),
            partition_key=d.isoformat(),
            instance=instance,
            resources=defs.resources,
            run_config=QUIET,
        )
        assert result.success

    def tick():
        context = dg.build_sensor_context(
            instance=instance, resources={"cloud_bill": defs.resources["cloud_bill"]}, definitions=defs
        )
        return cloud_bill_sensor.evaluate_tick(context).run_requests

    for d in (day, other):
        materialize(d)  # `day` has no charges yet: a WARN, the run succeeds
    assert not tick()  # nothing changed since

    # The export of `day` lands a day late: exactly that day is requested, once per change.
    (exports / "late.csv").write_text(HEADER + "\n" + _line("c1", at(day, dt.time(10)), "BoxUsage", "i-1", 2.0) + "\n")
    requests = tick()
    assert [r.partition_key for r in requests] == [day.isoformat()]
    assert requests[0].run_key.startswith(f"cloud-bill:{day.isoformat()}:") and requests[0].run_key.endswith(":2.0")
    materialize(day)
    assert not tick()
