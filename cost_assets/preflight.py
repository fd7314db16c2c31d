"""Pre-launch check: what a cluster of a given shape would cost for H hours, before it is started.

The numbers come from the same price tables the pipeline prices with (the bundled sheet plus the
``COST_ASSETS_PRICES`` overrides, :func:`cost_assets.prices.load_price_sheet`) through the sheet's own
lookups (:meth:`PriceSheet.node`, :meth:`PriceSheet.sku`), and follow the engine's cost model
(``cost_assets/costing/price.py``, ``_costs``), applied to one cluster that runs for ``hours``:

* ``dbus = hours × photon_dbu_factor × (driver DBU/h + workers × worker DBU/h)``; DBUs are the same
  for spot and on-demand nodes, and ``photon_dbu_factor`` is the SKU's (1.0 for non-Photon SKUs).
* ``dbu_cost_usd = dbus × effective $/DBU`` (the contract price: list × (1 − contract discount)).
* ``vm_cost_usd = hours × (driver $/h + workers × worker $/h)``. On-demand prices, or with ``spot`` the
  workers at the spot price and the driver on-demand (Databricks' default ``first_on_demand = 1``). A node
  type with no spot price is charged on-demand (an over-estimate rather than $0), as the engine does.
* ``disk_cost_usd = hours × (driver disk $/h + workers × worker disk $/h)``: the managed disks each node
  carries (the sheet's ``disk_type`` × ``disks_per_node``), billed while the VMs exist. A node type without
  a disk price leaves it null (unknown, never $0), says so in a note, and the total leaves it out.
* ``total_cost_usd = dbu_cost_usd + vm_cost_usd + disk_cost_usd``. ``workers = 0`` is a single-node cluster
  (driver only).

The SKU is the one the engine picks: (cloud, tier, workload, Photon) at the pricing instant, with the
engine's workloads (``jobs`` for job clusters, ``all_purpose``, ``dlt`` → ``dlt_core`` for pipelines).
An unknown node type or SKU raises :class:`cost_assets.prices.UnknownPriceError` naming it and the cloud:
an estimate is never $0 for lack of a price.

Autoscaling (``min_workers < max_workers``): ``min`` and ``max`` are the cost with that many workers for
all ``hours``; ``mid`` is the cost at ``(min + max) / 2`` workers, which (cost being linear in the worker
count) is exactly halfway between them. It is a planning figure, not a prediction of the autoscaler.
A budget is compared with ``max``, the most the configuration can cost in ``hours``.

VM prices (``COST_ASSETS_VM_PRICES``): ``sheet`` (the default) takes the price sheet's on-demand and spot
$/h. ``observed`` takes what the cloud bill showed over the last :data:`OBSERVED_DAYS` days of
``mart.observed_vm_prices`` (:class:`ObservedPrices`: Σ effective cost ÷ Σ VM-hours; an on-demand node at
the blend of on-demand, reserved and savings-plan VMs of its type, a spot node at the spot market's) for a
node type and pricing with at least :data:`MIN_OBSERVED_HOURS` VM-hours observed, the sheet's otherwise;
each node role says which (``NodeRates.vm_price_source``) and a note gives the numbers.

Not modelled (the estimate assumes ``hours`` of RUNNING time): start-up time (VMs are paid from the
request, DBUs from RUNNING), spot evictions and fallback, instance pools, price changes during ``hours``
(everything is priced at ``at``), and Azure VM prices from the Retail Prices API
(``COST_ASSETS_AZURE_REGION``): the estimate uses the sheet's VM $/h.
"""

import dataclasses
import datetime as dt
import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cost_assets.prices import NodeType, PriceSheet, SkuPrice, UnknownPriceError, load_price_sheet
from cost_assets.vocabulary import CLOUDS, TIERS

# The workloads a classic cluster bills under, as the engine names them (timeline.workload_of).
WORKLOADS = {"jobs": "jobs", "all_purpose": "all_purpose", "dlt": "dlt_core"}
JSON_DECIMALS = 6  # DBUs and dollars in --json: enough for any price, without float noise
# COST_ASSETS_VM_PRICES=observed: the window of mart.observed_vm_prices read, and the VM-hours a node type and
# pricing need in it before the observed price replaces the sheet's (fewer: a few hours of a spot spike).
OBSERVED_DAYS = 28
MIN_OBSERVED_HOURS = 24.0
VM_PRICE_MODES = ("sheet", "observed")


