"""The Delta Lake ledger (``COST_ASSETS_STORAGE=delta:<uri>``): the IO manager's guarantees through real Dagster
materializations into a temporary folder, concurrent writers, the readers, the whole daily pipeline against the
DuckDB ledger, and the same on S3 (moto's server on 127.0.0.1).

Every expected row is written by hand from the tiny frames the test assets return (the same frames as
tests/test_warehouse.py, so both backends are held to the same numbers).
"""

import datetime as dt
import multiprocessing
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cost_assets import delta, read, report
from cost_assets.config import ConfigurationError, Settings
from cost_assets.definitions import build_defs
from cost_assets.export import metrics
from cost_assets.query import query_attribution
from cost_assets.read import TableMissingError, WarehouseError, WarehouseMissingError
from cost_assets.reports import ledger
from cost_assets.resources.delta import CostDeltaIOManager
from cost_assets.resources.storage import DUCKDB_WRITER_POOL
from cost_assets.resources.warehouse import (
    ADDED_COLUMNS,
    REPLACE_BY,
    Ledger,
    PartitionWindowError,
    SchemaDriftError,
    read_table,
)
from tests.conftest import run_daily, sim_environ

DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01")
D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
SCHEMA = {"usage_date": pl.Date, "workspace_id": pl.String, "sku": pl.String, "cost_usd": pl.Float64}
# usage_rows per day, by hand: ws-a pays 10 × day-of-month on DBU, ws-b 0.5 more on VM.
DAY1 = [(D1, "ws-a", "DBU", 10.0), (D1, "ws-b", "VM", 10.5)]
DAY2 = [(D2, "ws-a", "DBU", 20.0), (D2, "ws-b", "VM", 20.5)]

FrameFn = Callable[[dt.date, dt.date], pl.DataFrame]


