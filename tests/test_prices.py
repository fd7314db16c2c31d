"""The price sheet: bundled data, lookups, effective windows, overrides and error messages.

Expected numbers are written by hand from the published prices (sources named in ``cost_assets/data/prices.yaml``),
not read back from code.
"""

import datetime as dt
import textwrap
from pathlib import Path

import polars as pl
import pytest

from cost_assets.prices import PriceSheetError, UnknownPriceError, load_price_sheet
from cost_assets.schemas import DbuPrices, InstanceTypes


@pytest.fixture(scope="module")
def sheet():
    return load_price_sheet()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- bundled
def test_bundled_frames_validate_against_the_contracts(sheet):
    instances = InstanceTypes.validate(sheet.instance_types_frame())
    prices = DbuPrices.validate(sheet.dbu_prices_frame())

    assert instances.height >= 30
    assert set(instances["cloud"]) >= {"AZURE", "AWS"}
    assert instances.schema["effective_from"] == pl.Datetime("us")
    assert prices.schema["price_start_time"] == pl.Datetime("us")
    assert set(prices["source"]) == {"bundled"}
    assert set(prices["usage_unit"]) == {"DBU"}
    assert set(prices["currency_code"]) == {"USD"}
    # no contract discounts by default: contract and effective prices are the list price
    assert (prices["effective_price"] == prices["list_price"]).all()


def test_bundled_sheet_has_every_premium_workload(sheet):
    skus = set(sheet.dbu_prices_frame().filter(pl.col("cloud") == "AWS")["sku_name"])
    assert {
        "PREMIUM_JOBS_COMPUTE",
        "PREMIUM_JOBS_COMPUTE_(PHOTON)",
        "PREMIUM_ALL_PURPOSE_COMPUTE",
        "PREMIUM_ALL_PURPOSE_COMPUTE_(PHOTON)",
        "PREMIUM_JOBS_LIGHT_COMPUTE",
        "PREMIUM_DLT_CORE_COMPUTE",
        "PREMIUM_DLT_PRO_COMPUTE",
        "PREMIUM_DLT_ADVANCED_COMPUTE",
        "PREMIUM_SQL_COMPUTE",
        "PREMIUM_SQL_PRO_COMPUTE",
        "PREMIUM_SERVERLESS_SQL_COMPUTE",
        "PREMIUM_JOBS_SERVERLESS_COMPUTE",
        "PREMIUM_SERVERLESS_REAL_TIME_INFERENCE",
    } <= skus


def test_token_prices_frame(sheet):
    tokens = sheet.token_prices_frame()
    assert tokens.columns == ["model", "input_per_million", "output_per_million", "currency_code"]
    llama = tokens.filter(pl.col("model") == "databricks-meta-llama-3-3-70b-instruct").row(0, named=True)
    assert llama["input_per_million"] == pytest.approx(0.50)
    assert llama["output_per_million"] == pytest.approx(1.50)


# ------------------------------------------------------------------------------------------- lookups
AT = dt.datetime(2024, 6, 19, 12)


def test_node_lookup_uses_reference_numbers(sheet):
    ds3 = sheet.node("azure", "Standard_DS3_v2", AT)  # any case for the cloud
    assert (ds3.dbu_per_hour, ds3.vcpus, ds3.memory_gb) == (0.75, 4.0, 14.0)
    assert ds3.vm_on_demand_per_hour == pytest.approx(0.23)
    assert 0 < ds3.vm_spot_per_hour < ds3.vm_on_demand_per_hour

    m5 = sheet.node("AWS", "m5.xlarge", AT)
    assert m5.dbu_per_hour == pytest.approx(0.69)
    assert m5.vm_on_demand_per_hour == pytest.approx(0.192)
    assert sheet.node("AZURE", "Standard_E8ds_v4", AT).dbu_per_hour == pytest.approx(2.0)
    assert sheet.node("Aws", "r5.4xlarge", AT).dbu_per_hour == pytest.approx(3.60)


def test_sku_lookup(sheet):
    jobs = sheet.sku("AZURE", "premium", "jobs", photon=False, at=AT)
    assert jobs.sku_name == "PREMIUM_JOBS_COMPUTE"
    assert jobs.list_price == pytest.approx(0.30)
    assert jobs.effective_price == pytest.approx(0.30)
    assert jobs.photon_dbu_factor == 1.0

    ap = sheet.sku("aws", "PREMIUM", "all_purpose", photon=True, at=AT)
    assert ap.sku_name == "PREMIUM_ALL_PURPOSE_COMPUTE_(PHOTON)"
    assert ap.list_price == pytest.approx(0.55)  # Photon: same $/DBU ...
    assert ap.photon_dbu_factor == pytest.approx(2.0)  # ... but twice the DBUs per hour


