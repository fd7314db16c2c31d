"""The FOCUS 1.3 export: hand-computed rows, the column rules (data) checked, allocation sums, files."""

import datetime as dt
import json

import polars as pl
import pytest

from cost_assets.definitions import build_defs
from cost_assets.export.focus import (
    METHOD_BILL,
    METHOD_SHARE,
    METHOD_UNATTRIBUTED,
    POLARS_TYPES,
    focus_rows,
    rules,
    unpriced_rows,
    violations,
    write_day,
)
from cost_assets.resources.warehouse import read_table
from tests.conftest import run_daily, sim_environ
from tests.costing_builders import dbu_prices
from tests.export_builders import DAY, attributed, billing

ORIGIN = ["SubAccountId", "ResourceId", "SkuId", "ChargePeriodStart"]


def _fixture() -> pl.DataFrame:
    """Cluster c-1 at 10:00 billed 10 DBU (ORIGINAL), retracted (-10) and restated (8): net 8 DBU at the
    effective $0.50/DBU = $4.00, handed out $3.00 to run 1 (6 DBU) and $1.00 to idle (2 DBU). Cluster c-2
    billed 1 DBU = $0.50, unattributed. An unpriced bill row (null $) cannot be a FOCUS row."""
    rows = attributed(
        {"run_id": 1, "task_run_id": 11, "job_id": 100, "billed_dbus": 6.0, "billed_cost_usd": 3.0}
        | {"team": "data", "reason": "correction"},
        {"consumer": "idle", "billed_dbus": 2.0, "billed_cost_usd": 1.0, "reason": "correction"},
        {"resource_id": "c-2", "consumer": "unattributed", "billed_dbus": 1.0, "billed_cost_usd": 0.5}
        | {"reason": "no_estimate"},
        {"resource_id": "c-3", "consumer": "unattributed", "sku_name": "PREMIUM_GPU", "billed_dbus": 1.0}
        | {"billed_cost_usd": None, "reason": "unpriced"},
    )
    bill = billing(
        {"record_id": "r1", "usage_quantity": 10.0},
        {"record_id": "r2", "usage_quantity": -10.0, "record_type": "RETRACTION"},
        {"record_id": "r3", "usage_quantity": 8.0, "record_type": "RESTATEMENT"},
        {"record_id": "r4", "usage_quantity": 1.0, "cluster_id": "c-2"},
    )
    prices = dbu_prices(
        {"cloud": "AZURE", "sku_name": "PREMIUM_JOBS_COMPUTE", "workload": "jobs", "list_price": 0.6}
        | {"contract_price": 0.55, "effective_price": 0.5}
    )
    return focus_rows(rows, bill, prices, cloud="azure")


def test_rows_of_a_corrected_charge_split_into_original_and_correction_parts():
    focus = _fixture()
    assert focus.height == 5  # c-1: run + idle, each ORIGINAL part and Correction part; c-2: one row
    c1 = focus.filter(pl.col("ResourceId") == "c-1")
    original = c1.filter(pl.col("ChargeClass").is_null()).sort("x_Consumer")
    correction = c1.filter(pl.col("ChargeClass") == "Correction").sort("x_Consumer")
    # ORIGINAL share of the net quantity: 10 / 8 = 1.25; corrections: (-10 + 8) / 8 = -0.25.
    # idle $1.00 → 1.25 and -0.25; run $3.00 → 3.75 and -0.75.
    assert original["x_Consumer"].to_list() == ["idle", "run"]
    assert original["BilledCost"].to_list() == pytest.approx([1.25, 3.75])
    assert correction["BilledCost"].to_list() == pytest.approx([-0.25, -0.75])
    # The ORIGINAL records: 10 DBU × $0.50 = $5.00; the corrections: -2 DBU × $0.50 = -$1.00; the charge $4.00.
    assert original["BilledCost"].sum() == pytest.approx(5.0)
    assert correction["BilledCost"].sum() == pytest.approx(-1.0)
    assert c1["BilledCost"].sum() == pytest.approx(4.0)
    # Run: 6 DBU × 1.25 = 7.5 DBU; list 7.5 × $0.60 = $4.50, contract 7.5 × $0.55 = $4.125.
    run = original.filter(pl.col("x_Consumer") == "run").row(0, named=True)
    assert (run["PricingQuantity"], run["ConsumedQuantity"]) == pytest.approx((7.5, 7.5))
    assert (run["ListCost"], run["ContractedCost"], run["EffectiveCost"]) == pytest.approx((4.5, 4.125, 3.75))
    assert run["AllocatedResourceId"] == "run:1/task:11" and run["AllocatedMethodId"] == METHOD_SHARE
    assert json.loads(run["Tags"]) == {"team": "data"}
    assert (run["ChargePeriodStart"], run["ChargePeriodEnd"]) == (
        dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 5, 11, tzinfo=dt.UTC),
    )
    assert (run["BillingPeriodStart"], run["BillingPeriodEnd"]) == (
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
    )
    # Azure Databricks is invoiced by Microsoft; the bill names the account.
    assert (run["InvoiceIssuerName"], run["HostProviderName"], run["ServiceProviderName"]) == (
        "Microsoft",
        "Microsoft",
        "Databricks",
    )
    assert (run["BillingAccountId"], run["SubAccountId"], run["SkuId"]) == ("acct-1", "ws-1", "PREMIUM_JOBS_COMPUTE")


