"""Cost anomaly scoring (costing/anomalies.py): every expected number is worked out by hand in a comment.

Conventions of these tests: day i is ``D0 + i`` (D0 is a Monday, so day 7·n is a Monday too); unless a test
says otherwise every day of the calendar is closed and ``score(..., rescore_last=1)`` scores the last one.
Band half-width = k · 1.4826 · MAD with k = 3.5, i.e. 5.1891 · MAD.
"""

import datetime as dt
import hashlib

import polars as pl
import pytest
from costing_builders import clusters, jobs
from test_reconcile import AP_PHOTON, JOBS, PRICE, SERVING, WS, estimate, prices, usage

from cost_assets.costing import anomalies as an
from cost_assets.costing.attribute import attributed_costs
from cost_assets.costing.closure import closed_days
from cost_assets.costing.reconcile import reconciliation
from cost_assets.costing.scope import cost_by_scope
from cost_assets.vocabulary import TAG_DIMENSIONS, UNTAGGED

D0 = dt.date(2025, 1, 6)  # a Monday
HALF_PER_MAD = 3.5 * 1.4826  # 5.1891


def day(i: int) -> dt.date:
    return D0 + dt.timedelta(days=i)


def calendar(n: int, open_days: tuple[int, ...] = ()) -> pl.DataFrame:
    """closure.closed_days-shaped frame for days 0 … n−1 (``open_days`` not closed)."""
    return pl.DataFrame({"usage_date": [day(i) for i in range(n)], "closed": [i not in open_days for i in range(n)]})


def spend(*series: tuple[str, dict[int, float]], monitor: str = "team") -> pl.DataFrame:
    """Spend rows: ``(value, {day: cost})`` per series."""
    rows = [(day(i), monitor, value, float(c)) for value, costs in series for i, c in costs.items()]
    return pl.DataFrame(rows, schema=["usage_date", "monitor", "value", "cost_usd"], orient="row")


def row(scored: pl.DataFrame, value: str, i: int | None = None) -> dict:
    picked = scored.filter(pl.col("value") == value)
    if i is not None:
        picked = picked.filter(pl.col("usage_date") == day(i))
    assert picked.height == 1, picked
    return picked.to_dicts()[0]


# --- baseline and band -----------------------------------------------------------------------------------


# Days 0–13, scored on day 14. Weekday points: day 7 and day 0 only (2 < 4), so the 28-day fallback
# takes the 14 days (14 ≥ 12).
FOURTEEN = [100, 102, 98, 105, 95, 101, 99, 103, 97, 100, 104, 96, 100, 150]


def test_mad_band_on_a_14_point_series():
    # sorted: 95 96 97 98 99 100 100 100 101 102 103 104 105 150 → median = (7th + 8th)/2 = (100+100)/2 = 100
    # |x − 100| in day order: 0 2 2 5 5 1 1 3 3 0 4 4 0 50
    #   sorted: 0 0 0 1 1 2 2 3 3 4 4 5 5 50 → MAD = (2 + 3)/2 = 2.5 (the $150 spike moves neither)
    # half-width = 3.5 · 1.4826 · 2.5 = 12.97275 → band [87.02725, 112.97275]
    history = dict(enumerate(FOURTEEN))
    actual = {"in": 112.9, "just_above": 113.0, "just_below": 87.0, "spike": 200.0}
    frame = spend(*[(name, {**history, 14: a}) for name, a in actual.items()])
    scored = an.score(frame, calendar(15), rescore_last=1)
    assert scored.columns == an.SCORE_COLUMNS
    for name in actual:
        r = row(scored, name, 14)
        assert (r["baseline"], r["baseline_points"]) == ("rolling_28d", 14)
        assert r["expected_usd"] == pytest.approx(100.0)
        assert r["mad_usd"] == pytest.approx(2.5)
        assert r["lower_usd"] == pytest.approx(87.02725)
        assert r["upper_usd"] == pytest.approx(112.97275)
    # 112.9 ≤ 112.97275: inside. 113.0 > upper: high, but impact 13 < max($50, 20 % · 100 = $20) = $50.
    # 87.0 < lower: low, impact −13: not alertable. 200: high, impact 100 ≥ 50: alertable.
    assert [(row(scored, n)["state"], row(scored, n)["alertable"]) for n in actual] == [
        ("normal", False),
        ("high", False),
        ("low", False),
        ("high", True),
    ]
    assert row(scored, "spike")["impact_usd"] == pytest.approx(100.0)
    assert row(scored, "spike")["threshold_usd"] == pytest.approx(50.0)
    # The 14 baseline days are listed on the alertable row (root cause uses them).
    assert row(scored, "spike")["baseline_days"] == [day(i) for i in range(14)]


