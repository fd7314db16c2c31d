"""Prometheus metrics of the ledger: scraped over HTTP from `cost-assets metrics serve`'s server on
127.0.0.1 and parsed with prometheus_client's own exposition parser; every value checked against a hand
sum over a small DuckDB file written here."""

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import httpx
import polars as pl
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cost_assets.export import metrics
from tests import export_builders as b

D1, D2, D3 = dt.date(2026, 1, 4), b.DAY, dt.date(2026, 1, 6)  # b.DAY is 2026-01-05
DECEMBER = dt.date(2025, 12, 31)


def _frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row")


def write_ledger(path: Path, anomalies: bool = True) -> Path:
    """A small ledger. The bill's watermark is 2026-01-07, so 01-04 and 01-05 are closed (day + 2 ≤ watermark)
    and 01-06 is open: latest_closed_day = 2026-01-05, month_to_date = 2026-01-01 .. 2026-01-05.
    Rows of 01-06 and of 2025-12-31 lie outside both windows and must not count."""
    bill_days = _frame(
        [(D1, dt.date(2026, 1, 5)), (D2, dt.date(2026, 1, 7)), (D3, dt.date(2026, 1, 7))],
        {"usage_date": pl.Date, "ingestion_date": pl.Date},
    )
    run_costs = b.run_costs(
        {"run_id": 1, "task_run_id": 11, "job_id": 100, "dbus": 2.0, "dbu_cost_usd": 0.30, "vm_cost_usd": 0.50,
         "total_cost_usd": 0.80},
        {"run_id": 2, "task_run_id": 21, "job_id": 200, "dbus": 1.0, "dbu_cost_usd": 0.15, "vm_cost_usd": 0.25,
         "total_cost_usd": 0.40},
        {"usage_date": D1, "run_id": 3, "task_run_id": 31, "job_id": 300, "cluster_id": "c-2", "dbus": 1.0,
         "dbu_cost_usd": 0.20, "vm_cost_usd": 0.30, "total_cost_usd": 0.50},
        {"usage_date": D3, "run_id": 6, "task_run_id": 61, "job_id": 600, "dbus": 9.0, "dbu_cost_usd": 4.0,
         "vm_cost_usd": 5.0, "total_cost_usd": 9.0},
        {"usage_date": DECEMBER, "run_id": 7, "task_run_id": 71, "job_id": 700, "dbus": 7.0, "dbu_cost_usd": 3.0,
         "vm_cost_usd": 4.0, "total_cost_usd": 7.0},
    )  # fmt: skip
    attributed = b.attributed(
        {"run_id": 1, "task_run_id": 11, "job_id": 100, "billed_dbus": 2.2, "billed_cost_usd": 0.33},
        {"run_id": 2, "task_run_id": 21, "job_id": 200, "billed_dbus": 1.1, "billed_cost_usd": 0.165},
        {"consumer": "idle", "billed_dbus": 0.4, "billed_cost_usd": 0.06},
        {"resource_type": "serverless", "resource_id": "4", "sku_name": "PREMIUM_JOBS_SERVERLESS_COMPUTE",
         "run_id": 4, "job_id": 400, "billed_dbus": 1.0, "billed_cost_usd": 0.70, "estimated_cost_usd": None,
         "reason": "serverless"},
    )  # fmt: skip
    recon_schema = {
        "usage_date": pl.Date,
        "workspace_id": pl.String,
        "resource_type": pl.String,
        "sku_name": pl.String,
        "billing_records": pl.Int64,
        "billed_dbus": pl.Float64,
        "estimated_dbus": pl.Float64,
        "billed_cost_usd": pl.Float64,
        "estimated_cost_usd": pl.Float64,
        "ratio": pl.Float64,
        "unpriced": pl.Boolean,
        "estimate_unpriced": pl.Boolean,
    }
    reconciliation = _frame(
        [
            # ratio 3.6 / 3.7 = 0.973: within 5 % → matched
            (D2, b.WS, "cluster", "PREMIUM_JOBS_COMPUTE", 3, 3.7, 3.6, 0.555, 0.54, 3.6 / 3.7, False, False),
            (D2, b.WS, "serverless", "PREMIUM_JOBS_SERVERLESS_COMPUTE", 1, 1.0, None, 0.70, None, None, False, False),
            # ratio 1.5: not matched
            (D1, b.WS, "cluster", "PREMIUM_JOBS_COMPUTE", 2, 2.0, 3.0, 0.45, 0.675, 1.5, False, False),
            (D1, "ws-2", "cluster", "PREMIUM_ALL_PURPOSE_COMPUTE", 1, 1.0, 1.0, 0.25, 0.25, 1.0, False, False),
            (D3, b.WS, "cluster", "PREMIUM_JOBS_COMPUTE", 1, 9.0, 9.0, 9.0, 9.0, 1.0, False, False),
        ],
        recon_schema,
    )
    scope = _frame(
        [
            (D2, "team", "data", 0.33),
            (D2, "team", "ml", 0.165),
            (D2, "team", "(untagged)", 0.76),
            (D2, "tenant", "acme", 1.255),
            (D1, "team", "(untagged)", 0.70),
            (D3, "team", "data", 9.0),
        ],
        {"usage_date": pl.Date, "dimension": pl.String, "value": pl.String, "billed_cost_usd": pl.Float64},
    )
    budgets = _frame(
        [
            (D1, "team-data", "month", 10.0, 100.0),
            (D2, "team-data", "month", 25.0, 100.0),
            (D3, "team-data", "month", 40.0, 100.0),
            (D1, "acme-weekly", "week", 6.0, 20.0),
        ],
        {"usage_date": pl.Date, "budget": pl.String, "period": pl.String, "spend_to_date_usd": pl.Float64,
         "amount_usd": pl.Float64},
    )  # fmt: skip
    anomaly_rows = _frame(
        [
            (D2, D1, "team", "a1", "open"),
            (D2, D2, "team", "a1", "escalated"),  # a1's newest day: escalated → open
            (D2, D2, "account", "a2", "closed"),  # closed: not open
            (D2, D2, "account", None, None),  # a normal day, no episode
            (D1, D1, "user", "a3", "open"),  # an older partition: superseded by the newest
        ],
        {"usage_date": pl.Date, "scored_date": pl.Date, "monitor": pl.String, "anomaly_id": pl.String,
         "status": pl.String},
    )  # fmt: skip
    database = path / "ledger.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE SCHEMA raw; CREATE SCHEMA mart")
        tables = {
            "raw.billing_usage": bill_days,
            "mart.run_costs": run_costs,
            "mart.attributed_costs": attributed,
            "mart.reconciliation": reconciliation,
            "mart.cost_by_scope": scope,
            "mart.budget_status": budgets,
        }
        if anomalies:
            tables["mart.cost_anomalies"] = anomaly_rows
        for name, frame in tables.items():  # through Parquet: registering a polars frame needs pyarrow
            parquet = path / f"{name}.parquet"
            frame.write_parquet(parquet)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet(?)", [str(parquet)])
    return database


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of an exposition text by (name, sorted labels), parsed by prometheus_client."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _w(window: str, **labels: str) -> tuple:
    return tuple(sorted({"window": window, **labels}.items()))


