"""Cost engine benchmark: ``run_costs`` vs the vectorized floor and a naive per-run baseline, same process.

    python benchmarks/bench_engine.py                      # 100k task runs, 10k clusters, ~1M events
    python benchmarks/bench_engine.py --runs 10000 --clusters 1000 --events-per-cluster 100

Why three numbers: the *floor* (/work/shared/bench/sweep_floor.py, a bare polars sweep doing less than
the engine) says how close the engine is to what polars can do on this machine — compare the ratio, not
absolute seconds, since other processes share the cores. The *naive* baseline is the obvious per-run
Python loop (filter the run's cluster, walk its elementary intervals); it runs on a sample of shared-
cluster runs, is extrapolated, and its answers are checked against the engine's (an independent oracle).

Threads default to 2 (``POLARS_MAX_THREADS``) to match the target machine. Writes ``RESULTS.md`` next to
this file and prints one JSON line.
"""

import os

os.environ.setdefault("POLARS_MAX_THREADS", "2")

import argparse
import contextlib
import datetime as dt
import importlib.util
import itertools
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from cost_assets import schemas
from cost_assets.costing.engine import _Day, run_costs, segments_for_day
from cost_assets.costing.price import price_segments

DAY = dt.date(2024, 6, 19)
T0 = dt.datetime(2024, 6, 19)
US_DAY = 86_400_000_000
US_HOUR = 3_600_000_000
FLOOR = Path("/work/shared/bench/sweep_floor.py")
# One cluster life: start, autoscale up twice, a spot loss and its replacement, then termination.
LIFE = ["STARTING", "RUNNING", "RESIZING", "UPSIZE_COMPLETED", "RESIZING", "UPSIZE_COMPLETED",
        "NODES_LOST", "RESIZING", "UPSIZE_COMPLETED", "TERMINATING"]  # fmt: skip
NODES = {"m5.xlarge": (0.69, 0.192, 0.0672), "m5.2xlarge": (1.37, 0.384, 0.1344), "i3.xlarge": (1.0, 0.312, 0.1092)}


# ---------------------------------------------------------------- synthetic day (schema-exact, numpy)
def _ts(us: np.ndarray) -> np.ndarray:
    return np.datetime64(T0, "us") + us.astype("timedelta64[us]")


