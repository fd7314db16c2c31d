"""Ground truth of a simulated world: what every cluster-hour and every run really cost.

Computed from the VMs the generator decided (``world.Node``), not from the events the API shows, so a
test can measure how close the engine's estimate from events gets to reality. Sharing follows the cost
model (``docs/design.md``): a job cluster's whole cost is its run's; a shared cluster's cost in each
elementary interval is split equally among the task runs active in it, and intervals with none are ``idle``.

Only the world's span counts (``WorldConfig.span_ms``): the always-on cluster runs for decades, and the
days outside the window are partial anyway.

Deliberately written as plain Python loops over a small world (it is the reference, not the fast path).
"""

import bisect
import itertools
from collections import defaultdict
from functools import lru_cache

import polars as pl

from cost_assets.prices import PriceSheet, load_price_sheet
from cost_assets.simulation.world import ANCHOR, DAY, HOUR, Cluster, World, WorldConfig, world_for
from cost_assets.timeutil import from_ms, to_ms


def price_cuts(sheet: PriceSheet) -> list[int]:
    """Instants where any price or DBU rate changes: costs are integrated piecewise between them."""
    frames = [
        sheet.instance_types_frame().select(pl.col("effective_from").alias("t")),
        sheet.instance_types_frame().select(pl.col("effective_to").alias("t")),
        sheet.dbu_prices_frame().select(pl.col("price_start_time").alias("t")),
        sheet.dbu_prices_frame().select(pl.col("price_end_time").alias("t")),
    ]
    instants = pl.concat(frames).drop_nulls().unique()["t"].to_list()
    return sorted(to_ms(t) for t in instants)


class _Rates:
    """Cost per hour of one cluster's nodes at an instant (cached per price epoch)."""

    def __init__(self, world: World, sheet: PriceSheet, cuts: list[int]):
        self.world, self.sheet, self.cuts = world, sheet, cuts
        self._skus: dict = {}
        self._nodes: dict = {}

    def _epoch(self, t: int) -> int:
        """Index of the price epoch holding ``t``: every price window starts and ends on a cut."""
        return bisect.bisect_right(self.cuts, t)

    def sku(self, c: Cluster, t: int):
        key = (c.workload, c.photon, self._epoch(t))
        if key not in self._skus:
            cfg = self.world.config
            self._skus[key] = self.sheet.sku(cfg.cloud, cfg.tier, c.workload, c.photon, from_ms(t))
        return self._skus[key]

    def node(self, node_type: str, t: int):
        key = (node_type, self._epoch(t))
        if key not in self._nodes:
            self._nodes[key] = self.sheet.node(self.world.config.cloud, node_type, from_ms(t))
        return self._nodes[key]