def test_weekday_baseline_takes_only_the_same_weekday_of_the_last_8_weeks():
    # Days 0–62, scored on day 63 (a Monday). Its points: the Mondays 56, 49, …, 7 (8 ≥ 4 → weekday).
    # Mondays:  day 7 → 1000, 14 → 1010, 21 → 990, 28 → 1020, 35 → 980, 42 → 1000, 49 → 1030, 56 → 970
    # sorted: 970 980 990 1000 1000 1010 1020 1030 → median = (1000 + 1000)/2 = 1000
    # |x − 1000|: 0 10 10 20 20 0 30 30 → sorted 0 0 10 10 20 20 30 30 → MAD = (10 + 20)/2 = 15
    # Day 0 (also a Monday, 9 weeks back) is $50,000: with it, 9 points and MAD = 5th of
    # 0 0 10 10 20 20 30 30 49000 = 20. The other days are $100: any window over all days → median 100.
    mondays = {7: 1000, 14: 1010, 21: 990, 28: 1020, 35: 980, 42: 1000, 49: 1030, 56: 970, 0: 50_000}
    history = {i: mondays.get(i, 100.0) for i in range(63)}
    scored = an.score(spend(("ml", {**history, 63: 2000.0})), calendar(64), rescore_last=None)
    r = row(scored, "ml", 63)
    assert (r["baseline"], r["baseline_points"]) == ("weekday", 8)
    assert (r["expected_usd"], r["mad_usd"]) == (pytest.approx(1000.0), pytest.approx(15.0))
    # band 1000 ± 5.1891 · 15 = 1000 ± 77.8365; impact 1000 ≥ max(50, 20 % · 1000 = 200): alertable.
    assert r["upper_usd"] == pytest.approx(1077.8365)
    assert (r["state"], r["alertable"], r["impact_usd"]) == ("high", True, pytest.approx(1000.0))
    assert r["baseline_days"] == [day(7 * w) for w in range(1, 9)]
    # Tuesday day 57: its weekday points (days 50, 43, …, 1) are all $100 → expected 100, MAD 0.
    tuesday = row(scored, "ml", 57)
    assert (tuesday["baseline"], tuesday["expected_usd"], tuesday["mad_usd"]) == ("weekday", 100.0, 0.0)
    assert tuesday["state"] == "normal"


def test_28_day_fallback_for_a_young_series():
    # Days 0–19, scored on day 20. Weekday points: day 13 and day 6 (2 < 4) → the 28-day window, which
    # holds the 20 days (≥ 12). Days 6 and 13 are $500, the other 18 are $100:
    # sorted: 18 × 100, 2 × 500 → median = (10th + 11th)/2 = 100 (the weekday points alone would say 500)
    # |x − 100|: 18 × 0, 2 × 400 → MAD = (0 + 0)/2 = 0 → band [100, 100]
    history = {i: (500.0 if i in (6, 13) else 100.0) for i in range(20)}
    frame = spend(("same", {**history, 20: 100.0}), ("up", {**history, 20: 160.0}))
    scored = an.score(frame, calendar(21), rescore_last=1)
    same, up = row(scored, "same"), row(scored, "up")
    assert (same["baseline"], same["baseline_points"], same["expected_usd"], same["mad_usd"]) == (
        "rolling_28d",
        20,
        100.0,
        0.0,
    )
    assert same["state"] == "normal"
    # 160 vs 100: impact 60 ≥ max(50, 20) → alertable; baseline_days = the 20 days.
    assert (up["state"], up["alertable"], up["impact_usd"]) == ("high", True, pytest.approx(60.0))
    assert up["baseline_days"] == [day(i) for i in range(20)]


