"""The planted cost anomalies of the simulated world (simulation/planted.py) and the detection score."""

import datetime as dt
import json

import polars as pl

from cost_assets.simulation import planted
from cost_assets.simulation.world import (
    HOUR,
    WorldConfig,
    generate_world,
    ground_truth_anomalies,
    runaway_job,
    weekend_cluster_id,
)
from cost_assets.simulation.world import _workspace as workspace_of
from cost_assets.timeutil import day_start_ms

# 2026-11-17 is 504 = 24 · 21 days after 2025-07-01: cycle day 0, a Tuesday.
CYCLE = dt.date(2026, 11, 17)
RUNAWAY = [dt.date(2026, 11, 24), dt.date(2026, 11, 25), dt.date(2026, 11, 26)]  # cycle days 7–9
FRIDAY = dt.date(2026, 11, 20)  # cycle day 3
SPIKE = dt.date(2026, 12, 2)  # cycle day 15


def test_the_cycle_puts_each_kind_on_its_weekdays():
    assert planted.cycle_day(CYCLE) == 0 and CYCLE.strftime("%a") == "Tue"
    assert [d.strftime("%a") for d in RUNAWAY] == ["Tue", "Wed", "Thu"]
    assert all(planted.is_runaway_day(d) for d in RUNAWAY)
    assert not planted.is_runaway_day(RUNAWAY[0] - dt.timedelta(days=1))
    weekend = [FRIDAY + dt.timedelta(days=k) for k in range(4)]
    assert [d.strftime("%a") for d in weekend] == ["Fri", "Sat", "Sun", "Mon"]
    assert [planted.weekend_friday(d) for d in weekend] == [FRIDAY] * 4
    assert planted.is_spike_day(SPIKE) and SPIKE.strftime("%a") == "Wed"
    # 21 days later, the same again.
    assert planted.is_spike_day(SPIKE + dt.timedelta(days=21))


def test_any_22_consecutive_days_hold_every_kind():
    # What a 35-day run can score: its days 13 … 34 (12 days of history first; the newest closed day is
    # the day before yesterday). Every start over two cycles:
    for k in range(42):
        days = [CYCLE + dt.timedelta(days=k + i) for i in range(22)]
        assert any(planted.is_runaway_day(d) for d in days)
        assert any(planted.weekend_friday(d) for d in days)
        assert any(planted.is_spike_day(d) for d in days)


def test_the_calendar_tests_days_carry_no_planted_anomaly():
    # 2026-01-01 … 01-08 (the days the calendar and accuracy tests materialize) are cycle days 16–20, 0–2.
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=k) for k in range(8)]
    assert [planted.cycle_day(d) for d in days] == [16, 17, 18, 19, 20, 0, 1, 2]
    assert not planted.planted(days, 1, lambda f: "c")


def test_a_bare_world_config_plants_nothing_and_the_rest_of_the_day_stays_the_same():
    config = WorldConfig(start=RUNAWAY[0], days=1)
    bare, planted_world = generate_world(config), generate_world(WorldConfig(start=RUNAWAY[0], days=1, anomalies=True))
    extra = {r.run_id for r in planted_world.runs} - {r.run_id for r in bare.runs}
    assert len(extra) == 1  # the runaway run; every other run is drawn as before
    assert [(r.run_id, r.start, r.end) for r in bare.runs] == [
        (r.run_id, r.start, r.end) for r in planted_world.runs if r.run_id not in extra
    ]
    (run,) = [r for r in planted_world.runs if r.run_id in extra]
    job = runaway_job(workspace_of(config))
    cluster = planted_world.clusters[run.tasks[0].cluster_id]
    assert run.job_id == job.job_id and cluster.num_workers == planted.RUNAWAY_WORKERS
    # From 01:00–01:30 to 22:00–23:00 of the day: at least 20.5 h.
    day0 = day_start_ms(RUNAWAY[0])
    assert day0 + HOUR <= run.start <= day0 + HOUR + HOUR // 2 and run.end - run.start >= 20.5 * HOUR
    assert bare.requests == planted_world.requests  # no spike that day


def test_the_weekend_cluster_is_untagged_all_purpose_and_up_all_weekend():
    world = generate_world(WorldConfig(start=FRIDAY + dt.timedelta(days=1), days=1, anomalies=True))
    cluster = world.clusters[weekend_cluster_id(world.config, FRIDAY)]
    assert (cluster.source, cluster.custom_tags, cluster.workload) == ("UI", {}, "all_purpose")
    (session,) = cluster.sessions
    # Friday 18:00 to Monday 07:00–08:00.
    assert session.start == day_start_ms(FRIDAY) + 18 * HOUR
    monday = day_start_ms(FRIDAY + dt.timedelta(days=3))
    assert monday + 7 * HOUR <= session.end <= monday + 8 * HOUR
    assert not [r for r in world.runs if any(t.cluster_id == cluster.cluster_id for t in r.tasks)]


