"""`cost-assets run`'s summary with many workspaces: each workspace's line, the unlisted workspaces' bill on a
line of its own, and what 'unattributed' holds, over a ledger written here row by row (sums by hand)."""

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from cost_assets import report
from cost_assets.resources.simulated import SimulatedWorkspace, SimulatedWorld

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
# The account lists A (etl), B (ml) and C (bi, nothing stored yet); the bill also names X, not listed.
NAMES = {"A": "etl", "B": "ml", "C": "bi"}


def _ledger(path: Path, unlisted: bool = True) -> str:
    """A: D1 $4.00 to runs 1 and 2 + $1.00 idle, D2 $1.00 to run 1 → billed $6.00, 2 runs.
    B: D1 serving endpoint $2.00 and a warehouse $0.70 (both unattributed), run 3 estimated → $2.70, 1 run.
    X (with ``unlisted``): D1 $3.00 + D2 $0.50 = $3.50, all unattributed, reason workspace_not_configured."""
    rows = [
        # day, workspace, consumer, reason, billed DBUs, billed $
        (D1, "A", "run", "ok", 8.0, 4.00),
        (D1, "A", "idle", "ok", 2.0, 1.00),
        (D2, "A", "run", "ok", 2.0, 1.00),
        (D1, "B", "unattributed", "serving", 4.0, 2.00),
        (D1, "B", "unattributed", "warehouse", 1.0, 0.70),
    ]
    if unlisted:
        rows += [
            (D1, "X", "unattributed", "workspace_not_configured", 6.0, 3.00),
            (D2, "X", "unattributed", "workspace_not_configured", 1.0, 0.50),
        ]
    database = str(path)
    with duckdb.connect(database) as con:
        con.execute("CREATE SCHEMA mart")
        con.execute(
            "CREATE TABLE mart.attributed_costs (usage_date DATE, workspace_id VARCHAR, consumer VARCHAR, "
            "reason VARCHAR, billed_dbus DOUBLE, billed_cost_usd DOUBLE)"
        )
        con.executemany("INSERT INTO mart.attributed_costs VALUES (?, ?, ?, ?, ?, ?)", rows)
        # The bill per grain row is the attributed rows' sum (attribution conserves it).
        con.execute(
            "CREATE TABLE mart.reconciliation AS SELECT usage_date, workspace_id, billed_dbus, billed_cost_usd "
            "FROM mart.attributed_costs"
        )
        con.execute(
            "CREATE TABLE mart.run_costs (usage_date DATE, workspace_id VARCHAR, consumer VARCHAR, run_id BIGINT)"
        )
        con.executemany(
            "INSERT INTO mart.run_costs VALUES (?, ?, ?, ?)",
            [
                (D1, "A", "run", 1),
                (D1, "A", "run", 1),
                (D1, "A", "run", 2),
                (D1, "A", "idle", None),
                (D2, "A", "run", 1),
                (D1, "B", "run", 3),
            ],
        )
    return database


def test_each_workspace_its_status_runs_and_bill_and_the_unlisted_ones_on_a_line_of_their_own(tmp_path: Path):
    lines = report.workspace_lines(_ledger(tmp_path / "w.duckdb"), D1, D2, NAMES)
    assert lines[0] == "\nWorkspaces (billed DBU $ over the days; more: `cost-assets report top --by workspace`)"
    cells = [line.split() for line in lines[1:5]]
    # A: 4.00 + 1.00 + 1.00 = 6.00, runs {1, 2}; B: 2.00 + 0.70 = 2.70, run {3}; C: nothing stored;
    # X: 3.00 + 0.50 = 3.50, not listed → not configured, last.
    assert cells == [
        ["A", "etl", "ok", "2", "runs", "$6.00"],
        ["B", "ml", "ok", "1", "runs", "$2.70"],
        ["C", "bi", "ok", "0", "runs", "$0.00"],
        ["X", "—", "not", "configured", "0", "runs", "$3.50"],
    ]
    assert lines[5] == "  workspaces not configured (1; unattributed, reason workspace_not_configured): $3.50"
    assert len(lines) == 6


def test_unattributed_is_split_by_reason_when_it_holds_unlisted_workspaces(tmp_path: Path):
    note = report.unattributed_note(_ledger(tmp_path / "w.duckdb"), D1, D2)
    # serving 2.00 + workspace_not_configured 3.00 + 0.50 = 3.50 + other (the warehouse) 0.70 = 6.20.
    assert note[0] == ("  (unattributed $6.20 = model serving $2.00 + workspace_not_configured $3.50 + other $0.70;")
    assert "mart/serving_costs" in note[1] and "workspaces the account does not list" in note[2]


def test_one_workspace_keeps_the_summary_as_it_was(tmp_path: Path):
    database = _ledger(tmp_path / "one.duckdb", unlisted=False)
    # No workspaces file (names empty) and nothing unlisted: no workspace section, today's serving note.
    assert report.workspace_lines(database, D1, D2, {}) == []
    assert report.unattributed_note(database, D1, D2) == report.SERVING_NOTE


def test_the_simulated_account_names_its_workspaces_by_id():
    world = SimulatedWorld(scale="tiny")
    assert SimulatedWorkspace(world=world).workspace_names() == {}
    ids = [str(1234567890123456 + k) for k in range(3)]  # workspace k: 1234567890123456 + k
    names = SimulatedWorkspace(world=world, workspaces=3).workspace_names()
    assert names == dict(zip(ids, ["simulated-0", "simulated-1", "simulated-2"], strict=True))


@pytest.mark.parametrize("names", [{"A": "etl"}, {}])
def test_a_single_listed_workspace_with_an_unlisted_one_still_shows_the_section(tmp_path: Path, names: dict):
    lines = report.workspace_lines(_ledger(tmp_path / "w.duckdb"), D1, D2, names)
    assert lines[-1].endswith("$3.50")  # X's 3.00 + 0.50, whatever the account lists