def test_planned_days_leave_the_baseline_and_the_window_is_28_days():
    # Days 0–62, scored on day 63 (Monday). Planned: the Mondays 56, 49, 42, 35, 28 → weekday points left:
    # days 21, 14, 7 (3 < 4) → 28-day fallback over days 35–62 minus the planned 35, 42, 49, 56 = 24 points.
    # Days 0–34 are $1,000 (outside the window), planned days $9,999 (left out), and the 24 points are
    # days 36–41, 43–48 at $100 (12 points) and 50–55, 57–62 at $110 (12 points):
    # median = (12th + 13th)/2 = (100 + 110)/2 = 105; every |x − 105| = 5 → MAD = 5
    # band 105 ± 5.1891 · 5 = 105 ± 25.9455
    planned_days = [56, 49, 42, 35, 28]
    history = {i: 1000.0 for i in range(35)}
    history |= {i: (100.0 if i < 49 else 110.0) for i in range(35, 63)}
    history |= {i: 9999.0 for i in planned_days}
    frame = spend(("ml", {**history, 63: 200.0}))
    planned = pl.DataFrame({"monitor": "team", "value": "ml", "usage_date": [day(i) for i in planned_days]})
    scored = an.score(frame, calendar(64), planned, rescore_last=None)
    r = row(scored, "ml", 63)
    assert (r["baseline"], r["baseline_points"]) == ("rolling_28d", 24)
    assert (r["expected_usd"], r["mad_usd"]) == (pytest.approx(105.0), pytest.approx(5.0))
    assert r["upper_usd"] == pytest.approx(130.9455)
    # 200 − 105 = 95 ≥ max(50, 21): alertable.
    assert (r["state"], r["alertable"], r["impact_usd"]) == ("high", True, pytest.approx(95.0))
    assert r["baseline_days"] == [day(i) for i in range(36, 63) if i not in planned_days]
    # A planned day is still scored (day 56: $9,999 against its Mondays' $1,000/$100) but never alertable.
    planned_row = row(scored, "ml", 56)
    assert (planned_row["planned"], planned_row["state"], planned_row["alertable"]) == (True, "high", False)


def test_insufficient_history_is_never_silently_normal():
    # Scored on day 12. "short" spends from day 1: 11 points before day 12 (< 12), weekday point day 5 only
    # → no baseline → insufficient_history, however large the spend. "enough" spends from day 0: 12 points
    # → rolling_28d, median 100, MAD 0 → normal.
    frame = spend(
        ("short", {**{i: 100.0 for i in range(1, 12)}, 12: 10_000.0}),
        ("enough", {**{i: 100.0 for i in range(12)}, 12: 100.0}),
    )
    scored = an.score(frame, calendar(13), rescore_last=1)
    short = row(scored, "short")
    assert (short["state"], short["alertable"], short["baseline"]) == ("insufficient_history", False, None)
    assert short["expected_usd"] is None and short["impact_usd"] is None
    assert short["baseline_points"] == 11
    enough = row(scored, "enough")
    assert (enough["state"], enough["baseline"], enough["baseline_points"]) == ("normal", "rolling_28d", 12)


# --- thresholds ----------------------------------------------------------------------------------------------


def test_impact_thresholds_floor_for_small_series_percentage_for_large_ones():
    # Flat series over days 0–27, scored on day 28: weekday points days 21, 14, 7, 0 (4) all equal
    # → MAD 0, band [expected, expected]: every change is out of band, the thresholds decide.
    # expected $100:  threshold = max($50, 20 % · 100 = $20) = $50 (the floor binds)
    #   140 → impact 40 < 50: high, not alertable;  150 → impact 50 ≥ 50: alertable
    # expected $1,000: threshold = max($50, 20 % · 1000 = $200) = $200 (the percentage binds)
    #   1150 → 150 < 200: not alertable;  1200 → 200 ≥ 200: alertable
    #   810 → |−190| < 200: low, not alertable;  790 → |−210| ≥ 200: alertable
    small = {i: 100.0 for i in range(28)}
    large = {i: 1000.0 for i in range(28)}
    cases = {"s140": 140, "s150": 150, "l1150": 1150, "l1200": 1200, "l810": 810, "l790": 790}
    frame = spend(*[(n, {**(small if n[0] == "s" else large), 28: float(a)}) for n, a in cases.items()])
    scored = an.score(frame, calendar(29), rescore_last=1)
    got = {n: (row(scored, n)["state"], row(scored, n)["alertable"]) for n in cases}
    assert got == {
        "s140": ("high", False),
        "s150": ("high", True),
        "l1150": ("high", False),
        "l1200": ("high", True),
        "l810": ("low", False),
        "l790": ("low", True),
    }
    assert row(scored, "s150")["threshold_usd"] == 50.0
    assert row(scored, "l1200")["threshold_usd"] == pytest.approx(200.0)
    # The parameters move the thresholds: floor $10 → s140: 40 ≥ max(10, 20) = 20 → alertable;
    # pct 10 % → l1150: 150 ≥ max(50, 100) = 100 → alertable.
    lower = an.score(frame, calendar(29), rescore_last=1, floor_usd=10.0, pct=0.10)
    assert row(lower, "s140")["alertable"] and row(lower, "l1150")["alertable"]
    assert row(lower, "l810")["alertable"]  # |−190| ≥ max(10, 100) = 100: alertable now too


