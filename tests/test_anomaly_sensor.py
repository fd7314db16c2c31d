"""cost_anomaly_sensor on a real Dagster instance, posting to a real Slack-compatible receiver on 127.0.0.1:
one alert per anomaly id across ticks, none for history, none after an ack unless it escalates, again on
escalation. The mart rows are written by hand (tests/anomaly_builders.py) and their materializations
recorded on the instance, so each tick reads exactly what a run would have left."""

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


def spike(partition, *, actual, status, anomaly_id="a1", monitor="job", value="42"):
    return mart_row(
        partition,
        NEWEST,
        monitor,
        value,
        actual=actual,
        expected=100.0,
        anomaly_id=anomaly_id,
        opened_on=NEWEST,
        status=status,
        alertable=True,
        state="high",
        contributors=[("resource", "cluster:c1", actual - 100.0), ("user", "ana@example.com", actual - 100.0)],
    )


def materialize(setup, rows, partition) -> None:
    write_mart(setup["database"], rows)
    setup["instance"].report_runless_asset_event(dg.AssetMaterialization(COST_ANOMALIES, partition=str(partition)))


def tick(setup, cursor=None) -> dg.SensorEvaluationContext:
    context = dg.build_sensor_context(instance=setup["instance"], cursor=cursor)
    setup["last_result"] = setup["sensor"](context)
    return context


def test_once_per_anomaly_none_for_history_ack_holds_until_it_escalates(setup):
    receiver = setup["receiver"]
    # History (a backfill 40 days ago): an alertable anomaly, but far from the last 3 closed days.
    old = mart_row(OLD, OLD - dt.timedelta(days=2), "team", "t", actual=900, expected=100, anomaly_id="old")
    materialize(setup, [{**old, "status": "open", "alertable": True, "opened_on": old["scored_date"]}], OLD)
    first = tick(setup)
    assert "none scoring the last 3 closed days" in setup["last_result"].skip_message
    assert receiver.seen == []

    # The daily run: job 42 opens an anomaly ($300 vs $100 expected); team t's anomaly was acknowledged
    # beforehand; team u is in band (no episode).
    FeedbackStore(setup["store"]).record(
        "b1", "acknowledged", "known", monitor="team", value="t", first_day=NEWEST, last_day=NEWEST, escalation=0
    )
    rows = [
        spike(PARTITION, actual=300.0, status="open"),
        spike(PARTITION, actual=250.0, status="open", anomaly_id="b1", monitor="team", value="t"),
        mart_row(PARTITION, NEWEST, "team", "u", actual=50.0, expected=50.0),
    ]
    materialize(setup, rows, PARTITION)
    second = tick(setup, first.cursor)
    (post,) = receiver.seen
    assert post.path == SLACK_PATH
    text = json.dumps(post.body)
    # Scope, actual vs expected, impact (300 − 100 = +200), the top contributors, the link to the asset.
    for part in ("job = 42", "$300.00", "$100.00", "+$200.00", "resource cluster:c1", "user ana@example.com"):
        assert part in text, part
    assert "http://127.0.0.1:3999/assets/mart/cost_anomalies" in text

    # Nothing new: no post; replaying every materialization (no cursor): still no second post.
    tick(setup, second.cursor)
    assert "no new" in setup["last_result"].skip_message
    tick(setup)
    assert len(receiver.seen) == 1

    # The partition re-materialized (a correction): both escalate (impact 500 − 100 = 400 ≥ 2 · 200).
    rows = [
        spike(PARTITION, actual=500.0, status="escalated"),
        spike(PARTITION, actual=500.0, status="escalated", anomaly_id="b1", monitor="team", value="t"),
    ]
    materialize(setup, rows, PARTITION)
    tick(setup, second.cursor)
    escalated = [json.dumps(s.body) for s in receiver.seen[1:]]
    # One more post each: the job's escalation, and team t's (acknowledged when open, escalated since).
    assert len(escalated) == 2
    assert sum("job = 42" in t for t in escalated) == 1 and sum("team = t" in t for t in escalated) == 1
    assert all("escalation 1" in t for t in escalated)
    outbox = {(r["identity"], r["escalation"]): (r["state"], r["sends"]) for r in AlertStore(setup["store"]).rows()}
    assert outbox == {
        ("anomaly:a1", 0): ("delivered", 1),
        ("anomaly:a1", 1): ("delivered", 1),
        ("anomaly:b1", 1): ("delivered", 1),
    }


def test_a_planned_anomaly_is_never_alerted(setup):
    FeedbackStore(setup["store"]).record(
        "a1", "planned", "migration", monitor="job", value="42", first_day=NEWEST, last_day=NEWEST, escalation=0
    )
    materialize(setup, [spike(PARTITION, actual=900.0, status="escalated")], PARTITION)
    tick(setup)
    assert setup["receiver"].seen == []
