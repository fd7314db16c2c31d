"""The raw and reference assets through real Dagster runs into a temporary DuckDB file."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from cost_assets.definitions import build_defs
from cost_assets.ingest.fetch import WorkspaceDay
from cost_assets.resources.simulated import SimulatedWorkspace
from tests.conftest import MART_TABLES, RAW_TABLES, run_daily, sim_environ, table


def test_a_day_materialized_twice_leaves_the_same_rows(defs, database):
    assert run_daily(defs, "2026-01-02").success
    first = {name: table(database, name) for name in RAW_TABLES}
    assert run_daily(defs, "2026-01-02").success
    for name in RAW_TABLES:
        assert first[name].height > 0, name
        assert_frame_equal(table(database, name), first[name])


def test_three_day_single_run_backfill_equals_three_single_day_runs(tmp_path):
    one_run, three_runs = tmp_path / "one.duckdb", tmp_path / "three.duckdb"
    result = run_daily(build_defs(sim_environ(one_run)), "2026-01-02", "2026-01-04")
    assert result.success
    # single_run(): one run in which every step ran once, over the whole range.
    steps = [e.step_key for e in result.get_step_success_events()]
    assert len(steps) == len(set(steps)) and "workspace_tables" in steps
    separate = build_defs(sim_environ(three_runs))
    for day in ("2026-01-02", "2026-01-03", "2026-01-04"):
        assert run_daily(separate, day).success
    for name in RAW_TABLES + MART_TABLES:
        assert_frame_equal(table(one_run, name), table(three_runs, name))
        days = table(one_run, name)["usage_date"].unique().sort().to_list()
        assert days == [dt.date(2026, 1, 2), dt.date(2026, 1, 3), dt.date(2026, 1, 4)], name


def test_an_empty_day_creates_empty_tables(defs, database):
    # 2025-06-01 is before the simulated workspace was created (world.ANCHOR): no runs, no clusters, no bill.
    assert run_daily(defs, "2025-06-01").success
    for name in RAW_TABLES + MART_TABLES:
        frame = table(database, name)
        assert frame.height == 0, name
        assert "usage_date" in frame.columns


def test_job_runs_include_runs_that_started_the_day_before(database):
    defs = build_defs(sim_environ(database, COST_ASSETS_SIM_SCALE="small"))
    assert run_daily(defs, "2026-01-03").success
    runs = table(database, "raw.job_runs")
    day_start = dt.datetime(2026, 1, 3)
    earlier = runs.filter(pl.col("start_time") < day_start)
    assert earlier.height > 0
    assert (earlier["end_time"] > day_start).all()


class BrokenWorkspace(SimulatedWorkspace):
    """Returns a job_runs frame whose second row repeats the first, and a task ending before it starts."""

    def fetch(self, days: list[dt.date]) -> WorkspaceDay:
        got = super().fetch(days)
        runs = got.job_runs
        bad = pl.concat([runs.head(1), runs]).with_columns(
            pl.when(pl.int_range(pl.len()) == 3)
            .then(pl.col("start_time") - dt.timedelta(days=2))
            .otherwise(pl.col("end_time"))
            .alias("end_time")
        )
        return WorkspaceDay(job_runs=bad, jobs=got.jobs, clusters=got.clusters, cluster_events=got.cluster_events)


def test_a_contract_violation_fails_its_check_names_the_rows_and_writes_nothing(defs, database):
    assert run_daily(defs, "2026-01-02").success
    before = table(database, "raw.job_runs")
    broken = dg.Definitions(
        assets=defs.assets,
        jobs=defs.jobs,
        resources={**defs.resources, "workspace": BrokenWorkspace(world=defs.resources["workspace"].world)},
    )
    result = run_daily(broken, "2026-01-02", raise_on_error=False)
    assert not result.success
    evaluations = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
    failed = evaluations["raw/job_runs"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    # Rows 0 and 1 share a task_run_id; row 3 ends before it starts.
    assert failed.metadata["failing_row_numbers"].value == "0, 1, 3"
    assert "first_failing_rows" in failed.metadata
    assert evaluations["raw/jobs"].passed
    assert_frame_equal(table(database, "raw.job_runs"), before)


def _prices(defs: dg.Definitions, **kwargs) -> dg.ExecuteInProcessResult:
    """The day's price snapshot alone (the ref assets of the daily job, one partition)."""
    return defs.resolve_job_def("daily_pipeline").execute_in_process(
        partition_key="2026-01-02",
        asset_selection=[dg.AssetKey(["ref", "dbu_prices"]), dg.AssetKey(["ref", "instance_types"])],
        **kwargs,
    )


