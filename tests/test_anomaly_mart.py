"""The rows of a mart/cost_anomalies partition (costing/anomaly_mart.py): which days partition D holds, the
episodes carried across partitions, planned days, the top contributor of each kind. Every expected number
is worked out by hand in a comment.

The series: job ``j1`` (team ``t1``, user ``u1``, cluster ``c1``) spends $98 and $102 on alternate days from
2026-03-01 (a Sunday) and $400 from 2026-03-19 on. Band half-width = 3.5 · 1.4826 · MAD = 5.1891 · MAD.
"""

import datetime as dt
import json

import polars as pl
import pytest

from cost_assets.costing import anomalies as an
from cost_assets.costing.anomaly_mart import (
    FEEDBACK_SCHEMA,
    MART_SCHEMA,
    as_of,
    planned_days,
    resolve,
    top_contributors,
)

D0 = dt.date(2026, 3, 1)
SPIKE = dt.date(2026, 3, 19)


def day(i: int) -> dt.date:
    return D0 + dt.timedelta(days=i)


def rows(n: int) -> pl.DataFrame:
    """spend_rows-shaped rows of days 0 … n−1: one row a day for job j1."""
    data = []
    for i in range(n):
        cost = 400.0 if day(i) >= SPIKE else (98.0 if i % 2 == 0 else 102.0)
        data.append(
            {
                "usage_date": day(i),
                "workspace_id": "w",
                "resource": "cluster:c1",
                "sku_name": "PREMIUM_JOBS_COMPUTE",
                "cost_usd": cost,
                "unpriced": False,
                "account": "all",
                "workspace_sku": "w|JOBS_COMPUTE",
                "team": "t1",
                "tenant": "(untagged)",
                "project": "(untagged)",
                "cost_center": "(untagged)",
                "job": "j1",
                "user": "u1",
                "endpoint_user": None,
            }
        )
    return pl.DataFrame(data, schema_overrides={"endpoint_user": pl.String})


def closed_through(n: int, last_closed: int) -> pl.DataFrame:
    return pl.DataFrame({"usage_date": [day(i) for i in range(n)], "closed": [i <= last_closed for i in range(n)]})


NO_FEEDBACK = pl.DataFrame(schema=FEEDBACK_SCHEMA)


def partition(d: int, previous=None, feedback=NO_FEEDBACK) -> pl.DataFrame:
    """Partition day(d): the bill has reached day(d) but only days ≤ d−1 are closed (the usual lag)."""
    r = rows(d + 1)
    return as_of(day(d), closed_through(d + 1, d - 1), an.spend_frame(r), r, previous, feedback)


