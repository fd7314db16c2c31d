"""`cost-assets report`'s numbers against hand sums over the tiny ledger of tests/report_builders.py.

Every expected value below is summed by hand from the rows written out there (the arithmetic is in the
comments); the JSON of every report is validated against docs/schemas/report.json.
"""

import datetime as dt
import json
from pathlib import Path

import jsonschema
import polars as pl
import pytest
import report_builders as fx
from report_builders import D1, D2

from cost_assets.read import TableMissingError, WarehouseMissingError
from cost_assets.reports import ledger, render
from cost_assets.reports.ledger import Window

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "schemas" / "report.json").read_text())
BOTH = Window(D1, D2)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return fx.write_ledger(tmp_path_factory.mktemp("ledger") / "cost.duckdb")


def row(frame: pl.DataFrame, **where: object) -> dict:
    hits = frame.filter(*(pl.col(k) == v for k, v in where.items()))
    assert hits.height == 1, f"{where}: {hits.height} rows"
    return hits.row(0, named=True)


def cents(rows: list[tuple]) -> list[tuple]:
    """Rows with floats rounded to 6 decimals (what the hand sums are compared with)."""
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in rows]


def valid_json(report: ledger.Report) -> dict:
    doc = json.loads(render.as_json(report))
    jsonschema.validate(doc, SCHEMA, format_checker=jsonschema.FormatChecker())
    return doc


def test_the_fixture_uses_only_columns_of_the_real_tables():
    for name, (columns, model) in fx.COLUMNS_OF.items():
        assert set(columns) <= set(model.to_schema().columns), name


def test_summary_per_day_and_total(db: str):
    report = ledger.summary(db, BOTH)
    days, total = report.tables["days"], report.tables["total"].row(0, named=True)
    d1 = row(days, usage_date=D1)
    # D1 bill (mart.reconciliation): DBUs 7.3 + 2.0 + 1.0 + 0.5 = 10.8; $ 3.65 + 1.00 + 0.70 = 5.35 (the
    # unpriced GPU row has no $; its 0.5 DBUs are the unpriced DBUs).
    assert d1["billed_dbus"] == pytest.approx(10.8) and d1["billed_usd"] == pytest.approx(5.35)
    assert d1["unpriced_dbus"] == pytest.approx(0.5)
    # D1 estimate (run_costs): DBU $ 2 + 1 + 1 + 0.5 = 4.50; VM $ 1 + 0.5 + 0.5 + 0.25 = 2.25; disk $ 0.10 + 0.05
    # = 0.15; total 4.50 + 2.25 + 0.15 = 6.90.
    assert (
        d1["estimated_dbu_usd"],
        d1["estimated_vm_usd"],
        d1["estimated_disk_usd"],
        d1["estimated_total_usd"],
    ) == pytest.approx((4.50, 2.25, 0.15, 6.90))
    # D1 where the bill went: runs 2.10 + 1.05 + 1.00 = 4.15; idle 0.50; unattributed (warehouse) 0.70.
    assert (d1["runs_usd"], d1["idle_usd"], d1["unattributed_usd"]) == pytest.approx((4.15, 0.50, 0.70))
    # D2: bill 3.30 + 1.00 = 4.30 over 6 + 2 = 8 DBUs; estimate DBU 3 + 1 = 4, VM 1.5 + 0.4 = 1.9, total 5.9.
    d2 = row(days, usage_date=D2)
    assert (d2["billed_usd"], d2["estimated_total_usd"], d2["runs_usd"]) == pytest.approx((4.30, 5.90, 4.30))
    # Totals: bill 5.35 + 4.30 = 9.65; runs 4.15 + 4.30 = 8.45, i.e. 8.45 / 9.65 of the bill.
    assert total["billed_usd"] == pytest.approx(9.65)
    assert total["estimated_total_usd"] == pytest.approx(6.90 + 5.90)
    assert total["runs_share"] == pytest.approx(8.45 / 9.65)
    valid_json(report)


