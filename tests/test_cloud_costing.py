"""mart/vm_reconciliation and mart/attributed_cloud_costs on hand-built frames, every figure computed by hand.

The estimate's VM $ meets the cloud bill per cluster or pool and hour (or day); the bill's dollars of every
Databricks resource — VMs, disks, network — are handed out by the estimate's VM-$ shares and add up to the
bill per day.
"""

import datetime as dt

import polars as pl
import pytest

from cost_assets import schemas
from cost_assets.assets.cloud import conservation_result
from cost_assets.costing import cloud_attribute, vm_reconcile
from cost_assets.ingest.cloud_bill import costs_frame

DAY = dt.date(2026, 1, 5)
H10 = dt.datetime(2026, 1, 5, 10)
H11 = dt.datetime(2026, 1, 5, 11)
MIDNIGHT = dt.datetime(2026, 1, 5)
WS = "ws-1"


def charge(i: int, **fields) -> dict:
    """One raw.cloud_costs row: an hourly on-demand VM charge of $1 unless ``fields`` say otherwise."""
    start = fields.pop("start", H10)
    grain = fields.pop("grain", "hour")
    cost = fields.pop("cost", 1.0)
    row = {
        "usage_date": start.date(),
        "provider": "AWS",
        "export_format": "focus",
        "source_file": "bill.csv",
        "source_row": i,
        "export_time": dt.datetime(2026, 1, 6),
        "billing_account_id": "acct",
        "sub_account_id": "sub",
        "charge_period_start": start,
        "charge_period_end": start + (dt.timedelta(hours=1) if grain == "hour" else dt.timedelta(days=1)),
        "grain": grain,
        "charge_category": "Usage",
        "resource_id": f"r-{i}",
        "service_name": None,
        "sku_description": None,
        "service_category": "vm_compute",
        "pricing_model": "on_demand",
        "consumed_quantity": None,
        "billed_cost": cost,
        "effective_cost": cost,
        "list_cost": None,
        "currency_code": "USD",
        "tags": "{}",
        "is_databricks": True,
        "cluster_id": None,
        "cluster_name": None,
        "vendor": "Databricks",
        "creator": None,
        "job_id": None,
        "run_name": None,
        "instance_pool_id": None,
        "sql_warehouse_id": None,
    }
    row.update(fields)
    return row


def bill(*rows: dict) -> pl.DataFrame:
    return schemas.CloudCosts.validate(costs_frame(list(rows)))


def estimate(*rows: tuple) -> pl.DataFrame:
    """(cluster_id, hour_start, consumer, run_id, vm_cost_usd[, runtime_hours[, disk_cost_usd]]) → estimated_costs
    columns (no disk $ unless given)."""
    out = []
    for r in rows:
        cluster, hour, consumer, run, vm = r[:5]
        out.append(
            {
                "usage_date": hour.date(),
                "workspace_id": WS,
                "cluster_id": cluster,
                "hour_start": hour,
                "consumer": consumer,
                "run_id": run,
                "task_run_id": run * 10 if run else None,
                "job_id": 1 if run else None,
                "runtime_hours": r[5] if len(r) > 5 else 1.0,
                "vm_cost_usd": vm,
                "disk_cost_usd": r[6] if len(r) > 6 else None,
            }
        )
    schema = {
        "usage_date": pl.Date,
        "workspace_id": pl.String,
        "cluster_id": pl.String,
        "hour_start": pl.Datetime("us"),
        "consumer": pl.String,
        "run_id": pl.Int64,
        "task_run_id": pl.Int64,
        "job_id": pl.Int64,
        "runtime_hours": pl.Float64,
        "vm_cost_usd": pl.Float64,
        "disk_cost_usd": pl.Float64,
    }
    return pl.DataFrame(out, schema=schema, orient="row")


def clusters(*rows: tuple) -> pl.DataFrame:
    """(cluster_id, instance_pool_id) → the raw.clusters columns the matching reads."""
    return pl.DataFrame(
        [{"usage_date": DAY, "cluster_id": c, "instance_pool_id": p, "driver_instance_pool_id": None} for c, p in rows],
        schema={
            "usage_date": pl.Date,
            "cluster_id": pl.String,
            "instance_pool_id": pl.String,
            "driver_instance_pool_id": pl.String,
        },
    )


