"""The price sheet: DBU prices, node types and their managed disks, contract discounts and token prices, from YAML.

A bundled sheet ships in ``cost_assets/data/prices.yaml``. A second YAML file (the one named by
``COST_ASSETS_PRICES``; the caller resolves the variable and passes the path) can override and extend it.
Everything is validated before anything is returned, so a bad file raises :class:`PriceSheetError`
(naming the file, the key path such as ``instance_types[3].vm_on_demand_per_hour`` and the problem) and
the caller stores nothing.

YAML format
-----------
Five top-level sections, each a list of rows. Every section is optional; unknown sections and unknown
fields are errors (a typo must not silently drop a price). All money is USD list price.
``cloud`` is ``AZURE``, ``AWS`` or ``GCP`` in any case. Times are ``YYYY-MM-DD`` or ISO 8601 datetimes;
a time without an offset is UTC, one with an offset is converted to UTC. Windows are half-open
``[start, end)``; an omitted end means "still in force".

``instance_types`` (key: cloud + node_type_id + effective_from)::

    - cloud: AZURE
      node_type_id: Standard_DS3_v2
      vcpus: 4                        # > 0
      memory_gb: 14                   # > 0
      dbu_per_hour: 0.75              # > 0, non-Photon DBU/h (Photon multiplies by the SKU's factor)
      vm_on_demand_per_hour: 0.23     # >= 0, VM $/h
      vm_spot_per_hour: 0.046         # >= 0, optional (null: no spot price known)
      disk_type: P10                  # optional: the managed disk attached to every node (a disk_prices
                                      # row of the cloud); omitted: the node's disk $ is unknown (flagged)
      disks_per_node: 1               # optional, default 1 (> 0)
      effective_from: 2020-01-01
      effective_to: 2026-01-01        # optional

``disk_prices`` (key: cloud + disk_type)::

    - {cloud: AZURE, disk_type: P10, size_gb: 128, per_disk_month: 19.71}

    ``per_disk_month`` (>= 0) is the disk's price for a month; a node pays it per hour of a
    :data:`HOURS_PER_MONTH`-hour month for as long as its VM exists (a disk bills from the VM's request to
    its release, start-up and tear-down included). ``size_gb`` (> 0) is informational.

``dbu_prices`` (key: cloud + sku_name + price_start_time)::

    - cloud: AZURE
      sku_name: PREMIUM_JOBS_COMPUTE_(PHOTON)   # <TIER>_..., tier STANDARD|PREMIUM|ENTERPRISE;
                                                # a "_(PHOTON)" suffix marks a Photon SKU
      workload: jobs                  # jobs, all_purpose, jobs_light, dlt_core, dlt_pro, dlt_advanced,
                                      # sql_classic, sql_pro, sql_serverless, serverless_jobs, model_serving
      list_price: 0.30                # >= 0, $ per DBU
      photon_dbu_factor: 2.5          # DBU/h multiplier: required for Photon SKUs, must be 1.0 (or
                                      # omitted) for the others
      price_start_time: 2025-01-01
      price_end_time: null            # optional

    The tier and Photon flag are read from ``sku_name``. Within one cloud, a (tier, workload, Photon)
    combination names exactly one SKU, and a SKU's windows must not overlap.

``contract_discounts`` (key: cloud + sku_name, or cloud + workload)::

    - {cloud: AZURE, workload: jobs, discount: 0.15}                        # all tiers, all windows
    - {cloud: AZURE, sku_name: PREMIUM_ALL_PURPOSE_COMPUTE, discount: 0.20} # wins over a workload row

    ``discount`` is a fraction in [0, 1); exactly one of ``sku_name`` / ``workload`` per row, and it must
    name a SKU or workload that has a price. ``contract_price = list_price * (1 - discount)``.

``token_prices`` (key: model)::

    - {model: databricks-meta-llama-3-3-70b-instruct, input_per_million: 0.50, output_per_million: 1.50}

Overrides
---------
An overrides file has the same structure. Each of its rows is a *full* row: it replaces the bundled row
with the same key (all fields, nothing is merged field by field) or, if no row has that key, it is added.
Nothing can be deleted. To change a price from a date on, end the old window and add a new one::

    dbu_prices:
      - {cloud: AZURE, sku_name: PREMIUM_JOBS_COMPUTE, workload: jobs, list_price: 0.30,
         price_start_time: 2020-01-01, price_end_time: 2025-06-01}      # replaces the bundled row
      - {cloud: AZURE, sku_name: PREMIUM_JOBS_COMPUTE, workload: jobs, list_price: 0.27,
         price_start_time: 2025-06-01}                                  # adds the new price

Frames carry ``source`` = ``bundled`` or ``overrides:<file name>`` (the origin of the row; a discount
from the overrides does not change a bundled price row's source).
"""