LATEST, MTD = "latest_closed_day", "month_to_date"
# Runs of 01-05: run 1 billed DBU $0.33 + VM $0.50 = 0.83; run 2 0.165 + 0.25 = 0.415; serverless run 4
# $0.70 + VM 0 = 0.70. Run 3 of 01-04 has no bill: its estimate, 0.20 + 0.30 = 0.50.
EXPECTED = {
    ("databricks_cost_total_usd", _w(LATEST)): 0.83 + 0.415 + 0.70,  # 1.945
    ("databricks_cost_total_usd", _w(MTD)): 0.83 + 0.415 + 0.70 + 0.50,  # 2.445
    ("databricks_cost_dbu_usd", _w(LATEST)): 0.33 + 0.165 + 0.70,  # 1.195
    ("databricks_cost_dbu_usd", _w(MTD)): 0.33 + 0.165 + 0.70 + 0.20,  # 1.395
    ("databricks_runs_processed_total", _w(LATEST)): 3,  # runs 1, 2, 4
    ("databricks_runs_processed_total", _w(MTD)): 4,  # and run 3
    ("databricks_billed_cost_usd", _w(LATEST, workspace_id="ws-1", sku_name="PREMIUM_JOBS_COMPUTE")): 0.555,
    ("databricks_billed_cost_usd", _w(LATEST, workspace_id="ws-1", sku_name="PREMIUM_JOBS_SERVERLESS_COMPUTE")): 0.70,
    ("databricks_billed_cost_usd", _w(MTD, workspace_id="ws-1", sku_name="PREMIUM_JOBS_COMPUTE")): 0.555 + 0.45,
    ("databricks_billed_cost_usd", _w(MTD, workspace_id="ws-1", sku_name="PREMIUM_JOBS_SERVERLESS_COMPUTE")): 0.70,
    ("databricks_billed_cost_usd", _w(MTD, workspace_id="ws-2", sku_name="PREMIUM_ALL_PURPOSE_COMPUTE")): 0.25,
    ("databricks_attributed_cost_usd", _w(LATEST, team="data")): 0.33,
    ("databricks_attributed_cost_usd", _w(LATEST, team="ml")): 0.165,
    ("databricks_attributed_cost_usd", _w(LATEST, team="(untagged)")): 0.76,
    ("databricks_attributed_cost_usd", _w(MTD, team="data")): 0.33,
    ("databricks_attributed_cost_usd", _w(MTD, team="ml")): 0.165,
    ("databricks_attributed_cost_usd", _w(MTD, team="(untagged)")): 0.76 + 0.70,
    # matched billed $ / billed $: 01-05 only the c-1 row (0.555) of 0.555 + 0.70; MTD adds ws-2's 0.25
    # (ratio 1.0) to the matched and 0.45 + 0.25 to the billed.
    ("databricks_reconciliation_accuracy_ratio", _w(LATEST)): 0.555 / 1.255,
    ("databricks_reconciliation_accuracy_ratio", _w(MTD)): (0.555 + 0.25) / (1.255 + 0.70),
    # billed $ handed to runs (0.33 + 0.165 + 0.70; none on 01-04) / billed $
    ("databricks_attribution_coverage_ratio", _w(LATEST)): 1.195 / 1.255,
    ("databricks_attribution_coverage_ratio", _w(MTD)): 1.195 / 1.955,
    # the newest row up to 01-05: team-data 25 / 100; acme-weekly's only row (01-04) 6 / 20
    ("databricks_budget_used_ratio", (("budget", "team-data"), ("period", "month"))): 0.25,
    ("databricks_budget_used_ratio", (("budget", "acme-weekly"), ("period", "week"))): 0.30,
    ("databricks_open_anomalies", (("monitor", "team"),)): 1,
    ("databricks_cost_latest_closed_day_timestamp_seconds", ()): dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp(),
    ("databricks_cost_exporter_up", ()): 1,
}


