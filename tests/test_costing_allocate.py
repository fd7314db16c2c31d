"""Sharing a cluster's cost among runs: hand-computed splits and a conservation property."""

import datetime as dt

import polars as pl
import pytest
from costing_builders import T0, at, clusters, events, standard_prices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cost_assets.costing.allocate import allocate, shared_cluster_flags
from cost_assets.costing.price import MONEY_COLUMNS, price_segments
from cost_assets.costing.timeline import cluster_segments

END = T0 + dt.timedelta(days=1)
RUNS_SCHEMA = {
    "cluster_id": pl.String,
    "task_run_id": pl.Int64,
    "run_start": pl.Datetime("us"),
    "run_end": pl.Datetime("us"),
    "compute_type": pl.String,
    "weight": pl.Float64,
}


def runs(*rows: tuple) -> pl.DataFrame:
    """``(cluster_id, task_run_id, start_minute, end_minute[, weight[, compute_type]])``."""
    out = []
    for cluster_id, task_run_id, start, end, *rest in rows:
        weight = rest[0] if rest else 1.0
        compute = rest[1] if len(rest) > 1 else "all_purpose"
        out.append((cluster_id, task_run_id, at(start), at(end), compute, weight))
    return pl.DataFrame(out, schema=RUNS_SCHEMA, orient="row")


def priced(cl: pl.DataFrame, ev: pl.DataFrame) -> pl.DataFrame:
    it, dp = standard_prices()
    return price_segments(cluster_segments(cl, ev, T0, END), it, dp)


def shares(alloc: pl.DataFrame, column: str = "dbus") -> dict:
    """Fraction of the allocated total per consumer key (task_run_id, or 'idle')."""
    per = alloc.group_by("consumer", "task_run_id").agg(pl.col(column).sum())
    total = per[column].sum()
    return {
        (r["task_run_id"] if r["consumer"] == "run" else "idle"): r[column] / total for r in per.iter_rows(named=True)
    }


# One shared cluster up 0–100 min: 2 workers + driver = 3 nodes × 2 DBU/h × 100/60 h = 10 DBU.
SHARED = clusters({"cluster_id": "c"})
SHARED_EVENTS = events(("c", 0, "RUNNING", 2, 2), ("c", 100, "TERMINATING", None, None))


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # A alone 0–20 and 40–100 (80 min) + half of 20–40 (10 min) = 90 of 100; B: half of 20 = 10.
        ([("c", 1, 0, 100), ("c", 2, 20, 40)], {1: 0.90, 2: 0.10}),
        # A alone 0–40 + half of 40–60 = 50; B half of 40–60 + alone 60–100 = 50.
        ([("c", 1, 0, 60), ("c", 2, 40, 100)], {1: 0.50, 2: 0.50}),
        # 0–10 A; 10–20 A,B (5 each); 20–30 A,B,C (10/3 each); 30–90 A,C (30 each); 90–100 A.
        # A = 10 + 5 + 10/3 + 30 + 10 = 58.33; B = 5 + 10/3 = 8.33; C = 10/3 + 30 = 33.33 (of 100).
        (
            [("c", 1, 0, 100), ("c", 2, 10, 30), ("c", 3, 20, 90)],
            {1: (10 + 5 + 10 / 3 + 30 + 10) / 100, 2: (5 + 10 / 3) / 100, 3: (10 / 3 + 30) / 100},
        ),
        # Gaps 30–50 and 90–100 have no run → idle = 30 of 100 minutes.
        ([("c", 1, 0, 30), ("c", 2, 50, 90)], {1: 0.30, 2: 0.40, "idle": 0.30}),
        # Weights 3:1 over the same 100 minutes → 75 % / 25 %.
        ([("c", 1, 0, 100, 3.0), ("c", 2, 0, 100, 1.0)], {1: 0.75, 2: 0.25}),
    ],
)
def test_shared_cluster_split(rows, expected):
    alloc = allocate(priced(SHARED, SHARED_EVENTS), runs(*rows))
    assert alloc["dbus"].sum() == pytest.approx(3 * 2.0 * 100 / 60)
    got = shares(alloc)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12)


