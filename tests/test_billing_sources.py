"""Billing sources: the legacy CSV files (bad input named by file, line and column, stored days kept),
the Account API download across months, and the SQL statement client behind the system tables.

The CSV rows are written by hand with their expected values: ``timestamp`` is the end of the hour
(``09:59:59.999Z`` covers 09:00–10:00), job clusters are named ``job-<job_id>-run-<run_id>``, and a SQL
warehouse row carries the warehouse id in ``clusterId``.
"""

import datetime as dt
import re
import textwrap

import dagster as dg
import pytest

from cost_assets.assets import raw
from cost_assets.ingest.parse import InputError
from cost_assets.ingest.sql import Param, SqlStatementError, StatementClient
from cost_assets.mock_server import Faults, MockOptions, MockServer
from cost_assets.resources.billing import AccountApiBillingSource, CsvBillingSource, SystemTablesBillingSource
from cost_assets.resources.databricks import DatabricksConnection
from cost_assets.resources.warehouse import read_table, storage_resources
from cost_assets.simulation.world import WorldConfig

HEADER = (
    "workspaceId,timestamp,clusterId,clusterName,clusterNodeType,clusterOwnerUserId,clusterCustomTags,sku,"
    "dbus,machineHours,clusterOwnerUserName,tags"
)
GOOD_DAY = textwrap.dedent(f"""\
    {HEADER}
    2222333344445555,2026-01-05T09:59:59.999Z,0105-090000-job00001,job-998877-run-455600001,i3.xlarge,4711,"{{""team"":""ml""}}",PREMIUM_JOBS_COMPUTE,5.0,5.0,,"{{""team"":""ml""}}"
    2222333344445555,2026-01-05T21:59:59.999Z,0105-090000-shrd0001,shared-analytics,r5.4xlarge,4711,"{{""team"":""analytics""}}",PREMIUM_ALL_PURPOSE_COMPUTE_(PHOTON),21.6,3.0,,"{{}}"
    2222333344445555,2026-01-05T23:59:59.999Z,8e00f0c8b392983e,BI warehouse,db.xlarge,4711,"{{}}",PREMIUM_SQL_COMPUTE,12.0,,,"{{}}"
    """)  # noqa: E501


def row(dbus: str) -> str:
    return (
        f'2222333344445555,2026-01-06T10:59:59.999Z,0106-090000-job00002,job-1-run-2,i3.xlarge,4711,"{{}}",'
        f'PREMIUM_JOBS_COMPUTE,{dbus},1.0,,"{{}}"'
    )


BAD_FILES = {
    "malformed row": (
        f"{HEADER}\n{row('2.0')}\n2222333344445555,2026-01-06T11:59:59.999Z,x\n",
        ["line 3", "expected 12 fields, found 3"],
    ),
    "wrong header": (f"{HEADER.replace('dbus', 'dbu')}\n{row('2.0')}\n", ["line 1", "header lacks column(s) dbus"]),
    "non-numeric dbus": (f"{HEADER}\n{row('five')}\n", ["line 2", "column dbus", "not a number: 'five'"]),
}
CFG = WorldConfig(seed=5, scale="tiny", start=dt.date(2026, 1, 30), days=3)


def test_csv_rows_by_hand(tmp_path):
    (tmp_path / "bill.csv").write_text(GOOD_DAY)
    frame = CsvBillingSource(path=str(tmp_path / "*.csv")).usage([dt.date(2026, 1, 5)])
    assert frame["usage_start_time"].to_list() == [dt.datetime(2026, 1, 5, h) for h in (9, 21, 23)]
    assert frame["usage_quantity"].to_list() == [5.0, 21.6, 12.0]
    job, shared, warehouse = frame.iter_rows(named=True)
    assert (job["job_id"], job["job_run_id"], job["custom_tags"]) == (998877, 455600001, '{"team":"ml"}')
    assert shared["is_photon"] is True and shared["billing_origin_product"] == "ALL_PURPOSE"
    assert (warehouse["cluster_id"], warehouse["warehouse_id"]) == (None, "8e00f0c8b392983e")
    assert CsvBillingSource(path=str(tmp_path / "*.csv")).usage([dt.date(2026, 1, 6)]).height == 0


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_csv_fails_naming_the_place(tmp_path, case):
    text, needles = BAD_FILES[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError) as failure:
        CsvBillingSource(path=str(path)).usage([dt.date(2026, 1, 6)])
    assert str(path) in str(failure.value)
    for needle in needles:
        assert needle in str(failure.value)