def test_the_workspace_option_narrows_every_table(db: str):
    days = ledger.summary(db, Window(D1, D2, "w2")).tables["days"]
    # w2 has one day: c-w2 billed $1.00 (2 DBUs), estimated 1.00 + 0.40 (no disk $) = 1.40.
    assert cents(days.rows()) == [(D2, 2.0, 1.0, 0.0, 1.0, 0.4, 0.0, 1.4, 1.0, 0.0, 0.0)]
    top = ledger.top(db, Window(D1, D2, "w1"), "team", 10).tables["top"]
    # w1: data-eng 3.10 + 3.30 = 6.40, (untagged) 1.20, ml 1.05; bill 5.35 + 3.30 = 8.65.
    assert top["value"].to_list() == ["data-eng", "(untagged)", "ml"]
    assert row(top, value="data-eng")["bill_share"] == pytest.approx(6.40 / 8.65)


def test_trends_daily_and_split_by_team(db: str):
    days = ledger.trends(db, BOTH).tables["days"]
    assert cents(days.select("billed_usd", "estimated_dbu_usd").rows()) == [(5.35, 4.50), (4.30, 4.00)]
    split = ledger.trends(db, BOTH, "team")
    doc = valid_json(split)
    # D1 by team, most billed first: data-eng 3.10, (untagged) 1.20, ml 1.05; D2: data-eng 3.30, ml 1.00.
    assert [(r["usage_date"], r["value"], r["billed_usd"]) for r in doc["tables"]["days"]] == [
        ("2026-01-01", "data-eng", 3.10),
        ("2026-01-01", "(untagged)", 1.20),
        ("2026-01-01", "ml", 1.05),
        ("2026-01-02", "data-eng", 3.30),
        ("2026-01-02", "ml", 1.00),
    ]
    with pytest.raises(ValueError, match="--split-by 'cluster'"):
        ledger.trends(db, BOTH, "cluster")


def test_top_by_team_job_cluster_and_sku(db: str):
    teams = ledger.top(db, BOTH, "team", 2)
    # data-eng 3.10 + 3.30 = 6.40, ml 1.05 + 1.00 = 2.05, (untagged) 1.20 → the first two; shares of 9.65.
    assert cents(teams.tables["top"].select("value", "billed_usd").rows()) == [("data-eng", 6.40), ("ml", 2.05)]
    assert teams.tables["top"]["bill_share"].to_list() == pytest.approx([6.40 / 9.65, 2.05 / 9.65])
    jobs = ledger.top(db, BOTH, "job", 10).tables["top"]
    assert jobs["value"].to_list() == ["10", "(untagged)", "20", "30"]  # 6.40, 1.20, 1.05, 1.00
    clusters = ledger.top(db, BOTH, "cluster", 10).tables["top"]
    # c-job 1.00 + 3.30 = 4.30; c-shared 2.10 + 1.05 + 0.50 = 3.65 (0.50 of it idle); c-w2 1.00. The
    # warehouse is not a cluster, but its 0.70 stays in the share's denominator (9.65).
    assert cents(clusters.select("value", "billed_usd", "idle_usd").rows()) == [
        ("c-job", 4.30, 0.0),
        ("c-shared", 3.65, 0.50),
        ("c-w2", 1.00, 0.0),
    ]
    assert row(clusters, value="c-job")["bill_share"] == pytest.approx(4.30 / 9.65)
    skus = ledger.top(db, BOTH, "sku", 10).tables["top"]
    # JOBS 9.65 − 0.70 = 8.95; SQL 0.70 (unattributed, no estimate: unknown, not $0).
    assert cents(skus.select("value", "billed_usd", "unattributed_usd").rows()) == [
        ("JOBS", 8.95, 0.0),
        ("SQL", 0.70, 0.70),
    ]
    assert row(skus, value="SQL")["estimated_dbu_usd"] is None
    valid_json(ledger.top(db, BOTH, "cluster", 10))
    with pytest.raises(ValueError, match="--by 'pool'"):
        ledger.top(db, BOTH, "pool", 10)


