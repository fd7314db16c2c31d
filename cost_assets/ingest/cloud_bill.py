"""The cloud provider's bill: FOCUS exports (AWS, Azure, GCP) and Azure's cost details export → ``raw.cloud_costs``.

A Databricks run costs DBUs (the Databricks bill) and the VMs, disks and network it runs on (the cloud
bill). The clouds publish their bill as files: AWS Data Exports (FOCUS 1.0 / 1.2), the Azure Cost
Management FOCUS export, Google Cloud's FOCUS BigQuery view exported to files, and the Azure Cost
Management cost details export (actual or amortized). One parser reads all of them, CSV or Parquet, and
tells the shapes apart by their columns (FOCUS has ``ChargePeriodStart`` and ``BilledCost``; the Azure
export has a ``Date`` and a ``CostInBillingCurrency``), unless the setting forces one (``focus:`` /
``azure:``). Column names are matched case-insensitively (Azure's MCA export spells them in camelCase).

What the rest of the project relies on (docs/cloud-bill.md):

* **The tags Databricks puts on VMs** (``ClusterId``, ``ClusterName``, ``Vendor``, ``Creator``, ``JobId``,
  ``RunName``, ``DatabricksInstancePoolId``, ``SqlWarehouseId``) are found whatever the cloud did to the
  key: AWS prefixes user tags with ``user:``, Google Cloud labels are lower case (and may use ``-`` or
  ``_``), so a key is compared lower-cased, without ``user:``, ``-``, ``_`` and spaces.
* **A Databricks resource** has one of those cluster / pool / warehouse tags, ``Vendor=Databricks``, or
  lives in an Azure Databricks managed resource group (``/resourceGroups/databricks-rg-…``): an untagged
  VM there is still Databricks money and is never dropped.
* **The latest export of a day wins.** Exports overlap (a month-to-date file re-written every day, a
  daily file next to a monthly one). For every day and account scope (provider, billing account, sub
  account), the rows come from the one file with the newest modification time that has rows for them
  (ties: the later path in sort order); the other files' rows of that day and scope are dropped.
* **A bad file fails the whole read** with the file, the data row (1 = the first row after the header)
  and the column, so nothing half-read is stored. Only the rows of the days asked are converted (a month's
  export is read for one day on a daily run); their start is read on every row, so a bad start fails any
  day, a bad cost only the day it belongs to.

Pure: no Dagster. The raw asset (``assets/cloud.py``) calls :func:`read_exports`.
"""

import csv
import datetime as dt
import glob
import hashlib
import json
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path

import polars as pl

from cost_assets import schemas
from cost_assets.ingest.parse import InputError, canonical_json
from cost_assets.timeutil import naive_utc

FOCUS = "focus"
AZURE = "azure_cost"
# The prefixes of COST_ASSETS_CLOUD_BILL that force a format (without one, the columns decide).
PREFIXES = {"focus:": FOCUS, "azure:": AZURE}
SUFFIXES = (".csv", ".parquet")

# Logical field → the column names it may have, per format (compared case-insensitively, first found wins).
FOCUS_COLUMNS: dict[str, tuple[str, ...]] = {
    "start": ("ChargePeriodStart",),
    "end": ("ChargePeriodEnd",),
    "billed": ("BilledCost",),
    "effective": ("EffectiveCost",),
    "list": ("ListCost",),
    "currency": ("BillingCurrency",),
    "provider": ("ProviderName", "ServiceProviderName", "HostProviderName"),
    "charge_category": ("ChargeCategory",),
    "resource_id": ("ResourceId",),
    "billing_account": ("BillingAccountId",),
    "sub_account": ("SubAccountId",),
    "service_name": ("ServiceName",),
    "service_category": ("ServiceCategory",),
    "sku": ("SkuMeter", "x_SkuDescription", "ChargeDescription"),
    "resource_type": ("ResourceType", "x_ResourceType"),
    "usage_type": ("x_UsageType", "x_SkuMeterCategory"),
    "usage_detail": ("x_SkuMeterSubcategory", "x_ServiceCode"),
    "pricing_category": ("PricingCategory",),
    "commitment_type": ("CommitmentDiscountType",),
    "pricing_detail": ("x_PricingSubcategory", "x_PricingModel"),
    "quantity": ("ConsumedQuantity",),
    "tags": ("Tags",),
}
FOCUS_REQUIRED = ("start", "end", "billed", "effective", "currency", "provider", "charge_category", "resource_id")

