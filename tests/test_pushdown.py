"""The system-tables push-down: EXTERNAL_LINKS + ARROW_STREAM paging through the mock warehouse on
127.0.0.1, links downloaded without the Authorization header, expired links refreshed, the INLINE limit,
the reduced bill equal to the raw-row fetch, and ref/dbu_prices from system.billing.list_prices."""

import datetime as dt
import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

import duckdb
import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cost_assets.ingest.list_prices import SOURCE, dbu_prices_from_list_prices
from cost_assets.ingest.pushdown import priced_totals
from cost_assets.ingest.sql import Param, SqlStatementError, StatementClient, _next_chunk, statement
from cost_assets.mock_server import MockOptions, MockServer
from cost_assets.mock_server.warehouse import _DATABRICKS_FUNCTIONS, _TABLES, SYSTEM_CATALOG, _translate
from cost_assets.prices import load_price_sheet
from cost_assets.resources.billing import SystemTablesBillingSource
from cost_assets.resources.databricks import DatabricksConnection
from cost_assets.resources.prices import BundledPriceCatalog, SystemTablesPriceCatalog
from cost_assets.simulation.world import WorldConfig

CFG = WorldConfig(seed=5, scale="tiny", start=dt.date(2026, 1, 30), days=3)
DAYS = [dt.date(2026, 1, 30), dt.date(2026, 1, 31), dt.date(2026, 2, 1)]
TOKEN = "dapi-mock-token"


def connection(server: MockServer) -> DatabricksConnection:
    return DatabricksConnection(host=server.url, token=TOKEN, max_requests_per_second=0)


def statements(server: MockServer, **kwargs) -> StatementClient:
    return StatementClient(connection(server).client(), "wh", wait_timeout_s=0, poll_interval_s=0.05, **kwargs)


def test_external_links_page_over_chunks_without_the_authorization_header():
    with MockServer(MockOptions(world=CFG, sql_chunk_rows=3)) as server:
        sql = statements(server)
        frame = sql.query_arrow("SELECT range AS i, :tag AS tag FROM range(7)", [Param("tag", "x")])
        downloads = server.mock.sql.links.downloads
    # 7 rows in chunks of 3: chunk 0 = rows 0-2, chunk 1 = rows 3-5, chunk 2 = row 6.
    assert frame["i"].to_list() == [0, 1, 2, 3, 4, 5, 6]
    assert frame.schema == pl.Schema({"i": pl.Int64, "tag": pl.String})  # typed Arrow, not JSON strings
    assert [d["path"].rsplit("/", 1)[1] for d in downloads] == ["0", "1", "2"]
    assert [d["authorization"] for d in downloads] == [False, False, False]
    # chunk 0's link came with the statement, chunks 1 and 2 from result/chunks/{n} (authenticated calls)
    assert sum(v for k, v in server.mock.calls.items() if "/result/chunks/" in k) == 2
    assert sql.link_stats["calls/external_link"] == 3


def test_storage_refuses_a_link_sent_with_an_authorization_header():
    with MockServer(MockOptions(world=CFG)) as server:
        client = connection(server).client()
        response = client.post_json(
            "/api/2.0/sql/statements",
            {
                "warehouse_id": "wh",
                "statement": "SELECT 1 AS one",
                "format": "ARROW_STREAM",
                "disposition": "EXTERNAL_LINKS",
            },
        )
        url = response["result"]["external_links"][0]["external_link"]
        with_token = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        plain = httpx.get(url)
    assert with_token.status_code == 400  # S3's "only one auth mechanism allowed"
    assert plain.status_code == 200 and pl.read_ipc_stream(plain.content)["one"].to_list() == [1]