class PreflightInputError(ValueError):
    """An argument the estimate cannot use (bad cloud, negative hours, min > max, ...)."""


@dataclass(frozen=True)
class NodeRates:
    """One node role's rates as charged: DBU/h (non-Photon), the VM $/h actually used and its disks' $/h."""

    node_type_id: str
    dbu_per_hour: float
    vm_per_hour: float
    pricing: str  # "on_demand" or "spot"
    disk_per_hour: float | None = None  # None: the sheet has no disk price for the node type
    vm_price_source: str = "sheet"  # "sheet" or "observed" (COST_ASSETS_VM_PRICES=observed)


@dataclass(frozen=True)
class ObservedPrices:
    """The cloud bill's effective $ per VM-hour over a window, per (cloud, node type, ``on_demand``|``spot``):
    ``on_demand`` blends the on-demand, reserved and savings-plan VMs of the type (what a node launched
    on-demand really cost), ``spot`` is the spot market's. ``prices`` maps the key to (``$/h``, VM-hours)."""

    prices: dict[tuple[str, str, str], tuple[float, float]]
    first_day: dt.date | None
    last_day: dt.date | None

    @classmethod
    def from_rows(cls, rows: Iterable[dict[str, Any]]) -> "ObservedPrices":
        """From ``mart.observed_vm_prices`` rows (any days; USD rows only count): Σ effective ÷ Σ hours."""
        sums: dict[tuple[str, str, str], list[float]] = {}
        days: list[dt.date] = []
        for r in rows:
            if r["currency_code"] != "USD" or not r["node_hours"]:
                continue
            pricing = "spot" if r["pricing_model"] == "spot" else "on_demand"
            acc = sums.setdefault((r["cloud"].upper(), r["node_type_id"], pricing), [0.0, 0.0])
            acc[0] += r["effective_cost"]
            acc[1] += r["node_hours"]
            days.append(r["usage_date"])
        prices = {k: (cost / hours, hours) for k, (cost, hours) in sums.items() if hours > 0}
        return cls(prices, min(days, default=None), max(days, default=None))

    def rate(self, cloud: str, node_type_id: str, pricing: str) -> tuple[float, float] | None:
        """($/h, VM-hours) observed for the node type and pricing, or None."""
        return self.prices.get((cloud, node_type_id, pricing))


@dataclass(frozen=True)
class Point:
    """The cost with ``workers`` workers (plus the driver) for the whole ``hours``."""

    workers: float  # a float: the mid of 2..5 is 3.5
    dbus: float
    dbu_cost_usd: float
    vm_cost_usd: float
    disk_cost_usd: float | None  # None: a node type without a disk price (not in the total)
    total_cost_usd: float


