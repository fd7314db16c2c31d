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
