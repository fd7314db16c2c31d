"""The simulated world's cloud bill: what Azure or AWS charge for the VMs, disks and network of the world.

Derived from the VMs the generator decided (``world.Node``), like the DBU bill, so it covers everything a
real cost export has and the DBU bill does not: start-up and tear-down (a VM is paid from request to
release, DBUs only while it is ready), pool idle instances, and the charges around the VMs:

* **VMs**, one charge per VM and hour (the part of the hour it ran). On-demand VMs pay the price sheet's
  on-demand price; spot VMs the **hour's market price** (the sheet's spot price times a factor between
  :data:`SPOT_LOW` and :data:`SPOT_HIGH` drawn per node type and hour), so the sheet's one spot price is
  right on average only;
* **a reservation** of :data:`RESERVED_INSTANCES` instances of the cloud's first node type: each hour it
  covers that type's on-demand VM charges, in resource id order, while whole charges fit in what is left
  of the hour's reserved instance-hours. A covered charge is billed $0 and its effective cost is the
  amortized price (on-demand × (1 − :data:`RESERVATION_DISCOUNT`)); what the hour leaves unused is an
  unused-reservation charge of the reservation itself (not a Databricks resource);
* **managed disks**: each VM's, for as long as the VM exists, at the price sheet's disk price of its node
  type (``disk_type`` × ``disks_per_node``, e.g. one Premium SSD P10 per Azure VM), tagged like its VM;
* **a little network**: data transfer out of each cluster's (or pool's) first VM, once per day it runs;
* **untagged resources**: the workspace's public IP (a Databricks resource without a cluster tag), a VM
  now and then whose cluster tags did not reach the bill (:data:`UNTAGGED_SHARE`), and another team's
  storage account (not Databricks at all).

Tags follow Databricks: a cluster's own VMs carry ``ClusterId``, ``ClusterName``, ``Creator``,
``Vendor=Databricks`` and the cluster's custom tags (a job's ``JobId`` / ``RunName`` among them); VMs of
an instance pool — idle or used by a cluster — carry the pool's tags only (``DatabricksInstancePoolId``).

Two shapes (``docs/cloud-bill.md``): ``focus`` (hourly FOCUS 1.0 rows, Microsoft or AWS as the provider)
and ``azure`` (the Azure cost details **amortized** export: one row per resource, meter and day). The
ground truth the estimate is measured against is :func:`true_vm_costs`: every VM's effective cost per
cluster (or pool) and hour, whatever the tags say.

Deterministic and anchored to the calendar like the world: every draw is a stable hash of the seed and
the resource or hour, never of which window was generated.
"""

import dataclasses
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

import polars as pl

from cost_assets.prices import PriceSheet, load_price_sheet
from cost_assets.simulation.world import ANCHOR, DAY, HOUR, NODE_TYPES, World, WorldConfig, stable_id, world_for
from cost_assets.timeutil import day_start_ms, from_ms

SHAPES = ("focus", "azure")
# The spot market: the hour's price is the sheet's spot price × a factor in [SPOT_LOW, SPOT_HIGH].
SPOT_LOW, SPOT_HIGH = 0.7, 1.4
# One reservation (1 year, paid up front) of the cloud's first node type.
RESERVED_INSTANCES = 2
RESERVATION_DISCOUNT = 0.4
# Data transfer out: $ per GB, and 0.1–2 GB per cluster (or pool) and day.
EGRESS_PER_GB = {"AZURE": 0.087, "AWS": 0.09}
PUBLIC_IP_PER_HOUR = 0.005
OTHER_TEAM_STORAGE_PER_DAY = 1.25
OTHER_TEAM_STORAGE = {
    "AZURE": "/subscriptions/3f2a9b1c-5d7e-4f60-8a1b-2c3d4e5f6a7b/resourceGroups/web-prod/providers/"
    "Microsoft.Storage/storageAccounts/webassets",
    "AWS": "arn:aws:s3:::web-assets",
}
# The share of VMs (by a stable hash of their id) whose cluster tags did not reach the bill.
UNTAGGED_SHARE = 0.02
SUBSCRIPTION = "3f2a9b1c-5d7e-4f60-8a1b-2c3d4e5f6a7b"
AWS_ACCOUNT = "123456789012"
TRUTH_COLUMNS = {
    "resource_kind": pl.Utf8,
    "resource_key": pl.Utf8,
    "hour_start": pl.Datetime("us"),
    "true_vm_cost_usd": pl.Float64,
    "true_disk_cost_usd": pl.Float64,
}