def test_allocated_rows_sum_to_their_origin_charge_and_name_their_method():
    focus = _fixture()
    # The origin charges: c-1 10:00 = $4.00 (8 DBU × $0.50), c-2 10:00 = $0.50 (1 DBU × $0.50).
    sums = dict(focus.group_by("ResourceId").agg(pl.col("BilledCost").sum()).iter_rows())
    assert sums == pytest.approx({"c-1": 4.0, "c-2": 0.5})
    # Each part's AllocatedRatio values sum to 1: c-1 run $3 / $4 = 0.75, idle $1 / $4 = 0.25; c-2 1.0.
    ratio = pl.col("AllocatedMethodDetails").str.json_path_match("$.Elements[0].AllocatedRatio").cast(pl.Float64)
    per_part = focus.group_by(*ORIGIN, "ChargeClass").agg(ratio.sum().alias("r"))
    assert per_part["r"].to_list() == pytest.approx([1.0, 1.0, 1.0])
    assert focus["AllocatedMethodId"].null_count() == 0
    unattributed = focus.filter(pl.col("x_Consumer") == "unattributed").row(0, named=True)
    # The unallocated portion of a charge: method named, no allocated resource.
    assert unattributed["AllocatedMethodId"] == METHOD_UNATTRIBUTED and unattributed["AllocatedResourceId"] is None
    assert focus.filter(pl.col("x_Consumer") == "idle")["AllocatedResourceId"].unique().to_list() == ["c-1/idle"]


def test_a_run_only_the_bill_names_is_allocated_by_the_bill_metadata():
    # A serverless job run: no cluster, no estimate; the bill's job_run_id hands it the whole $0.70.
    rows = attributed(
        {"resource_type": "serverless", "resource_id": "3", "run_id": 3, "job_id": 300, "billed_dbus": 1.0}
        | {"billed_cost_usd": 0.7, "reason": "serverless", "sku_name": "PREMIUM_JOBS_SERVERLESS_COMPUTE"}
    )
    bill = billing({"record_id": "s1", "usage_quantity": 1.0, "cluster_id": None, "job_id": 300, "job_run_id": 3})
    prices = dbu_prices(
        {"cloud": "AWS", "sku_name": "PREMIUM_JOBS_SERVERLESS_COMPUTE", "workload": "jobs", "price": 0.7}
    )
    row = focus_rows(rows, bill, prices, cloud="AWS").row(0, named=True)
    assert (row["AllocatedMethodId"], row["AllocatedResourceId"]) == (METHOD_BILL, "run:3")
    assert json.loads(row["AllocatedMethodDetails"]) == {
        "Elements": [{"AllocatedRatio": 1.0, "UsageUnit": "DBU", "UsageQuantity": 1.0}]
    }
    assert (row["ResourceType"], row["ServiceName"], row["BilledCost"]) == (
        "Serverless Compute",
        "Databricks Serverless Compute",
        0.7,
    )
    # On AWS, Databricks invoices its own usage; the VMs are Amazon's.
    assert (row["InvoiceIssuerName"], row["HostProviderName"]) == ("Databricks", "Amazon Web Services")


def test_an_unpriced_charge_is_left_out_and_counted_never_zero():
    focus = _fixture()
    assert "c-3" not in focus["ResourceId"].to_list()
    rows = attributed({"consumer": "unattributed", "billed_cost_usd": None, "reason": "unpriced"})
    assert unpriced_rows(rows) == 1


