"""A hand-written mart.cost_anomalies table in a DuckDB file, for the feedback CLI and the alert sensor."""

import datetime as dt
import json
from pathlib import Path

import duckdb
import polars as pl

from cost_assets.costing.anomaly_mart import MART_SCHEMA

SQL_TYPES = {pl.Date: "DATE", pl.String: "VARCHAR", pl.Float64: "DOUBLE", pl.Boolean: "BOOLEAN", pl.Int32: "INTEGER"}


def mart_row(
    partition: dt.date,
    scored: dt.date,
    monitor: str,
    value: str,
    *,
    actual: float,
    expected: float,
    anomaly_id: str | None = None,
    opened_on: dt.date | None = None,
    status: str | None = None,
    alertable: bool = False,
    state: str = "normal",
    contributors: list[tuple[str, str, float]] = (),
    feedback: str | None = None,
    incident_id: str | None = None,
) -> dict:
    """One row; ``contributors`` as (dimension, value, delta $)."""
    return {
        "usage_date": partition,
        "scored_date": scored,
        "monitor": monitor,
        "value": value,
        "scope": f"{monitor} = {value}",
        "actual_usd": actual,
        "expected_usd": expected,
        "mad_usd": 1.0,
        "lower_usd": expected - 5.0,
        "upper_usd": expected + 5.0,
        "impact_usd": actual - expected,
        "threshold_usd": 50.0,
        "baseline": "weekday",
        "baseline_points": 8,
        "state": state,
        "alertable": alertable,
        "planned": False,
        "unpriced": False,
        "anomaly_id": anomaly_id,
        "opened_on": opened_on,
        "opening_impact_usd": None if opened_on is None else actual - expected,
        "status": status,
        "feedback": feedback,
        "top_contributors": json.dumps([{"dimension": d, "value": v, "delta_usd": x} for d, v, x in contributors])
        if contributors
        else None,
        "incident_id": incident_id,
    }


def write_mart(database: Path, rows: list[dict]) -> None:
    """Replace the partitions of ``rows`` in ``database``'s mart.cost_anomalies (created when missing)."""
    frame = pl.DataFrame(rows, schema=MART_SCHEMA)
    columns = ", ".join(f"{c} {SQL_TYPES[t]}" for c, t in MART_SCHEMA.items())
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS mart")
        con.execute(f"CREATE TABLE IF NOT EXISTS mart.cost_anomalies ({columns})")
        for day in frame["usage_date"].unique():
            con.execute("DELETE FROM mart.cost_anomalies WHERE usage_date = ?", [day])
        placeholders = ", ".join("?" for _ in MART_SCHEMA)
        con.executemany(f"INSERT INTO mart.cost_anomalies VALUES ({placeholders})", frame.rows())