def test_new_spender():
    # Calendar days 0–21. "new" first spends on day 20 ($60 ≥ $50 floor): no point before it and it did
    # not exist on the calendar's first day → new_spender, expected $0, impact $60, alertable. On day 21 it
    # has one point → insufficient_history. "small" first spends $40 on day 20 (< floor) →
    # insufficient_history. "since_day_0" already spends on the calendar's first day: its history before
    # that is unknown, so that day is insufficient_history, not new.
    frame = spend(
        ("new", {20: 60.0, 21: 60.0}),
        ("small", {20: 40.0}),
        ("since_day_0", {0: 5000.0}),
    )
    scored = an.score(frame, calendar(22), rescore_last=None)
    new = row(scored, "new", 20)
    assert (new["state"], new["alertable"], new["expected_usd"], new["impact_usd"]) == ("new_spender", True, 0.0, 60.0)
    assert new["baseline_days"] == []
    assert new["lower_usd"] is None and new["threshold_usd"] == 50.0
    assert row(scored, "new", 21)["state"] == "insufficient_history"
    assert (row(scored, "small", 20)["state"], row(scored, "small", 20)["alertable"]) == ("insufficient_history", False)
    first = row(scored, "since_day_0", 0)
    assert (first["state"], first["alertable"]) == ("insufficient_history", False)
    # Gaps count as $0 from the series' first day on: "since_day_0" has rows on days 1–21 at $0.
    assert row(scored, "since_day_0", 5)["actual_usd"] == 0.0
    assert scored.filter(pl.col("value") == "since_day_0").height == 22


def test_gap_days_are_zero_spend_points():
    # Spends $100 every day 0–27 except day 21 (a gap = $0). Scored on day 28 (Monday): weekday points
    # days 21, 14, 7, 0 = 0, 100, 100, 100 → median (100 + 100)/2 = 100; |x − 100| = 100 0 0 0 → MAD 0.
    # The gap day itself was scored as actual 0 (low vs its rolling baseline).
    costs = {i: 100.0 for i in range(29) if i != 21}
    scored = an.score(spend(("ml", costs)), calendar(29), rescore_last=None)
    assert row(scored, "ml", 21)["actual_usd"] == 0.0
    r = row(scored, "ml", 28)
    assert (r["baseline"], r["baseline_points"], r["expected_usd"], r["mad_usd"]) == ("weekday", 4, 100.0, 0.0)


# --- closure -------------------------------------------------------------------------------------------------


def test_only_closed_days_are_scored_and_open_days_are_no_points():
    # Each day's records are ingested the next day, so the bill's watermark is day 32 and a day closes when
    # day + 2 ≤ 32 (closure.closed_days): days 0–30 are closed, day 31 is open. Day 15 has no bill record at
    # all, so it has no closure either: a hole, not a $0 day.
    bill = pl.DataFrame(
        {
            "usage_date": [day(i) for i in range(32) if i != 15],
            "ingestion_date": [day(i + 1) for i in range(32) if i != 15],
        }
    )
    closed = closed_days(bill)
    # $100 a day; days 15 and 31 carry a $1,000,000 that must neither be scored nor become a point.
    costs = {i: (1e6 if i in (15, 31) else 100.0) for i in range(32)}
    scored = an.score(spend(("ml", costs)), closed, rescore_last=None)
    days = scored["usage_date"].to_list()
    assert max(days) == day(30) and day(15) not in days and day(31) not in days
    assert len(days) == 30  # days 0–30 without 15
    # Day 22 (Monday): weekday points day 15 (a hole: none), 8, 1 → 2 → 28-day window: days 0–21 without
    # day 15 = 21 points, all $100 → expected 100 (the $1e6 is in no baseline).
    r = row(scored, "ml", 22)
    assert (r["baseline"], r["baseline_points"], r["expected_usd"]) == ("rolling_28d", 21, 100.0)
    # The default re-score window: the last 3 closed days, the same rows as scoring every day.
    assert an.rescore_days(closed) == [day(28), day(29), day(30)]
    window = an.score(spend(("ml", costs)), closed)
    assert window.equals(scored.filter(pl.col("usage_date") >= day(28)))