def synthetic_day(clusters: int, events_per_cluster: int, runs: int, seed: int = 1) -> dict[str, pl.DataFrame]:
    """raw.job_runs / raw.jobs / raw.clusters / raw.cluster_events and ref prices for one day."""
    rng = np.random.default_rng(seed)
    cid = np.array([f"0619-{i:06d}-bench{i % 97:02d}" for i in range(clusters)])
    source = rng.choice(["JOB", "UI", "API"], clusters, p=[0.6, 0.3, 0.1])
    nodes = rng.choice(list(NODES), clusters)
    null_s, null_i, null_t = pl.lit(None, pl.String), pl.lit(None, pl.Int64), pl.lit(None, pl.Datetime("us"))
    cl = pl.DataFrame(
        {
            "cluster_id": cid,
            "cluster_source": source,
            "node_type_id": nodes,
            "num_workers": rng.integers(1, 8, clusters),
            "availability": rng.choice(["ON_DEMAND", "SPOT", "SPOT_WITH_FALLBACK"], clusters),
            "first_on_demand": rng.integers(0, 2, clusters),
            "is_photon": rng.random(clusters) < 0.2,
        }
    ).select(
        pl.lit(DAY).alias("usage_date"),
        pl.lit("ws-1").alias("workspace_id"),
        pl.lit("AWS").alias("cloud"),
        "cluster_id",
        null_s.alias("cluster_name"),
        "cluster_source",
        "node_type_id",
        pl.col("node_type_id").alias("driver_node_type_id"),
        "num_workers",
        null_i.alias("autoscale_min_workers"),
        null_i.alias("autoscale_max_workers"),
        pl.lit(False).alias("is_single_node"),
        "availability",
        "first_on_demand",
        pl.lit("14.3.x-scala2.12").alias("spark_version"),
        pl.when(pl.col("is_photon")).then(pl.lit("PHOTON")).otherwise(pl.lit("STANDARD")).alias("runtime_engine"),
        "is_photon",
        null_s.alias("instance_pool_id"),
        null_s.alias("driver_instance_pool_id"),
        pl.lit('{"team":"bench"}').alias("custom_tags"),
        pl.lit("RUNNING").alias("state"),
        null_t.alias("start_time"),
        null_t.alias("terminated_time"),
        null_s.alias("creator_user_name"),
    )
    n = clusters * events_per_cluster
    ts = np.sort(rng.integers(-US_HOUR, US_DAY, size=(clusters, events_per_cluster)), axis=1).ravel()
    kind = np.tile(np.array(LIFE)[np.arange(events_per_cluster) % len(LIFE)], clusters)
    cur = rng.integers(1, 10, n)
    counted = np.isin(kind, ["RUNNING", "RESIZING", "UPSIZE_COMPLETED", "NODES_LOST"])
    ev = pl.DataFrame(
        {
            "cluster_id": np.repeat(cid, events_per_cluster),
            "timestamp": _ts(ts),
            "event_type": kind,
            "cur": cur,
            "tgt": np.where(kind == "RESIZING", cur + rng.integers(0, 4, n), cur),
            "counted": counted,
        }
    ).select(
        pl.lit(DAY).alias("usage_date"),
        pl.lit("ws-1").alias("workspace_id"),
        "cluster_id",
        "timestamp",
        "event_type",
        pl.when("counted").then("cur").alias("current_num_workers"),
        pl.when("counted").then("tgt").alias("target_num_workers"),
        null_i.alias("cluster_size_num_workers"),
        null_i.alias("cluster_size_min_workers"),
        null_i.alias("cluster_size_max_workers"),
        null_s.alias("cause"),
        pl.when(pl.col("event_type") == "NODES_LOST").then(pl.lit("SPOT_INSTANCE_TERMINATION")).alias("reason_code"),
        (pl.col("timestamp") < T0).alias("is_lookback"),
    )
    start = rng.integers(0, US_DAY - US_HOUR, runs)
    end = start + rng.integers(60_000_000, US_HOUR, runs)
    on = rng.integers(0, clusters, runs)
    jobs = 5_000
    jr = pl.DataFrame(
        {
            "job_id": rng.integers(0, jobs, runs),
            "task_run_id": np.arange(runs),
            "cluster_id": cid[on],
            "compute_type": np.where(source[on] == "JOB", "job_cluster", "all_purpose"),
            "start_time": _ts(start),
            "end_time": _ts(end),
        }
    ).select(
        pl.lit(DAY).alias("usage_date"),
        pl.lit("ws-1").alias("workspace_id"),
        "job_id",
        (pl.col("task_run_id") * 10).alias("run_id"),
        "task_run_id",
        pl.format("task_{}", pl.col("task_run_id") % 7).alias("task_key"),
        pl.lit(0, pl.Int64).alias("attempt_number"),
        null_s.alias("run_name"),
        pl.lit("JOB_RUN").alias("run_type"),
        null_s.alias("trigger"),
        null_s.alias("creator_user_name"),
        "compute_type",
        null_s.alias("job_cluster_key"),
        "cluster_id",
        pl.col("start_time").alias("run_start_time"),
        pl.col("end_time").alias("run_end_time"),
        "start_time",
        "end_time",
        pl.lit("TERMINATED").alias("life_cycle_state"),
        pl.lit("SUCCESS").alias("result_state"),
    )
    jb = pl.DataFrame({"job_id": np.arange(jobs)}).select(
        pl.lit(DAY).alias("usage_date"),
        pl.lit("ws-1").alias("workspace_id"),
        "job_id",
        pl.format("job {}", "job_id").alias("job_name"),
        null_s.alias("creator_user_name"),
        null_t.alias("created_time"),
        pl.lit('{"team":"bench"}').alias("tags"),
        pl.lit("bench").alias("team"),
        null_s.alias("tenant"),
        null_s.alias("project"),
        null_s.alias("cost_center"),
    )
    it = pl.DataFrame(
        [
            {"cloud": "AWS", "node_type_id": k, "vcpus": 4.0, "memory_gb": 16.0, "dbu_per_hour": d,
             "vm_on_demand_per_hour": od, "vm_spot_per_hour": sp, "currency_code": "USD",
             "effective_from": dt.datetime(2020, 1, 1), "effective_to": None, "source": "bench"}
            for k, (d, od, sp) in NODES.items()
        ],
        schema_overrides={"effective_to": pl.Datetime("us")},
    )  # fmt: skip
    skus = [("PREMIUM_JOBS_COMPUTE", "jobs", False, 1.0, 0.15),
            ("PREMIUM_JOBS_COMPUTE_(PHOTON)", "jobs", True, 2.5, 0.15),
            ("PREMIUM_ALL_PURPOSE_COMPUTE", "all_purpose", False, 1.0, 0.55),
            ("PREMIUM_ALL_PURPOSE_COMPUTE_(PHOTON)", "all_purpose", True, 2.0, 0.55)]  # fmt: skip
    dp = pl.DataFrame(
        [
            {"cloud": "AWS", "sku_name": s, "tier": "PREMIUM", "workload": w, "is_photon": p, "photon_dbu_factor": f,
             "usage_unit": "DBU", "currency_code": "USD", "price_start_time": dt.datetime(2020, 1, 1),
             "price_end_time": None, "list_price": pr, "contract_discount": 0.0, "contract_price": pr,
             "effective_price": pr, "source": "bench"}
            for s, w, p, f, pr in skus
        ],
        schema_overrides={"price_end_time": pl.Datetime("us")},
    )  # fmt: skip
    return {"job_runs": jr, "jobs": jb, "clusters": cl, "events": ev, "instance_types": it, "dbu_prices": dp}


