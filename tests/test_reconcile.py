"""Reconciliation (resource × hour × SKU): hand-computed cases.

Also home of the small builders the attribution/scope/serving tests share (``usage``, ``estimate``,
``prices``): the bill as ``raw/billing_usage`` rows and the estimate as ``engine.cost_by_cluster_hour``
rows, with only the fields a test cares about.
"""

import datetime as dt
import itertools
from typing import Any

import polars as pl
import pytest
from costing_builders import dbu_prices

from cost_assets import schemas
from cost_assets.costing.engine import HOURLY_COLUMNS
from cost_assets.costing.reconcile import RECONCILIATION_COLUMNS, reconciliation
from cost_assets.ingest.parse import LEGACY_CSV_COLUMNS, legacy_csv_frame

WS = "ws-1"
H10 = dt.datetime(2024, 6, 19, 10)
AP = "PREMIUM_ALL_PURPOSE_COMPUTE"
AP_PHOTON = "PREMIUM_ALL_PURPOSE_COMPUTE_(PHOTON)"
JOBS = "PREMIUM_JOBS_COMPUTE"
SERVERLESS = "PREMIUM_JOBS_SERVERLESS_COMPUTE"
SERVING = "PREMIUM_SERVERLESS_REAL_TIME_INFERENCE"
PRICE = 0.5  # $/DBU of every priced SKU below unless a test says otherwise
_ids = itertools.count()


def prices(**per_sku: float) -> pl.DataFrame:
    """ref.dbu_prices (AWS) at PRICE for the common SKUs, or the given ``sku=price`` only."""
    table = per_sku or {AP: PRICE, AP_PHOTON: PRICE, JOBS: PRICE, SERVERLESS: PRICE, SERVING: PRICE}
    workload = {
        AP: "all_purpose",
        AP_PHOTON: "all_purpose",
        JOBS: "jobs",
        SERVERLESS: "serverless_jobs",
        SERVING: "model_serving",
    }
    rows = []
    for sku, price in table.items():
        photon = sku.endswith("(PHOTON)")
        rows.append(
            {
                "sku_name": sku,
                "workload": workload.get(sku, "all_purpose"),
                "price": price,
                "is_photon": photon,
                "photon_dbu_factor": 2.0 if photon else 1.0,
            }
        )
    return dbu_prices(*rows)


def usage(*rows: dict[str, Any]) -> pl.DataFrame:
    """raw.billing_usage rows: give usage_quantity (+ cluster_id / warehouse_id / endpoint_name, ...)."""
    schema = {name: col.dtype.type for name, col in schemas.BillingUsage.to_schema().columns.items()}
    out = []
    for row in rows:
        start = row.get("usage_start_time", H10)
        r = {
            "account_id": "acc",
            "workspace_id": WS,
            "record_id": f"r{next(_ids)}",
            "record_type": "ORIGINAL",
            "ingestion_date": None,
            "cloud": "AWS",
            "sku_name": AP,
            "usage_start_time": start,
            "usage_end_time": start + dt.timedelta(hours=1),
            "usage_unit": "DBU",
            "billing_origin_product": "ALL_PURPOSE",
            "cluster_id": None,
            "warehouse_id": None,
            "endpoint_name": None,
            "instance_pool_id": None,
            "node_type": None,
            "job_id": None,
            "job_run_id": None,
            "is_photon": None,
            "is_serverless": None,
            "custom_tags": "{}",
            "run_as": None,
            "machine_hours": None,
            "billing_source": "simulated",
            **row,
        }
        r["usage_date"] = r["usage_start_time"].date()
        out.append(r)
    return schemas.BillingUsage.validate(pl.DataFrame(out, schema=schema, orient="row"))