def test_the_rescore_window_scores_like_the_whole_history():
    # The asset scores only the last 3 closed days; each series' grid then starts LOOKBACK_DAYS (56) before
    # the first of them. Whatever lies further back must not change a single number: a 120-day series with
    # a weekly pattern and a spike, a series that went quiet on day 30 (so its window is all $0), and a new
    # spender on day 118 (its first day lies inside the window, so it is still new).
    weekly = {i: 100.0 + 50.0 * (i % 7 == 0) + (900.0 if i == 118 else 0.0) for i in range(120)}
    frame = spend(("weekly", weekly), ("quiet", {i: 80.0 for i in range(30)}), ("new", {118: 70.0, 119: 70.0}))
    full = an.score(frame, calendar(120), rescore_last=None)
    window = an.score(frame, calendar(120))
    assert window.equals(full.filter(pl.col("usage_date") >= day(117)))
    assert row(window, "new", 118)["state"] == "new_spender"
    assert row(window, "weekly", 118)["alertable"] and row(window, "quiet", 119)["actual_usd"] == 0.0


def test_repeated_rows_of_a_series_day_are_summed():
    # Two rows for (team ml, day 20): $60 + $40 = $100, the same as one $100 row.
    one = spend(("ml", {i: 100.0 for i in range(21)}))
    two = pl.concat(
        [spend(("ml", {i: 100.0 for i in range(20)})), spend(("ml", {20: 60.0})), spend(("ml", {20: 40.0}))]
    )
    assert an.score(two, calendar(21)).equals(an.score(one, calendar(21)))
    assert row(an.score(two, calendar(21), rescore_last=1), "ml")["actual_usd"] == 100.0


# --- lifecycle ----------------------------------------------------------------------------------------------


