"""Managed disks in the estimate: a node's disks bill while its VM exists, priced from the sheet.

Every expected number is worked out by hand below. Prices (``costing_builders.standard_prices`` with a
disk): m5.xlarge = 2.0 DBU/h, VM $0.192/h on-demand, spot 0.2 × = $0.0384/h, $0.15/DBU; disk $0.03 per
node-hour (one disk of $21.90 a month: 21.90 / 730 = 0.03).
"""

import datetime as dt

import dagster as dg
import polars as pl
import pytest
from costing_builders import DAY, at, clusters, events, instance_types, job_runs, jobs, standard_prices

from cost_assets import schemas
from cost_assets.costing.engine import cost_by_cluster_hour, run_costs
from cost_assets.prices import PriceSheetError, load_price_sheet

DISK = 21.90 / 730  # $/node-hour
IT_NO_DISK, DP = standard_prices()  # m5.xlarge has no disk price there
IT_DISK = instance_types({"disk_type": "P1", "disks_per_node": 1, "disk_per_hour": DISK})


def _job_cluster() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    # CREATING 10:00 → RUNNING 10:05 → the run 10:06–10:40 → TERMINATING 10:45; driver + 2 workers.
    cl = clusters({"cluster_id": "j", "cluster_source": "JOB", "num_workers": 2})
    ev = events(
        ("j", 600, "CREATING", None, None, {"cluster_size_num_workers": 2}),
        ("j", 605, "RUNNING", 2, 2),
        ("j", 645, "TERMINATING", None, None),
    )
    jr = job_runs(
        {"task_run_id": 7, "cluster_id": "j", "start_time": at(606), "end_time": at(640), "compute_type": "job_cluster"}
    )
    return cl, ev, jr


def test_a_job_clusters_disks_bill_from_start_up_to_tear_down_and_belong_to_its_run():
    cl, ev, jr = _job_cluster()
    out = run_costs(jr, jobs({"job_id": 1}), cl, ev, IT_DISK, DP, DAY)
    schemas.RunCosts.validate(out)
    row = out.row(0, named=True)
    assert out.height == 1 and row["task_run_id"] == 7
    # Disks: 3 nodes × 45 min (10:00 CREATING to 10:45 TERMINATING, start-up and tear-down included)
    #        = 3 × 0.75 h × $0.03 = $0.0675
    # VMs:   3 × 0.75 h × $0.192 = $0.432;  DBUs: 3 × 2.0 × 40/60 h (RUNNING 10:05–10:45) = 4.0 → $0.60
    assert row["disk_cost_usd"] == pytest.approx(3 * 0.75 * 0.03)
    assert row["vm_cost_usd"] == pytest.approx(3 * 0.75 * 0.192)
    assert row["dbu_cost_usd"] == pytest.approx(4.0 * 0.15)
    assert row["total_cost_usd"] == pytest.approx(0.60 + 0.432 + 0.0675)
    hourly = cost_by_cluster_hour(jr, cl, ev, IT_DISK, DP, DAY)
    schemas.EstimatedCosts.validate(hourly)
    assert hourly["disk_cost_usd"].sum() == pytest.approx(0.0675)


def test_a_node_type_without_a_disk_price_is_flagged_not_zero():
    cl, ev, jr = _job_cluster()
    out = run_costs(jr, jobs({"job_id": 1}), cl, ev, IT_NO_DISK, DP, DAY)
    schemas.RunCosts.validate(out)
    row = out.row(0, named=True)
    # disk $ unknown: null (never $0); DBUs and VMs are known, so the row is not unpriced
    assert row["disk_cost_usd"] is None and row["unpriced"] is False
    assert row["vm_cost_usd"] == pytest.approx(3 * 0.75 * 0.192)
    # the total is DBU + VM $ (the unknown disk is not counted as $0; the `priced` check names it)
    assert row["total_cost_usd"] == pytest.approx(0.60 + 0.432)
    hourly = cost_by_cluster_hour(jr, cl, ev, IT_NO_DISK, DP, DAY)
    assert hourly["disk_cost_usd"].null_count() == hourly.height


def test_idle_time_of_a_shared_cluster_pays_its_disks():
    # A shared cluster, driver + 1 worker, up 12:00–13:00 without runs: all idle.
    cl = clusters({"cluster_id": "s", "num_workers": 1})
    ev = events(("s", 720, "RUNNING", 1, 1), ("s", 780, "TERMINATING", None, None))
    out = run_costs(job_runs(), jobs({"job_id": 1}), cl, ev, IT_DISK, DP, DAY)
    idle = out.filter(pl.col("consumer") == "idle").row(0, named=True)
    # 2 nodes × 1 h × $0.03 = $0.06
    assert idle["disk_cost_usd"] == pytest.approx(2 * 1 * 0.03)


