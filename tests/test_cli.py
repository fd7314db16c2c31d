"""`cost-assets run`, the command behind `make run`, as a user runs it (a subprocess in a fresh folder)."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from cost_assets.cli import _days, app

YESTERDAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


@pytest.mark.parametrize(("args", "environ", "days"), [
    (["--start", "2026-01-01", "--end", "2026-01-02"], {}, [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]),
    ([], {"COST_ASSETS_SIM_DAYS": "1"}, [YESTERDAY]),  # `make run` without DAYS: the setting chooses
], ids=["range", "sim-days"])
def test_run_materializes_the_days_and_prints_the_summary(tmp_path: Path, args: list[str], environ: dict,
                                                          days: list[dt.date]):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "COST_ASSETS_", "DAGSTER_"))}
    env.update(COST_ASSETS_SIM_SCALE="tiny", **environ)
    result = subprocess.run([sys.executable, "-m", "cost_assets.cli", "run", *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
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


def test_days_default_to_the_last_complete_days():
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    # --days 7 ends yesterday and starts 6 days before it.
    assert _days(7, None, None) == (yesterday - dt.timedelta(days=6), yesterday)
    # --start alone runs to yesterday.
    assert _days(None, dt.datetime(2026, 1, 1), None) == (dt.date(2026, 1, 1), yesterday)


@pytest.mark.parametrize(("args", "message"), [
    (["--end", "2026-01-02"], "--end needs --start"),
    (["--days", "2", "--start", "2026-01-01"], "give --days or --start, not both"),
    (["--start", "2026-01-03", "--end", "2026-01-02"], "2026-01-02 is before --start 2026-01-03"),
    (["--start", "2026-01-01", "--end", "2999-01-01"], "not a complete UTC day yet"),
    (["--start", "2026-1-32"], "Invalid value for '--start'"),
])
def test_bad_ranges_are_refused_before_anything_runs(args: list[str], message: str):
    result = CliRunner().invoke(app, ["run", *args])
    assert result.exit_code == 2
    words = " ".join(result.output.replace("│", " ").split())  # the message as one line, without the box
    assert message in words


def test_bad_range_raises_a_parameter_error():
    with pytest.raises(typer.BadParameter, match="before"):
        _days(None, dt.datetime(2026, 1, 3), dt.datetime(2026, 1, 2))
