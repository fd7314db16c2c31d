"""What the Dagster UI shows about each asset beyond its code: owners, tags, and every column's meaning.

``build_defs()`` passes the assets through :func:`describe` once, so the asset modules stay about
computing. Column descriptions live in ``data/columns.yaml`` (data, not code: one line per column, with
per-table overrides where a name means something else) and are joined to each table's pandera contract
(:mod:`cost_assets.schemas`; a contract's docstring starts with its table, ``mart.run_costs: …``). The
IO manager repeats them in each materialization's ``dagster/column_schema`` (which the UI shows over the
definition's).

The ``money`` tag says which dollars a table holds, so that nobody compares them as if they were the same
thing: ``databricks_bill`` (what Databricks invoices: DBU $ only), ``estimate`` (this project's costing:
DBU $ and cloud VM $), ``bill_vs_estimate`` (both side by side), ``cloud_bill`` (the cloud provider's
invoice: VMs, disks, network).
"""

import inspect
import re
from collections.abc import Sequence
from functools import cache
from importlib.resources import files

import dagster as dg
import pandera.polars as pa
import yaml

from cost_assets import schemas

# A contract's docstring names its table first: "mart.run_costs: …" or "sim.run_cost_accuracy (…): …".
_TABLE = re.compile(r"\s*([a-z_]+\.[a-z_]+)[\s:(]")
# Who answers for a layer: the platform team runs ingestion; FinOps owns the money the marts state.
OWNERS = {
    "raw": ["team:data-platform"],
    "ref": ["team:data-platform"],
    "sim": ["team:data-platform"],
    "export": ["team:data-platform"],
    "mart": ["team:finops"],
    "report": ["team:finops"],
}
MONEY = {
    "raw/billing_usage": "databricks_bill",
    "raw/cloud_costs": "cloud_bill",
    "ref/dbu_prices": "prices",
    "ref/instance_types": "prices",
    "mart/cluster_segments": "estimate",
    "mart/estimated_costs": "estimate",
    "mart/run_costs": "estimate",
    "mart/reconciliation": "bill_vs_estimate",
    "mart/attributed_costs": "databricks_bill",
    "mart/cost_by_scope": "databricks_bill",
    "mart/serving_costs": "bill_vs_estimate",
    "mart/budget_status": "bill_then_estimate",
    "mart/cost_anomalies": "databricks_bill",
    "mart/vm_reconciliation": "bill_vs_estimate",
    "mart/attributed_cloud_costs": "cloud_bill",
    "mart/run_total_costs": "databricks_and_cloud_bill",
    "mart/observed_vm_prices": "cloud_bill",
    "report/html": "bill_vs_estimate",
}


BILL = "the Databricks bill: DBU $ only (the cloud provider bills the VMs)"
ESTIMATE = (
    "the estimate: DBU $ + cloud VM $ + disk $ (what the compute cost; never compare it with the Databricks bill)"
)
# What the numbers in each asset's materialization metadata mean, shown on the asset's page.
METADATA_LEGEND = {
    "mart/run_costs": {
        "total_cost_usd": ESTIMATE,
        "dbu_cost_usd": "the estimate's DBU $ (comparable with the Databricks bill)",
        "vm_cost_usd": "the estimate's cloud VM $ (not on the Databricks bill)",
        "disk_cost_usd": "the estimate's managed disks $ of the nodes (cloud bill; null parts: no disk price)",
        "idle_cost_usd": "the estimate (DBU + VM + disk $) of shared-cluster and warm-pool time no run used",
    },
    "mart/reconciliation": {
        "billed_usd": BILL,
        "billed_dbus": "DBUs on the Databricks bill (all record types summed)",
        "estimated_usd": "the estimate of the Databricks bill: DBU $ only, same rows",
        "reasons": "rows per reason code (ok, no_estimate, no_billing, unpriced, sku_mismatch, "
        "workspace_not_configured, correction, mismatch)",
    },
    "mart/attributed_costs": {
        "attributed_usd": "the Databricks bill handed out (DBU $); equals the day's bill",
        "accuracy/within_5pct_share": "share of the billed $ on resource-hours whose estimated DBUs are within 5 % "
        "of the billed DBUs (dollar-weighted; 1 = all)",
        "accuracy/coverage": "share of the billed $ handed to runs; the rest went to idle or unattributed",
        "accuracy/unattributed_usd": "billed $ nothing names an owner for (warehouses, hours without an estimate)",
        "accuracy/unpriced_billed_dbus": "billed DBUs whose SKU has no price: their $ is unknown, not $0",
    },
    "mart/cost_by_scope": {
        "top_10_teams": "the Databricks bill (DBU $) by team, its share of the day's bill, and the estimate of it",
        "top_10_jobs": "the same by job id ('(untagged)': idle and unattributed $)",
        "top_10_idle_clusters": "billed $ of cluster time no run used, by cluster",
    },
    "mart/serving_costs": {
        "actual_usd": "the Databricks bill of model serving (DBU $), split over requests by tokens",
        "estimated_usd": "the estimate from token prices",
    },
}