def test_the_sheet_prices_a_nodes_disks_per_hour_and_refuses_an_unknown_disk_type(tmp_path):
    sheet = load_price_sheet()
    frame = sheet.instance_types_frame().filter(pl.col("node_type_id") == "Standard_DS3_v2").row(0, named=True)
    # one P10 a node: $19.71 a month ÷ 730 hours = $0.027 per node-hour
    assert (frame["disk_type"], frame["disks_per_node"]) == ("P10", 1)
    assert frame["disk_per_hour"] == pytest.approx(19.71 / 730)
    overrides = tmp_path / "prices.yaml"
    overrides.write_text(
        "instance_types:\n"
        "  - {cloud: AZURE, node_type_id: Custom_X, vcpus: 8, memory_gb: 32, dbu_per_hour: 2.0,\n"
        "     vm_on_demand_per_hour: 1.0, disk_type: P99, disks_per_node: 2, effective_from: 2020-01-01}\n"
    )
    with pytest.raises(PriceSheetError, match=r"instance_types\[0\]\.disk_type: no disk_prices row for AZURE P99"):
        load_price_sheet(overrides)
    overrides.write_text(
        "disk_prices:\n"
        "  - {cloud: AZURE, disk_type: P99, size_gb: 256, per_disk_month: 36.5}\n"
        "instance_types:\n"
        "  - {cloud: AZURE, node_type_id: Custom_X, vcpus: 8, memory_gb: 32, dbu_per_hour: 2.0,\n"
        "     vm_on_demand_per_hour: 1.0, disk_type: P99, disks_per_node: 2, effective_from: 2020-01-01}\n"
    )
    # two disks of $36.50 a month: 2 × 36.5 / 730 = $0.10 per node-hour
    node = load_price_sheet(overrides).node("AZURE", "Custom_X", dt.datetime(2026, 1, 1))
    assert node.disk_per_hour == pytest.approx(0.10)


def test_the_run_ledger_counts_a_runs_disks_in_its_vm_total():
    from export_builders import attributed
    from export_builders import run_costs as run_cost_rows

    from cost_assets.export.run_ledger import run_ledger

    costs = run_cost_rows(
        {"run_id": 1, "task_run_id": 11, "job_id": 7, "dbus": 1.0, "dbu_cost_usd": 0.30, "vm_cost_usd": 0.20}
        | {"disk_cost_usd": 0.05, "total_cost_usd": 0.55},
        # a node type without a disk price: its disk $ is unknown and left out (the estimate's check names it)
        {"run_id": 2, "task_run_id": 21, "job_id": 7, "dbus": 1.0, "dbu_cost_usd": 0.30, "vm_cost_usd": 0.20}
        | {"disk_cost_usd": None, "total_cost_usd": 0.50},
    )
    ledger = run_ledger(costs, attributed().clear())
    rows = {r["run_id"]: r for r in ledger.iter_rows(named=True)}
    # estimated basis: VM total = VM $0.20 + disks $0.05 = $0.25; total = $0.30 + $0.25 = $0.55
    assert (rows[1]["vm_total_cost_usd"], rows[1]["total_cost_usd"]) == pytest.approx((0.25, 0.55))
    # no disk price: VM total = $0.20, total $0.50, still priced
    assert (rows[2]["vm_total_cost_usd"], rows[2]["total_cost_usd"], rows[2]["unpriced"]) == (0.20, 0.50, False)


@pytest.mark.parametrize(
    ("asset", "columns"),
    [
        ("ref/instance_types", ["disk_type", "disks_per_node", "disk_per_hour"]),
        ("mart/estimated_costs", ["disk_cost_usd"]),
        ("mart/run_costs", ["disk_cost_usd"]),
        ("mart/vm_reconciliation", ["estimated_disk_cost_usd"]),
        ("sim/vm_cost_accuracy", ["estimated_disk_cost_usd", "true_disk_cost_usd"]),
    ],
)
def test_a_ledger_from_before_disks_gains_the_new_columns(tmp_path, asset, columns):
    """The new contract columns are declared added (warehouse.ADDED_COLUMNS): a stored table without them gets
    them (NULL on its old rows) instead of a schema-drift failure."""
    from conftest import sim_environ

    from cost_assets.definitions import build_defs
    from cost_assets.resources.warehouse import ADDED_COLUMNS

    defs = build_defs(sim_environ(tmp_path / "d.duckdb", COST_ASSETS_CLOUD_BILL="simulated"))
    key = dg.AssetKey(asset.split("/"))
    spec = defs.resolve_assets_def(key).specs_by_key[key]
    declared = spec.metadata.get(ADDED_COLUMNS)
    assert set(columns) <= set(getattr(declared, "value", declared) or [])


def test_the_priced_check_names_a_node_type_without_a_disk_price():
    from cost_assets.assets.costs import _unpriced_check

    cl, ev, jr = _job_cluster()
    out = run_costs(jr, jobs({"job_id": 1}), cl, ev, IT_NO_DISK, DP, DAY)
    result = _unpriced_check(out, cl)
    # one run row, priced, whose disk $ is unknown: a WARN naming m5.xlarge, not a pass
    assert result.passed is False and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["disk_unpriced_rows"].value == 1 and result.metadata["unpriced_rows"].value == 1
    assert "m5.xlarge" in result.metadata["unpriced"].value
    priced = run_costs(jr, jobs({"job_id": 1}), cl, ev, IT_DISK, DP, DAY)
    assert _unpriced_check(priced, cl).passed is True


def test_a_total_budget_counts_the_estimated_disks_with_the_vms():
    from export_builders import attributed
    from export_builders import run_costs as run_cost_rows

    from cost_assets.costing.budget_status import spend_rows

    costs = run_cost_rows(
        {"run_id": 1, "task_run_id": 11, "job_id": 7, "dbu_cost_usd": 1.0, "vm_cost_usd": 2.0}
        | {"disk_cost_usd": 0.5, "total_cost_usd": 3.5},
        {"run_id": 2, "task_run_id": 21, "job_id": 7, "dbu_cost_usd": 1.0, "vm_cost_usd": 2.0}
        | {"disk_cost_usd": None, "total_cost_usd": 3.0},  # no disk price: adds nothing
    )
    spend = spend_rows(attributed().clear(), costs)
    # the cloud side of the estimate: VMs 2.0 + 2.0 and disks 0.5 = $4.50
    assert spend["est_vm_usd"].sum() == pytest.approx(4.5)
