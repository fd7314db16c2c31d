"""The simulated world is anchored to the calendar: a day's rows never depend on the window or the run date.

2026-11-28 is generated as the only day of a window, as the middle of a two-week window and as the last
day of another; materialized alone and inside a backfill, under a bill clock of 2026-11-30 and of
2026-12-08. Its workspace tables, serving requests, ORIGINAL bill records and ground truth stay the same;
only the corrections (ingested 3-5 days after the usage) appear once the clock has passed them.
"""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cost_assets.definitions import build_defs
from cost_assets.ingest import fetch, parse
from cost_assets.prices import load_price_sheet
from cost_assets.resources.simulated import SimulatedBillingSource
from cost_assets.sensors import late_billing_sensor
from cost_assets.simulation import truth, views
from cost_assets.simulation.api import SimulatedApi
from cost_assets.simulation.world import ANCHOR, DAY, WorldConfig, generate_world, world_for
from tests.conftest import QUIET, run_daily, sim_environ, table

THE_DAY = dt.date(2026, 11, 28)
LO = parse.to_ms(parse.day_bounds(THE_DAY)[0])
HI = LO + DAY
WINDOWS = [
    WorldConfig(start=THE_DAY, days=1),
    WorldConfig(start=dt.date(2026, 11, 20), days=14),
    WorldConfig(start=dt.date(2026, 11, 25), days=4),
]
WORKSPACE_TABLES = ["raw.job_runs", "raw.jobs", "raw.clusters", "raw.cluster_events", "raw.serving_usage"]


def _payloads_of_the_day(config: WorldConfig) -> dict:
    """Everything the APIs and the bill show of THE_DAY in the world of ``config``, serialized."""
    world = world_for(config)
    runs = [r for r in world.runs if r.start < HI and r.end >= LO]
    clusters = sorted(
        {t.cluster_id for r in runs for t in r.tasks}
        | {c.cluster_id for c in world.clusters.values() if c.created is not None}
    )
    return {
        "runs": [views.run_payload(world, r) for r in runs],
        "jobs": [views.job_payload(world, world.jobs[j]) for j in sorted({r.job_id for r in runs})],
        "clusters": [views.cluster_payload(world, c) for c in clusters],
        # The day's events and what came before 00:00 on the same day's sessions (the day before's).
        "events": [e for c in clusters for e in views.cluster_events(world, c) if LO - DAY <= e["timestamp"] < HI],
        "bill": [r for r in views.bill(world, load_price_sheet()) if r["usage_date"] == THE_DAY.isoformat()],
        "serving": views.serving_rows(world, LO, HI),
    }


def test_the_same_date_gives_the_same_payloads_in_every_window():
    first, *others = [_payloads_of_the_day(config) for config in WINDOWS]
    assert first["runs"] and first["bill"] and first["serving"]
    # Runs that started late the day before and crossed midnight are there in the one-day window too.
    assert any(r["start_time"] < LO for r in first["runs"])
    for other in others:
        for key in first:
            assert json.dumps(other[key], sort_keys=True) == json.dumps(first[key], sort_keys=True), key


def test_the_same_date_gives_the_same_tables_and_truth_in_every_window():
    fetched = [fetch.fetch_day(SimulatedApi(config), THE_DAY) for config in WINDOWS]
    truths = [truth.run_costs_for(config).filter(pl.col("usage_date") == THE_DAY) for config in WINDOWS]
    assert fetched[0].job_runs.height > 0 and truths[0].height > 0
    for got, real in zip(fetched[1:], truths[1:], strict=True):
        for name in ("job_runs", "jobs", "clusters", "cluster_events"):
            assert_frame_equal(getattr(got, name), getattr(fetched[0], name))
        assert_frame_equal(real, truths[0])