def assert_samples(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


@pytest.fixture
def server(tmp_path):
    database = write_ledger(tmp_path)
    http, thread = metrics.serve(str(database), "127.0.0.1", 0, cache_seconds=0)
    try:
        yield database, f"http://127.0.0.1:{http.server_port}/metrics"
    finally:
        http.shutdown()
        http.server_close()
        thread.join(timeout=5)


def test_a_scrape_over_http_has_the_hand_computed_values(server):
    _, url = server
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert_samples(samples(response.text), EXPECTED)
    # No date in any label: the series stay the same from day to day.
    assert not [k for k in samples(response.text) if any(v[:4].isdigit() and "-" in v for _, v in k[1])]


def test_a_file_held_by_a_writer_serves_the_last_reading_with_up_0(server):
    database, url = server
    assert samples(httpx.get(url, timeout=10).text)[("databricks_cost_exporter_up", ())] == 1
    with duckdb.connect(str(database)):  # a read-write connection of this process: the file is held
        held = samples(httpx.get(url, timeout=10).text)
    assert held[("databricks_cost_exporter_up", ())] == 0
    assert_samples(held, {**EXPECTED, ("databricks_cost_exporter_up", ()): 0})


def test_the_cache_reads_the_file_once_per_period(tmp_path):
    database = write_ledger(tmp_path)
    now = [0.0]
    collector = metrics.LedgerCollector(str(database), cache_seconds=60, clock=lambda: now[0])
    list(collector.collect())  # the first scrape reads the file at t = 0
    with duckdb.connect(str(database)) as con:  # the run of 01-05 is restated
        con.execute("UPDATE mart.attributed_costs SET billed_cost_usd = 1.33 WHERE run_id = 1")

    def total() -> float:
        family = next(f for f in collector.collect() if f.name == "databricks_cost_total_usd")
        return next(s.value for s in family.samples if s.labels["window"] == LATEST)

    now[0] = 59.0
    assert total() == pytest.approx(1.945)  # cached
    now[0] = 60.0
    assert total() == pytest.approx(1.945 + 1.0)  # read again: run 1's billed DBU $ 0.33 → 1.33


def test_without_a_ledger_only_up_0_and_without_anomalies_no_anomaly_samples(tmp_path):
    collector = metrics.LedgerCollector(str(tmp_path / "missing.duckdb"), cache_seconds=0)
    got = {(s.name, tuple(s.labels.items())): s.value for f in collector.collect() for s in f.samples}
    assert got == {("databricks_cost_exporter_up", ()): 0}

    database = write_ledger(tmp_path, anomalies=False)
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in metrics.families(metrics.read_samples(str(database)), True)
        for s in f.samples
    }
    assert not [k for k in got if k[0] == "databricks_open_anomalies"]
    assert got[("databricks_cost_total_usd", _w(LATEST))] == pytest.approx(1.945)