def test_an_expired_link_is_asked_for_again_once():
    # The client's clock is past the first link's expiration on its first look only: it asks result/chunks/0
    # for a fresh link and downloads that one.
    seen = []

    def now() -> dt.datetime:
        seen.append(1)
        return dt.datetime(2999, 1, 1) if len(seen) == 1 else dt.datetime.now(dt.UTC).replace(tzinfo=None)

    with MockServer(MockOptions(world=CFG)) as server:
        sql = statements(server, now=now)
        frame = sql.query_arrow("SELECT 41 + 1 AS answer")
        refetched = sum(v for k, v in server.mock.calls.items() if k.endswith("/result/chunks/0"))
    assert refetched == 1
    assert frame["answer"].to_list() == [42]
    assert sql.link_stats["links_refreshed"] == 1 and sql.link_stats["calls/external_link"] == 1


def test_links_that_expire_at_once_fail_clearly():
    with (
        MockServer(MockOptions(world=CFG, sql_link_ttl_s=0)) as server,
        pytest.raises(SqlStatementError, match="expired"),
    ):
        statements(server).query_arrow("SELECT 1 AS one")


def test_inline_results_over_the_limit_fail_and_external_links_carry_them():
    # 7 rows of one integer as JSON_ARRAY: [["0"],["1"],...,["6"]] = 2 + 7 × 5 + 6 commas = 43 bytes > 40.
    with MockServer(MockOptions(world=CFG, sql_inline_limit_bytes=40)) as server:
        with pytest.raises(SqlStatementError, match="Inline byte limit exceeded"):
            statements(server).query("SELECT range AS i FROM range(7)")
        assert statements(server).query_arrow("SELECT range AS i FROM range(7)")["i"].sum() == 21  # 0+1+…+6