def job_rows(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(pl.col("monitor") == "job").sort("scored_date")


def test_partition_d_holds_the_last_three_closed_days_of_every_series():
    # Partition 03-20 (day 19): days ≤ 03-19 are closed, so it scores 03-17, 03-18 and 03-19.
    frame = partition(19)
    assert frame.schema == pl.Schema(MART_SCHEMA)
    assert set(frame["usage_date"]) == {day(19)}
    assert sorted(set(frame["scored_date"])) == [day(16), day(17), day(18)]
    # Every monitor of the one job's money: account, workspace_sku, team, tenant, project, cost_center, job,
    # user (endpoint_user is null: not serving money) → 8 series × 3 days.
    assert frame.height == 8 * 3
    spike = job_rows(frame).row(-1, named=True)
    # 03-19 (a Thursday): same-weekday points 03-12 and 03-05 are 2 < 4, so the 28-day rolling baseline of
    # days 0 … 17 (18 points ≥ 12): nine $98 and nine $102 → median (98 + 102) / 2 = 100; every deviation
    # is 2 → MAD 2; upper = 100 + 5.1891 · 2 = 110.3782; $400 is above it.
    assert spike["baseline"] == "rolling_28d"
    assert spike["expected_usd"] == pytest.approx(100.0)
    assert spike["upper_usd"] == pytest.approx(100 + 3.5 * 1.4826 * 2)
    # impact = 400 − 100 = 300 ≥ max($50, 20 % · 100 = $20): alertable; the episode opens that day.
    assert (spike["impact_usd"], spike["state"], spike["alertable"]) == (pytest.approx(300.0), "high", True)
    assert (spike["status"], spike["opened_on"]) == ("open", SPIKE)
    assert spike["anomaly_id"] == an.anomaly_id("job", "j1", SPIKE)
    assert spike["scope"] == "job = j1"
    # The job's own dimension is skipped; cluster c1 went from a median of $100 to $400: +$300, and so did
    # the SKU, the user and the team (one per kind; ties in the order job, resource, SKU, user, tag).
    contributors = json.loads(spike["top_contributors"])
    assert [(c["dimension"], c["value"], c["delta_usd"]) for c in contributors] == [
        ("resource", "cluster:c1", 300.0),
        ("sku_name", "PREMIUM_JOBS_COMPUTE", 300.0),
        ("user", "u1", 300.0),
        ("team", "t1", 300.0),
    ]
    # Days before the spike are in band: no episode, no contributors.
    assert job_rows(frame)["status"].to_list() == [None, None, "open"]
    assert job_rows(frame)["top_contributors"].to_list()[:2] == [None, None]
    assert frame.filter(pl.col("monitor") == "account")["scope"].to_list() == ["account"] * 3


def test_a_partition_with_no_closed_day_is_empty():
    r = rows(3)
    frame = as_of(day(2), closed_through(3, -1), an.spend_frame(r), r, None, NO_FEEDBACK)
    assert frame.is_empty() and frame.schema == pl.Schema(MART_SCHEMA)


def test_an_open_episode_carries_into_the_next_partitions_under_its_id():
    # Partition 03-22 (day 21) scores 03-19 … 03-21 (days 18–20): the episode opens on 03-19. Partition
    # 03-23 (day 22) scores days 19–21, without the opening day; the previous partition's row of day 18 (the
    # closed day before its first) has the episode open, so it keeps its id and opening day. Without that
    # partition the same days open a new episode on 03-20 (still $400 against a median of $100).
    carried = job_rows(partition(22, partition(21)))
    assert set(carried["anomaly_id"]) == {an.anomaly_id("job", "j1", SPIKE)}
    assert set(carried["opened_on"]) == {SPIKE}
    assert carried["status"].to_list() == ["open"] * 3
    fresh = job_rows(partition(22))
    assert fresh["opened_on"].to_list() == [day(19)] * 3
    assert set(fresh["anomaly_id"]) == {an.anomaly_id("job", "j1", day(19))}


def test_a_planned_anomaly_leaves_the_baseline_and_alerts_no_more():
    feedback = pl.DataFrame(
        [
            {
                "anomaly_id": an.anomaly_id("job", "j1", SPIKE),
                "feedback": "planned",
                "monitor": "job",
                "value": "j1",
                "first_day": SPIKE,
                "last_day": SPIKE,
                "escalation": 0,
            }
        ],
        schema=FEEDBACK_SCHEMA,
    )
    spike = job_rows(partition(19, feedback=feedback)).row(-1, named=True)
    # Still scored (high), but planned days are never alertable; the row says what was said about it.
    assert (spike["planned"], spike["alertable"], spike["state"]) == (True, False, "high")
    assert spike["feedback"] == "planned"
    # The mark's days, and every scored day of a planned episode still open when the partition starts.
    carried = pl.DataFrame({"monitor": ["job"], "value": ["j1"], "anomaly_id": [feedback["anomaly_id"][0]]})
    days = planned_days(feedback, carried, [day(19), day(20)]).sort("usage_date")
    assert days["usage_date"].to_list() == [SPIKE, day(19), day(20)]


def test_a_mark_stored_by_id_alone_finds_its_series_in_the_stored_rows():
    # Marked planned while a run held the ledger: only the id. Partition 03-22 (days 18–20) holds the
    # episode opened on 03-19 (day 18), open on all three days.
    previous = partition(21)
    episode = an.anomaly_id("job", "j1", SPIKE)
    by_id = pl.DataFrame([{"anomaly_id": episode, "feedback": "planned", "escalation": 0}], schema=FEEDBACK_SCHEMA)
    (mark,) = resolve(by_id, previous).iter_rows(named=True)
    assert (mark["monitor"], mark["value"], mark["first_day"], mark["last_day"]) == ("job", "j1", SPIKE, day(20))
    # The next partition (03-23) then scores days 19–21 with the planned days left out and never alertable.
    rows_ = job_rows(partition(22, previous, by_id))
    assert rows_["planned"].to_list() == [True, True, True] and not rows_["alertable"].any()
    assert rows_["feedback"].to_list() == ["planned"] * 3


def test_top_contributors_take_the_largest_mover_of_each_kind():
    d = dt.date(2026, 1, 1)
    causes = pl.DataFrame(
        {
            "usage_date": [d] * 5,
            "monitor": ["account"] * 5,
            "value": ["all"] * 5,
            "impact_usd": [-80.0] * 5,  # a drop: what fell most comes first
            "contributor_dimension": ["team", "tenant", "job", "job", "resource"],
            "contributor_value": ["a", "b", "j", "k", "r"],
            "actual_usd": [0.0, 10.0, 0.0, 5.0, 20.0],
            "expected_usd": [50.0, 80.0, 60.0, 10.0, 40.0],
            "delta_usd": [-50.0, -70.0, -60.0, -5.0, -20.0],
            "share_of_impact": [0.0] * 5,
            "rank": pl.Series([1, 1, 1, 2, 1], dtype=pl.UInt32),
        }
    )
    (text,) = top_contributors(causes)["top_contributors"]
    # One tag value (tenant b fell $70, more than team a's $50), the top job (j, −60; k is rank 2), the
    # resource (−20), largest fall first.
    assert [(c["dimension"], c["value"], c["delta_usd"]) for c in json.loads(text)] == [
        ("tenant", "b", -70.0),
        ("job", "j", -60.0),
        ("resource", "r", -20.0),
    ]
