"""`cost-assets report` as a program (a subprocess, as a person runs it): output, exit codes, and what it says
when the database is missing or another process holds it. The numbers are tests/test_reports.py's."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import report_builders as fx

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "schemas" / "report.json").read_text())


def report(database: Path | str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COST_ASSETS_DUCKDB": str(database)}
    return subprocess.run(
        [sys.executable, "-m", "cost_assets.cli", "report", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "cost.duckdb"
    fx.write_ledger(path)
    return path


def test_json_output_is_valid_and_the_window_ends_on_the_newest_stored_day(db: Path):
    done = report(db, "top", "--by", "team", "--limit", "2", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # nothing after the report (no duckdb shutdown noise)
    doc = json.loads(done.stdout)
    jsonschema.validate(doc, SCHEMA, format_checker=jsonschema.FormatChecker())
    # No --end: the ledger's newest day (D2); --days defaults to 7, so the window starts 6 days earlier.
    assert (doc["start"], doc["end"]) == ("2025-12-27", "2026-01-02")
    # data-eng 3.10 + 3.30 = 6.40, ml 1.05 + 1.00 = 2.05.
    assert [(r["value"], r["billed_usd"]) for r in doc["tables"]["top"]] == [("data-eng", 6.4), ("ml", 2.05)]


def test_table_and_csv_output(db: Path):
    table = report(db, "summary", "--start", "2026-01-01", "--end", "2026-01-02")
    assert table.returncode == 0, table.stderr
    assert "$5.35" in table.stdout and "$9.65" in table.stdout  # D1's bill and the window's (5.35 + 4.30)
    csv = report(db, "idle", "--days", "2", "--format", "csv")
    assert csv.stdout.splitlines()[1].startswith("c-shared,0.5,")


def test_a_missing_optional_table_is_a_note_not_a_failure(tmp_path: Path):
    database = fx.write_ledger(tmp_path / "plain.duckdb", optional=False)
    done = report(database, "budget")
    assert done.returncode == 0, done.stderr
    assert "not built: mart.budget_status" in done.stdout


def test_bad_options_exit_2(db: Path):
    done = report(db, "top", "--by", "pool")
    assert done.returncode == 2
    assert "--by 'pool': allowed: team, tenant, project, cost_center, job, user, workspace, cluster, sku" in done.stderr


def test_spend_by_workspace_and_a_workspace_the_ledger_does_not_have(db: Path):
    top = report(db, "top", "--by", "workspace", "--start", "2026-01-01", "--end", "2026-01-02", "--format", "csv")
    assert top.returncode == 0, top.stderr
    # w1 5.35 + 3.30 = 8.65, w2 1.00 (the first two columns: value, billed DBUs; then billed $).
    assert [line.split(",")[0::2][:2] for line in top.stdout.splitlines()[1:]] == [["w1", "8.65"], ["w2", "1.0"]]
    unknown = report(db, "summary", "--workspace", "w9", "--days", "2")
    assert unknown.returncode == 0, unknown.stderr
    assert "the ledger has no workspace 'w9' (mart.attributed_costs holds w1, w2): check the id" in unknown.stdout


def test_a_missing_database_says_run_make_run_first(tmp_path: Path):
    done = report(tmp_path / "none.duckdb", "summary")
    assert done.returncode == 1
    assert "does not exist: run `make run` first" in done.stderr
    assert done.stderr.count("\n") == 1  # one line, nothing else


def test_a_locked_database_names_the_process_holding_it(db: Path):
    hold = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        done = report(db, "summary")
    finally:
        holder.communicate("", timeout=60)
    assert done.returncode == 1
    assert "is held by a writer" in done.stderr and f"Process {holder.pid} (" in done.stderr
    assert "Try again when it has finished" in done.stderr