@dataclass(frozen=True)
class Estimate:
    """The result of :func:`estimate`: the prices used and the cost at min, mid and max workers."""

    cloud: str
    tier: str
    workload: str  # the SKU's workload (dlt → dlt_core)
    sku_name: str
    photon: bool
    spot: bool
    hours: float
    priced_at: dt.datetime  # naive UTC
    driver: NodeRates
    worker: NodeRates
    photon_dbu_factor: float
    dbu_list_price: float
    dbu_price: float  # effective $/DBU (contract price), the one totals use
    min: Point
    mid: Point
    max: Point
    notes: tuple[str, ...] = ()

    @property
    def autoscaling(self) -> bool:
        return self.min.workers != self.max.workers

    def over_budget(self, budget: float) -> bool:
        """Whether the upper end (``max``) exceeds ``budget`` (compared in cents, as printed)."""
        return round(self.max.total_cost_usd, 2) > round(budget, 2)

    def explain(self, point: Point | None = None) -> str:
        """One line saying what drives the cost of ``point`` (default ``max``): VM and DBU arithmetic."""
        p = point or self.max
        w = _count(p.workers)
        vm = f"VM {money(p.vm_cost_usd)} = (1 driver × {rate(self.driver.vm_per_hour)}/h"
        dbu = f"DBU {money(p.dbu_cost_usd)} = (1 × {_num(self.driver.dbu_per_hour)}"
        if p.workers:
            vm += f" + {w} workers × {rate(self.worker.vm_per_hour)}/h {self.worker.pricing.replace('_', '-')}"
            dbu += f" + {w} × {_num(self.worker.dbu_per_hour)}"
        dbu += " DBU/h)"
        if self.photon_dbu_factor != 1.0:
            dbu += f" × {_num(self.photon_dbu_factor)} Photon"
        dbu += f" × {_num(self.hours)} h = {p.dbus:,.2f} DBU × {rate(self.dbu_price)}/DBU"
        line = f"{vm}) × {_num(self.hours)} h  +  {dbu}"
        if p.disk_cost_usd is not None and self.driver.disk_per_hour is not None:
            disk = f"disk {money(p.disk_cost_usd)} = (1 × {rate(self.driver.disk_per_hour)}/h"
            if p.workers and self.worker.disk_per_hour is not None:
                disk += f" + {w} × {rate(self.worker.disk_per_hour)}/h"
            line += f"  +  {disk}) × {_num(self.hours)} h"
        return line

    def to_json(self, budget: float | None = None) -> dict[str, Any]:
        """A stable JSON object: every key always present (``budget`` is null without one)."""
        return {
            "cloud": self.cloud,
            "tier": self.tier,
            "workload": self.workload,
            "sku_name": self.sku_name,
            "photon": self.photon,
            "spot": self.spot,
            "hours": self.hours,
            "priced_at": self.priced_at.isoformat(timespec="seconds") + "Z",
            "driver": _rates_json(self.driver),
            "worker": _rates_json(self.worker),
            "photon_dbu_factor": self.photon_dbu_factor,
            "dbu_list_price": self.dbu_list_price,
            "dbu_price": self.dbu_price,
            "autoscaling": self.autoscaling,
            "estimate": _point_json(self.mid),
            "range": {"min": _point_json(self.min), "mid": _point_json(self.mid), "max": _point_json(self.max)},
            "budget": None
            if budget is None
            else {"usd": budget, "compared_with": "max", "over": self.over_budget(budget)},
            "notes": list(self.notes),
        }


def cost_at(workers: float, hours: float, driver: NodeRates, worker: NodeRates, sku: SkuPrice) -> Point:
    """The engine's formulas (costing/price.py) for one cluster with constant counts over ``hours``."""
    dbus = hours * sku.photon_dbu_factor * (driver.dbu_per_hour + workers * worker.dbu_per_hour)
    vm = hours * (driver.vm_per_hour + workers * worker.vm_per_hour)
    dbu_cost = dbus * sku.effective_price
    known = driver.disk_per_hour is not None and (workers == 0 or worker.disk_per_hour is not None)
    disk = hours * (driver.disk_per_hour + (workers * worker.disk_per_hour if workers else 0.0)) if known else None
    return Point(float(workers), dbus, dbu_cost, vm, disk, dbu_cost + vm + (disk or 0.0))


