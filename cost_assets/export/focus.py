"""The FOCUS 1.3 export: the attributed ledger as FOCUS Cost and Usage rows, one file pair per day.

Pure polars, no Dagster. The column rules (names, FOCUS types, nullability, allowed values) are data,
``cost_assets/data/focus_columns.yaml``, taken from the FOCUS 1.3 specification; :func:`violations`
checks a frame against them and the export refuses to write a day that breaks one.

**Rows.** Every ``mart/attributed_costs`` row is an *allocated charge* of its *origin charge*, the billed
resource × hour × SKU (FOCUS "split cost allocation"): handed to a run, to a cluster's idle time, or left
``unattributed`` (the unallocated portion: ``AllocatedResourceId`` null). The allocated rows of one
origin charge sum to it, because attribution conserves the bill per grain row. The method is named in
``AllocatedMethodId``:

* ``cost_assets/estimate-share`` — the estimate's shares of the cluster-hour (by estimated DBUs; by
  estimated $ when there are none; by runtime when neither);
* ``cost_assets/bill-metadata`` — no estimate for the resource-hour; the bill names the job run;
* ``cost_assets/unattributed`` — nothing says whose it is (``x_AttributionReason`` says why).

``AllocatedMethodDetails`` carries ``{"Elements": [{"AllocatedRatio", "UsageUnit": "DBU",
"UsageQuantity"}]}``: the row's share of the origin charge (its $ over the charge's $; its DBUs when the
charge is $0; equal shares when both are 0), so the ratios of one origin charge sum to 1.

**Corrections.** An origin charge with RETRACTION / RESTATEMENT records in ``raw/billing_usage`` is cut
in two per allocated row: the ORIGINAL records' part (``ChargeClass`` null) and the corrections' part
(``ChargeClass = 'Correction'``), each the row's amount times that part's share of the charge's net
quantity; the two add up to the row. When the net is 0 (an hour retracted whole), the row is one
``Correction`` row of $0. FOCUS reserves ``Correction`` for corrections of an already invoiced period;
the Databricks bill does not say when a period was invoiced, so every correction record is marked.

**Money.** ``BilledCost`` = ``EffectiveCost`` = the attributed (effective-price) $; ``ListCost`` and
``ContractedCost`` are the row's DBUs times the list and contract $/DBU of ``ref/dbu_prices`` for the
hour. FOCUS has no null cost: rows the bill could not price (``billed_cost_usd`` null) are left out of
the file and counted by :func:`unpriced_rows` — never written as $0.

**Who.** ``ServiceProviderName`` / ``ProviderName`` / ``PublisherName``: Databricks;
``HostProviderName`` and ``InvoiceIssuerName`` by cloud (Azure Databricks is invoiced by Microsoft);
``SubAccountId``: the workspace; ``BillingAccountId``: the bill's account id (the workspace when the bill
names none); ``Tags``: the resolved team / tenant / project / cost_center.
"""

import datetime as dt
import importlib.resources
import json
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from cost_assets.costing.frames import Frame, lazy
from cost_assets.costing.reconcile import GRAIN, resource_of_usage
from cost_assets.vocabulary import CURRENCY, TAG_DIMENSIONS

PROVIDER = "Databricks"
METHOD_SHARE = "cost_assets/estimate-share"
METHOD_BILL = "cost_assets/bill-metadata"
METHOD_UNATTRIBUTED = "cost_assets/unattributed"
# FOCUS data types → the polars type a column is written with (Decimal as 64-bit float; JSON as a string).
POLARS_TYPES = {
    "String": pl.String,
    "Decimal": pl.Float64,
    "DateTime": pl.Datetime("us", "UTC"),
    "JSON": pl.String,
}
DECIMALS = 9
# FOCUS DateTimeFormat: ISO 8601 in UTC with a "Z".
CSV_DATETIME = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Rules:
    """``focus_columns.yaml``: the columns in order with their rules, the service and cloud mappings."""

    version: str
    columns: list[dict[str, Any]]
    services: dict[str, dict[str, str]]
    clouds: dict[str, dict[str, str]]

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    @property
    def schema(self) -> dict[str, pl.DataType]:
        return {c["name"]: POLARS_TYPES[c["type"]] for c in self.columns}


