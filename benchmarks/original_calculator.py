"""The original per-run cost calculator (what the engine replaced), and accuracy against ground truth.

The calculator, as it worked before the engine: one Python loop over the task runs, ``decimal.Decimal``
arithmetic, and nothing but the cluster *configuration*:

    cost(run) = (driver + configured workers) × run hours × DBU/h × Photon factor × $/DBU
              + (driver + configured workers) × run hours × VM $/h

* configured workers = ``num_workers``, else ``autoscale_min_workers`` (0 for single node), from
  ``raw.clusters``; cluster events are never read (no autoscaling, no spot loss, no start-up time);
* run hours = task ``start_time`` → ``end_time`` (null end: the day's end), clipped to the UTC day so a
  run across midnight is split between days like the engine and the truth do (that clip is the only
  favour done to it: without it, per-day totals would double-count);
* VM $/h: the spot price for every node when ``availability`` is a spot kind (SPOT*, PREEMPTIBLE*; the
  on-demand price if the sheet has no spot price), else on-demand; ``first_on_demand`` is ignored;
* rates from ``ref.instance_types`` / ``ref.dbu_prices`` (effective price) in force at the run's start;
  SKU from workload (JOB → jobs, else all-purpose), tier and Photon — the same price sheet as the engine;
* no sharing: every run on a shared cluster pays the whole cluster's configured size for its duration;
  no idle rows (idle money is simply not counted).

``accuracy()`` generates a world with ground truth (``cost_assets.simulation``), fetches each day's raw
tables through the in-process API exactly as the pipeline does (``SimulatedApi`` + ``fetch_day``), runs the
engine and this calculator on them, and compares both with ``truth.run_costs`` per (usage_date, job run).

    python benchmarks/original_calculator.py --scale medium --days 7    # prints one JSON line
"""

import os

os.environ.setdefault("POLARS_MAX_THREADS", "2")

import argparse
import datetime as dt
import json
import sys
import time
from decimal import Decimal

import polars as pl

from cost_assets.costing.engine import run_costs as engine_run_costs
from cost_assets.ingest.fetch import fetch_day
from cost_assets.prices import load_price_sheet
from cost_assets.simulation import truth
from cost_assets.simulation.api import SimulatedApi
from cost_assets.simulation.world import WorldConfig, world_for

US_PER_HOUR = Decimal(3_600_000_000)
TOLERANCE = 0.02  # the project's accuracy bar: a run is "accurate" within 2 % of the truth
ORIGINAL_COLUMNS = [
    "usage_date",
    "consumer",
    "task_run_id",
    "run_id",
    "job_id",
    "cluster_id",
    "sku_name",
    "runtime_hours",
    "dbus",
    "dbu_cost_usd",
    "vm_cost_usd",
    "total_cost_usd",
    "unpriced",
]


def _dec(x: float | None) -> Decimal | None:
    return None if x is None else Decimal(repr(x))


