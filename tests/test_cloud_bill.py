"""The cloud bill parser: one per-cloud fixture each (hand-written, tests/fixtures/cloud_bill/), overlapping
exports (the latest wins), and every bad-file error naming file, row and column."""

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pytest

from cost_assets import schemas
from cost_assets.config import ConfigurationError, Settings
from cost_assets.ingest import cloud_bill
from cost_assets.ingest.parse import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "cloud_bill"
DAY = dt.date(2026, 1, 5)
H10 = dt.datetime(2026, 1, 5, 10)


def read(name: str, fmt: str | None = None) -> pl.DataFrame:
    return schemas.CloudCosts.validate(cloud_bill.read_file(FIXTURES / name, fmt))


def test_aws_focus_hourly_with_user_prefixed_tags():
    f = read("aws_focus.csv")
    assert f["provider"].unique().to_list() == ["AWS"] and set(f["export_format"]) == {"focus"}
    driver, spot, disk, orphan, web = f.sort("source_row").to_dicts()
    assert (driver["charge_period_start"], driver["grain"], driver["usage_date"]) == (H10, "hour", DAY)
    # user:ClusterId, user:JobId, … found without the prefix
    assert (driver["cluster_id"], driver["job_id"], driver["run_name"], driver["creator"]) == (
        "0105-100000-aws1",
        42,
        "nightly",
        "ana@example.com",
    )
    assert (driver["service_category"], driver["pricing_model"], driver["billed_cost"]) == (
        "vm_compute",
        "on_demand",
        0.192,
    )
    # PricingCategory Dynamic / SpotUsage: spot at the hour's market price; ListCost is the on-demand price
    assert (spot["pricing_model"], spot["effective_cost"], spot["list_cost"]) == ("spot", 0.0712, 0.192)
    assert (disk["service_category"], disk["cluster_id"]) == ("managed_disk", "0105-100000-aws1")
    assert orphan["is_databricks"] and orphan["cluster_id"] is None  # Vendor=Databricks only
    assert not web["is_databricks"]
    assert web["tags"] == '{"user:team":"web"}'  # the keys as the export spells them


def test_azure_focus_daily_with_a_reservation_a_disk_and_a_pool_ip():
    f = read("azure_focus.csv").sort("source_row")
    vm, disk, ip = f.to_dicts()
    assert (vm["provider"], vm["grain"], vm["charge_period_start"]) == ("AZURE", "day", dt.datetime(2026, 1, 5))
    assert (vm["pricing_model"], vm["billed_cost"], vm["effective_cost"], vm["list_cost"]) == (
        "reservation",
        0.0,
        3.60,
        5.52,
    )
    assert (vm["cluster_id"], vm["cluster_name"], vm["creator"]) == ("0105-000000-az1", "etl", "bo@example.com")
    assert (disk["service_category"], disk["pricing_model"]) == ("managed_disk", "on_demand")
    # a "Basic IPv4 Dynamic Public IP" meter is a public IP, and not spot
    assert (ip["service_category"], ip["pricing_model"], ip["instance_pool_id"]) == (
        "public_ip",
        "on_demand",
        "0105-pool-az1",
    )


def test_gcp_focus_lower_case_labels_as_a_key_value_list():
    vm, disk = read("gcp_focus.csv").sort("source_row").to_dicts()
    assert vm["provider"] == "GCP"
    assert vm["charge_period_start"] == H10  # BigQuery's "2026-01-05 10:00:00 UTC"
    assert (vm["cluster_id"], vm["vendor"], vm["is_databricks"]) == ("0105-100000-gcp1", "databricks", True)
    assert vm["instance_pool_id"] is None  # an empty label value is no tag
    assert (vm["pricing_model"], vm["effective_cost"], vm["list_cost"]) == ("spot", 0.0282, 0.1263)
    assert disk["service_category"] == "managed_disk"  # "Balanced PD Capacity"