NO_CLUSTERS = clusters()


def recon_row(frame: pl.DataFrame, **where) -> dict:
    rows = frame.filter(**where).to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


def test_a_spot_vm_billed_at_the_hours_market_price_vs_the_sheet():
    # Two spot workers of cluster c-spot, 10:00-11:00. The sheet's spot price is $0.10/h per VM, so the
    # estimate is $0.20 for the hour: run 1 has $0.15 of it, run 2 $0.05 (shares 0.75 / 0.25).
    est = estimate(("c-spot", H10, "run", 1, 0.15), ("c-spot", H10, "run", 2, 0.05))
    # The bill has the hour's spot market price, $0.0712 per VM: 2 × 0.0712 = $0.1424.
    cloud = bill(
        charge(1, cluster_id="c-spot", pricing_model="spot", cost=0.0712),
        charge(2, cluster_id="c-spot", pricing_model="spot", cost=0.0712),
    )
    recon = vm_reconcile.vm_reconciliation(cloud, est, NO_CLUSTERS)
    schemas.VmReconciliation.validate(recon)
    row = recon_row(recon, resource_key="c-spot")
    assert row["estimated_vm_cost_usd"] == pytest.approx(0.20)
    assert row["effective_cost"] == pytest.approx(0.1424)
    assert row["ratio"] == pytest.approx(0.20 / 0.1424)  # 1.4045: 40 % over, the sheet's spot price is high
    assert row["delta"] == pytest.approx(0.1424 - 0.20)  # -0.0576
    assert (row["reason"], row["grain"], row["pricing_models"], row["cloud_rows"]) == ("spot_price", "hour", "spot", 2)

    handed = cloud_attribute.attributed_cloud_costs(cloud, est, NO_CLUSTERS)
    schemas.AttributedCloudCosts.validate(handed)
    by_run = dict(zip(handed["run_id"], handed["effective_cost"], strict=True))
    assert by_run[1] == pytest.approx(0.1424 * 0.75)  # $0.1068
    assert by_run[2] == pytest.approx(0.1424 * 0.25)  # $0.0356
    assert set(handed["reason"]) == {"hour_share"}


def test_a_reservation_bills_zero_and_is_compared_on_its_effective_cost():
    # Azure's daily export: one D4s v3 of cluster az1 all day under a reservation. BilledCost 0 (prepaid),
    # EffectiveCost $3.60 (the reservation amortized), ListCost $5.52 (24 h × $0.23).
    # The estimate prices it on demand: 24 hours × $0.23 = $5.52, all run 7's.
    est = estimate(*[("az1", MIDNIGHT + dt.timedelta(hours=h), "run", 7, 0.23) for h in range(24)])
    cloud = bill(
        charge(
            1,
            start=MIDNIGHT,
            grain="day",
            cluster_id="az1",
            pricing_model="reservation",
            billed_cost=0.0,
            effective_cost=3.60,
            list_cost=5.52,
            provider="AZURE",
        )
    )
    recon = vm_reconcile.vm_reconciliation(cloud, est, NO_CLUSTERS)
    row = recon_row(recon, resource_key="az1")
    # the day is compared as a whole because the export is daily
    assert (row["grain"], row["period_start"]) == ("day", MIDNIGHT)
    assert row["estimated_vm_cost_usd"] == pytest.approx(24 * 0.23)  # $5.52
    assert row["billed_cost"] == 0.0 and row["list_cost"] == pytest.approx(5.52)
    assert row["ratio"] == pytest.approx(5.52 / 3.60)  # 1.533
    assert row["reason"] == "commitment_discount"

    handed = cloud_attribute.attributed_cloud_costs(cloud, est, NO_CLUSTERS)
    assert handed.height == 1
    got = handed.row(0, named=True)
    assert (got["run_id"], got["reason"], got["share"]) == (7, "day_share", pytest.approx(1.0))
    assert (got["billed_cost"], got["effective_cost"]) == (0.0, pytest.approx(3.60))


