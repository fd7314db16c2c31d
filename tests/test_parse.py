"""Parsers: the documented wire formats → raw frames (hand-written payloads, expected values by hand)."""

import datetime as dt
import re

import httpx
import polars as pl
import pytest

from cost_assets import schemas
from cost_assets.ingest import parse

DAY = dt.date(2024, 6, 19)
MS_0600 = 1718776800000  # 2024-06-19T06:00:00Z


def test_legacy_csv_end_of_hour_stamp_maps_to_the_hour_it_closes():
    text = (
        "workspaceId,timestamp,clusterId,clusterName,clusterNodeType,clusterOwnerUserId,clusterCustomTags,"
        "sku,dbus,machineHours,clusterOwnerUserName,tags\n"
        "2222333344445555,2024-06-19T21:59:59.999Z,0619-210000-xyz98765,job-998877-run-455600001,i3.xlarge,"
        '4711,"{""team"":""ml""}",PREMIUM_JOBS_COMPUTE,5.0,5.0,svc,"{""Vendor"":""Databricks"",""team"":""ml""}"\n'
        '2222333344445555,2024-06-19T23:59:59.999Z,8e00f0c8b392983e,BI warehouse,db.xlarge,4711,"{}",'
        'PREMIUM_SQL_COMPUTE,12.0,,,"{}"\n'
    )
    frame = parse.legacy_csv_frame(text, "usage.csv")
    schemas.BillingUsage.validate(frame)
    first, second = frame.row(0, named=True), frame.row(1, named=True)
    assert first["usage_start_time"] == dt.datetime(2024, 6, 19, 21)
    assert first["usage_end_time"] == dt.datetime(2024, 6, 19, 22)
    assert first["usage_date"] == DAY
    assert first["custom_tags"] == '{"team":"ml"}'
    assert (first["job_id"], first["job_run_id"]) == (998877, 455600001)
    assert first["machine_hours"] == 5.0 and first["usage_quantity"] == 5.0
    # 23:59:59.999 closes 23:00-24:00 of the same day, not the next day.
    assert second["usage_start_time"] == dt.datetime(2024, 6, 19, 23) and second["usage_date"] == DAY
    # A SQL warehouse row carries the warehouse id in clusterId.
    assert second["warehouse_id"] == "8e00f0c8b392983e" and second["cluster_id"] is None
    assert second["machine_hours"] is None


def test_legacy_csv_download_with_a_byte_order_mark_keeps_its_workspace_column():
    """The Account API text as the client sees it: httpx decodes ``charset=utf-8`` and keeps U+FEFF."""
    text = (
        ",".join(parse.LEGACY_CSV_COLUMNS) + "\n"
        '2222333344445555,2024-06-19T21:59:59.999Z,c1,n,i3.xlarge,4711,"{}",PREMIUM_JOBS_COMPUTE,5.0,5.0,,"{}"\n'
    )
    download = httpx.Response(
        200, content=b"\xef\xbb\xbf" + text.encode(), headers={"Content-Type": "text/plain; charset=utf-8"}
    ).text
    assert download.startswith("\ufeffworkspaceId,")
    frame = parse.legacy_csv_frame(download, "Account API usage download")
    assert frame["workspace_id"].to_list() == ["2222333344445555"]
    assert frame.equals(parse.legacy_csv_frame(text, "Account API usage download"))


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("wrong,header\n1,2\n", "line 1: header lacks column(s) workspaceId"),
        (
            "{h}\n1,2024-06-19T21:59:59.999Z,c,n,t,o,{{}},SKU,lots,1,,{{}}\n",
            "line 2: column dbus: not a number: 'lots'",
        ),
        ("{h}\n1,2024-06-19T21:59:59.999Z,c,n,t,o,{{}},SKU,1\n", "line 2: expected 12 fields, found 9"),
        ("{h}\n1,yesterday,c,n,t,o,{{}},SKU,1,1,,{{}}\n", "line 2: column timestamp: not an ISO-8601 timestamp"),
    ],
)
def test_legacy_csv_errors_name_file_line_and_column(body, where):
    header = ",".join(parse.LEGACY_CSV_COLUMNS)
    with pytest.raises(parse.InputError) as err:
        parse.legacy_csv_frame(body.format(h=header), "bill-2024-06.csv")
    assert str(err.value).startswith("bill-2024-06.csv: ")
    assert where in str(err.value)


