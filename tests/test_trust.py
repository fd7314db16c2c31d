"""Trustworthy daily runs, end to end over real HTTP: what live workspaces do, injected by the mock server.

Each test runs the project's own definitions (``build_defs`` with ``DATABRICKS_HOST`` pointing at the mock
on 127.0.0.1) and asserts the user's message and that stored rows — of the same day and of other days —
are intact: row counts and money per table and day, before vs after.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from cost_assets import guard
from cost_assets.definitions import build_defs
from cost_assets.mock_server import MockOptions, MockServer
from cost_assets.resources.warehouse import read_table
from cost_assets.simulation import views
from cost_assets.simulation.world import WorldConfig
from tests.conftest import MART_TABLES, RAW_TABLES, run_daily

CFG = WorldConfig(seed=5, scale="tiny", start=dt.date(2026, 1, 1), days=4)
D1, D2 = dt.date(2026, 1, 2), dt.date(2026, 1, 3)
TOKEN = "dapi-mock-token"
WAREHOUSE = "wh-trust"
# The money column summed per table and day (tables not listed: rows only).
MONEY = {
    "raw.billing_usage": "usage_quantity",
    "mart.run_costs": "total_cost_usd",
    "mart.attributed_costs": "billed_cost_usd",
    "mart.reconciliation": "billed_dbus",
}


@pytest.fixture(autouse=True)
def token(monkeypatch):
    """Secrets reach the resources through dg.EnvVar, read from the process environment at run time."""
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)


def live_defs(server: MockServer, db: Path, **extra: str) -> dg.Definitions:
    environ = {
        "DATABRICKS_HOST": server.url,
        "DATABRICKS_TOKEN": TOKEN,
        "DATABRICKS_WAREHOUSE_ID": WAREHOUSE,
        "DATABRICKS_RATE_LIMIT": "0",
        "COST_ASSETS_DUCKDB": str(db),
        **extra,
    }
    return build_defs({k: v for k, v in environ.items() if v is not None})


def run(
    options: MockOptions, db: Path, first: dt.date, last: dt.date | None = None, tags: dict | None = None, **extra: str
) -> dg.ExecuteInProcessResult:
    with MockServer(options) as server:
        defs = live_defs(server, db, **extra)
        if tags:
            return run_daily(defs, first.isoformat(), raise_on_error=False, tags=tags)
        return run_daily(defs, first.isoformat(), last and last.isoformat(), raise_on_error=False)


def snapshot(db: Path) -> dict[tuple[str, dt.date], tuple[int, float]]:
    """Rows and money per (table, day) of every daily table."""
    out = {}
    for name in RAW_TABLES + MART_TABLES:
        frame = read_table(str(db), name)
        money = pl.col(MONEY[name]).fill_null(0).sum() if name in MONEY else pl.lit(0.0)
        for day, rows, total in frame.group_by("usage_date").agg(pl.len(), money.alias("m")).rows():
            out[name, day] = (rows, round(total, 6))
    return out


def failure(result: dg.ExecuteInProcessResult) -> str:
    error, parts = result.get_step_failure_events()[0].event_specific_data.error, []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)


def check(result: dg.ExecuteInProcessResult, key: str, name: str):
    found = [
        e for e in result.get_asset_check_evaluations() if e.asset_key.to_user_string() == key and e.check_name == name
    ]
    assert found, f"no {name} check on {key}"
    return found[-1]


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key)
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.fixture
def stored(tmp_path) -> Path:
    """Two days materialized from a healthy workspace."""
    db = tmp_path / "ledger.duckdb"
    assert run(MockOptions(world=CFG), db, D1, D2).success
    return db


def test_an_empty_bill_keeps_the_stored_day_and_fails_naming_it(stored):
    before = snapshot(stored)
    rows, dbus = before["raw.billing_usage", D2]
    assert rows > 0
    result = run(MockOptions(world=CFG, empty_bill_days=(D2.isoformat(),)), stored, D1, D2)
    assert not result.success
    message = failure(result)
    assert f"system.billing.usage (SQL warehouse {WAREHOUSE})" in message
    assert f"kept: {D2}" in message and f"written with the new rows: {D1}" in message
    assert f"raw.billing_usage {D2}: stored {rows:,} rows, new 0 (net {dbus:,.4f} DBUs stored" in message
    assert guard.ACCEPT_TAG in message
    # The bill of D2 and everything downstream of it are as they were; D1 was rewritten with the same bill.
    assert snapshot(stored) == before
    assert "mart/attributed_costs" not in materialized(result)


def test_a_single_day_refused_writes_nothing(stored):
    before = snapshot(stored)
    result = run(MockOptions(world=CFG, empty_bill_days=(D2.isoformat(),)), stored, D2)
    assert not result.success
    assert "nothing was written" in failure(result)
    assert "raw/billing_usage" not in materialized(result)
    assert snapshot(stored) == before


def test_the_override_tag_accepts_the_smaller_bill_and_warns_that_the_day_has_none(stored):
    before = snapshot(stored)
    result = run(MockOptions(world=CFG, empty_bill_days=(D2.isoformat(),)), stored, D2, tags={guard.ACCEPT_TAG: "true"})
    assert result.success
    after = snapshot(stored)
    assert ("raw.billing_usage", D2) not in after  # the empty bill was accepted
    assert after["raw.billing_usage", D1] == before["raw.billing_usage", D1]  # another day is untouched
    present = check(result, "raw/billing_usage", "bill_present")
    assert not present.passed and present.severity == dg.AssetCheckSeverity.WARN
    assert f"no bill for {D2} from system.billing.usage" in present.description and "12–48 h" in present.description


@pytest.mark.parametrize(
    ("table", "retention"),
    [("raw.cluster_events", {"events_retention_days": 30}), ("raw.job_runs", {"runs_retention_days": 30})],
)
def test_a_backfill_past_the_apis_retention_keeps_the_stored_rows(stored, table, retention):
    before = snapshot(stored)
    # Forty days later, with events (or runs) kept 30 days: everything of D1 (and its look-back) is gone.
    later = dt.datetime(2026, 2, 11, tzinfo=dt.UTC)
    result = run(MockOptions(world=CFG, now=later, **retention), stored, D1)
    assert not result.success
    message = failure(result)
    rows = before[table, D1][0]
    assert f"{table} {D1}: stored {rows:,} rows, new 0" in message
    assert "the Jobs and Clusters APIs" in message and "nothing was written" in message
    assert snapshot(stored) == before


def test_every_raw_asset_that_calls_an_api_records_its_calls(tmp_path):
    result = run(MockOptions(world=CFG), tmp_path / "calls.duckdb", D1)
    assert result.success
    for key in ("raw/job_runs", "raw/billing_usage", "raw/serving_usage"):
        meta = metadata(result, key)
        assert meta["api/calls"] > 0 and "api/retries" in meta and "api/throttled_s" in meta, key
    assert metadata(result, "raw/billing_usage")["api/calls/api/2.0/sql/statements"] >= 1


@pytest.mark.parametrize("error", ["404", "400"])
def test_a_purged_cluster_is_rebuilt_from_its_runs_spec_and_money_is_conserved(tmp_path, error):
    healthy, purged = tmp_path / "healthy.duckdb", tmp_path / "purged.duckdb"
    assert run(MockOptions(world=CFG), healthy, D1).success
    runs = read_table(str(healthy), "raw.job_runs").filter(pl.col("compute_type") == "job_cluster")
    cluster = runs["cluster_id"].drop_nulls().sort()[0]
    result = run(MockOptions(world=CFG, purged_clusters=(cluster,), purged_cluster_error=error), purged, D1)
    assert result.success
    assert metadata(result, "raw/clusters")["clusters_not_found"] == 1
    warn = check(result, "raw/clusters", "sources_complete")
    assert not warn.passed and f"cluster {cluster} not found" in warn.description
    got = read_table(str(purged), "raw.clusters").filter(pl.col("cluster_id") == cluster).row(0, named=True)
    true = read_table(str(healthy), "raw.clusters").filter(pl.col("cluster_id") == cluster).row(0, named=True)
    assert got["reason"] == "cluster_not_found"
    for column in ("node_type_id", "driver_node_type_id", "num_workers", "autoscale_min_workers", "availability"):
        assert got[column] == true[column], column
    # Its events outlive it, so the estimate is the same as with clusters/get; the bill is conserved.
    cost = {
        db: read_table(str(db), "mart.run_costs").filter(pl.col("cluster_id") == cluster)["total_cost_usd"].sum()
        for db in (healthy, purged)
    }
    assert cost[purged] == pytest.approx(cost[healthy]) and cost[purged] > 0
    assert check(result, "mart/attributed_costs", "conserves_the_bill").passed


def test_a_missing_serving_schema_warns_and_keeps_the_stored_requests(stored):
    before = snapshot(stored)
    result = run(MockOptions(world=CFG, missing_system_schemas=("system.serving",)), stored, D1)
    assert result.success
    warn = check(result, "raw/serving_usage", "sources_complete")
    assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN
    assert "system.serving.endpoint_usage" in warn.description and "TABLE_OR_VIEW_NOT_FOUND" in warn.description
    assert {"mart/serving_costs", "mart/cost_by_scope"} <= materialized(result)
    assert snapshot(stored) == before  # the day's requests (and so its serving costs) are kept


def test_pools_and_a_job_the_principal_may_not_read_warn_and_the_day_succeeds(tmp_path):
    # A small world: its clusters draw from pools (the tiny one's do not on these days).
    world = WorldConfig(seed=5, scale="small", start=dt.date(2026, 1, 1), days=4)
    db = tmp_path / "ledger.duckdb"
    assert run(MockOptions(world=world), db, D2).success
    assert read_table(str(db), "raw.clusters")["instance_pool_id"].drop_nulls().len() > 0
    job = read_table(str(db), "raw.job_runs")["job_id"].sort()[0]
    before = snapshot(db)
    result = run(MockOptions(world=world, forbidden_pools=True, forbidden_jobs=(job,)), db, D1)
    assert result.success
    after = snapshot(db)
    assert {k: v for k, v in after.items() if k[1] == D2} == before  # the stored day is untouched
    clusters, jobs = check(result, "raw/clusters", "sources_complete"), check(result, "raw/jobs", "sources_complete")
    assert not clusters.passed and "instance-pools/get" in clusters.description and "403" in clusters.description
    assert not jobs.passed and f"job {job} not readable" in jobs.description
    stub = read_table(str(db), "raw.jobs").filter(job_id=job, usage_date=D1).row(0, named=True)
    assert stub["job_name"] is None and stub["tags"] == "{}"
    assert metadata(result, "raw/clusters")["pools_not_permitted"] >= 1
    # instance-pools/list refused too (optional source): a WARN of its own, D1 has no pools, D2's stay stored
    pools = check(result, "raw/instance_pools", "sources_complete")
    assert not pools.passed and pools.severity == dg.AssetCheckSeverity.WARN
    assert "instance-pools/list" in pools.description and "403" in pools.description
    stored_pools = read_table(str(db), "raw.instance_pools")
    assert stored_pools.filter(usage_date=D1).height == 0 and stored_pools.filter(usage_date=D2).height > 0
    assert check(result, "mart/attributed_costs", "conserves_the_bill").passed


def test_a_legacy_workspace_without_a_warehouse_runs_the_whole_pipeline(tmp_path):
    """The original calculator's setting: REST APIs and the legacy CSV bill, no SQL warehouse, no system tables."""
    bill = tmp_path / "usage.csv"
    bill.write_text(views.legacy_csv(CFG, D1, D1))
    db = tmp_path / "legacy.duckdb"
    result = run(MockOptions(world=CFG), db, D1, DATABRICKS_WAREHOUSE_ID=None, COST_ASSETS_BILLING_SOURCE=f"csv:{bill}")
    assert result.success
    warn = check(result, "raw/serving_usage", "sources_complete")
    assert not warn.passed and "DATABRICKS_WAREHOUSE_ID is not set" in warn.description
    assert {"mart/serving_costs", "mart/cost_by_scope", "mart/attributed_costs"} <= materialized(result)
    assert read_table(str(db), "raw.billing_usage").height > 0