import datetime as dt
import importlib.resources
import itertools
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, NamedTuple, TypeVar

import polars as pl
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from cost_assets.schemas import CLOUDS, TIERS, UTC_TS
from cost_assets.schemas import CURRENCY as CURRENCY_CODE

WORKLOADS = (
    "jobs",
    "all_purpose",
    "jobs_light",
    "dlt_core",
    "dlt_pro",
    "dlt_advanced",
    "sql_classic",
    "sql_pro",
    "sql_serverless",
    "serverless_jobs",
    "model_serving",
)
USAGE_UNIT = "DBU"
# Clouds bill a managed disk's monthly price per hour of a 730-hour month (365 × 24 / 12).
HOURS_PER_MONTH = 730
PHOTON_SUFFIX = "_(PHOTON)"
BUNDLED_FILE = "cost_assets/data/prices.yaml"
_DATE_HINT = "expected YYYY-MM-DD or an ISO 8601 datetime"
_SKU_RE = re.compile(r"^(STANDARD|PREMIUM|ENTERPRISE)_[A-Z0-9_]+(_\(PHOTON\))?$")


# ---------------------------------------------------------------------------------------------- errors
class Problem(NamedTuple):
    """One thing wrong with a price sheet: which file, where in it, and what."""

    file: str
    path: str  # e.g. "instance_types[3].vm_on_demand_per_hour"; "" for file-level problems
    problem: str


class PriceSheetError(ValueError):
    """A price sheet (bundled or overrides) is invalid. One line per problem: ``file: key path: problem``."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(
            "\n".join(f"{p.file}: {p.path}: {p.problem}" if p.path else f"{p.file}: {p.problem}" for p in problems)
        )


class UnknownPriceError(KeyError):
    """A lookup found no price (unknown node type / SKU, or no window covering the time)."""

    def __str__(self) -> str:  # KeyError would repr() the message, quotes and all
        return str(self.args[0]) if self.args else ""


# ---------------------------------------------------------------------------------------- field types
def _as_utc_naive(value: Any) -> dt.datetime:
    """Parse a YAML time (date, datetime or ISO string) to a naive UTC datetime, the project's convention."""
    if isinstance(value, dt.datetime):
        ts = value
    elif isinstance(value, dt.date):
        ts = dt.datetime.combine(value, dt.time())
    elif isinstance(value, str):
        try:
            ts = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"malformed date {value!r}: {_DATE_HINT}") from None
    else:
        raise ValueError(f"malformed date {value!r}: {_DATE_HINT}")
    return ts.astimezone(dt.UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts


def _choice(allowed: Iterable[str], what: str, norm: Callable[[str], str]) -> Callable[[Any], str]:
    allowed = tuple(allowed)

    def check(value: Any) -> str:
        if isinstance(value, str) and norm(value.strip()) in allowed:
            return norm(value.strip())
        raise ValueError(f"unknown {what} {value!r} (expected one of: {', '.join(allowed)})")

    return check


def _sku_name(value: Any) -> str:
    if isinstance(value, str) and _SKU_RE.match(value.strip().upper()):
        return value.strip().upper()
    raise ValueError(
        f"malformed sku_name {value!r}: expected <STANDARD|PREMIUM|ENTERPRISE>_..., "
        "e.g. PREMIUM_JOBS_COMPUTE or PREMIUM_JOBS_COMPUTE_(PHOTON)"
    )


Cloud = Annotated[str, BeforeValidator(_choice(CLOUDS, "cloud", str.upper))]
Workload = Annotated[str, BeforeValidator(_choice(WORKLOADS, "workload", str.lower))]
SkuName = Annotated[str, BeforeValidator(_sku_name)]
Time = Annotated[dt.datetime, BeforeValidator(_as_utc_naive)]
Name = Annotated[str, Field(min_length=1)]
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]