def _pieces(start: int, end: int, cuts: list[int]):
    """Split [start, end) at hour boundaries and price-change instants (nothing when it is empty, e.g. a
    node outside the world's span)."""
    if end <= start:
        return []
    points = {start, end}
    h = (start // HOUR + 1) * HOUR
    while h < end:
        points.add(h)
        h += HOUR
    points.update(c for c in cuts if start < c < end)
    ordered = sorted(points)
    return list(itertools.pairwise(ordered))


def cluster_hours(world: World, sheet: PriceSheet) -> pl.DataFrame:
    """Truth per cluster × hour × SKU: billed DBUs, machine hours, DBU $ (effective price) and VM $."""
    rates = _Rates(world, sheet, price_cuts(sheet))
    lo, hi = world.config.span_ms
    acc: dict[tuple[str, int, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for cid in sorted(world.clusters):
        c = world.clusters[cid]
        for s in c.sessions:
            for n in s.nodes:
                # DBUs: ready and the cluster RUNNING/RESIZING (from RUNNING to TERMINATING).
                for a, b in _pieces(max(n.ready, s.running, lo), min(n.released, s.end, hi), rates.cuts):
                    sku, node = rates.sku(c, a), rates.node(n.node_type, a)
                    dbus = node.dbu_per_hour * sku.photon_dbu_factor * (b - a) / HOUR
                    row = acc[(cid, a // HOUR * HOUR, sku.sku_name)]
                    row[0] += dbus
                    row[2] += dbus * sku.effective_price
                # VMs: from request to release, spot or on-demand price.
                for a, b in _pieces(max(n.provisioned, lo), min(n.released, s.end, hi), rates.cuts):
                    sku, node = rates.sku(c, a), rates.node(n.node_type, a)
                    price = node.vm_spot_per_hour if n.spot else node.vm_on_demand_per_hour
                    row = acc[(cid, a // HOUR * HOUR, sku.sku_name)]
                    row[1] += (b - a) / HOUR
                    row[3] += price * (b - a) / HOUR
    rows = [
        {
            "cluster_id": k[0],
            "hour_start": from_ms(k[1]),
            "sku_name": k[2],
            "dbus": v[0],
            "machine_hours": v[1],
            "dbu_cost_usd": v[2],
            "vm_cost_usd": v[3],
        }
        for k, v in sorted(acc.items())
    ]
    return pl.DataFrame(
        rows,
        schema={
            "cluster_id": pl.Utf8,
            "hour_start": pl.Datetime("us"),
            "sku_name": pl.Utf8,
            "dbus": pl.Float64,
            "machine_hours": pl.Float64,
            "dbu_cost_usd": pl.Float64,
            "vm_cost_usd": pl.Float64,
        },
    )


def run_costs(world: World, sheet: PriceSheet) -> pl.DataFrame:
    """Truth per (job run or idle) × cluster × day: DBUs and dollars under the sharing policy."""
    rates = _Rates(world, sheet, price_cuts(sheet))
    lo, hi = world.config.span_ms
    tasks_by_cluster: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)
    for run in world.runs:
        for t in run.tasks:
            tasks_by_cluster[t.cluster_id].append((t.start, t.end, run.run_id, run.job_id))
    acc: dict[tuple[int, str, int | None, int | None], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for cid in sorted(world.clusters):
        c = world.clusters[cid]
        tasks = tasks_by_cluster.get(cid, [])
        owner = None
        if c.source == "JOB":
            owner = next(((r, j) for _, _, r, j in tasks), None)
        for s in c.sessions:
            start, end = max(s.start, lo), min(s.end, hi)
            points = {start, end}
            for n in s.nodes:
                points.update((n.provisioned, n.ready, n.released))
            # Only the tasks overlapping the session can be active in it.
            here = [t for t in tasks if t[0] <= end and t[1] >= start]
            for t0, t1, _, _ in here:
                points.update((t0, t1))
            h = (start // HOUR + 1) * HOUR
            while h < end:
                points.add(h)
                h += HOUR
            points.update(x for x in rates.cuts if start < x < end)
            ordered = sorted(p for p in points if start <= p <= end)
            # The active tasks are swept along the intervals rather than found by a scan of every task per
            # interval (quadratic on a long-lived cluster over 90 days); kept in task order, so the shares
            # add up in the same order as the scan's.
            by_start = sorted(range(len(here)), key=lambda k: here[k][0])
            added, live = 0, set()
            for a, b in itertools.pairwise(ordered):
                sku = rates.sku(c, a)
                dbus = vm = 0.0
                for n in s.nodes:
                    node = rates.node(n.node_type, a)
                    if max(n.ready, s.running) <= a and b <= n.released:
                        dbus += node.dbu_per_hour * sku.photon_dbu_factor * (b - a) / HOUR
                    if n.provisioned <= a and b <= n.released:
                        price = node.vm_spot_per_hour if n.spot else node.vm_on_demand_per_hour
                        vm += price * (b - a) / HOUR
                if owner is not None:
                    shares = {owner: 1.0}
                else:  # equal split per active task run, summed to its job run; nobody → idle
                    while added < len(by_start) and here[by_start[added]][0] <= a:
                        live.add(by_start[added])
                        added += 1
                    live = {k for k in live if b <= here[k][1]}  # t0 <= a and b <= t1
                    active = [here[k][2:] for k in sorted(live)]
                    shares = defaultdict(float)
                    for x in active:
                        shares[x] += 1 / len(active)
                    if not active:
                        shares[(None, None)] = 1.0
                for (run_id, job_id), share in shares.items():
                    row = acc[(a // DAY * DAY, cid, run_id, job_id)]
                    row[0] += dbus * share
                    row[1] += dbus * sku.effective_price * share
                    row[2] += vm * share
    # Instance pools keep their minimum of idle VMs warm all day from their creation: VM $ (on-demand),
    # no DBUs, idle.
    for pool_id in sorted(world.pools):
        pool = world.pools[pool_id]
        for d in range(-1, world.config.days):
            day = world.config.start_ms + d * DAY
            if from_ms(day).date() < ANCHOR:
                continue
            rate = rates.node(pool.node_type, day).vm_on_demand_per_hour
            acc[(day, pool_id, None, None)][2] += pool.min_idle * rate * 24
    rows = [
        {
            "usage_date": from_ms(k[0]).date(),
            "cluster_id": k[1],
            "run_id": k[2],
            "job_id": k[3],
            "consumer": "run" if k[2] is not None else "idle",
            "dbus": v[0],
            "dbu_cost_usd": v[1],
            "vm_cost_usd": v[2],
            "total_cost_usd": v[1] + v[2],
        }
        for k, v in sorted(acc.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0))
    ]
    return pl.DataFrame(
        rows,
        schema={
            "usage_date": pl.Date,
            "cluster_id": pl.Utf8,
            "run_id": pl.Int64,
            "job_id": pl.Int64,
            "consumer": pl.Utf8,
            "dbus": pl.Float64,
            "dbu_cost_usd": pl.Float64,
            "vm_cost_usd": pl.Float64,
            "total_cost_usd": pl.Float64,
        },
    )


@lru_cache(maxsize=4)
def run_costs_for(config: WorldConfig) -> pl.DataFrame:
    """Truth run costs of the world generated from ``config`` (the recent configs cached)."""
    return run_costs(world_for(config), load_price_sheet())
