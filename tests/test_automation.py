"""Automation is on by default, and the documented ways to backfill a range do what the README says.

- ``dagster asset materialize --select '*' --partition-range A...B`` (a subprocess, as a user types it):
  one run with the price snapshots and every other daily asset over the range.
- A backfill launched the way the UI launches it (the GraphQL ``launchPartitionBackfill`` mutation, through
  dagster_graphql's test utilities) and carried out by a real ``dagster-daemon``: every asset of a range
  (the asset graph's "Materialize all") in one run, and a selection of them in one run too.
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

from cost_assets.resources.warehouse import read_table
from tests.conftest import MART_TABLES, RAW_TABLES, sim_environ

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BACKFILL_TIMEOUT_S = 300
DAILY_KEYS = [
    ["ref", "dbu_prices"],
    ["ref", "instance_types"],
    ["raw", "job_runs"],
    ["raw", "jobs"],
    ["raw", "clusters"],
    ["raw", "cluster_events"],
    ["raw", "instance_pools"],
    ["raw", "billing_usage"],
    ["raw", "serving_usage"],
    ["raw", "serving_entities"],
    ["raw", "ai_gateway_usage"],
    ["mart", "cluster_segments"],
    ["mart", "estimated_costs"],
    ["mart", "run_costs"],
    ["mart", "reconciliation"],
    ["mart", "attributed_costs"],
    ["mart", "serving_costs"],
    ["mart", "cost_by_scope"],
    ["sim", "run_cost_accuracy"],
]
RAW_KEYS = [k for k in DAILY_KEYS if k[0] == "raw"]
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def test_schedules_and_sensor_run_by_default(defs: dg.Definitions):
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {"daily_pipeline_schedule"}
    assert schedules["daily_pipeline_schedule"].default_status == dg.DefaultScheduleStatus.RUNNING
    assert defs.resolve_schedule_def("daily_pipeline_schedule").job_name == "daily_pipeline"
    sensors = {s.name: s.default_status for s in defs.sensors}
    assert sensors == {
        "late_billing_sensor": dg.DefaultSensorStatus.RUNNING,
        "run_failure_alert_sensor": dg.DefaultSensorStatus.RUNNING,
        "cost_anomaly_sensor": dg.DefaultSensorStatus.RUNNING,
    }


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
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "--select",
            "*",
            "--partition-range",
            "2026-01-02...2026-01-03",
            "-m",
            "cost_assets.definitions",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
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
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: cost_assets.definitions\n"
        f"      working_directory: {REPO}\n      location_name: cost_assets\n"
    )
    log = tmp_path / "daemon.log"
    with dg.DagsterInstance.from_config(str(home)) as instance, log.open("wb") as out:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=REPO,
            env=dict(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
    answer = execute_dagster_graphql(
        context,
        LAUNCH_PARTITION_BACKFILL_MUTATION,
        variables={
            "backfillParams": {
                "assetSelection": [{"path": k} for k in keys],
                "partitionNames": days,
                "fromFailure": False,
            }
        },
    )
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


def test_ui_backfills_make_one_run_per_range(daemon_instance, database: Path):
    """Both backfills at once (the daemon ticks every 30 s): every asset over 01-02..03 (the asset graph's
    "Materialize all"), and the raw tables alone over 01-04..05."""
    instance, workspace = daemon_instance
    with define_out_of_process_context(str(workspace), None, instance) as context:
        everything = _launch(context, DAILY_KEYS, ["2026-01-02", "2026-01-03"])
        raw_only = _launch(context, RAW_KEYS, ["2026-01-04", "2026-01-05"])

    # Every asset, the price snapshots included: one run for the range.
    runs = _runs_when_done(instance, everything)
    assert len(runs) == 1
    assert _keys(runs[0]) == {"/".join(k) for k in DAILY_KEYS}
    assert (runs[0].tags[RANGE_START], runs[0].tags[RANGE_END]) == ("2026-01-02", "2026-01-03")

    # A selection: one run too.
    runs = _runs_when_done(instance, raw_only)
    assert len(runs) == 1 and _keys(runs[0]) == {"/".join(k) for k in RAW_KEYS}
    assert (runs[0].tags[RANGE_START], runs[0].tags[RANGE_END]) == ("2026-01-04", "2026-01-05")
    for table in [*MART_TABLES, "ref.dbu_prices"]:
        assert _days(database, table) == [dt.date(2026, 1, 2), dt.date(2026, 1, 3)], table
    for table in RAW_TABLES:
        assert _days(database, table) == [dt.date(2026, 1, d) for d in (2, 3, 4, 5)], table
