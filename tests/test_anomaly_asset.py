"""mart/cost_anomalies through the daily job on the simulated world (small scale, 2026-01-06 … 01-22, the
bill's clock frozen on 01-25): each partition holds the last 3 closed days ≤ it, the planted serving spike
of 01-21 (cycle day 15) is found, re-materializing a day gives the same rows, and a planned mark takes the
days out of the alerts."""

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cost_assets.anomaly_feedback import FeedbackStore
from cost_assets.assets.anomalies import COST_ANOMALIES
from cost_assets.costing.anomalies import anomaly_id
from cost_assets.definitions import build_defs
from cost_assets.resources.simulated import SimulatedBillingSource
from tests.conftest import run_daily, sim_environ, table

FIRST, LAST, CLOCK = "2026-01-06", "2026-01-22", "2026-01-25"
SPIKE = dt.date(2026, 1, 21)


def _defs(tmp_path):
    defs = build_defs(
        sim_environ(
            tmp_path / "ledger.duckdb",
            COST_ASSETS_SIM_SCALE="small",
            COST_ASSETS_ALERT_STORE=str(tmp_path / "alerts.sqlite"),
        )
    )
    billing = SimulatedBillingSource(world=defs.resources["billing"].world, as_of=CLOCK)
    return dg.Definitions(assets=defs.assets, jobs=defs.jobs, resources={**defs.resources, "billing": billing})


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("anomalies")
    defs = _defs(tmp_path)
    result = run_daily(defs, FIRST, LAST)
    assert result.success
    return tmp_path, defs, result


def _partition(database, day: str) -> pl.DataFrame:
    return table(database, "mart.cost_anomalies").filter(pl.col("usage_date") == dt.date.fromisoformat(day))


def test_each_partition_holds_the_last_three_closed_days(materialized):
    tmp_path, _, _ = materialized
    frame = table(tmp_path / "ledger.duckdb", "mart.cost_anomalies")
    days = frame.group_by("usage_date").agg(pl.col("scored_date").unique().sort()).sort("usage_date")
    # 01-22: its ORIGINAL records came on 01-23 and corrections of 01-19 … 01-22 on up to the clock, 01-25
    # ≥ 01-22 + 2 days: every day up to 01-22 is closed, so 01-20, 01-21, 01-22.
    last = days.row(-1, named=True)
    assert last["usage_date"] == dt.date(2026, 1, 22)
    assert last["scored_date"] == [dt.date(2026, 1, 20), SPIKE, dt.date(2026, 1, 22)]
    # Every partition: at most 3 days, none after it; the first (01-06) has history from 01-06 only.
    assert all(len(d) <= 3 and max(d) <= u for u, d in days.iter_rows())
    assert days.row(0)[1][-1] <= dt.date(2026, 1, 6)


def test_the_planted_spike_is_found_with_its_contributors(materialized):
    tmp_path, _, result = materialized
    rows = _partition(tmp_path / "ledger.duckdb", LAST)
    globex = rows.filter((pl.col("monitor") == "tenant") & (pl.col("value") == "globex"))
    spike = globex.filter(pl.col("scored_date") == SPIKE).row(0, named=True)
    # 01-21 has 15 days before it in the run (01-06 … 01-20): the 28-day rolling baseline (≥ 12 points).
    assert (spike["baseline"], spike["state"], spike["alertable"], spike["status"]) == (
        "rolling_28d",
        "high",
        True,
        "open",
    )
    # 400 requests × 100,000 tokens = 40 M tokens × 40 DBU per M × $0.112 = $179.20 more than usual; the
    # tenant's usual day (~$12, jobs and serving) varies by a few dollars around its median.
    assert spike["impact_usd"] == pytest.approx(179.20, abs=20)
    contributors = {(c["dimension"], c["value"]) for c in json.loads(spike["top_contributors"])}
    assert ("resource", "endpoint:support-bot") in contributors
    assert spike["anomaly_id"] == anomaly_id("tenant", "globex", SPIKE)
    # Metadata of 01-21 (whose newest closed day is 01-21; by 01-22 the spike is over and its episode
    # closed): counts by state, and the open anomalies as a table.
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == COST_ANOMALIES and e.partition == str(SPIKE)
    ]
    metadata = event.materialization.metadata
    assert "tenant = globex" in metadata["open_anomalies_table"].value
    assert metadata["states"].value.get("high", 0) >= 1
    # The simulated world's yardstick: the spike is among the planted anomalies found.
    detection = table(tmp_path / "ledger.duckdb", "sim.anomaly_detection").filter(
        pl.col("usage_date") == dt.date(2026, 1, 22)
    )
    assert f"serving_spike:{SPIKE}" in detection.filter("found")["planted_id"].to_list()


def test_a_day_materialized_again_has_the_same_rows_and_a_planned_mark_silences_it(materialized):
    tmp_path, defs, _ = materialized
    database = tmp_path / "ledger.duckdb"
    before = _partition(database, LAST)
    assert run_daily(defs, LAST).success  # alone now: the open episodes come from the stored 01-21
    assert_frame_equal(_partition(database, LAST), before)

    FeedbackStore(tmp_path / "alerts.sqlite").record(
        anomaly_id("tenant", "globex", SPIKE),
        "planned",
        "the globex launch",
        monitor="tenant",
        value="globex",
        first_day=SPIKE,
        last_day=SPIKE,
        escalation=0,
    )
    assert run_daily(defs, LAST).success
    after = _partition(database, LAST).filter(
        (pl.col("monitor") == "tenant") & (pl.col("value") == "globex") & (pl.col("scored_date") == SPIKE)
    )
    assert after.select("planned", "alertable", "feedback").row(0) == (True, False, "planned")