@dataclass(frozen=True)
class Charge:
    """One hourly charge before it is put in an export's shape."""

    hour: int  # epoch ms of the hour it falls in
    resource_id: str
    kind: str  # vm | disk | network | public_ip | storage | unused_reservation
    node_type: str | None
    pricing: str  # on_demand | spot | reservation
    quantity: float  # hours (VM, disk, IP), GB (network), days (storage)
    billed: float
    effective: float
    listed: float
    tags: tuple[tuple[str, str], ...]
    truth_key: tuple[str, str] | None  # (resource_kind, resource_key) of a Databricks VM or its disk, for the truth


def spot_factor(config: WorldConfig, node_type: str, hour_ms: int) -> float:
    """The hour's spot market price ÷ the sheet's spot price, the same for every VM of the node type."""
    u = int(stable_id(config.seed, "spot", config.cloud, node_type, hour_ms, length=8), 16) / 16**8
    return SPOT_LOW + (SPOT_HIGH - SPOT_LOW) * u


def _draw(config: WorldConfig, *parts: object) -> float:
    """A stable number in [0, 1) for a resource."""
    return int(stable_id(config.seed, *parts, length=8), 16) / 16**8


def _resource(config: WorldConfig, kind: str, name: str) -> str:
    """A resource id of the cloud: Azure's managed resource group of the workspace, or an AWS ARN."""
    if config.cloud == "AZURE":
        group = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/databricks-rg-ws{config.workspace_id}"
        provider = {
            "vm": "Microsoft.Compute/virtualMachines",
            "disk": "Microsoft.Compute/disks",
            "public_ip": "Microsoft.Network/publicIPAddresses",
        }[kind]
        return f"{group}/providers/{provider}/{name}"
    what = {"vm": "instance/i-", "disk": "volume/vol-", "public_ip": "ipv4pool-ec2/eipalloc-"}[kind]
    return f"arn:aws:ec2:us-east-1:{AWS_ACCOUNT}:{what}{name}"


def _hours(start: int, end: int):
    """(hour, hours of [start, end) in it) for every hour the interval touches."""
    h = start // HOUR * HOUR
    while h < end:
        a, b = max(start, h), min(end, h + HOUR)
        if b > a:
            yield h, (b - a) / HOUR
        h += HOUR


def _vm_lives(world: World):
    """Every VM of the world: (id, node type, spot, from, to, tags, truth key); pool idle VMs included."""
    cfg = world.config
    lo, hi = cfg.span_ms
    for cid in sorted(world.clusters):
        c = world.clusters[cid]
        if c.pool_id:
            pool = world.pools[c.pool_id]
            tags = {**pool.custom_tags, "DatabricksInstancePoolId": pool.pool_id, "Vendor": "Databricks"}
            key = ("pool", pool.pool_id.lower())
        else:
            tags = {**c.custom_tags, "ClusterId": cid, "ClusterName": c.name, "Creator": c.creator}
            tags["Vendor"] = "Databricks"
            key = ("cluster", cid.lower())
        for s in c.sessions:
            for i, n in enumerate(s.nodes):
                a, b = max(n.provisioned, lo), min(n.released, s.end, hi)
                if b > a:
                    yield stable_id(cid, s.start, i, length=12), n.node_type, n.spot, a, b, tags, key
    for pool_id in sorted(world.pools):
        pool = world.pools[pool_id]
        tags = {**pool.custom_tags, "DatabricksInstancePoolId": pool_id, "Vendor": "Databricks"}
        for d in range(-1, cfg.days + 1):
            day0 = cfg.start_ms + d * DAY
            if from_ms(day0).date() < ANCHOR:
                continue
            for i in range(pool.min_idle):  # the warm instances, renewed (and billed) day by day
                vm = stable_id(pool_id, day0, i, length=12)
                yield vm, pool.node_type, False, day0, day0 + DAY, tags, ("pool", pool_id.lower())


