"""``mart/cost_anomalies``: each monitored series' spend on the last 3 closed days, scored against its own
baseline, grouped into episodes with a stable id (docs/anomalies.md). The scoring is
``costing/anomalies.py``, the rows of a partition ``costing/anomaly_mart.py``; feedback from
``cost-assets anomaly ack|planned`` is read from its SQLite store (``anomaly_feedback.py``)."""

import datetime as dt
import json

import dagster as dg
import polars as pl

from cost_assets import schemas
from cost_assets.anomaly_feedback import FeedbackStore
from cost_assets.assets.policies import MART_ASSET, PARTITIONED
from cost_assets.assets.raw import BILLING_USAGE, CLUSTERS, JOBS
from cost_assets.assets.reconciliation import ATTRIBUTED_COSTS
from cost_assets.assets.reporting import SERVING_COSTS
from cost_assets.checks import CONTRACT_DESCRIPTION, add_daily_metadata, contract_result, markdown_table
from cost_assets.costing import anomalies, anomaly_mart
from cost_assets.costing.closure import closed_days
from cost_assets.partitions import window_days
from cost_assets.resources.warehouse import Ledger

COST_ANOMALIES = dg.AssetKey(["mart", "cost_anomalies"])
TABLE = "mart.cost_anomalies"
# Partition D scores the last 3 closed days ≤ D (usually D−3 … D−1: D closes two days after it ends), each
# against up to 56 days before it; two more days allow for days missing from the bill.
LOOKBACK_DAYS = anomalies.LOOKBACK_DAYS + anomalies.RESCORE_LAST_N + 2
LOOKBACK = dg.TimeWindowPartitionMapping(start_offset=-LOOKBACK_DAYS, end_offset=0)
# The stored partitions read for the episodes still open before the first day of a run (a week covers a
# few missed daily runs; older episodes start afresh).
CARRY_DAYS = 7


class AnomalyDetector(dg.ConfigurableResource):
    """The detector's settings (``COST_ASSETS_ANOMALY_K``, ``_FLOOR_USD``, ``_PCT``) and the feedback store
    (``COST_ASSETS_ALERT_STORE``)."""

    k: float = anomalies.K
    floor_usd: float = anomalies.FLOOR_USD
    pct: float = anomalies.PCT
    feedback_store: str = "data/alerts.sqlite"

    def feedback(self) -> pl.DataFrame:
        return FeedbackStore(self.feedback_store).frame().select(list(anomaly_mart.FEEDBACK_SCHEMA))


def open_table(rows: pl.DataFrame, limit: int = 20) -> str:
    """The open anomalies of a partition's newest scored day as a markdown table (largest impact first)."""
    if rows.is_empty():
        return "_no open anomalies_"
    newest = rows.filter(pl.col("scored_date") == pl.col("scored_date").max())
    open_rows = newest.filter(pl.col("status").is_in(["open", "escalated"])).sort(
        pl.col("impact_usd").abs(), descending=True, nulls_last=True
    )
    if open_rows.is_empty():
        return "_no open anomalies_"
    table = open_rows.select(
        "anomaly_id",
        "scope",
        "status",
        "opened_on",
        pl.col("actual_usd").round(2).alias("actual $"),
        pl.col("expected_usd").round(2).alias("expected $"),
        pl.col("impact_usd").round(2).alias("impact $"),
        "feedback",
        "incident_id",
        pl.col("top_contributors")
        .map_elements(
            lambda text: ", ".join(f"{c['dimension']} {c['value']} {c['delta_usd']:+,.2f}" for c in json.loads(text)),
            return_dtype=pl.String,
        )
        .alias("top contributors"),
    )
    return markdown_table(table, limit)


