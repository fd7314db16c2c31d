"""The simulated cloud bill: hand-computed spot and reservation rows of one known VM-hour read back through
the real parser, the reservation's cover and unused hours, the Azure shape summing to the FOCUS one, the
setting's forms, and the VM accuracy against the ground truth by hand."""

import datetime as dt
import hashlib
from pathlib import Path

import polars as pl
import pytest

from cost_assets.config import ConfigurationError, Settings
from cost_assets.ingest.cloud_bill import day_fingerprints
from cost_assets.resources.simulated import SimulatedCloudBill, SimulatedWorld
from cost_assets.simulation import cloud_bill as sim
from cost_assets.simulation import vm_accuracy
from cost_assets.simulation.world import HOUR, WorldConfig

DAY = dt.date(2026, 1, 6)
# The bundled sheet's Azure prices (PREMIUM, 2026): Standard_DS3_v2 $0.23/h on demand, $0.046/h spot;
# Standard_DS4_v2 $0.46 / $0.092.
PRICES = {"Standard_DS3_v2": (0.23, 0.046), "Standard_DS4_v2": (0.46, 0.092)}


def charge(rid: str, q: float, node: str = "Standard_DS3_v2", pricing: str = "on_demand") -> sim.Charge:
    od = PRICES[node][0] * q
    return sim.Charge(0, rid, "vm", node, pricing, q, od, od, od, (("ClusterId", "c1"),), ("cluster", "c1"))


def test_the_reservation_covers_whole_charges_in_resource_order_and_bills_the_unused_hours():
    config = WorldConfig()
    # Two reserved DS3_v2 instances for the hour. In id order: a (1 h) fits, 1 left; b (0.5 h) fits, 0.5
    # left; c (0.75 h) does not fit and stays on demand; the DS4_v2 and the spot VM are not the reserved type
    # or not on demand.
    charges = [
        charge("c", 0.75),
        charge("a", 1.0),
        charge("b", 0.5),
        charge("d", 1.0, "Standard_DS4_v2"),
        charge("e", 1.0, pricing="spot"),
    ]
    # hour 0 has the charges; hour 1 has none, so both reserved instances go unused
    every = sim.apply_reservation(config, charges, [0, HOUR], lambda hour: 0.23)
    out = {ch.resource_id: ch for ch in every if ch.kind == "vm"}
    # a: billed 0, effective 0.23 × 1.0 × (1 − 0.4) = 0.138; b: 0.23 × 0.5 × 0.6 = 0.069
    assert (out["a"].pricing, out["a"].billed, out["a"].effective) == ("reservation", 0.0, pytest.approx(0.138))
    assert (out["b"].pricing, out["b"].billed, out["b"].effective) == ("reservation", 0.0, pytest.approx(0.069))
    assert (out["c"].pricing, out["c"].billed) == ("on_demand", pytest.approx(0.23 * 0.75))
    assert out["d"].pricing == "on_demand" and out["e"].pricing == "spot"
    # unused: 2 − 1 − 0.5 = 0.5 instance-hours × 0.23 × 0.6 = 0.069, billed 0, not tagged
    # hour 1: 2 instance-hours × 0.23 × 0.6 = 0.276
    unused = sorted((ch for ch in every if ch.kind == "unused_reservation"), key=lambda ch: ch.hour)
    assert [(ch.hour, ch.quantity, ch.billed, ch.tags) for ch in unused] == [(0, 0.5, 0.0, ()), (HOUR, 2.0, 0.0, ())]
    assert [ch.effective for ch in unused] == pytest.approx([0.069, 0.276])


@pytest.fixture(scope="module")
def focus() -> pl.DataFrame:
    return SimulatedCloudBill(shape="focus", world=SimulatedWorld(scale="tiny")).costs([DAY])[0]


def spot_factor_by_hand(node: str, hour: dt.datetime) -> float:
    """0.7 + 0.7 × (the first 8 hex digits of sha256("seed|spot|cloud|node|hour ms") ÷ 16⁸)."""
    ms = int(hour.replace(tzinfo=dt.UTC).timestamp() * 1000)
    digest = hashlib.sha256(f"7|spot|AZURE|{node}|{ms}".encode()).hexdigest()
    return 0.7 + 0.7 * int(digest[:8], 16) / 16**8


