"""What the Dagster UI shows: column descriptions for every contract column, owners and tags on every asset,
a description on every asset check, the money tag that keeps the bill and the estimate apart, the top-10
tables of the roll-up, and the partition start as a setting (COST_ASSETS_PARTITION_START)."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest
import report_builders as fx
from report_builders import D1

from cost_assets import catalog
from cost_assets.config import ConfigurationError
from cost_assets.definitions import build_defs
from cost_assets.reports import rollup

EVERYTHING = {"COST_ASSETS_DUCKDB": "unused.duckdb", "COST_ASSETS_BUDGETS": "examples/budgets.yaml"}


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_defs(EVERYTHING)


def test_every_contract_column_has_a_description():
    missing = [
        f"{table}.{column}"
        for table, model in catalog.contracts().items()
        for column in model.to_schema().columns
        if not catalog.column_description(table, column)
    ]
    assert missing == []
    assert "mart.run_costs" in catalog.contracts() and "sim.run_cost_accuracy" in catalog.contracts()
    # A per-table meaning wins over the column's meaning elsewhere.
    assert catalog.column_description("mart.reconciliation", "reason").startswith("why estimate and bill differ")
    assert catalog.column_description("raw.clusters", "reason").startswith("why the row exists")


def test_every_asset_has_owners_tags_and_described_columns(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners, key
        assert node.tags["layer"] == node.group_name, key
        schema = node.metadata.get("dagster/column_schema")
        if ".".join(key.path) in catalog.contracts():
            assert schema is not None and all(column.description for column in schema.columns), key


def test_the_bill_and_the_estimate_are_labelled_apart(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()

    def node(path: str):
        return graph.get(dg.AssetKey(path.split("/")))

    assert node("mart/run_costs").tags["money"] == "estimate"
    assert node("mart/attributed_costs").tags["money"] == "databricks_bill"
    assert node("mart/cost_by_scope").tags["money"] == "databricks_bill"
    legend = node("mart/run_costs").metadata["metadata_legend"].value
    assert "`total_cost_usd` | the estimate: DBU $ + cloud VM $" in legend
    accuracy = node("mart/attributed_costs").metadata["metadata_legend"].value
    assert "`accuracy/coverage` | share of the billed $ handed to runs" in accuracy
    columns = {c.name: c.description for c in node("mart/run_costs").metadata["dagster/column_schema"].columns}
    assert "not comparable with the Databricks bill" in columns["total_cost_usd"]


def test_every_asset_check_has_a_description(defs: dg.Definitions):
    undescribed = [
        f"{spec.asset_key.to_user_string()}:{spec.name}"
        for asset in defs.assets
        for spec in asset.check_specs
        if not spec.description
    ]
    assert undescribed == []


def test_the_partition_start_is_a_setting():
    default = build_defs({"COST_ASSETS_DUCKDB": "unused.duckdb"})
    later = build_defs({"COST_ASSETS_DUCKDB": "unused.duckdb", "COST_ASSETS_PARTITION_START": "2026-01-01"})
    assert default.resolve_job_def("daily_pipeline").partitions_def.start == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    job = later.resolve_job_def("daily_pipeline")
    assert job.partitions_def.get_first_partition_key() == "2026-01-01"
    graph = later.resolve_asset_graph()
    starts = {graph.get(key).partitions_def.get_first_partition_key() for key in graph.get_all_asset_keys()}
    assert starts == {"2026-01-01"}  # every asset moved, none left on the default
    with pytest.raises(ConfigurationError, match="COST_ASSETS_PARTITION_START='tomorrow'"):
        build_defs({"COST_ASSETS_PARTITION_START": "tomorrow"})


def test_the_top_10_tables_of_a_day():
    scope_day = fx.COST_BY_SCOPE.filter(pl.col("usage_date") == D1)
    # D1's bill is 5.35: data-eng 3.10 (57.9 %), (untagged) 1.20 (22.4 %), ml 1.05 (19.6 %).
    assert rollup.top_values(scope_day, "team").splitlines()[2:] == [
        "| data-eng | $3.10 | 57.9 % | $3.00 |",
        "| (untagged) | $1.20 | 22.4 % | $0.50 |",
        "| ml | $1.05 | 19.6 % | $1.00 |",
    ]
    assert rollup.top_values(scope_day, "job", n=1).splitlines()[2:] == ["| 10 | $3.10 | 57.9 % | $3.00 |"]
    attributed_day = fx.ATTRIBUTED_COSTS.filter(pl.col("usage_date") == D1)
    # c-shared's idle 0.50 of 5.35 = 9.3 %.
    assert rollup.idle_clusters(attributed_day).splitlines()[2:] == ["| c-shared | $0.50 | 9.3 % |"]
    assert rollup.top_values(scope_day.clear(), "team") == "_nothing billed_"
