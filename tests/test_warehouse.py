"""The DuckDB IO manager, through real Dagster materializations into a temporary DuckDB file.

Every expected row below is written by hand from the tiny frames the test assets return. The tests run on
duckdb 2.x (the venv) and on duckdb 1.x: ``make test-duckdb1`` installs duckdb 1.x into ``.venv/duckdb1``
and runs this module with that folder first on ``PYTHONPATH`` (``make test`` does it after the main run).
"""

import datetime as dt
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from dagster._core.storage.db_io_manager import DbIOManager
from dagster_duckdb.io_manager import DuckDbClient

from cost_assets.read import (
    ColumnMissingError,
    TableMissingError,
    WarehouseError,
    WarehouseLockedError,
    WarehouseMissingError,
    fetch,
)
from cost_assets.resources.warehouse import (
    ADDED_COLUMNS,
    REPLACE_BY,
    CostDuckDbClient,
    CostDuckDBIOManager,
    Ledger,
    read_table,
)

DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01")
# How every daily table of the project is declared (the IO manager's partition column is usage_date).
DAILY_TABLE = {
    "partitions_def": DAILY,
    "metadata": {"partition_expr": "usage_date"},
    "backfill_policy": dg.BackfillPolicy.single_run(),
}
D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
SCHEMA = {"usage_date": pl.Date, "workspace_id": pl.String, "sku": pl.String, "cost_usd": pl.Float64}
COLUMNS = list(SCHEMA)

# What `usage_rows` returns per day, written out by hand: (usage_date, workspace_id, sku, cost_usd).
DAY1 = [(D1, "ws-a", "DBU", 10.0), (D1, "ws-b", "VM", 10.5)]
DAY2 = [(D2, "ws-a", "DBU", 20.0), (D2, "ws-b", "VM", 20.5)]
DAY3 = [(D3, "ws-a", "DBU", 30.0), (D3, "ws-b", "VM", 30.5)]

FrameFn = Callable[[dt.date, dt.date], pl.DataFrame]


def usage_rows(start: dt.date, end: dt.date) -> pl.DataFrame:
    """Two rows per day in [start, end): ws-a pays 10 × day-of-month on DBU, ws-b 0.5 more on VM."""
    rows = []
    day = start
    while day < end:
        rows += [(day, "ws-a", "DBU", 10.0 * day.day), (day, "ws-b", "VM", 10.0 * day.day + 0.5)]
        day += dt.timedelta(days=1)
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def daily_usage(frame_fn: FrameFn = usage_rows, calls: list | None = None) -> dg.AssetsDefinition:
    """raw/usage: a daily asset returning ``frame_fn(window start, window end)``."""

    @dg.asset(name="usage", key_prefix=["raw"], **DAILY_TABLE)
    def usage(context: dg.AssetExecutionContext) -> pl.DataFrame:
        window = context.partition_time_window
        if calls is not None:
            calls.append((window.start.date(), window.end.date()))
        return frame_fn(window.start.date(), window.end.date())

    return usage


def io_manager(db: Path) -> dict[str, dg.ConfigurableIOManagerFactory]:
    return {"io_manager": CostDuckDBIOManager(database=str(db))}


def rows(db: Path, table: str = "raw.usage", where: str = "", params: list | None = None) -> list[tuple]:
    frame = read_table(str(db), table, where, params)
    return sorted(frame.rows())


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """The step failure's error chain (message of every cause), for matching the user-facing error."""
    errors = [event.step_failure_data.error for event in result.all_events if event.is_step_failure]
    assert errors, "expected a failed step"
    text = []
    for error in errors:
        while error is not None:
            text.append(error.message)
            error = error.cause
    return "\n".join(text)


def test_duckdb_major_is_logged() -> None:
    # Not a skip: records which duckdb the suite ran against (2.x from the venv, 1.x via PYTHONPATH).
    major = int(duckdb.__version__.split(".")[0])
    print(f"duckdb {duckdb.__version__} (major {major}), polars {pl.__version__}")
    assert major in (1, 2)


