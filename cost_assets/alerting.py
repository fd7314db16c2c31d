"""The alerting sensors. ``budget_sensor``: tell a budget's owner once when its spend or forecast crosses a
threshold.

On each tick the sensor reads the ``mart/budget_status`` materializations recorded since its cursor, takes
the days among them that are recent (the last :data:`RECENT_DAYS` days: a backfill of history does not
flood the channel), and turns every threshold a budget has crossed in its period into an alert whose
identity is (budget, period, actual|forecast, level). ``alerts.deliver`` sends each identity once, through
the sink of ``COST_ASSETS_ALERT_SINK`` / ``COST_ASSETS_ALERT_WEBHOOK`` (the log when none is set), and
keeps what failed for the next tick. On by default once a budgets file is configured.
``run_failure_alert_sensor`` (always on) tells the same channel when a pipeline run fails.

``cost_anomaly_sensor`` (always on) does the same for ``mart/cost_anomalies``: one alert per incident
(the series one spend change moved, grouped by their shared top contributor:
``costing/anomaly_incidents.py``), again only when it escalates, for the last 3 closed days only; an
incident acknowledged with ``cost-assets anomaly ack`` (its id or any member's anomaly id) is not alerted
again unless it escalates after the mark, and a planned one not at all (docs/anomalies.md).
"""

import datetime as dt
import json
import os

import dagster as dg
import polars as pl

from cost_assets import read
from cost_assets.alerts import Alert, deliver, sink_from_environ
from cost_assets.anomaly_feedback import FeedbackStore
from cost_assets.assets.anomalies import COST_ANOMALIES
from cost_assets.assets.budgets import BUDGET_STATUS
from cost_assets.budgets import load
from cost_assets.costing import anomaly_incidents
from cost_assets.costing.anomalies import RESCORE_LAST_N
from cost_assets.costing.closure import CLOSE_AFTER

RECENT_DAYS = 5  # the last 3 closed days plus the (open) days since; a day closes ~2 days after its end
UI_URL = "COST_ASSETS_UI_URL"  # where the Dagster UI is, for the link in each alert

STATUS_ROWS = """
select usage_date, budget, scope, period, period_start, amount_usd, spend_to_date_usd, forecast_usd,
       threshold_crossed_pct, forecast_pct, state, first_crossed_on, estimated_days, channel
from mart.budget_status where usage_date in ({days}) order by budget, usage_date
"""


def _row_alerts(row: dict, forecast_levels: list[float], url: str | None) -> list[Alert]:
    """The alerts one ``mart/budget_status`` row calls for: the highest spend threshold crossed, and the
    highest forecast threshold crossed while the budget is ``forecast_exceeded``."""
    base = f"budget:{row['budget']}:{row['period_start']}"
    facts = [
        ("Period", f"{row['period']} from {row['period_start']}"),
        ("As of", str(row["usage_date"])),
        ("Budget", row["amount_usd"]),
        ("Forecast to the period's end", row["forecast_usd"]),
    ]
    if row["estimated_days"]:
        facts.append(("Days estimated (bill still lagging)", str(row["estimated_days"])))

    def alert(what: str, level: float, title: str, usd: float, severity: str) -> Alert:
        return Alert(
            identity=f"{base}:{what}:{level:g}",
            kind="budget",
            title=f"Budget {row['budget']}: {title}",
            scope=row["scope"],
            actual_usd=usd,
            expected_usd=row["amount_usd"],
            impact_usd=usd - row["amount_usd"],
            details=facts,
            url=url,
            severity=severity,
        )

    out = []
    level = row["threshold_crossed_pct"]
    if level is not None:
        title = f"{level:g} % spent (first on {row['first_crossed_on']})"
        out.append(alert("actual", level, title, row["spend_to_date_usd"], "critical" if level >= 100 else "warning"))
    crossed = [lv for lv in forecast_levels if row["forecast_pct"] >= lv]
    if crossed and row["state"] == "forecast_exceeded":
        title = f"forecast at {row['forecast_pct']:.0f} % of the amount"
        out.append(alert("forecast", max(crossed), title, row["forecast_usd"], "warning"))
    return out


def budget_alerts(status: pl.DataFrame, forecast_levels: dict[str, list[float]], url: str | None) -> list[Alert]:
    """One alert per (budget, period, kind, level) crossed in ``status`` rows (``mart/budget_status``); the
    latest row of a period speaks for it. ``forecast_levels``: each budget's forecast thresholds."""
    alerts = {}
    for row in status.sort("usage_date").iter_rows(named=True):
        for alert in _row_alerts(row, forecast_levels.get(row["budget"], []), url):
            alerts[alert.identity] = alert
    return list(alerts.values())