def _scored_days(value: str, days: list[tuple[int, str, bool, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(day(i), "team", value, s, a, imp) for i, s, a, imp in days],
        schema=["usage_date", "monitor", "value", "state", "alertable", "impact_usd"],
        orient="row",
    )


ML_DAYS = [
    (1, "normal", False, 5.0),  # no episode
    (2, "high", True, 100.0),  # opens: impact when opened = 100
    (3, "high", True, 150.0),  # 150 < 2 × 100: still open
    (4, "high", True, 200.0),  # 200 ≥ 2 × 100: escalated
    (5, "high", False, 40.0),  # out of band, below the thresholds: stays escalated
    (6, "normal", False, 3.0),  # back in band: closed
    (7, "normal", False, 1.0),  # no episode
    (8, "low", True, -120.0),  # a new episode
]


def test_lifecycle_open_escalated_closed_with_a_stable_identity():
    frame = pl.concat([_scored_days("ml", ML_DAYS), _scored_days("bi", [(2, "high", True, 70.0)])])
    out = an.lifecycle(frame)
    ml = out.filter(pl.col("value") == "ml").sort("usage_date")
    assert ml["status"].to_list() == [None, "open", "open", "escalated", "escalated", "closed", None, "open"]
    # Identity = SHA-256 of "monitor␟value␟first day", first 16 hex digits — computed here independently.
    first = hashlib.sha256(b"team\x1fml\x1f2025-01-08").hexdigest()[:16]  # day 2 = 2025-01-08
    second = hashlib.sha256(b"team\x1fml\x1f2025-01-14").hexdigest()[:16]  # day 8
    assert ml["anomaly_id"].to_list() == [None, first, first, first, first, first, None, second]
    assert ml["opened_on"].to_list()[1:6] == [day(2)] * 5
    assert ml["opening_impact_usd"].to_list()[1:6] == [100.0] * 5
    # Same first day, other value: another identity.
    bi = out.filter(pl.col("value") == "bi").row(0, named=True)
    assert bi["status"] == "open" and bi["anomaly_id"] not in (first, second)


def test_lifecycle_carries_an_open_episode_into_a_rescore_window():
    # The asset re-scores days 4–8 only; day 3's stored row says: open since day 2, opened at impact 100.
    full = an.lifecycle(_scored_days("ml", ML_DAYS))
    window = _scored_days("ml", ML_DAYS[3:])
    carry = full.filter(pl.col("usage_date") == day(3)).select(
        "monitor", "value", "opened_on", "opening_impact_usd", "status"
    )
    out = an.lifecycle(window, carry)
    expected = full.filter(pl.col("usage_date") >= day(4))
    assert out.select("usage_date", "status", "anomaly_id", "opened_on").equals(
        expected.select("usage_date", "status", "anomaly_id", "opened_on")
    )
    # Without the carry, day 4 would open a new episode under another id.
    alone = an.lifecycle(window)
    assert alone["status"][0] == "open" and alone["anomaly_id"][0] != expected["anomaly_id"][0]


# --- root cause -----------------------------------------------------------------------------------------------


def test_root_causes_rank_what_moved_in_the_direction_of_the_impact():
    # Alert: team ml on day 10, baseline days 3, 4, 5, impact +280. Its rows by job (user):
    #   job A (u1): 100, 100, 100 → day 10: 400   expected median 100 → delta +300
    #   job B (u1):  50,  60,  70 → day 10:  80   expected median  60 → delta  +20
    #   job C (u2): 200,   –, 200 → day 10:   –   expected median(200, 0, 200) = 200 → delta −200 (fell: dropped)
    #   job E (u2):   –,   –,   – → day 10: 150   expected median(0, 0, 0) = 0 → delta +150
    #   team bi's job A on day 10 ($999) is not team ml's.
    # By user: u1 = 150, 160, 170 → 480: +320;  u2 = 200, 0, 200 → 150: 150 − 200 = −50 (dropped).
    jobs_of = [
        ("ml", "A", "u1", {3: 100, 4: 100, 5: 100, 10: 400}),
        ("ml", "B", "u1", {3: 50, 4: 60, 5: 70, 10: 80}),
        ("ml", "C", "u2", {3: 200, 5: 200}),
        ("ml", "E", "u2", {10: 150}),
        ("bi", "A", "u1", {10: 999}),
    ]
    rows = pl.DataFrame(
        [
            {"usage_date": day(i), "team": t, "job": j, "user": u, "cost_usd": float(c)}
            for t, j, u, costs in jobs_of
            for i, c in costs.items()
        ]
    )
    scored = pl.DataFrame(
        {
            "usage_date": [day(10)],
            "monitor": ["team"],
            "value": ["ml"],
            "impact_usd": [280.0],
            "alertable": [True],
            "baseline_days": [[day(3), day(4), day(5)]],
        }
    )
    out = an.root_causes(rows, scored, dimensions=["job", "user", "team"])
    assert out.columns == an.ROOT_CAUSE_COLUMNS
    job = out.filter(pl.col("contributor_dimension") == "job")
    assert job["contributor_value"].to_list() == ["A", "E", "B"]
    assert job["delta_usd"].to_list() == [300.0, 150.0, 20.0]
    assert job["expected_usd"].to_list() == [100.0, 0.0, 60.0]
    assert job["rank"].to_list() == [1, 2, 3]
    assert job["share_of_impact"][0] == pytest.approx(300 / 280)
    user = out.filter(pl.col("contributor_dimension") == "user")
    assert user.select("contributor_value", "delta_usd").rows() == [("u1", 320.0)]
    # The monitor's own dimension is no contributor of itself.
    assert "team" not in out["contributor_dimension"].to_list()
    # top_n cuts per dimension.
    top2 = an.root_causes(rows, scored, top_n=2, dimensions=["job"])
    assert top2["contributor_value"].to_list() == ["A", "E"]


def test_root_causes_of_a_drop_rank_what_fell():
    # Alert impact −150 on day 10 (baseline days 3, 4, 5). Job A: 200, 200, 200 → 50: −150; job B: 0 → 40: +40.
    rows = pl.DataFrame(
        {
            "usage_date": [day(3), day(4), day(5), day(10), day(10)],
            "team": ["ml"] * 5,
            "job": ["A", "A", "A", "A", "B"],
            "cost_usd": [200.0, 200.0, 200.0, 50.0, 40.0],
        }
    )
    scored = pl.DataFrame(
        {
            "usage_date": [day(10)],
            "monitor": ["team"],
            "value": ["ml"],
            "impact_usd": [-150.0],
            "alertable": [True],
            "baseline_days": [[day(3), day(4), day(5)]],
        }
    )
    out = an.root_causes(rows, scored, dimensions=["job"])
    assert out.select("contributor_value", "delta_usd", "rank").rows() == [("A", -150.0, 1)]


# --- building the series from attributed rows ---------------------------------------------------------------


def test_sku_family_drops_tier_photon_and_region():
    names = pl.Series(
        [
            "PREMIUM_JOBS_COMPUTE",
            "PREMIUM_JOBS_COMPUTE_(PHOTON)",
            "ENTERPRISE_ALL_PURPOSE_COMPUTE_(PHOTON)",
            "PREMIUM_SERVERLESS_SQL_COMPUTE_US_EAST_N_VIRGINIA",
            "PREMIUM_ALL_PURPOSE_SERVERLESS_COMPUTE_EUROPE_LONDON",
            "STANDARD_DLT_CORE_COMPUTE",
            None,
        ]
    )
    assert pl.select(an.sku_family(pl.lit(names))).to_series().to_list() == [
        "JOBS_COMPUTE",
        "JOBS_COMPUTE",
        "ALL_PURPOSE_COMPUTE",
        "SERVERLESS_SQL_COMPUTE",
        "ALL_PURPOSE_SERVERLESS_COMPUTE",
        "DLT_CORE_COMPUTE",
        UNTAGGED,
    ]


CLUSTERS = clusters(
    {"cluster_id": "tagged", "custom_tags": '{"team":"analytics"}', "creator_user_name": "owner@x"},
    {"cluster_id": "job-c", "custom_tags": "{}"},
)
JOB_TABLE = jobs(
    {"job_id": 5, "team": "ml", "tenant": "acme", "creator_user_name": "creator@x"},
    {"job_id": 6, "creator_user_name": "other@x"},
)


def _attributed() -> tuple[pl.DataFrame, pl.DataFrame]:
    """One day: cluster "tagged" 10 DBU shared by job 5 (3 DBU est) and job 6 (1 DBU est); its Photon SKU 4
    DBU idle; job cluster of job 5 (1 DBU); endpoint "chat" 2 DBU. Every SKU at $0.50/DBU."""
    bill = usage(
        {"cluster_id": "tagged", "usage_quantity": 10.0},
        {"cluster_id": "tagged", "usage_quantity": 4.0, "sku_name": AP_PHOTON},
        {"endpoint_name": "chat", "usage_quantity": 2.0, "sku_name": SERVING},
        {"cluster_id": "job-c", "usage_quantity": 1.0, "sku_name": JOBS, "job_id": 5, "job_run_id": 55},
    )
    est = estimate(
        {"cluster_id": "tagged", "task_run_id": 1, "job_id": 5, "dbus": 3.0},
        {"cluster_id": "tagged", "task_run_id": 2, "job_id": 6, "dbus": 1.0},
        {"cluster_id": "tagged", "consumer": "idle", "dbus": 4.0, "sku_name": AP_PHOTON},
    )
    return attributed_costs(reconciliation(bill, est, prices(), "AWS"), est, JOB_TABLE, CLUSTERS), bill


def _monitor(frame: pl.DataFrame, monitor: str) -> dict[str, float]:
    return dict(frame.filter(monitor=monitor).select("value", "cost_usd").iter_rows())


def test_spend_frame_from_attributed_rows_matches_cost_by_scope():
    attributed, bill = _attributed()
    rows = an.spend_rows(attributed, JOB_TABLE, CLUSTERS, bill)
    frame = an.spend_frame(rows)
    assert frame.columns == an.SPEND_COLUMNS
    total = (10 + 4 + 2 + 1) * PRICE  # $8.50
    # Every monitor but endpoint_user sums to the day's attributed total.
    for monitor in ["account", "workspace_sku", *TAG_DIMENSIONS, "job", "user"]:
        assert sum(_monitor(frame, monitor).values()) == pytest.approx(total), monitor
    assert _monitor(frame, "account") == {"all": pytest.approx(total)}
    # SKU family: AP and AP (Photon) are one family ($7.00); JOBS $0.50; serving $1.00.
    assert _monitor(frame, "workspace_sku") == pytest.approx(
        {f"{WS}|ALL_PURPOSE_COMPUTE": 7.0, f"{WS}|JOBS_COMPUTE": 0.5, f"{WS}|SERVERLESS_REAL_TIME_INFERENCE": 1.0}
    )
    # Without serving_costs the endpoint's money is one endpoint_user value with no user.
    assert _monitor(frame, "endpoint_user") == pytest.approx({f"chat|{UNTAGGED}": 1.0})
    # The scope monitors are cost_by_scope's numbers (summed over workspaces; one workspace here).
    scope = cost_by_scope(attributed, JOB_TABLE, CLUSTERS, bill)
    for dimension in [*TAG_DIMENSIONS, "job", "user"]:
        expected = dict(scope.filter(dimension=dimension).select("value", "billed_cost_usd").iter_rows())
        assert _monitor(frame, dimension) == pytest.approx(expected), dimension
    # Idle Photon money on "tagged" is its creator's.
    assert _monitor(frame, "user")["owner@x"] == pytest.approx(2.0)


def test_spend_rows_with_the_serving_split():
    attributed, bill = _attributed()
    serving = pl.DataFrame(
        {
            "usage_date": [bill["usage_date"][0]] * 2,
            "workspace_id": [WS, WS],
            "tenant": ["globex", UNTAGGED],
            "user": ["u@x", UNTAGGED],
            "endpoint_name": ["chat", "chat"],
            "actual_usd": [0.75, 0.25],  # the endpoint's $1.00, split by tokens
        }
    )
    frame = an.spend_frame(an.spend_rows(attributed, JOB_TABLE, CLUSTERS, bill, serving_costs=serving))
    assert _monitor(frame, "endpoint_user") == pytest.approx({"chat|u@x": 0.75, f"chat|{UNTAGGED}": 0.25})
    assert _monitor(frame, "tenant")["globex"] == pytest.approx(0.75)
    # The split rows keep the endpoint's SKU family and the totals.
    assert _monitor(frame, "workspace_sku")[f"{WS}|SERVERLESS_REAL_TIME_INFERENCE"] == pytest.approx(1.0)
    assert _monitor(frame, "account")["all"] == pytest.approx(8.5)
    scope = cost_by_scope(
        attributed,
        JOB_TABLE,
        CLUSTERS,
        bill,
        serving_costs=serving.with_columns(
            pl.lit("a").alias("agent"),
            pl.lit("m").alias("model"),
            pl.lit(0.0).alias("actual_dbus"),
            pl.lit(0.0).alias("estimated_usd"),
        ),
    )
    assert _monitor(frame, "tenant") == pytest.approx(
        dict(scope.filter(dimension="tenant").select("value", "billed_cost_usd").iter_rows())
    )


def test_unknown_money_is_flagged_not_counted_as_zero():
    # A day whose money is partly unknown (an unpriced SKU) is no baseline point and never alertable.
    frame = spend(("ml", {i: 100.0 for i in range(29)})).with_columns(pl.lit(False).alias("unpriced"))
    frame = frame.with_columns(
        pl.when(pl.col("usage_date") == day(28)).then(pl.lit(20.0)).otherwise("cost_usd").alias("cost_usd"),
        (pl.col("usage_date") == day(28)).alias("unpriced"),
    )
    r = row(an.score(frame, calendar(29), rescore_last=1), "ml")
    # $20 known of an unknown total vs expected $100: low by the numbers, but not alertable.
    assert (r["unpriced"], r["state"], r["alertable"]) == (True, "low", False)
    attributed, bill = _attributed()
    unknown = attributed.with_columns(
        pl.when(pl.col("resource_type") == "endpoint").then(None).otherwise("billed_cost_usd").alias("billed_cost_usd")
    )
    spent = an.spend_frame(an.spend_rows(unknown, JOB_TABLE, CLUSTERS, bill))
    account = spent.filter(monitor="account").row(0, named=True)
    assert (account["cost_usd"], account["unpriced"]) == (pytest.approx(7.5), True)