def _failure(result: dg.ExecuteInProcessResult) -> str:
    error, parts = result.get_step_failure_events()[0].event_specific_data.error, []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_for_another_day_leaves_stored_days_intact(tmp_path, case):
    bills, db = tmp_path / "bills", str(tmp_path / "cost.duckdb")
    bills.mkdir()
    (bills / "2026-01-05.csv").write_text(GOOD_DAY)
    resources = {"billing": CsvBillingSource(path=str(bills / "*.csv")), **storage_resources(db)}
    assert dg.materialize([raw.billing_usage], partition_key="2026-01-05", resources=resources).success

    text, needles = BAD_FILES[case]
    (bills / "2026-01-06.csv").write_text(text)
    result = dg.materialize([raw.billing_usage], partition_key="2026-01-06", resources=resources, raise_on_error=False)
    assert not result.success
    message = _failure(result)
    assert str(bills / "2026-01-06.csv") in message and all(n in message for n in needles)

    stored = read_table(db, "raw.billing_usage")
    assert stored["usage_date"].unique().to_list() == [dt.date(2026, 1, 5)]
    assert stored.height == 3 and stored["usage_quantity"].sum() == pytest.approx(5.0 + 21.6 + 12.0)


def test_account_api_download_spans_the_months_of_the_days():
    with MockServer(MockOptions(world=CFG)) as server:
        conn = DatabricksConnection(host=server.url, token="dapi-mock-token", max_requests_per_second=0)
        days = [dt.date(2026, 1, 31), dt.date(2026, 2, 1)]
        frame = AccountApiBillingSource(connection=conn, account_id=CFG.account_id).usage(days)
        assert server.mock.calls == {f"GET /api/2.0/accounts/{CFG.account_id}/usage/download": 1}
    assert sorted(frame["usage_date"].unique().to_list()) == days  # January and February in one call
    assert frame["record_id"].n_unique() == frame.height


def test_account_api_needs_the_right_account():
    with MockServer(MockOptions(world=CFG)) as server:
        conn = DatabricksConnection(host=server.url, token="dapi-mock-token", max_requests_per_second=0)
        with pytest.raises(Exception, match="HTTP 404 RESOURCE_DOES_NOT_EXIST"):
            AccountApiBillingSource(connection=conn, account_id="not-mine").usage([dt.date(2026, 1, 31)])


# --- the SQL statement client ------------------------------------------------------------------------


@pytest.fixture
def sql_server():
    with MockServer(MockOptions(world=CFG, sql_chunk_rows=3, statement_delay_s=0.3)) as server:
        yield server


def statements(server: MockServer, **kwargs) -> StatementClient:
    conn = DatabricksConnection(host=server.url, token="dapi-mock-token", max_requests_per_second=0)
    return StatementClient(conn.client(), "wh", wait_timeout_s=0, poll_interval_s=0.05, **kwargs)


def test_statement_client_polls_pending_and_fetches_chunks(sql_server):
    rows = statements(sql_server).query("SELECT range AS i, :tag AS tag FROM range(7)", [Param("tag", "x")])
    assert rows == [{"i": str(i), "tag": "x"} for i in range(7)]
    assert sql_server.mock.calls["POST /api/2.0/sql/statements"] == 1
    polls = [k for k in sql_server.mock.calls if re.fullmatch(r"GET /api/2\.0/sql/statements/[^/]+", k)]
    assert len(polls) == 1 and sql_server.mock.calls[polls[0]] >= 1  # PENDING at first, then polled
    assert sum(v for k, v in sql_server.mock.calls.items() if "/result/chunks/" in k) == 2  # chunks 1 and 2


def test_statement_client_raises_failed_statements(sql_server):
    with pytest.raises(SqlStatementError, match=r"ended FAILED \(SQLSTATE 42P01\).*usagex"):
        statements(sql_server).query("SELECT * FROM system.billing.usagex")


def test_statement_client_cancels_after_its_timeout():
    with MockServer(MockOptions(world=CFG, statement_delay_s=30)) as server:
        with pytest.raises(SqlStatementError, match="cancelled"):
            statements(server, timeout_s=0.1).query("SELECT 1 AS x")
        assert [s.state for s in server.mock.sql.statements.values()] == ["CANCELED"]


