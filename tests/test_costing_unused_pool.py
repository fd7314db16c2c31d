"""A warm instance pool no cluster drew from on the day: listed by instance-pools/list (raw/instance_pools),
estimated as its idle VMs and their disks (no DBUs), met on the cloud bill and handed to ``idle``.

Every figure is computed by hand: m5.xlarge at $0.192/h on demand, one disk of $0.01/h per node.
"""

import datetime as dt

import polars as pl
import pytest
from costing_builders import DAY, WS, clusters, dbu_prices, events, instance_types, job_runs
from polars.testing import assert_frame_equal
from test_cloud_costing import bill, charge

from cost_assets import schemas
from cost_assets.costing import cloud_attribute, engine, vm_reconcile
from cost_assets.ingest import parse

IT = instance_types({"disk_type": "gp3", "disks_per_node": 1, "disk_per_hour": 0.01})
DP = dbu_prices({"sku_name": "PREMIUM_ALL_PURPOSE_COMPUTE", "workload": "all_purpose", "price": 0.55})


def listed(*pools: dict) -> pl.DataFrame:
    """raw/instance_pools from instance-pools/list payloads."""
    return schemas.InstancePools.validate(parse.instance_pools_frame(list(pools), DAY, WS, "AWS"))


def pool_payload(pool_id: str, min_idle: int) -> dict:
    return {
        "instance_pool_id": pool_id,
        "instance_pool_name": pool_id,
        "node_type_id": "m5.xlarge",
        "min_idle_instances": min_idle,
        "max_capacity": 10,
        "state": "ACTIVE",
        "custom_tags": {"team": "data"},
    }


def used_cluster() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cluster c drew from pool-7 (instance-pools/get on raw/clusters: min_idle_instances 3), up 0–60 min."""
    cl = clusters(
        {
            "cluster_id": "c",
            "instance_pool_id": "pool-7",
            "pool_node_type_id": "m5.xlarge",
            "pool_min_idle_instances": 3,
            "pool_custom_tags": "{}",
        }
    )
    return cl, events(("c", 0, "RUNNING", 2, 2), ("c", 60, "TERMINATING", None, None))


def test_an_unused_pool_is_estimated_as_its_idle_vms_and_disks_and_a_used_pool_is_unchanged():
    cl, ev = used_cluster()
    # p9: nobody drew from it; pool-7 is listed too (with another minimum), but a cluster names it.
    pools = engine.pools_with_listed(cl, listed(pool_payload("p9", 2), pool_payload("pool-7", 5)))
    with_listed = engine.cost_by_cluster_hour(job_runs(), cl, ev, IT, DP, DAY, pools=pools)
    before = engine.cost_by_cluster_hour(job_runs(), cl, ev, IT, DP, DAY)
    p9 = with_listed.filter(cluster_id="p9")
    # 24 hours × 2 idle VMs: VM 2 × 24 × $0.192 = $9.216, disks 2 × 24 × $0.01 = $0.48, no DBUs
    assert p9.height == 24 and set(p9["consumer"]) == {"idle"}
    assert p9["vm_cost_usd"].sum() == pytest.approx(2 * 24 * 0.192)
    assert p9["disk_cost_usd"].sum() == pytest.approx(2 * 24 * 0.01)
    assert p9["dbus"].sum() == 0
    # everything else as without the listing: pool-7 keeps its 3 idle VMs from raw/clusters (3 × 24 × 0.192)
    assert_frame_equal(with_listed.filter(pl.col("cluster_id") != "p9"), before, check_row_order=False)
    assert before.filter(cluster_id="pool-7")["vm_cost_usd"].sum() == pytest.approx(3 * 24 * 0.192)


def test_a_listed_pool_on_the_cloud_bill_reconciles_ok_and_goes_to_idle():
    cl, ev = used_cluster()
    pools = engine.pools_with_listed(cl, listed(pool_payload("p9", 2)))
    est = engine.cost_by_cluster_hour(job_runs(), cl, ev, IT, DP, DAY, pools=pools).filter(cluster_id="p9")
    # The bill: each hour, two VMs of p9 ($0.192 each) and their disks ($0.01 each), tagged with the pool only.
    hours = [dt.datetime.combine(DAY, dt.time()) + dt.timedelta(hours=h) for h in range(24)]
    rows = [
        charge(4 * h + k + 1, start=start, instance_pool_id="p9", **extra)
        for h, start in enumerate(hours)
        for k, extra in enumerate(
            [
                {"cost": 0.192},
                {"cost": 0.192},
                {"cost": 0.01, "service_category": "managed_disk"},
                {"cost": 0.01, "service_category": "managed_disk"},
            ]
        )
    ]
    cloud = bill(*rows)
    recon = vm_reconcile.vm_reconciliation(cloud, est, cl)
    assert set(recon["resource_kind"]) == {"pool"} and set(recon["resource_key"]) == {"p9"}
    assert set(recon["reason"]) == {"ok"}
    vms = recon.filter(service_category="vm_compute")
    # 24 hours × 2 × $0.192 = $9.216 on both sides
    assert vms["estimated_vm_cost_usd"].sum() == pytest.approx(9.216)
    assert vms["effective_cost"].sum() == pytest.approx(9.216)
    disks = recon.filter(service_category="managed_disk")
    # 24 × 2 × $0.01 = $0.48 on both sides
    assert disks["estimated_disk_cost_usd"].sum() == pytest.approx(0.48)
    assert disks["effective_cost"].sum() == pytest.approx(0.48)
    handed = cloud_attribute.attributed_cloud_costs(cloud, est, cl)
    # all of it to idle: 9.216 + 0.48 = 9.696
    assert set(handed["consumer"]) == {"idle"}
    assert handed["effective_cost"].sum() == pytest.approx(9.216 + 0.48)


def test_no_listing_or_only_used_pools_add_nothing():
    cl, _ = used_cluster()
    assert_frame_equal(engine.pools_with_listed(cl, listed()), engine.pools_from_clusters(cl))
    assert_frame_equal(engine.pools_with_listed(cl, listed(pool_payload("pool-7", 5))), engine.pools_from_clusters(cl))