def validate(frames: dict[str, pl.DataFrame]) -> None:
    """The synthetic frames obey the raw/ref contracts (checked on a sample to keep the run short)."""
    models = {"job_runs": schemas.JobRuns, "jobs": schemas.Jobs, "clusters": schemas.Clusters,
              "events": schemas.ClusterEvents, "instance_types": schemas.InstanceTypes,
              "dbu_prices": schemas.DbuPrices}  # fmt: skip
    for name, model in models.items():
        model.validate(frames[name].head(20_000))


# ---------------------------------------------------------------- naive per-run baseline
def naive_shares(segments: pl.DataFrame, runs: pl.DataFrame, task_run_ids: list[int]) -> dict[int, float]:
    """Per-run DBU share, one Python loop per run: the obvious implementation the engine replaces."""
    out = {}
    for task_run_id in task_run_ids:
        run = runs.filter(pl.col("task_run_id") == task_run_id).row(0, named=True)
        cid, s, e = run["cluster_id"], run["run_start"], run["run_end"]
        seg = segments.filter(
            (pl.col("cluster_id") == cid) & (pl.col("segment_end") > s) & (pl.col("segment_start") < e)
        )
        others = runs.filter((pl.col("cluster_id") == cid) & (pl.col("run_end") > s) & (pl.col("run_start") < e))
        total = 0.0
        for a, b, dbus in seg.select("segment_start", "segment_end", "dbus").iter_rows():
            lo, hi = max(a, s), min(b, e)
            cuts = sorted({lo, hi, *[t for r in others.iter_rows(named=True)
                                     for t in (r["run_start"], r["run_end"]) if lo < t < hi]})  # fmt: skip
            for x, y in itertools.pairwise(cuts):
                active = sum(1 for r in others.iter_rows(named=True) if r["run_start"] <= x and r["run_end"] >= y)
                total += (dbus or 0.0) * ((y - x) / (b - a)) / max(active, 1)
        out[task_run_id] = total
    return out


# ---------------------------------------------------------------- measurement
def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _timed(fn, repeat: int) -> tuple[float, float, object]:
    wall = cpu = float("inf")
    result = None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall, cpu, result