def test_a_spot_vm_hour_is_billed_at_the_hours_market_price(focus: pl.DataFrame):
    spot = focus.filter((pl.col("pricing_model") == "spot") & (pl.col("consumed_quantity") == 1.0)).row(0, named=True)
    node = next(n for n in PRICES if n in spot["sku_description"])
    od, sheet_spot = PRICES[node]
    factor = spot_factor_by_hand(node, spot["charge_period_start"])
    assert 0.7 <= factor <= 1.4
    # one full hour: billed = effective = sheet spot × the hour's factor; list = on demand
    assert spot["billed_cost"] == pytest.approx(sheet_spot * factor, abs=1e-9)
    assert spot["effective_cost"] == spot["billed_cost"]
    assert spot["list_cost"] == pytest.approx(od)
    assert (spot["service_category"], spot["grain"], spot["is_databricks"]) == ("vm_compute", "hour", True)


def test_a_reserved_vm_hour_is_billed_zero_and_amortized(focus: pl.DataFrame):
    reserved = focus.filter(
        (pl.col("pricing_model") == "reservation") & pl.col("is_databricks") & (pl.col("consumed_quantity") == 1.0)
    ).row(0, named=True)
    # a full DS3_v2 hour: billed 0, effective 0.23 × 0.6 = 0.138, list 0.23
    assert (reserved["billed_cost"], reserved["effective_cost"], reserved["list_cost"]) == pytest.approx(
        (0.0, 0.138, 0.23)
    )
    assert "Standard_DS3_v2" in reserved["sku_description"]


def test_disks_network_and_untagged_resources_are_in_the_bill(focus: pl.DataFrame):
    categories = set(focus["service_category"])
    assert {"vm_compute", "managed_disk", "network", "public_ip", "storage"} <= categories
    disk = focus.filter((pl.col("service_category") == "managed_disk") & (pl.col("consumed_quantity") == 1.0))
    assert disk["billed_cost"][0] == pytest.approx(19.71 / 730)  # a P10 disk's hour of a 730-hour month
    ip = focus.filter(pl.col("service_category") == "public_ip")
    # the workspace IP: Databricks (managed resource group), no cluster tag, 24 hours × $0.005
    assert ip["is_databricks"].all() and ip["cluster_id"].is_null().all() and ip["instance_pool_id"].is_null().all()
    assert ip["billed_cost"].sum() == pytest.approx(24 * 0.005)
    other = focus.filter(pl.col("service_category") == "storage")
    assert other.height == 1 and not other["is_databricks"][0]


def test_the_azure_export_is_the_focus_bill_per_day(focus: pl.DataFrame):
    azure = SimulatedCloudBill(shape="azure", world=SimulatedWorld(scale="tiny")).costs([DAY])[0]
    assert set(azure["grain"]) == {"day"} and set(azure["export_format"]) == {"azure_cost"}
    # amortized: the cost column is FOCUS's effective cost, the pay-as-you-go column its list cost
    assert azure["effective_cost"].sum() == pytest.approx(focus["effective_cost"].sum())
    assert azure["list_cost"].sum() == pytest.approx(focus["list_cost"].sum())
    assert set(azure["pricing_model"]) == set(focus["pricing_model"])


def test_the_bill_is_anchored_to_the_calendar():
    one = SimulatedCloudBill(world=SimulatedWorld(scale="tiny")).costs([DAY])[0]
    week = SimulatedCloudBill(world=SimulatedWorld(scale="tiny")).costs([DAY + dt.timedelta(days=k) for k in range(3)])
    assert week[0].filter(pl.col("usage_date") == DAY).equals(one)
    assert set(one["source_file"]) == {"simulated/focus-2026-01-06.csv"}
    # written "two days later at 06:00": the day's fingerprint is the same whichever window read it, so the
    # late cloud bill sensor sees no change
    assert set(one["export_time"]) == {dt.datetime(2026, 1, 8, 6)}
    assert day_fingerprints(one, [DAY]) == day_fingerprints(week[0], [DAY])


