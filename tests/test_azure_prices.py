"""Azure Retail Prices client against a loopback server replaying two fixture pages.

``fixtures/azure_prices/page1.json`` holds Standard_DS3_v2's meters: Linux on-demand 0.229 and Spot
0.0458 (both from 2023-04-01), Windows 0.371, Low Priority 0.046 and an older on-demand 0.22 (2022); its
``NextPageLink`` points to page 2 although it holds only 5 items. Page 2 adds DevTestConsumption 0.1 and
a 1-year Reservation 1203.0 for DS3_v2, and Standard_E8ds_v4 at 0.576 on-demand / 0.1152 Spot. So, by
hand: DS3_v2 → 0.229 / 0.0458, E8ds_v4 → 0.576 / 0.1152; nothing else.
"""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cost_assets.definitions import build_defs
from cost_assets.ingest.azure_prices import (
    SOURCE,
    AzurePriceError,
    select_vm_prices,
    vm_filter,
    vm_prices,
    with_vm_prices,
)
from cost_assets.prices import load_price_sheet
from cost_assets.resources.warehouse import read_table
from tests.conftest import QUIET, sim_environ

FIXTURES = Path(__file__).parent / "fixtures" / "azure_prices"


class _Pages(BaseHTTPRequestHandler):
    """page1 without ``$skip``, page2 with it; ``{base}`` in a page becomes this server's URL."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.server.queries.append(query)
        name = "page2.json" if "$skip" in query else "page1.json"
        text = (FIXTURES / name).read_text().replace("{base}", self.server.base)
        if url.path != "/api/retail/prices":
            self.send_response(404)
            text = "{}"
        else:
            self.send_response(200)
        body = text.encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def prices_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    server.base, server.queries = f"http://127.0.0.1:{server.server_address[1]}", []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_linux_on_demand_and_spot_prices_by_hand(prices_server):
    frame = vm_prices(
        "eastus",
        ["Standard_DS3_v2", "Standard_E8ds_v4"],
        base_url=f"{prices_server.base}/api/retail/prices",
        max_requests_per_second=None,
    )
    expected = pl.DataFrame(
        {
            "node_type_id": ["Standard_DS3_v2", "Standard_E8ds_v4"],
            "vm_on_demand_per_hour": [0.229, 0.576],
            "vm_spot_per_hour": [0.0458, 0.1152],
            "currency_code": ["USD", "USD"],
            "effective_from": [dt.datetime(2023, 4, 1)] * 2,
        },
        schema=frame.schema,
    )
    assert_frame_equal(frame, expected)
    first, second = prices_server.queries
    assert first["api-version"] == ["2023-01-01-preview"] and first["meterRegion"] == ["primary"]
    assert first["$filter"] == [vm_filter("eastus", ["Standard_DS3_v2", "Standard_E8ds_v4"])]
    assert "priceType eq 'Consumption'" in first["$filter"][0]
    assert second["$skip"] == ["5"]  # followed although the first page held fewer items than a page


def test_filter_quotes_values():
    assert vm_filter("eastus", ["Standard_D4s_v3", "O'Brien"]) == (
        "serviceName eq 'Virtual Machines' and armRegionName eq 'eastus' and priceType eq 'Consumption' "
        "and (armSkuName eq 'O''Brien' or armSkuName eq 'Standard_D4s_v3')"
    )


def _item(meter: str, price: float, product: str = "Virtual Machines DSv2 Series") -> dict:
    return {
        "armSkuName": "Standard_DS3_v2",
        "type": "Consumption",
        "productName": product,
        "skuName": "DS3 v2",
        "meterName": "DS3 v2",
        "meterId": meter,
        "retailPrice": price,
        "currencyCode": "USD",
        "unitOfMeasure": "1 Hour",
        "tierMinimumUnits": 0,
        "effectiveStartDate": "2024-01-01T00:00:00Z",
    }


def test_disagreeing_meters_are_an_error_not_a_pick():
    with pytest.raises(AzurePriceError, match=r"m1.*m2.*disagree"):
        select_vm_prices([_item("m1", 0.229), _item("m2", 0.25, "Virtual Machines DSv2 Series Basic")])
    assert select_vm_prices([_item("m1", 0.229), _item("m2", 0.229)]).height == 1


def test_next_page_link_to_another_host_is_refused(prices_server, tmp_path, monkeypatch):
    page = json.loads((FIXTURES / "page1.json").read_text())
    page["NextPageLink"] = "https://elsewhere.example/api/retail/prices?$skip=5"
    patched = tmp_path / "page1.json"
    patched.write_text(json.dumps(page))
    (tmp_path / "page2.json").write_text((FIXTURES / "page2.json").read_text())
    monkeypatch.setattr(f"{__name__}.FIXTURES", tmp_path)
    with pytest.raises(AzurePriceError, match="NextPageLink leaves"):
        vm_prices("eastus", ["Standard_DS3_v2"], base_url=f"{prices_server.base}/api/retail/prices")
    assert len(prices_server.queries) == 1


def test_prices_overlay_the_instance_types_of_azure_only():
    prices = select_vm_prices([_item("m1", 0.3)])
    sheet = load_price_sheet().instance_types_frame()
    merged = with_vm_prices(sheet, prices)
    assert merged.columns == sheet.columns and merged.height == sheet.height
    ds3 = merged.filter(cloud="AZURE", node_type_id="Standard_DS3_v2").row(0, named=True)
    assert (ds3["vm_on_demand_per_hour"], ds3["vm_spot_per_hour"], ds3["source"]) == (0.3, None, SOURCE)
    untouched = merged.filter(pl.col("node_type_id") != "Standard_DS3_v2")
    assert_frame_equal(untouched, sheet.filter(pl.col("node_type_id") != "Standard_DS3_v2"))


def test_azure_region_feeds_ref_instance_types(prices_server, tmp_path):
    """COST_ASSETS_AZURE_REGION: ref/instance_types takes Azure VM prices from the Retail Prices API."""
    database = tmp_path / "w.duckdb"
    defs = build_defs(
        sim_environ(
            database,
            COST_ASSETS_AZURE_REGION="eastus",
            COST_ASSETS_AZURE_PRICES_URL=f"{prices_server.base}/api/retail/prices",
        )
    )
    assert (
        defs.resolve_job_def("daily_pipeline")
        .execute_in_process(
            run_config=QUIET,
            partition_key="2026-01-02",
            asset_selection=[dg.AssetKey(["ref", "dbu_prices"]), dg.AssetKey(["ref", "instance_types"])],
        )
        .success
    )
    rows = read_table(str(database), "ref.instance_types")
    ds3 = rows.filter(pl.col("node_type_id") == "Standard_DS3_v2").row(0, named=True)
    # From fixtures/azure_prices/page1.json: Linux on-demand 0.229, Spot 0.0458; DBU/h stays the sheet's 0.75.
    assert (ds3["vm_on_demand_per_hour"], ds3["vm_spot_per_hour"], ds3["dbu_per_hour"]) == (0.229, 0.0458, 0.75)
    assert ds3["source"] == "azure_retail_prices"
    m5 = rows.filter(pl.col("node_type_id") == "m5.xlarge").row(0, named=True)
    assert (m5["vm_on_demand_per_hour"], m5["source"]) == (0.192, "bundled")  # AWS rows untouched
