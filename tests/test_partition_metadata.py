"""A single-run backfill over several days gives every day's materialization that day's own metadata.

Expected values come from the stored DuckDB tables filtered on the day, an independent source from the
metadata the assets compute in memory.
"""

import datetime as dt
import re

import dagster as dg
import polars as pl
import pytest

from cost_assets.resources.warehouse import read_table
from tests.conftest import run_daily

FIRST, SECOND = dt.date(2026, 1, 2), dt.date(2026, 1, 3)


@pytest.fixture
def two_days(defs: dg.Definitions) -> dg.ExecuteInProcessResult:
    result = run_daily(defs, FIRST.isoformat(), SECOND.isoformat())
    assert result.success
    return result


def _metadata(result: dg.ExecuteInProcessResult, key: str, day: dt.date) -> dict:
    """The metadata of the materialization of ``key``'s partition ``day`` in the run."""
    events = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == key and e.materialization.partition == day.isoformat()
    ]
    assert len(events) == 1, (key, day, len(events))
    return {k: v.value for k, v in events[0].metadata.items()}


def _day(database, name: str, day: dt.date) -> pl.DataFrame:
    return read_table(str(database), name).filter(pl.col("usage_date") == day)


def _is_cents(value: float) -> bool:
    return abs(value * 100 - round(value * 100)) < 1e-6


@pytest.mark.parametrize(
    ("key", "table", "column", "meta_key"),
    [
        ("mart/attributed_costs", "mart.attributed_costs", "billed_cost_usd", "attributed_usd"),
        ("mart/run_costs", "mart.run_costs", "total_cost_usd", "total_cost_usd"),
        ("mart/reconciliation", "mart.reconciliation", "billed_cost_usd", "billed_usd"),
    ],
)
def test_each_day_carries_its_own_rows_and_total_in_cents(two_days, database, key, table, column, meta_key):
    totals = {}
    for day in (FIRST, SECOND):
        stored = _day(database, table, day)
        meta = _metadata(two_days, key, day)
        assert stored.height > 0
        assert meta["dagster/row_count"] == stored.height  # the day's rows, not the window's
        exact = float(stored[column].sum())
        assert meta[meta_key] == pytest.approx(round(exact, 2), abs=1e-9)  # that day's total, to the cent
        assert _is_cents(meta[meta_key])
        totals[day] = meta[meta_key]
    window = read_table(str(database), table)
    assert window.height == (_day(database, table, FIRST).height + _day(database, table, SECOND).height)
    assert totals[FIRST] != totals[SECOND]  # two different days: a per-window total would repeat itself


def test_dbus_to_four_decimals_and_the_accuracy_keys_are_per_day(two_days, database):
    for day in (FIRST, SECOND):
        recon = _day(database, "mart.reconciliation", day)
        meta = _metadata(two_days, "mart/reconciliation", day)
        assert meta["billed_dbus"] == pytest.approx(round(float(recon["billed_dbus"].sum()), 4), abs=1e-12)
        assert meta["reasons"] == dict(recon.group_by("reason").len().iter_rows())
        attributed = _metadata(two_days, "mart/attributed_costs", day)
        # accuracy/unattributed_usd is that day's unattributed consumer dollars.
        ledger = _day(database, "mart.attributed_costs", day)
        unattributed = float(ledger.filter(pl.col("consumer") == "unattributed")["billed_cost_usd"].sum())
        assert attributed["accuracy/unattributed_usd"] == pytest.approx(round(unattributed, 2), abs=1e-9)
        assert 0 <= attributed["accuracy/within_5pct_share"] <= 1


def test_ground_truth_metadata_counts_the_days_runs(two_days, database):
    runs = {day: _metadata(two_days, "sim/run_cost_accuracy", day)["truth/runs"] for day in (FIRST, SECOND)}
    stored = read_table(str(database), "mart.run_costs").filter(pl.col("consumer") == "run")
    for day, count in runs.items():
        # Runs with a ground-truth cost that day; every one of them has estimated rows that day.
        assert 0 < count <= stored.filter(pl.col("usage_date") == day)["run_id"].n_unique()
    assert sum(runs.values()) <= stored.select("usage_date", "run_id").unique().height


def test_previews_show_money_in_cents(two_days):
    preview = _metadata(two_days, "mart/run_costs", SECOND)["preview"]
    lines = [line for line in preview.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    money = [i for i, c in enumerate(header) if c.endswith("_usd")]
    assert money
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert cells
    for row in cells:
        for i in money:
            assert re.fullmatch(r"|-?\d+(\.\d{1,2})?(e-?\d+)?", row[i]), (header[i], row[i])