def test_run_ids_come_from_the_date_not_from_the_days_generated_before():
    world = world_for(WINDOWS[1])
    started = [r for r in world.runs if LO <= r.start < HI]
    # 2026-11-28 is day 739,948 of the proleptic Gregorian calendar: its ids are 7,399,480,000,000 + a counter.
    assert THE_DAY.toordinal() == 739_948
    assert started and all(7_399_480_000_000 < r.run_id < 7_399_490_000_000 for r in started)


def test_the_always_on_cluster_is_up_in_every_window_and_found_by_walking_back():
    """Fixed size and on demand, started at ANCHOR: nothing in a day's 2-day look-back fixes its state at
    00:00, the walk-back finds its start, whichever window was generated."""
    for config in WINDOWS:
        world = world_for(config)
        always_on = [c for c in world.clusters.values() if c.created is not None and len(c.sessions) == 1]
        assert len(always_on) == 1
        session = always_on[0].sessions[0]
        assert session.start == always_on[0].created == parse.to_ms(parse.day_bounds(ANCHOR)[0]) + 60_000
        assert [e["type"] for e in session.events if e["timestamp"] < LO] in (
            ["CREATING", "RUNNING"],
            ["CREATING", "INIT_SCRIPTS_STARTED", "RUNNING"],
        )
        events = fetch.fetch_day(SimulatedApi(config), THE_DAY).cluster_events.filter(
            cluster_id=always_on[0].cluster_id
        )
        assert events["event_type"].to_list() == ["CREATING", "RUNNING"]
        assert events["is_lookback"].all()


def test_nothing_happens_before_the_workspace_was_created():
    world = generate_world(WorldConfig(scale="tiny", start=ANCHOR - dt.timedelta(days=3), days=2))
    assert world.runs == [] and world.requests == []
    assert all(s.start >= parse.to_ms(parse.day_bounds(ANCHOR)[0]) for c in world.clusters.values() for s in c.sessions)


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        # ORIGINAL records are ingested the day after the usage; the five corrected hours of the day are
        # retracted and restated 3-5 days after it (two hours on 12-01, two on 12-02, one on 12-03).
        (dt.date(2026, 11, 28), {}),
        (dt.date(2026, 11, 29), {("ORIGINAL", "2026-11-29"): 140}),
        (
            dt.date(2026, 12, 1),
            {("ORIGINAL", "2026-11-29"): 140, ("RETRACTION", "2026-12-01"): 2, ("RESTATEMENT", "2026-12-01"): 2},
        ),
        (
            dt.date(2026, 12, 8),
            {
                ("ORIGINAL", "2026-11-29"): 140,
                ("RETRACTION", "2026-12-01"): 2,
                ("RESTATEMENT", "2026-12-01"): 2,
                ("RETRACTION", "2026-12-02"): 2,
                ("RESTATEMENT", "2026-12-02"): 2,
                ("RETRACTION", "2026-12-03"): 1,
                ("RESTATEMENT", "2026-12-03"): 1,
            },
        ),
    ],
)
def test_a_record_shows_once_the_clock_reaches_its_ingestion_date(clock, expected):
    rows = [r for r in views.billing_usage_rows(WINDOWS[0], clock) if r["usage_date"] == THE_DAY.isoformat()]
    got: dict[tuple[str, str], int] = {}
    for r in rows:
        got[(r["record_type"], r["ingestion_date"])] = got.get((r["record_type"], r["ingestion_date"]), 0) + 1
    assert got == expected


def test_the_default_clock_is_today():
    today = dt.datetime.now(dt.UTC).date()
    config = WorldConfig(scale="tiny", start=today - dt.timedelta(days=6), days=7)
    rows = views.billing_usage_rows(config)
    assert rows and max(r["ingestion_date"] for r in rows) == today.isoformat()  # yesterday's usage, today
    assert rows == views.billing_usage_rows(config, today)