def estimate(
    *,
    cloud: str,
    node_type: str,
    hours: float,
    workers: int | None = None,
    min_workers: int | None = None,
    max_workers: int | None = None,
    driver_node_type: str | None = None,
    photon: bool = False,
    spot: bool = False,
    workload: str = "jobs",
    tier: str = "PREMIUM",
    at: dt.datetime | None = None,
    sheet: PriceSheet | None = None,
    observed: ObservedPrices | None = None,
) -> Estimate:
    """Cost of running one cluster for ``hours``: give ``workers`` (fixed size; 0 = single node) or
    ``min_workers`` and ``max_workers`` (autoscaling). ``driver_node_type`` defaults to ``node_type``;
    ``at`` (default now, naive = UTC) picks the prices in force; ``sheet`` defaults to the bundled sheet;
    ``observed`` (``COST_ASSETS_VM_PRICES=observed``) replaces a sheet VM price where it has enough VM-hours.

    Raises :class:`PreflightInputError` for unusable arguments and
    :class:`~cost_assets.prices.UnknownPriceError` for a node type or SKU the price sheet does not have.
    """
    cloud, tier = cloud.strip().upper(), tier.strip().upper()
    lo, hi = _worker_range(workers, min_workers, max_workers)
    if cloud not in CLOUDS:
        raise PreflightInputError(f"unknown cloud {cloud!r} (expected one of: {', '.join(CLOUDS)})")
    if tier not in TIERS:
        raise PreflightInputError(f"unknown tier {tier!r} (expected one of: {', '.join(TIERS)})")
    if workload not in WORKLOADS:
        raise PreflightInputError(f"unknown workload {workload!r} (expected one of: {', '.join(WORKLOADS)})")
    if not (isinstance(hours, int | float) and math.isfinite(hours) and hours > 0):
        raise PreflightInputError(f"hours must be a number > 0, got {hours!r}")
    sheet = sheet if sheet is not None else load_price_sheet()
    at = at if at is not None else dt.datetime.now(dt.UTC)
    at = at.astimezone(dt.UTC).replace(tzinfo=None) if at.tzinfo is not None else at

    driver_node = _node(sheet, cloud, driver_node_type or node_type, at)
    worker_node = _node(sheet, cloud, node_type, at)
    sku = sheet.sku(cloud, tier, WORKLOADS[workload], photon, at)

    notes = []
    d, w = driver_node, worker_node
    driver = NodeRates(d.node_type_id, d.dbu_per_hour, d.vm_on_demand_per_hour, "on_demand", d.disk_per_hour)
    if spot and w.vm_spot_per_hour is not None:
        worker = NodeRates(w.node_type_id, w.dbu_per_hour, w.vm_spot_per_hour, "spot", w.disk_per_hour)
    else:
        worker = NodeRates(w.node_type_id, w.dbu_per_hour, w.vm_on_demand_per_hour, "on_demand", w.disk_per_hour)
        if spot:
            notes.append(f"{cloud} {node_type} has no spot price in the price sheet: workers are charged on-demand")
    if observed is not None:
        roles = [("driver", driver), ("workers", worker)] if hi > 0 else [("driver", driver)]
        chosen = {role: _observed_rate(observed, cloud, rates, role) for role, rates in roles}
        driver = chosen["driver"][0]
        worker = chosen["workers"][0] if hi > 0 else worker
        notes += [note for _, note in chosen.values()]
    no_disk = sorted({n.node_type_id for n in (d, w) if n.disk_per_hour is None and (n is d or hi > 0)})
    if no_disk:
        notes.append(
            f"{cloud} {', '.join(no_disk)} has no disk price in the price sheet: disk $ unknown, not in the total"
        )
    return Estimate(
        cloud=cloud,
        tier=tier,
        workload=sku.workload,
        sku_name=sku.sku_name,
        photon=photon,
        spot=spot,
        hours=float(hours),
        priced_at=at,
        driver=driver,
        worker=worker,
        photon_dbu_factor=sku.photon_dbu_factor,
        dbu_list_price=sku.list_price,
        dbu_price=sku.effective_price,
        min=cost_at(lo, hours, driver, worker, sku),
        mid=cost_at((lo + hi) / 2, hours, driver, worker, sku),
        max=cost_at(hi, hours, driver, worker, sku),
        notes=tuple(notes),
    )


OBSERVED_SQL = """
select usage_date, cloud, node_type_id, pricing_model, currency_code, node_hours, effective_cost
from mart.observed_vm_prices
where usage_date > (select max(usage_date) from mart.observed_vm_prices) - ?::integer
"""