def test_the_spike_is_one_tenants_long_context_requests():
    world = generate_world(WorldConfig(start=SPIKE, days=1, anomalies=True))
    bare = generate_world(WorldConfig(start=SPIKE, days=1))
    spike = [r for r in world.requests if r not in bare.requests]
    assert len(spike) == planted.SPIKE_REQUESTS == 400
    assert {(r["endpoint_name"], r["usage_context"]["tenant"]) for r in spike} == {("support-bot", "globex")}
    # 400 requests × (90,000 + 10,000) tokens = 40 M tokens.
    assert sum(r["input_token_count"] + r["output_token_count"] for r in spike) == 40_000_000


def test_ground_truth_names_each_planted_anomaly_by_its_keys():
    config = WorldConfig(start=CYCLE, days=21, anomalies=True)
    days = [CYCLE + dt.timedelta(days=k) for k in range(21)]
    truth = {p.kind: p for p in ground_truth_anomalies(config, days)}
    job = runaway_job(workspace_of(config)).job_id
    assert truth["runaway_job"].keys == (("job", str(job)),)
    assert (truth["runaway_job"].first_day, truth["runaway_job"].last_day) == (RUNAWAY[0], RUNAWAY[-1])
    assert truth["weekend_cluster"].keys == (("resource", f"cluster:{weekend_cluster_id(config, FRIDAY)}"),)
    assert truth["serving_spike"].keys == (("tenant", "globex"), ("resource", "endpoint:support-bot"))
    assert ground_truth_anomalies(WorldConfig(start=CYCLE, days=21), days) == []
    # A world without the support-bot endpoint (tiny: one endpoint) has no spike.
    tiny = WorldConfig(scale="tiny", start=CYCLE, days=21, anomalies=True)
    assert {p.kind for p in ground_truth_anomalies(tiny, days)} == {"runaway_job", "weekend_cluster"}


def _alert(day, monitor, value, anomaly_id, contributors=(), *, incident=None, account_baseline=True):
    return {
        "usage_date": day + dt.timedelta(days=1),
        "scored_date": day,
        "monitor": monitor,
        "value": value,
        "alertable": True,
        "anomaly_id": anomaly_id,
        "baseline": "weekday" if account_baseline else None,
        "top_contributors": json.dumps([{"dimension": d, "value": v} for d, v in contributors]),
        "incident_id": incident,
    }


def _account(day):
    """The account series scored with a baseline that day (no alert)."""
    return {**_alert(day, "account", "all", None), "alertable": False}


def test_detection_counts_incidents_matched_by_series_or_contributor_on_the_planted_days():
    truth = planted.planted_frame(planted.planted([*RUNAWAY, SPIKE], 107926, lambda f: "c"))
    anomalies = pl.DataFrame(
        [
            _account(RUNAWAY[0]),
            _account(SPIKE),
            _alert(RUNAWAY[0], "job", "107926", "a", incident="i1"),  # the runaway job's own series
            # By contributor (the job), and e in the same incident (its cluster) though it names no job.
            _alert(RUNAWAY[1], "team", "t", "b", [("resource", "cluster:x"), ("job", "107926")], incident="i2"),
            _alert(RUNAWAY[1], "project", "q", "e", [("resource", "cluster:x")], incident="i2"),
            _alert(RUNAWAY[1], "team", "u", "c", [("resource", "cluster:y")], incident="i3"),  # same day, unrelated
            _alert(SPIKE, "job", "107926", "d", incident="i4"),  # the runaway job, but not on a runaway day
        ]
    )
    result = planted.detection(anomalies, truth, [RUNAWAY[0], SPIKE])
    # Counted: the runaway (its first day has an account baseline) and the spike (its day too). Found: the
    # runaway (incidents i1, i2). Incidents i3 and i4 are explained by none → precision 2 / 4 incidents =
    # 0.5, recall 1 / 2 = 0.5.
    assert result["planted"] == [f"runaway_job:{RUNAWAY[0]}", f"serving_spike:{SPIKE}"]
    assert result["found"] == [f"runaway_job:{RUNAWAY[0]}"]
    assert (result["precision"], result["recall"]) == (0.5, 0.5)
    assert result["incidents"] == ["i1", "i2", "i3", "i4"]
    assert result["other_incidents"] == ["i3", "i4"]
    # Per alert: e is explained by its incident's match (b's job contributor).
    runaway = f"runaway_job:{RUNAWAY[0]}"
    found = dict(result["alerts"].select("anomaly_id", "planted_id").rows())
    assert found == {"a": runaway, "b": runaway, "e": runaway, "c": None, "d": None}