def test_a_disk_the_estimate_has_no_dollar_for_is_no_estimate_and_goes_with_its_clusters_vm_shares():
    # Cluster c1 at 10:00: run 1 $0.30 of VM, idle $0.10 (shares 0.75 / 0.25), no disk $ (an estimate from
    # before disks, or a node type without a disk price). Its VM bills $0.40 and its EBS volume $0.011.
    est = estimate(("c1", H10, "run", 1, 0.30), ("c1", H10, "idle", None, 0.10))
    cloud = bill(
        charge(1, cluster_id="c1", cost=0.40),
        charge(2, cluster_id="c1", cost=0.011, service_category="managed_disk"),
    )
    recon = vm_reconcile.vm_reconciliation(cloud, est, NO_CLUSTERS)
    vm = recon_row(recon, resource_key="c1", service_category="vm_compute")
    disk = recon_row(recon, resource_key="c1", service_category="managed_disk")
    assert (vm["reason"], vm["ratio"]) == ("ok", pytest.approx(1.0))  # $0.40 estimated, $0.40 billed
    assert disk["reason"] == "no_estimate"
    assert disk["estimated_disk_cost_usd"] is None and disk["effective_cost"] == pytest.approx(0.011)

    handed = cloud_attribute.attributed_cloud_costs(cloud, est, NO_CLUSTERS)
    disk_rows = handed.filter(service_category="managed_disk")
    shares = dict(zip(disk_rows["consumer"], disk_rows["effective_cost"], strict=True))
    assert shares["run"] == pytest.approx(0.011 * 0.75)  # $0.00825
    assert shares["idle"] == pytest.approx(0.011 * 0.25)  # $0.00275


def test_an_untagged_databricks_vm_is_unattributed_never_dropped():
    # A VM with Vendor=Databricks but no cluster or pool tag, $0.192 for the hour.
    cloud = bill(charge(1, resource_id="i-0orphan", cost=0.192))
    est = estimate(("c1", H10, "run", 1, 0.30))
    recon = vm_reconcile.vm_reconciliation(cloud, est, NO_CLUSTERS)
    row = recon_row(recon, resource_kind="untagged")
    assert (row["resource_key"], row["reason"], row["effective_cost"]) == ("i-0orphan", "untagged", 0.192)
    # the estimated cluster has no bill: that row says so
    assert recon_row(recon, resource_key="c1")["reason"] == "no_cloud_bill"

    handed = cloud_attribute.attributed_cloud_costs(cloud, est, NO_CLUSTERS)
    got = handed.row(0, named=True)
    assert handed.height == 1
    assert (got["consumer"], got["reason"], got["share"], got["effective_cost"]) == (
        "unattributed",
        "untagged",
        1.0,
        0.192,
    )


def test_pool_vms_carry_the_pools_tag_and_go_to_the_clusters_drawing_from_it_and_to_pool_idle():
    # Pool p1 keeps idle VMs ($0.10 in the estimate, cluster_id = the pool id); cluster c2 draws its VMs
    # from it (run 3, $0.30). The bill has one VM tagged only with the pool ($0.40) and one tagged with
    # c2's id ($0.20), both keyed by the pool: total $0.60, shares 0.30 / 0.40 = 0.75 and 0.25.
    est = estimate(("c2", H10, "run", 3, 0.30), ("p1", H10, "idle", None, 0.10))
    pools = clusters(("c2", "p1"))
    cloud = bill(charge(1, instance_pool_id="P1", cost=0.40), charge(2, cluster_id="c2", cost=0.20))
    recon = vm_reconcile.vm_reconciliation(cloud, est, pools)
    row = recon_row(recon, resource_kind="pool")
    assert row["resource_key"] == "p1"  # ids are compared lower-cased
    assert row["estimated_vm_cost_usd"] == pytest.approx(0.40)
    assert row["effective_cost"] == pytest.approx(0.60)
    assert row["ratio"] == pytest.approx(0.40 / 0.60) and row["reason"] == "mismatch"

    handed = cloud_attribute.attributed_cloud_costs(cloud, est, pools)
    by_consumer = dict(zip(handed["consumer"], handed["effective_cost"], strict=True))
    assert by_consumer["run"] == pytest.approx(0.60 * 0.75)  # $0.45
    assert by_consumer["idle"] == pytest.approx(0.60 * 0.25)  # $0.15