def observed_from_ledger(database: str) -> tuple[ObservedPrices | None, str | None]:
    """The last :data:`OBSERVED_DAYS` stored days of ``mart.observed_vm_prices``; (None, why) when the ledger
    cannot give them (no file, no cloud bill, a writer holds it): the estimate then uses the sheet."""
    from cost_assets import read

    try:
        rows = read.fetch(database, OBSERVED_SQL, [OBSERVED_DAYS])
    except read.TableMissingError:  # a ledger built without the cloud bill (or not built yet)
        return None, (
            f"COST_ASSETS_VM_PRICES=observed: the ledger {database!r} has no mart.observed_vm_prices, which is built "
            "from the cloud bill: set COST_ASSETS_CLOUD_BILL (docs/cloud-bill.md) and run the pipeline (`make run`); "
            "the sheet's VM prices are used"
        )
    except read.WarehouseError as e:
        return None, f"COST_ASSETS_VM_PRICES=observed: no observed prices ({e}); the sheet's VM prices are used"
    return ObservedPrices.from_rows(rows.iter_rows(named=True)), None


def _observed_rate(observed: ObservedPrices, cloud: str, rates: NodeRates, role: str) -> tuple[NodeRates, str]:
    """The role's rates with the observed VM $/h when it has :data:`MIN_OBSERVED_HOURS`, and a note saying
    which price is used and why."""
    what = f"{role} {rates.node_type_id} {rates.pricing.replace('_', '-')}"
    found = observed.rate(cloud, rates.node_type_id, rates.pricing)
    window = f"{observed.first_day}..{observed.last_day}" if observed.first_day else "no observed days"
    if found is None or found[1] < MIN_OBSERVED_HOURS:
        hours = 0.0 if found is None else found[1]
        return rates, (
            f"{what}: the sheet's {rate(rates.vm_per_hour)}/h (observed {_num(round(hours, 2))} VM-hours in "
            f"{window}, fewer than {_num(MIN_OBSERVED_HOURS)})"
        )
    per_hour, hours = found
    note = (
        f"{what}: observed {rate(per_hour)}/h ({_num(round(hours, 2))} VM-hours in {window}) "
        f"instead of the sheet's {rate(rates.vm_per_hour)}/h"
    )
    return dataclasses.replace(rates, vm_per_hour=per_hour, vm_price_source="observed"), note


def budget_message(est: Estimate, budget: float) -> str | None:
    """Two lines when ``est`` exceeds ``budget`` (its ``max``): the verdict and what drives the cost."""
    if not est.over_budget(budget):
        return None
    verdict = f"Estimated cost {money(est.max.total_cost_usd)} exceeds budget {money(budget)}"
    if est.autoscaling:
        verdict += (
            f" (the upper end: {_count(est.max.workers)} workers for {_num(est.hours)} h;"
            f" mid estimate {money(est.mid.total_cost_usd)})"
        )
    return f"{verdict}\n{est.explain(est.max)}"


def table(est: Estimate) -> str:
    """The human-readable estimate: the prices used, one row per point, what drives the cost."""
    photon = f", Photon ×{_num(est.photon_dbu_factor)} DBU/h" if est.photon else ""
    discount = f" (list {rate(est.dbu_list_price)})" if est.dbu_price != est.dbu_list_price else ""
    lines = [
        f"{est.cloud} {est.tier} {est.workload}: {est.sku_name} at {rate(est.dbu_price)}/DBU{discount}{photon}",
        f"{_num(est.hours)} h, prices in force at {est.priced_at.isoformat(timespec='minutes')} UTC",
        f"  driver   {est.driver.node_type_id:<22}{_num(est.driver.dbu_per_hour):>6} DBU/h  "
        f"{rate(est.driver.vm_per_hour)}/h {est.driver.pricing.replace('_', '-')}{_disk(est.driver)}",
    ]
    if est.max.workers:
        lines.append(
            f"  workers  {est.worker.node_type_id:<22}{_num(est.worker.dbu_per_hour):>6} DBU/h  "
            f"{rate(est.worker.vm_per_hour)}/h {est.worker.pricing.replace('_', '-')}{_disk(est.worker)}"
        )
    else:
        lines.append("  single node (driver only)")
    header = ["", "workers", "DBUs", "DBU $", "VM $", "disk $", "total"]
    rows = [("min", est.min), ("mid", est.mid), ("max", est.max)] if est.autoscaling else [("estimate", est.max)]
    lines += ["", "  " + f"{header[0]:<10}" + "".join(f"{h:>14}" for h in header[1:])]
    for name, p in rows:
        cells = [_count(p.workers), f"{p.dbus:,.2f}", money(p.dbu_cost_usd), money(p.vm_cost_usd)]
        cells.append("unknown" if p.disk_cost_usd is None else money(p.disk_cost_usd))
        cells.append(money(p.total_cost_usd))
        lines.append("  " + f"{name:<10}" + "".join(f"{c:>14}" for c in cells))
    lines.append("")
    if est.autoscaling:
        lines.append(
            f"min/max: {_count(est.min.workers)} / {_count(est.max.workers)} workers for all {_num(est.hours)} h;"
            f" mid: {_count(est.mid.workers)} workers (halfway: cost is linear in workers)"
        )
    lines.append(f"max: {est.explain(est.max)}" if est.autoscaling else est.explain(est.max))
    lines += [f"note: {n}" for n in est.notes]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ formatting