def test_connection_never_shows_secrets():
    conn = DatabricksConnection(host="https://adb-1.2.azuredatabricks.net", token="dapi-abc", client_secret="s3cr3t")
    assert "dapi-abc" not in repr(conn) and "s3cr3t" not in repr(conn) and "<redacted>" in repr(conn)
    with pytest.raises(ValueError, match="DATABRICKS_TOKEN, or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET"):
        DatabricksConnection(host="https://adb-1.2.azuredatabricks.net").client()


def test_csv_saved_by_excel_with_a_byte_order_mark_reads_like_without(tmp_path):
    (tmp_path / "plain.csv").write_text(GOOD_DAY, encoding="utf-8")
    (tmp_path / "excel.csv").write_text(GOOD_DAY, encoding="utf-8-sig")  # Excel's "CSV UTF-8"
    assert (tmp_path / "excel.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    day = [dt.date(2026, 1, 5)]
    excel = CsvBillingSource(path=str(tmp_path / "excel.csv")).usage(day)
    assert excel["workspace_id"].to_list() == ["2222333344445555"] * 3
    assert excel.equals(CsvBillingSource(path=str(tmp_path / "plain.csv")).usage(day))


# --- call statistics for api/... metadata ----------------------------------------------------------------

FLAKY = Faults(error_rate=0.5, seed=3)  # with this seed the first requests include 503s (asserted below)


def _flaky_connection(server: MockServer) -> DatabricksConnection:
    return DatabricksConnection(
        host=server.url, token="dapi-mock-token", max_requests_per_second=0, backoff_s=0.01, jitter_s=0, max_attempts=10
    )


def test_system_tables_source_fills_calls_and_retries_of_injected_503s():
    days = [dt.date(2026, 1, 30), dt.date(2026, 1, 31)]
    with MockServer(MockOptions(world=CFG, faults=FLAKY, sql_chunk_rows=20)) as server:
        stats: dict = {}
        frame = SystemTablesBillingSource(connection=_flaky_connection(server), warehouse_id="wh").usage(
            days, stats=stats
        )
        served, failed = dict(server.mock.calls), server.mock.faults.injected["503"]
    assert failed >= 1 and frame.height > 20  # retried, and the result came in more than one chunk
    assert stats["retries"] == stats["http_503"] == failed
    assert stats["calls"] == sum(served.values())  # every request the server saw, the 503s included
    assert stats["calls/api/2.0/sql/statements"] == served["POST /api/2.0/sql/statements"]
    chunks = sum(n for key, n in served.items() if "/result/chunks/" in key)
    assert stats["calls/api/2.0/sql/statements/{id}/result/chunks/{n}"] == chunks >= 1


def test_account_api_source_fills_calls_and_retries_and_csv_leaves_stats_alone(tmp_path):
    with MockServer(MockOptions(world=CFG, faults=FLAKY)) as server:
        stats: dict = {"kept": 1}
        AccountApiBillingSource(connection=_flaky_connection(server), account_id=CFG.account_id).usage(
            [dt.date(2026, 1, 31)], stats=stats
        )
        failed = server.mock.faults.injected["503"]
    assert failed >= 1 and stats["retries"] == failed and stats["kept"] == 1
    assert stats["calls/api/2.0/accounts/{account_id}/usage/download"] == failed + 1 == stats["calls"]
    (tmp_path / "bill.csv").write_text(GOOD_DAY)
    untouched: dict = {}
    CsvBillingSource(path=str(tmp_path / "bill.csv")).usage([dt.date(2026, 1, 5)], stats=untouched)
    assert untouched == {}


def test_stats_are_filled_when_the_bill_cannot_be_fetched():
    with MockServer(MockOptions(world=CFG, faults=Faults(error_rate=1.0))) as server:
        conn = DatabricksConnection(
            host=server.url,
            token="dapi-mock-token",
            max_requests_per_second=0,
            backoff_s=0.01,
            jitter_s=0,
            max_attempts=3,
        )
        stats: dict = {}
        with pytest.raises(Exception, match="HTTP 503"):
            SystemTablesBillingSource(connection=conn, warehouse_id="wh").usage([dt.date(2026, 1, 31)], stats=stats)
    assert (stats["calls"], stats["retries"], stats["http_503"]) == (3, 2, 3)
