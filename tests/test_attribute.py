"""Attribution: the bill handed out by the estimate's shares; conservation; accuracy; a simulated week."""

import datetime as dt
from collections import defaultdict

import polars as pl
import pytest
from costing_builders import clusters, jobs
from test_reconcile import AP, AP_PHOTON, H10, PRICE, SERVERLESS, SERVING, WS, estimate, no_estimate, one, prices, usage

from cost_assets.costing import engine
from cost_assets.costing.attribute import (
    ACCURACY_COLUMNS,
    ATTRIBUTED_COLUMNS,
    accuracy,
    attributed_costs,
    conservation_gaps,
)
from cost_assets.costing.reconcile import reconciliation
from cost_assets.ingest.fetch import fetch_day
from cost_assets.ingest.parse import system_usage_frame
from cost_assets.prices import load_price_sheet
from cost_assets.simulation import views
from cost_assets.simulation.api import SimulatedApi
from cost_assets.simulation.world import WorldConfig


def attribute(bill: pl.DataFrame, est: pl.DataFrame, **tag_sources) -> tuple[pl.DataFrame, pl.DataFrame]:
    recon = reconciliation(bill, est, prices(), "AWS")
    out = attributed_costs(recon, est, **tag_sources)
    assert out.columns == ATTRIBUTED_COLUMNS
    return recon, out


def test_ten_billed_dbus_split_three_to_one_like_the_estimate():
    """Billed 10 DBU, estimated 8 DBU split 6:2 (3:1) → 7.5 and 2.5 DBU worth of the bill."""
    bill = usage({"cluster_id": "c1", "usage_quantity": 10.0})
    est = estimate(
        {"cluster_id": "c1", "task_run_id": 1, "dbus": 6.0}, {"cluster_id": "c1", "task_run_id": 2, "dbus": 2.0}
    )
    _, out = attribute(bill, est)
    first, second = one(out, task_run_id=1), one(out, task_run_id=2)
    assert first["consumer"] == second["consumer"] == "run"
    assert first["billed_dbus"] == pytest.approx(10.0 * 3 / 4)
    assert second["billed_dbus"] == pytest.approx(10.0 * 1 / 4)
    assert first["billed_cost_usd"] == pytest.approx(10.0 * 3 / 4 * PRICE)
    assert second["billed_cost_usd"] == pytest.approx(10.0 * 1 / 4 * PRICE)
    assert first["estimated_cost_usd"] == pytest.approx(6.0 * PRICE)
    assert (first["run_id"], first["reason"], first["resource_type"], first["resource_id"]) == (
        10,
        "mismatch",
        "cluster",
        "c1",
    )
    assert out.height == 2


def test_billed_hour_with_only_idle_in_the_estimate_goes_to_idle():
    bill = usage({"cluster_id": "c1", "usage_quantity": 4.0})
    _, out = attribute(bill, estimate({"cluster_id": "c1", "consumer": "idle", "dbus": 4.0}))
    row = one(out, resource_id="c1")
    assert row["consumer"] == "idle" and row["run_id"] is None
    assert row["billed_cost_usd"] == pytest.approx(4.0 * PRICE)
    assert row["reason"] == "ok"


def test_billed_hour_without_estimate_is_unattributed_with_its_reason():
    _, out = attribute(usage({"cluster_id": "c1", "usage_quantity": 4.0}), no_estimate())
    row = one(out, resource_id="c1")
    assert (row["consumer"], row["reason"]) == ("unattributed", "no_estimate")
    assert row["billed_cost_usd"] == pytest.approx(4.0 * PRICE) and row["estimated_cost_usd"] is None


def test_run_hour_without_billing_is_kept_with_zero_billed():
    _, out = attribute(usage(), estimate({"cluster_id": "c1", "task_run_id": 1, "dbus": 3.0}))
    row = one(out, task_run_id=1)
    assert row["reason"] == "no_billing"
    assert row["billed_dbus"] == 0.0 and row["billed_cost_usd"] == 0.0
    assert row["estimated_cost_usd"] == pytest.approx(3.0 * PRICE)


def test_serverless_job_usage_goes_straight_to_the_job_run():
    bill = usage({"job_id": 8, "job_run_id": 80, "usage_quantity": 4.0, "sku_name": SERVERLESS})
    tags = jobs({"job_id": 8, "team": "ml", "tenant": "acme"})
    _, out = attribute(bill, no_estimate(), jobs=tags)
    row = one(out, resource_type="serverless")
    assert (row["consumer"], row["run_id"], row["job_id"], row["task_run_id"]) == ("run", 80, 8, None)
    assert row["reason"] == "serverless"
    assert row["billed_cost_usd"] == pytest.approx(4.0 * PRICE)
    assert (row["team"], row["tenant"]) == ("ml", "acme")