def test_the_settings_forms():
    assert Settings.from_environ({"COST_ASSETS_CLOUD_BILL": "simulated:azure"}).cloud_bill == "simulated:azure"
    with pytest.raises(ConfigurationError, match="needs COST_ASSETS_CLOUD=AZURE"):
        Settings.from_environ({"COST_ASSETS_CLOUD_BILL": "simulated:azure", "COST_ASSETS_CLOUD": "AWS"})
    with pytest.raises(ConfigurationError, match="allowed"):
        Settings.from_environ({"COST_ASSETS_CLOUD_BILL": "simulated:gcp"})


def test_vm_accuracy_by_hand():
    h0 = dt.datetime(2026, 1, 6, 10)
    recon = pl.DataFrame(
        {
            "usage_date": [DAY] * 4,
            "period_start": [h0] * 4,
            "grain": ["hour"] * 4,
            "resource_kind": ["cluster", "pool", "untagged", "cluster"],
            "resource_key": ["c1", "p1", "vm-x", "c1"],
            "service_category": ["vm_compute"] * 3 + ["managed_disk"],
            "estimated_vm_cost_usd": [1.00, 0.50, None, None],
            "estimated_disk_cost_usd": [None, None, None, 0.05],
            "effective_cost": [0.90, 0.50, 0.20, 0.05],
        }
    )
    # the truth knows the untagged VM belongs to c1: c1 = 0.90 + 0.20 = 1.10; p1 0.40; c2 missed (0.30).
    # Disks: c1 0.06 (the untagged VM's disk too), p1 0.02 (the estimate has no disk row for it)
    truth = pl.DataFrame(
        {
            "resource_kind": ["cluster", "pool", "cluster"],
            "resource_key": ["c1", "p1", "c2"],
            "hour_start": [h0, h0, h0 + dt.timedelta(milliseconds=HOUR)],
            "true_vm_cost_usd": [1.10, 0.40, 0.30],
            "true_disk_cost_usd": [0.06, 0.02, 0.0],
        }
    )
    out = vm_accuracy.vm_cost_accuracy(recon, truth)
    errors = dict(zip(out["resource_key"], out["abs_rel_error"], strict=True))
    # c1 |1.00 − 1.10| / 1.10; p1 |0.50 − 0.40| / 0.40 = 0.25; c2 missed: 1.0
    assert errors == pytest.approx({"c1": 0.1 / 1.1, "p1": 0.25, "c2": 1.0})
    summary = vm_accuracy.day_summary(out)
    # true 1.10 + 0.40 + 0.30 = 1.80, estimated 1.50: off by 0.30 / 1.80; within 10 %: c1 only (1 of 3)
    assert summary["truth/true_vm_usd"] == pytest.approx(1.80)
    assert summary["truth/day_abs_rel_error"] == pytest.approx(0.30 / 1.80)
    assert summary["truth/within_10pct_share"] == pytest.approx(1 / 3)
    disks = dict(zip(out["resource_key"], out["estimated_disk_cost_usd"], strict=True))
    assert disks == pytest.approx({"c1": 0.05, "p1": 0.0, "c2": 0.0})
    # disks: true 0.06 + 0.02 = 0.08, estimated 0.05: off by 0.03 / 0.08
    assert summary["truth/true_disk_usd"] == pytest.approx(0.08)
    assert summary["truth/disk_day_abs_rel_error"] == pytest.approx(0.03 / 0.08)