def _us(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _in_force(rows: list[tuple], at: dt.datetime):
    """The row whose half-open window [from, to) contains ``at`` (windows are the first two fields)."""
    for row in rows:
        if row[0] <= at and (row[1] is None or at < row[1]):
            return row
    return None


def original_run_costs(
    job_runs: pl.DataFrame,
    clusters: pl.DataFrame,
    instance_types: pl.DataFrame,
    dbu_prices: pl.DataFrame,
    day: dt.date,
    tier: str = "PREMIUM",
) -> pl.DataFrame:
    """One row per task run on a cluster overlapping ``day`` (see the module doc for the formula)."""
    day_start = dt.datetime.combine(day, dt.time())
    day_end = day_start + dt.timedelta(days=1)
    nodes: dict[tuple[str, str], list[tuple]] = {}
    for r in instance_types.iter_rows(named=True):
        spot = r["vm_spot_per_hour"]
        nodes.setdefault((r["cloud"], r["node_type_id"]), []).append(
            (
                r["effective_from"],
                r["effective_to"],
                _dec(r["dbu_per_hour"]),
                _dec(r["vm_on_demand_per_hour"]),
                _dec(spot if spot is not None else r["vm_on_demand_per_hour"]),
            )
        )
    skus: dict[tuple[str, str, str, bool], list[tuple]] = {}
    for r in dbu_prices.iter_rows(named=True):
        skus.setdefault((r["cloud"], r["tier"], r["workload"], r["is_photon"]), []).append(
            (
                r["price_start_time"],
                r["price_end_time"],
                r["sku_name"],
                _dec(r["photon_dbu_factor"]),
                _dec(r["effective_price"]),
            )
        )
    config = {r["cluster_id"]: r for r in clusters.sort("usage_date").iter_rows(named=True)}  # latest wins

    rows = []
    for run in job_runs.iter_rows(named=True):
        cid = run["cluster_id"]
        if cid is None or run["compute_type"] == "serverless":
            continue
        start = max(run["start_time"], day_start)
        end = min(run["end_time"] or day_end, day_end)
        if end <= start:
            continue
        hours = Decimal(_us(end - start)) / US_PER_HOUR
        out = [day, "run", run["task_run_id"], run["run_id"], run["job_id"], cid, None, float(hours)]
        c = config.get(cid)
        if c is None:
            rows.append((*out, None, None, None, None, True))
            continue
        workers = (
            0
            if c["is_single_node"]
            else (c["num_workers"] if c["num_workers"] is not None else c["autoscale_min_workers"] or 0)
        )
        workload = "jobs" if c["cluster_source"] == "JOB" else "all_purpose"
        driver = _in_force(nodes.get((c["cloud"], c["driver_node_type_id"]), []), start)
        worker = _in_force(nodes.get((c["cloud"], c["node_type_id"]), []), start)
        sku = _in_force(skus.get((c["cloud"], tier, workload, bool(c["is_photon"])), []), start)
        if driver is None or worker is None or sku is None:
            rows.append((*out, None, None, None, None, True))
            continue
        out[6] = sku[2]
        availability = c["availability"] or ""
        vm = 4 if ("SPOT" in availability or "PREEMPTIBLE" in availability) else 3
        n = Decimal(workers)
        dbus = (driver[2] + n * worker[2]) * sku[3] * hours
        dbu_cost = dbus * sku[4]
        vm_cost = (driver[vm] + n * worker[vm]) * hours
        total = dbu_cost + vm_cost
        rows.append((*out, float(dbus), float(dbu_cost), float(vm_cost), float(total), False))
    schema = {
        "usage_date": pl.Date,
        "consumer": pl.String,
        "task_run_id": pl.Int64,
        "run_id": pl.Int64,
        "job_id": pl.Int64,
        "cluster_id": pl.String,
        "sku_name": pl.String,
        "runtime_hours": pl.Float64,
        "dbus": pl.Float64,
        "dbu_cost_usd": pl.Float64,
        "vm_cost_usd": pl.Float64,
        "total_cost_usd": pl.Float64,
        "unpriced": pl.Boolean,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


# ---------------------------------------------------------------- accuracy against ground truth
def compare_with_truth(estimate: pl.DataFrame, real: pl.DataFrame, shared_clusters: set[str]) -> dict:
    """Per (usage_date, job run): |estimate − truth| / truth over the truth's runs (a run the estimate
    misses counts as 100 % error), plus totals. Also split by runs that touched a shared cluster. Money is
    DBU + VM $ on both sides: the truth has no disks (the engine's ``total_cost_usd`` includes them)."""
    key = ["usage_date", "run_id"]
    money = pl.col("dbu_cost_usd") + pl.col("vm_cost_usd")
    shared = pl.col("cluster_id").is_in(list(shared_clusters))
    est = estimate.filter(pl.col("consumer") == "run").group_by(key).agg(money.sum().alias("estimated"))
    true_runs = (
        real.filter(pl.col("consumer") == "run")
        .group_by(key)
        .agg(money.sum().alias("truth"), shared.any().alias("on_shared"))
    )
    both = true_runs.join(est, on=key, how="left").with_columns(
        pl.when(pl.col("estimated").is_null())
        .then(1.0)
        .otherwise((pl.col("estimated") - pl.col("truth")).abs() / pl.col("truth"))
        .alias("error")
    )

    def stats(frame: pl.DataFrame) -> dict:
        if frame.height == 0:
            return {"runs": 0}
        err = frame["error"]
        return {
            "runs": frame.height,
            "within_2pct_share": round(float((err <= TOLERANCE).mean()), 4),
            "median_abs_rel_error": round(float(err.median()), 5),
            "p90_abs_rel_error": round(float(err.quantile(0.9, "linear")), 5),
            "estimated_usd": round(float(frame["estimated"].fill_null(0).sum()), 2),
            "true_usd": round(float(frame["truth"].sum()), 2),
        }

    idle_est = estimate.filter(pl.col("consumer") == "idle").select(money.sum()).item() or 0.0
    idle_true = real.filter(pl.col("consumer") == "idle").select(money.sum()).item() or 0.0
    out = stats(both)
    out.update(
        {
            "missing_runs": int(both["estimated"].is_null().sum()),
            "estimated_run_usd_all": round(float(est["estimated"].sum()), 2),  # incl. runs the truth lacks
            "estimated_idle_usd": round(float(idle_est), 2),
            "true_idle_usd": round(float(idle_true), 2),
            "estimated_total_usd": round(float(est["estimated"].sum() + idle_est), 2),
            "true_total_usd": round(float(true_runs["truth"].sum() + idle_true), 2),
            "job_cluster_runs": stats(both.filter(~pl.col("on_shared"))),
            "shared_cluster_runs": stats(both.filter(pl.col("on_shared"))),
        }
    )
    out["total_vs_truth"] = round(out["estimated_total_usd"] / out["true_total_usd"], 4)
    return out


def accuracy(scale: str = "medium", days: int = 7, seed: int = 7, start: dt.date = dt.date(2026, 1, 1)) -> dict:
    """Engine and original calculator vs the generator's ground truth on every day of a generated world."""
    cfg = WorldConfig(seed=seed, scale=scale, start=start, days=days)
    sheet = load_price_sheet()
    it, dp = sheet.instance_types_frame(), sheet.dbu_prices_frame()
    t = time.perf_counter()
    world = world_for(cfg)
    api = SimulatedApi(cfg)
    generate_s = time.perf_counter() - t
    t = time.perf_counter()
    real = truth.run_costs(world, sheet)
    truth_s = time.perf_counter() - t
    window = [start + dt.timedelta(days=i) for i in range(days)]
    real = real.filter(pl.col("usage_date").is_in(window))
    engine_parts, original_parts = [], []
    seconds = {"fetch": 0.0, "engine": 0.0, "original": 0.0}
    task_runs = clusters = events = 0
    for day in window:
        t = time.perf_counter()
        raw = fetch_day(api, day)
        seconds["fetch"] += time.perf_counter() - t
        task_runs += raw.job_runs.height
        clusters += raw.clusters.height
        events += raw.cluster_events.height
        t = time.perf_counter()
        engine_parts.append(
            engine_run_costs(raw.job_runs, raw.jobs, raw.clusters, raw.cluster_events, it, dp, day, tier=cfg.tier)
        )
        seconds["engine"] += time.perf_counter() - t
        t = time.perf_counter()
        original_parts.append(original_run_costs(raw.job_runs, raw.clusters, it, dp, day, tier=cfg.tier))
        seconds["original"] += time.perf_counter() - t
    shared = {cid for cid, c in world.clusters.items() if c.source != "JOB"}
    engine_frame = pl.concat(engine_parts, how="vertical_relaxed")
    original_frame = pl.concat(original_parts, how="vertical_relaxed")
    return {
        "world": {
            "scale": scale,
            "seed": seed,
            "cloud": cfg.cloud,
            "tier": cfg.tier,
            "start": start.isoformat(),
            "days": days,
            "task_run_rows": task_runs,
            "cluster_rows": clusters,
            "event_rows": events,
            "truth_job_runs": real.filter(pl.col("consumer") == "run").select("usage_date", "run_id").n_unique(),
        },
        "seconds": {
            "generate_world": round(generate_s, 3),
            "truth": round(truth_s, 3),
            **{k: round(v, 3) for k, v in seconds.items()},
        },
        "engine": compare_with_truth(engine_frame, real, shared),
        "original": compare_with_truth(original_frame, real, shared),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="medium", help="world preset: tiny, small, medium, large")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    print(json.dumps(accuracy(a.scale, a.days, a.seed)))


if __name__ == "__main__":
    sys.exit(main())