def estimate(*rows: dict[str, Any]) -> pl.DataFrame:
    """engine.cost_by_cluster_hour rows: give cluster_id, consumer, dbus (+ task_run_id, ...).

    ``dbu_cost_usd`` defaults to dbus × PRICE; shares are left null (reconciliation does not read them).
    """
    schema = {
        "usage_date": pl.Date,
        "workspace_id": pl.String,
        "cluster_id": pl.String,
        "hour_start": pl.Datetime("us"),
        "sku_name": pl.String,
        "is_shared_cluster": pl.Boolean,
        "consumer": pl.String,
        "run_id": pl.Int64,
        "task_run_id": pl.Int64,
        "job_id": pl.Int64,
        "task_key": pl.String,
        "runtime_hours": pl.Float64,
        "dbus": pl.Float64,
        "dbu_list_cost_usd": pl.Float64,
        "dbu_contract_cost_usd": pl.Float64,
        "dbu_cost_usd": pl.Float64,
        "vm_cost_usd": pl.Float64,
        "disk_cost_usd": pl.Float64,
        "total_cost_usd": pl.Float64,
        "currency_code": pl.String,
        "unpriced": pl.Boolean,
        "cluster_dbus": pl.Float64,
        "cluster_total_cost_usd": pl.Float64,
        "dbu_share": pl.Float64,
        "cost_share": pl.Float64,
    }
    assert list(schema) == HOURLY_COLUMNS
    out = []
    for row in rows:
        dbus = row.get("dbus", 0.0)
        cost = None if dbus is None else dbus * PRICE
        task = row.get("task_run_id")
        r = {
            "workspace_id": WS,
            "hour_start": H10,
            "sku_name": AP,
            "is_shared_cluster": True,
            "consumer": "run",
            "run_id": None if task is None else task * 10,
            "job_id": None,
            "runtime_hours": 0.5,
            "dbu_list_cost_usd": cost,
            "dbu_contract_cost_usd": cost,
            "dbu_cost_usd": cost,
            "vm_cost_usd": 0.0,
            "disk_cost_usd": 0.0,
            "currency_code": "USD",
            "unpriced": False,
            "cluster_dbus": None,
            "cluster_total_cost_usd": None,
            "dbu_share": None,
            "cost_share": None,
            **row,
        }
        r["usage_date"] = r["hour_start"].date()
        r["total_cost_usd"] = None if r["dbu_cost_usd"] is None else r["dbu_cost_usd"] + (r["vm_cost_usd"] or 0.0)
        out.append(r)
    return pl.DataFrame(out, schema=schema, orient="row")


def no_estimate() -> pl.DataFrame:
    return estimate().clear()


def one(frame: pl.DataFrame, **where: Any) -> dict[str, Any]:
    """The single row matching ``where`` (fails loudly otherwise)."""
    rows = frame.filter(**where).to_dicts()
    assert len(rows) == 1, f"expected one row for {where}, got {len(rows)}: {rows}"
    return rows[0]


def reconcile(bill: pl.DataFrame, est: pl.DataFrame, price_table: pl.DataFrame | None = None) -> pl.DataFrame:
    out = reconciliation(bill, est, prices() if price_table is None else price_table, "AWS")
    assert out.columns == RECONCILIATION_COLUMNS
    return out


# --- the basic comparison -----------------------------------------------------------------------------


def test_billed_ten_estimated_eight_is_a_mismatch_with_both_sides_in_dollars():
    bill = usage({"cluster_id": "c1", "usage_quantity": 10.0})
    est = estimate(
        {"cluster_id": "c1", "task_run_id": 1, "dbus": 6.0}, {"cluster_id": "c1", "task_run_id": 2, "dbus": 2.0}
    )
    row = one(reconcile(bill, est), resource_id="c1")
    assert row["resource_type"] == "cluster"
    assert row["hour_start"] == H10 and row["usage_date"] == H10.date() and row["sku_name"] == AP
    assert row["billed_dbus"] == pytest.approx(10.0)
    assert row["billed_cost_usd"] == pytest.approx(10.0 * 0.5)
    assert row["estimated_dbus"] == pytest.approx(6.0 + 2.0)
    assert row["estimated_cost_usd"] == pytest.approx(8.0 * 0.5)
    assert row["ratio"] == pytest.approx(8.0 / 10.0)
    assert row["delta_dbus"] == pytest.approx(10.0 - 8.0)
    assert row["delta_usd"] == pytest.approx(5.0 - 4.0)
    assert row["within_tolerance"] is False
    assert row["reason"] == "mismatch"
    assert row["currency_code"] == "USD" and row["billing_records"] == 1


@pytest.mark.parametrize(("estimated", "reason"), [(10.4, "ok"), (9.6, "ok"), (10.6, "mismatch"), (9.4, "mismatch")])
def test_five_percent_tolerance(estimated, reason):
    bill = usage({"cluster_id": "c1", "usage_quantity": 10.0})
    row = one(reconcile(bill, estimate({"cluster_id": "c1", "task_run_id": 1, "dbus": estimated})), resource_id="c1")
    assert row["reason"] == reason
    assert row["within_tolerance"] is (reason == "ok")


