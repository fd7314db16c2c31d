"""Prices for cluster segments: DBU/h and VM $/h per node type, $/DBU per SKU, on half-open windows.

Why segments are cut first: a price row is valid on ``[start, end)``; a segment that straddles a change
instant would otherwise take one price for its whole length (or, with a naive range join, be dropped).
After cutting at every change instant inside it, the price valid at a segment's start holds for all of it.

How (fast): the change instants inside the window split it into a few *price epochs*. Prices are looked
up once per cluster × epoch with as-of joins on that small grid; each segment finds its epoch by a binary
search on its start and gathers its rates from the grid by (cluster group, epoch) index — no as-of or
hash join over millions of rows.

Rules:

* SKU = DbuPrices row with the cluster's (cloud, tier, workload, is_photon), valid at the segment start.
  Its ``photon_dbu_factor`` multiplies DBU/h (1.0 on non-Photon SKUs; data, never a code constant).
* ``dbus = hours × photon_dbu_factor × (driver_ready × driver DBU/h + ready_workers × worker DBU/h)``
  — DBUs are the same for spot and on-demand nodes.
* ``vm_cost_usd = hours × (driver_provisioned × driver $/h + on_demand_workers × on-demand $/h +
  spot_workers × spot $/h)``; the driver uses the spot price unless ``driver_on_demand``. A node type
  with no spot price is charged on-demand (over-estimate rather than $0).
* ``disk_cost_usd = hours × (driver_provisioned × driver disk $/h + provisioned_workers × worker disk $/h)``:
  a node's managed disks bill exactly while its VM does (start-up, idle, tear-down). A node type without a
  disk price (``disk_per_hour`` null or absent) leaves ``disk_cost_usd`` null on the segment: unknown, never
  $0 (the segment is not ``unpriced``: its DBUs and VMs are known; the engine flags the disk separately).
* ``dbu_list_cost_usd`` / ``dbu_contract_cost_usd`` / ``dbu_cost_usd`` use the list, contract and
  effective price; ``dbu_cost_usd`` (effective) is the one totals use.
* Only USD price rows are used (every money column is USD); a price in another currency counts as missing.
* A segment is ``unpriced`` when a price it needs is missing: the driver node type (cluster segments),
  the worker node type when it has workers, the SKU when it is DBU-billable. Its ``dbus`` and money are
  then null — never $0 — and the row is kept.
"""

import datetime as dt

import polars as pl

from cost_assets.costing.frames import ENGINE, Frame, group_starts, lazy
from cost_assets.costing.timeline import ATTRIBUTE_COLUMNS, SEGMENT_COLUMNS
from cost_assets.schemas import UTC_TS
from cost_assets.timeutil import EPOCH

US_PER_HOUR = 3_600_000_000.0
MONEY_COLUMNS = ["dbus", "dbu_list_cost_usd", "dbu_contract_cost_usd", "dbu_cost_usd", "vm_cost_usd", "disk_cost_usd"]
PRICE_COLUMNS = [
    "sku_name",
    "photon_dbu_factor",
    "list_price",
    "contract_price",
    "effective_price",
    "driver_dbu_per_hour",
    "driver_vm_on_demand_per_hour",
    "driver_vm_spot_per_hour",
    "worker_dbu_per_hour",
    "worker_vm_on_demand_per_hour",
    "worker_vm_spot_per_hour",
    "driver_disk_per_hour",
    "worker_disk_per_hour",
]
PRICED_COLUMNS = [*SEGMENT_COLUMNS, *PRICE_COLUMNS, "hours", *MONEY_COLUMNS, "total_cost_usd", "unpriced"]