# ------------------------------------------------------------------------------------------ row models
class _Row(BaseModel):
    # strict: a quoted "0.3" or a `true` is a mistake in a price sheet, not something to coerce.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class InstanceTypeRow(_Row):
    """One node type's size, DBU rate and VM prices over ``[effective_from, effective_to)``."""

    cloud: Cloud
    node_type_id: Name
    vcpus: Positive
    memory_gb: Positive
    dbu_per_hour: Positive
    vm_on_demand_per_hour: Price
    vm_spot_per_hour: Price | None = None
    disk_type: Name | None = None
    disks_per_node: Annotated[int, Field(gt=0)] = 1
    effective_from: Time
    effective_to: Time | None = None

    @property
    def key(self) -> tuple[str, str, dt.datetime]:
        return (self.cloud, self.node_type_id, self.effective_from)


class DiskPriceRow(_Row):
    """One managed disk type of a cloud and its monthly price (the cloud bills it per hour of a month)."""

    cloud: Cloud
    disk_type: Name
    size_gb: Positive
    per_disk_month: Price

    @property
    def key(self) -> tuple[str, str]:
        return (self.cloud, self.disk_type)

    @property
    def per_hour(self) -> float:
        return self.per_disk_month / HOURS_PER_MONTH


class DbuPriceRow(_Row):
    """One SKU's $/DBU over ``[price_start_time, price_end_time)``; tier and Photon come from the name."""

    cloud: Cloud
    sku_name: SkuName
    workload: Workload
    list_price: Price
    photon_dbu_factor: Positive | None = None
    price_start_time: Time
    price_end_time: Time | None = None

    @property
    def key(self) -> tuple[str, str, dt.datetime]:
        return (self.cloud, self.sku_name, self.price_start_time)

    @property
    def tier(self) -> str:
        return next(t for t in TIERS if self.sku_name.startswith(t + "_"))

    @property
    def is_photon(self) -> bool:
        return self.sku_name.endswith(PHOTON_SUFFIX)

    @property
    def factor(self) -> float:
        return 1.0 if self.photon_dbu_factor is None else self.photon_dbu_factor


class ContractDiscountRow(_Row):
    """A negotiated discount on one SKU or one workload of a cloud (all tiers and windows)."""

    cloud: Cloud
    sku_name: SkuName | None = None
    workload: Workload | None = None
    discount: Fraction

    @property
    def key(self) -> tuple[str, str]:
        return (self.cloud, f"sku_name={self.sku_name}" if self.sku_name else f"workload={self.workload}")


class TokenPriceRow(_Row):
    """Pay-per-token price of one served model, USD per million tokens."""

    model: Name
    input_per_million: Price
    output_per_million: Price

    @property
    def key(self) -> str:
        return self.model


class _SheetFile(_Row):
    instance_types: list[InstanceTypeRow] = Field(default_factory=list)
    disk_prices: list[DiskPriceRow] = Field(default_factory=list)
    dbu_prices: list[DbuPriceRow] = Field(default_factory=list)
    contract_discounts: list[ContractDiscountRow] = Field(default_factory=list)
    token_prices: list[TokenPriceRow] = Field(default_factory=list)


_SECTION_MODELS: dict[str, type[_Row]] = {
    "instance_types": InstanceTypeRow,
    "disk_prices": DiskPriceRow,
    "dbu_prices": DbuPriceRow,
    "contract_discounts": ContractDiscountRow,
    "token_prices": TokenPriceRow,
}

RowT = TypeVar("RowT", bound=_Row)