def test_a_warm_pool_no_cluster_used_is_matched_by_the_bills_pool_tag_and_its_cost_goes_to_idle():
    # Pool p9 kept 2 idle VMs from 10:00 to 11:00 and no cluster of the day drew from it, so no raw.clusters
    # row names it: the estimate has its idle row (2 × $0.25 = $0.50, cluster_id = the pool id) and the bill
    # two VM charges tagged only with the pool ($0.25 each) plus its disks ($0.02 each).
    est = estimate(("p9", H10, "idle", None, 2 * 0.25, 1.0, 2 * 0.02))
    cloud = bill(
        charge(1, instance_pool_id="p9", cost=0.25),
        charge(2, instance_pool_id="p9", cost=0.25),
        charge(3, instance_pool_id="p9", cost=0.02, service_category="managed_disk"),
        charge(4, instance_pool_id="p9", cost=0.02, service_category="managed_disk"),
    )
    recon = vm_reconcile.vm_reconciliation(cloud, est, NO_CLUSTERS)
    vms = recon_row(recon, service_category="vm_compute")
    # one pool row, not a "cluster" p9 with no bill beside a "pool" p9 with no estimate: 0.50 vs 0.25 + 0.25
    assert (vms["resource_kind"], vms["resource_key"], vms["reason"]) == ("pool", "p9", "ok")
    assert (vms["estimated_vm_cost_usd"], vms["effective_cost"]) == pytest.approx((0.50, 0.50))
    disks = recon_row(recon, service_category="managed_disk")
    # 2 × 0.02 = 0.04 on both sides
    assert (disks["estimated_disk_cost_usd"], disks["effective_cost"], disks["reason"]) == (
        pytest.approx(0.04),
        pytest.approx(0.04),
        "ok",
    )
    handed = cloud_attribute.attributed_cloud_costs(cloud, est, NO_CLUSTERS)
    # all of it to idle: 0.25 + 0.25 + 0.02 + 0.02 = 0.54, nothing unattributed
    assert set(handed["consumer"]) == {"idle"}
    assert handed["effective_cost"].sum() == pytest.approx(0.25 + 0.25 + 0.02 + 0.02)


def test_an_hour_the_estimate_misses_takes_the_days_shares_and_a_cluster_it_never_saw_is_unattributed():
    # c1's estimate: 10:00 run 1 $0.30, 11:00 run 2 $0.10; so its day shares are 0.75 / 0.25.
    est = estimate(("c1", H10, "run", 1, 0.30), ("c1", H11, "run", 2, 0.10))
    cloud = bill(
        charge(1, cluster_id="c1", cost=0.04, start=dt.datetime(2026, 1, 5, 12)),  # tear-down billed at 12:00
        charge(2, cluster_id="c-unknown", cost=0.50),
    )
    handed = cloud_attribute.attributed_cloud_costs(cloud, est, NO_CLUSTERS)
    torn = handed.filter(resource_key="c1")
    assert set(torn["reason"]) == {"day_share"}
    assert dict(zip(torn["run_id"], torn["effective_cost"], strict=True)) == {
        1: pytest.approx(0.04 * 0.75),  # $0.03
        2: pytest.approx(0.04 * 0.25),  # $0.01
    }
    unknown = handed.filter(resource_key="c-unknown").row(0, named=True)
    assert (unknown["consumer"], unknown["reason"], unknown["effective_cost"]) == ("unattributed", "no_estimate", 0.50)
    recon = vm_reconcile.vm_reconciliation(cloud, est, NO_CLUSTERS)
    assert recon_row(recon, resource_key="c-unknown")["reason"] == "no_estimate"


