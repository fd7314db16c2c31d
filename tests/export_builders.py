"""Small hand-written ``mart/run_costs`` and ``mart/attributed_costs`` frames for the export tests (typed
by the pandera contracts, so a fixture that breaks a contract fails here, not inside an export)."""

import datetime as dt
from typing import Any

import polars as pl

from cost_assets import schemas

DAY = dt.date(2026, 1, 5)
WS = "ws-1"
HOUR = dt.datetime(2026, 1, 5, 10)


def _frame(model, rows: list[dict[str, Any]], defaults: dict[str, Any]) -> pl.DataFrame:
    schema = {name: column.dtype.type for name, column in model.to_schema().columns.items()}
    frame = pl.DataFrame([{**defaults, **row} for row in rows], schema=schema, orient="row")
    return model.validate(frame)


def run_costs(*rows: dict[str, Any]) -> pl.DataFrame:
    """``mart/run_costs`` rows; a priced run row by default (dbu + vm = total is the caller's to keep)."""
    defaults = {
        "usage_date": DAY,
        "workspace_id": WS,
        "consumer": "run",
        "run_id": None,
        "task_run_id": None,
        "job_id": None,
        "task_key": None,
        "cluster_id": "c-1",
        "sku_name": "PREMIUM_JOBS_COMPUTE",
        "is_shared_cluster": False,
        "runtime_hours": 1.0,
        "dbus": 0.0,
        "dbu_cost_usd": 0.0,
        "vm_cost_usd": 0.0,
        "disk_cost_usd": 0.0,
        "total_cost_usd": 0.0,
        "currency_code": "USD",
        "unpriced": False,
        "team": None,
        "tenant": None,
        "project": None,
        "cost_center": None,
    }
    return _frame(schemas.RunCosts, list(rows), defaults)


def attributed(*rows: dict[str, Any]) -> pl.DataFrame:
    """``mart/attributed_costs`` rows; a billed cluster row at 10:00 by default."""
    defaults = {
        "usage_date": DAY,
        "hour_start": HOUR,
        "workspace_id": WS,
        "resource_type": "cluster",
        "resource_id": "c-1",
        "sku_name": "PREMIUM_JOBS_COMPUTE",
        "consumer": "run",
        "run_id": None,
        "task_run_id": None,
        "job_id": None,
        "billed_dbus": 0.0,
        "billed_cost_usd": 0.0,
        "estimated_cost_usd": 0.0,
        "currency_code": "USD",
        "reason": "ok",
        "team": None,
        "tenant": None,
        "project": None,
        "cost_center": None,
    }
    return _frame(schemas.AttributedCosts, list(rows), defaults)


def billing(*rows: dict[str, Any]) -> pl.DataFrame:
    """``raw/billing_usage`` records of cluster ``c-1`` at 10:00 by default (give record_id, quantity)."""
    defaults = {
        "usage_date": DAY,
        "account_id": "acct-1",
        "workspace_id": WS,
        "record_type": "ORIGINAL",
        "ingestion_date": DAY,
        "cloud": "AZURE",
        "sku_name": "PREMIUM_JOBS_COMPUTE",
        "usage_start_time": HOUR,
        "usage_end_time": HOUR + dt.timedelta(hours=1),
        "usage_unit": "DBU",
        "billing_origin_product": "JOBS",
        "cluster_id": "c-1",
        "warehouse_id": None,
        "endpoint_name": None,
        "instance_pool_id": None,
        "node_type": None,
        "job_id": None,
        "job_run_id": None,
        "is_photon": False,
        "is_serverless": False,
        "custom_tags": "{}",
        "run_as": None,
        "machine_hours": None,
        "billing_source": "simulated",
    }
    return _frame(schemas.BillingUsage, list(rows), defaults)