def test_reference_tables_load_and_bad_prices_file_changes_nothing(tmp_path, database):
    good = build_defs(sim_environ(database))
    assert _prices(good).success
    before = table(database, "ref.instance_types")
    assert before.height >= 30 and set(before["cloud"]) >= {"AZURE", "AWS"}
    prices = tmp_path / "my_prices.yaml"
    prices.write_text(
        "instance_types:\n  - {cloud: AZURE, node_type_id: Standard_X1, vcpus: 4, memory_gb: 16,"
        " dbu_per_hour: 1.0, vm_on_demand_per_hour: -0.5, effective_from: 2026-01-01}\n"
    )
    bad = build_defs(sim_environ(database, COST_ASSETS_PRICES=str(prices)))
    result = _prices(bad, raise_on_error=False)
    assert not result.success
    message = str(result.all_events)
    assert "my_prices.yaml" in message and "instance_types[0].vm_on_demand_per_hour" in message
    assert_frame_equal(table(database, "ref.instance_types"), before)


def test_overrides_file_adds_a_node_type(tmp_path, database):
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "instance_types:\n  - {cloud: AWS, node_type_id: x9.huge, vcpus: 96, memory_gb: 768,"
        " dbu_per_hour: 20.0, vm_on_demand_per_hour: 9.5, vm_spot_per_hour: 3.0,"
        " effective_from: 2026-01-01}\n"
    )
    defs = build_defs(sim_environ(database, COST_ASSETS_PRICES=str(prices)))
    assert _prices(defs).success
    with duckdb.connect(str(database), read_only=True) as con:
        row = con.execute(
            "select dbu_per_hour, source from ref.instance_types where node_type_id = ?", ["x9.huge"]
        ).fetchone()
    assert row == (20.0, "overrides:prices.yaml")


def test_simulated_resources_answer_for_the_last_complete_days(tmp_path: Path):
    """The simulated workspace and bill answer for any day, yesterday included (its ORIGINAL records are
    ingested today)."""
    defs = build_defs({"COST_ASSETS_DUCKDB": str(tmp_path / "d.duckdb")})
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    assert defs.resources["workspace"].fetch([yesterday]).job_runs.height > 0
    assert defs.resources["billing"].usage([yesterday]).height > 0


class FewerRequests(SimulatedWorkspace):
    """A serving source that has forgotten three quarters of each day's requests."""

    def serving_usage(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        frame = super().serving_usage(days, stats)
        return frame.head(frame.height // 4)


def test_a_shrunken_serving_answer_keeps_the_stored_day_unless_the_run_accepts_it(defs, database):
    assert run_daily(defs, "2026-01-02").success
    stored = table(database, "raw.serving_usage")
    assert stored.height >= 8  # enough that a quarter is well past the 50 % threshold
    forgetful = dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        resources={**defs.resources, "workspace": FewerRequests(world=defs.resources["workspace"].world)},
    )
    result = run_daily(forgetful, "2026-01-02")
    assert result.success  # an optional source never fails the day
    assert_frame_equal(table(database, "raw.serving_usage"), stored)
    warn = next(
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == "raw/serving_usage" and e.check_name == "sources_complete"
    )
    assert not warn.passed and "stored rows kept" in warn.description
    accepted = run_daily(forgetful, "2026-01-02", tags={"cost_assets/accept_smaller_source": "true"})
    assert accepted.success
    assert table(database, "raw.serving_usage").height == stored.height // 4


def test_a_bill_stored_before_the_identity_columns_gains_them_on_the_next_write(defs, database):
    """A ledger whose raw.billing_usage predates run_by/created_by/owned_by: the next days' writes add the
    columns (NULL on the rows stored before) instead of failing as schema drift, and re-writing an old day
    works too."""
    assert run_daily(defs, "2026-01-02").success
    with duckdb.connect(str(database)) as con:
        for col in ("run_by", "created_by", "owned_by"):
            con.execute(f"ALTER TABLE raw.billing_usage DROP COLUMN {col}")
    old = table(database, "raw.billing_usage")
    assert "created_by" not in old.columns
    assert run_daily(defs, "2026-01-03").success
    bill = table(database, "raw.billing_usage")
    assert {"run_by", "created_by", "owned_by"} <= set(bill.columns)
    day2 = bill.filter(pl.col("usage_date") == dt.date(2026, 1, 2))
    assert day2.height == old.height  # the stored day is untouched, its new columns NULL
    assert day2.select("run_by", "created_by", "owned_by").null_count().row(0) == (old.height,) * 3
    assert run_daily(defs, "2026-01-02").success