@cache
def rules() -> Rules:
    """The bundled column rules (read once)."""
    text = (importlib.resources.files("cost_assets") / "data" / "focus_columns.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return Rules(str(data["focus_version"]), data["columns"], data["services"], data["clouds"])


def violations(frame: pl.DataFrame, spec: Rules | None = None) -> list[str]:
    """Every way ``frame`` breaks the column rules, one line each (empty: it conforms)."""
    spec = spec or rules()
    problems = []
    if frame.columns != spec.names:
        missing = [n for n in spec.names if n not in frame.columns]
        extra = [n for n in frame.columns if n not in spec.names]
        problems.append(f"columns differ from the FOCUS rules: missing {missing}, unexpected {extra}")
    for column in spec.columns:
        name = column["name"]
        if name not in frame.columns:
            continue
        values = frame[name]
        if values.dtype != POLARS_TYPES[column["type"]]:
            problems.append(f"{name}: type {values.dtype}, expected {column['type']} ({POLARS_TYPES[column['type']]})")
        if not column["nullable"] and values.null_count():
            problems.append(f"{name}: {values.null_count()} null value(s); FOCUS allows none")
        if "allowed" in column:
            bad = sorted(set(values.drop_nulls().cast(pl.String).to_list()) - set(column["allowed"]))
            if bad:
                problems.append(f"{name}: value(s) {bad} not allowed; allowed: {column['allowed']}")
        if column["type"] == "JSON":
            for text in values.drop_nulls().to_list():
                try:
                    ok = isinstance(json.loads(text), dict)
                except ValueError:
                    ok = False
                if not ok:
                    problems.append(f"{name}: {text[:60]!r} is not a JSON object")
                    break
    return problems


def _corrections(billing: Frame) -> pl.LazyFrame:
    """Per origin charge (the reconciliation grain): the share of its net quantity from ORIGINAL records
    and from corrections (RETRACTION + RESTATEMENT), and whether it has any correction at all."""
    return (
        lazy(billing)
        .with_columns(*resource_of_usage(), pl.col("usage_start_time").dt.truncate("1h").alias("hour_start"))
        .group_by(GRAIN)
        .agg(
            pl.col("usage_quantity").sum().alias("_net"),
            pl.col("usage_quantity").filter(pl.col("record_type") == "ORIGINAL").sum().alias("_original"),
            (pl.col("record_type") != "ORIGINAL").any().alias("_has_correction"),
        )
    )


def _unit_prices(attributed: pl.LazyFrame, dbu_prices: Frame, cloud: str) -> pl.LazyFrame:
    """List and contract $/DBU (and the price window's id) of each row's SKU at its hour."""
    prices = (
        lazy(dbu_prices)
        .filter(pl.col("currency_code") == CURRENCY, pl.col("cloud") == cloud)
        .select(
            "sku_name",
            pl.col("price_start_time").alias("_from"),
            pl.col("price_end_time").alias("_to"),
            pl.col("list_price").alias("ListUnitPrice"),
            pl.col("contract_price").alias("ContractedUnitPrice"),
            pl.format("{}/{}/{}", "cloud", "sku_name", pl.col("price_start_time").dt.strftime(CSV_DATETIME)).alias(
                "SkuPriceId"
            ),
        )
        .unique(["sku_name", "_from"])
        .sort("_from")
    )
    joined = attributed.sort("hour_start").join_asof(
        prices, left_on="hour_start", right_on="_from", by="sku_name", strategy="backward", check_sortedness=False
    )
    in_window = pl.col("_to").is_null() | (pl.col("hour_start") < pl.col("_to"))
    return joined.with_columns(
        *[pl.when(in_window).then(pl.col(c)).alias(c) for c in ("ListUnitPrice", "ContractedUnitPrice", "SkuPriceId")]
    ).drop("_from", "_to")


def _tags_json(tags: dict[str, str | None]) -> str:
    """The tags that are set, as a canonical JSON object (FOCUS KeyValueFormat)."""
    return json.dumps({k: v for k, v in tags.items() if v is not None}, sort_keys=True, separators=(",", ":"))


def unpriced_rows(attributed: Frame) -> int:
    """Attributed rows the bill could not price: not exportable (FOCUS costs are never null)."""
    return lazy(attributed).filter(pl.col("billed_cost_usd").is_null()).select(pl.len()).collect().item()


def _parts(attributed: Frame, billing: Frame) -> pl.LazyFrame:
    """The priced attributed rows with their share of the origin charge (``_ratio``), their bill account,
    and cut into ORIGINAL / ``Correction`` parts (``ChargeClass``) with the part's $ and DBUs (``_cost``,
    ``_dbus``); see the module doc."""
    rows = lazy(attributed).filter(pl.col("billed_cost_usd").is_not_null())
    # The share of the origin charge: by $, by DBUs when the charge is $0, equal when both are 0.
    cost_total, dbu_total = pl.col("billed_cost_usd").sum().over(GRAIN), pl.col("billed_dbus").sum().over(GRAIN)
    ratio = (
        pl.when(cost_total != 0)
        .then(pl.col("billed_cost_usd") / cost_total)
        .when(dbu_total != 0)
        .then(pl.col("billed_dbus") / dbu_total)
        .otherwise(1.0 / pl.len().over(GRAIN).cast(pl.Float64))
    )
    accounts = lazy(billing).group_by("workspace_id").agg(pl.col("account_id").drop_nulls().min())
    rows = (
        rows.with_columns(ratio.alias("_ratio"))
        .join(_corrections(billing), on=GRAIN, how="left", nulls_equal=True)
        .join(accounts, on="workspace_id", how="left", nulls_equal=True)
    )
    has_correction = pl.col("_has_correction").fill_null(False)
    original_share = (
        pl.when(~has_correction)
        .then(1.0)
        .when(pl.col("_net") != 0)
        .then(pl.col("_original") / pl.col("_net"))
        .otherwise(0.0)
    )
    parts = pl.concat(
        [
            rows.with_columns(original_share.alias("_part"), pl.lit(None, pl.String).alias("ChargeClass")),
            rows.filter(has_correction).with_columns(
                (1.0 - original_share).alias("_part"), pl.lit("Correction").alias("ChargeClass")
            ),
        ]
    ).filter((pl.col("_part") != 0) | pl.col("ChargeClass").is_not_null())
    return parts.with_columns(
        (pl.col("billed_cost_usd") * pl.col("_part")).alias("_cost"),
        (pl.col("billed_dbus") * pl.col("_part")).alias("_dbus"),
    )


def _allocation() -> list[pl.Expr]:
    """The split cost allocation columns and ``Tags`` of a part (see the module doc)."""
    consumer, is_run = pl.col("consumer"), pl.col("consumer") == "run"
    from_bill = is_run & ((pl.col("resource_type") == "serverless") | (pl.col("reason") == "no_estimate"))
    method = (
        pl.when(consumer == "unattributed")
        .then(pl.lit(METHOD_UNATTRIBUTED))
        .when(from_bill)
        .then(pl.lit(METHOD_BILL))
        .otherwise(pl.lit(METHOD_SHARE))
    )
    task = pl.when(pl.col("task_run_id").is_not_null()).then(pl.format("/task:{}", "task_run_id")).otherwise(pl.lit(""))
    has_run = is_run & pl.col("run_id").is_not_null()
    resource_id = (
        pl.when(consumer == "idle")
        .then(pl.format("{}/idle", "resource_id"))
        .when(has_run)
        .then(pl.format("run:{}", "run_id") + task)
        .when(is_run)
        .then(pl.format("job:{}", "job_id"))
    )
    resource_name = (
        pl.when(consumer == "idle")
        .then(pl.format("idle time of {}", "resource_id"))
        .when(has_run)
        .then(pl.format("run {} of job {}", "run_id", pl.col("job_id").cast(pl.String).fill_null("?")))
        .when(is_run)
        .then(pl.format("job {}", "job_id"))
    )
    details = pl.concat_str(
        pl.lit('{"Elements":[{"AllocatedRatio":'),
        pl.col("_ratio").round(12).cast(pl.String),
        pl.lit(',"UsageUnit":"DBU","UsageQuantity":'),
        pl.col("_dbus").round(DECIMALS).cast(pl.String),
        pl.lit("}]}"),
    )
    return [
        method.alias("AllocatedMethodId"),
        details.alias("AllocatedMethodDetails"),
        resource_id.alias("AllocatedResourceId"),
        resource_name.alias("AllocatedResourceName"),
        pl.lit(None, pl.String).alias("AllocatedTags"),
        pl.struct(TAG_DIMENSIONS).map_elements(_tags_json, return_dtype=pl.String).alias("Tags"),
    ]


def focus_rows(
    attributed: Frame,
    billing: Frame,
    dbu_prices: Frame,
    *,
    cloud: str,
    region: str | None = None,
) -> pl.DataFrame:
    """The FOCUS rows of the attributed ledger given (any days), in the rules' column order, sorted."""
    spec, cloud = rules(), cloud.upper()
    parts = _unit_prices(_parts(attributed, billing), dbu_prices, cloud)
    service = {k: v["service"] for k, v in spec.services.items()}
    category = {k: v["category"] for k, v in spec.services.items()}
    resource_kind = {k: v["resource_type"] for k, v in spec.services.items()}
    month = pl.col("hour_start").dt.truncate("1mo")
    utc = pl.Datetime("us", "UTC")
    return (
        parts.with_columns(
            pl.col("_cost").alias("BilledCost"),
            pl.col("_cost").alias("EffectiveCost"),
            (pl.col("_dbus") * pl.col("ListUnitPrice")).alias("ListCost"),
            (pl.col("_dbus") * pl.col("ContractedUnitPrice")).alias("ContractedCost"),
            pl.coalesce("account_id", "workspace_id", pl.lit("(unknown)")).alias("BillingAccountId"),
            pl.lit(None, pl.String).alias("BillingAccountName"),
            pl.lit(CURRENCY).alias("BillingCurrency"),
            month.dt.offset_by("1mo").cast(utc).alias("BillingPeriodEnd"),
            month.cast(utc).alias("BillingPeriodStart"),
            pl.lit("Usage").alias("ChargeCategory"),
            pl.format("{} DBUs of {} {}", "sku_name", "resource_type", "resource_id").alias("ChargeDescription"),
            pl.lit("Usage-Based").alias("ChargeFrequency"),
            (pl.col("hour_start") + dt.timedelta(hours=1)).cast(utc).alias("ChargePeriodEnd"),
            pl.col("hour_start").cast(utc).alias("ChargePeriodStart"),
            pl.col("_dbus").alias("ConsumedQuantity"),
            pl.lit("DBU").alias("ConsumedUnit"),
            pl.lit(spec.clouds[cloud]["host"]).alias("HostProviderName"),
            pl.lit(spec.clouds[cloud]["invoice_issuer"]).alias("InvoiceIssuerName"),
            pl.lit("Standard").alias("PricingCategory"),
            pl.col("_dbus").alias("PricingQuantity"),
            pl.lit("DBU").alias("PricingUnit"),
            pl.lit(PROVIDER).alias("ProviderName"),
            pl.lit(PROVIDER).alias("PublisherName"),
            pl.lit(region, pl.String).alias("RegionId"),
            pl.col("resource_id").alias("ResourceId"),
            pl.lit(None, pl.String).alias("ResourceName"),
            pl.col("resource_type").replace_strict(resource_kind, return_dtype=pl.String).alias("ResourceType"),
            pl.col("resource_type").replace_strict(category, return_dtype=pl.String).alias("ServiceCategory"),
            pl.col("resource_type").replace_strict(service, return_dtype=pl.String).alias("ServiceName"),
            pl.lit(PROVIDER).alias("ServiceProviderName"),
            pl.col("sku_name").alias("SkuId"),
            pl.col("workspace_id").alias("SubAccountId"),
            *_allocation(),
            pl.col("consumer").alias("x_Consumer"),
            pl.col("run_id").cast(pl.String).alias("x_RunId"),
            pl.col("task_run_id").cast(pl.String).alias("x_TaskRunId"),
            pl.col("job_id").cast(pl.String).alias("x_JobId"),
            pl.col("reason").alias("x_AttributionReason"),
        )
        .select([pl.col(name).cast(dtype) for name, dtype in spec.schema.items()])
        # The marts' floats can differ in their last bits between two materializations of a day (summation
        # order); rounded to 1e-9, the same day writes the same files.
        .with_columns(pl.col(pl.Float64).round(DECIMALS))
        .sort(
            "ChargePeriodStart",
            "SubAccountId",
            "ResourceId",
            "SkuId",
            "ChargeClass",
            "x_Consumer",
            "x_RunId",
            "x_TaskRunId",
            "x_JobId",
            nulls_last=False,
        )
        .collect()
    )


def write_day(frame: pl.DataFrame, directory: str | Path, day: dt.date) -> tuple[Path, Path]:
    """Write ``focus_<day>.parquet`` and ``focus_<day>.csv`` under ``directory``, each atomically (a
    temporary file in the same directory, then a rename): a reader sees the old file or the new one,
    never half of one, and a day written again is replaced whole."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    paths = (target / f"focus_{day.isoformat()}.parquet", target / f"focus_{day.isoformat()}.csv")
    for path in paths:
        handle, temporary = tempfile.mkstemp(dir=target, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        try:
            if path.suffix == ".parquet":
                frame.write_parquet(temporary, statistics=False)
            else:
                frame.write_csv(temporary, datetime_format=CSV_DATETIME)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    return paths