def test_top_and_trends_by_workspace(db: str):
    top = ledger.top(db, BOTH, "workspace", 10)
    doc = valid_json(top)
    # w1: D1 2.10 + 1.05 + 0.50 + 1.00 + 0.70 = 5.35, D2 3.30 → 8.65; w2: 1.00. Share of 9.65.
    # w1's runs 2.10 + 1.05 + 1.00 + 3.30 = 7.45, idle 0.50, unattributed 0.70 (the warehouse);
    # est. DBU $ 2.00 + 1.00 + 0.50 + 1.00 + 3.00 = 7.50 (the warehouse has none).
    rows = top.tables["top"]
    assert cents(rows.select("value", "billed_usd", "runs_usd", "idle_usd", "unattributed_usd").rows()) == [
        ("w1", 8.65, 7.45, 0.50, 0.70),
        ("w2", 1.00, 1.00, 0.0, 0.0),
    ]
    assert rows["bill_share"].to_list() == pytest.approx([8.65 / 9.65, 1.00 / 9.65])
    assert row(rows, value="w1")["estimated_dbu_usd"] == pytest.approx(7.50)
    assert doc["parameters"] == {"by": "workspace", "limit": 10} and doc["notes"] == []
    split = ledger.trends(db, BOTH, "workspace")
    valid_json(split)
    # D1: w1 5.35 billed, est. 2.00 + 1.00 + 0.50 + 1.00 = 4.50; D2: w1 3.30 / 3.00, w2 1.00 / 1.00.
    assert cents(split.tables["days"].rows()) == [
        (D1, "w1", 5.35, 4.50),
        (D2, "w1", 3.30, 3.00),
        (D2, "w2", 1.00, 1.00),
    ]


def test_a_workspace_the_ledger_does_not_have_is_a_note_naming_the_ones_it_has(db: str):
    report = ledger.summary(db, Window(D1, D2, "w9"))
    assert report.tables["days"].is_empty()
    assert report.notes == ("the ledger has no workspace 'w9' (mart.attributed_costs holds w1, w2): check the id",)
    assert "the ledger has no workspace 'w9'" in render.render(report, "table")
    assert valid_json(report)["notes"] == list(report.notes)
    assert ledger.top(db, Window(D1, D2, "w9"), "team", 10).notes == report.notes
    # A workspace the ledger has, on a day it has nothing of, is no unknown workspace: empty, no note.
    assert ledger.summary(db, Window(D1, D1, "w2")).notes == ()


def test_job_and_run_per_day(db: str):
    job = ledger.consumer(db, BOTH, job_id=10)
    d1 = row(job.tables["days"], usage_date=D1)
    # Job 10 on D1: run 100's task runs 1001 (c-shared, shared) and 1002 (c-job): 2 + 1 = 3 h, 4 + 2 = 6 DBUs,
    # DBU $ 2 + 1 = 3, VM $ 1 + 0.5 = 1.5, disk $ 0 + 0.10 = 0.10, total 4.6, of it 3.00 on the shared cluster.
    assert (d1["runs"], d1["task_runs"]) == (1, 2)
    assert (
        d1["runtime_hours"],
        d1["dbus"],
        d1["estimated_dbu_usd"],
        d1["estimated_vm_usd"],
        d1["estimated_disk_usd"],
        d1["estimated_total_usd"],
    ) == pytest.approx((3.0, 6.0, 3.0, 1.5, 0.10, 4.6))
    assert (d1["shared_cluster_usd"], d1["shared_cluster_share"]) == pytest.approx((3.0, 3.0 / 4.6))
    # Billed: 2.10 + 1.00 = 3.10 of the day's 5.35; idle around it: c-shared's idle estimate 0.80 (c-job has none).
    assert (d1["billed_usd"], d1["bill_share"], d1["idle_nearby_usd"]) == pytest.approx((3.10, 3.10 / 5.35, 0.80))
    d2 = row(job.tables["days"], usage_date=D2)
    # D2: run 101 on c-job only: billed 3.30 of 4.30, nothing shared, no idle.
    assert (d2["billed_usd"], d2["bill_share"], d2["shared_cluster_usd"], d2["idle_nearby_usd"]) == pytest.approx(
        (3.30, 3.30 / 4.30, 0.0, 0.0)
    )
    run = ledger.consumer(db, BOTH, run_id=100)
    assert run.tables["days"]["usage_date"].to_list() == [D1]
    assert run.tables["days"].drop("usage_date").row(0) == job.tables["days"].drop("usage_date").row(0)
    assert valid_json(run)["parameters"] == {"run_id": 100}
    valid_json(job)
    assert ledger.consumer(db, BOTH, job_id=999).tables["days"].is_empty()