def test_runs_flatten_to_task_runs_that_overlap_the_day_and_ignore_unknown_fields():
    runs = [
        {
            "job_id": 1,
            "run_id": 10,
            "run_type": "JOB_RUN",
            "start_time": MS_0600 - 8 * 3_600_000,
            "end_time": MS_0600,
            "brand_new_field": {"x": 1},
            "tasks": [
                # 22:00 the day before → 02:00: overlaps the day (started before it)
                {
                    "task_key": "a",
                    "run_id": 11,
                    "start_time": MS_0600 - 8 * 3_600_000,
                    "end_time": MS_0600 - 4 * 3_600_000,
                    "job_cluster_key": "main",
                    "cluster_instance": {"cluster_id": "c1"},
                    "another_new_field": 3,
                },
                # 22:00 → 23:00 the day before: does not overlap
                {
                    "task_key": "b",
                    "run_id": 12,
                    "start_time": MS_0600 - 8 * 3_600_000,
                    "end_time": MS_0600 - 7 * 3_600_000,
                    "existing_cluster_id": "shared-1",
                    "cluster_instance": {"cluster_id": "shared-1"},
                },
                # still running (end_time 0), on serverless compute
                {"task_key": "c", "run_id": 13, "start_time": MS_0600, "end_time": 0, "environment_key": "default"},
            ],
        }
    ]
    frame = parse.job_runs_frame(runs, DAY, "ws")
    schemas.JobRuns.validate(frame)
    assert frame["task_run_id"].to_list() == [11, 13]
    assert frame["compute_type"].to_list() == ["job_cluster", "serverless"]
    assert frame["end_time"].to_list() == [dt.datetime(2024, 6, 19, 2), None]
    assert frame["life_cycle_state"].to_list() == ["TERMINATED", "RUNNING"]


