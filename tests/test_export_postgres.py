"""The Postgres export (``finops.*``) on the real PostgreSQL server `make test` starts (scripts/pg.sh).

Each test gets a database of its own on that server. Expected figures are computed by hand from small
fixtures (tests/export_builders.py); the end-to-end tests run the daily pipeline of the tiny simulated
world with COST_ASSETS_POSTGRES_URL set, as an operator would.
"""

import datetime as dt
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import polars as pl
import psycopg
import pytest

from cost_assets.config import ConfigurationError, Settings
from cost_assets.definitions import build_defs
from cost_assets.export import postgres
from cost_assets.read import fetch
from tests import export_builders as b
from tests.conftest import sim_environ

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "grafana" / "cost_assets_finops.json"
NEXT_DAY = b.DAY + dt.timedelta(days=1)
VERIFY = "SELECT COUNT(*), SUM(total_cost_usd) FROM finops.calculator_run_costs WHERE reporting_date = %s"


def _server() -> str:
    url = os.environ.get("COST_ASSETS_TEST_PG_URL")
    if not url:
        pytest.fail(
            "COST_ASSETS_TEST_PG_URL is not set: run these tests through `make test` or "
            "`scripts/pg.sh run -- .venv/bin/pytest tests/test_export_postgres.py`",
            pytrace=False,
        )
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the test server (dropped afterwards), as a postgresql:// URL with the password."""
    server = _server()
    name = f"finops_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(server)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _query(url: str, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(url) as connection:
        return connection.execute(sql, params).fetchall()


def _export(url: str, marts: dict[str, pl.DataFrame], days: list[dt.date]) -> dict[str, int]:
    with postgres.connect(url) as connection:
        postgres.migrate(connection)
        return postgres.replace_days(connection, postgres.finops_frames(marts), days)


# ------------------------------------------------------------------------------------------ fixture marts
def _marts() -> dict[str, pl.DataFrame]:
    """Four runs on 2026-01-05 (and one on the next day):

    run 1 (job 100, c-1): estimate DBU $0.30 + VM $0.50; the bill gives it $0.33 → billed: 0.33 + 0.50 = 0.83
    run 2 (job 200, c-1): estimate DBU $0.15 + VM $0.25; the bill gives it $0.165 → billed: 0.165 + 0.25 = 0.415
    run 3 (job 300, c-2): estimate DBU $0.20 + VM $0.30, nothing billed yet → estimated: 0.50
    run 4 (job 400): serverless, billed $0.70, no estimate → billed: 0.70 + VM 0 (in the DBU price) = 0.70
    c-1's idle (estimate and bill) is nobody's run and stays out of calculator_run_costs.
    Σ total on 2026-01-05 = 0.83 + 0.415 + 0.50 + 0.70 = 2.445 over 4 rows.
    run 5 (job 500, c-3) on 2026-01-06: estimate DBU $1.00 + VM $2.00 = 3.00, estimated.
    """
    run_costs = b.run_costs(
        {"run_id": 1, "task_run_id": 11, "job_id": 100, "task_key": "ingest", "dbus": 2.0, "dbu_cost_usd": 0.30,
         "vm_cost_usd": 0.50, "total_cost_usd": 0.80, "team": "data"},
        {"run_id": 2, "task_run_id": 21, "job_id": 200, "task_key": "train", "dbus": 1.0, "dbu_cost_usd": 0.15,
         "vm_cost_usd": 0.25, "total_cost_usd": 0.40, "team": "ml"},
        {"run_id": 3, "task_run_id": 31, "job_id": 300, "cluster_id": "c-2", "dbus": 1.0, "dbu_cost_usd": 0.20,
         "vm_cost_usd": 0.30, "total_cost_usd": 0.50},
        {"consumer": "idle", "is_shared_cluster": True, "dbus": 0.5, "dbu_cost_usd": 0.05, "vm_cost_usd": 0.10,
         "total_cost_usd": 0.15},
        {"usage_date": NEXT_DAY, "run_id": 5, "task_run_id": 51, "job_id": 500, "cluster_id": "c-3", "dbus": 5.0,
         "dbu_cost_usd": 1.00, "vm_cost_usd": 2.00, "total_cost_usd": 3.00},
    )  # fmt: skip
    attributed = b.attributed(
        {"run_id": 1, "task_run_id": 11, "job_id": 100, "billed_dbus": 2.2, "billed_cost_usd": 0.33,
         "estimated_cost_usd": 0.30, "team": "data"},
        {"run_id": 2, "task_run_id": 21, "job_id": 200, "billed_dbus": 1.1, "billed_cost_usd": 0.165,
         "estimated_cost_usd": 0.15, "team": "ml"},
        {"consumer": "idle", "billed_dbus": 0.4, "billed_cost_usd": 0.06, "estimated_cost_usd": 0.05},
        {"resource_type": "serverless", "resource_id": "4", "sku_name": "PREMIUM_JOBS_SERVERLESS_COMPUTE",
         "run_id": 4, "job_id": 400, "billed_dbus": 1.0, "billed_cost_usd": 0.70, "estimated_cost_usd": None,
         "reason": "serverless"},
    )  # fmt: skip
    return {"run_costs": run_costs, "attributed_costs": attributed}


