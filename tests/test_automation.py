"""Automation is on by default, and the documented ways to backfill a range do what the README says.

- ``dagster asset materialize --select '*' --partition-range A...B`` (a subprocess, as a user types it):
  one run with the reference prices and every daily asset over the range.
- A backfill launched the way the UI launches it (the GraphQL ``launchPartitionBackfill`` mutation, through
  dagster_graphql's test utilities) and carried out by a real ``dagster-daemon``: the daily assets of a
  range in one run; with the unpartitioned reference assets selected too, the runs the README names.
"""

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from cost_assets.definitions import build_defs
from cost_assets.resources.warehouse import read_table
from tests.conftest import MART_TABLES, QUIET, RAW_TABLES, sim_environ

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BACKFILL_TIMEOUT_S = 300
DAILY_KEYS = [["raw", "job_runs"], ["raw", "jobs"], ["raw", "clusters"], ["raw", "cluster_events"],
              ["raw", "billing_usage"], ["raw", "serving_usage"], ["mart", "cluster_segments"], ["mart", "run_costs"],
              ["mart", "reconciliation"], ["mart", "attributed_costs"], ["mart", "serving_costs"],
              ["mart", "cost_by_scope"]]
REF_KEYS = [["ref", "dbu_prices"], ["ref", "instance_types"]]
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def test_schedules_and_sensor_run_by_default(defs: dg.Definitions):
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {"daily_pipeline_schedule", "reference_prices_schedule"}
    assert all(s.default_status == dg.DefaultScheduleStatus.RUNNING for s in schedules.values())
    # The prices are refreshed an hour before the daily run that reads them.
    assert schedules["reference_prices_schedule"].cron_schedule == "0 5 * * *"
    assert schedules["reference_prices_schedule"].job_name == "reference_prices"
    assert [s.default_status for s in defs.sensors] == [dg.DefaultSensorStatus.RUNNING]


def _home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME with the instance settings `make run` / `make ui` use (sqlite, one DuckDB writer)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "local-dagster.yaml", home / "dagster.yaml")
    return home


def _days(database: Path, table: str) -> list[dt.date]:
    return sorted(read_table(str(database), table)["usage_date"].unique().to_list())


def test_cli_partition_range_over_every_asset_is_one_run(tmp_path: Path, database: Path):
    home = _home(tmp_path)
    env = {**os.environ, **sim_environ(database), "DAGSTER_HOME": str(home)}
    done = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "--select", "*",
         "--partition-range", "2026-01-02...2026-01-03", "-m", "cost_assets.definitions"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for table in RAW_TABLES + MART_TABLES:
        assert _days(database, table) == [dt.date(2026, 1, 2), dt.date(2026, 1, 3)], table
    assert read_table(str(database), "ref.dbu_prices").height > 0
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
    assert len(runs) == 1
    assert (runs[0].tags[RANGE_START], runs[0].tags[RANGE_END]) == ("2026-01-02", "2026-01-03")


@pytest.fixture
def daemon_instance(tmp_path: Path, database: Path, monkeypatch) -> Iterator[tuple[dg.DagsterInstance, Path]]:
    """A temporary instance, a workspace of the project on the simulated world, and a dagster-daemon on both
    (it launches the backfill's runs). The code server the GraphQL context starts inherits the environment."""
    home = _home(tmp_path)
    for name, value in {**sim_environ(database), "DAGSTER_HOME": str(home)}.items():
        monkeypatch.setenv(name, value)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text("load_from:\n  - python_module:\n      module_name: cost_assets.definitions\n"
                         f"      working_directory: {REPO}\n      location_name: cost_assets\n")
    log = tmp_path / "daemon.log"
    with dg.DagsterInstance.from_config(str(home)) as instance, log.open("wb") as out:
        daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=REPO,
                                  env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield instance, workspace
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()


def _launch(context, keys: list[list[str]], days: list[str]) -> str:
    """Launch a backfill as the UI does (launchPartitionBackfill with an asset selection and partitions)."""
    answer = execute_dagster_graphql(context, LAUNCH_PARTITION_BACKFILL_MUTATION, variables={"backfillParams": {
        "assetSelection": [{"path": k} for k in keys], "partitionNames": days, "fromFailure": False}})
    launched = answer.data["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def _runs_when_done(instance: dg.DagsterInstance, backfill_id: str) -> list:
    """Wait for the daemon to finish the backfill; its runs."""
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    while (status := instance.get_backfill(backfill_id).status.value) == "REQUESTED":
        assert time.monotonic() < deadline, "the daemon did not finish the backfill"
        time.sleep(1)
    assert status == "COMPLETED_SUCCESS", status
    return instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))


def _keys(run) -> set[str]:
    return {k.to_user_string() for k in run.asset_selection}


def test_ui_backfills_make_the_runs_the_readme_names(daemon_instance, database: Path):
    """Both backfills at once (the daemon ticks every 30 s): the daily assets of 01-04..05 alone, and every
    asset over 01-02..03. The prices are stored first, as the 05:00 schedule would have done."""
    instance, workspace = daemon_instance
    defs = build_defs(sim_environ(database))
    assert defs.resolve_job_def("reference_prices").execute_in_process(instance=instance, run_config=QUIET).success
    with define_out_of_process_context(str(workspace), None, instance) as context:
        daily_only = _launch(context, DAILY_KEYS, ["2026-01-04", "2026-01-05"])
        everything = _launch(context, REF_KEYS + DAILY_KEYS, ["2026-01-02", "2026-01-03"])
    daily = {"/".join(k) for k in DAILY_KEYS}
    ref = {"/".join(k) for k in REF_KEYS}

    # The daily assets only: one run for the range.
    runs = _runs_when_done(instance, daily_only)
    assert len(runs) == 1
    assert _keys(runs[0]) == daily
    assert (runs[0].tags[RANGE_START], runs[0].tags[RANGE_END]) == ("2026-01-04", "2026-01-05")

    # Every asset (the asset graph's "Materialize all"): Dagster runs the unpartitioned prices in a run of
    # their own, and the marts that read them wait for it, so three runs, each daily asset in exactly one
    # of them, for the whole range.
    runs = _runs_when_done(instance, everything)
    assert len(runs) == 3
    assert sorted(len(_keys(r) & ref) for r in runs) == [0, 0, 2]
    daily_runs = [r for r in runs if _keys(r) <= daily]
    assert sorted(k for r in daily_runs for k in _keys(r)) == sorted(daily)
    assert {(r.tags[RANGE_START], r.tags[RANGE_END]) for r in daily_runs} == {("2026-01-02", "2026-01-03")}
    for table in RAW_TABLES + MART_TABLES:
        assert _days(database, table) == [dt.date(2026, 1, d) for d in (2, 3, 4, 5)], table