def test_azure_cost_details_export_with_braceless_tags_and_us_dates():
    spot, untagged, web = read("azure_cost_ea.csv").sort("source_row").to_dicts()
    assert (spot["export_format"], spot["usage_date"], spot["grain"]) == ("azure_cost", DAY, "day")
    assert (spot["cluster_id"], spot["job_id"], spot["run_name"]) == ("0105-000000-az2", 77, "hourly-load")
    assert spot["pricing_model"] == "spot"
    # billed = effective = CostInBillingCurrency; list = PayGPrice × Quantity = 0.23 × 10 = 2.30
    assert (spot["billed_cost"], spot["effective_cost"]) == (0.461, 0.461)
    assert spot["list_cost"] == pytest.approx(2.30)
    # no tags, but in the workspace's managed resource group: Databricks money all the same
    assert untagged["is_databricks"] and untagged["cluster_id"] is None
    assert not web["is_databricks"]


def test_the_format_prefix_forces_a_shape():
    with pytest.raises(
        InputError, match=r"azure_focus\.csv: header: the Azure cost details export lacks column\(s\) Date"
    ):
        cloud_bill.read_file(FIXTURES / "azure_focus.csv", cloud_bill.AZURE)
    assert cloud_bill.parse_setting("focus:exports/*.parquet") == ("focus", "exports/*.parquet")
    assert cloud_bill.parse_setting("exports") == (None, "exports")


def test_parquet_with_typed_timestamps_and_a_map_of_tags(tmp_path):
    path = tmp_path / "part-0.parquet"
    pl.DataFrame(
        {
            "ProviderName": ["AWS"],
            "ChargePeriodStart": [dt.datetime(2026, 1, 5, 11, 0)],  # 11:00 in Berlin is 10:00 UTC
            "ChargePeriodEnd": [dt.datetime(2026, 1, 5, 12, 0)],
            "ChargeCategory": ["Usage"],
            "ResourceId": ["i-0abc"],
            "BilledCost": [0.5],
            "EffectiveCost": [0.5],
            "BillingCurrency": ["USD"],
            "Tags": [[{"key": "user:ClusterId", "value": "c-9"}]],
        }
    ).with_columns(pl.col("ChargePeriodStart", "ChargePeriodEnd").dt.replace_time_zone("Europe/Berlin")).write_parquet(
        path
    )
    row = schemas.CloudCosts.validate(cloud_bill.read_file(path)).row(0, named=True)
    assert (row["charge_period_start"], row["cluster_id"], row["source_row"]) == (H10, "c-9", 1)


def _focus(path: Path, rows: list[tuple[str, float]], mtime: float) -> Path:
    """A minimal AWS FOCUS file: (charge day ISO, cost) per row, with the given modification time."""
    lines = [
        "ProviderName,BillingAccountId,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ResourceId,BilledCost,EffectiveCost,BillingCurrency"
    ]
    for day, cost in rows:
        end = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
        lines.append(f"AWS,acct,{day}T00:00:00Z,{end}T00:00:00Z,Usage,i-1,{cost},{cost},USD")
    path.write_text("\n".join(lines) + "\n")
    os.utime(path, (mtime, mtime))
    return path


def test_overlapping_monthly_exports_the_latest_of_each_day_wins(tmp_path):
    t0 = dt.datetime(2026, 2, 1).timestamp()
    # The January export run on Feb 1 (days 5 and 6), re-run on Feb 3 with a corrected day 5 only
    # (a partial re-export), and an older daily file of day 5.
    _focus(tmp_path / "daily-0105.csv", [("2026-01-05", 9.0)], t0 - 86400)
    _focus(tmp_path / "month-run1.csv", [("2026-01-05", 1.0), ("2026-01-05", 2.0), ("2026-01-06", 4.0)], t0)
    _focus(tmp_path / "month-run2.csv", [("2026-01-05", 1.5), ("2026-01-05", 2.5)], t0 + 2 * 86400)
    days = [DAY, dt.date(2026, 1, 6)]
    f = cloud_bill.read_exports(cloud_bill.export_files(str(tmp_path / "*.csv")), days)
    per_day = dict(
        f.group_by("usage_date")
        .agg(pl.col("billed_cost").sum(), pl.col("source_file").first())
        .select("usage_date", pl.struct("billed_cost", "source_file"))
        .iter_rows()
    )
    # day 5: run 2 only, 1.5 + 2.5 = 4.0 (not 9 + 3 + 4); day 6: run 1's 4.0 (run 2 has no rows for it)
    assert per_day[DAY]["billed_cost"] == 4.0 and per_day[DAY]["source_file"].endswith("month-run2.csv")
    assert per_day[days[1]]["billed_cost"] == 4.0 and per_day[days[1]]["source_file"].endswith("month-run1.csv")