def contracts() -> dict[str, type[pa.DataFrameModel]]:
    """Every table's pandera contract by table name (``"mart.run_costs"``), from the contract's docstring."""
    found = {}
    for model in vars(schemas).values():
        if inspect.isclass(model) and issubclass(model, pa.DataFrameModel) and model.__doc__:
            table = _TABLE.match(model.__doc__)
            if table:
                found[table[1]] = model
    return found


@cache
def _descriptions() -> dict:
    return yaml.safe_load(files("cost_assets").joinpath("data", "columns.yaml").read_text(encoding="utf-8"))


def column_description(table: str, column: str) -> str | None:
    """What ``column`` of ``table`` means (the table's override, else the column's meaning everywhere)."""
    known = _descriptions()
    return known.get("tables", {}).get(table, {}).get(column) or known["columns"].get(column)


def column_schema(table: str) -> dg.TableSchema | None:
    """``table``'s columns with their contract types and descriptions; None for a table without a contract."""
    model = contracts().get(table)
    if model is None:
        return None
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=name, type=str(column.dtype), description=column_description(table, name))
            for name, column in model.to_schema().columns.items()
        ]
    )


def _described(spec: dg.AssetSpec) -> dg.AssetSpec:
    path = spec.key.to_user_string()
    tags = {"layer": spec.group_name or "default"}
    if path in MONEY:
        tags["money"] = MONEY[path]
    extra: dict = {"tags": {k: v for k, v in tags.items() if k not in spec.tags}}
    if not spec.owners and spec.group_name in OWNERS:
        extra["owners"] = OWNERS[spec.group_name]
    schema = column_schema(".".join(spec.key.path)) if len(spec.key.path) == 2 else None
    metadata: dict = {}
    if schema is not None and "dagster/column_schema" not in spec.metadata:
        metadata["dagster/column_schema"] = schema
    if path in METADATA_LEGEND:
        lines = ["| metadata | what it is |", "|---|---|"]
        lines += [f"| `{key}` | {meaning} |" for key, meaning in METADATA_LEGEND[path].items()]
        metadata["metadata_legend"] = dg.MetadataValue.md("\n".join(lines))
    if metadata:
        extra["metadata"] = metadata
    return spec.merge_attributes(**extra)


def describe(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """``assets`` with owners (by layer), tags (``layer``, ``money``), column schemas and, for the tables whose
    metadata holds money, a legend of what each number is."""
    return [asset.map_asset_specs(_described) for asset in assets]


def descriptions_by_name(schema: object) -> dict[str, str]:
    """Column name → description of a ``dg.TableSchema`` (empty for anything else)."""
    if not isinstance(schema, dg.TableSchema):
        return {}
    return {column.name: column.description for column in schema.columns if column.description}