def _load_floor(path: Path):
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("sweep_floor", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def memory_probe(clusters: int, events_per_cluster: int, runs: int) -> dict:
    """Peak RSS of one ``run_costs`` in a fresh process (nothing else resident but its inputs)."""
    frames = synthetic_day(clusters, events_per_cluster, runs)
    _reset_peak()
    inputs = _peak_rss_mb()
    run_costs(**frames, day=DAY)
    return {"inputs_rss_mb": round(inputs), "peak_rss_mb": round(_peak_rss_mb())}


def _probe_in_subprocess(a: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--memory-probe", "--clusters", str(a.clusters), "--runs", str(a.runs),
           "--events-per-cluster", str(a.events_per_cluster)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ.copy())
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", type=int, default=10_000)
    ap.add_argument("--events-per-cluster", type=int, default=100)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="best of N, floor and engine alternating")
    ap.add_argument("--naive-sample", type=int, default=200, help="shared-cluster runs for the naive baseline")
    ap.add_argument("--floor", type=Path, default=FLOOR)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    ap.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.memory_probe:
        print(json.dumps(memory_probe(a.clusters, a.events_per_cluster, a.runs)))
        return
    probe = _probe_in_subprocess(a)

    frames = synthetic_day(a.clusters, a.events_per_cluster, a.runs)
    validate(frames)
    floor = _load_floor(a.floor)
    floor_inputs = floor.synthetic(a.clusters, a.events_per_cluster, a.runs) if floor else None
    inputs_rss = _peak_rss_mb()

    best = {"floor": [float("inf")] * 2, "engine": [float("inf")] * 2}
    out = None
    peak = 0.0
    for _ in range(a.repeat):
        if floor:
            w, c, _res = _timed(lambda: floor.sweep(*floor_inputs), 1)
            best["floor"] = [min(best["floor"][0], w), min(best["floor"][1], c)]
        _reset_peak()
        w, c, out = _timed(lambda: run_costs(**frames, day=DAY), 1)
        peak = max(peak, _peak_rss_mb())
        best["engine"] = [min(best["engine"][0], w), min(best["engine"][1], c)]

    # Naive baseline on a sample of shared-cluster runs, checked against the engine's hourly allocation.
    day = _Day(**frames, day=DAY, tier="PREMIUM", pools=None)
    shared = set(day.flags.filter("is_shared_cluster")["cluster_id"])
    sample = day.runs.filter(pl.col("cluster_id").is_in(list(shared))).head(a.naive_sample)
    ids = sample["task_run_id"].to_list()
    w0 = time.perf_counter()
    priced = price_segments(segments_for_day(frames["clusters"], frames["events"], DAY), *list(frames.values())[4:6])
    naive = naive_shares(priced, day.runs, ids)
    naive_per_run = (time.perf_counter() - w0) / max(len(ids), 1)
    engine_dbus = dict(
        day.alloc.filter(pl.col("task_run_id").is_in(ids)).group_by("task_run_id").agg(pl.col("dbus").sum()).iter_rows()
    )
    max_rel = max((abs(naive[i] - engine_dbus.get(i, 0.0)) / max(abs(naive[i]), 1e-12) for i in ids), default=0.0)

    money = out.select(pl.col("total_cost_usd").sum(), pl.col("dbus").sum()).row(0)
    result = {
        "clusters": a.clusters,
        "events": frames["events"].height,
        "task_runs": a.runs,
        "segments": priced.height,
        "run_costs_rows": out.height,
        "threads": int(os.environ["POLARS_MAX_THREADS"]),
        "floor_seconds": round(best["floor"][0], 3) if floor else None,
        "floor_cpu_seconds": round(best["floor"][1], 3) if floor else None,
        "engine_seconds": round(best["engine"][0], 3),
        "engine_cpu_seconds": round(best["engine"][1], 3),
        "ratio_wall": round(best["engine"][0] / best["floor"][0], 2) if floor else None,
        "ratio_cpu": round(best["engine"][1] / best["floor"][1], 2) if floor else None,
        "engine_peak_rss_mb": probe["peak_rss_mb"],
        "engine_inputs_rss_mb": probe["inputs_rss_mb"],
        "shared_process_peak_rss_mb": round(peak),
        "shared_process_inputs_rss_mb": round(inputs_rss),
        "naive_ms_per_run": round(naive_per_run * 1e3, 2),
        "naive_extrapolated_seconds": round(naive_per_run * a.runs, 1),
        "naive_sample": len(ids),
        "naive_vs_engine_max_rel_diff": max_rel,
        "total_cost_usd": round(money[0], 2),
        "dbus": round(money[1], 2),
        "python": platform.python_version(),
        "polars": pl.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))
    write_results(a.out, result)


def write_results(path: Path, r: dict) -> None:
    lines = [
        "# Cost engine benchmark",
        "",
        f"`python benchmarks/bench_engine.py --clusters {r['clusters']} --runs {r['task_runs']}` "
        f"({r['threads']} polars threads, best of the repeats, floor and engine alternating in one process).",
        "",
        "| | wall s | CPU s | vs floor (wall / CPU) |",
        "|---|---:|---:|---:|",
        f"| floor (`sweep_floor.py`) | {r['floor_seconds']} | {r['floor_cpu_seconds']} | 1 |",
        f"| engine `run_costs` | {r['engine_seconds']} | {r['engine_cpu_seconds']} | "
        f"{r['ratio_wall']} / {r['ratio_cpu']} |",
        f"| naive per-run loop (extrapolated from {r['naive_sample']} runs) | {r['naive_extrapolated_seconds']} | "
        f"| {r['naive_ms_per_run']} ms per run |",
        "",
        f"- Scale: {r['clusters']:,} clusters, {r['events']:,} events, {r['task_runs']:,} task runs → "
        f"{r['segments']:,} priced segments, {r['run_costs_rows']:,} `run_costs` rows.",
        f"- Memory: peak RSS {r['engine_peak_rss_mb']} MB for one `run_costs` in a fresh process (its inputs alone: "
        f"{r['engine_inputs_rss_mb']} MB, counted in the peak). In the timing process, which also holds the floor's "
        f"data and allocator pages it left, the peak was {r['shared_process_peak_rss_mb']} MB.",
        f"- Cross-check: naive per-run shares vs the engine's, max relative difference "
        f"{r['naive_vs_engine_max_rel_diff']:.2e} over {r['naive_sample']} shared-cluster runs.",
        f"- Load average during the run: {r['load_average']} (other sessions share the cores: compare ratios).",
        "",
        "```json",
        json.dumps(r, indent=1),
        "```",
        "",
    ]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