def change_instants(instance_types: Frame, dbu_prices: Frame, lo: dt.datetime, hi: dt.datetime) -> pl.Series:
    """Sorted instants in ``(lo, hi)`` where any price starts or stops (an extra cut never changes a cost)."""
    it, dp = lazy(instance_types), lazy(dbu_prices)
    cuts = pl.concat(
        [
            it.select(pl.col("effective_from").alias("cut")),
            it.select(pl.col("effective_to").alias("cut")),
            dp.select(pl.col("price_start_time").alias("cut")),
            dp.select(pl.col("price_end_time").alias("cut")),
        ]
    )
    return (
        cuts.drop_nulls()
        .filter((pl.col("cut") > lo) & (pl.col("cut") < hi))
        .unique()
        .sort("cut")
        .collect(engine=ENGINE)
        .to_series()
        .cast(UTC_TS)
    )


def cut_at(segments: pl.LazyFrame, cuts: pl.Series) -> pl.LazyFrame:
    """Split segments at the given instants strictly inside them (segments never span an hour)."""
    inside_hour = cuts.filter(cuts != cuts.dt.truncate("1h"))  # segments are already cut at hours
    if inside_hour.is_empty():
        return segments
    changes = pl.LazyFrame({"cut": inside_hour}).with_columns(pl.col("cut").dt.truncate("1h").alias("hour_start"))
    seg = segments.with_row_index("_seg")
    extra = (
        seg.select("_seg", "hour_start", "segment_start", "segment_end")
        .join(changes, on="hour_start", how="inner")
        .filter((pl.col("cut") > pl.col("segment_start")) & (pl.col("cut") < pl.col("segment_end")))
        .select("_seg", "cut")
    )
    touched = extra.select("_seg").unique()
    bounds = (
        pl.concat(
            [seg.join(touched, on="_seg", how="semi").select("_seg", pl.col("segment_start").alias("cut")), extra]
        )
        .sort(["_seg", "cut"])
        .with_columns(pl.when(pl.col("_seg") == pl.col("_seg").shift(-1)).then(pl.col("cut").shift(-1)).alias("_next"))
    )
    split = (
        seg.join(bounds, on="_seg", how="inner")
        .with_columns(pl.col("cut").alias("segment_start"), pl.coalesce("_next", "segment_end").alias("segment_end"))
        .drop("cut", "_next")
    )
    kept = seg.join(touched, on="_seg", how="anti", maintain_order="left")
    return pl.concat([kept, split]).sort("_seg", "segment_start").drop("_seg")


def _asof(frame: pl.LazyFrame, prices: pl.LazyFrame, from_col: str, to_col: str, by: list[str], values: list[str]):
    """Backward as-of on the epoch start, then enforce the half-open window's end."""
    joined = frame.join_asof(
        prices, left_on="_epoch_start", right_on=from_col, by=by, strategy="backward", check_sortedness=False
    )
    valid = pl.col(to_col).is_null() | (pl.col("_epoch_start") < pl.col(to_col))
    return joined.with_columns(pl.when(valid).then(pl.col(c)).alias(c) for c in values).drop(from_col, to_col)


def _node_prices(instance_types: Frame, role: str) -> pl.LazyFrame:
    frame = lazy(instance_types)
    has_disk = "disk_per_hour" in frame.collect_schema().names()  # a sheet from before disks: unknown
    return (
        frame.filter(pl.col("currency_code") == "USD")
        .select(
            "cloud",
            pl.col("node_type_id").alias(f"{role}_node_type_id"),
            pl.col("effective_from").alias(f"_{role}_from"),
            pl.col("effective_to").alias(f"_{role}_to"),
            pl.col("dbu_per_hour").alias(f"{role}_dbu_per_hour"),
            pl.col("vm_on_demand_per_hour").alias(f"{role}_vm_on_demand_per_hour"),
            pl.coalesce("vm_spot_per_hour", "vm_on_demand_per_hour").alias(f"{role}_vm_spot_per_hour"),
            (pl.col("disk_per_hour") if has_disk else pl.lit(None, pl.Float64)).alias(f"{role}_disk_per_hour"),
        )
        .sort(f"_{role}_from")
    )


