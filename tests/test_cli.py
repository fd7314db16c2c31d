"""`cost-assets run`, the command behind `make run`, as a user runs it (a subprocess in a fresh folder)."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from cost_assets import report
from cost_assets.cli import _days, app
from cost_assets.read import WarehouseMissingError

YESTERDAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("args", "environ", "days"),
    [
        (
            ["--start", "2026-01-01", "--end", "2026-01-02"],
            {"COST_ASSETS_BUDGETS": str(Path(__file__).resolve().parents[1] / "examples" / "budgets.yaml")},
            [dt.date(2026, 1, 1), dt.date(2026, 1, 2)],
        ),
        ([], {"COST_ASSETS_SIM_DAYS": "1"}, [YESTERDAY]),  # `make run` without DAYS: the setting chooses
    ],
    ids=["range", "sim-days"],
)
def test_run_materializes_the_days_and_prints_the_summary(
    tmp_path: Path, args: list[str], environ: dict, days: list[dt.date]
):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "COST_ASSETS_", "DAGSTER_"))}
    env.update(COST_ASSETS_SIM_SCALE="tiny", **environ)
    result = subprocess.run(
        [sys.executable, "-m", "cost_assets.cli", "run", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert f"daily pipeline {days[0]} .. {days[-1]} (one run)" in out
    for table in ("raw.job_runs", "raw.billing_usage", "ref.dbu_prices", "mart.run_costs", "mart.attributed_costs"):
        assert table in out
    assert "Billed per day" in out and "The bill handed out" in out
    database = tmp_path / "data" / "cost_assets.duckdb"  # the default COST_ASSETS_DUCKDB, created on use
    with duckdb.connect(str(database), read_only=True) as con:
        stored = con.execute("select distinct usage_date from mart.attributed_costs order by 1").fetchall()
    assert [day for (day,) in stored] == days
    assert "nanobind" not in result.stderr
    if "COST_ASSETS_BUDGETS" in environ:  # each budget's state on the last day closes the summary
        assert f"Budgets on {days[-1]}" in out
        for name in ("account-monthly", "finance-weekly", "analytics-daily-total", "tenant-acme-monthly"):
            assert name in out.split("Budgets on")[1]
    else:
        assert "Budgets on" not in out


def test_days_default_to_the_last_complete_days():
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    # --days 7 ends yesterday and starts 6 days before it.
    assert _days(7, None, None) == (yesterday - dt.timedelta(days=6), yesterday)
    # --start alone runs to yesterday.
    assert _days(None, dt.datetime(2026, 1, 1), None) == (dt.date(2026, 1, 1), yesterday)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--end", "2026-01-02"], "--end needs --start"),
        (["--days", "2", "--start", "2026-01-01"], "give --days or --start, not both"),
        (["--start", "2026-01-03", "--end", "2026-01-02"], "2026-01-02 is before --start 2026-01-03"),
        (["--start", "2026-01-01", "--end", "2999-01-01"], "not a complete UTC day yet"),
        (["--start", "2026-1-32"], "Invalid value for '--start'"),
    ],
)
def test_bad_ranges_are_refused_before_anything_runs(args: list[str], message: str):
    result = CliRunner().invoke(app, ["run", *args])
    assert result.exit_code == 2
    words = " ".join(result.output.replace("│", " ").split())  # the message as one line, without the box
    assert message in words


def test_bad_range_raises_a_parameter_error():
    with pytest.raises(typer.BadParameter, match="before"):
        _days(None, dt.datetime(2026, 1, 3), dt.datetime(2026, 1, 2))


D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def test_the_summary_reads_a_hand_written_warehouse(tmp_path: Path):
    """The three summaries over tiny tables written here, and their column types (the CLI formats them)."""
    database = str(tmp_path / "w.duckdb")
    with duckdb.connect(database) as con:
        con.execute("CREATE SCHEMA raw; CREATE SCHEMA mart; CREATE SCHEMA other")
        con.execute("CREATE TABLE raw.job_runs AS SELECT range AS id FROM range(3)")
        con.execute("CREATE TABLE other.ignored AS SELECT 1 AS id")
        con.execute(
            "CREATE TABLE mart.reconciliation (usage_date DATE, billed_dbus DOUBLE, billed_cost_usd DOUBLE, "
            "unpriced BOOLEAN, workspace_id VARCHAR)"
        )
        con.execute(
            "INSERT INTO mart.reconciliation (usage_date, billed_dbus, billed_cost_usd, unpriced) "
            "VALUES (?, 10, 1.5, false), (?, 2, NULL, true), (?, 4, 0.5, false)",
            [D1, D1, D2],
        )
        con.execute(
            "CREATE TABLE mart.run_costs (usage_date DATE, total_cost_usd DOUBLE, dbu_cost_usd DOUBLE, "
            "vm_cost_usd DOUBLE, workspace_id VARCHAR, disk_cost_usd DOUBLE)"
        )
        # total 3.0 = DBU 1.0 + VM 2.0 + disk 0.0
        con.execute("INSERT INTO mart.run_costs VALUES (?, 3.0, 1.0, 2.0, NULL, 0.0)", [D2])
        con.execute(
            "CREATE TABLE mart.attributed_costs (usage_date DATE, consumer VARCHAR, billed_cost_usd DOUBLE, "
            "workspace_id VARCHAR)"
        )
        con.execute(
            "INSERT INTO mart.attributed_costs (usage_date, consumer, billed_cost_usd) "
            "VALUES (?, 'run', 1.0), (?, 'idle', 0.5), (?, 'unattributed', 0.5)",
            [D1, D1, D2],
        )

    tables = ["mart.attributed_costs", "mart.reconciliation", "mart.run_costs", "raw.job_runs"]
    assert report.table_counts(database).rows() == list(zip(tables, [3, 3, 1, 3], strict=True))
    billed = report.billed_by_day(database, D1, D2)
    assert billed.schema == pl.Schema(report.BILLED_SCHEMA)
    assert billed.rows() == [(D1, 12.0, 1.5, 2.0), (D2, 4.0, 0.5, 0.0)]
    ledger = report.ledger_by_day(database, D1, D2)
    assert ledger.schema == pl.Schema(report.LEDGER_SCHEMA)
    assert ledger.rows() == [(D1, None, 1.0, 0.5, 0.0), (D2, 3.0, 0.0, 0.0, 0.5)]
    assert report.billed_by_day(database, D2 + dt.timedelta(days=1), D2 + dt.timedelta(days=2)).is_empty()


def test_the_summary_of_a_missing_warehouse_says_to_run_first(tmp_path: Path):
    missing = str(tmp_path / "missing.duckdb")
    with pytest.raises(WarehouseMissingError, match="run `make run` first"):
        report.table_counts(missing)
    with pytest.raises(WarehouseMissingError, match="run `make run` first"):
        report.billed_by_day(missing, D1, D2)
    with pytest.raises(WarehouseMissingError, match="run `make run` first"):
        report.ledger_by_day(missing, D1, D2)


@pytest.mark.parametrize("command", [["anomaly", "list"], ["metrics", "textfile", "--out", "x.prom"]])
def test_a_bad_setting_stops_a_sub_command_with_status_2_and_names_the_variable(command: list[str], monkeypatch):
    # 1.5 is outside the threshold's open interval (0, 1): the settings refuse it before anything is read.
    monkeypatch.setenv("COST_ASSETS_SHRINK_THRESHOLD", "1.5")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2
    assert "COST_ASSETS_SHRINK_THRESHOLD" in result.output


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["run"], ["How many complete UTC days, ending yesterday [default: COST_ASSETS_SIM_DAYS, 7]."]),
        (
            ["report", "summary"],
            [
                "Last day (YYYY-MM-DD) [default: the newest day stored].",
                "How many days ending at --end [default: 7].",
                "Only this workspace id [default: all].",
            ],
        ),
        (
            ["report", "reconcile"],
            ["The cloud bill: estimated vs billed VM and disk $ per day and reason, and the prices table"],
        ),
    ],
)
def test_help_shows_the_defaults_written_in_the_option_texts(command: list[str], shown: list[str]):
    # Rich markup would take each "[default: …]" for a tag and drop it ("ending yesterday .").
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())  # click wraps at 80 columns at most: compare word by word
    for text in shown:
        assert text in words
    assert " ." not in words


def _program(*args: str, cwd: Path, **environ: str) -> subprocess.CompletedProcess:
    """`cost-assets ARGS` as a user runs it, with none of the developer's settings but ENVIRON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "COST_ASSETS_", "DAGSTER_"))}
    env.update(environ)
    return subprocess.run(
        [sys.executable, "-m", "cost_assets.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_failed_run_ends_with_one_line_naming_the_failed_step(tmp_path: Path):
    # A file where the HTML report's folder should be: the report/html step cannot create it, the others succeed.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    done = _program(
        "run", cwd=tmp_path, COST_ASSETS_SIM_SCALE="tiny", COST_ASSETS_SIM_DAYS="1", COST_ASSETS_REPORT_DIR=str(blocker)
    )
    assert done.returncode == 1
    assert "nanobind" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"run failed: 1 step(s) failed: report__html; report__html: FileExistsError: [Errno 17] File exists: "
        f"'{blocker}'"
    )
    assert "Rows per table" not in done.stdout  # no summary of a failed run