def test_billed_hour_without_estimate_and_run_hour_without_billing():
    bill = usage({"cluster_id": "billed-only", "usage_quantity": 4.0})
    est = estimate({"cluster_id": "estimated-only", "task_run_id": 1, "dbus": 3.0})
    out = reconcile(bill, est)
    billed = one(out, resource_id="billed-only")
    assert billed["reason"] == "no_estimate"
    assert billed["estimated_dbus"] is None and billed["estimated_cost_usd"] is None and billed["ratio"] is None
    assert billed["delta_dbus"] is None and billed["delta_usd"] is None
    assert billed["billed_cost_usd"] == pytest.approx(4.0 * 0.5)
    unbilled = one(out, resource_id="estimated-only")
    assert unbilled["reason"] == "no_billing"
    # Nothing billed is a fact ($0), not an unknown.
    assert unbilled["billed_dbus"] == 0.0 and unbilled["billed_cost_usd"] == 0.0 and unbilled["billing_records"] == 0
    assert unbilled["estimated_cost_usd"] == pytest.approx(3.0 * 0.5)
    assert unbilled["delta_usd"] == pytest.approx(0.0 - 1.5)


def test_vm_only_estimate_hours_are_not_reconciled():
    """A cluster starting up (VM $ but 0 DBUs) is not on the Databricks bill and agrees with it."""
    est = estimate({"cluster_id": "c1", "consumer": "idle", "dbus": 0.0, "vm_cost_usd": 0.3})
    assert reconcile(usage({"cluster_id": "other", "usage_quantity": 1.0}), est).filter(resource_id="c1").height == 0


# --- corrections --------------------------------------------------------------------------------------


def test_retraction_and_restatement_change_the_hour_from_ten_to_twelve():
    bill = usage(
        {"cluster_id": "c1", "usage_quantity": 10.0, "record_type": "ORIGINAL"},
        {"cluster_id": "c1", "usage_quantity": -10.0, "record_type": "RETRACTION"},
        {"cluster_id": "c1", "usage_quantity": 12.0, "record_type": "RESTATEMENT"},
    )
    row = one(reconcile(bill, estimate({"cluster_id": "c1", "task_run_id": 1, "dbus": 12.0})), resource_id="c1")
    assert row["billed_dbus"] == pytest.approx(10.0 - 10.0 + 12.0)
    assert row["billed_cost_usd"] == pytest.approx(12.0 * 0.5)
    assert row["has_correction"] is True and row["billing_records"] == 3
    assert row["reason"] == "correction"
    assert row["within_tolerance"] is True


def test_correction_ranks_above_mismatch_but_the_flags_keep_both_facts():
    bill = usage(
        {"cluster_id": "c1", "usage_quantity": 10.0},
        {"cluster_id": "c1", "usage_quantity": -10.0, "record_type": "RETRACTION"},
        {"cluster_id": "c1", "usage_quantity": 12.0, "record_type": "RESTATEMENT"},
    )
    row = one(reconcile(bill, estimate({"cluster_id": "c1", "task_run_id": 1, "dbus": 10.0})), resource_id="c1")
    assert row["reason"] == "correction"
    assert row["within_tolerance"] is False
    assert row["ratio"] == pytest.approx(10.0 / 12.0)


# --- prices -------------------------------------------------------------------------------------------


def test_sku_without_price_gives_null_dollars_never_zero():
    bill = usage(
        {"cluster_id": "c1", "usage_quantity": 10.0, "sku_name": "PREMIUM_NEW_SHINY_COMPUTE"},
        {"cluster_id": "c2", "usage_quantity": 2.0},
    )
    out = reconcile(bill, no_estimate())
    row = one(out, resource_id="c1")
    assert row["billed_dbus"] == pytest.approx(10.0)
    assert row["billed_cost_usd"] is None and row["delta_usd"] is None
    assert row["unpriced"] is True and row["reason"] == "unpriced"
    assert one(out, resource_id="c2")["billed_cost_usd"] == pytest.approx(2.0 * 0.5)


def test_a_non_usd_price_counts_as_missing():
    eur = prices(**{AP: 0.4}).with_columns(pl.lit("EUR").alias("currency_code"))
    row = one(reconcile(usage({"cluster_id": "c1", "usage_quantity": 1.0}), no_estimate(), eur), resource_id="c1")
    assert row["billed_cost_usd"] is None and row["unpriced"] is True