def _raw_charges(world: World, sheet: PriceSheet) -> list[Charge]:
    """Every charge of the world's span, before the reservation is applied."""
    cfg = world.config
    out: list[Charge] = []
    network: dict[tuple[tuple[str, str], int], tuple[str, tuple]] = {}
    for vm, node_type, spot, a, b, tags, key in _vm_lives(world):
        lost = _draw(cfg, "untagged", vm) < UNTAGGED_SHARE
        vm_tags = tuple(sorted(({"Vendor": "Databricks"} if lost else tags).items()))
        vm_id, disk_id = _resource(cfg, "vm", vm), _resource(cfg, "disk", f"{vm}-osdisk")
        for hour, q in _hours(a, b):
            node = sheet.node(cfg.cloud, node_type, from_ms(hour))
            od = node.vm_on_demand_per_hour * q
            price = od if not spot else node.vm_spot_per_hour * spot_factor(cfg, node_type, hour) * q
            pricing = "spot" if spot else "on_demand"
            out.append(Charge(hour, vm_id, "vm", node_type, pricing, q, price, price, od, vm_tags, key))
            if node.disk_per_hour is None:
                raise ValueError(
                    f"the price sheet has no disk price for {cfg.cloud} {node_type}: the simulated bill needs one"
                )
            disk = node.disk_per_hour * q
            out.append(Charge(hour, disk_id, "disk", None, "on_demand", q, disk, disk, disk, vm_tags, key))
        # a cluster's (or pool's) first VM of a day sends data out, once per day
        network.setdefault((key, a // DAY), (vm_id, vm_tags))
    for (_, day), (vm_id, vm_tags) in sorted(network.items()):
        gb = (1 + int(_draw(cfg, "egress", vm_id, day) * 20)) / 10
        cost = gb * EGRESS_PER_GB[cfg.cloud]
        out.append(
            Charge(day * DAY + 12 * HOUR, vm_id, "network", None, "on_demand", gb, cost, cost, cost, vm_tags, None)
        )
    lo, hi = cfg.span_ms
    # The workspace's public IP: Azure's managed resource group makes it Databricks; on AWS only the
    # Vendor tag does. Neither names a cluster: untagged.
    # (AWS ids are the account's, not a resource group's: the workspace id keeps an account's IPs apart.)
    ip = _resource(cfg, "public_ip", "workspace-nat-ip" if cfg.cloud == "AZURE" else f"nat-ip-{cfg.workspace_id}")
    ip_tags = (("Vendor", "Databricks"),) if cfg.cloud == "AWS" else ()
    other = OTHER_TEAM_STORAGE[cfg.cloud]
    for hour in range(max(lo, day_start_ms(ANCHOR)), hi, HOUR):
        out.append(Charge(hour, ip, "public_ip", None, "on_demand", 1.0, *[PUBLIC_IP_PER_HOUR] * 3, ip_tags, None))
        if hour % DAY == 0:
            cost = OTHER_TEAM_STORAGE_PER_DAY
            out.append(
                Charge(hour, other, "storage", None, "on_demand", 1.0, cost, cost, cost, (("team", "web"),), None)
            )
    return out


def reserved_node_type(config: WorldConfig) -> str:
    """The node type the workspace's reservation is for: the cloud's first."""
    return NODE_TYPES[config.cloud][0]


def apply_reservation(
    config: WorldConfig, charges: list[Charge], hours: Iterable[int], on_demand: Callable[[int], float]
) -> list[Charge]:
    """Each of ``hours``, the reserved node type's on-demand VM charges in resource id order are covered
    while the whole charge fits in the instance-hours left (billed $0, effective = list × (1 − discount));
    the unused instance-hours are a charge of the reservation (billed $0, effective at the amortized price
    of ``on_demand(hour)``, the reserved type's on-demand $/h): a reservation is paid whether used or not."""
    reserved = reserved_node_type(config)
    by_hour: dict[int, list[int]] = defaultdict(list)
    for i, ch in enumerate(charges):
        if ch.kind == "vm" and ch.pricing == "on_demand" and ch.node_type == reserved:
            by_hour[ch.hour].append(i)
    out = list(charges)
    rid = reservation_id(config)
    for hour in hours:
        left = float(RESERVED_INSTANCES)
        for i in sorted(by_hour.get(hour, []), key=lambda i: charges[i].resource_id):
            ch = charges[i]
            if ch.quantity <= left + 1e-12:
                left -= ch.quantity
                amortized = ch.listed * (1 - RESERVATION_DISCOUNT)
                out[i] = dataclasses.replace(ch, pricing="reservation", billed=0.0, effective=amortized)
        if left > 1e-12:
            unused = left * on_demand(hour) * (1 - RESERVATION_DISCOUNT)
            out.append(
                Charge(hour, rid, "unused_reservation", reserved, "reservation", left, 0.0, unused, 0.0, (), None)
            )
    return out


def reservation_id(config: WorldConfig) -> str:
    """The reservation's resource id (Azure's reservation order, AWS's reserved instances)."""
    name = stable_id(config.seed, "reservation", length=8)
    if config.cloud == "AZURE":
        return f"/providers/Microsoft.Capacity/reservationOrders/{name}"
    return f"arn:aws:ec2:us-east-1:{AWS_ACCOUNT}:reserved-instances/{name}"


@lru_cache(maxsize=4)
def charges_for(config: WorldConfig) -> tuple[Charge, ...]:
    """Every charge of the world of ``config`` (cached: the resource asks per set of days)."""
    world, sheet = world_for(config), load_price_sheet()
    lo, hi = config.span_ms
    node = reserved_node_type(config)
    hours = range(max(lo, day_start_ms(ANCHOR)), hi, HOUR)

    def on_demand(hour: int) -> float:
        return sheet.node(config.cloud, node, from_ms(hour)).vm_on_demand_per_hour

    return tuple(apply_reservation(config, _raw_charges(world, sheet), hours, on_demand))


def true_vm_costs(config: WorldConfig) -> pl.DataFrame:
    """The ground truth: every VM's effective cost (spot at the hour's price, reserved at the amortized
    price) and its disks' per cluster or pool and hour, keyed like ``mart/vm_reconciliation`` — tags lost
    or not."""
    acc: dict[tuple[str, str, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for ch in charges_for(config):
        if ch.truth_key is not None:
            acc[(*ch.truth_key, ch.hour)][ch.kind == "disk"] += ch.effective
    rows = [(k, key, from_ms(h), vm, disk) for (k, key, h), (vm, disk) in sorted(acc.items())]
    return pl.DataFrame(rows, schema=TRUTH_COLUMNS, orient="row")


# --- the export shapes --------------------------------------------------------------------------------------

AZURE_METERS = {
    "vm": ("Virtual Machines", "Microsoft.Compute/virtualMachines"),
    "disk": ("Storage", "Microsoft.Compute/disks"),
    "network": ("Bandwidth", "Microsoft.Compute/virtualMachines"),
    "public_ip": ("Virtual Network", "Microsoft.Network/publicIPAddresses"),
    "storage": ("Storage", "Microsoft.Storage/storageAccounts"),
    "unused_reservation": ("Virtual Machines", "Microsoft.Capacity/reservationOrders"),
}
AWS_USAGE = {
    "vm": "BoxUsage:{node}",
    "disk": "EBS:VolumeUsage.gp3",
    "network": "DataTransfer-Out-Bytes",
    "public_ip": "PublicIPv4:InUseAddress",
    "storage": "TimedStorage-ByteHrs",
    "unused_reservation": "UnusedBox:{node}",
}
AWS_SERVICES = {"storage": "Amazon Simple Storage Service"}
FOCUS_CATEGORY = {"vm": "Compute", "disk": "Storage", "network": "Networking", "public_ip": "Networking"}


def _sku(ch: Charge, cloud: str) -> str:
    if cloud == "AWS":
        usage = AWS_USAGE[ch.kind].format(node=ch.node_type)
        return usage.replace("BoxUsage", "SpotUsage") if ch.pricing == "spot" else usage
    return {
        "vm": f"{ch.node_type} {'Spot' if ch.pricing == 'spot' else ''}".strip(),
        "disk": "P10 LRS Disk",
        "network": "Standard Data Transfer Out",
        "public_ip": "Standard IPv4 Static Public IP",
        "storage": "Hot LRS Data Stored",
        "unused_reservation": f"{ch.node_type} Reservation",
    }[ch.kind]


def focus_frame(config: WorldConfig, days: list[dt.date]) -> pl.DataFrame:
    """The charges of ``days`` as a FOCUS 1.0 export (hourly; tags a JSON object)."""
    aws = config.cloud == "AWS"
    wanted = {day_start_ms(d) // DAY for d in days}
    rows = []
    for ch in charges_for(config):
        if ch.hour // DAY not in wanted:
            continue
        daily = ch.kind == "storage"
        rows.append(
            {
                "BillingAccountId": AWS_ACCOUNT if aws else "84210001",
                "SubAccountId": AWS_ACCOUNT if aws else SUBSCRIPTION,
                "ProviderName": "AWS" if aws else "Microsoft",
                "ChargePeriodStart": _iso(ch.hour),
                "ChargePeriodEnd": _iso(ch.hour + (DAY if daily else HOUR)),
                "ChargeCategory": "Usage",
                "ResourceId": ch.resource_id,
                "ServiceName": AWS_SERVICES.get(ch.kind, "Amazon Elastic Compute Cloud")
                if aws
                else AZURE_METERS[ch.kind][0],
                "ServiceCategory": FOCUS_CATEGORY.get(ch.kind, "Storage"),
                "ResourceType": None if aws else AZURE_METERS[ch.kind][1],
                "x_UsageType": _sku(ch, "AWS") if aws else None,
                "x_SkuDescription": _sku(ch, config.cloud),
                "PricingCategory": {"spot": "Dynamic", "reservation": "Committed"}.get(ch.pricing, "Standard"),
                "CommitmentDiscountType": "Reservation" if ch.pricing == "reservation" else None,
                "ConsumedQuantity": round(ch.quantity, 9),
                "BilledCost": round(ch.billed, 9),
                "EffectiveCost": round(ch.effective, 9),
                "ListCost": round(ch.listed, 9),
                "BillingCurrency": "USD",
                "Tags": json.dumps(dict(ch.tags), separators=(",", ":")) if ch.tags else None,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def azure_frame(config: WorldConfig, days: list[dt.date]) -> pl.DataFrame:
    """The charges of ``days`` as the Azure cost details **amortized** export: one row per resource,
    meter, pricing model and day; the cost is the effective one, the pay-as-you-go cost the list one;
    tags in the export's brace-less form."""
    if config.cloud != "AZURE":
        raise ValueError(f"the Azure cost details export is Azure's; the simulated workspace is on {config.cloud}")
    wanted = {day_start_ms(d) // DAY for d in days}
    acc: dict[tuple, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for ch in charges_for(config):
        if ch.hour // DAY in wanted:
            row = acc[(ch.hour // DAY * DAY, ch.resource_id, ch.kind, ch.pricing, ch.node_type, ch.tags)]
            row[0] += ch.quantity
            row[1] += ch.effective
            row[2] += ch.listed
    rows = []
    for (day, rid, kind, pricing, node_type, tags), (q, cost, listed) in sorted(acc.items(), key=lambda kv: kv[0][:4]):
        ch = Charge(day, rid, kind, node_type, pricing, q, cost, cost, listed, tags, None)
        rows.append(
            {
                "Date": from_ms(day).strftime("%m/%d/%Y"),
                "BillingAccountId": "84210001",
                "SubscriptionId": SUBSCRIPTION,
                "ResourceId": rid,
                "MeterCategory": AZURE_METERS[kind][0],
                "MeterName": _sku(ch, "AZURE"),
                "ConsumedService": AZURE_METERS[kind][1].split("/")[0],
                "ResourceType": AZURE_METERS[kind][1],
                "PricingModel": {"spot": "Spot", "reservation": "Reservation"}.get(pricing, "OnDemand"),
                "ChargeType": "UnusedReservation" if kind == "unused_reservation" else "Usage",
                "Quantity": round(q, 9),
                "CostInBillingCurrency": round(cost, 9),
                "PaygCostInBillingCurrency": round(listed, 9),
                "BillingCurrency": "USD",
                "Tags": ",".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in tags),
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def export_frame(config: WorldConfig, shape: str, days: list[dt.date]) -> pl.DataFrame:
    """The simulated cost export of ``days`` in ``shape`` (``focus`` or ``azure``)."""
    return focus_frame(config, days) if shape == "focus" else azure_frame(config, days)


def _iso(ms: int) -> str:
    return from_ms(ms).strftime("%Y-%m-%dT%H:%M:%SZ")