def test_key_prefix_is_the_duckdb_schema(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    result = dg.materialize([daily_usage()], resources=io_manager(db), partition_key="2026-01-02")
    assert result.success

    with duckdb.connect(str(db), read_only=True) as con:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables ORDER BY ALL").fetchall()
        columns = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'raw' AND table_name = 'usage' ORDER BY ordinal_position"
        ).fetchall()
    assert tables == [("raw", "usage")]
    assert columns == [
        ("usage_date", "DATE"),
        ("workspace_id", "VARCHAR"),
        ("sku", "VARCHAR"),
        ("cost_usd", "DOUBLE"),
    ]
    assert rows(db) == DAY2

    [mat] = result.asset_materializations_for_node("raw__usage")
    assert mat.metadata["dagster/row_count"].value == 2
    assert [c.name for c in mat.metadata["dagster/column_schema"].value.columns] == COLUMNS


def test_same_day_twice_leaves_the_same_rows_and_other_days_alone(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    for key in ("2026-01-01", "2026-01-02", "2026-01-01"):
        assert dg.materialize([daily_usage()], resources=res, partition_key=key).success
    assert rows(db) == DAY1 + DAY2

    # Day 1 again with other numbers: its rows are replaced, day 2 is untouched.
    def cheaper(start: dt.date, end: dt.date) -> pl.DataFrame:
        return pl.DataFrame([(D1, "ws-a", "DBU", 1.0)], schema=SCHEMA, orient="row")

    assert dg.materialize([daily_usage(cheaper)], resources=res, partition_key="2026-01-01").success
    assert rows(db) == [(D1, "ws-a", "DBU", 1.0), *DAY2]


def test_columns_in_another_order_are_inserted_by_name(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    assert dg.materialize([daily_usage()], resources=res, partition_key="2026-01-01").success

    # workspace_id and sku are both strings: a positional insert would swap them without any error.
    def reordered(start: dt.date, end: dt.date) -> pl.DataFrame:
        return usage_rows(start, end).select("cost_usd", "sku", "workspace_id", "usage_date")

    assert dg.materialize([daily_usage(reordered)], resources=res, partition_key="2026-01-02").success
    assert rows(db) == DAY1 + DAY2
    assert read_table(str(db), "raw.usage").columns == COLUMNS  # the table keeps its own order


def test_empty_frame_creates_the_table_and_downstream_loads_it(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    seen: dict[str, pl.DataFrame] = {}

    def nothing(start: dt.date, end: dt.date) -> pl.DataFrame:
        return pl.DataFrame(schema=SCHEMA)

    @dg.asset(key_prefix=["mart"], **DAILY_TABLE)
    def daily_cost(usage: pl.DataFrame) -> pl.DataFrame:
        seen["usage"] = usage
        return usage.group_by("usage_date").agg(pl.col("cost_usd").sum())

    upstream = daily_usage(nothing)
    result = dg.materialize([upstream, daily_cost], resources=res, partition_key="2026-01-01")
    assert result.success

    assert seen["usage"].height == 0
    assert seen["usage"].schema == pl.Schema(SCHEMA)
    assert rows(db) == []
    assert read_table(str(db), "raw.usage").schema == pl.Schema(SCHEMA)
    assert read_table(str(db), "mart.daily_cost").schema == pl.Schema({"usage_date": pl.Date, "cost_usd": pl.Float64})

    # A day that had rows and becomes empty is emptied (not skipped), other days stay.
    assert dg.materialize([daily_usage()], resources=res, partition_key="2026-01-02").success
    assert dg.materialize([daily_usage()], resources=res, partition_key="2026-01-03").success
    assert dg.materialize([upstream], resources=res, partition_key="2026-01-02").success
    assert rows(db) == DAY3


def test_failed_insert_after_the_delete_keeps_the_old_rows(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    for key in ("2026-01-01", "2026-01-02"):
        assert dg.materialize([daily_usage()], resources=res, partition_key=key).success

    # cost_usd as text: fits the schema checks, and fails only in the INSERT, after the window's DELETE.
    def bad_cost(start: dt.date, end: dt.date) -> pl.DataFrame:
        return usage_rows(start, end).with_columns(cost_usd=pl.lit("not-a-number"))

    result = dg.materialize([daily_usage(bad_cost)], resources=res, partition_key="2026-01-01", raise_on_error=False)
    assert not result.success
    assert "not-a-number" in failure_text(result)
    assert rows(db) == DAY1 + DAY2


def test_the_atomicity_test_catches_an_autocommitted_delete(tmp_path: Path) -> None:
    """Control: the same failure with dagster-duckdb's own autocommitted ``delete_table_slice`` loses
    day 1, which shows that the failure above happens after the delete."""

    class StockDeleteClient(CostDuckDbClient):  # keeps the close-on-error connect, so the file is freed
        delete_table_slice = staticmethod(DuckDbClient.delete_table_slice)

    class StockDeleteIOManager(CostDuckDBIOManager):
        def create_io_manager(self, context: dg.InitResourceContext) -> DbIOManager:
            return DbIOManager(
                db_client=StockDeleteClient(),
                database=self.database,
                type_handlers=self.type_handlers(),
                default_load_type=pl.DataFrame,
            )

    db = tmp_path / "t.duckdb"
    res = {"io_manager": StockDeleteIOManager(database=str(db))}
    for key in ("2026-01-01", "2026-01-02"):
        assert dg.materialize([daily_usage()], resources=res, partition_key=key).success

    def bad_cost(start: dt.date, end: dt.date) -> pl.DataFrame:
        return usage_rows(start, end).with_columns(cost_usd=pl.lit("not-a-number"))

    result = dg.materialize([daily_usage(bad_cost)], resources=res, partition_key="2026-01-01", raise_on_error=False)
    assert not result.success
    assert rows(db) == DAY2  # day 1 is gone


def test_rows_outside_the_partition_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    for key in ("2026-01-01", "2026-01-02"):
        assert dg.materialize([daily_usage()], resources=res, partition_key=key).success

    # Day 1's run also returns a day-2 row: it would survive day 1's next delete and duplicate day 2.
    def leaky(start: dt.date, end: dt.date) -> pl.DataFrame:
        return pl.DataFrame([(D1, "ws-a", "DBU", 1.0), (D2, "ws-a", "DBU", 2.0)], schema=SCHEMA, orient="row")

    result = dg.materialize([daily_usage(leaky)], resources=res, partition_key="2026-01-01", raise_on_error=False)
    assert not result.success
    assert "1 of 2 rows written to raw.usage lie outside the partition" in failure_text(result)
    assert rows(db) == DAY1 + DAY2


def test_new_column_is_schema_drift(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    assert dg.materialize([daily_usage()], resources=res, partition_key="2026-01-01").success

    def with_region(start: dt.date, end: dt.date) -> pl.DataFrame:
        return usage_rows(start, end).with_columns(region=pl.lit("eu-west-1"))

    for key in ("2026-01-01", "2026-01-02"):
        result = dg.materialize([daily_usage(with_region)], resources=res, partition_key=key, raise_on_error=False)
        assert not result.success
        text = failure_text(result)
        assert "Schema drift in raw.usage" in text
        assert "['region']" in text
    assert rows(db) == DAY1
    assert read_table(str(db), "raw.usage").columns == COLUMNS


# A single-run backfill of 2026-01-01..2026-01-03 (materialize() has no range argument: the range tags).
RANGE_1_TO_3 = {
    "dagster/asset_partition_range_start": "2026-01-01",
    "dagster/asset_partition_range_end": "2026-01-03",
}


def test_single_run_backfill_equals_three_single_days(tmp_path: Path) -> None:
    one_by_one = tmp_path / "days.duckdb"
    for key in ("2026-01-01", "2026-01-02", "2026-01-03"):
        assert dg.materialize([daily_usage()], resources=io_manager(one_by_one), partition_key=key).success

    backfilled = tmp_path / "range.duckdb"
    calls: list[tuple[dt.date, dt.date]] = []
    asset = daily_usage(calls=calls)
    defs = dg.Definitions(
        assets=[asset], jobs=[dg.define_asset_job("bf", selection=[asset])], resources=io_manager(backfilled)
    )
    result = defs.resolve_job_def("bf").execute_in_process(tags=RANGE_1_TO_3)
    assert result.success
    assert calls == [(D1, dt.date(2026, 1, 4))]  # one step for the whole range
    assert rows(backfilled) == rows(one_by_one) == DAY1 + DAY2 + DAY3

    # Re-running the range (one delete + one insert over three days) is idempotent too.
    assert defs.resolve_job_def("bf").execute_in_process(tags=RANGE_1_TO_3).success
    assert rows(backfilled) == DAY1 + DAY2 + DAY3


def test_downstream_daily_gets_its_day_and_unpartitioned_gets_all(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    upstream = daily_usage()
    for key in ("2026-01-01", "2026-01-02", "2026-01-03"):
        assert dg.materialize([upstream], resources=res, partition_key=key).success
    seen: dict[str, pl.DataFrame] = {}

    @dg.asset(key_prefix=["mart"], **DAILY_TABLE)
    def daily_cost(usage: pl.DataFrame) -> pl.DataFrame:
        seen["daily"] = usage
        return usage.group_by("usage_date").agg(cost_usd=pl.col("cost_usd").sum())

    @dg.asset(key_prefix=["mart"])
    def total_cost(usage: pl.DataFrame) -> pl.DataFrame:
        seen["all"] = usage
        return usage.group_by("workspace_id").agg(cost_usd=pl.col("cost_usd").sum()).sort("workspace_id")

    @dg.asset(
        key_prefix=["mart"],
        **DAILY_TABLE,
        ins={"usage": dg.AssetIn(key=["raw", "usage"], metadata={"columns": ["usage_date", "cost_usd"]})},
    )
    def daily_cost_narrow(usage: pl.DataFrame) -> pl.DataFrame:
        seen["narrow"] = usage
        return usage

    result = dg.materialize(
        [upstream, daily_cost, daily_cost_narrow],
        resources=res,
        partition_key="2026-01-02",
        selection=[daily_cost, daily_cost_narrow],
    )
    assert result.success
    assert sorted(seen["daily"].rows()) == DAY2
    assert rows(db, "mart.daily_cost") == [(D2, 40.5)]
    assert sorted(seen["narrow"].rows()) == [(D2, 20.0), (D2, 20.5)]
    assert seen["narrow"].columns == ["usage_date", "cost_usd"]

    result = dg.materialize([upstream, total_cost], resources=res, selection=[total_cost])
    assert result.success
    assert sorted(seen["all"].rows()) == DAY1 + DAY2 + DAY3
    assert rows(db, "mart.total_cost") == [("ws-a", 60.0), ("ws-b", 61.5)]


def test_unpartitioned_table_is_replaced_whole(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    frames = [
        pl.DataFrame({"sku": ["DBU", "VM"], "price": [0.15, 0.4]}),
        pl.DataFrame({"sku": ["GPU"], "price": [2.0], "unit": ["hour"]}),
    ]

    @dg.asset(key_prefix=["ref"])
    def prices() -> pl.DataFrame:
        return frames.pop(0)

    for _ in range(2):
        assert dg.materialize([prices], resources=io_manager(db)).success
    assert rows(db, "ref.prices") == [("GPU", 2.0, "hour")]


def test_read_table_binds_parameters_and_opens_read_only(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    for key in ("2026-01-01", "2026-01-02"):
        assert dg.materialize([daily_usage()], resources=res, partition_key=key).success

    assert rows(db, where="usage_date = ? AND cost_usd > ?", params=[D2, 20.0]) == [(D2, "ws-b", "VM", 20.5)]
    with pytest.raises(duckdb.Error, match="read-only"):  # a write slipped into `where` is refused
        read_table(str(db), "raw.usage", "true; DELETE FROM raw.usage")
    assert rows(db) == DAY1 + DAY2
    with pytest.raises(ValueError, match="Not a table name"):
        read_table(str(db), "raw.usage; DROP TABLE raw.usage")
    with pytest.raises(FileNotFoundError):
        read_table(str(tmp_path / "missing.duckdb"), "raw.usage")


def test_input_mapped_to_no_partition_is_empty_with_the_columns(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    upstream = daily_usage()
    assert dg.materialize([upstream], resources=res, partition_key="2026-01-01").success
    seen: dict[str, pl.DataFrame] = {}

    @dg.asset(
        key_prefix=["mart"],
        **DAILY_TABLE,
        ins={
            "usage": dg.AssetIn(
                key=["raw", "usage"],
                partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1),
            )
        },
    )
    def previous_day(usage: pl.DataFrame) -> pl.DataFrame:
        seen["usage"] = usage
        return usage.with_columns(usage_date=pl.col("usage_date") + pl.duration(days=1))

    # 2026-01-01 has no previous day: an empty frame with the table's columns (the library's WHERE
    # clause would be invalid); 2026-01-02 gets day 1.
    assert dg.materialize(
        [upstream, previous_day], resources=res, partition_key="2026-01-01", selection=[previous_day]
    ).success
    assert seen["usage"].height == 0
    assert seen["usage"].schema == pl.Schema(SCHEMA)
    assert dg.materialize(
        [upstream, previous_day], resources=res, partition_key="2026-01-02", selection=[previous_day]
    ).success
    assert sorted(seen["usage"].rows()) == DAY1
    assert rows(db, "mart.previous_day") == [(D2, "ws-a", "DBU", 10.0), (D2, "ws-b", "VM", 10.5)]


def test_all_null_untyped_column_takes_the_table_type_or_fails_clearly(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    assert dg.materialize([daily_usage()], resources=res, partition_key="2026-01-01").success

    # sku=None everywhere has polars dtype Null: stored as NULL in the existing VARCHAR column.
    def no_sku(start: dt.date, end: dt.date) -> pl.DataFrame:
        return pl.DataFrame({"usage_date": [start], "workspace_id": ["ws-a"], "sku": [None], "cost_usd": [1.0]})

    assert dg.materialize([daily_usage(no_sku)], resources=res, partition_key="2026-01-02").success
    assert rows(db, where="usage_date = ?", params=[D2]) == [(D2, "ws-a", None, 1.0)]

    # A column the table does not have cannot be typed from an all-None frame column.
    def untyped_new(start: dt.date, end: dt.date) -> pl.DataFrame:
        return usage_rows(start, end).with_columns(note=pl.lit(None))

    result = dg.materialize([daily_usage(untyped_new)], resources=res, partition_key="2026-01-03", raise_on_error=False)
    assert not result.success
    assert "column(s) ['note'] have polars dtype Null" in failure_text(result)


def test_reads_say_when_the_database_or_a_table_is_missing(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.duckdb")
    with pytest.raises(WarehouseMissingError, match=r"missing\.duckdb' does not exist: run `make run` first"):
        read_table(missing, "raw.usage")

    db = tmp_path / "t.duckdb"
    assert dg.materialize([daily_usage()], resources=io_manager(db), partition_key="2026-01-01").success
    for table in ("raw.nothing", "nowhere.usage"):
        with pytest.raises(TableMissingError, match=r"lacks a table .* run `make run` first") as caught:
            read_table(str(db), table)
        assert table.split(".")[1] in str(caught.value)
        assert isinstance(caught.value, duckdb.CatalogException)  # as before, for callers that caught that

    # The Ledger reads through the same reader: nothing stored is None, stored days are their rows.
    assert Ledger(database=missing).stored_days("raw.usage", [D1]) is None
    assert Ledger(database=str(db)).stored_days("raw.nothing", [D1]) is None
    assert sorted(Ledger(database=str(db)).stored_days("raw.usage", [D1, D2]).rows()) == DAY1


def test_a_column_a_reader_expects_but_an_older_ledger_lacks_says_how_to_add_it(tmp_path: Path) -> None:
    # A report written for a newer table (here: a column the stored raw.usage never had) reads an older ledger.
    db = tmp_path / "t.duckdb"
    assert dg.materialize([daily_usage()], resources=io_manager(db), partition_key="2026-01-01").success
    for sql in ("SELECT sum(disk_cost_usd) FROM raw.usage", "SELECT sum(u.disk_cost_usd) FROM raw.usage u"):
        with pytest.raises(
            ColumnMissingError, match=r"no column 'disk_cost_usd' .*`cost-assets run --start DAY"
        ) as caught:
            fetch(str(db), sql)
        assert isinstance(caught.value, duckdb.BinderException)  # as before, for callers that caught that
    # Other binder errors pass through unchanged.
    with pytest.raises(duckdb.BinderException) as caught:
        fetch(str(db), "SELECT sum(usage_date) FROM raw.usage")
    assert not isinstance(caught.value, WarehouseError)


def test_reads_say_when_a_writer_holds_the_file(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    assert dg.materialize([daily_usage()], resources=io_manager(db), partition_key="2026-01-01").success

    # Another process writing: DuckDB's file lock keeps every other process out, readers included.
    hold = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(WarehouseLockedError, match="held by a writer") as caught:
            read_table(str(db), "raw.usage")
        assert isinstance(caught.value, WarehouseError) and isinstance(caught.value, duckdb.IOException)
    finally:
        holder.communicate("", timeout=60)
    assert rows(db) == DAY1  # once the writer is gone, the file reads again

    # A read-write connection of this process: refused in the same words.
    with duckdb.connect(str(db)) as writer:
        writer.execute("SELECT 1")
        with pytest.raises(WarehouseLockedError, match="held by a writer"):
            read_table(str(db), "raw.usage")


def test_a_declared_added_column_is_added_to_a_table_stored_without_it(tmp_path: Path) -> None:
    """A table stored before the asset's contract gained a nullable column: the next write adds the column
    (NULL on the stored rows of other days) instead of failing as schema drift."""
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    assert dg.materialize([daily_usage()], resources=res, partition_key="2026-01-01").success

    @dg.asset(
        name="usage",
        key_prefix=["raw"],
        **{**DAILY_TABLE, "metadata": {**DAILY_TABLE["metadata"], ADDED_COLUMNS: ["owner"]}},
    )
    def usage_with_owner(context: dg.AssetExecutionContext) -> pl.DataFrame:
        window = context.partition_time_window
        return usage_rows(window.start.date(), window.end.date()).with_columns(owner=pl.lit("ana"))

    assert dg.materialize([usage_with_owner], resources=res, partition_key="2026-01-02").success
    assert read_table(str(db), "raw.usage").columns == [*COLUMNS, "owner"]
    # Day 1 was stored without an owner (NULL); day 2 has "ana" on both rows.
    assert rows(db) == [(*r, None) for r in DAY1] + [(*r, "ana") for r in DAY2]


def by_workspace(frame_fn: FrameFn) -> dg.AssetsDefinition:
    """raw/usage declared like the per-workspace raw tables: a write replaces only its frame's workspaces."""

    @dg.asset(
        name="usage",
        key_prefix=["raw"],
        **{**DAILY_TABLE, "metadata": {**DAILY_TABLE["metadata"], REPLACE_BY: ["workspace_id"]}},
    )
    def usage(context: dg.AssetExecutionContext) -> pl.DataFrame:
        window = context.partition_time_window
        return frame_fn(window.start.date(), window.end.date())

    return usage


def test_replace_by_workspace_keeps_the_other_workspaces_rows(tmp_path: Path) -> None:
    """A workspace whose fetch failed is not in the frame: its stored rows of the window stay; the frame's
    workspaces are replaced in the window only (other days untouched)."""
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    for key in ("2026-01-01", "2026-01-02"):
        assert dg.materialize([daily_usage()], resources=res, partition_key=key).success
    assert rows(db) == DAY1 + DAY2

    # Day 1 again, only ws-a answered (1.0 instead of 10.0), plus a new workspace ws-c.
    def ws_a_only(start: dt.date, end: dt.date) -> pl.DataFrame:
        return pl.DataFrame([(D1, "ws-a", "DBU", 1.0), (D1, "ws-c", "DBU", 3.0)], schema=SCHEMA, orient="row")

    result = dg.materialize([by_workspace(ws_a_only)], resources=res, partition_key="2026-01-01")
    assert result.success
    # ws-a replaced (10.0 → 1.0), ws-b kept (10.5), ws-c added; day 2 as it was.
    assert rows(db) == [(D1, "ws-a", "DBU", 1.0), (D1, "ws-b", "VM", 10.5), (D1, "ws-c", "DBU", 3.0), *DAY2]
    [mat] = result.asset_materializations_for_node("raw__usage")
    assert mat.metadata["dagster/row_count"].value == 2  # the frame's rows, not the window's three

    # Same day, same workspaces, other numbers: idempotent per workspace (no duplicates).
    def ws_a_again(start: dt.date, end: dt.date) -> pl.DataFrame:
        return pl.DataFrame([(D1, "ws-a", "DBU", 2.0), (D1, "ws-c", "DBU", 3.0)], schema=SCHEMA, orient="row")

    assert dg.materialize([by_workspace(ws_a_again)], resources=res, partition_key="2026-01-01").success
    assert rows(db) == [(D1, "ws-a", "DBU", 2.0), (D1, "ws-b", "VM", 10.5), (D1, "ws-c", "DBU", 3.0), *DAY2]

    # An empty frame names no workspace: nothing of the window is replaced.
    empty = by_workspace(lambda start, end: pl.DataFrame(schema=SCHEMA))
    assert dg.materialize([empty], resources=res, partition_key="2026-01-01").success
    assert len(rows(db, where="usage_date = ?", params=[D1])) == 3


def test_replace_by_workspace_is_atomic_and_still_refuses_rows_outside_the_window(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    assert dg.materialize([daily_usage()], resources=res, partition_key="2026-01-01").success

    def bad_cost(start: dt.date, end: dt.date) -> pl.DataFrame:  # fails in the INSERT, after the narrowed DELETE
        return pl.DataFrame([(D1, "ws-a", "DBU", 1.0)], schema=SCHEMA, orient="row").with_columns(
            cost_usd=pl.lit("not-a-number")
        )

    result = dg.materialize([by_workspace(bad_cost)], resources=res, partition_key="2026-01-01", raise_on_error=False)
    assert not result.success
    assert rows(db) == DAY1

    def leaky(start: dt.date, end: dt.date) -> pl.DataFrame:  # ws-a's day-2 row in day 1's write
        return pl.DataFrame([(D1, "ws-a", "DBU", 1.0), (D2, "ws-a", "DBU", 2.0)], schema=SCHEMA, orient="row")

    result = dg.materialize([by_workspace(leaky)], resources=res, partition_key="2026-01-01", raise_on_error=False)
    assert not result.success
    assert "1 of 2 rows written to raw.usage lie outside the partition" in failure_text(result)
    assert rows(db) == DAY1

    def no_workspace(start: dt.date, end: dt.date) -> pl.DataFrame:
        return usage_rows(start, end).drop("workspace_id")

    result = dg.materialize(
        [by_workspace(no_workspace)], resources=res, partition_key="2026-01-01", raise_on_error=False
    )
    assert not result.success
    assert "raw.usage: its cost_assets/replace_by column(s) ['workspace_id'] are not in the frame" in failure_text(
        result
    )
    assert rows(db) == DAY1


def test_replace_by_workspace_on_a_frame_larger_than_a_row_group(tmp_path: Path) -> None:
    """130,000 rows (over DuckDB's 122,880-row group) into a table the write creates, then one workspace
    replaced: the window check counts right (duckdb 2.0 misfilters strings in that first transaction)."""
    db = tmp_path / "t.duckdb"
    res = io_manager(db)
    per_workspace = 65_000

    def big(start: dt.date, end: dt.date) -> pl.DataFrame:
        return pl.concat(
            pl.DataFrame(
                {"usage_date": [start] * per_workspace, "workspace_id": ws, "sku": "DBU", "cost_usd": 1.0},
                schema=SCHEMA,
            )
            for ws in ("ws-a", "ws-b")
        )

    assert dg.materialize([by_workspace(big)], resources=res, partition_key="2026-01-01").success
    counts = dict(read_table(str(db), "raw.usage").group_by("workspace_id").len().rows())
    assert counts == {"ws-a": 65_000, "ws-b": 65_000}

    def ws_b_only(start: dt.date, end: dt.date) -> pl.DataFrame:
        return pl.DataFrame([(D1, "ws-b", "VM", 2.0)], schema=SCHEMA, orient="row")

    assert dg.materialize([by_workspace(ws_b_only)], resources=res, partition_key="2026-01-01").success
    counts = dict(read_table(str(db), "raw.usage").group_by("workspace_id").len().rows())
    assert counts == {"ws-a": 65_000, "ws-b": 1}  # ws-b's 65,000 rows replaced by 1, ws-a's kept