def test_a_bill_in_another_currency_is_handed_out_but_not_compared():
    est = estimate(("c1", H10, "run", 1, 0.30))
    cloud = bill(charge(1, cluster_id="c1", cost=0.28, currency_code="EUR"))
    row = recon_row(vm_reconcile.vm_reconciliation(cloud, est, NO_CLUSTERS), resource_key="c1")
    assert (row["reason"], row["ratio"], row["currency_code"]) == ("other_currency", None, "EUR")
    handed = cloud_attribute.attributed_cloud_costs(cloud, est, NO_CLUSTERS)
    assert (handed["currency_code"].to_list(), handed["effective_cost"].to_list()) == (["EUR"], [0.28])


def test_an_unpriced_estimate_is_no_estimate_not_zero_and_shares_fall_back_to_runtime():
    # Both consumers of c1 at 10:00 are unpriced (vm null); run 1 ran 0.5 h, run 2 1.5 h: shares 0.25 / 0.75.
    est = estimate(("c1", H10, "run", 1, None, 0.5), ("c1", H10, "run", 2, None, 1.5))
    cloud = bill(charge(1, cluster_id="c1", cost=0.80))
    row = recon_row(vm_reconcile.vm_reconciliation(cloud, est, NO_CLUSTERS), resource_key="c1")
    assert (row["estimated_vm_cost_usd"], row["reason"]) == (None, "no_estimate")
    handed = cloud_attribute.attributed_cloud_costs(cloud, est, NO_CLUSTERS)
    assert dict(zip(handed["run_id"], handed["effective_cost"], strict=True)) == {
        1: pytest.approx(0.20),  # 0.80 × 0.25
        2: pytest.approx(0.60),  # 0.80 × 0.75
    }


def _mixed_day() -> tuple[pl.DataFrame, pl.DataFrame]:
    est = estimate(("c1", H10, "run", 1, 0.30), ("c1", H10, "idle", None, 0.10))
    cloud = bill(
        charge(1, cluster_id="c1", cost=0.40),
        charge(2, cluster_id="c1", cost=0.011, service_category="managed_disk"),
        charge(3, cost=0.192, resource_id="i-0orphan"),
        charge(4, cost=5.0, is_databricks=False, vendor=None),  # another team's VM: not Databricks money
    )
    return cloud, est


def test_attribution_conserves_the_databricks_cloud_bill_per_day():
    cloud, est = _mixed_day()
    handed = cloud_attribute.attributed_cloud_costs(cloud, est, NO_CLUSTERS)
    gaps = cloud_attribute.conservation_gaps(cloud, handed)
    # Databricks charges: 0.40 + 0.011 + 0.192 = $0.603; the $5 VM without Databricks tags is not handed out.
    assert gaps["billed_cost"].to_list() == [pytest.approx(0.603)]
    assert gaps["billed_cost_attributed"].to_list() == [pytest.approx(0.603)]
    assert gaps["ok"].to_list() == [True]
    assert conservation_result(gaps).passed


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda f: f.filter(pl.col("consumer") != "unattributed"), id="a-charge-dropped"),
        pytest.param(lambda f: f.with_columns(pl.col("effective_cost") * 1.1), id="effective-inflated"),
        pytest.param(lambda f: f.head(0), id="nothing-attributed"),
    ],
)
def test_the_conservation_check_fails_when_the_attribution_does_not_add_up(tamper):
    cloud, est = _mixed_day()
    handed = tamper(cloud_attribute.attributed_cloud_costs(cloud, est, NO_CLUSTERS))
    gaps = cloud_attribute.conservation_gaps(cloud, handed)
    assert gaps["ok"].to_list() == [False]
    result = conservation_result(gaps)
    assert not result.passed and result.severity.value == "ERROR"