def test_idle_by_cluster(db: str):
    report = ledger.idle(db, BOTH)
    (only,) = report.tables["clusters"].iter_rows(named=True)
    # c-shared: idle billed 0.50 of the whole bill 9.65 and of its own 3.65; idle estimate 0.50 + 0.25 + 0.05 =
    # 0.80 (VM 0.25, disk 0.05).
    assert only["cluster_id"] == "c-shared"
    assert (only["idle_billed_usd"], only["bill_share"], only["cluster_idle_share"]) == pytest.approx(
        (0.50, 0.50 / 9.65, 0.50 / 3.65)
    )
    assert (
        only["idle_estimated_total_usd"],
        only["idle_estimated_vm_usd"],
        only["idle_estimated_disk_usd"],
    ) == pytest.approx((0.80, 0.25, 0.05))
    valid_json(report)


def test_reconcile_reasons_and_accuracy(db: str):
    report = ledger.reconcile(db, BOTH)
    reasons = report.tables["reasons"]
    # ok: 4 rows, billed 3.65 + 1.00 + 3.30 + 1.00 = 8.95, estimated 3.50 + 1 + 3 + 1 = 8.50, delta
    # 0.15 + 0 + 0.30 + 0 = 0.45; no_estimate: the warehouse, 0.70; unpriced: $ unknown.
    assert reasons["reason"].to_list() == ["ok", "no_estimate", "unpriced"]
    ok = row(reasons, reason="ok")
    assert (ok["grain_rows"], ok["billed_usd"], ok["estimated_dbu_usd"], ok["delta_usd"]) == pytest.approx(
        (4, 8.95, 8.50, 0.45)
    )
    assert ok["bill_share"] == pytest.approx(8.95 / 9.65)
    assert row(reasons, reason="unpriced")["billed_usd"] is None
    days = report.tables["days"]
    # Within tolerance on D1: c-shared 3.65 + c-job 1.00 of 5.35; on D2 everything.
    assert days["within_tolerance_share"].to_list() == pytest.approx([(3.65 + 1.00) / 5.35, 1.0])
    valid_json(report)


def test_budget_newest_day_per_budget(db: str):
    report = ledger.budget(db, BOTH)
    budgets = report.tables["budgets"]
    # eng's newest day is D2 (6.40 of 100, forecast exceeded); ml has only D1.
    assert budgets.select("budget", "usage_date", "spend_to_date_usd", "state").rows() == [
        ("eng", D2, 6.40, "forecast_exceeded"),
        ("ml", D1, 1.05, "forecast_exceeded"),
    ]
    assert ledger.budget(db, Window(D1, D1), "eng").tables["budgets"]["spend_to_date_usd"].to_list() == [3.10]
    valid_json(report)


def test_anomalies_take_the_newest_view(db: str):
    report = ledger.anomalies(db, BOTH)
    # The D1 episode as of D2 (escalated, not open); D2's normal day is not an anomaly.
    assert report.tables["anomalies"].select("scored_date", "scope", "status", "impact_usd").rows() == [
        (D1, "team = data-eng", "escalated", 2.00)
    ]
    valid_json(report)


def test_serving_by_tenant_and_workspace(db: str):
    report = ledger.serving(db, BOTH)
    # globex 0.70 (its estimate is unknown, so null); acme 0.40 + 0.20 = 0.60, estimate 0.30 + 0.25 = 0.55,
    # 3 + 2 = 5 calls.
    assert report.tables["groups"].select("tenant", "billed_usd", "estimated_token_usd", "calls").rows() == [
        ("globex", pytest.approx(0.70), None, 1),
        ("acme", pytest.approx(0.60), pytest.approx(0.55), 5),
    ]
    w1 = ledger.serving(db, Window(D1, D2, "w1"), ["tenant", "endpoint"])
    assert w1.tables["groups"].select("tenant", "endpoint", "calls").rows() == [("acme", "chat", 5)]
    valid_json(report)
    valid_json(w1)
    with pytest.raises(ValueError, match="--group-by 'cluster'"):
        ledger.serving(db, BOTH, ["cluster"])


