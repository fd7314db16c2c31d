"""Planted cost anomalies: what the simulated world does wrong on purpose, and the ground truth of it.

Three kinds, each a few days of every 21-day cycle counted from the workspace's creation (``ANCHOR``,
a Tuesday), so a day's content still depends on its date alone (never on the clock or the window asked):

* ``runaway_job`` (cycle days 7–9, Tuesday–Thursday): one job also has a run that loops for ~21 h on a
  job cluster of 8 workers, each of the three days;
* ``weekend_cluster`` (cycle days 3–6, Friday 18:00 – Monday 07:00): an untagged all-purpose cluster
  someone left running over the weekend, with no run on it;
* ``serving_spike`` (cycle day 15, a Wednesday): one tenant sends 400 long-context requests to a serving
  endpoint (~100k tokens each) on top of the day's normal traffic.

Why a 21-day cycle: ``make run DAYS=35`` scores a day once the run holds 12 days before it (the 28-day
rolling baseline's minimum; the weekday baseline needs 4 weeks), and the newest closed day is the day
before yesterday, so a 35-day run ending yesterday scores 22 consecutive days with a baseline — any 22
consecutive days hold every day of a 21-day cycle, whatever the date. 21 is a whole number of weeks, so
the weekend cluster is always on a weekend and each kind always on the same weekdays; and a same-weekday
baseline (8 weeks) holds at most 3 earlier occurrences, which its median ignores. The cycle days avoid the
days of the existing calendar tests (2026-01-01 … 01-08 are cycle days 16–20 and 0–2).

Only worlds with ``WorldConfig.anomalies`` (on in the simulated workspace resource, off in a bare
``WorldConfig``) carry them. :func:`planted` lists them with the keys a detector's alert may name them by;
:func:`detection` scores ``mart/cost_anomalies`` rows against that truth.
"""

import datetime as dt
import json
from dataclasses import dataclass

import polars as pl

from cost_assets.simulation.epoch import ANCHOR

CYCLE_DAYS = 21
RUNAWAY_DAYS = (7, 8, 9)
WEEKEND_DAYS = (3, 4, 5, 6)  # Friday evening to Monday morning
SPIKE_DAYS = (15,)

# The spike: these many requests of one tenant, each with this many input and output tokens.
SPIKE_REQUESTS = 400
SPIKE_INPUT_TOKENS = 90_000
SPIKE_OUTPUT_TOKENS = 10_000
SPIKE_TENANT = "globex"
SPIKE_ENDPOINT = "support-bot"
# The runaway run: this many workers, from about 01:00 to about 22:00.
RUNAWAY_WORKERS = 8


def cycle_day(day: dt.date) -> int:
    """Where ``day`` falls in its 21-day cycle (0 = a Tuesday, like ANCHOR)."""
    return (day - ANCHOR).days % CYCLE_DAYS


def cycle_start(day: dt.date) -> dt.date:
    """The first day of ``day``'s cycle."""
    return day - dt.timedelta(days=cycle_day(day))


def is_runaway_day(day: dt.date) -> bool:
    return day >= ANCHOR and cycle_day(day) in RUNAWAY_DAYS


def is_spike_day(day: dt.date) -> bool:
    return day >= ANCHOR and cycle_day(day) in SPIKE_DAYS


def weekend_friday(day: dt.date) -> dt.date | None:
    """The Friday of the planted weekend ``day`` belongs to (Friday to Monday), else None."""
    if day < ANCHOR or cycle_day(day) not in WEEKEND_DAYS:
        return None
    return cycle_start(day) + dt.timedelta(days=WEEKEND_DAYS[0])


@dataclass(frozen=True)
class Planted:
    """One planted anomaly: its kind, its days, and the (dimension, value) keys an alert may name it by —
    as its monitored series or among its top contributors (``job``, ``resource``, ``tenant`` …)."""

    planted_id: str
    kind: str
    first_day: dt.date
    last_day: dt.date
    keys: tuple[tuple[str, str], ...]


PLANTED_SCHEMA = {
    "planted_id": pl.String,
    "kind": pl.String,
    "first_day": pl.Date,
    "last_day": pl.Date,
    "keys": pl.List(pl.String),  # "dimension=value"
}