def build_budget_sensor(database: str, alert_store: str, budgets_path: str) -> dg.SensorDefinition:
    """The sensor for one deployment: its ledger, its alert outbox and its budgets file."""

    @dg.sensor(
        name="budget_sensor",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts once per budget threshold crossed (spend or forecast), for recent days only.",
    )
    def budget_sensor(context: dg.SensorEvaluationContext):
        after = int(context.cursor) if context.cursor else None
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=BUDGET_STATUS, after_storage_id=after), limit=1000, ascending=True
        ).records
        if not records:
            return dg.SkipReason("no new mart/budget_status materialization")
        cutoff = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=RECENT_DAYS)
        days = sorted({r.partition_key for r in records if r.partition_key and r.partition_key >= str(cutoff)})
        cursor = str(max(r.storage_id for r in records))
        if not days:
            context.update_cursor(cursor)
            return dg.SkipReason(f"{len(records)} materialization(s), none of the last {RECENT_DAYS} days")
        status = read.fetch(database, STATUS_ROWS.format(days=", ".join("?" for _ in days)), days)
        levels = {b.name: b.thresholds.forecast for b in load(budgets_path)}
        base = os.environ.get(UI_URL, "http://127.0.0.1:3000").rstrip("/")
        alerts = budget_alerts(status, levels, f"{base}/assets/mart/budget_status")
        report = deliver(alerts, sink_from_environ(os.environ, logger=context.log), alert_store, logger=context.log)
        context.log.info(report.summary())
        context.update_cursor(cursor)
        return dg.SkipReason(f"{len(alerts)} alert(s) considered for {', '.join(days)}: {report.summary()}")

    return budget_sensor


