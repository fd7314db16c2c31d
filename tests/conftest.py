"""Shared fixtures: a tiny simulated world in a temporary DuckDB file, and helpers to run the graph."""

import datetime as dt
from pathlib import Path
from typing import NoReturn

import dagster as dg
import polars as pl
import pytest
import typer

from cost_assets.definitions import build_defs
from cost_assets.resources.warehouse import read_table

WORLD_START = dt.date(2026, 1, 1)
RAW_TABLES = [
    "raw.job_runs",
    "raw.jobs",
    "raw.clusters",
    "raw.cluster_events",
    "raw.billing_usage",
    "raw.serving_usage",
    "raw.serving_entities",
]  # not raw.ai_gateway_usage: the simulated workspace has no AI Gateway usage (always empty)
MART_TABLES = [
    "mart.cluster_segments",
    "mart.estimated_costs",
    "mart.run_costs",
    "mart.reconciliation",
    "mart.attributed_costs",
    "mart.serving_costs",
    "mart.cost_by_scope",
]
# The key of every raw table within a partition (sorting by it makes frames comparable).
TABLE_KEYS = {
    "raw.job_runs": ["usage_date", "task_run_id"],
    "raw.jobs": ["usage_date", "job_id"],
    "raw.clusters": ["usage_date", "cluster_id"],
    "raw.cluster_events": ["usage_date", "cluster_id", "timestamp", "event_type"],
    "raw.billing_usage": ["usage_date", "record_id"],
    "raw.serving_usage": ["usage_date", "databricks_request_id"],
    "raw.serving_entities": ["usage_date", "served_entity_id"],
    "raw.ai_gateway_usage": ["usage_date", "request_id"],
}


def sim_environ(database: Path, **extra: str) -> dict[str, str]:
    """The environment of a small, fixed simulated world (scale tiny; tests use the days from 2026-01-01)."""
    return {"COST_ASSETS_DUCKDB": str(database), "COST_ASSETS_SIM_SCALE": "tiny", **extra}


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture
def defs(database: Path) -> dg.Definitions:
    return build_defs(sim_environ(database))


@pytest.fixture
def in_process_leave(monkeypatch: pytest.MonkeyPatch) -> None:
    """`cost-assets estimate` leaves through ``os._exit`` (cli_common.leave), which would end pytest too: for
    in-process CliRunner tests it raises typer.Exit with the same code. The real exit is tested as a subprocess
    (tests/test_cli.py)."""

    def leave(code: int) -> NoReturn:
        raise typer.Exit(code)

    monkeypatch.setattr("cost_assets.cli.leave", leave)


# The end-to-end tier (marker ``e2e``): every test of these modules runs Dagster jobs, starts an HTTP server
# (the mock workspace or a fake price API on 127.0.0.1), a subprocess, PostgreSQL or a browser. The core tier
# is everything else, in-process and in seconds: `make test-fast` (pytest -m "not e2e"); `make test` runs both.
# A module joins the list when any of its tests does one of those things; a single test elsewhere can also be
# marked ``@pytest.mark.e2e`` itself. Tests marked ``postgres`` or ``browser`` are e2e wherever they are.
E2E_MODULES = frozenset(
    {
        "test_alerts",
        "test_anomaly_asset",
        "test_anomaly_sensor",
        "test_automation",
        "test_azure_prices",
        "test_benchmarks",
        "test_billing_sources",
        "test_budget_sensor",
        "test_budgets",
        "test_cli",
        "test_cloud_assets",
        "test_cloud_sim_pipeline",
        "test_cost_assets",
        "test_delta",
        "test_export_focus",
        "test_export_observability",
        "test_fetch",
        "test_instrument",
        "test_serving_sources",
        "test_serving_entities_pipeline",
        "test_late_billing",
        "test_live_contract",
        "test_live_faults",
        "test_metrics",
        "test_mock_faults",
        "test_mock_server",
        "test_partition_metadata",
        "test_pushdown",
        "test_postgres_instance",
        "test_report_cli",
        "test_raw_assets",
        "test_settings",
        "test_shared_workspace_ids",
        "test_sim_calendar",
        "test_trust",
        "test_ui_browser",
        "test_warehouse",
    }
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the marks must be on the items by then
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem in E2E_MODULES or item.get_closest_marker("postgres") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.e2e)


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_daily(defs: dg.Definitions, first: str, last: str | None = None, **kwargs) -> dg.ExecuteInProcessResult:
    """One run of the daily job (prices, raw tables, marts) over [first, last] (a single partition when
    ``last`` is omitted)."""
    job = defs.resolve_job_def("daily_pipeline")
    if last is None:
        return job.execute_in_process(
            partition_key=first, instance=dg.DagsterInstance.ephemeral(), run_config=QUIET, **kwargs
        )
    return job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config=QUIET,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        **kwargs,
    )


def table(database: Path, name: str) -> pl.DataFrame:
    """A whole table, sorted by its key so two runs compare equal."""
    return read_table(str(database), name).sort(TABLE_KEYS.get(name, []) or pl.all())