def test_price_windows_are_half_open_and_the_hour_takes_the_price_in_force_at_its_end():
    """Old price until 12:00 (exclusive), new from 12:00; a change at 13:30 prices the 13:00 hour new
    (Databricks' canonical list_prices join: price_start < usage_end ≤ price_end)."""
    sheet = dbu_prices(
        {
            "sku_name": AP,
            "workload": "all_purpose",
            "price": 0.4,
            "price_start_time": dt.datetime(2020, 1, 1),
            "price_end_time": dt.datetime(2024, 6, 19, 12),
        },
        {
            "sku_name": AP,
            "workload": "all_purpose",
            "price": 0.6,
            "price_start_time": dt.datetime(2024, 6, 19, 12),
            "price_end_time": dt.datetime(2024, 6, 19, 13, 30),
        },
        {"sku_name": AP, "workload": "all_purpose", "price": 0.7, "price_start_time": dt.datetime(2024, 6, 19, 13, 30)},
    )
    bill = usage(
        *[
            {"cluster_id": "c1", "usage_quantity": 2.0, "usage_start_time": dt.datetime(2024, 6, 19, h)}
            for h in (11, 12, 13)
        ]
    )
    out = reconcile(bill, no_estimate(), sheet)
    by_hour = {r["hour_start"].hour: r["billed_cost_usd"] for r in out.to_dicts()}
    assert by_hour == pytest.approx({11: 2.0 * 0.4, 12: 2.0 * 0.6, 13: 2.0 * 0.7})


def test_usage_without_cloud_is_priced_with_the_default_cloud():
    row = one(
        reconcile(usage({"cluster_id": "c1", "usage_quantity": 3.0, "cloud": None}), no_estimate()), resource_id="c1"
    )
    assert row["billed_cost_usd"] == pytest.approx(3.0 * 0.5)


def test_unpriced_estimate_makes_the_estimated_side_unknown():
    est = estimate(
        {"cluster_id": "c1", "task_run_id": 1, "dbus": None, "dbu_cost_usd": None, "unpriced": True},
        {"cluster_id": "c1", "task_run_id": 2, "dbus": 3.0},
    )
    row = one(reconcile(usage({"cluster_id": "c1", "usage_quantity": 6.0}), est), resource_id="c1")
    assert row["estimated_dbus"] is None and row["estimated_cost_usd"] is None
    assert row["estimate_unpriced"] is True and row["unpriced"] is False
    assert row["reason"] == "unpriced"
    assert row["billed_cost_usd"] == pytest.approx(6.0 * 0.5)


# --- resources ----------------------------------------------------------------------------------------


def test_resource_types_from_usage_metadata():
    bill = usage(
        {"cluster_id": "0619-job", "usage_quantity": 1.0, "sku_name": JOBS, "job_id": 7, "job_run_id": 70},
        {"warehouse_id": "wh1", "usage_quantity": 2.0, "sku_name": AP},
        {"endpoint_name": "chat", "usage_quantity": 3.0, "sku_name": SERVING},
        {"job_id": 8, "job_run_id": 80, "usage_quantity": 4.0, "sku_name": SERVERLESS, "is_serverless": True},
        {"usage_quantity": 5.0, "sku_name": SERVERLESS, "billing_origin_product": "INTERACTIVE"},
    )
    out = reconcile(bill, no_estimate())
    kinds = {(r["resource_type"], r["resource_id"]): r for r in out.to_dicts()}
    assert set(kinds) == {
        ("cluster", "0619-job"),
        ("warehouse", "wh1"),
        ("endpoint", "chat"),
        ("serverless", "80"),
        ("serverless", "INTERACTIVE"),
    }
    assert (kinds[("serverless", "80")]["job_id"], kinds[("serverless", "80")]["job_run_id"]) == (8, 80)
    assert (kinds[("cluster", "0619-job")]["job_id"], kinds[("cluster", "0619-job")]["job_run_id"]) == (7, 70)
    assert kinds[("warehouse", "wh1")]["job_id"] is None
    assert all(r["reason"] == "no_estimate" for r in kinds.values())
    assert kinds[("endpoint", "chat")]["billed_cost_usd"] == pytest.approx(3.0 * 0.5)


def test_same_cluster_two_workspaces_or_two_skus_are_separate_grain_rows():
    bill = usage(
        {"cluster_id": "c1", "usage_quantity": 1.0},
        {"cluster_id": "c1", "usage_quantity": 2.0, "sku_name": JOBS},
        {"cluster_id": "c1", "usage_quantity": 4.0, "workspace_id": "ws-2"},
        {"cluster_id": "c1", "usage_quantity": 8.0},
    )
    out = reconcile(bill, no_estimate())
    got = {(r["workspace_id"], r["sku_name"]): r["billed_dbus"] for r in out.to_dicts()}
    assert got == {(WS, AP): 1.0 + 8.0, (WS, JOBS): 2.0, ("ws-2", AP): 4.0}