@dataclass(frozen=True)
class Sourced(Generic[RowT]):
    """A validated row plus its origin: ``source`` for frames, ``file`` and ``path`` for error messages."""

    row: RowT
    source: str  # "bundled" or "overrides:<file name>"
    file: str
    path: str  # "dbu_prices[3]"


# ------------------------------------------------------------------------------------------- lookups
@dataclass(frozen=True)
class NodeType:
    """What the world generator and the estimator need about one node type at one time."""

    cloud: str
    node_type_id: str
    vcpus: float
    memory_gb: float
    dbu_per_hour: float  # non-Photon; multiply by SkuPrice.photon_dbu_factor
    vm_on_demand_per_hour: float
    vm_spot_per_hour: float | None
    disk_per_hour: float | None = None  # the node's managed disks, $/h; None: no disk price (unknown)


@dataclass(frozen=True)
class SkuPrice:
    """The SKU a (cloud, tier, workload, Photon) combination bills under, and its prices at one time."""

    sku_name: str
    tier: str
    workload: str
    is_photon: bool
    photon_dbu_factor: float
    list_price: float
    contract_discount: float
    contract_price: float
    effective_price: float  # the $/DBU actually paid: the contract price


# ------------------------------------------------------------------------------------------ the sheet
_INSTANCE_SCHEMA = {
    "cloud": pl.String,
    "node_type_id": pl.String,
    "vcpus": pl.Float64,
    "memory_gb": pl.Float64,
    "dbu_per_hour": pl.Float64,
    "vm_on_demand_per_hour": pl.Float64,
    "vm_spot_per_hour": pl.Float64,
    "disk_type": pl.String,
    "disks_per_node": pl.Int64,
    "disk_per_hour": pl.Float64,
    "currency_code": pl.String,
    "effective_from": UTC_TS,
    "effective_to": UTC_TS,
    "source": pl.String,
}
_DBU_SCHEMA = {
    "cloud": pl.String,
    "sku_name": pl.String,
    "tier": pl.String,
    "workload": pl.String,
    "is_photon": pl.Boolean,
    "photon_dbu_factor": pl.Float64,
    "usage_unit": pl.String,
    "currency_code": pl.String,
    "price_start_time": UTC_TS,
    "price_end_time": UTC_TS,
    "list_price": pl.Float64,
    "contract_discount": pl.Float64,
    "contract_price": pl.Float64,
    "effective_price": pl.Float64,
    "source": pl.String,
}
_TOKEN_SCHEMA = {
    "model": pl.String,
    "input_per_million": pl.Float64,
    "output_per_million": pl.Float64,
    "currency_code": pl.String,
}


def _covers(start: dt.datetime, end: dt.datetime | None, at: dt.datetime) -> bool:
    return start <= at and (end is None or at < end)


def _fmt(ts: dt.datetime | None) -> str:
    if ts is None:
        return "open"
    return ts.date().isoformat() if ts == dt.datetime.combine(ts.date(), dt.time()) else ts.isoformat()


