"""mart/observed_vm_prices and the pre-launch estimate's observed prices, on a small hand-built bill.

Sheet prices used (cost_assets/data/prices.yaml): AWS m5.xlarge $0.192/h on-demand, $0.0672/h spot;
AWS m5.2xlarge $0.384/h on-demand.
"""

import datetime as dt

import polars as pl
import pytest
from test_cloud_costing import DAY, H11, bill, charge

from cost_assets import schemas
from cost_assets.costing import observed_prices
from cost_assets.prices import load_price_sheet

SHEET = load_price_sheet().instance_types_frame()


def clusters(*rows: tuple) -> pl.DataFrame:
    """(cluster_id, worker node type, driver node type) → the raw.clusters columns the matching reads."""
    return pl.DataFrame(
        [
            {
                "usage_date": DAY,
                "cluster_id": c,
                "node_type_id": worker,
                "driver_node_type_id": driver,
                "instance_pool_id": None,
                "driver_instance_pool_id": None,
                "pool_node_type_id": None,
            }
            for c, worker, driver in rows
        ],
        schema={
            "usage_date": pl.Date,
            "cluster_id": pl.String,
            "node_type_id": pl.String,
            "driver_node_type_id": pl.String,
            "instance_pool_id": pl.String,
            "driver_instance_pool_id": pl.String,
            "pool_node_type_id": pl.String,
        },
    )


CLUSTERS = clusters(("c-spot", "m5.xlarge", "m5.xlarge"), ("c-mixed", "m5.xlarge", "m5.2xlarge"))


def the_bill() -> pl.DataFrame:
    spot = {"cluster_id": "c-spot", "pricing_model": "spot", "sku_description": "USE1-SpotUsage:m5.xlarge"}
    return bill(
        # c-spot, all m5.xlarge: two spot VMs for the hour at $0.0712, then one for half an hour at $0.04
        charge(1, consumed_quantity=1.0, cost=0.0712, **spot),
        charge(2, consumed_quantity=1.0, cost=0.0712, **spot),
        charge(3, start=H11, consumed_quantity=0.5, cost=0.04, **spot),
        # c-mixed: the reserved driver (billed $0, amortized $0.2304), named by its SKU
        charge(
            4,
            cluster_id="c-mixed",
            pricing_model="reservation",
            sku_description="USE1-BoxUsage:m5.2xlarge",
            consumed_quantity=1.0,
            billed_cost=0.0,
            effective_cost=0.2304,
        ),
        # c-mixed, a SKU that names neither candidate: left out, never guessed
        charge(5, cluster_id="c-mixed", sku_description="some VM", consumed_quantity=1.0, cost=0.192),
        # an untagged VM and a disk: left out
        charge(6, resource_id="i-0orphan", sku_description="USE1-BoxUsage:m5.xlarge", consumed_quantity=1.0),
        charge(7, cluster_id="c-spot", service_category="managed_disk", consumed_quantity=1.0, cost=0.014),
    )


def test_observed_spot_and_reserved_prices_per_node_type_by_hand():
    out = observed_prices.observed_vm_prices(the_bill(), CLUSTERS, SHEET, DAY)
    schemas.ObservedVmPrices.validate(out)
    rows = {(r["node_type_id"], r["pricing_model"]): r for r in out.iter_rows(named=True)}
    assert set(rows) == {("m5.xlarge", "spot"), ("m5.2xlarge", "reservation")}
    spot = rows["m5.xlarge", "spot"]
    # 0.0712 + 0.0712 + 0.04 = $0.1824 over 1 + 1 + 0.5 = 2.5 VM-hours: $0.07296/h;
    # the sheet's spot price $0.0672/h: ratio 0.07296 / 0.0672 = 1.0857
    assert (spot["charges"], spot["node_hours"]) == (3, pytest.approx(2.5))
    assert spot["effective_per_hour"] == pytest.approx(0.1824 / 2.5)
    assert spot["sheet_per_hour"] == pytest.approx(0.0672)
    assert spot["ratio_to_sheet"] == pytest.approx(0.1824 / 2.5 / 0.0672)
    reserved = rows["m5.2xlarge", "reservation"]
    # amortized $0.2304 for 1 h against the on-demand $0.384: 0.6 (a 40 % discount)
    assert (reserved["billed_cost"], reserved["effective_per_hour"]) == (0.0, pytest.approx(0.2304))
    assert reserved["ratio_to_sheet"] == pytest.approx(0.6)