def test_sku_mismatch_marks_both_sides_of_the_resource_hour():
    bill = usage({"cluster_id": "c1", "usage_quantity": 10.0, "sku_name": AP_PHOTON})
    out = reconcile(bill, estimate({"cluster_id": "c1", "task_run_id": 1, "dbus": 5.0, "sku_name": AP}))
    assert out.height == 2
    assert set(out["reason"]) == {"sku_mismatch"}
    assert one(out, sku_name=AP_PHOTON)["billed_dbus"] == pytest.approx(10.0)
    assert one(out, sku_name=AP)["estimated_dbus"] == pytest.approx(5.0)


def test_legacy_csv_rows_are_matched_at_the_hour_their_stamp_closes():
    """``…T09:59:59.999Z`` covers 09:00–10:00: it meets the 09:00 estimate, not 10:00 (no re-shift)."""
    header = ",".join(LEGACY_CSV_COLUMNS)
    text = f'{header}\n{WS},2024-06-19T09:59:59.999Z,c1,shared,m5.xlarge,1,"{{}}",{AP},5.0,3.0,,"{{}}"\n'
    bill = legacy_csv_frame(text, "usage.csv")
    est = estimate({"cluster_id": "c1", "task_run_id": 1, "dbus": 5.0, "hour_start": dt.datetime(2024, 6, 19, 9)})
    row = one(reconcile(bill, est), resource_id="c1")
    assert row["hour_start"] == dt.datetime(2024, 6, 19, 9)
    assert row["reason"] == "ok" and row["billed_cost_usd"] == pytest.approx(5.0 * 0.5)


def test_empty_inputs_give_an_empty_table_with_the_contract_columns():
    out = reconcile(usage(), no_estimate())
    assert out.height == 0 and out.columns == RECONCILIATION_COLUMNS


def test_only_dbu_quantities_count_as_billed_dbus():
    bill = usage(
        {"cluster_id": "c", "usage_quantity": 4.0}, {"cluster_id": "c", "usage_quantity": 2.0, "usage_unit": "GPU_HOUR"}
    )
    row = one(reconcile(bill, no_estimate()), resource_id="c")
    assert row["billed_dbus"] == 4.0  # the 2 GPU hours are not DBUs
    # No price per GPU hour in the table: the hour's dollars are unknown, never $0.
    assert row["unpriced"] and row["billed_cost_usd"] is None


# --- workspaces an account does not list ----------------------------------------------------------------


def test_a_workspace_the_account_does_not_list_is_workspace_not_configured_not_no_estimate():
    """Configured: A. A's cluster billed 4 DBU without an estimate → no_estimate (a gap in a fetched
    workspace). B (not listed): cluster 3 DBU and endpoint 2 DBU → workspace_not_configured; B's
    unpriced SKU (GPU hours, no price) stays unpriced: money unknown wins. One workspace (configured
    None): B's rows are no_estimate as always."""
    bill = usage(
        {"workspace_id": "A", "cluster_id": "a1", "usage_quantity": 4.0},
        {"workspace_id": "B", "cluster_id": "b1", "usage_quantity": 3.0},
        {"workspace_id": "B", "endpoint_name": "chat", "sku_name": SERVING, "usage_quantity": 2.0},
        {"workspace_id": "B", "cluster_id": "b2", "usage_quantity": 1.0, "usage_unit": "GPU_HOUR"},
    )
    out = reconciliation(bill, no_estimate(), prices(), "AWS", configured=["A"])
    assert one(out, resource_id="a1")["reason"] == "no_estimate"
    cluster, endpoint = one(out, resource_id="b1"), one(out, resource_id="chat")
    assert (cluster["reason"], endpoint["reason"]) == ("workspace_not_configured", "workspace_not_configured")
    assert cluster["billed_cost_usd"] == pytest.approx(3.0 * PRICE)  # 1.50 $: billed as ever
    assert endpoint["billed_cost_usd"] == pytest.approx(2.0 * PRICE)  # 1.00 $
    assert cluster["estimated_cost_usd"] is None and cluster["delta_usd"] is None  # unknown, not $0
    assert one(out, resource_id="b2")["reason"] == "unpriced"
    assert set(reconcile(bill, no_estimate()).filter(pl.col("workspace_id") == "B")["reason"]) == {
        "no_estimate",
        "unpriced",
    }