def test_job_cluster_startup_and_teardown_belong_to_its_runs():
    # Job cluster: CREATING 0–5 (VM only), RUNNING 5–65. Tasks t1 10–40 and t2 10–60 share it.
    # Rates in $/min (3 nodes): RUNNING = (6 DBU/h × 0.15 + 3 × 0.192)/60 = 1.476/60 = 0.0246,
    # CREATING = 3 × 0.192 / 60 = 0.0096.
    # Run-free time: hour 0 has 0–5 and 5–10 (10 min, 5 × 0.0096 + 5 × 0.0246 = 0.171), hour 1 has 60–65
    # (5 min, 5 × 0.0246 = 0.123): 15 min, 0.294 in all. Parts by run time 30:50: t1 15 × 30/80 = 5.625 min,
    # t2 9.375 min. Laid end to end (both start at 10, so t1 first by id): t1 takes the first 5.625 of hour
    # 0's 10 min, t2 the other 4.375 and all of hour 1.
    # t1 = 30 × 0.0246 / 2 + 0.171 × 5.625/10 = 0.369 + 0.0961875 = 0.4651875
    # t2 = 30 × 0.0246 / 2 + 20 × 0.0246 + 0.171 × 4.375/10 + 0.123 = 0.369 + 0.492 + 0.0748125 + 0.123
    #    = 1.0588125
    cl = clusters({"cluster_id": "j", "cluster_source": "JOB"})
    ev = events(
        ("j", 0, "CREATING", None, 2),
        ("j", 5, "RUNNING", 2, 2),
        ("j", 65, "TERMINATING", None, None),
    )
    alloc = allocate(priced(cl, ev), runs(("j", 1, 10, 40, 1.0, "job_cluster"), ("j", 2, 10, 60, 1.0, "job_cluster")))
    assert set(alloc["consumer"]) == {"run"}
    total = alloc.with_columns((pl.col("dbu_cost_usd") + pl.col("vm_cost_usd")).alias("usd"))
    per = dict(total.group_by("task_run_id").agg(pl.col("usd").sum()).iter_rows())
    assert per[1] == pytest.approx(0.4651875, rel=1e-12)
    assert per[2] == pytest.approx(1.0588125, rel=1e-12)
    assert per[1] + per[2] == pytest.approx(0.048 + 1.476, rel=1e-12)
    # One row per run × hour it has money in: t1 and t2 in hour 0 (their own run time and hand-off), t2 in
    # hour 1 (the tear-down only): 3.
    assert alloc.select("consumer", "task_run_id", "cluster_id", "hour_start").is_unique().all()
    assert alloc.height == 3
    by_hour = {
        (r, h.minute + 60 * (h.hour - T0.hour)): u
        for r, h, u in total.select("task_run_id", "hour_start", "usd").iter_rows()
    }
    assert by_hour[(2, 60)] == pytest.approx(0.123, rel=1e-12)


def test_job_cluster_hand_off_follows_the_runs_order_of_start():
    # Job cluster RUNNING 0–240 (3 nodes, $0.0246/min). t1 runs 60–90, t2 150–180 (equal parts of the 180
    # run-free minutes: 90 each). Run-free per hour: h0 60 min, h1 30 (90–120), h2 30 (120–150), h3 60
    # (180–240). End to end: t1 (started first) takes h0 and h1 (0–90), t2 takes h2 and h3 (90–180).
    cl = clusters({"cluster_id": "j", "cluster_source": "JOB"})
    ev = events(("j", 0, "RUNNING", 2, 2), ("j", 240, "TERMINATING", None, None))
    alloc = allocate(priced(cl, ev), runs(("j", 2, 150, 180, 1.0, "job_cluster"), ("j", 1, 60, 90, 1.0, "job_cluster")))
    usd = alloc.with_columns((pl.col("dbu_cost_usd") + pl.col("vm_cost_usd")).alias("usd"))
    got = {(r, h.hour - T0.hour): u for r, h, u in usd.select("task_run_id", "hour_start", "usd").iter_rows()}
    rate = 0.0246
    assert got == pytest.approx(
        {
            (1, 0): 60 * rate,  # hand-off of hour 0
            (1, 1): 30 * rate + 30 * rate,  # its run 60–90 + the run-free 90–120
            (2, 2): 30 * rate + 30 * rate,  # the run-free 120–150 + its run 150–180
            (2, 3): 60 * rate,  # tear-down 180–240
        },
        rel=1e-12,
    )


def test_job_cluster_without_runs_keeps_an_idle_row():
    cl = clusters({"cluster_id": "j", "cluster_source": "JOB"})
    ev = events(("j", 0, "RUNNING", 2, 2), ("j", 30, "TERMINATING", None, None))
    alloc = allocate(priced(cl, ev), runs())
    assert alloc["consumer"].to_list() == ["idle"]
    assert alloc["dbus"].sum() == pytest.approx(3 * 2.0 * 0.5)


def test_hourly_grain_cuts_runs_at_the_hour():
    # Run 30–90 on the 0–100 cluster: 30 min in hour 0, 30 min in hour 1; idle 0–30 and 90–100.
    alloc = allocate(priced(SHARED, SHARED_EVENTS), runs(("c", 1, 30, 90)))
    per = {
        (r["consumer"], r["hour_start"]): r["dbus"]
        for r in alloc.group_by("consumer", "hour_start").agg(pl.col("dbus").sum()).iter_rows(named=True)
    }
    dbu_per_min = 3 * 2.0 / 60
    assert per == pytest.approx(
        {
            ("run", at(0)): 30 * dbu_per_min,
            ("run", at(60)): 30 * dbu_per_min,
            ("idle", at(0)): 30 * dbu_per_min,
            ("idle", at(60)): 10 * dbu_per_min,
        }
    )