def test_textfile_writes_the_same_metrics_through_the_cli(tmp_path):
    database = write_ledger(tmp_path)
    out = tmp_path / "textfile" / "cost_assets.prom"
    out.parent.mkdir()
    # A subprocess: the command leaves through os._exit (no duckdb shutdown noise), which would end pytest too.
    command = [str(Path(sys.executable).parent / "cost-assets"), "metrics", "textfile", "--out", str(out)]

    def textfile(database_path: Path) -> subprocess.CompletedProcess:
        env = {**os.environ, "COST_ASSETS_DUCKDB": str(database_path)}
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    result = textfile(database)
    assert result.returncode == 0, result.stderr
    assert "leaked" not in result.stderr  # the bindings' shutdown noise is not printed
    assert_samples(samples(out.read_text()), EXPECTED)
    assert [p.name for p in out.parent.iterdir()] == ["cost_assets.prom"]  # the temp file was renamed over it

    missing = textfile(tmp_path / "none.duckdb")
    assert missing.returncode == 1
    assert samples(out.read_text()) == {("databricks_cost_exporter_up", ()): 0}


def test_the_serve_command_answers_scrapes_until_stopped(tmp_path):
    """`cost-assets metrics serve` as an operator starts it: a process listening on 127.0.0.1."""
    database = write_ledger(tmp_path)
    with socket.socket() as probe:  # a free port (a race with another process is possible but harmless here)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).parent / "cost-assets"), "metrics", "serve", "--port", str(port)]
    env = {**os.environ, "COST_ASSETS_DUCKDB": str(database)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout.readline().startswith(f"serving http://127.0.0.1:{port}/metrics")
        got = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
        assert_samples(got, EXPECTED)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(timeout=20) == 0  # Ctrl-C ends it cleanly
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