@dataclass(frozen=True)
class PriceSheet:
    """A validated, merged price sheet. Build it with :func:`load_price_sheet`; rows are sorted by key."""

    instance_types: tuple[Sourced[InstanceTypeRow], ...]
    disk_prices: tuple[Sourced[DiskPriceRow], ...]
    dbu_prices: tuple[Sourced[DbuPriceRow], ...]
    contract_discounts: tuple[Sourced[ContractDiscountRow], ...]
    token_prices: tuple[Sourced[TokenPriceRow], ...]
    # lookup indexes, derived from the rows above
    _nodes: dict[tuple[str, str], list[InstanceTypeRow]] = field(init=False, repr=False, compare=False)
    _skus: dict[tuple[str, str, str, bool], str] = field(init=False, repr=False, compare=False)
    _sku_rows: dict[tuple[str, str], list[DbuPriceRow]] = field(init=False, repr=False, compare=False)
    _discounts: dict[tuple[str, str], float] = field(init=False, repr=False, compare=False)
    _disks: dict[tuple[str, str], DiskPriceRow] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nodes: dict[tuple[str, str], list[InstanceTypeRow]] = defaultdict(list)
        for s in self.instance_types:
            nodes[(s.row.cloud, s.row.node_type_id)].append(s.row)
        skus: dict[tuple[str, str, str, bool], str] = {}
        sku_rows: dict[tuple[str, str], list[DbuPriceRow]] = defaultdict(list)
        for s in self.dbu_prices:
            r = s.row
            skus[(r.cloud, r.tier, r.workload, r.is_photon)] = r.sku_name
            sku_rows[(r.cloud, r.sku_name)].append(r)
        object.__setattr__(self, "_nodes", dict(nodes))
        object.__setattr__(self, "_skus", skus)
        object.__setattr__(self, "_sku_rows", dict(sku_rows))
        object.__setattr__(self, "_discounts", {s.row.key: s.row.discount for s in self.contract_discounts})
        object.__setattr__(self, "_disks", {s.row.key: s.row for s in self.disk_prices})

    def disk_per_hour(self, row: InstanceTypeRow) -> float | None:
        """A node's managed disks in $/h (``disks_per_node`` × the disk type's hourly price); None when the
        row names no disk type: unknown, never $0."""
        if row.disk_type is None:
            return None
        return row.disks_per_node * self._disks[(row.cloud, row.disk_type)].per_hour

    def contract_discount(self, cloud: str, sku_name: str, workload: str) -> float:
        """The discount for a SKU: a sku_name row wins over a workload row; none means 0."""
        by_sku = self._discounts.get((cloud, f"sku_name={sku_name}"))
        return by_sku if by_sku is not None else self._discounts.get((cloud, f"workload={workload}"), 0.0)

    # -- frames
    def instance_types_frame(self) -> pl.DataFrame:
        """``ref.instance_types`` rows (the ``InstanceTypes`` contract)."""
        rows = [
            {
                "cloud": r.cloud,
                "node_type_id": r.node_type_id,
                "vcpus": r.vcpus,
                "memory_gb": r.memory_gb,
                "dbu_per_hour": r.dbu_per_hour,
                "vm_on_demand_per_hour": r.vm_on_demand_per_hour,
                "vm_spot_per_hour": r.vm_spot_per_hour,
                "disk_type": r.disk_type,
                "disks_per_node": r.disks_per_node if r.disk_type is not None else None,
                "disk_per_hour": self.disk_per_hour(r),
                "currency_code": CURRENCY_CODE,
                "effective_from": r.effective_from,
                "effective_to": r.effective_to,
                "source": s.source,
            }
            for s in self.instance_types
            for r in [s.row]
        ]
        return pl.DataFrame(rows, schema=_INSTANCE_SCHEMA)

    def dbu_prices_frame(self) -> pl.DataFrame:
        """``ref.dbu_prices`` rows (the ``DbuPrices`` contract); effective_price = contract_price."""
        rows = []
        for s in self.dbu_prices:
            r = s.row
            discount = self.contract_discount(r.cloud, r.sku_name, r.workload)
            contract = r.list_price * (1 - discount)
            rows.append(
                {
                    "cloud": r.cloud,
                    "sku_name": r.sku_name,
                    "tier": r.tier,
                    "workload": r.workload,
                    "is_photon": r.is_photon,
                    "photon_dbu_factor": r.factor,
                    "usage_unit": USAGE_UNIT,
                    "currency_code": CURRENCY_CODE,
                    "price_start_time": r.price_start_time,
                    "price_end_time": r.price_end_time,
                    "list_price": r.list_price,
                    "contract_discount": discount,
                    "contract_price": contract,
                    "effective_price": contract,
                    "source": s.source,
                }
            )
        return pl.DataFrame(rows, schema=_DBU_SCHEMA)

    def token_prices_frame(self) -> pl.DataFrame:
        """Token prices per served model: model, input_per_million, output_per_million, currency_code."""
        rows = [
            {
                "model": s.row.model,
                "input_per_million": s.row.input_per_million,
                "output_per_million": s.row.output_per_million,
                "currency_code": CURRENCY_CODE,
            }
            for s in self.token_prices
        ]
        return pl.DataFrame(rows, schema=_TOKEN_SCHEMA)

    # -- lookups
    def node(self, cloud: str, node_type_id: str, at: dt.datetime) -> NodeType:
        """The node type in force at ``at`` (naive = UTC). Raises :class:`UnknownPriceError` (a KeyError)."""
        cloud, at = cloud.upper(), _as_utc_naive(at)
        rows = self._nodes.get((cloud, node_type_id))
        if not rows:
            known = sorted(n for c, n in self._nodes if c == cloud)
            raise UnknownPriceError(
                f"unknown node type {node_type_id!r} on {cloud} ({len(known)} known; add it to the prices file)"
            )
        for r in rows:
            if _covers(r.effective_from, r.effective_to, at):
                return NodeType(
                    r.cloud,
                    r.node_type_id,
                    r.vcpus,
                    r.memory_gb,
                    r.dbu_per_hour,
                    r.vm_on_demand_per_hour,
                    r.vm_spot_per_hour,
                    self.disk_per_hour(r),
                )
        windows = ", ".join(f"[{_fmt(r.effective_from)}, {_fmt(r.effective_to)})" for r in rows)
        raise UnknownPriceError(
            f"no price for node type {node_type_id!r} on {cloud} at {at.isoformat()} (windows: {windows})"
        )

    def sku(self, cloud: str, tier: str, workload: str, photon: bool, at: dt.datetime) -> SkuPrice:
        """The SKU and its $/DBU at ``at`` (naive = UTC). Raises :class:`UnknownPriceError` (a KeyError)."""
        cloud, tier, workload, at = cloud.upper(), tier.upper(), workload.lower(), _as_utc_naive(at)
        sku_name = self._skus.get((cloud, tier, workload, photon))
        if sku_name is None:
            raise UnknownPriceError(
                f"no DBU price for {cloud} {tier} {workload}"
                f"{' (Photon)' if photon else ''}: no such SKU in the price sheet"
            )
        rows = self._sku_rows[(cloud, sku_name)]
        for r in rows:
            if _covers(r.price_start_time, r.price_end_time, at):
                discount = self.contract_discount(cloud, sku_name, workload)
                contract = r.list_price * (1 - discount)
                return SkuPrice(
                    sku_name, r.tier, r.workload, r.is_photon, r.factor, r.list_price, discount, contract, contract
                )
        windows = ", ".join(f"[{_fmt(r.price_start_time)}, {_fmt(r.price_end_time)})" for r in rows)
        raise UnknownPriceError(f"no price for {cloud} {sku_name} at {at.isoformat()} (windows: {windows})")