def test_shared_flags():
    cl = clusters({"cluster_id": "j", "cluster_source": "JOB"}, {"cluster_id": "u", "cluster_source": "UI"})
    segs = cluster_segments(cl, events(), T0, END)
    r = runs(("j", 1, 0, 1), ("u", 2, 0, 1), ("x", 3, 0, 1, 1.0, "job_cluster"), ("y", 4, 0, 1))
    flags = dict(shared_cluster_flags(segs, r, cl).collect().iter_rows())
    assert flags == {"j": False, "u": True, "x": False, "y": True}


# ---------------------------------------------------------------- conservation property
EVENT_KINDS = ["STARTING", "RUNNING", "RESIZING", "UPSIZE_COMPLETED", "NODES_LOST", "TERMINATING"]


@st.composite
def world(draw):
    n_clusters = draw(st.integers(1, 3))
    cluster_rows, event_rows, run_rows = [], [], []
    task = 0
    for i in range(n_clusters):
        cid = f"c{i}"
        source = draw(st.sampled_from(["JOB", "UI", "API"]))
        availability = draw(st.sampled_from(["ON_DEMAND", "SPOT", "SPOT_WITH_FALLBACK"]))
        cluster_rows.append(
            {
                "cluster_id": cid,
                "cluster_source": source,
                "availability": availability,
                "first_on_demand": draw(st.integers(0, 3)),
                "is_single_node": draw(st.booleans()),
            }
        )
        minutes = draw(st.lists(st.integers(-180, 1500), min_size=1, max_size=12, unique=True))
        for m in sorted(minutes):
            kind = draw(st.sampled_from(EVENT_KINDS))
            cur = draw(st.none() | st.integers(0, 8))
            tgt = draw(st.none() | st.integers(0, 8))
            extra = {"reason_code": "SPOT_INSTANCE_TERMINATION"} if kind == "NODES_LOST" else {}
            event_rows.append((cid, m, kind, cur, tgt, extra))
        for _ in range(draw(st.integers(0, 6))):
            task += 1
            start = draw(st.integers(-60, 1440))
            length = draw(st.integers(0, 600))
            weight = draw(st.sampled_from([1.0, 0.5, 2.0, 3.7]))
            run_rows.append((cid, task, start, min(start + length, 1440), weight, "all_purpose"))
    return cluster_rows, event_rows, run_rows


@settings(
    max_examples=int(__import__("os").environ.get("COSTING_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(world())
def test_conservation_property(w):
    cluster_rows, event_rows, run_rows = w
    cl = clusters(*cluster_rows)
    segs = priced(cl, events(*event_rows))
    clipped = runs(*[(c, t, max(s, 0), max(e, 0), wt, ct) for c, t, s, e, wt, ct in run_rows])
    flags = shared_cluster_flags(segs, clipped, cl)
    alloc = allocate(segs, clipped, flags)
    assert alloc.select("consumer", "task_run_id", "cluster_id", "hour_start").is_unique().all()
    for grain, frame in ((["cluster_id"], alloc), (["cluster_id", "hour_start"], alloc)):
        want = segs.group_by(grain).agg(pl.col(m).fill_null(0).sum() for m in MONEY_COLUMNS)
        got = frame.group_by(grain).agg(pl.col(m).sum().alias(f"got_{m}") for m in MONEY_COLUMNS)
        both = want.join(got, on=grain, how="full", coalesce=True).fill_null(0.0)
        for m in MONEY_COLUMNS:
            for expected, actual in both.select(m, f"got_{m}").iter_rows():
                assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # Job clusters with runs have no idle.
    job_with_runs = {r[0] for r in run_rows} & {c["cluster_id"] for c in cluster_rows if c["cluster_source"] == "JOB"}
    assert not set(alloc.filter(pl.col("consumer") == "idle")["cluster_id"]) & job_with_runs


def test_unsorted_input_gives_the_same_split_and_overlap_is_an_error():
    segs = priced(SHARED, SHARED_EVENTS)
    r = runs(("c", 1, 0, 100), ("c", 2, 10, 30), ("c", 3, 20, 90))
    want = shares(allocate(segs, r))
    assert shares(allocate(segs.reverse(), r)) == pytest.approx(want, rel=1e-12)
    overlapping = pl.concat([segs, segs.head(1)])
    with pytest.raises(ValueError, match="overlap on cluster c"):
        allocate(overlapping, r)