def usage_rows(start: dt.date, end: dt.date) -> pl.DataFrame:
    rows, day = [], start
    while day < end:
        rows += [(day, "ws-a", "DBU", 10.0 * day.day), (day, "ws-b", "VM", 10.0 * day.day + 0.5)]
        day += dt.timedelta(days=1)
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def daily_usage(frame_fn: FrameFn = usage_rows, **metadata: object) -> dg.AssetsDefinition:
    """raw/usage: a daily asset returning ``frame_fn(window start, window end)``."""

    @dg.asset(
        name="usage",
        key_prefix=["raw"],
        partitions_def=DAILY,
        metadata={"partition_expr": "usage_date", **metadata},
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def usage(context: dg.AssetExecutionContext) -> pl.DataFrame:
        window = context.partition_time_window
        return frame_fn(window.start.date(), window.end.date())

    return usage


def location(root: Path | str) -> str:
    return f"delta:{root}"


def io_manager(root: Path | str) -> dict[str, dg.ConfigurableIOManagerFactory]:
    return {"io_manager": CostDeltaIOManager(root=delta.root_of(location(root)))}


def rows(root: Path | str, table: str = "raw.usage") -> list[tuple]:
    return sorted(read_table(location(root), table).rows())


def materialize(root: Path | str, asset: dg.AssetsDefinition, day: str, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize([asset], resources=io_manager(root), partition_key=day, **kwargs)


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    errors = [event.step_failure_data.error for event in result.all_events if event.is_step_failure]
    assert errors, "expected a failed step"
    text = []
    for error in errors:
        while error is not None:
            text.append(error.message)
            error = error.cause
    return "\n".join(text)


def test_a_day_rewritten_replaces_only_that_day(tmp_path: Path) -> None:
    for day in ("2026-01-01", "2026-01-02", "2026-01-01"):
        assert materialize(tmp_path, daily_usage(), day).success
    assert rows(tmp_path) == DAY1 + DAY2  # day 1 twice: no duplicates

    def cheaper(start: dt.date, end: dt.date) -> pl.DataFrame:
        return pl.DataFrame([(D1, "ws-a", "DBU", 1.0)], schema=SCHEMA, orient="row")

    result = materialize(tmp_path, daily_usage(cheaper), "2026-01-01")
    assert result.success
    assert rows(tmp_path) == [(D1, "ws-a", "DBU", 1.0), *DAY2]
    # Stored as a Delta table partitioned by day, under <root>/raw/usage.
    assert sorted(p.name for p in (tmp_path / "raw" / "usage").glob("usage_date=*")) == [
        "usage_date=2026-01-01",
        "usage_date=2026-01-02",
    ]
    [mat] = result.asset_materializations_for_node("raw__usage")
    assert mat.metadata["dagster/row_count"].value == 1
    assert [c.name for c in mat.metadata["dagster/column_schema"].value.columns] == list(SCHEMA)
    # The slice as Databricks SQL reads it in place (backquoted identifiers, not ANSI double quotes).
    assert mat.metadata["Query"].value == (
        f"SELECT * FROM delta.`{tmp_path}/raw/usage` WHERE `usage_date` >= '2026-01-01' AND `usage_date` < '2026-01-02'"
    )


def test_columns_in_another_order_are_written_by_name(tmp_path: Path) -> None:
    assert materialize(tmp_path, daily_usage(), "2026-01-01").success

    def reordered(start: dt.date, end: dt.date) -> pl.DataFrame:  # two string columns: position would swap them
        return usage_rows(start, end).select("cost_usd", "sku", "workspace_id", "usage_date")

    assert materialize(tmp_path, daily_usage(reordered), "2026-01-02").success
    assert rows(tmp_path) == DAY1 + DAY2


def test_replace_by_workspace_keeps_the_other_workspaces_rows(tmp_path: Path) -> None:
    narrowed = {REPLACE_BY: ["workspace_id"]}
    for day in ("2026-01-01", "2026-01-02"):
        assert materialize(tmp_path, daily_usage(), day).success

    # Day 1 again: only ws-a answered (1.0 instead of 10.0), and a new workspace ws-c.
    def ws_a_only(start: dt.date, end: dt.date) -> pl.DataFrame:
        return pl.DataFrame([(D1, "ws-a", "DBU", 1.0), (D1, "ws-c", "DBU", 3.0)], schema=SCHEMA, orient="row")

    assert materialize(tmp_path, daily_usage(ws_a_only, **narrowed), "2026-01-01").success
    # ws-a replaced (10.0 → 1.0), ws-b kept (10.5), ws-c added; day 2 as it was.
    assert rows(tmp_path) == [(D1, "ws-a", "DBU", 1.0), (D1, "ws-b", "VM", 10.5), (D1, "ws-c", "DBU", 3.0), *DAY2]

    # An empty frame names no workspace: nothing of day 1 is replaced (3 rows stay).
    empty = daily_usage(lambda start, end: pl.DataFrame(schema=SCHEMA), **narrowed)
    assert materialize(tmp_path, empty, "2026-01-01").success
    assert len([r for r in rows(tmp_path) if r[0] == D1]) == 3

    # Without the key the same write replaces the whole day: 3 rows of day 1 → the frame's 2.
    assert materialize(tmp_path, daily_usage(ws_a_only), "2026-01-01").success
    assert rows(tmp_path) == [(D1, "ws-a", "DBU", 1.0), (D1, "ws-c", "DBU", 3.0), *DAY2]


def test_empty_frame_creates_the_table_and_downstream_loads_it(tmp_path: Path) -> None:
    seen: dict[str, pl.DataFrame] = {}

    @dg.asset(
        key_prefix=["mart"],
        partitions_def=DAILY,
        metadata={"partition_expr": "usage_date"},
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def daily_cost(usage: pl.DataFrame) -> pl.DataFrame:
        seen["usage"] = usage
        return usage.group_by("usage_date").agg(pl.col("cost_usd").sum())

    upstream = daily_usage(lambda start, end: pl.DataFrame(schema=SCHEMA))
    assert dg.materialize([upstream, daily_cost], resources=io_manager(tmp_path), partition_key="2026-01-01").success
    assert seen["usage"].height == 0
    assert seen["usage"].schema == pl.Schema(SCHEMA)
    assert read_table(location(tmp_path), "raw.usage").schema == pl.Schema(SCHEMA)
    assert read_table(location(tmp_path), "mart.daily_cost").schema == pl.Schema(
        {"usage_date": pl.Date, "cost_usd": pl.Float64}
    )

    # A stored day that becomes empty is emptied (not skipped); the other day stays.
    for day in ("2026-01-01", "2026-01-02"):
        assert materialize(tmp_path, daily_usage(), day).success
    assert materialize(tmp_path, upstream, "2026-01-01").success
    assert rows(tmp_path) == DAY2


def test_schema_drift_is_refused_and_a_declared_column_is_added(tmp_path: Path) -> None:
    assert materialize(tmp_path, daily_usage(), "2026-01-01").success

    def with_region(start: dt.date, end: dt.date) -> pl.DataFrame:
        return usage_rows(start, end).with_columns(region=pl.lit("eu"))

    result = materialize(tmp_path, daily_usage(with_region), "2026-01-02", raise_on_error=False)
    assert not result.success
    assert "Schema drift in raw.usage: the frame has column(s) ['region']" in failure_text(result)
    assert rows(tmp_path) == DAY1

    # Declared as added: it joins the table with the day's rows; day 1's rows read NULL there.
    assert materialize(tmp_path, daily_usage(with_region, **{ADDED_COLUMNS: ["region"]}), "2026-01-02").success
    stored = read_table(location(tmp_path), "raw.usage")
    assert sorted(stored.select(*SCHEMA, "region").rows()) == [
        *((*r, None) for r in DAY1),
        *((*r, "eu") for r in DAY2),
    ]


def test_a_failed_write_leaves_the_old_rows(tmp_path: Path) -> None:
    for day in ("2026-01-01", "2026-01-02"):
        assert materialize(tmp_path, daily_usage(), day).success

    def bad_cost(start: dt.date, end: dt.date) -> pl.DataFrame:  # text where the table has a double
        return usage_rows(start, end).with_columns(cost_usd=pl.lit("not-a-number"))

    result = materialize(tmp_path, daily_usage(bad_cost), "2026-01-01", raise_on_error=False)
    assert not result.success
    assert "not-a-number" in failure_text(result)
    assert rows(tmp_path) == DAY1 + DAY2

    def leaky(start: dt.date, end: dt.date) -> pl.DataFrame:  # a day-2 row in day 1's write
        return pl.DataFrame([(D1, "ws-a", "DBU", 1.0), (D2, "ws-a", "DBU", 2.0)], schema=SCHEMA, orient="row")

    result = materialize(tmp_path, daily_usage(leaky), "2026-01-01", raise_on_error=False)
    assert not result.success
    assert "1 of 2 rows written to raw.usage lie outside the partition being written" in failure_text(result)
    assert rows(tmp_path) == DAY1 + DAY2


def test_the_write_raises_the_warehouse_error_types(tmp_path: Path) -> None:
    uri = delta.table_uri(str(tmp_path), "raw.usage")
    window = delta.Window("usage_date", D1, D2)
    kinds = delta.ErrorTypes(generic=WarehouseError, window=PartitionWindowError, drift=SchemaDriftError)
    delta.replace(uri, usage_rows(D1, D2), name="raw.usage", window=window, errors=kinds)
    with pytest.raises(PartitionWindowError):
        delta.replace(uri, usage_rows(D2, D3), name="raw.usage", window=window, errors=kinds)
    with pytest.raises(SchemaDriftError):
        delta.replace(uri, usage_rows(D1, D2).with_columns(x=pl.lit(1)), name="raw.usage", window=window, errors=kinds)
    with pytest.raises(WarehouseError, match="frame without columns"):
        delta.replace(uri, pl.DataFrame(), name="raw.usage", window=window, errors=kinds)
    assert sorted(delta.load(uri).rows()) == DAY1


def _write_day_repeatedly(root: str, day: dt.date, times: int) -> None:
    """One writer process: its day ``times`` times, the n-th time with cost n (the last one, times - 1, stays)."""
    uri = delta.table_uri(root, "raw.usage")
    window = delta.Window("usage_date", day, day + dt.timedelta(days=1))
    for n in range(times):
        frame = usage_rows(day, window.end).with_columns(cost_usd=pl.lit(float(n)))
        delta.replace(uri, frame, name="raw.usage", window=window)


def concurrent_writers_both_land(root: str) -> None:
    uri = delta.table_uri(root, "raw.usage")
    delta.replace(uri, usage_rows(D1, D3), name="raw.usage", window=delta.Window("usage_date", D1, D3))
    context = multiprocessing.get_context("spawn")  # two processes, as two runs (pods) would be
    workers = [context.Process(target=_write_day_repeatedly, args=(root, day, 6)) for day in (D1, D2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
    assert [worker.exitcode for worker in workers] == [0, 0]
    # Each day: its 2 rows, from its writer's last write (cost 5.0); none lost, none duplicated.
    assert sorted(delta.load(uri).rows()) == [
        (D1, "ws-a", "DBU", 5.0),
        (D1, "ws-b", "VM", 5.0),
        (D2, "ws-a", "DBU", 5.0),
        (D2, "ws-b", "VM", 5.0),
    ]
    # 1 creation + 1 first write + 2 writers × 6 writes = 14 commits: versions 0 .. 13.
    assert delta.open_table(uri).version() == 13


def test_two_concurrent_writers_on_different_days_both_land(tmp_path: Path) -> None:
    concurrent_writers_both_land(str(tmp_path))


def test_concurrent_writes_of_the_same_day_leave_one_days_rows(tmp_path: Path) -> None:
    """Three threads rewrite day 1 five times each: whatever the order, the day holds one write's 2 rows."""
    uri = delta.table_uri(str(tmp_path), "raw.usage")
    window = delta.Window("usage_date", D1, D2)
    delta.replace(uri, usage_rows(D1, D2), name="raw.usage", window=window)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        for n in range(5):
            try:  # thread k's n-th write costs 10k + n on both rows
                frame = usage_rows(D1, D2).with_columns(cost_usd=pl.lit(10.0 * k + n))
                delta.replace(uri, frame, name="raw.usage", window=window)
            except BaseException as e:
                errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stored = delta.load(uri)
    assert stored.height == 2
    [cost] = stored["cost_usd"].unique().to_list()  # both rows from the same write
    assert cost in {10.0 * k + n for k in range(3) for n in range(5)}
    assert delta.open_table(uri).version() == 1 + 3 * 5  # creation (0), first write (1), 15 rewrites (2 .. 16)


def test_reads_say_when_the_ledger_or_a_table_is_missing(tmp_path: Path) -> None:
    with pytest.raises(WarehouseMissingError, match=r"Delta ledger .* does not exist"):
        read_table(location(tmp_path / "nowhere"), "raw.usage")
    assert materialize(tmp_path, daily_usage(), "2026-01-01").success
    with pytest.raises(TableMissingError, match="lacks a table"):
        read_table(location(tmp_path), "mart.daily_cost")
    # The ledger resource of the raw assets: what a day holds, None for a table not written yet.
    stored = Ledger(database=location(tmp_path)).stored_days("raw.usage", [D1])
    assert sorted(stored.rows()) == DAY1
    assert Ledger(database=location(tmp_path)).stored_days("raw.job_runs", [D1]) is None


def test_storage_setting_names_the_variable_and_what_is_allowed() -> None:
    for value in ("delta", "delta:", "parquet:ledger", "delta:gs://bucket/x", "delta:s3://"):
        with pytest.raises(ConfigurationError) as error:
            Settings.from_environ({"COST_ASSETS_STORAGE": value})
        [line] = error.value.problems
        assert line.startswith(f"COST_ASSETS_STORAGE={value!r}: ")
        assert "delta:s3://<bucket>/<prefix>" in line
    assert Settings.from_environ({}).ledger == "data/cost_assets.duckdb"
    assert Settings.from_environ({"COST_ASSETS_STORAGE": "delta:s3://b/p"}).ledger == "delta:s3://b/p"


def test_delta_assets_leave_the_duckdb_writer_pool(tmp_path: Path) -> None:
    def pools(defs: dg.Definitions) -> set[str | None]:
        return {asset.node_def.pool for asset in defs.assets if isinstance(asset, dg.AssetsDefinition)}

    assert DUCKDB_WRITER_POOL in pools(build_defs(sim_environ(tmp_path / "w.duckdb")))
    assert pools(build_defs(sim_environ(tmp_path / "w.duckdb", COST_ASSETS_STORAGE=location(tmp_path)))) == {None}


def test_the_daily_pipeline_on_delta_reads_back_the_duckdb_ledgers_totals(tmp_path: Path) -> None:
    """Two simulated days into a Delta ledger and into a DuckDB file: every reader gives the same numbers."""
    duck = str(tmp_path / "w.duckdb")
    lake = location(tmp_path / "lake")
    assert run_daily(build_defs(sim_environ(Path(duck))), "2026-01-01", "2026-01-02").success
    assert run_daily(build_defs(sim_environ(Path(duck), COST_ASSETS_STORAGE=lake)), "2026-01-01", "2026-01-02").success

    window = ledger.Window(D1, D2)
    on_duckdb, on_delta = ledger.daily(duck, window), ledger.daily(lake, window)
    assert on_delta.height == 2
    assert on_delta["billed_usd"].sum() > 0
    # The same sums; the rows arrive in another order from Delta's files, so float sums may differ in the
    # last bits (relative 1e-9 is far below a cent on these totals).
    assert_frame_equal(on_delta, on_duckdb, check_exact=False, rel_tol=1e-9)
    by_tenant = {"start_date": D1, "end_date": D2, "group_by": ["tenant"]}
    assert_frame_equal(
        query_attribution(database=lake, **by_tenant).sort("tenant"),
        query_attribution(database=duck, **by_tenant).sort("tenant"),
        check_exact=False,
        rel_tol=1e-9,
    )
    for table in ("raw.billing_usage", "mart.attributed_costs", "mart.cost_by_scope"):
        assert read_table(lake, table).height == read_table(duck, table).height > 0
    counts = read.fetch(lake, "select count(*) as n from mart.run_costs")["n"][0]
    assert counts == read.fetch(duck, "select count(*) as n from mart.run_costs")["n"][0]
    # The run summary's rows per table and billed $ per day, and the Prometheus samples, read the same.
    tables = ["mart.attributed_costs", "mart.run_costs", "raw.billing_usage", "raw.job_runs"]
    assert report.table_counts(lake, tables).equals(report.table_counts(duck).filter(pl.col("table").is_in(tables)))
    assert_frame_equal(report.billed_by_day(lake, D1, D2), report.billed_by_day(duck, D1, D2), rel_tol=1e-9)
    assert_frame_equal(ledger.workspaces(lake, window), ledger.workspaces(duck, window), rel_tol=1e-9)
    assert report.unattributed_note(lake, D1, D2) == report.unattributed_note(duck, D1, D2)
    samples = {s.name + repr(s.labels): s.value for s in metrics.read_samples(lake)}
    assert any(name.startswith("databricks_cost_total_usd") and value > 0 for name, value in samples.items())
    assert samples.keys() == {s.name + repr(s.labels): s.value for s in metrics.read_samples(duck)}.keys()
    for sample in metrics.read_samples(duck):
        assert samples[sample.name + repr(sample.labels)] == pytest.approx(sample.value, rel=1e-9)


# --- S3: moto's server on a free loopback port, dummy credentials from the environment --------------------


@pytest.fixture
def s3_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # The standard AWS variables: delta-rs reads them itself; the project never does.
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(name, value)
    # moto keeps its buckets per process, across servers: a bucket of its own keeps each test apart.
    bucket = f"ledger-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    try:
        yield f"s3://{bucket}/cost"
    finally:
        server.stop()


def test_s3_round_trip_and_readers(s3_root: str) -> None:
    for day in ("2026-01-01", "2026-01-02", "2026-01-01"):
        assert materialize(s3_root, daily_usage(), day).success

    seen: dict[str, pl.DataFrame] = {}

    @dg.asset(key_prefix=["mart"], partitions_def=DAILY, metadata={"partition_expr": "usage_date"})
    def daily_cost(usage: pl.DataFrame) -> pl.DataFrame:
        seen["usage"] = usage
        return usage.group_by("usage_date").agg(pl.col("cost_usd").sum())

    result = dg.materialize(
        [daily_usage(), daily_cost], resources=io_manager(s3_root), partition_key="2026-01-02", selection=[daily_cost]
    )
    assert result.success
    assert sorted(seen["usage"].rows()) == DAY2  # the load reads only day 2
    assert rows(s3_root) == DAY1 + DAY2
    # The report SQL over the S3 ledger: day 2 costs 20.0 + 20.5 = 40.5.
    assert read.fetch(location(s3_root), "select sum(cost_usd) as usd from mart.daily_cost")["usd"][0] == 40.5
    # Nothing of the credentials reaches the materialization's metadata.
    [mat] = result.asset_materializations_for_node("mart__daily_cost")
    assert "testing-secret" not in repr(mat.metadata)
    assert mat.metadata["dagster/uri"].value == f"{s3_root}/mart/daily_cost"


def test_two_concurrent_writers_on_s3_both_land(s3_root: str) -> None:
    """delta-rs commits to S3 with conditional writes (If-None-Match), which moto honours like S3 does: a
    commit that lost the race is retried on the new version instead of overwriting it."""
    concurrent_writers_both_land(s3_root)


def test_the_kubernetes_definitions_use_the_delta_ledger_on_s3(tmp_path: Path) -> None:
    """What the k8s image serves with the ConfigMap's COST_ASSETS_STORAGE: loadable without touching the bucket
    (the IO manager opens tables only when a run writes), the Delta IO manager at that root, the ledger
    resource and the sensors' readers on the same location; and deploy/k8s says so where storage is set."""
    defs = build_defs({"COST_ASSETS_STORAGE": "delta:s3://cost-bucket/ledger/", "COST_ASSETS_SIM_SCALE": "tiny"})
    dg.Definitions.validate_loadable(defs)
    resources = defs.resources
    assert isinstance(resources["io_manager"], CostDeltaIOManager)
    assert resources["io_manager"].root == "s3://cost-bucket/ledger"
    assert resources["ledger"].database == "delta:s3://cost-bucket/ledger/"
    k8s = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
    for name in ("README.md", "values.yaml", "dagster.yaml"):
        assert "COST_ASSETS_STORAGE=delta:s3://" in (k8s / name).read_text(), name


def test_the_ledger_resource_opens_only_the_days_it_asks_for(tmp_path: Path) -> None:
    """Ledger.stored_days reads a window of a long history: on Delta only that window's files are opened.
    Proof: with day 2's data file gone, day 1 still reads (a whole-table read fails on the missing file)."""
    for day in ("2026-01-01", "2026-01-02"):
        assert materialize(tmp_path, daily_usage(), day).success
    [day2_file] = (tmp_path / "raw" / "usage" / "usage_date=2026-01-02").glob("*.parquet")
    day2_file.unlink()
    assert sorted(Ledger(database=location(tmp_path)).stored_days("raw.usage", [D1]).rows()) == DAY1
    with pytest.raises(WarehouseError, match=r"raw\.usage could not be read \(.*(?i:not found|no such file)"):
        read_table(location(tmp_path), "raw.usage")


def test_replace_by_two_columns_replaces_combinations_and_refuses_null_keys(tmp_path: Path) -> None:
    """Narrowed by (workspace_id, sku): a stored row is replaced only when its pair occurs in the frame."""
    uri = delta.table_uri(str(tmp_path), "raw.usage")
    window = delta.Window("usage_date", D1, D2)
    stored = [(D1, "ws-a", "DBU", 1.0), (D1, "ws-a", "VM", 2.0), (D1, "ws-b", "DBU", 3.0), (D1, "ws-b", "VM", 4.0)]
    delta.replace(uri, pl.DataFrame(stored, schema=SCHEMA, orient="row"), name="raw.usage", window=window)
    # The frame brings (ws-a, DBU) and (ws-b, VM): (ws-a, VM) and (ws-b, DBU) stay, though each of their
    # values alone occurs in the frame.
    frame = pl.DataFrame([(D1, "ws-a", "DBU", 10.0), (D1, "ws-b", "VM", 40.0)], schema=SCHEMA, orient="row")
    pair = ["workspace_id", "sku"]
    delta.replace(uri, frame, name="raw.usage", window=window, replace_by=pair)
    assert sorted(delta.load(uri).rows()) == [
        (D1, "ws-a", "DBU", 10.0),
        (D1, "ws-a", "VM", 2.0),
        (D1, "ws-b", "DBU", 3.0),
        (D1, "ws-b", "VM", 40.0),
    ]
    # A row without a workspace could never be replaced by a later narrowed write: refused, nothing written.
    nameless = pl.DataFrame([(D1, None, "DBU", 99.0)], schema=SCHEMA, orient="row")
    with pytest.raises(delta.DeltaWriteError, match=r"1 of 1 rows written to raw\.usage have a NULL replace-by value"):
        delta.replace(uri, nameless, name="raw.usage", window=window, replace_by=pair)
    assert sorted(delta.load(uri)["cost_usd"].to_list()) == [2.0, 3.0, 10.0, 40.0]


def test_an_unpartitioned_table_is_replaced_whole(tmp_path: Path) -> None:
    frames = iter(
        [
            pl.DataFrame({"sku": ["DBU", "VM"], "price": [0.15, 0.5]}),
            pl.DataFrame({"sku": ["DBU"], "price": [0.2], "tier": ["premium"]}),  # rows and columns change
        ]
    )

    @dg.asset(key_prefix=["ref"])
    def sheet() -> pl.DataFrame:
        return next(frames)

    assert dg.materialize([sheet], resources=io_manager(tmp_path)).success
    assert sorted(read_table(location(tmp_path), "ref.sheet").rows()) == [("DBU", 0.15), ("VM", 0.5)]
    assert dg.materialize([sheet], resources=io_manager(tmp_path)).success
    assert read_table(location(tmp_path), "ref.sheet").rows() == [("DBU", 0.2, "premium")]