def test_the_export_follows_the_focus_column_rules():
    focus, spec = _fixture(), rules()
    assert spec.version == "1.3"
    assert violations(focus) == []
    assert focus.columns == spec.names
    for column in spec.columns:
        values = focus[column["name"]]
        assert values.dtype == POLARS_TYPES[column["type"]], column["name"]
        if not column["nullable"]:
            assert values.null_count() == 0, column["name"]
        if "allowed" in column:
            assert set(values.drop_nulls()) <= set(column["allowed"]), column["name"]
    # The five split cost allocation columns FOCUS 1.3 introduced, and custom columns only with "x_".
    allocated = {"AllocatedMethodId", "AllocatedMethodDetails", "AllocatedResourceId", "AllocatedResourceName"}
    assert allocated | {"AllocatedTags"} == {n for n in spec.names if n.startswith("Allocated")}
    standard = [n for n in spec.names if not n.startswith("x_")]
    assert all(n[0].isupper() for n in standard)


def test_the_rules_catch_a_broken_export():
    focus = _fixture()
    broken = focus.with_columns(
        pl.lit(None, pl.Float64).alias("BilledCost"),
        pl.lit("Refund").alias("ChargeCategory"),
        pl.col("ChargePeriodStart").dt.replace_time_zone(None),
        pl.lit("not json").alias("Tags"),
    ).drop("ServiceName")
    problems = violations(broken)
    assert len(problems) == 5, problems  # one per break
    assert any(p.startswith("BilledCost: 5 null") for p in problems)
    assert any(p.startswith("ChargeCategory: value(s) ['Refund']") for p in problems)
    assert any(p.startswith("ChargePeriodStart: type") for p in problems)
    assert any(p.startswith("Tags:") for p in problems)
    assert any("missing ['ServiceName']" in p for p in problems)


def test_files_are_written_whole_and_the_same_day_twice_gives_the_same_bytes(tmp_path):
    focus = _fixture()
    parquet, csv = write_day(focus, tmp_path / "focus", DAY)
    first = (parquet.read_bytes(), csv.read_bytes())
    write_day(focus, tmp_path / "focus", DAY)
    assert (parquet.read_bytes(), csv.read_bytes()) == first
    assert sorted(p.name for p in (tmp_path / "focus").iterdir()) == [
        "focus_2026-01-05.csv",
        "focus_2026-01-05.parquet",
    ]
    assert pl.read_parquet(parquet).equals(focus)
    header, row = csv.read_text().splitlines()[:2]
    assert header.split(",")[:2] == ["AllocatedMethodDetails", "AllocatedMethodId"]
    assert "2026-01-05T10:00:00Z" in row  # FOCUS date-time format: ISO 8601 UTC with Z


def test_the_asset_writes_a_conforming_file_pair_per_day_only_when_configured(tmp_path):
    database, directory = tmp_path / "ledger.duckdb", tmp_path / "focus"
    assert "export/focus" not in _keys(build_defs(sim_environ(database)))
    defs = build_defs(sim_environ(database, COST_ASSETS_FOCUS_EXPORT="true", COST_ASSETS_FOCUS_DIR=str(directory)))
    assert "export/focus" in _keys(defs)
    assert run_daily(defs, "2026-01-05", "2026-01-06").success
    files = sorted(p.name for p in directory.iterdir())
    assert files == [f"focus_2026-01-0{d}.{ext}" for d in (5, 6) for ext in ("csv", "parquet")]
    first = {name: (directory / name).read_bytes() for name in files}
    day = pl.read_parquet(directory / "focus_2026-01-05.parquet")
    assert violations(day) == []
    ledger = read_table(str(database), "mart.attributed_costs").filter(pl.col("usage_date") == DAY)
    assert day["BilledCost"].sum() == pytest.approx(ledger["billed_cost_usd"].sum(), abs=1e-6)
    # Each origin charge of the bill (mart/reconciliation: resource × hour × SKU) = Σ its allocated rows.
    bill = read_table(str(database), "mart.reconciliation").filter(
        pl.col("usage_date") == DAY, pl.col("billed_cost_usd").is_not_null(), pl.col("billing_records") > 0
    )
    charges = day.group_by(ORIGIN).agg(pl.col("BilledCost").sum(), pl.len().alias("allocated_rows"))
    joined = bill.join(
        charges,
        left_on=["workspace_id", "resource_id", "sku_name", pl.col("hour_start").dt.replace_time_zone("UTC")],
        right_on=ORIGIN,
        how="left",
    )
    assert joined["BilledCost"].null_count() == 0 and joined.height == charges.height
    assert (joined["BilledCost"] - joined["billed_cost_usd"]).abs().max() < 1e-6
    assert joined["allocated_rows"].max() > 1  # some charge is split over several consumers
    assert run_daily(defs, "2026-01-05", "2026-01-06").success  # idempotent: the same bytes again
    assert {name: (directory / name).read_bytes() for name in files} == first


def _keys(defs) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
