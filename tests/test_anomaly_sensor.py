"""cost_anomaly_sensor on a real Dagster instance, posting to a real Slack-compatible receiver on 127.0.0.1:
one alert per incident across ticks (however many series it spans), none for history, none after an ack
(of a member or of the incident) unless it escalates, again on escalation. The mart rows are written by
hand (tests/anomaly_builders.py) and their materializations recorded on the instance, so each tick reads
exactly what a run would have left."""

import datetime as dt
import json

import dagster as dg
import pytest
from anomaly_builders import mart_row, write_mart
from test_alerts import SLACK_PATH, Receiver

from cost_assets.alerts import AlertStore
from cost_assets.anomaly_feedback import FeedbackStore
from cost_assets.assets.anomalies import COST_ANOMALIES
from cost_assets.definitions import build_defs
from tests.conftest import sim_environ

TODAY = dt.datetime.now(dt.UTC).date()
PARTITION = TODAY - dt.timedelta(days=1)  # the daily run's day; it scores the 3 closed days before it
NEWEST = TODAY - dt.timedelta(days=2)  # the newest closed day (the day's end + 24 h)
OLD = TODAY - dt.timedelta(days=40)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    receiver = Receiver()
    monkeypatch.setenv("COST_ASSETS_ALERT_SINK", "slack")
    monkeypatch.setenv("COST_ASSETS_ALERT_WEBHOOK", receiver.url())
    monkeypatch.setenv("COST_ASSETS_UI_URL", "http://127.0.0.1:3999")
    database, store = tmp_path / "ledger.duckdb", tmp_path / "alerts.sqlite"
    defs = build_defs(sim_environ(database, COST_ASSETS_ALERT_STORE=str(store)))
    with dg.DagsterInstance.ephemeral() as instance:
        yield {
            "receiver": receiver,
            "database": database,
            "store": store,
            "sensor": defs.resolve_sensor_def("cost_anomaly_sensor"),
            "instance": instance,
        }
    receiver.close()


def spike(partition, *, actual, status, anomaly_id="a1", monitor="job", value="42", incident="i1", scored=NEWEST):
    """An alertable row ($``actual`` vs $100 expected) of ``incident``, naming cluster c1 and user ana as its
    top contributors."""
    return mart_row(
        partition,
        scored,
        monitor,
        value,
        actual=actual,
        expected=100.0,
        anomaly_id=anomaly_id,
        opened_on=scored,
        status=status,
        alertable=True,
        state="high",
        contributors=[("resource", "cluster:c1", actual - 100.0), ("user", "ana@example.com", actual - 100.0)],
        incident_id=incident,
    )


def materialize(setup, rows, partition) -> None:
    write_mart(setup["database"], rows)
    setup["instance"].report_runless_asset_event(dg.AssetMaterialization(COST_ANOMALIES, partition=str(partition)))


def tick(setup, cursor=None) -> dg.SensorEvaluationContext:
    context = dg.build_sensor_context(instance=setup["instance"], cursor=cursor)
    setup["last_result"] = setup["sensor"](context)
    return context