AZURE_COLUMNS: dict[str, tuple[str, ...]] = {
    "date": ("Date", "UsageDate", "UsageDateTime"),
    "cost": ("CostInBillingCurrency", "PreTaxCost", "Cost"),
    "currency": ("BillingCurrency", "BillingCurrencyCode", "Currency"),
    "payg_cost": ("PaygCostInBillingCurrency",),
    "payg_price": ("PayGPrice",),
    "quantity": ("Quantity", "UsageQuantity"),
    "resource_id": ("ResourceId", "InstanceId"),
    "billing_account": ("BillingAccountId",),
    "sub_account": ("SubscriptionId", "SubscriptionGuid"),
    "service_name": ("MeterCategory", "ConsumedService"),
    "usage_detail": ("MeterSubCategory",),
    "sku": ("MeterName", "ProductName"),
    "resource_type": ("ResourceType", "ConsumedService"),
    "pricing_model": ("PricingModel",),
    "charge_type": ("ChargeType",),
    "tags": ("Tags",),
}
AZURE_REQUIRED = ("date", "cost", "currency", "resource_id")

# Databricks' VM tags, by their normalized key (see :func:`tag_key`) → the raw.cloud_costs column.
DATABRICKS_TAGS = {
    "clusterid": "cluster_id",
    "clustername": "cluster_name",
    "vendor": "vendor",
    "creator": "creator",
    "jobid": "job_id",
    "runname": "run_name",
    "databricksinstancepoolid": "instance_pool_id",
    "sqlwarehouseid": "sql_warehouse_id",
}
# The managed resource group an Azure Databricks workspace launches its VMs, disks and IPs into.
AZURE_MANAGED_GROUP = "/resourcegroups/databricks-rg-"

# Service category by keywords in the charge's service, meter, usage type and resource id (lower case),
# first match wins: a public IP's meter says "Virtual Network", a disk's resource is a VM's "…_OsDisk".
CATEGORY_RULES: list[tuple[str, re.Pattern]] = [
    ("public_ip", re.compile(r"public ?ip|publicipaddresses|ip address|elasticip|publicipv4|external ip")),
    (
        "managed_disk",
        re.compile(r"managed disk|/disks/|ebs:|volumeusage|/volume/|vol-|persistent disk|pd capacity|\bdisk"),
    ),
    ("network", re.compile(r"bandwidth|data ?transfer|egress|network|load ?balanc|nat gateway")),
    ("vm_compute", re.compile(r"virtual ?machine|boxusage|spotusage|instance|compute engine|\bec2\b|\bcompute\b|/i-")),
    ("storage", re.compile(r"storage|blob|\bs3\b|bucket")),
]
CHARGE_CATEGORIES = {
    "usage": "Usage",
    "purchase": "Purchase",
    "tax": "Tax",
    "credit": "Credit",
    "adjustment": "Adjustment",
    # Azure's ChargeType values
    "unusedreservation": "Usage",
    "unusedsavingsplan": "Usage",
    "refund": "Credit",
    "refundusage": "Credit",
    "roundingadjustment": "Adjustment",
}
PROVIDERS = (("microsoft", "AZURE"), ("azure", "AZURE"), ("amazon", "AWS"), ("aws", "AWS"), ("google", "GCP"))
DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d")  # never DD/MM/YYYY: 01/05 would silently mean two days


def parse_setting(value: str) -> tuple[str | None, str]:
    """``COST_ASSETS_CLOUD_BILL`` → (forced format or None, path or glob)."""
    for prefix, fmt in PREFIXES.items():
        if value.startswith(prefix):
            return fmt, value.removeprefix(prefix).strip()
    return None, value.strip()