def test_two_exports_of_different_accounts_both_count(tmp_path):
    t0 = dt.datetime(2026, 2, 1).timestamp()
    a = _focus(tmp_path / "a.csv", [("2026-01-05", 1.0)], t0)
    b = _focus(tmp_path / "b.csv", [("2026-01-05", 2.0)], t0 + 60)
    b.write_text(b.read_text().replace("AWS,acct,", "AWS,other,"))
    os.utime(b, (t0 + 60, t0 + 60))
    f = cloud_bill.read_exports([a, b], [DAY])
    assert f["billed_cost"].sum() == 3.0  # 1 (acct) + 2 (other): different scopes, no overlap


def test_files_by_folder_glob_or_path(tmp_path):
    (tmp_path / "sub").mkdir()
    _focus(tmp_path / "sub" / "x.csv", [("2026-01-05", 1.0)], 0)
    (tmp_path / "notes.txt").write_text("not an export")
    assert [p.name for p in cloud_bill.export_files(str(tmp_path))] == ["x.csv"]
    assert [p.name for p in cloud_bill.export_files(str(tmp_path / "sub" / "x.csv"))] == ["x.csv"]
    assert cloud_bill.export_files(str(tmp_path / "missing-*.csv")) == []


HEADER = (
    "ProviderName,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ResourceId,"
    "BilledCost,EffectiveCost,BillingCurrency,Tags"
)
GOOD = 'AWS,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,Usage,i-1,1.0,1.0,USD,"{}"'


@pytest.mark.parametrize(
    ("bad_row", "expected"),
    [
        (
            'AWS,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,Usage,i-1,abc,1.0,USD,"{}"',
            "data row 2: column BilledCost: not a number: 'abc'",
        ),
        (
            'AWS,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,Usage,i-1,,1.0,USD,"{}"',
            "data row 2: column BilledCost: empty",
        ),
        (
            'AWS,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,Usage,i-1,1.0,nan,USD,"{}"',
            "data row 2: column EffectiveCost: not a finite number",
        ),
        (
            'AWS,yesterday,2026-01-05T11:00:00Z,Usage,i-1,1.0,1.0,USD,"{}"',
            "data row 2: column ChargePeriodStart: not a date or timestamp: 'yesterday'",
        ),
        (
            'AWS,2026-01-05T10:00:00Z,2026-01-05T09:00:00Z,Usage,i-1,1.0,1.0,USD,"{}"',
            "data row 2: column ChargePeriodEnd: charge period ends",
        ),
        (
            'AWS,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,Usage,i-1,1.0,1.0,USD,"{""a"": "',
            "data row 2: column Tags: not a JSON object of tags",
        ),
        (
            'Oracle,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,Usage,i-1,1.0,1.0,USD,"{}"',
            "data row 2: column ProviderName: unknown provider 'Oracle'",
        ),
        (
            'AWS,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,Discount,i-1,1.0,1.0,USD,"{}"',
            "data row 2: column ChargeCategory: unknown charge category 'Discount'",
        ),
        (
            'AWS,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,Usage,i-1,1.0,1.0,,"{}"',
            "data row 2: column BillingCurrency: empty",
        ),
        (  # the resource id is missing: every later cell would shift one column to the left
            'AWS,2026-01-05T10:00:00Z,2026-01-05T11:00:00Z,Usage,1.0,1.0,USD,"{}"',
            "data row 2: expected 9 fields, found 8",
        ),
    ],
    ids=[
        "cost-text",
        "cost-empty",
        "cost-nan",
        "start",
        "end-before-start",
        "tags-json",
        "provider",
        "category",
        "currency",
        "a-field-missing",
    ],
)
def test_a_bad_cell_names_the_file_the_row_and_the_column(tmp_path, bad_row, expected):
    path = tmp_path / "bill.csv"
    path.write_text(f"{HEADER}\n{GOOD}\n{bad_row}\n")
    with pytest.raises(InputError) as e:
        cloud_bill.read_file(path)
    assert str(e.value).startswith(f"{path}: ")
    assert expected in str(e.value)