def test_jobs_photon_factor_changes_on_a_half_open_window(sheet):
    def factor(at: dt.datetime) -> float:
        return sheet.sku("AZURE", "PREMIUM", "jobs", photon=True, at=at).photon_dbu_factor

    assert factor(dt.datetime(2024, 12, 31, 23, 59, 59)) == pytest.approx(2.9)
    assert factor(dt.datetime(2025, 1, 1)) == pytest.approx(2.5)  # the change instant is in the new window
    # an aware time is converted to UTC first: 01:00 at +02:00 is 2024-12-31 23:00 UTC
    assert factor(dt.datetime(2025, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == pytest.approx(2.9)

    rows = (
        sheet.dbu_prices_frame()
        .filter((pl.col("cloud") == "AZURE") & (pl.col("sku_name") == "PREMIUM_JOBS_COMPUTE_(PHOTON)"))
        .sort("price_start_time")
    )
    assert rows["price_end_time"].to_list() == [dt.datetime(2025, 1, 1), None]
    assert rows["photon_dbu_factor"].to_list() == [2.9, 2.5]


@pytest.mark.parametrize(
    "lookup, words",
    [
        (lambda s: s.node("AWS", "x9.mega", AT), ["x9.mega", "AWS"]),
        (lambda s: s.node("AWS", "m5.xlarge", dt.datetime(2019, 1, 1)), ["m5.xlarge", "2019-01-01"]),
        (lambda s: s.sku("AWS", "ENTERPRISE", "sql_pro", photon=False, at=AT), ["ENTERPRISE", "sql_pro"]),
        (lambda s: s.sku("AZURE", "PREMIUM", "jobs_light", photon=True, at=AT), ["jobs_light", "Photon"]),
    ],
)
def test_unknown_lookups_raise_key_error_with_a_clear_message(sheet, lookup, words):
    with pytest.raises(KeyError) as info:
        lookup(sheet)
    assert isinstance(info.value, UnknownPriceError)
    for word in words:
        assert word in str(info.value)


# ------------------------------------------------------------------------------------------ overrides
def test_overrides_replace_and_add_rows(tmp_path):
    path = write(
        tmp_path,
        "my_prices.yaml",
        """\
        instance_types:
          # same key as the bundled row (AWS, m5.xlarge, 2020-01-01): replaces it
          - {cloud: aws, node_type_id: m5.xlarge, vcpus: 4, memory_gb: 16, dbu_per_hour: 0.69,
             vm_on_demand_per_hour: 0.25, effective_from: 2020-01-01}
          # new node type: added
          - {cloud: AZURE, node_type_id: Standard_D32ds_v5, vcpus: 32, memory_gb: 128, dbu_per_hour: 8.0,
             vm_on_demand_per_hour: 1.808, vm_spot_per_hour: 0.36, effective_from: 2024-01-01}
        dbu_prices:
          # a price change: end the bundled window, then add the new price
          - {cloud: AZURE, sku_name: PREMIUM_ALL_PURPOSE_COMPUTE, workload: all_purpose, list_price: 0.55,
             price_start_time: 2020-01-01, price_end_time: 2025-06-01}
          - {cloud: AZURE, sku_name: PREMIUM_ALL_PURPOSE_COMPUTE, workload: all_purpose, list_price: 0.50,
             price_start_time: 2025-06-01}
        contract_discounts:
          - {cloud: azure, workload: jobs, discount: 0.10}
        """,
    )
    sheet = load_price_sheet(path)
    instances = InstanceTypes.validate(sheet.instance_types_frame())
    prices = DbuPrices.validate(sheet.dbu_prices_frame())

    bundled = load_price_sheet()
    assert instances.height == bundled.instance_types_frame().height + 1
    assert prices.height == bundled.dbu_prices_frame().height + 1

    m5 = sheet.node("AWS", "m5.xlarge", AT)
    assert m5.vm_on_demand_per_hour == pytest.approx(0.25)
    assert m5.vm_spot_per_hour is None  # a full row replaces: the bundled spot price is gone
    d32 = sheet.node("AZURE", "Standard_D32ds_v5", dt.datetime(2024, 1, 1))
    assert (d32.dbu_per_hour, d32.vcpus) == (8.0, 32.0)
    with pytest.raises(KeyError):
        sheet.node("AZURE", "Standard_D32ds_v5", dt.datetime(2023, 12, 31))

    assert sheet.sku("AZURE", "PREMIUM", "all_purpose", False, dt.datetime(2025, 5, 31)).list_price == 0.55
    assert sheet.sku("AZURE", "PREMIUM", "all_purpose", False, dt.datetime(2025, 6, 1)).list_price == 0.50

    # the workload discount reaches every jobs SKU of the cloud, Photon included: 0.30 × 0.9 = 0.27
    jobs = sheet.sku("AZURE", "PREMIUM", "jobs", True, dt.datetime(2025, 2, 1))
    assert (jobs.list_price, jobs.contract_discount) == (0.30, 0.10)
    assert jobs.effective_price == pytest.approx(0.27)
    assert sheet.sku("AWS", "PREMIUM", "jobs", False, AT).effective_price == pytest.approx(0.15)

    sources = dict(zip(instances["node_type_id"], instances["source"], strict=True))
    assert sources["m5.xlarge"] == "overrides:my_prices.yaml"
    assert sources["Standard_D32ds_v5"] == "overrides:my_prices.yaml"
    assert sources["Standard_DS3_v2"] == "bundled"


def test_empty_overrides_file_changes_nothing(tmp_path):
    sheet = load_price_sheet(write(tmp_path, "empty.yaml", "# nothing yet\n"))
    assert sheet.dbu_prices_frame().equals(load_price_sheet().dbu_prices_frame())


# ------------------------------------------------------------------------------------------ bad input
NODE = "cloud: AZURE, node_type_id: Standard_X, vcpus: 4, memory_gb: 16, dbu_per_hour: 1.0"


@pytest.mark.parametrize(
    "text, key_path, problem",
    [
        (
            f"instance_types:\n  - {{{NODE}, vm_on_demand_per_hour: 0.2, vm_price: 0.2, effective_from: 2024-01-01}}\n",
            "instance_types[0].vm_price",
            "unknown field",
        ),
        (
            f"instance_types:\n  - {{{NODE}, vm_on_demand_per_hour: 0.2, effective_from: 2024-01-01}}\n"
            f"  - {{{NODE}, vm_on_demand_per_hour: -0.5, effective_from: 2024-02-01}}\n",
            "instance_types[1].vm_on_demand_per_hour",
            "negative",
        ),
        (
            f"instance_types:\n  - {{{NODE}, vm_on_demand_per_hour: 0.2, effective_from: 2024-13-01}}\n",
            "instance_types[0].effective_from",
            "malformed date '2024-13-01'",
        ),
        (
            f"instance_types:\n  - {{{NODE}, vm_on_demand_per_hour: 0.2, effective_from: 2024-01-01,"
            " effective_to: 2023-01-01}\n",
            "instance_types[0].effective_to",
            "window end before start",
        ),
        (
            "dbu_prices:\n  - {cloud: azur, sku_name: PREMIUM_JOBS_COMPUTE, workload: jobs, list_price: 0.3,"
            " price_start_time: 2020-01-01}\n",
            "dbu_prices[0].cloud",
            "unknown cloud 'azur'",
        ),
        (
            "dbu_prices:\n  - {cloud: AWS, sku_name: PREMIUM_JOBS_COMPUTE_(PHOTON), workload: jobs,"
            " list_price: 0.15, price_start_time: 2026-01-01}\n",
            "dbu_prices[0].photon_dbu_factor",
            "required for a Photon SKU",
        ),
        (
            "token_prices:\n  - {model: m1, input_per_million: 1.0, output_per_million: 2.0}\n"
            "  - {model: m1, input_per_million: 1.5, output_per_million: 2.5}\n",
            "token_prices[1]",
            "duplicate key",
        ),
        # a new price without ending the bundled window: two answers for one time
        (
            "dbu_prices:\n  - {cloud: AWS, sku_name: PREMIUM_JOBS_COMPUTE, workload: jobs, list_price: 0.12,"
            " price_start_time: 2026-01-01}\n",
            "dbu_prices[0]",
            "overlaps",
        ),
        (
            "contract_discounts:\n  - {cloud: AWS, workload: jobs, discount: 1.0}\n",
            "contract_discounts[0].discount",
            "must be < 1",
        ),
    ],
)
def test_bad_overrides_name_file_key_path_and_problem(tmp_path, text, key_path, problem):
    path = write(tmp_path, "bad_prices.yaml", text)
    with pytest.raises(PriceSheetError) as info:
        load_price_sheet(path)
    message = str(info.value)
    assert "bad_prices.yaml" in message
    assert f"{key_path}: " in message
    assert problem in message


def test_duplicate_yaml_key_and_missing_file_are_price_sheet_errors(tmp_path):
    path = write(
        tmp_path, "dup.yaml", "token_prices:\n  - {model: m, model: n, input_per_million: 1, output_per_million: 1}\n"
    )
    with pytest.raises(PriceSheetError, match=r"dup\.yaml: invalid YAML at line 2.*duplicate key 'model'"):
        load_price_sheet(path)
    with pytest.raises(PriceSheetError, match=r"nope\.yaml: cannot read"):
        load_price_sheet(tmp_path / "nope.yaml")