def export_files(pattern: str) -> list[Path]:
    """The CSV and Parquet files of a path, a glob, or a folder (searched recursively), sorted."""
    path = Path(pattern)
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file()]
    else:
        found = [Path(p) for p in glob.glob(pattern, recursive=True)] or ([path] if path.is_file() else [])
    return sorted(p for p in found if p.name.lower().endswith(SUFFIXES))


def tag_key(key: str) -> str:
    """A tag key as it is compared: lower case, without AWS's ``user:`` prefix, ``-``, ``_`` and spaces."""
    key = key.strip().lower().removeprefix("user:")
    return re.sub(r"[-_ ]", "", key)


def databricks_tags(tags: Mapping[str, object]) -> dict[str, str | None]:
    """The Databricks VM tags of one resource (columns of ``raw.cloud_costs``; absent ones are None)."""
    found: dict[str, str | None] = dict.fromkeys(DATABRICKS_TAGS.values())
    for key, value in tags.items():
        column = DATABRICKS_TAGS.get(tag_key(str(key)))
        if column and value not in (None, ""):
            found[column] = str(value)
    return found


def service_category(*texts: str | None) -> str:
    """What a charge is for, from its service, meter, usage type and resource id (:data:`CATEGORY_RULES`)."""
    blob = " ".join(t.lower() for t in texts if t)
    return next((name for name, rule in CATEGORY_RULES if rule.search(blob)), "other")


def pricing_model(category: str | None, commitment: str | None, *texts: str | None) -> str:
    """on_demand / spot / reservation / savings_plan. FOCUS says it in ``PricingCategory`` (``Dynamic`` is
    spot, ``Committed`` a commitment) and ``CommitmentDiscountType`` ("Reserved Instance", "Reservation",
    "Committed Use Discount", "Savings Plan"); the other words come from Azure's ``PricingModel`` and
    ``x_PricingSubcategory`` ("Committed Spend" is a savings plan), AWS usage types (``SpotUsage``) and
    Google's "Spot Preemptible …" SKUs. Words are looked for only in those columns: a "Dynamic Public IP"
    meter is not spot."""
    category, commitment = (category or "").strip().lower(), (commitment or "").strip().lower()
    blob = " ".join(t.lower() for t in texts if t)
    if "savings" in commitment or "savings" in blob or "committed spend" in blob:
        return "savings_plan"
    if commitment or category == "committed" or "reserv" in blob or "committed usage" in blob:
        return "reservation"
    if category == "dynamic" or "spot" in blob or "preemptible" in blob:
        return "spot"
    return "on_demand"


# --- reading one file -------------------------------------------------------------------------------------


def _check_fields(path: Path) -> None:
    """Every CSV record has as many fields as the header. polars fills a short record with nulls, and a
    record missing a field in the middle would shift every later cell into the wrong column."""
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f)
        width = len(next(reader, []))
        for number, cells in enumerate(reader, start=1):
            if cells and len(cells) != width:
                raise InputError(f"{path}: data row {number}: expected {width} fields, found {len(cells)}")


def _read(path: Path) -> pl.DataFrame:
    """The file as a frame; CSV cells as text (the parser converts and names the bad cell)."""
    try:
        if path.name.lower().endswith(".parquet"):
            frame = pl.read_parquet(path)
        else:
            _check_fields(path)
            frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    except InputError:
        raise
    except Exception as e:  # polars raises many types for a broken file; all mean "not readable"
        raise InputError(f"{path}: not a readable {path.suffix.lstrip('.')} file: {str(e).splitlines()[0]}") from None
    return frame.rename({c: c.lstrip("\ufeff").strip() for c in frame.columns})


