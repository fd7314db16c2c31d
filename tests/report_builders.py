"""A tiny stored ledger for the report tests, written out row by row so every expected number can be summed
by hand: two days (D1, D2), two workspaces (w1, w2), three jobs, a shared cluster with idle time, a
warehouse nobody claims, an unpriced bill row, two budgets and one anomaly episode.

Only the columns the reports read are created; ``COLUMNS_OF`` lets a test check that each of them is a
column of the table's pandera contract, so the fixture cannot drift from the real tables.
"""

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl

from cost_assets import schemas

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)

RUN_COSTS = pl.DataFrame(
    [
        # usage_date, workspace, consumer, run, task run, job, cluster, shared, hours, DBUs, DBU $, VM $, disk $,
        # total $ (= DBU $ + VM $ + disk $; disks only on 1002 and the idle row)
        (D1, "w1", "run", 100, 1001, 10, "c-shared", True, 2.0, 4.0, 2.00, 1.00, 0.00, 3.00),
        (D1, "w1", "run", 100, 1002, 10, "c-job", False, 1.0, 2.0, 1.00, 0.50, 0.10, 1.60),
        (D1, "w1", "run", 200, 2001, 20, "c-shared", True, 1.0, 2.0, 1.00, 0.50, 0.00, 1.50),
        (D1, "w1", "idle", None, None, None, "c-shared", True, 0.5, 1.0, 0.50, 0.25, 0.05, 0.80),
        (D2, "w1", "run", 101, 1011, 10, "c-job", False, 3.0, 6.0, 3.00, 1.50, 0.00, 4.50),
        (D2, "w2", "run", 300, 3001, 30, "c-w2", False, 1.0, 2.0, 1.00, 0.40, 0.00, 1.40),
    ],
    schema={
        "usage_date": pl.Date,
        "workspace_id": pl.Utf8,
        "consumer": pl.Utf8,
        "run_id": pl.Int64,
        "task_run_id": pl.Int64,
        "job_id": pl.Int64,
        "cluster_id": pl.Utf8,
        "is_shared_cluster": pl.Boolean,
        "runtime_hours": pl.Float64,
        "dbus": pl.Float64,
        "dbu_cost_usd": pl.Float64,
        "vm_cost_usd": pl.Float64,
        "disk_cost_usd": pl.Float64,
        "total_cost_usd": pl.Float64,
    },
    orient="row",
)

ATTRIBUTED_COSTS = pl.DataFrame(
    [
        # usage_date, workspace, resource type, resource, SKU, consumer, run, task run, job, DBUs, billed $, est $
        (D1, "w1", "cluster", "c-shared", "JOBS", "run", 100, 1001, 10, 4.2, 2.10, 2.00),
        (D1, "w1", "cluster", "c-shared", "JOBS", "run", 200, 2001, 20, 2.1, 1.05, 1.00),
        (D1, "w1", "cluster", "c-shared", "JOBS", "idle", None, None, None, 1.0, 0.50, 0.50),
        (D1, "w1", "cluster", "c-job", "JOBS", "run", 100, 1002, 10, 2.0, 1.00, 1.00),
        (D1, "w1", "warehouse", "wh-1", "SQL", "unattributed", None, None, None, 1.0, 0.70, None),
        (D2, "w1", "cluster", "c-job", "JOBS", "run", 101, 1011, 10, 6.0, 3.30, 3.00),
        (D2, "w2", "cluster", "c-w2", "JOBS", "run", 300, 3001, 30, 2.0, 1.00, 1.00),
    ],
    schema={
        "usage_date": pl.Date,
        "workspace_id": pl.Utf8,
        "resource_type": pl.Utf8,
        "resource_id": pl.Utf8,
        "sku_name": pl.Utf8,
        "consumer": pl.Utf8,
        "run_id": pl.Int64,
        "task_run_id": pl.Int64,
        "job_id": pl.Int64,
        "billed_dbus": pl.Float64,
        "billed_cost_usd": pl.Float64,
        "estimated_cost_usd": pl.Float64,
    },
    orient="row",
)