def test_pushdown_gives_the_same_bill_as_raw_rows():
    with MockServer(MockOptions(world=CFG, sql_chunk_rows=20)) as server:
        stats: dict = {}
        pushed = SystemTablesBillingSource(connection=connection(server), warehouse_id="wh").usage(DAYS, stats)
        raw = SystemTablesBillingSource(connection=connection(server), warehouse_id="wh", pushdown=False).usage(DAYS)
        downloads = server.mock.sql.links.downloads
        pushed_sql = server.mock.sql.executed[0]
    assert pushed.height > 20  # more than one chunk, so the paging is part of this comparison
    assert_frame_equal(pushed, raw)
    assert pushed_sql["format"] == "ARROW_STREAM" and pushed_sql["disposition"] == "EXTERNAL_LINKS"
    assert {p["name"]: p["value"] for p in pushed_sql["parameters"]} == {
        "first_day": "2026-01-30",
        "last_day": "2026-02-01",
    }
    assert len(downloads) == -(-pushed.height // 20) and not any(d["authorization"] for d in downloads)
    assert stats["pushdown/rows"] == pushed.height and stats["pushdown/unpriced_rows"] == 0


def test_priced_totals_by_hand():
    frame = pl.DataFrame({"list_cost_usd": [1.5, None, 2.25]})
    # 1.5 + 2.25 = 3.75 priced; one row without a price is counted, not added as $0
    assert priced_totals(frame) == {"pushdown/rows": 3.0, "pushdown/list_cost_usd": 3.75, "pushdown/unpriced_rows": 1.0}


def test_list_prices_replace_the_sheets_by_hand():
    sheet = load_price_sheet().dbu_prices_frame()
    rows = [
        {
            "sku_name": "PREMIUM_JOBS_COMPUTE",
            "cloud": "AZURE",
            "usage_unit": "DBU",
            "currency_code": "USD",
            "price_start_time": "2025-06-01T00:00:00.000Z",
            "price_end_time": None,
            "list_price": 0.5,
        },
        {
            "sku_name": "BRAND_NEW_SKU",
            "cloud": "AZURE",
            "usage_unit": "DBU",
            "currency_code": "USD",
            "price_start_time": "2025-06-01T00:00:00.000Z",
            "price_end_time": None,
            "list_price": 1.0,
        },
    ]
    frame, unknown = dbu_prices_from_list_prices(sheet, rows)
    jobs = frame.filter(cloud="AZURE", sku_name="PREMIUM_JOBS_COMPUTE")
    # the account's one window replaces the sheet's (0.30 from 2020-01-01); no contract discount in the
    # bundled sheet, so contract = effective = 0.5 × (1 − 0) = 0.5; workload from the sheet
    assert jobs.select("price_start_time", "list_price", "contract_price", "workload", "source").rows() == [
        (dt.datetime(2025, 6, 1), 0.5, 0.5, "jobs", SOURCE)
    ]
    assert unknown == ["BRAND_NEW_SKU"]
    # every other SKU keeps its sheet rows: one fewer row (the jobs SKU had a single sheet row, replaced by one)
    assert frame.height == sheet.height
    assert frame.filter(pl.col("source") == SOURCE).height == 1


def test_price_catalog_takes_list_prices_and_warns_without_them(caplog):
    base = BundledPriceCatalog()
    with MockServer(MockOptions(world=CFG)) as server:
        catalog = SystemTablesPriceCatalog(base=base, connection=connection(server), warehouse_id="wh")
        frame = catalog.dbu_prices()
    # the mock's list_prices are the sheet's list prices of the world's cloud (AZURE): same numbers, new source
    azure = frame.filter(cloud="AZURE")
    assert set(azure["source"]) == {SOURCE}
    assert_frame_equal(
        azure.drop("source"), base.dbu_prices().filter(cloud="AZURE").drop("source"), check_row_order=False
    )
    with MockServer(MockOptions(world=CFG, denied_system_schemas=("system.billing",))) as server:
        catalog = SystemTablesPriceCatalog(base=base, connection=connection(server), warehouse_id="wh")
        with caplog.at_level(logging.WARNING):
            fallback = catalog.dbu_prices()
    assert_frame_equal(fallback, base.dbu_prices())
    assert "system.billing.list_prices unavailable" in caplog.text and "INSUFFICIENT_PERMISSIONS" in caplog.text


def test_benchmark_at_the_smallest_size(tmp_path):
    """bench_pushdown.py on a tiny world: it runs, both fetches agree (it compares them), it writes its report."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_pushdown.py"
    args = ["--scale", "tiny", "--days", "2", "--repeat", "1", "--chunk-rows", "20", "--out-dir", str(tmp_path)]
    subprocess.run([sys.executable, str(script), *args], check=True, timeout=300, capture_output=True)
    result = json.loads((tmp_path / "pushdown.json").read_text())
    raw, pushed = result["modes"].values()
    assert result["rows"] > 20 and pushed["requests"] > 2  # more than one chunk: links were paged
    assert raw["bytes"] > pushed["bytes"] > 0  # the structs as JSON text cost more than the flat Arrow columns
    assert "Push-down benchmark" in (tmp_path / "PUSHDOWN.md").read_text()


def test_the_pushdown_statement_reduces_and_prices_by_hand():
    """The statement on hand-made system tables (the mock warehouse's DuckDB, same translation): records
    that differ only in a column the project never reads are summed, corrections stay rows of their own,
    and each row is priced by the canonical list_prices join."""
    con = duckdb.connect()
    con.execute(f"ATTACH ':memory:' AS {SYSTEM_CATALOG}")
    for table in ("billing.usage", "billing.list_prices"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {SYSTEM_CATALOG}.{table.split('.')[0]}")
        columns = ", ".join(f'"{c}" {t}' for c, t in _TABLES[table].items())
        con.execute(f"CREATE TABLE {SYSTEM_CATALOG}.{table} ({columns})")
    for signature, body in _DATABRICKS_FUNCTIONS.items():
        con.execute(f"CREATE MACRO {signature} AS {body}")

    def usage(record_id, quantity, sku="PREMIUM_JOBS_COMPUTE", record_type="ORIGINAL", notebook=None):
        meta = {"cluster_id": "c1", "notebook_id": notebook}
        con.execute(
            f"INSERT INTO {SYSTEM_CATALOG}.billing.usage (record_id, workspace_id, sku_name, cloud, usage_start_time, "
            "usage_end_time, usage_date, custom_tags, usage_unit, usage_quantity, usage_metadata, record_type, "
            "ingestion_date) VALUES (?, 'w', ?, 'AZURE', TIMESTAMP '2026-01-05 09:00', TIMESTAMP '2026-01-05 10:00', "
            "DATE '2026-01-05', MAP {'team': 'ml'}, 'DBU', ?, ?, ?, DATE '2026-01-06')",
            [record_id, sku, quantity, meta, record_type],
        )

    usage("b", 2.0, notebook="n2")  # b and a differ only in usage_metadata.notebook_id: one row of 3 + 2 = 5 DBU
    usage("a", 3.0, notebook="n1")
    usage("r", -3.0, record_type="RETRACTION")  # a correction stays its own row
    usage("x", 1.0, sku="UNLISTED_SKU")  # no price row: priced null, never $0
    con.execute(
        f"INSERT INTO {SYSTEM_CATALOG}.billing.list_prices (sku_name, cloud, currency_code, usage_unit, "
        "price_start_time, price_end_time, pricing) VALUES "
        "('PREMIUM_JOBS_COMPUTE', 'AZURE', 'USD', 'DBU', TIMESTAMP '2025-01-01', TIMESTAMP '2026-01-05 10:00', "
        "{'default': 0.30, 'promotional': NULL, 'effective_list': {'default': 0.30}}), "
        # starts at the hour's end: not in force for usage ending 10:00 (price_start_time < usage_end_time)
        "('PREMIUM_JOBS_COMPUTE', 'AZURE', 'USD', 'DBU', TIMESTAMP '2026-01-05 10:00', NULL, "
        "{'default': 0.50, 'promotional': NULL, 'effective_list': {'default': 0.40}})"
    )
    sql, binds = _translate(
        statement("billing_usage_pushdown"), {"first_day": ("2026-01-05", "DATE"), "last_day": ("2026-01-05", "DATE")}
    )
    cursor = con.execute(sql + " ORDER BY record_type, usage_quantity", binds)
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    got = [(r["record_id"], r["record_type"], float(r["usage_quantity"]), r["list_cost_usd"]) for r in rows]
    assert got == [
        ("x", "ORIGINAL", 1.0, None),
        # 'agg-' + SHA-256 of the sorted ids "a|b"; 5 DBU × $0.30 (the window ending at 10:00 holds usage ending 10:00)
        ("agg-" + hashlib.sha256(b"a|b").hexdigest(), "ORIGINAL", 5.0, pytest.approx(1.5)),
        ("r", "RETRACTION", -3.0, pytest.approx(-0.9)),  # −3 × 0.30
    ]
    assert rows[1]["cluster_id"] == "c1" and json.loads(rows[1]["custom_tags"]) == {"team": "ml"}


def test_an_empty_result_has_no_link_and_gives_an_empty_bill():
    with MockServer(MockOptions(world=CFG, empty_bill_days=("2026-01-31",))) as server:
        source = SystemTablesBillingSource(connection=connection(server), warehouse_id="wh")
        frame = source.usage([dt.date(2026, 1, 31)])
        assert frame.height == 0 and "record_id" in frame.columns  # the contract's columns, no rows
        assert server.mock.sql.links.downloads == []  # an empty EXTERNAL_LINKS result has no chunk to fetch


def test_the_next_chunk_comes_from_the_internal_link_else_the_index():
    with_link = {
        "next_chunk_index": 2,
        "next_chunk_internal_link": "/api/2.0/sql/statements/s/result/chunks/2?row_offset=6",
    }
    assert _next_chunk("s", with_link) == "/api/2.0/sql/statements/s/result/chunks/2?row_offset=6"
    assert _next_chunk("s", {"next_chunk_index": 2}) == "/api/2.0/sql/statements/s/result/chunks/2"
    assert _next_chunk("s", {"chunk_index": 2}) is None  # the last chunk has neither