def _materialize(tmp_path: Path, name: str, clock: str, first: str, last: str | None) -> Path:
    """THE_DAY through the daily job, with the simulated bill's clock frozen at ``clock``."""
    database = tmp_path / f"{name}.duckdb"
    defs = build_defs(sim_environ(database, COST_ASSETS_SIM_SCALE="small"))
    billing = SimulatedBillingSource(world=defs.resources["billing"].world, as_of=clock)
    defs = dg.Definitions(assets=defs.assets, jobs=defs.jobs, resources={**defs.resources, "billing": billing})
    assert run_daily(defs, first, last).success
    return database


def _of_the_day(database: Path, name: str) -> pl.DataFrame:
    return table(database, name).filter(pl.col("usage_date") == THE_DAY)


def test_a_day_materialized_under_two_windows_and_clocks_keeps_its_rows(tmp_path: Path):
    # Alone on 2026-11-30; then inside a four-day backfill on 2026-12-08.
    early = _materialize(tmp_path, "early", "2026-11-30", THE_DAY.isoformat(), None)
    late = _materialize(tmp_path, "late", "2026-12-08", "2026-11-26", "2026-11-29")
    for name in WORKSPACE_TABLES:
        assert _of_the_day(early, name).height > 0, name
        assert_frame_equal(_of_the_day(late, name), _of_the_day(early, name))

    bill_early, bill_late = _of_the_day(early, "raw.billing_usage"), _of_the_day(late, "raw.billing_usage")
    assert bill_early.height == 140 and set(bill_early["record_type"]) == {"ORIGINAL"}
    assert_frame_equal(bill_late.filter(record_type="ORIGINAL"), bill_early)
    corrections = bill_late.filter(pl.col("record_type") != "ORIGINAL")
    assert corrections.height == 10 and set(corrections["record_type"]) == {"RETRACTION", "RESTATEMENT"}
    assert bill_early["ingestion_date"].max() <= dt.date(2026, 11, 30)
    assert bill_late["ingestion_date"].max() <= dt.date(2026, 12, 8)
    assert corrections["ingestion_date"].min() > dt.date(2026, 11, 30)


def test_late_billing_sensor_finds_corrections_as_the_clock_moves_on(tmp_path: Path):
    """Materialized when only the ORIGINAL records were in, a recent day is requested again once the
    clock passes the ingestion date of its corrections."""
    today = dt.datetime.now(dt.UTC).date()
    defs = build_defs(sim_environ(tmp_path / "w.duckdb"))
    world = defs.resources["billing"].world
    # A recent day (inside the sensor's 14-day look-back) with a corrected hour; most tiny days have one.
    day = next(
        d
        for d in (today - dt.timedelta(days=k) for k in range(13, 5, -1))
        if any(
            r["record_type"] != "ORIGINAL"
            for r in views.billing_usage_rows(world.config_for([d]), d + dt.timedelta(days=6))
            if r["usage_date"] == d.isoformat()
        )
    )

    def on(clock: dt.date) -> dg.Definitions:
        billing = SimulatedBillingSource(world=world, as_of=clock.isoformat())
        return dg.Definitions(
            assets=defs.assets, jobs=defs.jobs, sensors=defs.sensors, resources={**defs.resources, "billing": billing}
        )

    def tick(clock: dt.date) -> list[str]:
        then = on(clock)
        context = dg.build_sensor_context(
            instance=instance, resources={"billing": then.resources["billing"]}, definitions=then
        )
        return [r.partition_key for r in late_billing_sensor.evaluate_tick(context).run_requests]

    instance = dg.DagsterInstance.ephemeral()
    first = on(day + dt.timedelta(days=1))
    assert dg.materialize(
        first.assets,
        selection=dg.AssetSelection.assets(["raw", "billing_usage"]),
        partition_key=day.isoformat(),
        instance=instance,
        resources=first.resources,
        run_config=QUIET,
    ).success
    assert tick(day + dt.timedelta(days=2)) == []  # corrections come 3-5 days after the usage
    assert tick(day + dt.timedelta(days=6)) == [day.isoformat()]