RECONCILIATION = pl.DataFrame(
    [
        # usage_date, workspace, type, resource, SKU, billed DBUs, billed $, est $, unpriced, within, reason, delta $
        (D1, "w1", "cluster", "c-shared", "JOBS", 7.3, 3.65, 3.50, False, True, "ok", 0.15),
        (D1, "w1", "cluster", "c-job", "JOBS", 2.0, 1.00, 1.00, False, True, "ok", 0.00),
        (D1, "w1", "warehouse", "wh-1", "SQL", 1.0, 0.70, None, False, False, "no_estimate", 0.70),
        (D1, "w1", "cluster", "c-x", "GPU", 0.5, None, None, True, False, "unpriced", None),
        (D2, "w1", "cluster", "c-job", "JOBS", 6.0, 3.30, 3.00, False, True, "ok", 0.30),
        (D2, "w2", "cluster", "c-w2", "JOBS", 2.0, 1.00, 1.00, False, True, "ok", 0.00),
    ],
    schema={
        "usage_date": pl.Date,
        "workspace_id": pl.Utf8,
        "resource_type": pl.Utf8,
        "resource_id": pl.Utf8,
        "sku_name": pl.Utf8,
        "billed_dbus": pl.Float64,
        "billed_cost_usd": pl.Float64,
        "estimated_cost_usd": pl.Float64,
        "unpriced": pl.Boolean,
        "within_tolerance": pl.Boolean,
        "reason": pl.Utf8,
        "delta_usd": pl.Float64,
    },
    orient="row",
)

# Each dimension sums to the day's attributed bill: D1 (w1) $5.35, D2 $3.30 (w1) + $1.00 (w2).
COST_BY_SCOPE = pl.DataFrame(
    [
        # usage_date, workspace, dimension, value, billed DBUs, billed $, est DBU $, run $, idle $, unattributed $
        (D1, "w1", "team", "data-eng", 6.2, 3.10, 3.00, 3.10, 0.0, 0.0),
        (D1, "w1", "team", "ml", 2.1, 1.05, 1.00, 1.05, 0.0, 0.0),
        (D1, "w1", "team", "(untagged)", 2.0, 1.20, 0.50, 0.0, 0.50, 0.70),
        (D2, "w1", "team", "data-eng", 6.0, 3.30, 3.00, 3.30, 0.0, 0.0),
        (D2, "w2", "team", "ml", 2.0, 1.00, 1.00, 1.00, 0.0, 0.0),
        (D1, "w1", "job", "10", 6.2, 3.10, 3.00, 3.10, 0.0, 0.0),
        (D1, "w1", "job", "20", 2.1, 1.05, 1.00, 1.05, 0.0, 0.0),
        (D1, "w1", "job", "(untagged)", 2.0, 1.20, 0.50, 0.0, 0.50, 0.70),
        (D2, "w1", "job", "10", 6.0, 3.30, 3.00, 3.30, 0.0, 0.0),
        (D2, "w2", "job", "30", 2.0, 1.00, 1.00, 1.00, 0.0, 0.0),
        (D1, "w1", "user", "alice", 10.3, 5.35, 4.50, 4.15, 0.50, 0.70),
        (D2, "w1", "user", "alice", 6.0, 3.30, 3.00, 3.30, 0.0, 0.0),
        (D2, "w2", "user", "bob", 2.0, 1.00, 1.00, 1.00, 0.0, 0.0),
    ],
    schema={
        "usage_date": pl.Date,
        "workspace_id": pl.Utf8,
        "dimension": pl.Utf8,
        "value": pl.Utf8,
        "billed_dbus": pl.Float64,
        "billed_cost_usd": pl.Float64,
        "estimated_cost_usd": pl.Float64,
        "run_cost_usd": pl.Float64,
        "idle_cost_usd": pl.Float64,
        "unattributed_cost_usd": pl.Float64,
    },
    orient="row",
)

SERVING_COSTS = pl.DataFrame(
    [
        # usage_date, workspace, tenant, agent, user, endpoint, model, calls, est $, billed $, billed DBUs, delta $
        (D1, "w1", "acme", "bot", "alice", "chat", "llama", 3, 0.30, 0.40, 0.57, 0.10),
        (D2, "w1", "acme", "bot", "alice", "chat", "llama", 2, 0.25, 0.20, 0.29, -0.05),
        (D2, "w2", "globex", "bot", "bob", "chat", "llama", 1, None, 0.70, 1.00, None),
    ],
    schema={
        "usage_date": pl.Date,
        "workspace_id": pl.Utf8,
        "tenant": pl.Utf8,
        "agent": pl.Utf8,
        "user": pl.Utf8,
        "endpoint_name": pl.Utf8,
        "model": pl.Utf8,
        "calls": pl.Int64,
        "estimated_usd": pl.Float64,
        "actual_usd": pl.Float64,
        "actual_dbus": pl.Float64,
        "delta_usd": pl.Float64,
    },
    orient="row",
).with_columns(
    # acme's session s1 runs over midnight; globex sent none. The D2 acme calls went to another provider.
    session=pl.Series(["s1", "s1", "(untagged)"]),
    provider=pl.Series(["databricks", "anthropic", "databricks"]),
)

