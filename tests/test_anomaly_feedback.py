"""`cost-assets anomaly ack|planned|list` and the feedback store (anomaly_feedback.py): a mark is kept in its
own SQLite table beside the alert outbox, with the episode it names read from mart.cost_anomalies."""

import datetime as dt
import sqlite3
from pathlib import Path

import duckdb
import pytest
from anomaly_builders import mart_row, write_mart
from typer.testing import CliRunner

from cost_assets.alerts import Alert, LogSink, deliver
from cost_assets.anomaly_feedback import FeedbackError, FeedbackStore
from cost_assets.cli import app

P = dt.date(2026, 12, 3)  # the partition (as-of day)
D1, D2 = dt.date(2026, 11, 30), dt.date(2026, 12, 1)


@pytest.fixture
def env(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    database, store = tmp_path / "ledger.duckdb", tmp_path / "alerts.sqlite"
    monkeypatch.setenv("COST_ASSETS_DUCKDB", str(database))
    monkeypatch.setenv("COST_ASSETS_ALERT_STORE", str(store))
    # The job's episode: opened on 11-30, escalated on 12-01, back in band (closed) on 12-02.
    episode = {"anomaly_id": "a1", "opened_on": D1}
    write_mart(
        database,
        [
            mart_row(P, D1, "job", "42", actual=300, expected=100, status="open", alertable=True, **episode),
            mart_row(P, D2, "job", "42", actual=500, expected=100, status="escalated", alertable=True, **episode),
            mart_row(P, P - dt.timedelta(days=1), "job", "42", actual=101, expected=100, status="closed", **episode),
            mart_row(P, P - dt.timedelta(days=1), "team", "t", actual=50, expected=50),
        ],
    )
    return {"database": database, "store": store}


def test_ack_records_the_episode_it_names(env):
    result = CliRunner().invoke(app, ["anomaly", "ack", "a1", "--reason", "known backfill of job 42"])
    assert result.exit_code == 0, result.output
    assert "a1 (job = 42, 2026-11-30 … 2026-12-01): acknowledged" in result.output
    (mark,) = FeedbackStore(env["store"]).frame().iter_rows(named=True)
    # Its days out of band are 11-30 and 12-01 (the closing day 12-02 is back in band); it had escalated.
    assert (mark["feedback"], mark["monitor"], mark["value"]) == ("acknowledged", "job", "42")
    assert (mark["first_day"], mark["last_day"], mark["escalation"]) == (D1, D2, 1)
    assert mark["reason"] == "known backfill of job 42"


def test_a_later_mark_replaces_the_earlier_one(env):
    runner = CliRunner()
    assert runner.invoke(app, ["anomaly", "ack", "a1", "--reason", "seen"]).exit_code == 0
    assert runner.invoke(app, ["anomaly", "planned", "a1", "--reason", "the migration"]).exit_code == 0
    marks = FeedbackStore(env["store"]).frame()
    assert marks.select("anomaly_id", "feedback", "reason").rows() == [("a1", "planned", "the migration")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ack", "nope", "--reason", "x"], "anomaly 'nope' is not in mart.cost_anomalies, neither as an anomaly id"),
        (["planned", "a1", "--reason", "  "], "--reason must not be empty"),
    ],
)
def test_a_mark_that_cannot_be_kept_exits_2_and_stores_nothing(env, args, message):
    result = CliRunner().invoke(app, ["anomaly", *args])
    assert result.exit_code == 2 and message in result.output
    assert FeedbackStore(env["store"]).frame().is_empty()


def test_an_incident_id_marks_every_member_and_the_incident(env):
    # Incident i1 on 12-01: job 42's episode a1 (opened 11-30, escalated 12-01) and project p's p1
    # (opened 12-01), both alertable that day.
    p1 = {"anomaly_id": "p1", "opened_on": D2, "incident_id": "i1"}
    rows = [
        mart_row(
            P, D1, "job", "42", actual=300, expected=100, status="open", alertable=True, anomaly_id="a1", opened_on=D1
        ),
        mart_row(
            P,
            D2,
            "job",
            "42",
            actual=500,
            expected=100,
            status="escalated",
            alertable=True,
            anomaly_id="a1",
            opened_on=D1,
            incident_id="i1",
        ),
        mart_row(P, D2, "project", "p", actual=420, expected=200, status="open", alertable=True, **p1),
    ]
    write_mart(env["database"], rows)
    result = CliRunner().invoke(app, ["anomaly", "planned", "i1", "--reason", "the migration of job 42"])
    assert result.exit_code == 0, result.output
    # The members' spans: job 42 11-30 … 12-01, project p 12-01 … 12-01 → the incident 11-30 … 12-01.
    assert "i1 (incident of job = 42, project = p, 2026-11-30 … 2026-12-01): planned" in result.output
    marks = {r["anomaly_id"]: r for r in FeedbackStore(env["store"]).frame().iter_rows(named=True)}
    assert set(marks) == {"a1", "p1", "i1"} and {m["feedback"] for m in marks.values()} == {"planned"}
    # Each member with its own series and days (so its days leave its baseline); the incident with its span
    # and the highest escalation of its members (a1 escalated).
    assert (marks["a1"]["monitor"], marks["a1"]["first_day"], marks["a1"]["last_day"]) == ("job", D1, D2)
    assert (marks["p1"]["monitor"], marks["p1"]["first_day"], marks["p1"]["last_day"]) == ("project", D2, D2)
    assert (marks["i1"]["monitor"], marks["i1"]["first_day"], marks["i1"]["escalation"]) == (None, D1, 1)