def test_a_trailing_window_adds_days_up_not_their_prices():
    day1 = observed_prices.observed_vm_prices(the_bill(), CLUSTERS, SHEET, DAY)
    # the next day: one m5.xlarge spot VM for 7.5 h at $0.06/h = $0.45
    nxt = dt.datetime(2026, 1, 6, 10)
    later = bill(
        charge(
            1,
            start=nxt,
            cluster_id="c-spot",
            pricing_model="spot",
            sku_description="USE1-SpotUsage:m5.xlarge",
            consumed_quantity=7.5,
            cost=0.45,
        )
    )
    day2 = observed_prices.observed_vm_prices(later, CLUSTERS, SHEET, nxt.date())
    window = observed_prices.trailing(pl.concat([day1, day2]), SHEET, nxt.date())
    spot = window.filter(node_type_id="m5.xlarge", pricing_model="spot").row(0, named=True)
    # Σ effective ÷ Σ hours = (0.1824 + 0.45) / (2.5 + 7.5) = 0.6324 / 10 = $0.06324/h (not the mean of
    # 0.07296 and 0.06)
    assert (spot["days"], spot["node_hours"]) == (2, pytest.approx(10.0))
    assert spot["effective_per_hour"] == pytest.approx(0.06324)


# ------------------------------------------------------------------ COST_ASSETS_VM_PRICES=observed
def observed_rows() -> list[dict]:
    day = dt.date(2026, 11, 30)
    row = {"usage_date": day, "cloud": "AWS", "currency_code": "USD"}
    return [
        # m5.xlarge spot: 30 VM-hours for $2.40 → $0.08/h (≥ 24 VM-hours: used)
        {**row, "node_type_id": "m5.xlarge", "pricing_model": "spot", "node_hours": 30.0, "effective_cost": 2.40},
        # m5.2xlarge: 10 h on-demand at $0.384 ($3.84) + 20 h reserved, amortized $0.2304 ($4.608)
        {**row, "node_type_id": "m5.2xlarge", "pricing_model": "on_demand", "node_hours": 10.0, "effective_cost": 3.84},
        {
            **row,
            "node_type_id": "m5.2xlarge",
            "pricing_model": "reservation",
            "node_hours": 20.0,
            "effective_cost": 4.608,
        },
        # m5.4xlarge on-demand: only 5 VM-hours (fewer than 24: the sheet's price stays)
        {**row, "node_type_id": "m5.4xlarge", "pricing_model": "on_demand", "node_hours": 5.0, "effective_cost": 0.5},
    ]