def test_only_the_days_asked_are_converted_and_rows_keep_their_number_in_the_file(tmp_path):
    path = tmp_path / "month.csv"
    other_day = GOOD.replace("2026-01-05T1", "2026-01-04T1").replace(",1.0,1.0,", ",oops,1.0,")
    path.write_text(f"{HEADER}\n{other_day}\n{GOOD}\n{GOOD.replace(',1.0,1.0,', ',n/a,1.0,')}\n")
    # day 4's bad cost is not looked at when day 5 is asked; day 5's is, named by its row in the file (3)
    with pytest.raises(InputError, match=r"month\.csv: data row 3: column BilledCost: not a number: 'n/a'"):
        cloud_bill.read_file(path, days={DAY})
    path.write_text(f"{HEADER}\n{other_day}\n{GOOD}\n")
    assert cloud_bill.read_file(path, days={DAY})["source_row"].to_list() == [2]
    with pytest.raises(InputError, match=r"data row 1: column BilledCost: not a number: 'oops'"):
        cloud_bill.read_file(path, days={dt.date(2026, 1, 4)})


def test_a_bad_header_or_an_unreadable_file_names_the_file(tmp_path):
    missing = tmp_path / "focus.csv"
    missing.write_text("ChargePeriodStart,BilledCost\n2026-01-05T10:00:00Z,1\n")
    with pytest.raises(
        InputError, match=r"focus\.csv: header: the FOCUS export lacks column\(s\) ChargePeriodEnd, EffectiveCost"
    ):
        cloud_bill.read_file(missing)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"other\.csv: header: neither a FOCUS export"):
        cloud_bill.read_file(other)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match=r"broken\.parquet: not a readable parquet file"):
        cloud_bill.read_file(broken)


def test_a_bad_file_among_good_ones_fails_the_whole_read(tmp_path):
    _focus(tmp_path / "a.csv", [("2026-01-05", 1.0)], 0)
    (tmp_path / "b.csv").write_text(f"{HEADER}\n{GOOD.replace(',1.0,1.0,', ',1.0,x,')}\n")
    with pytest.raises(InputError, match=r"b\.csv: data row 1: column EffectiveCost"):
        cloud_bill.read_exports(cloud_bill.export_files(str(tmp_path)), [DAY])


@pytest.mark.parametrize(
    ("key", "column"),
    [
        ("ClusterId", "cluster_id"),
        ("user:ClusterId", "cluster_id"),
        ("clusterid", "cluster_id"),
        ("databricks-instance-pool-id", "instance_pool_id"),
        ("user:DatabricksInstancePoolId", "instance_pool_id"),
        ("SqlWarehouseId", "sql_warehouse_id"),
        ("RUNNAME", "run_name"),
    ],
)
def test_databricks_tags_are_found_whatever_the_cloud_did_to_the_key(key, column):
    found = cloud_bill.databricks_tags({key: "v", "team": "data"})
    assert found[column] == "v"
    assert sum(v is not None for v in found.values()) == 1  # "team" is not a Databricks tag


def test_the_setting_is_checked_when_the_definitions_load():
    assert Settings.from_environ({"COST_ASSETS_CLOUD_BILL": "azure:exports/*.csv"}).cloud_bill == "azure:exports/*.csv"
    for bad in ("aws:exports", "focus:", "s3://bucket/focus/"):
        with pytest.raises(ConfigurationError, match="COST_ASSETS_CLOUD_BILL"):
            Settings.from_environ({"COST_ASSETS_CLOUD_BILL": bad})
