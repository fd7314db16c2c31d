"""The open cost anomalies, as `cost-assets run` and `cost-assets anomaly list` print them (read-only,
through :mod:`cost_assets.read`)."""

import json

import polars as pl

from cost_assets import read

# The anomalies open on the newest scored day of the newest mart.cost_anomalies partition: that partition
# holds the current figures of its scored days (docs/anomalies.md).
OPEN_ANOMALIES = """
with newest as (select max(usage_date) as d from mart.cost_anomalies),
day as (select max(scored_date) as s from mart.cost_anomalies, newest where usage_date = newest.d)
select a.anomaly_id, a.scored_date, a.scope, a.status, a.opened_on, a.actual_usd, a.expected_usd, a.impact_usd,
       a.feedback, a.top_contributors, a.incident_id
from mart.cost_anomalies a, newest, day
where a.usage_date = newest.d and a.scored_date = day.s and a.status in ('open', 'escalated')
order by abs(a.impact_usd) desc, a.scope
"""


def open_anomalies(database: str) -> pl.DataFrame | None:
    """The anomalies open (or escalated) on the newest scored day; None before mart.cost_anomalies exists."""
    try:
        return read.fetch(database, OPEN_ANOMALIES)
    except read.TableMissingError:
        return None


def anomaly_lines(rows: pl.DataFrame, top: int = 3) -> list[str]:
    """One line per open anomaly (id, scope, status, since, actual vs expected, impact, feedback, the
    incident it alerted in on that day), then its ``top`` contributors, indented."""
    lines = []
    for r in rows.iter_rows(named=True):
        expected = "" if r["expected_usd"] is None else f" vs ${r['expected_usd']:,.2f} expected"
        impact = "" if r["impact_usd"] is None else f", impact ${r['impact_usd']:+,.2f}"
        note = f" [{r['feedback']}]" if r["feedback"] else ""
        note += f" (incident {r['incident_id']})" if r["incident_id"] else ""
        lines.append(
            f"  {r['anomaly_id']}  {r['scope']}  {r['status']} since {r['opened_on']}: "
            f"${r['actual_usd']:,.2f} on {r['scored_date']}{expected}{impact}{note}"
        )
        for c in json.loads(r["top_contributors"] or "[]")[:top]:
            lines.append(f"      {c['dimension']} {c['value']}: ${c['delta_usd']:+,.2f}")
    return lines


# The simulated world only: how the alerts of the 35 days up to a day found the planted anomalies.
DETECTION_ON = """
select count(distinct planted_id) filter (where found) as found,
       count(distinct planted_id) as planted,
       count(anomaly_id) as alerts,
       count(distinct incident) as incidents,
       count(distinct incident) filter (where planted_id is null and anomaly_id is not null) as other_incidents
from sim.anomaly_detection where usage_date = ?
"""


def detection_line(database: str, day) -> str | None:
    """``found F of P planted anomalies (recall); I incidents (A series alerts), O explained by none;
    precision`` (by incident) on ``day``; None without ``sim.anomaly_detection`` (a live workspace)."""
    try:
        row = read.fetch(database, DETECTION_ON, [day]).row(0, named=True)
    except read.TableMissingError:
        return None
    if not row["planted"]:
        return "no planted anomaly the detector could score in the 35 days"
    incidents, other = row["incidents"], row["other_incidents"]
    precision = f"{(incidents - other) / incidents:.0%}" if incidents else "n/a"
    return (
        f"found {row['found']} of {row['planted']} planted anomalies (recall {row['found'] / row['planted']:.0%}); "
        f"{incidents} incident(s) ({row['alerts']} series alerts), {other} explained by none of them; "
        f"precision {precision}"
    )