def test_serverless_without_a_job_is_unattributed():
    bill = usage({"usage_quantity": 1.0, "sku_name": SERVERLESS, "billing_origin_product": "INTERACTIVE"})
    row = one(attribute(bill, no_estimate())[1], resource_type="serverless")
    assert (row["consumer"], row["reason"]) == ("unattributed", "serverless")


def test_job_cluster_without_estimate_uses_the_bills_job_run():
    """Events missing → no estimate; the bill still names the job run of a job cluster."""
    bill = usage({"cluster_id": "job-c", "usage_quantity": 2.0, "job_id": 7, "job_run_id": 70})
    row = one(attribute(bill, no_estimate())[1], resource_id="job-c")
    assert (row["consumer"], row["run_id"], row["job_id"], row["reason"]) == ("run", 70, 7, "no_estimate")


def test_endpoint_usage_is_unattributed_with_reason_serving():
    bill = usage({"endpoint_name": "chat", "usage_quantity": 8.0, "sku_name": SERVING, "custom_tags": '{"team":"ai"}'})
    row = one(attribute(bill, no_estimate())[1], resource_type="endpoint")
    assert (row["consumer"], row["reason"], row["team"]) == ("unattributed", "serving", "ai")
    assert row["billed_cost_usd"] == pytest.approx(8.0 * PRICE)


def test_warehouse_usage_is_unattributed_with_reason_warehouse():
    row = one(
        attribute(usage({"warehouse_id": "wh", "usage_quantity": 1.0}), no_estimate())[1], resource_type="warehouse"
    )
    assert (row["consumer"], row["reason"]) == ("unattributed", "warehouse")


def test_sku_mismatch_shares_by_the_other_sku_estimate_without_counting_it_twice():
    bill = usage({"cluster_id": "c1", "usage_quantity": 10.0, "sku_name": AP_PHOTON})
    est = estimate(
        {"cluster_id": "c1", "task_run_id": 1, "dbus": 1.0}, {"cluster_id": "c1", "task_run_id": 2, "dbus": 4.0}
    )
    _, out = attribute(bill, est)
    assert out.height == 2 and set(out["sku_name"]) == {AP_PHOTON} and set(out["reason"]) == {"sku_mismatch"}
    assert one(out, task_run_id=1)["billed_dbus"] == pytest.approx(10.0 * 1 / 5)
    assert one(out, task_run_id=2)["billed_dbus"] == pytest.approx(10.0 * 4 / 5)
    assert out["estimated_cost_usd"].sum() == pytest.approx(5.0 * PRICE)


def test_estimate_without_dbus_shares_by_cost_then_runtime():
    """Unpriced node type: the estimate has no DBUs or $ but knows who ran how long (3 h : 1 h)."""
    est = estimate(
        {
            "cluster_id": "c1",
            "task_run_id": 1,
            "dbus": None,
            "dbu_cost_usd": None,
            "vm_cost_usd": None,
            "unpriced": True,
            "runtime_hours": 0.75,
        },
        {
            "cluster_id": "c1",
            "task_run_id": 2,
            "dbus": None,
            "dbu_cost_usd": None,
            "vm_cost_usd": None,
            "unpriced": True,
            "runtime_hours": 0.25,
        },
    )
    _, out = attribute(usage({"cluster_id": "c1", "usage_quantity": 8.0}), est)
    assert one(out, task_run_id=1)["billed_dbus"] == pytest.approx(8.0 * 0.75)
    assert one(out, task_run_id=2)["billed_cost_usd"] == pytest.approx(8.0 * 0.25 * PRICE)
    assert set(out["reason"]) == {"unpriced"}
    assert out["estimated_cost_usd"].null_count() == 2


def test_estimate_with_no_usable_weight_leaves_the_bill_unattributed():
    est = estimate({"cluster_id": "c1", "task_run_id": 1, "dbus": 0.0, "runtime_hours": 0.0})
    _, out = attribute(usage({"cluster_id": "c1", "usage_quantity": 2.0}), est)
    row = one(out, consumer="unattributed")
    assert row["reason"] == "no_share" and row["billed_dbus"] == pytest.approx(2.0)
    assert one(out, task_run_id=1)["billed_dbus"] == 0.0


def test_unpriced_bill_is_attributed_in_dbus_with_unknown_dollars():
    bill = usage({"cluster_id": "c1", "usage_quantity": 4.0, "sku_name": "PREMIUM_NEW_SHINY_COMPUTE"})
    est = estimate({"cluster_id": "c1", "task_run_id": 1, "dbus": 1.0, "sku_name": "PREMIUM_NEW_SHINY_COMPUTE"})
    _, out = attribute(bill, est)
    row = one(out, task_run_id=1)
    assert row["billed_dbus"] == pytest.approx(4.0) and row["billed_cost_usd"] is None
    assert row["reason"] == "unpriced"