def planted(days: list[dt.date], runaway_job_id: int, weekend_cluster_id_of) -> list[Planted]:
    """The planted anomalies with at least one day among ``days``. ``runaway_job_id``: the job that runs
    away; ``weekend_cluster_id_of(friday)``: the id of the cluster left running that weekend."""
    out: dict[str, Planted] = {}
    for day in sorted(set(days)):
        start = cycle_start(day)
        if is_runaway_day(day):
            first = start + dt.timedelta(days=RUNAWAY_DAYS[0])
            pid = f"runaway_job:{first}"
            out[pid] = Planted(
                pid,
                "runaway_job",
                first,
                start + dt.timedelta(days=RUNAWAY_DAYS[-1]),
                (("job", str(runaway_job_id)),),
            )
        if (friday := weekend_friday(day)) is not None:
            pid = f"weekend_cluster:{friday}"
            cluster = f"cluster:{weekend_cluster_id_of(friday)}"
            out[pid] = Planted(pid, "weekend_cluster", friday, friday + dt.timedelta(days=3), (("resource", cluster),))
        if is_spike_day(day):
            pid = f"serving_spike:{day}"
            keys = (("tenant", SPIKE_TENANT), ("resource", f"endpoint:{SPIKE_ENDPOINT}"))
            out[pid] = Planted(pid, "serving_spike", day, day, keys)
    return [out[k] for k in sorted(out)]


def planted_frame(items: list[Planted]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "planted_id": p.planted_id,
                "kind": p.kind,
                "first_day": p.first_day,
                "last_day": p.last_day,
                "keys": [f"{d}={v}" for d, v in p.keys],
            }
            for p in items
        ],
        schema=PLANTED_SCHEMA,
    )


DETECTION_SCHEMA = {
    "anomaly_id": pl.String,
    "planted_id": pl.String,
    "kind": pl.String,
    "monitor": pl.String,
    "value": pl.String,
    "first_alert": pl.Date,
    "incident": pl.String,
}


def detection(anomalies: pl.DataFrame, truth: pl.DataFrame, scored_days: list[dt.date]) -> dict:
    """How ``mart/cost_anomalies`` rows (``anomalies``, any partitions) find the planted ``truth``, counted
    per incident (the alert the channel gets).

    Alerts are the episodes (``anomaly_id``) with an alertable day; each belongs to the incident
    (``incident_id``) of its first alertable day. An alertable day *matches* a planted anomaly when it is
    one of the planted days and its series, or one of its top contributors, is one of the planted keys; an
    incident matching a planted anomaly on any of its days is a true positive, and every alert of it is
    explained by that anomaly (a runaway job's team alert names the cluster, not the job). Only planted
    anomalies with a day among ``scored_days`` that the account series scored with a baseline count
    (before that the detector cannot see them). Returns ``alerts`` (DETECTION_SCHEMA rows, ``planted_id``
    null for the alerts of other incidents), ``incidents`` (every incident id), ``planted`` (the counted
    planted ids), ``found``, ``other_incidents`` (the incidents no planted anomaly explains),
    ``precision`` (of the incidents) and ``recall`` (null when nothing to divide by).
    """
    alert_days = anomalies.filter(pl.col("alertable"))
    account = anomalies.filter(pl.col("monitor") == "account", pl.col("baseline").is_not_null())
    baseline_days = set(account.filter(pl.col("scored_date").is_in(scored_days))["scored_date"].to_list())
    counted = [
        r for r in truth.iter_rows(named=True) if any(r["first_day"] <= d <= r["last_day"] for d in baseline_days)
    ]
    episodes: dict[str, tuple[str, str, dt.date, str]] = {}  # anomaly id → its series, first alert, incident
    hits: dict[str, dict] = {}  # incident → the planted anomaly it matched first
    for row in alert_days.sort("scored_date", "usage_date").iter_rows(named=True):
        names = {f"{row['monitor']}={row['value']}"}
        names |= {f"{c['dimension']}={c['value']}" for c in json.loads(row["top_contributors"] or "[]")}
        hit = next(
            (
                t
                for t in truth.iter_rows(named=True)
                if t["first_day"] <= row["scored_date"] <= t["last_day"] and names & set(t["keys"])
            ),
            None,
        )
        episodes.setdefault(row["anomaly_id"], (row["monitor"], row["value"], row["scored_date"], row["incident_id"]))
        if hit is not None:
            hits.setdefault(row["incident_id"], hit)
    rows = []
    for aid, (monitor, value, first, incident) in sorted(episodes.items()):
        hit = hits.get(incident)
        values = (aid, hit and hit["planted_id"], hit and hit["kind"], monitor, value, first, incident)
        rows.append(dict(zip(DETECTION_SCHEMA, values, strict=True)))
    alerts = pl.DataFrame(rows, schema=DETECTION_SCHEMA)
    incidents = sorted({e[3] for e in episodes.values()})
    counted_ids = sorted(r["planted_id"] for r in counted)
    found = sorted({h["planted_id"] for h in hits.values()} & set(counted_ids))
    return {
        "alerts": alerts,
        "incidents": incidents,
        "planted": counted_ids,
        "found": found,
        "other_incidents": [i for i in incidents if i not in hits],
        "precision": len(hits) / len(incidents) if incidents else None,
        "recall": len(found) / len(counted_ids) if counted_ids else None,
    }