def test_report_reconcile_cloud_by_hand(tmp_path):
    import json

    import duckdb
    import jsonschema

    from cost_assets.reports import ledger, render

    database = str(tmp_path / "ledger.duckdb")
    with duckdb.connect(database) as con:
        con.execute("create schema mart")
        con.execute(
            "create table mart.vm_reconciliation (usage_date date, workspace_id varchar, service_category varchar,"
            " currency_code varchar, reason varchar, estimated_vm_cost_usd double, estimated_disk_cost_usd double,"
            " billed_cost double, effective_cost double)"
        )
        con.execute(
            "insert into mart.vm_reconciliation values "
            "('2026-01-06', 'w1', 'vm_compute', 'USD', 'ok', 1.00, null, 1.02, 1.02),"
            "('2026-01-06', 'w1', 'vm_compute', 'USD', 'commitment_discount', 0.50, null, 0.00, 0.30),"
            "('2026-01-06', null, 'vm_compute', 'USD', 'untagged', null, null, 0.20, 0.20),"
            "('2026-01-06', 'w1', 'managed_disk', 'USD', 'ok', null, 0.049, 0.05, 0.05),"
            "('2026-01-06', 'w1', 'network', 'USD', 'not_estimated_component', null, null, 0.01, 0.01),"
            "('2026-01-07', 'w1', 'vm_compute', 'USD', 'spot_price', 2.00, null, 1.60, 1.60),"
            # w2 has no charge on the bill on 01-06 (its subscription is not exported): set apart
            "('2026-01-06', 'w2', 'vm_compute', 'USD', 'no_cloud_bill', 0.70, null, null, null),"
            "('2026-01-06', 'w2', 'managed_disk', 'USD', 'no_cloud_bill', null, 0.03, null, null),"
            # w1's cluster with no bill on 01-07 while w1 has charges: a gap of w1's bill, compared
            "('2026-01-07', 'w1', 'vm_compute', 'USD', 'no_cloud_bill', 0.25, null, null, null)"
        )
        con.execute(
            "create table mart.observed_vm_prices (usage_date date, cloud varchar, node_type_id varchar,"
            " pricing_model varchar, currency_code varchar, charges bigint, node_hours double, billed_cost double,"
            " effective_cost double, effective_per_hour double, sheet_per_hour double, ratio_to_sheet double)"
        )
        con.execute(
            "insert into mart.observed_vm_prices values "
            "('2026-01-06', 'AWS', 'm5.xlarge', 'spot', 'USD', 3, 2.5, 0.1824, 0.1824, 0.07296, 0.0672, 1.0857),"
            "('2026-01-07', 'AWS', 'm5.xlarge', 'spot', 'USD', 1, 7.5, 0.45, 0.45, 0.06, 0.0672, 0.8929)"
        )
    report = ledger.reconcile_cloud(database, ledger.Window(DAY, DAY + dt.timedelta(days=1)))
    days = report.tables["days"]
    # 01-06 VMs: estimated 1.00 + 0.50 = 1.50 (w2's 0.70 has no bill: apart); billed 1.02 + 0 + 0.20 = 1.22;
    # effective 1.02 + 0.30 + 0.20 = 1.52; delta 1.52 − 1.50 = 0.02; ratio 1.50 / 1.52. 01-07: w1 is on the
    # bill, so its unbilled cluster counts: 2.00 + 0.25 = 2.25 vs 1.60, delta −0.65, ratio 2.25 / 1.60.
    assert days.select("estimated_vm_usd", "billed_vm_usd", "effective_vm_usd", "delta_usd", "ratio").rows() == [
        pytest.approx((1.50, 1.22, 1.52, 0.02, 1.50 / 1.52)),
        pytest.approx((2.25, 1.60, 1.60, -0.65, 2.25 / 1.60)),
    ]
    # set apart: 01-06 w2's VMs $0.70 and disk $0.03; 01-07 nothing
    assert days.select("no_bill_estimated_vm_usd", "no_bill_estimated_disk_usd").rows() == [
        pytest.approx((0.70, 0.03)),
        (None, None),
    ]
    # disks: 01-06 estimated $0.049 against $0.05; 01-07 none
    assert days.select("estimated_disk_usd", "effective_disk_usd").rows() == [
        pytest.approx((0.049, 0.05)),
        (None, None),
    ]
    prices = report.tables["prices"].row(0, named=True)
    # (0.1824 + 0.45) / (2.5 + 7.5) = $0.06324 per VM-hour, not the mean of the days' prices; ÷ $0.0672
    assert (prices["days"], prices["vm_hours"]) == (2, pytest.approx(10.0))
    assert prices["effective_per_hour"] == pytest.approx(0.06324)
    assert prices["ratio_to_sheet"] == pytest.approx(0.06324 / 0.0672)
    reasons = report.tables["reasons"].filter(pl.col("usage_date") == DAY)
    # ordered by effective cost: ok 1.02 + the disk 0.05, commitment 0.30, untagged 0.20, the network 0.01,
    # w2's no_cloud_bill (nothing billed)
    assert reasons["reason"].to_list() == [
        "ok",
        "commitment_discount",
        "untagged",
        "not_estimated_component",
        "no_cloud_bill",
    ]
    assert reasons.row(0, named=True)["estimated_disk_usd"] == pytest.approx(0.049)
    schema = json.loads(Path("docs/schemas/report.json").read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(render.as_json(report)), schema, format_checker=jsonschema.FormatChecker())
    # without the cloud bill: a note, not an error
    with duckdb.connect(database) as con:
        con.execute("drop table mart.vm_reconciliation")
    empty = ledger.reconcile_cloud(database, ledger.Window(DAY, DAY))
    assert empty.notes == (ledger.NOT_BUILT_CLOUD,) and "COST_ASSETS_CLOUD_BILL" in empty.notes[0]
    jsonschema.validate(json.loads(render.as_json(empty)), schema)