def money(usd: float) -> str:
    """$1,234.56"""
    return f"${usd:,.2f}"


def rate(usd: float) -> str:
    """A unit price with the digits it has: $0.30, $0.046, $0.1808 (at least 2, at most 4 decimals)."""
    text = f"{usd:,.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac:0<2}"


def _disk(r: NodeRates) -> str:
    """The role's line tail: observed VM price (when it is), and its disks' $/h."""
    observed = " (observed)" if r.vm_price_source == "observed" else ""
    disks = f", disks {rate(r.disk_per_hour)}/h" if r.disk_per_hour is not None else ", disks: no price"
    return observed + disks


def _num(x: float) -> str:
    return f"{x:g}"


def _count(workers: float) -> str:
    return f"{workers:g}"


def _point_json(p: Point) -> dict[str, float | None]:
    return {
        "workers": p.workers,
        "dbus": round(p.dbus, JSON_DECIMALS),
        "dbu_cost_usd": round(p.dbu_cost_usd, JSON_DECIMALS),
        "vm_cost_usd": round(p.vm_cost_usd, JSON_DECIMALS),
        "disk_cost_usd": None if p.disk_cost_usd is None else round(p.disk_cost_usd, JSON_DECIMALS),
        "total_cost_usd": round(p.total_cost_usd, JSON_DECIMALS),
    }


def _rates_json(r: NodeRates) -> dict[str, Any]:
    return {
        "node_type_id": r.node_type_id,
        "dbu_per_hour": r.dbu_per_hour,
        "vm_per_hour": r.vm_per_hour,
        "pricing": r.pricing,
        "disk_per_hour": r.disk_per_hour,
        "vm_price_source": r.vm_price_source,
    }


# ------------------------------------------------------------------------------------------- helpers
def _worker_range(workers: int | None, min_workers: int | None, max_workers: int | None) -> tuple[int, int]:
    if workers is not None and (min_workers is not None or max_workers is not None):
        raise PreflightInputError("give workers (fixed size) or min_workers and max_workers (autoscaling), not both")
    if workers is not None:
        lo = hi = workers
    elif min_workers is not None and max_workers is not None:
        lo, hi = min_workers, max_workers
    else:
        raise PreflightInputError("give workers (fixed size) or both min_workers and max_workers (autoscaling)")
    if isinstance(lo, bool) or isinstance(hi, bool) or not (isinstance(lo, int) and isinstance(hi, int)):
        raise PreflightInputError(f"worker counts must be whole numbers, got {lo!r} and {hi!r}")
    if lo < 0 or hi < 0:
        raise PreflightInputError(f"worker counts must be >= 0, got {lo} and {hi}")
    if lo > hi:
        raise PreflightInputError(f"min_workers {lo} is more than max_workers {hi}")
    return lo, hi


def _node(sheet: PriceSheet, cloud: str, node_type_id: str, at: dt.datetime) -> NodeType:
    """The sheet's lookup; an unknown node type's error also names the closest known ones."""
    try:
        return sheet.node(cloud, node_type_id, at)
    except UnknownPriceError as e:
        known = sorted({s.row.node_type_id for s in sheet.instance_types if s.row.cloud == cloud})
        close = difflib.get_close_matches(node_type_id, known, n=3)
        if close and node_type_id not in known:
            raise UnknownPriceError(f"{e}; did you mean {', '.join(close)}?") from None
        raise