def day_metadata(frame: pl.DataFrame, _: dt.date) -> dict:
    """Per partition: the days scored, counts by state on the newest of them, alertable series, the
    incidents they form (costing/anomaly_incidents.py) and the open anomalies."""
    newest = frame.filter(pl.col("scored_date") == pl.col("scored_date").max())
    return {
        "scored_days": ", ".join(str(d) for d in frame["scored_date"].unique().sort()) or "none (no closed day)",
        "states": dg.MetadataValue.json(dict(newest.group_by("state").len().sort("state").iter_rows())),
        "alertable": int(newest["alertable"].sum()),
        "incidents": newest["incident_id"].drop_nulls().n_unique(),
        "open_anomalies": newest.filter(pl.col("status").is_in(["open", "escalated"])).height,
        "open_anomalies_table": dg.MetadataValue.md(open_table(frame)),
    }


@dg.asset(
    key=COST_ANOMALIES,
    group_name="mart",
    kinds={"polars", "duckdb"},
    metadata=PARTITIONED,
    ins={
        "attributed": dg.AssetIn(ATTRIBUTED_COSTS, partition_mapping=LOOKBACK),
        "jobs": dg.AssetIn(JOBS, partition_mapping=LOOKBACK),
        "clusters": dg.AssetIn(CLUSTERS, partition_mapping=LOOKBACK),
        "billing": dg.AssetIn(BILLING_USAGE, partition_mapping=LOOKBACK),
        "serving": dg.AssetIn(SERVING_COSTS, partition_mapping=LOOKBACK),
    },
    check_specs=[
        dg.AssetCheckSpec("contract", asset=COST_ANOMALIES, blocking=True, description=CONTRACT_DESCRIPTION),
        dg.AssetCheckSpec(
            "no_alertable_anomaly",
            asset=COST_ANOMALIES,
            description="WARN when a series is out of its band by more than the thresholds on the newest closed day",
        ),
    ],
    pool="duckdb_writer",
    **MART_ASSET,
)
def cost_anomalies(
    context: dg.AssetExecutionContext,
    anomaly_detector: AnomalyDetector,
    ledger: Ledger,
    attributed: pl.DataFrame,
    jobs: pl.DataFrame,
    clusters: pl.DataFrame,
    billing: pl.DataFrame,
    serving: pl.DataFrame,
):
    """As of each day D: every monitored series (account, workspace × SKU family, team, tenant, project,
    cost center, job, user, endpoint × user) on each of the last 3 closed days ≤ D — actual, expected
    (same-weekday or 28-day median), band, impact, state, alertable, its episode (open / escalated /
    closed, stable id), the feedback given on it and the top contributors of an alertable day."""
    days = window_days(context.partition_time_window)
    rows = anomalies.spend_rows(attributed, jobs, clusters, billing, serving).collect()
    spend = anomalies.spend_frame(rows)
    feedback = anomaly_detector.feedback()
    first = days[0]
    previous = ledger.stored_days(TABLE, [first - dt.timedelta(days=CARRY_DAYS), first - dt.timedelta(days=1)])
    frames = []
    for day in days:  # in order: each day's open episodes carry into the next
        closed = closed_days(billing.filter(pl.col("usage_date") <= day))
        out = anomaly_mart.as_of(
            day,
            closed,
            spend,
            rows,
            previous,
            feedback,
            k=anomaly_detector.k,
            floor_usd=anomaly_detector.floor_usd,
            pct=anomaly_detector.pct,
        )
        frames.append(out)
        recent = out if previous is None else pl.concat([previous.select(out.columns).cast(out.schema), out])
        previous = recent.filter(pl.col("usage_date") > day - dt.timedelta(days=CARRY_DAYS))
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=anomaly_mart.MART_SCHEMA)
    add_daily_metadata(context, frame, days, day_metadata)
    yield dg.Output(frame)
    yield contract_result(schemas.CostAnomalies, frame, COST_ANOMALIES)
    last = frame.filter(pl.col("usage_date") == days[-1])
    alerts = last.filter(pl.col("alertable") & (pl.col("scored_date") == pl.col("scored_date").max()))
    yield dg.AssetCheckResult(
        check_name="no_alertable_anomaly",
        asset_key=COST_ANOMALIES,
        passed=alerts.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description="every series within its band or thresholds"
        if not alerts.height
        else "; ".join(sorted(alerts["scope"].to_list())[:10]),
        metadata={"alertable": alerts.height},
    )