# ------------------------------------------------------------------------------------------ the asset
def test_the_export_is_present_only_when_configured_and_reads_the_marts_present(tmp_path):
    database = tmp_path / "w.duckdb"
    assert dg.AssetKey(["export", "postgres"]) not in build_defs(sim_environ(database)).resolve_all_asset_keys()
    url = "postgresql://finops:not-used@127.0.0.1:5432/finops"
    for extra, optional in (
        ({}, set()),
        ({"COST_ASSETS_BUDGETS": str(REPO / "examples" / "budgets.yaml")}, {"mart/budget_status"}),
    ):
        defs = build_defs(sim_environ(database, COST_ASSETS_POSTGRES_URL=url, **extra))
        graph = defs.resolve_asset_graph()
        node = graph.get(dg.AssetKey(["export", "postgres"]))
        anomalies = {"mart/cost_anomalies"} & {k.to_user_string() for k in graph.get_all_asset_keys()}
        assert {p.to_user_string() for p in node.parent_keys} == {
            "mart/run_costs",
            "mart/attributed_costs",
            "mart/cost_by_scope",
            "mart/serving_costs",
            *optional,
            *anomalies,
        }
        assert node.group_name == "export" and not node.child_keys  # a leaf: nothing waits for it
        assert node.partitions_def == dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC")