def test_serving_by_provider_and_by_session(db: str):
    by_provider = ledger.serving(db, BOTH, ["provider"])
    # databricks: acme D1 0.40 + globex 0.70 = 1.10, estimate null (globex's is unknown), 3 + 1 = 4 calls;
    # anthropic: acme D2 0.20, estimate 0.25, 2 calls.
    assert by_provider.tables["groups"].select("provider", "billed_usd", "estimated_token_usd", "calls").rows() == [
        ("databricks", pytest.approx(1.10), None, 4),
        ("anthropic", pytest.approx(0.20), pytest.approx(0.25), 2),
    ]
    by_session = ledger.serving(db, BOTH, ["session", "provider"])
    # globex (untagged) databricks 0.70; s1 databricks 0.40 (D1); s1 anthropic 0.20 (D2).
    assert by_session.tables["groups"].select("session", "provider", "billed_usd").rows() == [
        ("(untagged)", "databricks", pytest.approx(0.70)),
        ("s1", "databricks", pytest.approx(0.40)),
        ("s1", "anthropic", pytest.approx(0.20)),
    ]
    valid_json(by_provider)
    valid_json(by_session)


def test_optional_tables_not_built_are_a_note(tmp_path: Path):
    database = fx.write_ledger(tmp_path / "no-optional.duckdb", optional=False)
    budget = ledger.budget(database, BOTH)
    anomalies = ledger.anomalies(database, BOTH)
    assert budget.notes == (ledger.NOT_BUILT_BUDGETS,) and budget.notes[0].startswith("not built: ")
    assert anomalies.notes == (ledger.NOT_BUILT_ANOMALIES,)
    assert "not built: mart.budget_status" in render.as_table(budget)
    assert valid_json(anomalies)["tables"] == {"anomalies": []}
    valid_json(budget)


def test_a_missing_database_or_table_says_run_make_run_first(tmp_path: Path):
    with pytest.raises(WarehouseMissingError, match=r"run `make run` first"):
        ledger.summary(str(tmp_path / "nothing.duckdb"), BOTH)
    database = fx.write_ledger(tmp_path / "partial.duckdb", optional=False)
    import duckdb

    with duckdb.connect(database) as con:
        con.execute("DROP TABLE mart.cost_by_scope")
    with pytest.raises(TableMissingError, match=r"cost_by_scope.*run `make run` first"):
        ledger.top(database, BOTH, "team", 5)


def test_table_format_money_shares_and_alignment(db: str):
    assert [render.money(v) for v in (1234.5, 0.0, -12.345, None)] == ["$1,234.50", "$0.00", "-$12.35", "—"]
    assert render.cell("bill_share", 0.6632) == "66.3 %" and render.cell("pct_used", 6.4) == "6.4 %"
    text = render.as_table(ledger.top(db, BOTH, "team", 3))
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if "billed $" in line)
    # Right-aligned money: every data row's "billed $" cell ends in the header's column.
    end = lines[header].index("billed $") + len("billed $")
    assert [line[end - 5 : end] for line in lines[header + 2 : header + 5]] == ["$6.40", "$2.05", "$1.20"]
    assert render.LEGEND in text


def test_json_is_stable_and_csv_is_the_main_table(db: str):
    report = ledger.reconcile(db, BOTH)
    assert render.as_json(report) == render.as_json(ledger.reconcile(db, BOTH))
    csv = render.as_csv(report).splitlines()
    assert csv[0] == "reason,grain_rows,billed_dbus,billed_usd,bill_share,estimated_dbu_usd,delta_usd"
    assert len(csv) == 1 + 3


def test_the_run_summary_reads_the_same_query(db: str):
    """`cost-assets run`'s summary (cost_assets.report) and `report summary` agree on the bill."""
    from cost_assets import report

    billed = report.billed_by_day(db, D1, D2)
    assert billed["billed_usd"].to_list() == pytest.approx([5.35, 4.30])
    assert report.ledger_by_day(db, D1, D2)["estimated_usd"].to_list() == pytest.approx([6.90, 5.90])
    assert report.budgets_on(db, D2)["budget"].to_list() == ["eng"]


def test_latest_day_is_the_default_end(db: str):
    assert ledger.latest_day(db) == D2
    assert ledger.latest_day(db) - dt.timedelta(days=1) == D1