def test_the_simulated_bill_registers_the_accuracy_asset_only_beside_the_simulated_workspace(tmp_path):
    from cost_assets.definitions import build_defs

    def keys(**environ: str) -> set[str]:
        defs = build_defs({"COST_ASSETS_DUCKDB": str(tmp_path / "d.duckdb"), **environ})
        return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}

    simulated = keys(COST_ASSETS_CLOUD_BILL="simulated:azure")
    assert {"raw/cloud_costs", "mart/vm_reconciliation", "sim/vm_cost_accuracy"} <= simulated
    files = keys(COST_ASSETS_CLOUD_BILL=str(tmp_path / "exports"))
    assert "raw/cloud_costs" in files and "sim/vm_cost_accuracy" not in files
    with pytest.raises(ConfigurationError, match="needs the simulated workspace"):
        Settings.from_environ({"COST_ASSETS_CLOUD_BILL": "simulated", "DATABRICKS_HOST": "https://x.example.com"})


def test_the_simulated_account_bill_covers_every_workspace_and_the_other_teams_storage_once():
    world = SimulatedWorld(scale="tiny")
    one = SimulatedCloudBill(shape="focus", world=world).costs([DAY])[0]
    second = SimulatedCloudBill(shape="focus", world=world.member(1)).costs([DAY])[0]
    both = SimulatedCloudBill(shape="focus", world=world, workspaces=2).costs([DAY])[0]
    storage = sim.OTHER_TEAM_STORAGE["AZURE"]
    # workspace 0's rows plus workspace 1's, less workspace 1's copy of the other team's one storage charge
    assert both.height == one.height + second.height - 1
    assert both.filter(pl.col("resource_id") == storage)["effective_cost"].to_list() == pytest.approx(
        [sim.OTHER_TEAM_STORAGE_PER_DAY]
    )
    total = lambda f: f["effective_cost"].sum()  # noqa: E731
    assert total(both) == pytest.approx(total(one) + total(second) - sim.OTHER_TEAM_STORAGE_PER_DAY)
    # each workspace's clusters are on the bill: no cluster id of workspace 1's is workspace 0's
    ids = lambda f: set(f["cluster_id"].drop_nulls())  # noqa: E731
    assert ids(second) and not ids(second) & ids(one) and ids(both) == ids(one) | ids(second)
    # one workspace: the bill is workspace 0's, as before
    assert SimulatedCloudBill(shape="focus", world=world, workspaces=1).costs([DAY])[0].equals(one)
    truth = SimulatedCloudBill(shape="focus", world=world, workspaces=2).ground_truth_vm_costs([DAY])
    alone = [SimulatedCloudBill(shape="focus", world=w).ground_truth_vm_costs([DAY]) for w in (world, world.member(1))]
    assert truth["true_vm_cost_usd"].sum() == pytest.approx(sum(t["true_vm_cost_usd"].sum() for t in alone))