def test_a_bad_url_is_reported_redacted():
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_environ({"COST_ASSETS_POSTGRES_URL": "mysql://finops:hunter2-secret@db.example.com/finops"})
    assert caught.value.problems == [
        "COST_ASSETS_POSTGRES_URL=mysql://finops:***@db.example.com/finops: must be "
        "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    ]


# ------------------------------------------------------------------------------------------ migrations
def test_migrations_create_the_schema_once(pg_url):
    with postgres.connect(pg_url) as connection:
        assert postgres.migrate(connection) == [1, 2, 3]
        assert postgres.migrate(connection) == []  # re-run: nothing to do, nothing fails
    tables = {
        r[0] for r in _query(pg_url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'finops'")
    }
    assert tables == {
        "schema_migrations",
        "calculator_run_costs",
        "attributed_costs",
        "cost_by_scope",
        "serving_costs",
        "budget_status",
        "cost_anomalies",
    }
    assert _query(pg_url, "SELECT version, name FROM finops.schema_migrations ORDER BY 1") == [
        (1, "001_finops"),
        (2, "002_serving_session_provider"),
        (3, "003_cost_anomaly_incident"),
    ]


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_migrations_apply_in_order_once_under_concurrency(pg_url, tmp_path):
    """Eight processes' worth of connections migrate at once: each migration runs exactly once, in order
    (002 alters what 001 creates, 003 inserts a row: a second run of 003 would leave two rows)."""
    directory = _write(
        tmp_path / "m",
        {
            "003_seed.sql": "INSERT INTO finops.t (a, b) VALUES (1, 'x');",
            "001_create.sql": "CREATE TABLE finops.t (a INTEGER);",
            "002_alter.sql": "ALTER TABLE finops.t ADD COLUMN b TEXT;",
        },
    )
    results, errors = [], []

    def one() -> None:
        try:
            with postgres.connect(pg_url) as connection:
                results.append(postgres.migrate(connection, directory))
        except Exception as e:  # collected: a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [[]] * 7 + [[1, 2, 3]]  # one did all three, in order; seven found them done
    assert _query(pg_url, "SELECT a, b FROM finops.t") == [(1, "x")]
    assert [r[0] for r in _query(pg_url, "SELECT version FROM finops.schema_migrations ORDER BY 1")] == [1, 2, 3]


def test_a_failing_migration_leaves_nothing_and_an_edited_one_is_refused(pg_url, tmp_path):
    directory = _write(tmp_path / "m", {"001_create.sql": "CREATE TABLE finops.t (a INTEGER);"})
    with postgres.connect(pg_url) as connection:
        assert postgres.migrate(connection, directory) == [1]
    _write(directory, {"002_ok.sql": "CREATE TABLE finops.u (a INTEGER);", "003_bad.sql": "CREATE TABLE oops ("})
    with pytest.raises(postgres.PostgresExportError, match="syntax error"), postgres.connect(pg_url) as connection:
        postgres.migrate(connection, directory)
    # 002 ran in the same transaction as the failing 003: rolled back with it.
    assert _query(pg_url, "SELECT to_regclass('finops.u') IS NULL")[0][0]
    assert [r[0] for r in _query(pg_url, "SELECT version FROM finops.schema_migrations")] == [1]

    (directory / "003_bad.sql").unlink()
    (directory / "001_create.sql").write_text("CREATE TABLE finops.t (a BIGINT);")
    changed = r"001_create\.sql was changed after it was applied"
    with pytest.raises(postgres.PostgresExportError, match=changed), postgres.connect(pg_url) as connection:
        postgres.migrate(connection, directory)


def test_a_misnamed_migration_file_is_named(tmp_path):
    with pytest.raises(postgres.PostgresExportError, match=r"4_x\.sql: a migration file is named NNN_"):
        postgres.migrations(_write(tmp_path / "m", {"4_x.sql": "SELECT 1;"}))


# ------------------------------------------------------------------------------------------ the rows
def test_the_verification_query_answers_hand_computed_figures(pg_url):
    written = _export(pg_url, _marts(), [b.DAY, NEXT_DAY])
    assert written["calculator_run_costs"] == 5
    count, total = _query(pg_url, VERIFY, [b.DAY])[0]
    assert count == 4
    assert float(total) == pytest.approx(2.445, abs=1e-9)  # 0.83 + 0.415 + 0.50 + 0.70
    count, total = _query(pg_url, VERIFY, [NEXT_DAY])[0]
    assert (count, float(total)) == (1, pytest.approx(3.00))
    rows = _query(
        pg_url,
        "SELECT databricks_run_id, calculator_id, cluster_id, dbu_cost_usd, vm_total_cost_usd, cost_basis, team, "
        "tags->>'team', calculation_version LIKE %s FROM finops.calculator_run_costs "
        "WHERE reporting_date = %s ORDER BY databricks_run_id",
        ["%+%", b.DAY],
    )
    assert [(r[0], r[1], r[2], float(r[3]), float(r[4]), r[5], r[6], r[7], r[8]) for r in rows] == [
        (1, "100", "c-1", pytest.approx(0.33), pytest.approx(0.50), "billed", "data", "data", True),
        (2, "200", "c-1", pytest.approx(0.165), pytest.approx(0.25), "billed", "ml", "ml", True),
        (3, "300", "c-2", pytest.approx(0.20), pytest.approx(0.30), "estimated", None, None, True),
        (4, "400", None, pytest.approx(0.70), 0.0, "billed", None, None, True),
    ]
    # The mirrored mart keeps every row, idle included: 0.33 + 0.165 + 0.06 + 0.70 = 1.255 billed.
    assert float(_query(pg_url, "SELECT SUM(billed_cost_usd) FROM finops.attributed_costs")[0][0]) == pytest.approx(
        1.255
    )


def _all_rows(url: str, table: str) -> list[tuple]:
    return sorted(_query(url, f"SELECT * FROM finops.{table}"), key=repr)


def test_a_day_written_again_has_the_same_rows_and_other_days_stay(pg_url):
    marts = _marts()
    _export(pg_url, marts, [b.DAY, NEXT_DAY])
    first = {t: _all_rows(pg_url, t) for t in ("calculator_run_costs", "attributed_costs")}
    _export(pg_url, marts, [b.DAY, NEXT_DAY])
    assert {t: _all_rows(pg_url, t) for t in first} == first

    # Re-materializing 2026-01-05 alone with only run 3 left: that day is replaced, 2026-01-06 untouched.
    only_run_3 = {
        "run_costs": marts["run_costs"].filter(pl.col("run_id") == 3),
        "attributed_costs": marts["attributed_costs"].head(0),
    }
    _export(pg_url, only_run_3, [b.DAY])
    assert [(c, float(t)) for c, t in _query(pg_url, VERIFY, [b.DAY])] == [(1, pytest.approx(0.50))]
    assert [(c, float(t)) for c, t in _query(pg_url, VERIFY, [NEXT_DAY])] == [(1, pytest.approx(3.00))]
    assert _query(pg_url, "SELECT COUNT(*) FROM finops.attributed_costs")[0][0] == 0


def test_a_column_the_schema_lacks_is_refused_before_anything_changes(pg_url):
    marts = _marts()
    _export(pg_url, marts, [b.DAY, NEXT_DAY])
    before = _all_rows(pg_url, "calculator_run_costs")
    frames = postgres.finops_frames(marts)
    frames["attributed_costs"] = frames["attributed_costs"].with_columns(pl.lit(1).alias("new_column"))
    with (
        pytest.raises(
            postgres.PostgresExportError, match=r"finops\.attributed_costs lacks column\(s\) \['new_column'\]"
        ),
        postgres.connect(pg_url) as connection,
    ):
        postgres.replace_days(connection, frames, [b.DAY, NEXT_DAY])
    assert _all_rows(pg_url, "calculator_run_costs") == before  # calculator_run_costs was deleted, then rolled back


def test_rows_outside_the_days_are_refused(pg_url):
    with pytest.raises(postgres.PostgresExportError, match=r"calculator_run_costs: 1 row\(s\) outside the days"):
        _export(pg_url, _marts(), [b.DAY])


# ------------------------------------------------------------------------------------------ Grafana
def panel_queries(first: dt.date, last: dt.date) -> dict[str, str]:
    """Each panel's SQL of deploy/grafana's dashboard with Grafana's macros as Grafana's Postgres datasource
    expands them for a time range of [first 00:00, last 23:59:59] UTC."""
    start, end = f"'{first}T00:00:00Z'", f"'{last}T23:59:59Z'"
    queries = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        assert panel["datasource"] == {"type": "grafana-postgresql-datasource", "uid": "${datasource}"}
        (target,) = panel["targets"]
        sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN {start} AND {end}", target["rawSql"])
        sql = sql.replace("$__timeFrom()", start).replace("$__timeTo()", end)
        assert "$" not in sql, f"{panel['title']}: a macro the test does not expand"
        queries[panel["title"]] = sql
    return queries


def _scope_rows() -> pl.DataFrame:
    """mart/cost_by_scope rows: teams data $0.33 + $1.00 (next day), ml $0.165, (untagged) $0.76; a tenant row."""
    rows = [
        (b.DAY, "team", "data", 0.33),
        (b.DAY, "team", "ml", 0.165),
        (b.DAY, "team", "(untagged)", 0.76),
        (NEXT_DAY, "team", "data", 1.00),
        (b.DAY, "tenant", "acme", 1.255),
    ]
    return pl.DataFrame(
        [
            {"usage_date": day, "workspace_id": b.WS, "dimension": dim, "value": value, "billed_dbus": 1.0,
             "billed_cost_usd": usd, "estimated_cost_usd": usd, "run_cost_usd": usd, "idle_cost_usd": 0.0,
             "unattributed_cost_usd": 0.0, "serving_cost_usd": 0.0, "currency_code": "USD"}
            for day, dim, value, usd in rows
        ]
    )  # fmt: skip


def _numbers(rows: list[tuple]) -> list[tuple]:
    return [tuple(float(v) if isinstance(v, Decimal) else v for v in row) for row in rows]


def test_the_grafana_panels_answer_hand_computed_figures(pg_url):
    _export(pg_url, {**_marts(), "cost_by_scope": _scope_rows()}, [b.DAY, NEXT_DAY])
    answers = {title: _numbers(_query(pg_url, sql)) for title, sql in panel_queries(b.DAY, NEXT_DAY).items()}
    day, next_day = dt.datetime(2026, 1, 5), dt.datetime(2026, 1, 6)
    assert answers["Run costs per day (billed where the bill is in)"] == [
        (day, "billed", pytest.approx(0.83 + 0.415 + 0.70)),  # runs 1, 2, 4
        (day, "estimated", pytest.approx(0.50)),  # run 3
        (next_day, "estimated", pytest.approx(3.00)),  # run 5
    ]
    assert answers["The bill per day: runs, idle, unattributed"] == [
        (day, "idle", pytest.approx(0.06)),
        (day, "run", pytest.approx(0.33 + 0.165 + 0.70)),
    ]
    assert answers["Billed $ by team"] == [
        ("data", pytest.approx(0.33 + 1.00)),
        ("(untagged)", pytest.approx(0.76)),
        ("ml", pytest.approx(0.165)),
    ]
    assert answers["Idle share of the bill per day"] == [(day, pytest.approx(0.06 / (0.33 + 0.165 + 0.06 + 0.70)))]
    assert answers["Budgets (newest day in the range)"] == []  # no budget rows exported
    assert answers["Open cost anomalies"] == []
    # Outside the range: nothing.
    assert all(not _query(pg_url, sql) for sql in panel_queries(dt.date(2025, 1, 1), dt.date(2025, 1, 31)).values())


# ------------------------------------------------------------------------------------------ the password
def test_the_password_is_scrubbed_from_connection_errors():
    password = "s3cr3t-PassW0rd"
    for url, transient in (
        # nothing listens on port 1: another try may find the server up
        (f"postgresql://someone:{password}@127.0.0.1:1/db", True),
        # psycopg quotes a malformed string whole; no try will fix it
        (f"postgresql://someone:{password}@127.0.0.1:notaport/db", False),
    ):
        with pytest.raises(postgres.PostgresExportError) as caught, postgres.connect(url):
            pass
        shown = str(caught.value)
        assert password not in shown and "someone:***@127.0.0.1" in shown
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
        assert caught.value.transient is transient
    assert postgres.redact(f"postgresql://u:{password}@h:5432/db?sslpassword={password}") == (
        "postgresql://u:***@h:5432/db?***"
    )


def _password(url: str) -> str:
    password = urlsplit(url).password
    assert password and len(password) >= 8  # pg.sh generates one; the assertions below need it
    return password


def _run_logs(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        json.dumps(dg.serialize_value(entry)) if not isinstance(entry, str) else entry
        for entry in instance.all_logs(result.run_id)
    )


def _rounded(rows: list[tuple]) -> list[tuple]:
    return [tuple(round(v, 9) if isinstance(v, Decimal | float) else v for v in row) for row in rows]


def _day_rows(url: str, day: dt.date) -> dict[str, list[tuple]]:
    return {
        t: sorted(_query(url, f"SELECT * FROM finops.{t} WHERE {c} = %s", [day]), key=repr)
        for t, c in postgres.DAY_COLUMNS.items()
    }


def test_the_pipeline_exports_each_day_idempotently_without_the_password(pg_url, tmp_path, monkeypatch, capfd):
    """With COST_ASSETS_POSTGRES_URL set (and budgets), export/postgres joins the daily pipeline: the same day
    twice, then a two-day backfill over it, give the same rows for it; Postgres holds what DuckDB holds; the
    password is nowhere to be seen."""
    database = tmp_path / "w.duckdb"
    monkeypatch.setenv("COST_ASSETS_POSTGRES_URL", pg_url)
    environ = sim_environ(
        database, COST_ASSETS_POSTGRES_URL=pg_url, COST_ASSETS_BUDGETS=str(REPO / "examples" / "budgets.yaml")
    )
    defs = build_defs(environ)
    day, before = dt.date(2026, 1, 2), dt.date(2026, 1, 1)
    backfill = {"dagster/asset_partition_range_start": "2026-01-01", "dagster/asset_partition_range_end": "2026-01-02"}
    logs, snapshots, metadata = [], [], {}
    for run in ({"partition_key": "2026-01-02"}, {"partition_key": "2026-01-02"}, {"tags": backfill}):
        with dg.instance_for_test() as instance:
            result = defs.resolve_job_def("daily_pipeline").execute_in_process(instance=instance, **run)
            assert result.success
            logs.append(_run_logs(instance, result))
            for m in (e.materialization for e in result.get_asset_materialization_events()):
                if m.asset_key == dg.AssetKey(["export", "postgres"]):
                    metadata[m.partition] = m.metadata
        snapshots.append(_day_rows(pg_url, day))
    first, again, after_backfill = snapshots
    assert again["calculator_run_costs"] == first["calculator_run_costs"]  # calculation_version included
    # The marts' own float sums may differ in the last bit from run to run (summation order); the export
    # copies what the mart holds, so the mirrored tables are compared to 1e-9 $.
    assert {t: _rounded(rows) for t, rows in again.items()} == {t: _rounded(rows) for t, rows in first.items()}
    # The backfill writes 2026-01-02 again beside 2026-01-01: the same rows, except in the marts that look back
    # at earlier days (a budget's period so far, an anomaly's history now hold 2026-01-01 too).
    own_day = set(postgres.DAY_COLUMNS) - {"budget_status", "cost_anomalies"}
    assert {t: _rounded(after_backfill[t]) for t in own_day} == {t: _rounded(first[t]) for t in own_day}
    assert first["calculator_run_costs"] and first["budget_status"] and first["cost_by_scope"]
    assert _day_rows(pg_url, before)["calculator_run_costs"]  # the backfill's other day is there too

    mart_billed = fetch(
        str(database), "SELECT SUM(billed_cost_usd) FROM mart.attributed_costs WHERE usage_date = ?", [day]
    )
    pg_billed = _query(pg_url, "SELECT SUM(billed_cost_usd) FROM finops.attributed_costs WHERE usage_date = %s", [day])
    assert float(pg_billed[0][0]) == pytest.approx(mart_billed.item(), abs=1e-9)
    assert sorted(metadata) == ["2026-01-01", "2026-01-02"]  # each day of the backfill has its own metadata
    for partition, meta in metadata.items():
        count, total = _query(pg_url, VERIFY, [dt.date.fromisoformat(partition)])[0]
        assert meta["verification/run_rows"].value == count == meta["rows/calculator_run_costs"].value
        assert meta["verification/total_cost_usd"].value == pytest.approx(float(total), abs=0.005)
    meta = metadata["2026-01-02"]

    # Every Grafana panel runs on what the pipeline exported; all but anomalies have rows (the tiny world has
    # too little history on 2026-01-02 for an anomaly).
    answers = {title: _query(pg_url, sql) for title, sql in panel_queries(day, day).items()}
    assert [title for title, rows in answers.items() if not rows] == ["Open cost anomalies"]

    password = _password(pg_url)
    out, err = capfd.readouterr()
    shown = "\n".join([*logs, out, err, json.dumps({k: str(v.value) for k, v in meta.items()})])
    assert password not in shown
    assert re.search(r"postgresql://\w+:\*\*\*@127\.0\.0\.1:\d+/finops_test_", meta["target"].value)


def test_a_failing_export_fails_only_its_step_and_never_shows_the_password(pg_url, tmp_path, monkeypatch, capfd):
    """A wrong password: the marts of the day are stored, export/postgres fails at once (a refusal is not
    retried) and its error names the target without the password."""
    password = _password(pg_url)
    wrong = pg_url.replace(f":{password}@", ":Wr0ng-secret-value@")
    database = tmp_path / "w.duckdb"
    monkeypatch.setenv("COST_ASSETS_POSTGRES_URL", wrong)
    defs = build_defs(sim_environ(database, COST_ASSETS_POSTGRES_URL=wrong))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("daily_pipeline").execute_in_process(
            partition_key="2026-01-02", instance=instance, raise_on_error=False
        )
        logs = _run_logs(instance, result)
    assert not result.success
    failed = {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE}
    assert failed == {"export__postgres"}
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    stored = fetch(str(database), "SELECT COUNT(*) FROM mart.cost_by_scope WHERE usage_date = '2026-01-02'").item()
    assert stored > 0
    out, err = capfd.readouterr()
    assert "password authentication failed" in logs
    for secret in (password, "Wr0ng-secret-value"):
        assert secret not in "\n".join([logs, out, err])