def test_no_ledger_yet_is_said_in_words(tmp_path, monkeypatch):
    monkeypatch.setenv("COST_ASSETS_DUCKDB", str(tmp_path / "missing.duckdb"))
    monkeypatch.setenv("COST_ASSETS_ALERT_STORE", str(tmp_path / "alerts.sqlite"))
    result = CliRunner().invoke(app, ["anomaly", "ack", "a1", "--reason", "x"])
    assert result.exit_code == 2 and "make run" in result.output


def test_list_shows_the_open_anomalies_of_the_newest_day(env):
    # The newest scored day of partition 12-03 is 12-02, where the episode is closed: nothing is open.
    assert "no open anomalies" in CliRunner().invoke(app, ["anomaly", "list"]).output
    write_mart(
        env["database"],
        [
            mart_row(
                P + dt.timedelta(days=1),
                P,
                "team",
                "t",
                actual=180,
                expected=60,
                anomaly_id="b2",
                opened_on=P,
                status="open",
                alertable=True,
                state="high",
                contributors=[("job", "7", 110.0), ("user", "u", 100.0)],
            )
        ],
    )
    output = CliRunner().invoke(app, ["anomaly", "list"]).output
    # impact = 180 − 60 = +120
    assert "b2  team = t  open since 2026-12-03: $180.00 on 2026-12-03 vs $60.00 expected, impact $+120.00" in output
    assert "job 7: $+110.00" in output and "user u: $+100.00" in output


def test_the_mark_lives_in_its_own_table_beside_the_outbox(tmp_path):
    path = tmp_path / "alerts.sqlite"
    deliver([Alert(identity="x", kind="anomaly", title="t", scope="s", actual_usd=1.0)], LogSink(), path)
    store = FeedbackStore(path)
    store.record("a9", "planned", "why", monitor="job", value="1", first_day=D1, last_day=D2, escalation=0)
    with sqlite3.connect(path) as con:
        tables = {name for (name,) in con.execute("select name from sqlite_master where type = 'table'")}
    assert tables == {"alert_outbox", "anomaly_feedback"}
    assert store.frame()["anomaly_id"].to_list() == ["a9"]
    with pytest.raises(FeedbackError, match="allowed: acknowledged, planned"):
        store.record("a9", "ignored", "why", monitor="job", value="1", first_day=D1, last_day=D2, escalation=0)


def test_reading_a_store_that_does_not_exist_creates_nothing(tmp_path):
    assert FeedbackStore(tmp_path / "none.sqlite").frame().is_empty()
    assert not (tmp_path / "none.sqlite").exists()


def test_the_detector_settings_are_checked_when_read(monkeypatch, tmp_path):
    monkeypatch.setenv("COST_ASSETS_DUCKDB", str(tmp_path / "ledger.duckdb"))
    monkeypatch.setenv("COST_ASSETS_ANOMALY_K", "0")
    monkeypatch.setenv("COST_ASSETS_ANOMALY_PCT", "-0.1")
    result = CliRunner().invoke(app, ["anomaly", "list"])
    assert result.exit_code == 2
    assert "COST_ASSETS_ANOMALY_K='0': must be greater than 0" in result.output
    assert "COST_ASSETS_ANOMALY_PCT='-0.1': must be greater than or equal to 0" in result.output


def test_a_mark_made_while_a_run_holds_the_ledger_is_kept_by_id(env):
    with duckdb.connect(str(env["database"])):  # a writer holds the file (here: this process, read-write)
        result = CliRunner().invoke(app, ["anomaly", "planned", "a1", "--reason", "the migration"])
    assert result.exit_code == 0, result.output
    assert "a run holds the ledger" in result.output
    (mark,) = FeedbackStore(env["store"]).frame().iter_rows(named=True)
    # The series and days are unknown until the next materialization reads them from the stored rows.
    assert (mark["anomaly_id"], mark["feedback"], mark["monitor"], mark["first_day"], mark["escalation"]) == (
        "a1",
        "planned",
        None,
        None,
        0,
    )
