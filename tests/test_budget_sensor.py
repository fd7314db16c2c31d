"""budget_sensor on a real instance: each threshold crossing is alerted once, old days are not."""

import datetime as dt
from pathlib import Path

import dagster as dg

from cost_assets.alerting import budget_alerts
from cost_assets.alerts import AlertStore
from cost_assets.definitions import build_defs
from tests.conftest import QUIET, sim_environ

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "budgets.yaml"
YESTERDAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def _materialize(defs: dg.Definitions, instance: dg.DagsterInstance, first: dt.date, last: dt.date) -> None:
    job = defs.resolve_job_def("daily_pipeline")
    tags = {"dagster/asset_partition_range_start": str(first), "dagster/asset_partition_range_end": str(last)}
    assert job.execute_in_process(instance=instance, run_config=QUIET, tags=tags).success


def test_each_crossing_is_alerted_once_and_old_days_never(tmp_path, monkeypatch):
    monkeypatch.delenv("COST_ASSETS_ALERT_WEBHOOK", raising=False)  # the log sink
    store = tmp_path / "alerts.sqlite"
    defs = build_defs(
        sim_environ(
            tmp_path / "ledger.duckdb",
            COST_ASSETS_SIM_SCALE="small",  # spends enough to cross the example's thresholds
            COST_ASSETS_BUDGETS=str(EXAMPLE),
            COST_ASSETS_ALERT_STORE=str(store),
        )
    )
    sensor = defs.resolve_sensor_def("budget_sensor")
    with dg.DagsterInstance.ephemeral() as instance:
        # History first (a backfill a month ago): materialized, but too old to alert on.
        old = YESTERDAY - dt.timedelta(days=30)
        _materialize(defs, instance, old - dt.timedelta(days=1), old)
        first = dg.build_sensor_context(instance=instance)
        assert "none of the last" in sensor(first).skip_message
        assert not store.exists() or not AlertStore(store).rows()
        # Recent days: the example's budgets cross thresholds (the account's forecast, finance's week...).
        _materialize(defs, instance, YESTERDAY - dt.timedelta(days=2), YESTERDAY)
        context = dg.build_sensor_context(instance=instance, cursor=first.cursor)
        assert "alert(s) considered" in sensor(context).skip_message
        delivered = [r for r in AlertStore(store).rows() if r["state"] == "delivered"]
        assert delivered, "the example budgets cross at least one threshold on recent days"
        assert all(r["identity"].startswith("budget:") for r in delivered)
        # The next tick sees nothing new; replaying every materialization (no cursor) sends nothing twice.
        again = dg.build_sensor_context(instance=instance, cursor=context.cursor)
        assert "no new" in sensor(again).skip_message
        sensor(dg.build_sensor_context(instance=instance))
        rows = AlertStore(store).rows()
        assert all(r["sends"] == 1 for r in rows)  # each alert posted exactly once over the three ticks
        assert sorted(r["identity"] for r in rows if r["state"] == "delivered") == sorted(
            r["identity"] for r in delivered
        )


def test_a_failed_run_is_alerted_once(tmp_path, monkeypatch):
    monkeypatch.delenv("COST_ASSETS_ALERT_WEBHOOK", raising=False)
    store = tmp_path / "alerts.sqlite"
    defs = build_defs(sim_environ(tmp_path / "ledger.duckdb", COST_ASSETS_ALERT_STORE=str(store)))
    sensor = defs.resolve_sensor_def("run_failure_alert_sensor")

    @dg.op
    def boom():
        raise RuntimeError("the bill could not be read")

    @dg.job
    def failing():
        boom()

    with dg.DagsterInstance.ephemeral() as instance:
        result = failing.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        (record,) = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        failure = record.dagster_event
        for _ in range(2):  # the same failure seen twice: one alert
            context = dg.build_run_status_sensor_context(
                sensor_name=sensor.name,
                dagster_instance=instance,
                dagster_run=result.dagster_run,
                dagster_event=failure,
            ).for_run_failure()
            sensor(context)
    rows = AlertStore(store).rows()
    assert [(r["identity"], r["state"], r["sends"]) for r in rows] == [(f"run_failure:{result.run_id}", "delivered", 1)]


def test_budget_alerts_name_each_crossing_once_per_period():
    import polars as pl

    row = {
        "budget": "fin",
        "scope": "team=finance",
        "period": "week",
        "period_start": dt.date(2026, 1, 5),
        "amount_usd": 300.0,
        "spend_to_date_usd": 250.0,
        "forecast_usd": 390.0,
        "threshold_crossed_pct": 80.0,
        "forecast_pct": 130.0,
        "state": "forecast_exceeded",
        "first_crossed_on": dt.date(2026, 1, 8),
        "estimated_days": 1,
        "channel": None,
    }
    later = {**row, "usage_date": dt.date(2026, 1, 9), "spend_to_date_usd": 280.0}
    status = pl.DataFrame([{**row, "usage_date": dt.date(2026, 1, 8)}, later])
    alerts = {a.identity: a for a in budget_alerts(status, {"fin": [100.0, 120.0]}, "http://ui/x")}
    # One actual alert (80 %) and one forecast alert (130 % ≥ 120 %, the highest level crossed) for the
    # week of 01-05; the later day's row speaks for both.
    assert set(alerts) == {"budget:fin:2026-01-05:actual:80", "budget:fin:2026-01-05:forecast:120"}
    spent = alerts["budget:fin:2026-01-05:actual:80"]
    assert (spent.actual_usd, spent.impact_usd, spent.severity) == (280.0, 280.0 - 300.0, "warning")
    forecast = alerts["budget:fin:2026-01-05:forecast:120"]
    assert (forecast.actual_usd, forecast.impact_usd) == (390.0, 390.0 - 300.0)