def test_tags_job_over_cluster_for_runs_cluster_for_idle():
    bill = usage({"cluster_id": "c1", "usage_quantity": 4.0})
    est = estimate(
        {"cluster_id": "c1", "task_run_id": 1, "job_id": 5, "dbus": 1.0},
        {"cluster_id": "c1", "consumer": "idle", "dbus": 1.0},
    )
    _, out = attribute(
        bill,
        est,
        jobs=jobs({"job_id": 5, "team": "ml"}),
        clusters=clusters({"cluster_id": "c1", "custom_tags": '{"cost_center":"cc-1","team":"analytics"}'}),
    )
    run, idle = one(out, consumer="run"), one(out, consumer="idle")
    assert (run["team"], run["cost_center"]) == ("ml", "cc-1")
    assert (idle["team"], idle["cost_center"]) == ("analytics", "cc-1")


# --- conservation and accuracy ------------------------------------------------------------------------


def _mixed_day() -> tuple[pl.DataFrame, pl.DataFrame]:
    bill = usage(
        {"cluster_id": "c1", "usage_quantity": 10.0},
        {"cluster_id": "c2", "usage_quantity": 4.0},
        {"endpoint_name": "chat", "usage_quantity": 2.0, "sku_name": SERVING},
        {"job_id": 8, "job_run_id": 80, "usage_quantity": 1.0, "sku_name": SERVERLESS},
    )
    est = estimate(
        {"cluster_id": "c1", "task_run_id": 1, "dbus": 6.0},
        {"cluster_id": "c1", "task_run_id": 2, "dbus": 4.2},
        {"cluster_id": "c2", "consumer": "idle", "dbus": 3.0},
        {"cluster_id": "c3", "task_run_id": 3, "dbus": 1.0},
    )
    return attribute(bill, est)


def test_conservation_gap_is_zero_and_catches_lost_money():
    recon, out = _mixed_day()
    gaps = conservation_gaps(recon, out)
    assert gaps.height == 1 and gaps["ok"].to_list() == [True]
    assert gaps["billed_cost_usd"][0] == pytest.approx((10.0 + 4.0 + 2.0 + 1.0) * PRICE)
    assert abs(gaps["gap_usd"][0]) < 1e-9
    lost = conservation_gaps(recon, out.filter(pl.col("consumer") != "idle"))
    assert lost["ok"].to_list() == [False]
    assert lost["gap_usd"][0] == pytest.approx(-4.0 * PRICE)


def test_accuracy_per_day():
    recon, out = _mixed_day()
    acc = accuracy(recon, out)
    assert acc.columns == ACCURACY_COLUMNS
    row = acc.to_dicts()[0]
    billed = (10.0 + 4.0 + 2.0 + 1.0) * PRICE
    # c1: 10.2 vs 10 → within 5 %; c2: 3 vs 4 → not; endpoint and serverless have no estimate.
    assert row["billed_cost_usd"] == pytest.approx(billed)
    assert row["matched_share"] == pytest.approx(10.0 * PRICE / billed)
    assert row["cluster_matched_share"] == pytest.approx(10.0 / 14.0)
    assert row["coverage"] == pytest.approx((10.0 + 1.0) * PRICE / billed)
    assert row["idle_cost_usd"] == pytest.approx(4.0 * PRICE)
    assert row["unattributed_cost_usd"] == pytest.approx(2.0 * PRICE)
    assert row["no_billing_estimated_usd"] == pytest.approx(1.0 * PRICE)
    assert row["unpriced_billed_dbus"] == 0.0


# --- a simulated week ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated_week():
    config = WorldConfig(scale="small", days=7)
    sheet = load_price_sheet()
    instance_types, dbu_price_frame = sheet.instance_types_frame(), sheet.dbu_prices_frame()
    api = SimulatedApi(config)
    days = [config.start + dt.timedelta(days=i) for i in range(config.days)]
    hourly = []
    for day in days:
        raw = fetch_day(api, day)
        hourly.append(
            engine.cost_by_cluster_hour(
                raw.job_runs,
                raw.clusters,
                raw.cluster_events,
                instance_types,
                dbu_price_frame,
                day,
                config.tier,
            )
        )
    rows = views.bill(views.world_for(config), sheet)
    bill = system_usage_frame(rows, "simulated").filter(pl.col("usage_date").is_in(days))
    est = pl.concat(hourly)
    recon = reconciliation(bill, est, dbu_price_frame, config.cloud)
    return {"rows": rows, "days": days, "sheet": sheet, "recon": recon, "attributed": attributed_costs(recon, est)}