def test_legacy_single_task_run_is_its_own_task():
    runs = [
        {
            "job_id": 5,
            "run_id": 50,
            "run_name": "legacy",
            "run_type": "SUBMIT_RUN",
            "start_time": MS_0600,
            "end_time": MS_0600 + 60_000,
            "cluster_instance": {"cluster_id": "c9"},
            "cluster_spec": {"existing_cluster_id": "c9"},
            "state": {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"},
        }
    ]
    frame = parse.job_runs_frame(runs, DAY, "ws")
    assert frame.select("task_run_id", "task_key", "cluster_id", "compute_type").row(0) == (
        50,
        "legacy",
        "c9",
        "all_purpose",
    )


def test_cluster_photon_single_node_and_cloud_detection():
    clusters = [
        {
            "cluster_id": "a",
            "spark_version": "13.3.x-photon-scala2.12",
            "node_type_id": "i3.xlarge",
            "num_workers": 0,
            "custom_tags": {"ResourceClass": "SingleNode"},
            "aws_attributes": {"availability": "SPOT_WITH_FALLBACK", "first_on_demand": 1},
        },
        {
            "cluster_id": "b",
            "runtime_engine": "PHOTON",
            "node_type_id": "Standard_E8ds_v4",
            "autoscale": {"min_workers": 2, "max_workers": 10},
            "azure_attributes": {"availability": "SPOT_AZURE"},
        },
    ]
    frame = parse.clusters_frame(clusters, DAY, "ws", "AZURE")
    schemas.Clusters.validate(frame)
    rows = {r["cluster_id"]: r for r in frame.iter_rows(named=True)}
    assert rows["a"]["cloud"] == "AWS" and rows["a"]["is_photon"] and rows["a"]["is_single_node"]
    assert rows["a"]["driver_node_type_id"] == "i3.xlarge"  # defaults to the worker type
    assert rows["b"]["cloud"] == "AZURE" and rows["b"]["is_photon"] and not rows["b"]["is_single_node"]
    assert (rows["b"]["num_workers"], rows["b"]["autoscale_min_workers"]) == (None, 2)


def test_event_lookback_keeps_only_what_fixes_the_state_at_midnight():
    day0 = MS_0600 - 6 * 3_600_000

    def ev(t: int, kind: str) -> dict:
        return {"cluster_id": "c", "timestamp": day0 + t * 60_000, "type": kind, "details": {}}

    running_through = [
        ev(-300, "TERMINATING"),
        ev(-200, "STARTING"),
        ev(-190, "RUNNING"),
        ev(-50, "RESIZING"),
        ev(10, "TERMINATING"),
    ]
    kept = parse.trim_lookback(running_through, day0)
    assert [e["type"] for e in kept] == ["STARTING", "RUNNING", "RESIZING", "TERMINATING"]
    down_at_midnight = [ev(-300, "STARTING"), ev(-100, "TERMINATING"), ev(30, "CREATING")]
    assert [e["type"] for e in parse.trim_lookback(down_at_midnight, day0)] == ["CREATING"]
    frame = parse.cluster_events_frame(kept, DAY, "ws")
    assert frame["is_lookback"].to_list() == [True, True, True, False]


def test_system_usage_rows_keep_corrections_and_string_values():
    base = {
        "account_id": "acc",
        "workspace_id": "1",
        "sku_name": "PREMIUM_JOBS_COMPUTE",
        "cloud": "AZURE",
        "usage_start_time": "2024-06-19T22:00:00.000+00:00",
        "usage_end_time": "2024-06-19T23:00:00.000+00:00",
        "usage_unit": "DBU",
        "usage_metadata": {"cluster_id": "c", "job_id": "11223344", "job_run_id": "4556"},
        "product_features": {"is_photon": False},
        "unknown_column": 1,
    }
    rows = [
        {
            **base,
            "record_id": "o",
            "record_type": "ORIGINAL",
            "usage_quantity": "3.750000000000000000",
            "ingestion_date": "2024-06-20",
        },
        {
            **base,
            "record_id": "r",
            "record_type": "RETRACTION",
            "usage_quantity": "-3.750000000000000000",
            "ingestion_date": "2024-06-23",
        },
        {
            **base,
            "record_id": "s",
            "record_type": "RESTATEMENT",
            "usage_quantity": "3.250000000000000000",
            "ingestion_date": "2024-06-23",
        },
    ]
    frame = parse.system_usage_frame(rows, "system_tables")
    schemas.BillingUsage.validate(frame)
    assert frame["usage_quantity"].sum() == pytest.approx(3.75 - 3.75 + 3.25)
    assert frame["job_id"].to_list() == [11223344] * 3
    assert frame.filter(pl.col("record_type") == "RETRACTION")["ingestion_date"].item() == dt.date(2024, 6, 23)


def test_two_rows_of_one_cluster_hour_both_count_and_an_identical_row_collapses(tmp_path):
    from cost_assets.resources.billing import CsvBillingSource

    header = ",".join(parse.LEGACY_CSV_COLUMNS)
    first = '1,2024-06-19T21:59:59.999Z,c1,n,i3.xlarge,o,"{""team"":""a""}",PREMIUM_JOBS_COMPUTE,3.0,3.0,,{}'
    second = '1,2024-06-19T21:59:59.999Z,c1,n,i3.xlarge,o,"{""team"":""b""}",PREMIUM_JOBS_COMPUTE,2.0,2.0,,{}'
    (tmp_path / "june.csv").write_text(f"{header}\n{first}\n{second}\n")
    (tmp_path / "june-again.csv").write_text(f"{header}\n{first}\n")  # an overlapping download
    frame = CsvBillingSource(path=str(tmp_path / "*.csv")).usage([DAY])
    # Tags changed within the hour: 3.0 + 2.0 DBU, both rows kept; the repeated first row counts once.
    assert frame.height == 2 and frame["usage_quantity"].sum() == 3.0 + 2.0


@pytest.mark.parametrize(
    ("cells", "where"),
    [
        ("nan,1", "column dbus: not a finite number: 'nan'"),
        ("1e400,1", "column dbus: not a finite number: '1e400'"),
        ("1,inf", "column machineHours: not a finite number: 'inf'"),
    ],
)
def test_legacy_csv_rejects_non_finite_numbers(cells, where):
    header = ",".join(parse.LEGACY_CSV_COLUMNS)
    text = f"{header}\n1,2024-06-19T21:59:59.999Z,c,n,t,o,{{}},SKU,{cells},,{{}}\n"
    with pytest.raises(parse.InputError, match=re.escape(f"bill.csv: line 2: {where}")):
        parse.legacy_csv_frame(text, "bill.csv")


def test_legacy_csv_tags_must_be_a_json_object():
    header = ",".join(parse.LEGACY_CSV_COLUMNS)
    text = f'{header}\n1,2024-06-19T21:59:59.999Z,c,n,t,o,"[1,2]",SKU,1,1,,{{}}\n'
    with pytest.raises(parse.InputError, match=r"bill\.csv: line 2: column clusterCustomTags: not a JSON object"):
        parse.legacy_csv_frame(text, "bill.csv")


def test_system_usage_errors_name_the_row_and_record():
    good = {
        "record_id": "a",
        "sku_name": "S",
        "usage_start_time": "2024-06-19T22:00:00Z",
        "usage_end_time": "2024-06-19T23:00:00Z",
        "usage_quantity": "1.5",
    }
    with pytest.raises(parse.InputError, match=r"row 1 \(record 'b'\): could not convert string to float"):
        parse.system_usage_frame([good, {**good, "record_id": "b", "usage_quantity": "lots"}], "system_tables")
    with pytest.raises(parse.InputError, match=r"row 0 \(record None\): missing field 'record_id'"):
        parse.system_usage_frame([{k: v for k, v in good.items() if k != "record_id"}], "system_tables")
    with pytest.raises(parse.InputError, match="is not a finite number"):
        parse.system_usage_frame([{**good, "usage_quantity": "NaN"}], "system_tables")


def test_cluster_rows_carry_their_worker_pool_details():
    clusters = [
        {
            "cluster_id": "p1",
            "node_type_id": "i3.xlarge",
            "num_workers": 2,
            "instance_pool_id": "pool-a",
            "aws_attributes": {"availability": "ON_DEMAND"},
        },
        {"cluster_id": "p2", "node_type_id": "i3.xlarge", "num_workers": 2, "instance_pool_id": "gone"},
        {"cluster_id": "n1", "node_type_id": "i3.xlarge", "num_workers": 2},
    ]
    pools = {
        "pool-a": {
            "instance_pool_id": "pool-a",
            "node_type_id": "i3.xlarge",
            "min_idle_instances": 2,
            "custom_tags": {"team": "platform"},
            "stats": {"idle_count": 5},
        }
    }
    frame = parse.clusters_frame(clusters, DAY, "ws", "AWS", pools=pools)
    schemas.Clusters.validate(frame)
    rows = {r["cluster_id"]: r for r in frame.iter_rows(named=True)}
    assert (rows["p1"]["pool_node_type_id"], rows["p1"]["pool_min_idle_instances"]) == ("i3.xlarge", 2)
    assert rows["p1"]["pool_custom_tags"] == '{"team":"platform"}'
    assert rows["p2"]["pool_node_type_id"] is None and rows["n1"]["pool_min_idle_instances"] is None