def test_once_per_incident_across_ticks_none_for_history_ack_holds_until_it_escalates(setup):
    receiver = setup["receiver"]
    # History (a backfill 40 days ago): an alertable anomaly, but far from the last 3 closed days.
    old = mart_row(OLD, OLD - dt.timedelta(days=2), "team", "t", actual=900, expected=100, anomaly_id="old")
    old = {**old, "status": "open", "alertable": True, "opened_on": old["scored_date"], "incident_id": "old"}
    materialize(setup, [old], OLD)
    first = tick(setup)
    assert "none scoring the last 3 closed days" in setup["last_result"].skip_message
    assert receiver.seen == []

    # The day before: job 42 spikes on cluster c1 ($300 vs $100, +200); its project p ($320, +220) alerts
    # too. One spend change, one incident i1 → one post, whose impact is the job's +$200 (the most specific
    # layer), not 200 + 220 = $420.
    before = PARTITION - dt.timedelta(days=1)
    day_before = NEWEST - dt.timedelta(days=1)
    rows = [
        spike(before, actual=300.0, status="open", scored=day_before),
        spike(before, actual=320.0, status="open", anomaly_id="p1", monitor="project", value="p", scored=day_before),
    ]
    materialize(setup, rows, before)
    second = tick(setup, first.cursor)
    (post,) = receiver.seen
    assert post.path == SLACK_PATH
    text = json.dumps(post.body)
    # The members with their impacts, actual vs expected and the impact of the job layer, the top
    # contributors, the link to the asset.
    for part in ("Cost incident i1", "job = 42 $+200.00", "project = p $+220.00", "$300.00", "$100.00", "+$200.00"):
        assert part in text, part
    for part in ("resource cluster:c1", "user ana@example.com", "http://127.0.0.1:3999/assets/mart/cost_anomalies"):
        assert part in text, part
    assert "$420.00" not in text

    # The daily run: the incident goes on (the same i1; user ana's series joins it), and team t opens
    # incident i2, acknowledged beforehand through its member b1; team u is in band. No post.
    FeedbackStore(setup["store"]).record(
        "b1", "acknowledged", "known", monitor="team", value="t", first_day=NEWEST, last_day=NEWEST, escalation=0
    )
    rows = [
        spike(PARTITION, actual=300.0, status="open"),
        spike(PARTITION, actual=320.0, status="open", anomaly_id="p1", monitor="project", value="p"),
        spike(PARTITION, actual=310.0, status="open", anomaly_id="u1", monitor="user", value="ana"),
        spike(PARTITION, actual=250.0, status="open", anomaly_id="b1", monitor="team", value="t", incident="i2"),
        mart_row(PARTITION, NEWEST, "team", "u", actual=50.0, expected=50.0),
    ]
    materialize(setup, rows, PARTITION)
    third = tick(setup, second.cursor)
    assert len(receiver.seen) == 1

    # Nothing new: no post; replaying every materialization (no cursor): still no second post.
    tick(setup, third.cursor)
    assert "no new" in setup["last_result"].skip_message
    tick(setup)
    assert len(receiver.seen) == 1

    # The partition re-materialized (a correction): the job escalates (500 − 100 = 400 ≥ 2 · 200), so does
    # team t (acknowledged when open, escalated since).
    rows = [
        spike(PARTITION, actual=500.0, status="escalated"),
        spike(PARTITION, actual=320.0, status="open", anomaly_id="p1", monitor="project", value="p"),
        spike(PARTITION, actual=500.0, status="escalated", anomaly_id="b1", monitor="team", value="t", incident="i2"),
    ]
    materialize(setup, rows, PARTITION)
    tick(setup, third.cursor)
    escalated = [json.dumps(s.body) for s in receiver.seen[1:]]
    # One more post per incident: i1's escalation (now +$400 at the job layer) and i2's.
    assert len(escalated) == 2
    assert sum("Cost incident i1" in t and "+$400.00" in t for t in escalated) == 1
    assert sum("Cost incident i2" in t and "team = t" in t for t in escalated) == 1
    assert all("escalation 1" in t for t in escalated)
    outbox = {(r["identity"], r["escalation"]): (r["state"], r["sends"]) for r in AlertStore(setup["store"]).rows()}
    assert outbox == {
        ("incident:i1", 0): ("delivered", 1),
        ("incident:i1", 1): ("delivered", 1),
        ("incident:i2", 1): ("delivered", 1),
    }


def test_an_ack_of_the_incident_id_holds_until_it_escalates(setup):
    FeedbackStore(setup["store"]).record(
        "i1", "acknowledged", "seen", monitor=None, value=None, first_day=None, last_day=None, escalation=0
    )
    materialize(setup, [spike(PARTITION, actual=300.0, status="open")], PARTITION)
    first = tick(setup)
    assert setup["receiver"].seen == []
    materialize(setup, [spike(PARTITION, actual=900.0, status="escalated")], PARTITION)
    tick(setup, first.cursor)
    (post,) = setup["receiver"].seen
    assert "escalation 1" in json.dumps(post.body)


def test_an_incident_with_a_planned_member_is_never_alerted(setup):
    # The project's anomaly p1 is planned (a migration); the job's a1 is not, but it is the same incident.
    FeedbackStore(setup["store"]).record(
        "p1", "planned", "migration", monitor="project", value="p", first_day=NEWEST, last_day=NEWEST, escalation=0
    )
    rows = [
        spike(PARTITION, actual=900.0, status="escalated"),
        spike(PARTITION, actual=900.0, status="escalated", anomaly_id="p1", monitor="project", value="p"),
    ]
    materialize(setup, rows, PARTITION)
    tick(setup)
    assert setup["receiver"].seen == []