def test_observed_mode_uses_the_observed_price_and_falls_back_to_the_sheet():
    from cost_assets import preflight

    observed = preflight.ObservedPrices.from_rows(observed_rows())
    sheet = load_price_sheet()
    kw = {"cloud": "aws", "node_type": "m5.xlarge", "driver_node_type": "m5.2xlarge", "workers": 5, "hours": 10}
    est = preflight.estimate(**kw, spot=True, at=dt.datetime(2026, 12, 1), sheet=sheet, observed=observed)
    # driver m5.2xlarge on-demand: the blend of on-demand and reserved VMs, (3.84 + 4.608) / (10 + 20) = $0.2816/h
    # workers m5.xlarge spot: $2.40 / 30 h = $0.08/h
    # VM $ = 10 h × (0.2816 + 5 × 0.08) = 10 × 0.6816 = $6.816 (the sheet would say 10 × (0.384 + 5 × 0.0672) = $7.20)
    assert (est.driver.vm_price_source, est.worker.vm_price_source) == ("observed", "observed")
    assert est.driver.vm_per_hour == pytest.approx(0.2816) and est.worker.vm_per_hour == pytest.approx(0.08)
    assert est.mid.vm_cost_usd == pytest.approx(6.816)
    assert any("workers m5.xlarge spot: observed $0.08/h (30 VM-hours" in n for n in est.notes)
    # on-demand workers: no on-demand m5.xlarge observed → the sheet's $0.192/h; the driver stays observed
    # VM $ = 10 × (0.2816 + 5 × 0.192) = 10 × 1.2416 = $12.416
    on_demand = preflight.estimate(**kw, at=dt.datetime(2026, 12, 1), sheet=sheet, observed=observed)
    assert (on_demand.driver.vm_price_source, on_demand.worker.vm_price_source) == ("observed", "sheet")
    assert on_demand.mid.vm_cost_usd == pytest.approx(12.416)
    assert any("workers m5.xlarge on-demand: the sheet's $0.192/h (observed 0 VM-hours" in n for n in on_demand.notes)
    # 5 VM-hours of m5.4xlarge are fewer than 24: the sheet's $0.768/h
    few = preflight.estimate(cloud="aws", node_type="m5.4xlarge", workers=0, hours=1, sheet=sheet, observed=observed)
    assert (few.driver.vm_price_source, few.driver.vm_per_hour) == ("sheet", 0.768)
    assert any("(observed 5 VM-hours in 2026-11-30..2026-11-30, fewer than 24)" in n for n in few.notes)


def test_cli_observed_mode_reads_the_ledger_and_says_which_price_it_used(tmp_path, monkeypatch, in_process_leave):
    import json
    import os

    import duckdb
    from typer.testing import CliRunner

    from cost_assets.cli import app

    for key in list(os.environ):
        if key.startswith(("COST_ASSETS_", "DATABRICKS_")):
            monkeypatch.delenv(key)
    database = tmp_path / "ledger.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("create schema mart")
        con.execute(
            "create table mart.observed_vm_prices (usage_date date, cloud varchar, node_type_id varchar, "
            "pricing_model varchar, currency_code varchar, node_hours double, effective_cost double)"
        )
        columns = ["usage_date", "cloud", "node_type_id", "pricing_model", "currency_code", "node_hours"]
        for r in observed_rows():
            con.execute(
                "insert into mart.observed_vm_prices values (?, ?, ?, ?, ?, ?, ?)",
                [*[r[c] for c in columns], r["effective_cost"]],
            )
    args = ["estimate", "--cloud", "aws", "--node-type", "m5.xlarge", "--workers", "5", "--hours", "10", "--spot"]
    env = {"COST_ASSETS_VM_PRICES": "observed", "COST_ASSETS_DUCKDB": str(database)}
    data = json.loads(CliRunner().invoke(app, [*args, "--json"], env=env).stdout)
    # workers observed at $0.08/h; the driver m5.xlarge on-demand was not observed: the sheet's $0.192/h
    # VM $ = 10 × (0.192 + 5 × 0.08) = 10 × 0.592 = $5.92
    assert (data["worker"]["vm_price_source"], data["driver"]["vm_price_source"]) == ("observed", "sheet")
    assert data["estimate"]["vm_cost_usd"] == pytest.approx(5.92)
    # without a ledger: the sheet's prices, and a note saying why
    env["COST_ASSETS_DUCKDB"] = str(tmp_path / "missing.duckdb")
    data = json.loads(CliRunner().invoke(app, [*args, "--json"], env=env).stdout)
    assert data["worker"]["vm_price_source"] == "sheet" and data["estimate"]["vm_cost_usd"] == pytest.approx(
        10 * (0.192 + 5 * 0.0672)
    )
    assert any(n.startswith("COST_ASSETS_VM_PRICES=observed: no observed prices") for n in data["notes"])
    # a bad value is refused naming the variable
    bad = CliRunner().invoke(app, args, env={"COST_ASSETS_VM_PRICES": "cheapest"})
    assert bad.exit_code == 2 and "COST_ASSETS_VM_PRICES" in bad.stderr
