"""Simulation only: ``sim/anomaly_detection``, the alerts of ``mart/cost_anomalies`` against the anomalies
the simulated world planted (``simulation/planted.py``): which planted anomaly each alert (and its
incident) found, which were missed, the incidents none explains, and the detector's precision (by
incident: what the channel gets) and recall.

``build_defs()`` registers it only for the simulated workspace (like ``sim/run_cost_accuracy``): the
production assets never import the simulator.
"""

import dagster as dg
import polars as pl

from cost_assets import schemas
from cost_assets.assets.anomalies import COST_ANOMALIES
from cost_assets.assets.policies import DAILY_ASSET, PARTITIONED
from cost_assets.checks import CONTRACT_DESCRIPTION, add_daily_metadata, contract_result
from cost_assets.partitions import window_days
from cost_assets.resources.simulated import SimulatedWorkspace
from cost_assets.simulation import planted

ANOMALY_DETECTION = dg.AssetKey(["sim", "anomaly_detection"])
# Partition D judges the alerts of the 35 partitions up to D: what `make run DAYS=35` materializes.
WINDOW_DAYS = 35
# Incidents (what the channel gets: one per spend change, however many series it moved) no planted
# anomaly explains.
MAX_OTHER = 2
WINDOW = dg.TimeWindowPartitionMapping(start_offset=-(WINDOW_DAYS - 1), end_offset=0)
SCHEMA = {
    "usage_date": pl.Date,
    "planted_id": pl.String,
    "kind": pl.String,
    "anomaly_id": pl.String,
    "monitor": pl.String,
    "value": pl.String,
    "first_alert": pl.Date,
    "incident": pl.String,
    "found": pl.Boolean,
}


def day_rows(day, anomalies: pl.DataFrame, truth: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    """Partition ``day``'s rows and its ``truth/*`` metadata, from the mart rows of its window."""
    window = anomalies.filter(pl.col("usage_date") <= day)
    # Each scored day as its newest partition has it (docs/anomalies.md).
    newest = window.filter(pl.col("usage_date") == pl.col("usage_date").max().over("scored_date"))
    scored = newest["scored_date"].unique().sort().to_list()
    result = planted.detection(newest, truth, scored)
    alerts = result["alerts"].with_columns(pl.col("planted_id").is_not_null().alias("found"))
    missed = truth.filter(pl.col("planted_id").is_in(result["planted"]) & ~pl.col("planted_id").is_in(result["found"]))
    rows = pl.concat(
        [alerts, missed.select("planted_id", "kind", pl.lit(False).alias("found"))], how="diagonal_relaxed"
    ).with_columns(pl.lit(day).alias("usage_date"))
    other = alerts.filter(~pl.col("found")).height
    meta = {
        "truth/planted": len(result["planted"]),
        "truth/found": len(result["found"]),
        "truth/incidents": len(result["incidents"]),
        "truth/other_incidents": len(result["other_incidents"]),
        "truth/alerts": alerts.height,
        "truth/other_alerts": other,
        "truth/precision": result["precision"],
        "truth/recall": result["recall"],
        "truth/missed": ", ".join(missed["planted_id"].to_list()) or "none",
    }
    return rows.select(list(SCHEMA)).cast(SCHEMA), {k: v for k, v in meta.items() if v is not None}


@dg.asset(
    key=ANOMALY_DETECTION,
    group_name="sim",
    kinds={"polars", "duckdb"},
    metadata=PARTITIONED,
    ins={"anomalies": dg.AssetIn(COST_ANOMALIES, partition_mapping=WINDOW)},
    check_specs=[
        dg.AssetCheckSpec("contract", asset=ANOMALY_DETECTION, blocking=True, description=CONTRACT_DESCRIPTION),
        dg.AssetCheckSpec(
            "planted_found",
            asset=ANOMALY_DETECTION,
            description=f"every planted anomaly the detector could score found, at most {MAX_OTHER} other incidents",
        ),
    ],
    pool="duckdb_writer",
    **DAILY_ASSET,
)
def anomaly_detection(context: dg.AssetExecutionContext, workspace: SimulatedWorkspace, anomalies: pl.DataFrame):
    """For each day D: the alerts (episodes) of ``mart/cost_anomalies`` over the 35 days up to D matched
    against the planted anomalies — found (with the alert that found it), missed, other alerts — and the
    detector's precision (by incident) and recall (``truth/*`` metadata)."""
    days = window_days(context.partition_time_window)
    scored = anomalies["scored_date"].unique().sort().to_list()
    truth = workspace.planted_anomalies(scored) if scored else planted.planted_frame([])
    per_day = {day: day_rows(day, anomalies, truth) for day in days}
    frame = pl.concat([rows for rows, _ in per_day.values()])
    add_daily_metadata(context, frame, days, lambda _f, day: per_day[day][1])
    yield dg.Output(frame)
    yield contract_result(schemas.AnomalyDetection, frame, ANOMALY_DETECTION)
    meta = per_day[days[-1]][1]
    passed = meta["truth/found"] == meta["truth/planted"] and meta["truth/other_incidents"] <= MAX_OTHER
    yield dg.AssetCheckResult(
        check_name="planted_found",
        asset_key=ANOMALY_DETECTION,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{meta['truth/found']} of {meta['truth/planted']} planted anomalies found, "
        f"{meta['truth/incidents']} incident(s), {meta['truth/other_incidents']} explained by none "
        f"({meta['truth/other_alerts']} of {meta['truth/alerts']} series alerts)",
        metadata=meta,
    )