def price_table(
    attributes: Frame, instance_types: Frame, dbu_prices: Frame, tier: str, epoch_starts: list[dt.datetime]
) -> pl.LazyFrame:
    """Rates per cluster × price epoch: SKU and $/DBU, Photon factor, DBU/h and VM $/h of driver and worker."""
    epochs = pl.LazyFrame(
        {
            "epoch": pl.Series(range(len(epoch_starts)), dtype=pl.UInt32),
            "_epoch_start": pl.Series(epoch_starts, dtype=UTC_TS),
        }
    )
    grid = (
        lazy(attributes)
        .unique("cluster_id", keep="first", maintain_order=False)
        .join(epochs, how="cross")
        .rename({"node_type_id": "worker_node_type_id"})
        .sort("_epoch_start")
    )
    skus = (
        lazy(dbu_prices)
        .filter((pl.col("tier") == tier.upper()) & (pl.col("currency_code") == "USD"))
        .select(
            "cloud",
            "workload",
            "is_photon",
            "sku_name",
            "photon_dbu_factor",
            "list_price",
            "contract_price",
            "effective_price",
            pl.col("price_start_time").alias("_sku_from"),
            pl.col("price_end_time").alias("_sku_to"),
        )
        .sort("_sku_from")
    )
    grid = _asof(grid, skus, "_sku_from", "_sku_to", ["cloud", "workload", "is_photon"], PRICE_COLUMNS[:5])
    for role in ("driver", "worker"):
        values = [f"{role}_{c}" for c in ("dbu_per_hour", "vm_on_demand_per_hour", "vm_spot_per_hour", "disk_per_hour")]
        grid = _asof(
            grid,
            _node_prices(instance_types, role),
            f"_{role}_from",
            f"_{role}_to",
            ["cloud", f"{role}_node_type_id"],
            values,
        )
    return grid.select("cluster_id", "epoch", *PRICE_COLUMNS)


def _costs() -> list[pl.Expr]:
    hours = (pl.col("segment_end") - pl.col("segment_start")).dt.total_microseconds() / US_PER_HOUR
    is_cluster = pl.col("segment_kind") == "cluster"
    has_workers = (pl.col("provisioned_workers") > 0) | (pl.col("ready_workers") > 0)
    unpriced = (
        (is_cluster & pl.col("driver_dbu_per_hour").is_null())
        | (has_workers & pl.col("worker_dbu_per_hour").is_null())
        | (pl.col("dbu_billable") & pl.col("sku_name").is_null())
    )

    def nodes(count: pl.Expr, rate: pl.Expr) -> pl.Expr:
        """count × rate with 0 × unknown = 0, so a single node never needs a worker price."""
        return pl.when(count > 0).then(count * rate).otherwise(0.0)

    driver_ready = pl.col("driver_ready").cast(pl.Int64)
    driver_up = pl.col("driver_provisioned").cast(pl.Int64)
    node_dbu = nodes(driver_ready, pl.col("driver_dbu_per_hour")) + nodes(
        pl.col("ready_workers"), pl.col("worker_dbu_per_hour")
    )
    dbus = hours * pl.when(node_dbu == 0).then(0.0).otherwise(node_dbu * pl.col("photon_dbu_factor"))
    driver_vm = (
        pl.when(pl.col("driver_on_demand"))
        .then(pl.col("driver_vm_on_demand_per_hour"))
        .otherwise(pl.col("driver_vm_spot_per_hour"))
    )
    vm_rate = (
        nodes(driver_up, driver_vm)
        + nodes(pl.col("on_demand_workers"), pl.col("worker_vm_on_demand_per_hour"))
        + nodes(pl.col("spot_workers"), pl.col("worker_vm_spot_per_hour"))
    )
    disk_rate = nodes(driver_up, pl.col("driver_disk_per_hour")) + nodes(
        pl.col("provisioned_workers"), pl.col("worker_disk_per_hour")
    )
    dbu_cost = (dbus * pl.col("effective_price")).fill_null(0.0)
    vm_cost = hours * vm_rate
    disk_cost = hours * disk_rate
    return [
        hours.alias("hours"),
        unpriced.alias("unpriced"),
        dbus.alias("dbus"),
        (dbus * pl.col("list_price")).fill_null(0.0).alias("dbu_list_cost_usd"),
        (dbus * pl.col("contract_price")).fill_null(0.0).alias("dbu_contract_cost_usd"),
        dbu_cost.alias("dbu_cost_usd"),
        vm_cost.alias("vm_cost_usd"),
        disk_cost.alias("disk_cost_usd"),
        (dbu_cost + vm_cost + disk_cost.fill_null(0.0)).alias("total_cost_usd"),
    ]