BUDGET_STATUS = pl.DataFrame(
    [
        # day, budget, amount, spent, billed part, estimated part, forecast, remaining, used %, forecast %, state
        (D1, "eng", 100.0, 3.10, 3.10, 0.0, 96.10, 96.90, 3.1, 96.1, "ok"),
        (D2, "eng", 100.0, 6.40, 3.10, 3.30, 198.40, 93.60, 6.4, 198.4, "forecast_exceeded"),
        (D1, "ml", 10.0, 1.05, 1.05, 0.0, 32.55, 8.95, 10.5, 325.5, "forecast_exceeded"),
    ],
    schema={
        "usage_date": pl.Date,
        "budget": pl.Utf8,
        "amount_usd": pl.Float64,
        "spend_to_date_usd": pl.Float64,
        "billed_to_date_usd": pl.Float64,
        "estimated_to_date_usd": pl.Float64,
        "forecast_usd": pl.Float64,
        "remaining_usd": pl.Float64,
        "pct_used": pl.Float64,
        "forecast_pct": pl.Float64,
        "state": pl.Utf8,
    },
    orient="row",
).with_columns(
    workspace_id=pl.lit(None, pl.Utf8),
    scope=pl.lit("team=x"),
    period=pl.lit("month"),
    period_start=pl.lit(dt.date(2026, 1, 1)),
    period_end=pl.lit(dt.date(2026, 1, 31)),
    cost_basis=pl.lit("dbu"),
    estimated_days=pl.lit(0, pl.Int64),
    missing_days=pl.lit(0, pl.Int64),
)

# One episode on team data-eng scored on D1: open as of D1, escalated as of D2 (the newer view wins); a
# normal day scored on D2 is not an anomaly.
COST_ANOMALIES = pl.DataFrame(
    [
        # as of, scored, monitor, value, state, actual $, expected $, impact $, id, opened, status
        (D1, D1, "team", "data-eng", "high", 3.10, 1.10, 2.00, "a1", D1, "open"),
        (D2, D1, "team", "data-eng", "high", 3.10, 1.10, 2.00, "a1", D1, "escalated"),
        (D2, D2, "team", "data-eng", "normal", 3.30, 3.00, 0.30, None, None, None),
    ],
    schema={
        "usage_date": pl.Date,
        "scored_date": pl.Date,
        "monitor": pl.Utf8,
        "value": pl.Utf8,
        "state": pl.Utf8,
        "actual_usd": pl.Float64,
        "expected_usd": pl.Float64,
        "impact_usd": pl.Float64,
        "anomaly_id": pl.Utf8,
        "opened_on": pl.Date,
        "status": pl.Utf8,
    },
    orient="row",
).with_columns(scope=pl.concat_str("monitor", pl.lit(" = "), "value"), feedback=pl.lit(None, pl.Utf8))

TABLES = {
    "mart.run_costs": (RUN_COSTS, schemas.RunCosts),
    "mart.attributed_costs": (ATTRIBUTED_COSTS, schemas.AttributedCosts),
    "mart.reconciliation": (RECONCILIATION, schemas.Reconciliation),
    "mart.cost_by_scope": (COST_BY_SCOPE, schemas.CostByScope),
    "mart.serving_costs": (SERVING_COSTS, schemas.ServingCosts),
}
OPTIONAL = {
    "mart.budget_status": (BUDGET_STATUS, schemas.BudgetStatus),
    "mart.cost_anomalies": (COST_ANOMALIES, schemas.CostAnomalies),
}
COLUMNS_OF = {name: (frame.columns, model) for name, (frame, model) in {**TABLES, **OPTIONAL}.items()}


def write_ledger(path: Path, optional: bool = True) -> str:
    """Write the tables (and, with ``optional``, budgets and anomalies) to a new DuckDB file; its path."""
    database = str(path)
    with duckdb.connect(database) as con:
        con.execute("CREATE SCHEMA mart")
        for name, (frame, _) in {**TABLES, **(OPTIONAL if optional else {})}.items():
            # Through Parquet: handing duckdb a polars frame directly would need pyarrow.
            parquet = path.parent / f"{name}.parquet"
            frame.write_parquet(parquet)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet(?)", [str(parquet)])
            parquet.unlink()
    return database
