"""What people said about cost anomalies: ``acknowledged`` (seen; do not alert again unless it escalates)
or ``planned`` (expected spend: its days are left out of the baselines), with a reason.

Stored in a small SQLite file of its own — by default the alerts' outbox file (``COST_ASSETS_ALERT_STORE``),
in its own table ``anomaly_feedback`` — and never in the ledger's DuckDB file, whose single writer lock a
running pipeline holds: marking an anomaly must work while the pipeline runs. One row per anomaly id; a
later mark replaces an earlier one (a planned anomaly acknowledged later is acknowledged). The row keeps
what the episode was when it was marked (series, first and last day, escalation), read from
``mart/cost_anomalies``, so that scoring knows which days a ``planned`` mark covers and the alert sensor
knows whether an ``acknowledged`` anomaly has escalated since. While a run holds the ledger's writer lock
the episode cannot be read: the mark is stored with the id alone (escalation 0), and the next
materialization of ``mart/cost_anomalies`` finds the series and days from its stored rows
(``costing/anomaly_mart.resolve``).
"""

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import polars as pl

from cost_assets import read
from cost_assets.costing.anomaly_mart import FEEDBACK_SCHEMA
from cost_assets.vocabulary import ANOMALY_FEEDBACK

TABLE = """
CREATE TABLE IF NOT EXISTS anomaly_feedback (
    anomaly_id TEXT PRIMARY KEY,
    feedback TEXT NOT NULL,
    reason TEXT NOT NULL,
    monitor TEXT,
    value TEXT,
    first_day TEXT,
    last_day TEXT,
    escalation INTEGER NOT NULL,
    recorded_at TEXT NOT NULL
)
"""
STORED_SCHEMA = {**FEEDBACK_SCHEMA, "reason": pl.String, "recorded_at": pl.String}

# The episode an id names, as mart/cost_anomalies holds it: its series, its days out of band (the closing
# day is back in band, a fine baseline point) and whether it escalated.
EPISODE = """
select monitor, value, any_value(scope) as scope, min(scored_date) as first_day, max(scored_date) as last_day,
       max(case when status = 'escalated' then 1 else 0 end) as escalation
from mart.cost_anomalies where anomaly_id = ? and status <> 'closed'
group by monitor, value
"""


class FeedbackError(ValueError):
    """A mark that cannot be recorded (unknown id, empty reason, unknown kind); the message says which."""


class FeedbackStore:
    """The ``anomaly_feedback`` table of a SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FeedbackStore({str(self.path)!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=30.0)) as con:
            con.execute(TABLE)
            yield con

    def record(
        self,
        anomaly_id: str,
        feedback: str,
        reason: str,
        *,
        monitor: str | None,
        value: str | None,
        first_day: dt.date | None,
        last_day: dt.date | None,
        escalation: int,
        now: dt.datetime | None = None,
    ) -> None:
        """Store (or replace) the mark of ``anomaly_id``; committed when this returns."""
        if feedback not in ANOMALY_FEEDBACK:
            raise FeedbackError(f"feedback {feedback!r}: allowed: {', '.join(ANOMALY_FEEDBACK)}")
        if not reason.strip():
            raise FeedbackError("--reason must not be empty: say why, for whoever reads the alert channel next")
        at = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
        with self._connect() as con, con:
            con.execute(
                "INSERT OR REPLACE INTO anomaly_feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    anomaly_id,
                    feedback,
                    reason.strip(),
                    monitor,
                    value,
                    first_day and first_day.isoformat(),
                    last_day and last_day.isoformat(),
                    escalation,
                    at,
                ),
            )

    def frame(self) -> pl.DataFrame:
        """Every mark (``STORED_SCHEMA``); empty when the file does not exist yet (reading creates nothing)."""
        if not self.path.exists():
            return pl.DataFrame(schema=STORED_SCHEMA)
        with self._connect() as con:
            query = f"SELECT {', '.join(STORED_SCHEMA)} FROM anomaly_feedback ORDER BY anomaly_id"
            rows = con.execute(query).fetchall()
        frame = pl.DataFrame(rows, schema={c: pl.String for c in STORED_SCHEMA}, orient="row")
        return frame.with_columns(
            pl.col("first_day", "last_day").str.to_date(), pl.col("escalation").cast(pl.Int32)
        ).cast(STORED_SCHEMA)


# The anomalies (episodes) of an incident: every series that alerted in it on one of its days.
INCIDENT_MEMBERS = """
select distinct anomaly_id from mart.cost_anomalies where incident_id = ? and anomaly_id is not null order by 1
"""


def mark(database: str, store: FeedbackStore, anomaly_id: str, feedback: str, reason: str) -> dict | None:
    """Record ``feedback`` on the episode ``anomaly_id`` of ``mart/cost_anomalies`` (read-only from
    ``database``); returns the episode, or None when a run holds the ledger (the mark is stored with the id
    alone). ``anomaly_id`` may also be an incident id (``incident_id``): every member episode is marked
    (so a planned incident's series all leave their baselines) and the incident id too (what the sensor
    checks first); the returned "episode" then spans its members. An id the mart does not hold is a
    :class:`FeedbackError`; no ledger at all is :mod:`cost_assets.read`'s error, which says so."""
    try:
        episode = read.fetch(database, EPISODE, [anomaly_id])
        members = [] if not episode.is_empty() else read.fetch(database, INCIDENT_MEMBERS, [anomaly_id])["anomaly_id"]
        episodes = [read.fetch(database, EPISODE, [m]) for m in members]
    except read.WarehouseLockedError:
        empty = {"monitor": None, "value": None, "first_day": None, "last_day": None, "escalation": 0}
        store.record(anomaly_id, feedback, reason, **empty)
        return None
    if episode.is_empty() and not episodes:
        raise FeedbackError(
            f"anomaly {anomaly_id!r} is not in mart.cost_anomalies, neither as an anomaly id nor as an incident id"
            " (`cost-assets anomaly list` shows the open ones)"
        )
    for member_id, rows in [(anomaly_id, episode), *zip(members, episodes, strict=True)]:
        if rows.is_empty():
            continue
        row = rows.row(0, named=True)
        store.record(
            member_id,
            feedback,
            reason,
            monitor=row["monitor"],
            value=row["value"],
            first_day=row["first_day"],
            last_day=row["last_day"],
            escalation=int(row["escalation"]),
        )
    if not episode.is_empty():
        return episode.row(0, named=True)
    spans = pl.concat(episodes)
    store.record(
        anomaly_id,
        feedback,
        reason,
        monitor=None,
        value=None,
        first_day=spans["first_day"].min(),
        last_day=spans["last_day"].max(),
        escalation=int(spans["escalation"].max()),
    )
    return {
        "scope": "incident of " + ", ".join(spans["scope"].to_list()),
        "first_day": spans["first_day"].min(),
        "last_day": spans["last_day"].max(),
        "escalation": int(spans["escalation"].max()),
    }