def _lookup(frame: pl.DataFrame, names: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Logical field → the frame's column holding it (case-insensitive)."""
    by_lower = {c.lower(): c for c in frame.columns}
    found = {}
    for field, candidates in names.items():
        column = next((by_lower[c.lower()] for c in candidates if c.lower() in by_lower), None)
        if column is not None:
            found[field] = column
    return found


def detect_format(columns: Iterable[str]) -> str | None:
    """``focus`` or ``azure_cost`` from a header, or None when it is neither."""
    lower = {c.lower() for c in columns}
    if {"chargeperiodstart", "billedcost"} <= lower:
        return FOCUS
    has_date = any(c.lower() in lower for c in AZURE_COLUMNS["date"])
    if has_date and any(c.lower() in lower for c in AZURE_COLUMNS["cost"]):
        return AZURE
    return None


class _Cells:
    """Typed access to one file's columns; every problem names the file, the data row and the column."""

    def __init__(self, path: Path, frame: pl.DataFrame, columns: Mapping[str, str], rows: Sequence[int] | None = None):
        self.path, self.frame, self.columns = path, frame, columns
        self.rows = list(range(frame.height)) if rows is None else list(rows)  # each row's index in the file

    def number_of(self, row: int) -> int:
        """The data row number in the file (1 = the first row after the header)."""
        return self.rows[row] + 1

    def fail(self, row: int, field: str, problem: str) -> InputError:
        return InputError(f"{self.path}: data row {self.number_of(row)}: column {self.columns[field]}: {problem}")

    def of_days(self, days: Collection[dt.date] | None, field: str, parse: Callable[[str], dt.datetime]) -> "_Cells":
        """Only the rows whose ``field`` falls on one of ``days`` (all rows for None): a month's export
        is converted for the days asked, not every day of the month on every run."""
        if days is None:
            return self
        keep = [i for i, t in enumerate(self.timestamps(field, parse)) if t.date() in days]
        return _Cells(self.path, self.frame[keep], self.columns, [self.rows[i] for i in keep])

    def text(self, field: str) -> list[str | None]:
        if field not in self.columns:
            return [None] * self.frame.height
        values = self.frame[self.columns[field]].cast(pl.String).to_list()
        return [v.strip() if v is not None and v.strip() else None for v in values]

    def required_text(self, field: str) -> list[str]:
        values = self.text(field)
        for i, v in enumerate(values):
            if v is None:
                raise self.fail(i, field, "empty")
        return values  # type: ignore[return-value]

    def number(self, field: str, required: bool = True) -> list[float | None]:
        if field not in self.columns:
            return [None] * self.frame.height
        series = self.frame[self.columns[field]]
        raw = series.cast(pl.String).to_list() if series.dtype != pl.String else series.to_list()
        out: list[float | None] = []
        for i, v in enumerate(raw):
            if v is None or not str(v).strip():
                if required:
                    raise self.fail(i, field, "empty (a cost is never assumed to be 0)")
                out.append(None)
                continue
            try:
                number = float(str(v).strip())
            except ValueError:
                raise self.fail(i, field, f"not a number: {str(v)[:40]!r}") from None
            if not math.isfinite(number):
                raise self.fail(i, field, f"not a finite number: {v!r}")
            out.append(number)
        return out

    def timestamps(self, field: str, parse: Callable[[str], dt.datetime]) -> list[dt.datetime]:
        series = self.frame[self.columns[field]]
        if series.dtype == pl.Date:
            series = series.cast(pl.Datetime("us"))
        if isinstance(series.dtype, pl.Datetime):
            if series.dtype.time_zone:
                series = series.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            values = series.to_list()
            for i, v in enumerate(values):
                if v is None:
                    raise self.fail(i, field, "empty")
            return values
        cache: dict[str, dt.datetime] = {}
        out = []
        for i, v in enumerate(series.cast(pl.String).to_list()):
            if v is None or not v.strip():
                raise self.fail(i, field, "empty")
            if v not in cache:
                try:
                    cache[v] = parse(v)
                except ValueError:
                    raise self.fail(i, field, f"not a date or timestamp: {v[:40]!r}") from None
            out.append(cache[v])
        return out

    def tags(self) -> list[dict]:
        if "tags" not in self.columns:
            return [{} for _ in range(self.frame.height)]
        cache: dict[str, dict] = {}
        out = []
        for i, v in enumerate(self.frame[self.columns["tags"]].to_list()):
            if isinstance(v, str):
                if v not in cache:
                    cache[v] = _tags_from_text(v, lambda problem, i=i: self.fail(i, "tags", problem))
                out.append(cache[v])
            else:
                out.append(_tags_from_value(v))
        return out


def _tags_from_value(value: object) -> dict:
    """A Parquet tag column: a map (a list of key/value structs), a struct, or nothing."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return {str(e["key"]): e.get("value") for e in value if isinstance(e, Mapping) and "key" in e}
    return {}


def _tags_from_text(text: str, fail: Callable[[str], InputError]) -> dict:
    """Tags as text: a JSON object, a JSON list of ``{"key", "value"}`` (Google's labels), or Azure's
    cost export form without the braces (``"ClusterId": "…","Vendor": "Databricks"``)."""
    text = text.strip()
    if not text:
        return {}
    candidate = text if text[0] in "{[" else "{" + text + "}"
    try:
        value = json.loads(candidate)
    except json.JSONDecodeError as e:
        raise fail(f"not a JSON object of tags: {e.msg} ({text[:40]!r})") from None
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items() if v is not None}
    if isinstance(value, list) and all(isinstance(e, dict) and "key" in e for e in value):
        return {str(e["key"]): e.get("value") for e in value}
    raise fail(f"not a JSON object of tags: {text[:40]!r}")


def _timestamp(text: str) -> dt.datetime:
    """A FOCUS timestamp: ISO 8601 (``Z``, an offset or none), or BigQuery's ``2026-01-05 10:00:00 UTC``."""
    text = text.strip()
    return naive_utc(text.removesuffix("UTC").strip() if text.endswith(" UTC") else text)


def _azure_date(text: str) -> dt.datetime:
    """An Azure export date: ``MM/DD/YYYY`` (EA), ``YYYY-MM-DD`` or an ISO timestamp."""
    text = text.strip()
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return naive_utc(text)


def _grain(start: dt.datetime, end: dt.datetime) -> str:
    length = end - start
    return "hour" if length <= dt.timedelta(hours=1) else "day" if length <= dt.timedelta(days=1) else "period"


def _provider(value: str, fail: Callable[[str], InputError]) -> str:
    lower = value.lower()
    for needle, cloud in PROVIDERS:
        if needle in lower:
            return cloud
    raise fail(f"unknown provider {value!r} (expected AWS, Microsoft or Google Cloud)")


def _charge_category(value: str | None, fail: Callable[[str], InputError]) -> str:
    if value is None:
        return "Usage"
    category = CHARGE_CATEGORIES.get(value.replace(" ", "").lower())
    if category is None:
        raise fail(
            f"unknown charge category {value!r} (expected one of {', '.join(sorted(set(CHARGE_CATEGORIES.values())))})"
        )
    return category


def _missing(path: Path, fmt: str, columns: Mapping[str, str], required: Sequence[str], names: Mapping) -> None:
    missing = [names[f][0] for f in required if f not in columns]
    if missing:
        raise InputError(f"{path}: header: the {fmt} export lacks column(s) {', '.join(missing)}")


def read_file(path: Path, fmt: str | None = None, days: Collection[dt.date] | None = None) -> pl.DataFrame:
    """One export file → ``raw.cloud_costs`` rows (``fmt`` None: decided by the columns), only the charges
    starting on ``days`` (None: all). A bad cell of another day's row is not looked at."""
    frame = _read(path)
    fmt = fmt or detect_format(frame.columns)
    if fmt is None:
        raise InputError(
            f"{path}: header: neither a FOCUS export (ChargePeriodStart, BilledCost, …) nor an Azure cost "
            "details export (Date, CostInBillingCurrency, …)"
        )
    export_time = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(tzinfo=None)
    rows = _focus_rows(path, frame, days) if fmt == FOCUS else _azure_rows(path, frame, days)
    for row in rows:
        row["source_file"], row["export_time"], row["export_format"] = str(path), export_time, fmt
    return costs_frame(rows)


def _focus_rows(path: Path, frame: pl.DataFrame, days: Collection[dt.date] | None) -> list[dict]:
    columns = _lookup(frame, FOCUS_COLUMNS)
    _missing(path, "FOCUS", columns, FOCUS_REQUIRED, FOCUS_COLUMNS)
    c = _Cells(path, frame, columns).of_days(days, "start", _timestamp)
    start, end = c.timestamps("start", _timestamp), c.timestamps("end", _timestamp)
    billed, effective, listed = c.number("billed"), c.number("effective"), c.number("list", required=False)
    providers, currency = c.required_text("provider"), c.required_text("currency")
    typed = ("start", "end", "billed", "effective", "list", "quantity", "tags")
    text = {f: c.text(f) for f in FOCUS_COLUMNS if f not in typed}
    quantity, tags = c.number("quantity", required=False), c.tags()
    rows = []
    for i in range(c.frame.height):
        if end[i] <= start[i]:
            raise c.fail(i, "end", f"charge period ends ({end[i]}) before it starts ({start[i]})")
        t = {f: v[i] for f, v in text.items()}
        rows.append(
            _row(
                c.number_of(i),
                t,
                provider=_provider(providers[i], lambda p, i=i: c.fail(i, "provider", p)),
                start=start[i],
                end=end[i],
                charge_category=_charge_category(t["charge_category"], lambda p, i=i: c.fail(i, "charge_category", p)),
                category=service_category(
                    t["resource_type"],
                    t["usage_type"],
                    t["usage_detail"],
                    t["service_name"],
                    t["sku"],
                    t["resource_id"],
                    t["service_category"],
                ),
                pricing=pricing_model(
                    t["pricing_category"], t["commitment_type"], t["pricing_detail"], t["usage_type"], t["sku"]
                ),
                quantity=quantity[i],
                billed=billed[i],
                effective=effective[i],
                listed=listed[i],
                currency=currency[i],
                tags=tags[i],
            )
        )
    return rows


def _azure_rows(path: Path, frame: pl.DataFrame, days: Collection[dt.date] | None) -> list[dict]:
    """The Azure cost details export: one row per resource × meter × day. Its one cost column (actual or
    amortized, as the export was defined) is both the billed and the effective cost; the list cost is the
    pay-as-you-go cost (``PaygCostInBillingCurrency``, else ``PayGPrice × Quantity``)."""
    columns = _lookup(frame, AZURE_COLUMNS)
    _missing(path, "Azure cost details", columns, AZURE_REQUIRED, AZURE_COLUMNS)
    c = _Cells(path, frame, columns).of_days(days, "date", _azure_date)
    dates = c.timestamps("date", _azure_date)
    cost, currency = c.number("cost"), c.required_text("currency")
    payg_cost, payg_price = c.number("payg_cost", required=False), c.number("payg_price", required=False)
    quantity, tags = c.number("quantity", required=False), c.tags()
    text = {
        f: c.text(f)
        for f in (
            "resource_id",
            "billing_account",
            "sub_account",
            "service_name",
            "usage_detail",
            "sku",
            "resource_type",
            "pricing_model",
            "charge_type",
        )
    }
    rows = []
    for i in range(c.frame.height):
        t = {f: v[i] for f, v in text.items()}
        start = dates[i].replace(hour=0, minute=0, second=0, microsecond=0)
        listed = payg_cost[i]
        if listed is None and payg_price[i] is not None and quantity[i] is not None:
            listed = payg_price[i] * quantity[i]
        rows.append(
            _row(
                c.number_of(i),
                t,
                provider="AZURE",
                start=start,
                end=start + dt.timedelta(days=1),
                charge_category=_charge_category(t["charge_type"], lambda p, i=i: c.fail(i, "charge_type", p)),
                category=service_category(
                    t["service_name"], t["usage_detail"], t["sku"], t["resource_id"], t["resource_type"]
                ),
                pricing=pricing_model(None, None, t["pricing_model"], t["sku"]),
                quantity=quantity[i],
                billed=cost[i],
                effective=cost[i],
                listed=listed,
                currency=currency[i],
                tags=tags[i],
            )
        )
    return rows


def _row(number: int, text: Mapping[str, str | None], *, start, end, tags, pricing, charge_category, **f) -> dict:
    """One ``raw.cloud_costs`` row (``number``: the data row in the file). ``text`` is the row's text cells
    by logical field: both formats name the resource, the accounts, the service and the SKU by the same
    fields (``resource_id``, ``billing_account``, ``sub_account``, ``service_name``, ``sku``), read here."""
    resource_id = text["resource_id"]
    found = databricks_tags(tags)
    job_id = found["job_id"]
    is_databricks = (
        any(found[k] for k in ("cluster_id", "instance_pool_id", "sql_warehouse_id"))
        or (found["vendor"] or "").lower() == "databricks"
        or AZURE_MANAGED_GROUP in (resource_id or "").lower()
    )
    return {
        "usage_date": start.date(),
        "provider": f["provider"],
        "source_row": number,
        "billing_account_id": text["billing_account"],
        "sub_account_id": text["sub_account"],
        "charge_period_start": start,
        "charge_period_end": end,
        "grain": _grain(start, end),
        "charge_category": charge_category,
        "resource_id": resource_id,
        "service_name": text["service_name"],
        "sku_description": text["sku"],
        "service_category": f["category"],
        "pricing_model": pricing if charge_category == "Usage" else "other",
        "consumed_quantity": f["quantity"],
        "billed_cost": f["billed"],
        "effective_cost": f["effective"],
        "list_cost": f["listed"],
        "currency_code": f["currency"].upper(),
        "tags": canonical_json({k: str(v) for k, v in tags.items()}),
        "is_databricks": bool(is_databricks),
        **found,
        "job_id": int(job_id) if job_id and job_id.strip().isdigit() else None,
    }


def costs_frame(rows: list[dict]) -> pl.DataFrame:
    """Rows → a frame with exactly the ``raw.cloud_costs`` columns and types (also for no rows)."""
    schema = {name: col.dtype.type for name, col in schemas.CloudCosts.to_schema().columns.items()}
    frame = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    return frame.select(list(schema))


# --- many files: the latest export of a day wins ------------------------------------------------------------

SCOPE = ["usage_date", "provider", "billing_account_id", "sub_account_id"]


def latest_wins(frame: pl.DataFrame) -> pl.DataFrame:
    """For each day and account scope, only the rows of the newest file that has rows for it (newest
    ``export_time``, ties broken by the later ``source_file`` name)."""
    if frame.height == 0:
        return frame
    newest = (
        frame.group_by(*SCOPE, "export_time", "source_file")
        .len()
        .sort("export_time", "source_file", descending=True)
        .group_by(*SCOPE, maintain_order=True)
        .first()
        .select(*SCOPE, "source_file")
    )
    return frame.join(newest, on=[*SCOPE, "source_file"], how="semi", nulls_equal=True)


def read_exports(files: Sequence[Path], days: Sequence[dt.date], fmt: str | None = None) -> pl.DataFrame:
    """Every file parsed (a bad one raises :class:`InputError` naming file, row and column), the latest
    export of each day and scope kept, the rows of ``days`` returned in a stable order."""
    frames = [read_file(p, fmt, set(days)) for p in files]
    frame = pl.concat(frames) if frames else costs_frame([])
    return latest_wins(frame.filter(pl.col("usage_date").is_in(list(days)))).sort(
        "usage_date", "source_file", "source_row"
    )


# --- what a day's cloud bill looked like (for the late cloud bill sensor) -----------------------------------


def day_fingerprints(frame: pl.DataFrame, days: Sequence[dt.date]) -> dict[str, dict]:
    """Per day (ISO): how many charges, their effective cost, the newest export they came from and a digest
    of the files and rows. A re-export, a late day or a correction changes it."""
    per_day = frame.group_by("usage_date").agg(
        pl.len().alias("charges"),
        pl.col("effective_cost").sum().alias("effective"),
        pl.col("export_time").max().alias("newest"),
        pl.concat_str("source_file", "source_row", separator="#").sort().str.join("|").alias("rows"),
    )
    found = {r["usage_date"]: r for r in per_day.iter_rows(named=True)}
    out = {}
    for day in days:
        r = found.get(day)
        out[day.isoformat()] = {
            "charges": r["charges"] if r else 0,
            "effective_cost": round(r["effective"], 9) if r else 0.0,
            "newest_export": r["newest"].isoformat() if r else None,
            "digest": hashlib.sha256((r["rows"] if r else "").encode()).hexdigest()[:16],
        }
    return out