def test_estimate_reading_the_ledger_leaves_without_duckdb_shutdown_noise(tmp_path: Path):
    ledger = tmp_path / "ledger.duckdb"
    with duckdb.connect(str(ledger)) as con:  # observed prices of another cloud: the estimate uses the sheet's
        con.execute(
            "create schema mart; create table mart.observed_vm_prices (usage_date date, cloud varchar, "
            "node_type_id varchar, pricing_model varchar, currency_code varchar, node_hours double, "
            "effective_cost double)"
        )
    args = ["estimate", "--cloud", "azure", "--node-type", "Standard_DS3_v2", "--workers", "4", "--hours", "2"]
    environ = {"COST_ASSETS_VM_PRICES": "observed", "COST_ASSETS_DUCKDB": str(ledger)}
    done = _program(*args, cwd=tmp_path, **environ)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    # 2 h x 5 nodes: DBU $ 7.5 x $0.30 = $2.25, VM $ 2 x 5 x $0.23 = $2.30, disk $ 2 x 5 x 19.71 / 730 = $0.27
    assert "$4.82" in done.stdout  # 2.25 + 2.30 + 0.27
    over = _program(*args, "--budget", "4", cwd=tmp_path, **environ)
    assert over.returncode == 2  # over budget: the same exit status as before, the message alone on stderr
    assert over.stderr.startswith("Estimated cost $4.82 exceeds budget $4.00") and "nanobind" not in over.stderr