def _rates(seg: pl.DataFrame, table: pl.LazyFrame, n_epochs: int) -> list[pl.Series]:
    """Each segment's rates, gathered from a small (cluster group × epoch) grid instead of a hash join.

    Segments come grouped by cluster, so a group index (cum-sum of group starts) and the epoch address
    the grid directly. Any order works (a cluster seen twice is two groups), only speed relies on it.
    """
    starts = group_starts("cluster_id")
    group = seg.select((starts.cum_sum() - 1).cast(pl.UInt32)).to_series()
    grid = (
        seg.lazy()
        .filter(starts)
        .select("cluster_id")
        .with_row_index("_g")
        .join(pl.LazyFrame({"epoch": pl.Series(range(n_epochs), dtype=pl.UInt32)}), how="cross")
        .join(table, on=["cluster_id", "epoch"], how="left")
        .sort("_g", "epoch")
        .collect(engine=ENGINE)
    )
    index = group.cast(pl.UInt64) * n_epochs + seg["epoch"].cast(pl.UInt64)
    return [grid[c].gather(index) for c in PRICE_COLUMNS]


def price_segments_lazy(
    segments: Frame, instance_types: Frame, dbu_prices: Frame, tier: str = "PREMIUM", attributes: Frame | None = None
) -> pl.LazyFrame:
    """Lazy pricing of (materialized) segments; ``attributes`` (per cluster_id: ATTRIBUTE_COLUMNS) is taken
    from the segments themselves when not given, so the engine can price slim core segments."""
    seg = segments.collect(engine=ENGINE) if isinstance(segments, pl.LazyFrame) else segments
    if attributes is None:
        attributes = seg.select("cluster_id", *ATTRIBUTE_COLUMNS).unique("cluster_id")
    lo = seg["segment_start"].min() if seg.height else None
    hi = seg["segment_end"].max() if seg.height else None
    cuts = change_instants(instance_types, dbu_prices, lo, hi) if seg.height else pl.Series("cut", [], dtype=UTC_TS)
    epoch = pl.lit(cuts).search_sorted(pl.col("segment_start"), side="right") if cuts.len() else pl.lit(0)
    epoch_starts = [lo or EPOCH, *cuts]
    table = price_table(attributes, instance_types, dbu_prices, tier, epoch_starts)
    seg = cut_at(seg.lazy(), cuts).with_columns(epoch.cast(pl.UInt32).alias("epoch")).collect(engine=ENGINE)
    priced = seg.with_columns(_rates(seg, table, len(epoch_starts))).lazy().drop("epoch").with_columns(_costs())
    money = [*MONEY_COLUMNS, "total_cost_usd"]
    return priced.with_columns(pl.when(~pl.col("unpriced")).then(pl.col(c)).alias(c) for c in money)


def price_segments(segments: Frame, instance_types: Frame, dbu_prices: Frame, tier: str = "PREMIUM") -> pl.DataFrame:
    """Priced segments: the timeline columns plus rates, ``hours``, ``dbus``, money and ``unpriced``.

    Segments are first cut at every price change inside them, so the output may have more rows than
    the input; the sum of any money column over a cluster is unchanged by the cuts.
    """
    return (
        price_segments_lazy(segments, instance_types, dbu_prices, tier)
        .select(PRICED_COLUMNS)
        .sort(["cluster_id", "segment_start"])
        .collect(engine=ENGINE)
    )