def test_simulated_week_conserves_every_billed_dollar_per_day(simulated_week):
    # Expected per day straight from the system.billing.usage rows: Σ quantity × $/DBU of the SKU.
    # (Every AZURE SKU's current window starts before 2026, so the current row is the price in force.)
    current = simulated_week["sheet"].dbu_prices_frame().filter(pl.col("price_end_time").is_null(), cloud="AZURE")
    price = dict(current.select("sku_name", "effective_price").iter_rows())
    expected: dict[dt.date, float] = defaultdict(float)
    for r in simulated_week["rows"]:
        day = dt.date.fromisoformat(r["usage_start_time"][:10])
        if day in simulated_week["days"]:
            expected[day] += float(r["usage_quantity"]) * price[r["sku_name"]]
    got = simulated_week["attributed"].group_by("usage_date").agg(pl.col("billed_cost_usd").sum())
    got_by_day = dict(got.iter_rows())
    assert set(got_by_day) == set(simulated_week["days"])
    for day in simulated_week["days"]:
        assert got_by_day[day] == pytest.approx(expected[day], abs=0.01)
    assert conservation_gaps(simulated_week["recon"], simulated_week["attributed"])["ok"].all()


def test_simulated_week_estimate_matches_the_bill(simulated_week):
    acc = accuracy(simulated_week["recon"], simulated_week["attributed"])
    assert acc.height == 7
    # Every cluster dollar is within 5 %; only serving (no cluster estimate) is outside.
    assert acc["cluster_matched_share"].min() >= 0.95
    assert acc["matched_share"].min() >= 0.95
    assert (acc["unpriced_billed_dbus"] == 0).all()
    serving = simulated_week["attributed"].filter(resource_type="endpoint")
    assert set(serving["reason"]) == {"serving"} and set(serving["consumer"]) == {"unattributed"}
    assert simulated_week["attributed"]["billed_cost_usd"].null_count() == 0


def test_hour_level_fallback_when_a_second_billed_sku_has_no_estimate():
    bill = usage(
        {"cluster_id": "c1", "usage_quantity": 4.0}, {"cluster_id": "c1", "usage_quantity": 2.0, "sku_name": AP_PHOTON}
    )
    est = estimate(
        {"cluster_id": "c1", "task_run_id": 1, "dbus": 3.0}, {"cluster_id": "c1", "task_run_id": 2, "dbus": 1.0}
    )
    recon, out = attribute(bill, est)
    assert one(recon, sku_name=AP_PHOTON)["reason"] == "no_estimate"
    photon = out.filter(sku_name=AP_PHOTON)
    assert one(photon, task_run_id=1)["billed_dbus"] == pytest.approx(2.0 * 3 / 4)
    assert photon["estimated_cost_usd"].null_count() == 2  # the estimate is already on the exact rows
    assert out["billed_dbus"].sum() == pytest.approx(6.0)
    assert out["estimated_cost_usd"].sum() == pytest.approx(4.0 * PRICE)
    assert WS in set(out["workspace_id"]) and set(out["hour_start"]) == {H10}


def test_cluster_without_timeline_is_unpriced_and_shared_by_runtime():
    """The engine knows the runs (0.5 h and 0.25 h) but the cluster has no events: no SKU, no DBUs."""
    est = estimate(
        {
            "cluster_id": "c1",
            "task_run_id": 1,
            "sku_name": None,
            "dbus": None,
            "dbu_cost_usd": None,
            "vm_cost_usd": None,
            "unpriced": True,
            "runtime_hours": 0.5,
        },
        {
            "cluster_id": "c1",
            "task_run_id": 2,
            "sku_name": None,
            "dbus": None,
            "dbu_cost_usd": None,
            "vm_cost_usd": None,
            "unpriced": True,
            "runtime_hours": 0.25,
        },
    )
    recon, out = attribute(usage({"cluster_id": "c1", "usage_quantity": 6.0}), est)
    assert dict(recon.select("sku_name", "reason").iter_rows()) == {AP: "no_estimate", None: "unpriced"}
    billed = out.filter(sku_name=AP)
    assert one(billed, task_run_id=1)["billed_dbus"] == pytest.approx(6.0 * 0.5 / 0.75)
    assert one(billed, task_run_id=2)["billed_cost_usd"] == pytest.approx(6.0 * 0.25 / 0.75 * PRICE)
    assert set(billed["reason"]) == {"no_estimate"}
    assert out.filter(pl.col("sku_name").is_null()).height == 0  # its estimate was used for the billed SKU
    assert out["billed_cost_usd"].sum() == pytest.approx(6.0 * PRICE)


def test_serverless_usage_naming_only_the_job_is_that_jobs_money():
    bill = usage({"job_id": 8, "usage_quantity": 2.0, "sku_name": SERVERLESS})
    row = one(attribute(bill, no_estimate(), jobs=jobs({"job_id": 8, "team": "ml"}))[1], resource_type="serverless")
    assert (row["resource_id"], row["consumer"], row["run_id"], row["job_id"]) == ("job:8", "run", None, 8)
    assert row["team"] == "ml"