def build_run_failure_sensor(alert_store: str) -> dg.SensorDefinition:
    """Alerts when a pipeline run fails (once per run), through the same sinks and outbox as the budgets."""

    @dg.run_failure_sensor(
        name="run_failure_alert_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts once when a run fails, naming the job, the partition and the error.",
    )
    def run_failure_alert_sensor(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        base = os.environ.get(UI_URL, "http://127.0.0.1:3000").rstrip("/")
        partition = run.tags.get("dagster/partition") or "–".join(
            filter(
                None,
                (
                    run.tags.get("dagster/asset_partition_range_start"),
                    run.tags.get("dagster/asset_partition_range_end"),
                ),
            )
        )
        alert = Alert(
            identity=f"run_failure:{run.run_id}",
            kind="run_failure",
            title=f"Run of {run.job_name} failed",
            scope=f"{run.job_name} {partition}".strip(),
            actual_usd=0.0,
            details=[("Error", (context.failure_event.message or "")[:500]), ("Run", run.run_id)],
            url=f"{base}/runs/{run.run_id}",
            severity="critical",
        )
        report = deliver([alert], sink_from_environ(os.environ, logger=context.log), alert_store, logger=context.log)
        context.log.info(report.summary())

    return run_failure_alert_sensor


# The newest day that can be closed is two days before today (closure.CLOSE_AFTER); anomalies are alerted
# for the last RESCORE_LAST_N closed days only, so a backfill of history stays quiet.
ANOMALY_RECENT = CLOSE_AFTER + dt.timedelta(days=RESCORE_LAST_N - 1)
ANOMALY_ROWS = """
select usage_date, scored_date, monitor, value, scope, actual_usd, expected_usd, impact_usd, alertable,
       anomaly_id, opened_on, status, top_contributors, incident_id
from mart.cost_anomalies
where usage_date in ({days}) and scored_date >= ? and incident_id is not null
order by incident_id, usage_date, scored_date
"""
MAX_MEMBER_LINES = 8  # the member series an alert names (most specific first); the rest are counted


def _suppressed(anomaly_ids: list[str], incident_id: str, marks: dict[str, dict], escalation: int) -> bool:
    """An incident is silenced by a mark on itself or on any of its members (anomaly ids): ``planned`` for
    good, ``acknowledged`` until it escalates after the mark."""
    for mark in (marks.get(i) for i in [incident_id, *anomaly_ids]):
        if mark and (mark["feedback"] == "planned" or mark["escalation"] >= escalation):
            return True
    return False


def anomaly_alerts(rows: pl.DataFrame, feedback: pl.DataFrame, url: str | None) -> list[Alert]:
    """One alert per incident of ``rows`` (``ANOMALY_ROWS``: the alertable rows with their ``incident_id``),
    with the figures of its newest scored day as the newest partition has them
    (:func:`anomaly_incidents.summarize`: the impact of its most specific layer, its members, the top
    contributors); ``escalation`` 1 once a member escalated. ``feedback`` (the feedback store): an incident
    with a planned member (or marked planned by its id) is left out, one acknowledged (a member or the
    incident id) unless it escalated after the mark."""
    if rows.is_empty():
        return []
    marks = {r["anomaly_id"]: r for r in feedback.iter_rows(named=True)}
    members = rows.group_by("incident_id").agg(
        pl.col("anomaly_id").unique().sort().alias("_all"), (pl.col("status") == "escalated").any().alias("_esc")
    )
    newest = rows.filter(pl.col("usage_date") == pl.col("usage_date").max().over("scored_date")).filter(
        pl.col("scored_date") == pl.col("scored_date").max().over("incident_id")
    )
    alerts = []
    for inc in anomaly_incidents.summarize(newest).join(members, on="incident_id").iter_rows(named=True):
        escalation = int(inc["_esc"])
        if _suppressed(inc["_all"], inc["incident_id"], marks, escalation):
            continue
        series = inc["members"]
        listed = ", ".join(f"{m['scope']} ${m['impact_usd']:+,.2f}" for m in series[:MAX_MEMBER_LINES])
        more = f" and {len(series) - MAX_MEMBER_LINES} more" if len(series) > MAX_MEMBER_LINES else ""
        details = [
            ("Cause (shared top contributor)", inc["cause"]),
            (f"Series out of band ({len(series)}; impact counted at the {inc['layer']} layer)", listed + more),
            *[(f"top {c['dimension']} {c['value']}", c["delta_usd"]) for c in json.loads(inc["top_contributors"])],
            ("Anomaly ids", ", ".join(inc["anomaly_ids"])),
        ]
        alerts.append(
            Alert(
                identity=f"incident:{inc['incident_id']}",
                kind="anomaly",
                title=f"Cost incident {inc['incident_id']} {'escalated' if escalation else 'opened'} on "
                f"{inc['scored_date']} (since {inc['opened_on']}): {inc['cause']}",
                scope=", ".join(m["scope"] for m in series if m["monitor"] == inc["layer"]),
                actual_usd=inc["actual_usd"],
                expected_usd=inc["expected_usd"],
                impact_usd=inc["impact_usd"],
                details=details,
                url=url,
                severity="critical" if escalation else "warning",
                escalation=escalation,
            )
        )
    return alerts


def build_cost_anomaly_sensor(database: str, alert_store: str) -> dg.SensorDefinition:
    """The sensor for one deployment: its ledger and its alert outbox (where the feedback is kept too)."""

    @dg.sensor(
        name="cost_anomaly_sensor",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts once per cost incident (again when it escalates), for the last 3 closed days only.",
    )
    def cost_anomaly_sensor(context: dg.SensorEvaluationContext):
        after = int(context.cursor) if context.cursor else None
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=COST_ANOMALIES, after_storage_id=after), limit=1000, ascending=True
        ).records
        if not records:
            return dg.SkipReason("no new mart/cost_anomalies materialization")
        cursor = str(max(r.storage_id for r in records))
        cutoff = dt.datetime.now(dt.UTC).date() - ANOMALY_RECENT
        days = sorted({r.partition_key for r in records if r.partition_key and r.partition_key >= str(cutoff)})
        if not days:
            context.update_cursor(cursor)
            recent = f"the last {RESCORE_LAST_N} closed days"
            return dg.SkipReason(f"{len(records)} materialization(s), none scoring {recent}")
        rows = read.fetch(database, ANOMALY_ROWS.format(days=", ".join("?" for _ in days)), [*days, cutoff])
        base = os.environ.get(UI_URL, "http://127.0.0.1:3000").rstrip("/")
        alerts = anomaly_alerts(rows, FeedbackStore(alert_store).frame(), f"{base}/assets/mart/cost_anomalies")
        report = deliver(alerts, sink_from_environ(os.environ, logger=context.log), alert_store, logger=context.log)
        context.log.info(report.summary())
        context.update_cursor(cursor)
        return dg.SkipReason(f"{len(alerts)} incident alert(s) considered for {', '.join(days)}: {report.summary()}")

    return cost_anomaly_sensor