# --------------------------------------------------------------------------------------------- loading
class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys and leaves timestamps as strings.

    PyYAML silently keeps the last of two equal keys (a lost price), and raises a bare ValueError with no
    position for an impossible date such as 2025-13-01; as strings, dates are parsed by the row models,
    whose errors carry the key path.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)
# The same strict loading for the project's other YAML files (budgets, workspaces).
StrictYamlLoader = _Loader


def load_strict_yaml(text: str, file: str, error: Callable[[list[str]], Exception]) -> Any:
    """``text`` (the contents of ``file``) parsed with :data:`StrictYamlLoader`, ``{}`` when empty; a YAML
    error raises ``error([one line naming the file, line and column])``."""
    try:
        return yaml.load(text, Loader=StrictYamlLoader) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error([f"{file}: invalid YAML{where}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise error([f"{file}: invalid YAML: {exc}"]) from None


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(err: dict[str, Any]) -> str:
    """Turn one pydantic error into a sentence a price-sheet author understands."""
    kind, value, ctx, loc = err["type"], err.get("input"), err.get("ctx") or {}, err["loc"]
    if kind == "extra_forbidden" and len(loc) == 1:
        return f"unknown section {loc[0]!r} (allowed: {', '.join(_SECTION_MODELS)})"
    if kind == "extra_forbidden":
        model = _SECTION_MODELS.get(str(loc[0]))
        allowed = f" (allowed: {', '.join(model.model_fields)})" if model else ""
        return f"unknown field {loc[-1]!r}{allowed}"
    if kind == "missing":
        return "missing required field"
    if kind == "greater_than_equal" and isinstance(value, int | float) and value < 0:
        return f"negative value {value} (must be >= {ctx['ge']:g})"
    if kind == "greater_than":
        return f"must be > {ctx['gt']:g}, got {value!r}"
    if kind == "less_than":
        return f"must be < {ctx['lt']:g}, got {value!r}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {value!r}"


def _parse(text: str, file: str) -> _SheetFile:
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PriceSheetError([Problem(file, "", f"invalid YAML at {where}{exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise PriceSheetError([Problem(file, "", f"invalid YAML: {exc}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PriceSheetError(
            [Problem(file, "", f"the top level must be a mapping of sections ({', '.join(_SECTION_MODELS)})")]
        )
    data = {k: v for k, v in data.items() if v is not None}  # `section:` with no rows means empty
    try:
        return _SheetFile.model_validate(data)
    except ValidationError as exc:
        problems = [Problem(file, _key_path(e["loc"]), _describe(e)) for e in exc.errors()]
        raise PriceSheetError(problems) from None


def _check_file(sheet: _SheetFile, file: str, source: str) -> tuple[dict[str, list[Sourced]], list[Problem]]:
    """Row-level rules the field types cannot express, and duplicate keys within one file."""
    problems: list[Problem] = []

    def add(path: str, problem: str) -> None:
        problems.append(Problem(file, path, problem))

    placed: dict[str, list[Sourced]] = {}
    for section in _SECTION_MODELS:
        rows = [Sourced(r, source, file, f"{section}[{i}]") for i, r in enumerate(getattr(sheet, section))]
        seen: dict[Any, str] = {}
        for s in rows:
            if s.row.key in seen:
                add(s.path, f"duplicate key {s.row.key!r}: same as {seen[s.row.key]}")
            seen.setdefault(s.row.key, s.path)
        placed[section] = rows
    for s in placed["instance_types"]:
        r = s.row
        if r.effective_to is not None and r.effective_to <= r.effective_from:
            add(
                f"{s.path}.effective_to",
                f"window end before start: effective_to {_fmt(r.effective_to)} "
                f"is not after effective_from {_fmt(r.effective_from)}",
            )
    for s in placed["dbu_prices"]:
        r = s.row
        if r.price_end_time is not None and r.price_end_time <= r.price_start_time:
            add(
                f"{s.path}.price_end_time",
                f"window end before start: price_end_time "
                f"{_fmt(r.price_end_time)} is not after price_start_time {_fmt(r.price_start_time)}",
            )
        if r.is_photon and r.photon_dbu_factor is None:
            add(f"{s.path}.photon_dbu_factor", f"required for a Photon SKU (name ends with {PHOTON_SUFFIX})")
        if not r.is_photon and r.photon_dbu_factor not in (None, 1.0):
            add(
                f"{s.path}.photon_dbu_factor",
                f"must be 1.0 for a non-Photon SKU, got "
                f"{r.photon_dbu_factor} (Photon SKU names end with {PHOTON_SUFFIX})",
            )
    for s in placed["contract_discounts"]:
        if (s.row.sku_name is None) == (s.row.workload is None):
            add(s.path, "give exactly one of sku_name or workload")
    return placed, problems


def _check_windows(rows: list[Sourced], name: Callable[[Any], str], start: str, end: str) -> list[Problem]:
    """Windows of one key must not overlap, or a lookup would have two answers."""
    problems = []
    groups: dict[Any, list[Sourced]] = defaultdict(list)
    for s in rows:
        groups[name(s.row)].append(s)
    for label, group in groups.items():
        group.sort(key=lambda s: getattr(s.row, start))
        for before, after in itertools.pairwise(group):
            b_end = getattr(before.row, end)
            if b_end is None or b_end > getattr(after.row, start):
                problems.append(
                    Problem(
                        after.file,
                        after.path,
                        f"window [{_fmt(getattr(after.row, start))}, {_fmt(getattr(after.row, end))}) of {label} "
                        f"overlaps [{_fmt(getattr(before.row, start))}, {_fmt(b_end)}) at {before.file}: "
                        f"{before.path}; end the earlier window first (override that row, same key, with "
                        f"{end}: {_fmt(getattr(after.row, start))})",
                    )
                )
    return problems


def _check_merged(merged: dict[str, list[Sourced]]) -> list[Problem]:
    """Rules across rows and files: overlapping windows, SKU consistency, discounts naming real prices."""
    problems = _check_windows(
        merged["instance_types"], lambda r: f"{r.cloud} {r.node_type_id}", "effective_from", "effective_to"
    )
    problems += _check_windows(
        merged["dbu_prices"], lambda r: f"{r.cloud} {r.sku_name}", "price_start_time", "price_end_time"
    )
    disk_types = {s.row.key for s in merged["disk_prices"]}
    for s in merged["instance_types"]:
        r = s.row
        if r.disk_type is not None and (r.cloud, r.disk_type) not in disk_types:
            problems.append(Problem(s.file, f"{s.path}.disk_type", f"no disk_prices row for {r.cloud} {r.disk_type}"))
    sku_of: dict[tuple[str, str, str, bool], Sourced] = {}
    workload_of: dict[tuple[str, str], Sourced] = {}
    for s in merged["dbu_prices"]:
        r = s.row
        first = workload_of.setdefault((r.cloud, r.sku_name), s)
        if first.row.workload != r.workload:
            problems.append(
                Problem(
                    s.file,
                    f"{s.path}.workload",
                    f"{r.sku_name} is workload "
                    f"{first.row.workload!r} at {first.file}: {first.path}, "
                    f"not {r.workload!r}",
                )
            )
        other = sku_of.setdefault((r.cloud, r.tier, r.workload, r.is_photon), s)
        if other.row.sku_name != r.sku_name:
            photon = " Photon" if r.is_photon else ""
            problems.append(
                Problem(
                    s.file,
                    f"{s.path}.sku_name",
                    f"{r.cloud} {r.tier} {r.workload}{photon} "
                    f"already bills as {other.row.sku_name} ({other.file}: {other.path}); "
                    "one SKU per tier, workload and Photon",
                )
            )
    for s in merged["contract_discounts"]:
        r = s.row
        if r.sku_name is not None and (r.cloud, r.sku_name) not in workload_of:
            problems.append(Problem(s.file, f"{s.path}.sku_name", f"no dbu_prices row for {r.cloud} {r.sku_name}"))
        if r.workload is not None and not any(k[0] == r.cloud and k[2] == r.workload for k in sku_of):
            problems.append(Problem(s.file, f"{s.path}.workload", f"no dbu_prices row for {r.cloud} {r.workload}"))
    return problems


def load_price_sheet(overrides_path: str | os.PathLike[str] | None = None) -> PriceSheet:
    """Load the bundled sheet, apply the overrides file if given, validate all of it, return the result.

    Raises :class:`PriceSheetError` listing every problem found (nothing is returned half-valid).
    """
    bundled_text = (importlib.resources.files("cost_assets") / "data" / "prices.yaml").read_text("utf-8")
    merged, problems = _check_file(_parse(bundled_text, BUNDLED_FILE), BUNDLED_FILE, "bundled")
    if overrides_path is not None:
        file = os.fspath(overrides_path)
        try:
            text = Path(file).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PriceSheetError([Problem(file, "", f"cannot read the prices file: {exc}")]) from None
        extra, more = _check_file(_parse(text, file), file, f"overrides:{Path(file).name}")
        problems += more
        for section, rows in extra.items():
            by_key = {s.row.key: s for s in merged[section]}
            by_key.update({s.row.key: s for s in rows})  # a full row replaces; new keys are added
            merged[section] = list(by_key.values())
    if not problems:
        problems = _check_merged(merged)
    if problems:
        raise PriceSheetError(problems)
    return PriceSheet(**{name: tuple(sorted(rows, key=lambda s: s.row.key)) for name, rows in merged.items()})