def test_a_runs_total_cost_is_its_share_of_both_bills():
    # DBU bill: run 1 $2.00, idle $0.50. Cloud bill (the mixed day): run 1 0.75 × (0.40 + 0.011) = $0.30825,
    # idle 0.25 × 0.411 = $0.10275, unattributed $0.192.
    cloud, est = _mixed_day()
    handed = cloud_attribute.attributed_cloud_costs(cloud, est, NO_CLUSTERS)
    dbu = pl.DataFrame(
        {
            "usage_date": [DAY, DAY],
            "workspace_id": [WS, WS],
            "consumer": ["run", "idle"],
            "run_id": [1, None],
            "task_run_id": [10, None],
            "job_id": [1, None],
            "billed_cost_usd": [2.00, 0.50],
        },
        schema_overrides={"run_id": pl.Int64, "task_run_id": pl.Int64, "job_id": pl.Int64},
    )
    totals = schemas.RunTotalCosts.validate(cloud_attribute.run_total_costs(dbu, handed))
    run = totals.filter(consumer="run").row(0, named=True)
    assert (run["dbu_cost_usd"], run["cloud_cost_usd"]) == (2.00, pytest.approx(0.30825))
    assert run["total_cost_usd"] == pytest.approx(2.30825)
    idle = totals.filter(consumer="idle").row(0, named=True)
    assert idle["total_cost_usd"] == pytest.approx(0.50 + 0.10275)
    # the two bills, whole: $2.50 DBU + $0.603 cloud
    assert totals["total_cost_usd"].sum() == pytest.approx(3.103)


def test_disks_reconcile_and_are_handed_out_by_the_estimates_disk_shares_conserving_the_bill():
    # Cluster c1 at 10:00: run 1 holds a spot node, idle an on-demand one: VM $0.30 / $0.10 (shares 0.75 / 0.25),
    # but both nodes carry the same disk: $0.02 each (shares 0.5 / 0.5). Estimated disk $ = 0.02 + 0.02 = $0.04.
    est = estimate(("c1", H10, "run", 1, 0.30, 1.0, 0.02), ("c1", H10, "idle", None, 0.10, 1.0, 0.02))
    # The bill: VMs $0.40, disks $0.0404, data transfer $0.01.
    cloud = bill(
        charge(1, cluster_id="c1", cost=0.40),
        charge(2, cluster_id="c1", cost=0.0404, service_category="managed_disk"),
        charge(3, cluster_id="c1", cost=0.01, service_category="network"),
    )
    recon = vm_reconcile.vm_reconciliation(cloud, est, NO_CLUSTERS)
    schemas.VmReconciliation.validate(recon)
    disk = recon_row(recon, resource_key="c1", service_category="managed_disk")
    # ratio = 0.04 / 0.0404 = 0.990..., within 5 %: ok (no longer a component the estimate lacks)
    assert disk["reason"] == "ok" and disk["ratio"] == pytest.approx(0.04 / 0.0404)
    assert disk["estimated_disk_cost_usd"] == pytest.approx(0.04) and disk["estimated_vm_cost_usd"] is None
    assert disk["delta"] == pytest.approx(0.0404 - 0.04)
    assert recon_row(recon, resource_key="c1", service_category="network")["reason"] == "not_estimated_component"
    vm = recon_row(recon, resource_key="c1", service_category="vm_compute")
    assert (vm["reason"], vm["estimated_vm_cost_usd"], vm["estimated_disk_cost_usd"]) == ("ok", 0.40, None)

    handed = cloud_attribute.attributed_cloud_costs(cloud, est, NO_CLUSTERS)
    schemas.AttributedCloudCosts.validate(handed)
    got = {(r["service_category"], r["consumer"]): r["effective_cost"] for r in handed.iter_rows(named=True)}
    assert got == pytest.approx(
        {
            ("vm_compute", "run"): 0.40 * 0.75,  # $0.30
            ("vm_compute", "idle"): 0.40 * 0.25,  # $0.10
            ("managed_disk", "run"): 0.0404 * 0.5,  # $0.0202: disk shares, not VM shares
            ("managed_disk", "idle"): 0.0404 * 0.5,
            ("network", "run"): 0.01 * 0.75,  # network goes with the VMs
            ("network", "idle"): 0.01 * 0.25,
        }
    )
    gaps = cloud_attribute.conservation_gaps(cloud, handed)
    # Σ attributed = 0.40 + 0.0404 + 0.01 = $0.4504 = Σ billed
    assert gaps["effective_cost_attributed"].sum() == pytest.approx(0.4504)
    assert gaps["ok"].all() and conservation_result(gaps).passed
