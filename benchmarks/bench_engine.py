"""Cost engine benchmark: S, M, L days vs the floor, the original calculator, accuracy, Dagster.

    python benchmarks/bench_engine.py                       # S,M,L + accuracy + Dagster day; writes
                                                            # benchmarks/RESULTS.md and results.json
    python benchmarks/bench_engine.py --sizes L --no-dagster --no-accuracy
    python benchmarks/bench_engine.py --sizes S --repeat 1 --accuracy-scale tiny --accuracy-days 1 \
        --dagster-size S --dagster-repeat 1 --out-dir "$(mktemp -d)"    # smoke run (tests/test_benchmarks.py)

Per size (``synthetic.py``: S = 1k task runs / 100 clusters / 10k events, M = 10× that, L = 100×), in one
process, alternating ``--repeat`` times so load from other processes hits all of them alike:

* **floor**: ``sweep()`` of ``../shared/bench/sweep_floor.py`` (next to the checkout; ``--floor PATH``) on its
  own synthetic input of the same size
  (a bare polars sweep: one price, no states, no clipping);
* **engine**: ``cost_assets.costing.engine.run_costs`` from the raw frames to the ``run_costs`` frame
  (timeline segments + prices + sharing sweep + attributes);
* **original**: ``original_calculator.original_run_costs``, the per-run ``Decimal`` loop (run in full at
  every size, never extrapolated).

Times are the best of the repeats (wall and CPU, CPU summed over threads); the ratio engine / floor is
what to compare across machines. Peak RSS of each is measured in a fresh subprocess per size (inputs
generated, high-water mark reset, one call, high-water mark read), so sizes and the other contenders
do not pollute it. **intervals/s** = elementary intervals per second of wall time, each side counting
its own: for the engine, every cluster's priced timeline (hour-cut segments) cut again at every run
start/end inside it — the pieces within which rate and set of active runs are constant (the engine
never materializes them; they are counted afterwards, untimed); for the floor, the intervals its sweep
builds. Priced segments/s and task runs/s are reported too.

Also: a cross-check of the engine's shares against a naive per-run loop on a sample of shared-cluster
runs (an independent oracle for the sweep, not a baseline); the accuracy of the engine and of the
original calculator against the world generator's ground truth (``original_calculator.accuracy``); and
the whole day through Dagster at L (``bench_dagster_day.py``, in a subprocess).

The targets (judged at L): engine ≤ 3× the floor (wall), engine peak RSS ≤ 1 GiB, raw tables →
``mart/run_costs`` through Dagster ≤ 15 s. Without the floor the ratios are n/a and the rest still runs.

``POLARS_MAX_THREADS`` defaults to 2, the target machine.
"""

import os

os.environ.setdefault("POLARS_MAX_THREADS", "2")

import argparse
import contextlib
import datetime as dt
import gc
import hashlib
import importlib.metadata
import importlib.util
import itertools
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from cost_assets.costing.engine import run_costs, segments_for_day
from cost_assets.costing.price import price_segments

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import peak_rss_mb, reset_peak
from original_calculator import accuracy, original_run_costs
from synthetic import DAY, SIZES, synthetic_day, validate

HERE = Path(__file__).resolve().parent
# The floor is shared material next to the checkout (``../shared/bench``), not part of the repository.
FLOOR = HERE.parents[1] / "shared" / "bench" / "sweep_floor.py"
TARGET_RATIO = 3.0
TARGET_PEAK_MB = 1024.0
TARGET_DAGSTER_S = 15.0
# The Dagster day's cold run before the estimate became one asset (timeline + daily run costs, the hourly
# estimate rebuilt by reconciliation): making the estimate once must not make the day slower than that.
DAGSTER_BEFORE_S = 4.2


# ---------------------------------------------------------------- helpers
def _load_floor(path: Path):
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("sweep_floor", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clock(fn) -> tuple[float, float, object]:
    w, c = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - w, time.process_time() - c, result


def _original(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return original_run_costs(
        frames["job_runs"], frames["clusters"], frames["instance_types"], frames["dbu_prices"], DAY
    )


# ---------------------------------------------------------------- work counts (untimed)
def day_runs(job_runs: pl.DataFrame) -> pl.DataFrame:
    """Task runs on a cluster, clipped to the day (as the engine and the truth clip them)."""
    start = dt.datetime.combine(DAY, dt.time())
    end = start + dt.timedelta(days=1)
    return job_runs.filter(pl.col("cluster_id").is_not_null()).select(
        "task_run_id", "cluster_id",
        pl.max_horizontal("start_time", pl.lit(start)).alias("run_start"),
        pl.min_horizontal(pl.coalesce("end_time", pl.lit(end)), pl.lit(end)).alias("run_end"),
    ).filter(pl.col("run_end") > pl.col("run_start"))  # fmt: skip


def elementary_intervals(segments: pl.DataFrame, runs: pl.DataFrame) -> int:
    """Pieces of every cluster's segment timeline cut at every segment boundary and run start/end."""
    seg = segments.select("cluster_id", "segment_start", "segment_end").sort("cluster_id", "segment_start")
    cuts = (
        pl.concat(
            [
                seg.select("cluster_id", pl.col("segment_start").alias("t")),
                seg.select("cluster_id", pl.col("segment_end").alias("t")),
                runs.select("cluster_id", pl.col("run_start").alias("t")),
                runs.select("cluster_id", pl.col("run_end").alias("t")),
            ]
        )
        .unique()
        .sort("cluster_id", "t")
        .with_columns(pl.col("t").shift(-1).over("cluster_id").alias("t2"))
        .drop_nulls("t2")
    )
    covered = cuts.join_asof(seg, left_on="t", right_on="segment_start", by="cluster_id", strategy="backward",
                             check_sortedness=False).filter(pl.col("t2") <= pl.col("segment_end"))  # fmt: skip
    return covered.height


# ---------------------------------------------------------------- naive share oracle (cross-check)
def naive_shares(segments: pl.DataFrame, runs: pl.DataFrame, task_run_ids: list[int]) -> dict[int, float]:
    """Per-run DBU share, one Python loop per run over the priced segments (equal split per interval)."""
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


def naive_cross_check(frames: dict[str, pl.DataFrame], out: pl.DataFrame, sample: int) -> dict:
    """The engine's ``run_costs`` DBUs of ``sample`` shared-cluster runs vs :func:`naive_shares`."""
    runs = day_runs(frames["job_runs"])
    shared = out.filter(pl.col("is_shared_cluster") & (pl.col("consumer") == "run"))
    ids = shared.head(sample)["task_run_id"].to_list()
    priced = price_segments(segments_for_day(frames["clusters"], frames["events"], DAY),
                            frames["instance_types"], frames["dbu_prices"])  # fmt: skip
    t = time.perf_counter()
    naive = naive_shares(priced, runs, ids)
    per_run = (time.perf_counter() - t) / max(len(ids), 1)
    engine = dict(shared.filter(pl.col("task_run_id").is_in(ids)).group_by("task_run_id")
                  .agg(pl.col("dbus").sum()).iter_rows())  # fmt: skip
    max_rel = max((abs(naive[i] - engine.get(i, 0.0)) / max(abs(naive[i]), 1e-12) for i in ids), default=0.0)
    return {"sample_runs": len(ids), "ms_per_run": round(per_run * 1e3, 2), "max_rel_diff": max_rel}


# ---------------------------------------------------------------- memory probes (fresh process each)
def memory_probe(kind: str, size: str, floor_path: Path) -> dict:
    clusters, per_cluster, runs = SIZES[size]
    if kind == "floor":
        floor = _load_floor(floor_path)
        inputs = floor.synthetic(clusters, per_cluster, runs)
        call = lambda: floor.sweep(*inputs)  # noqa: E731
    else:
        frames = synthetic_day(clusters, per_cluster, runs)
        call = (lambda: run_costs(**frames, day=DAY)) if kind == "engine" else (lambda: _original(frames))
    gc.collect()
    reset_peak()
    before = peak_rss_mb()
    wall, cpu, _ = _clock(call)
    return {
        "inputs_rss_mb": round(before),
        "peak_rss_mb": round(peak_rss_mb()),
        "cold_seconds": round(wall, 3),
        "cold_cpu_seconds": round(cpu, 3),
    }


def _probe(kind: str, size: str, floor_path: Path) -> dict:
    cmd = [sys.executable, __file__, "--memory-probe", kind, "--sizes", size, "--floor", str(floor_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        raise RuntimeError(f"memory probe {kind} {size} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- one size
def bench_size(size: str, floor, floor_path: Path, repeat: int, naive_sample: int) -> dict:
    clusters, per_cluster, n_runs = SIZES[size]
    probes = {k: _probe(k, size, floor_path) for k in (["engine", "original"] + (["floor"] if floor else []))}
    frames = synthetic_day(clusters, per_cluster, n_runs)
    validate(frames)
    floor_inputs = floor.synthetic(clusters, per_cluster, n_runs) if floor else None
    times: dict[str, list[tuple[float, float]]] = {"floor": [], "engine": [], "original": []}
    out = orig = floor_out = None
    for _ in range(repeat):
        if floor:
            w, c, floor_out = _clock(lambda: floor.sweep(*floor_inputs))
            times["floor"].append((w, c))
        w, c, out = _clock(lambda: run_costs(**frames, day=DAY))
        times["engine"].append((w, c))
        w, c, orig = _clock(lambda: _original(frames))
        times["original"].append((w, c))
    best = {k: (min(w for w, _ in v), min(c for _, c in v)) if v else (None, None) for k, v in times.items()}
    # Each engine run next to the floor run just before it: the median of these paired ratios is less
    # sensitive to a lucky (or loaded) single run than the ratio of the two bests.
    paired = sorted(e[0] / f[0] for e, f in zip(times["engine"], times["floor"], strict=False))

    segments = segments_for_day(frames["clusters"], frames["events"], DAY)
    intervals = elementary_intervals(segments, day_runs(frames["job_runs"]))
    floor_intervals = floor_out[2].height if floor else None
    cross = naive_cross_check(frames, out, naive_sample) if naive_sample else None
    ew, ec = best["engine"]
    fw, fc = best["floor"]
    ow, oc = best["original"]
    return {
        "size": size,
        "clusters": clusters,
        "events": frames["events"].height,
        "task_runs": n_runs,
        "segments": segments.height,
        "elementary_intervals": intervals,
        "floor_intervals": floor_intervals,
        "run_costs_rows": out.height,
        "repeat": repeat,
        "floor_seconds": round(fw, 3) if floor else None,
        "floor_cpu_seconds": round(fc, 3) if floor else None,
        "engine_seconds": round(ew, 3),
        "engine_cpu_seconds": round(ec, 3),
        "original_seconds": round(ow, 3),
        "original_cpu_seconds": round(oc, 3),
        "all_wall_seconds": {k: [round(w, 3) for w, _ in v] for k, v in times.items()},
        "ratio_wall": round(ew / fw, 2) if floor else None,
        "ratio_cpu": round(ec / fc, 2) if floor else None,
        "ratio_wall_paired_median": round(paired[len(paired) // 2], 2) if paired else None,
        "engine_intervals_per_s": round(intervals / ew),
        "floor_intervals_per_s": round(floor_intervals / fw) if floor else None,
        "engine_segments_per_s": round(segments.height / ew),
        "engine_task_runs_per_s": round(n_runs / ew),
        "original_task_runs_per_s": round(orig.height / ow),
        "original_extrapolated": False,
        "engine_peak_rss_mb": probes["engine"]["peak_rss_mb"],
        "engine_inputs_rss_mb": probes["engine"]["inputs_rss_mb"],
        "engine_cold_seconds": probes["engine"]["cold_seconds"],
        "floor_peak_rss_mb": probes["floor"]["peak_rss_mb"] if floor else None,
        "floor_inputs_rss_mb": probes["floor"]["inputs_rss_mb"] if floor else None,
        "original_peak_rss_mb": probes["original"]["peak_rss_mb"],
        "original_inputs_rss_mb": probes["original"]["inputs_rss_mb"],
        "engine_total_cost_usd": round(float(out["total_cost_usd"].sum()), 2),
        "engine_unpriced_rows": int(out["unpriced"].sum()),
        "original_total_cost_usd": round(float(orig["total_cost_usd"].sum()), 2),
        "naive_cross_check": cross,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


# ---------------------------------------------------------------- machine and report
def costing_hash() -> str:
    """sha256 (12 hex) of ``cost_assets/costing/*.py``: which engine source the numbers belong to."""
    files = sorted((HERE.parent / "cost_assets" / "costing").glob("*.py"))
    return hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in files)).hexdigest()[:12]


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    mem = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), None)  # fmt: skip
    versions = {}
    for name in ("polars", "numpy", "dagster", "duckdb", "pandera"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=HERE, capture_output=True, text=True)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)),
        "memory_mb": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "polars_threads": pl.thread_pool_size(),
        **versions,
        "git_commit": commit.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else ""),
        "costing_source_sha256": costing_hash(),  # as run: the tree may hold uncommitted work
        "utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
    }


def _yes(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**NOT met**")


def _x(ratio: float | None) -> str:
    """A ratio to the floor as text (n/a without the floor)."""
    return "n/a" if ratio is None else f"{ratio}×"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def summary(r: dict) -> list[str]:
    """Three sentences a reader needs before the tables."""
    L = next((s for s in r["sizes"] if s["size"] == "L"), None)
    a = r.get("accuracy")
    out = ["## In short", ""]
    if L:
        out.append(
            f"- At L the engine prices {L['elementary_intervals']:,} elementary intervals in {L['engine_seconds']} s, "
            f"{_x(L['ratio_wall'])} the bare floor sweep, with a {L['engine_peak_rss_mb']} MB peak. The original "
            f"calculator's per-run loop takes {L['original_seconds']} s "
            f"({round(L['original_seconds'] / L['engine_seconds'], 2)}× the engine): it is cheap because it does "
            "almost nothing (no events, no sharing, no idle)."
        )
    if a:
        e, o = a["engine"], a["original"]
        sh = o["shared_cluster_runs"]
        out.append(
            f"- Against the generator's ground truth the engine puts {_pct(e['within_2pct_share'])} of runs within 2 % "
            f"(median error {_pct(e['median_abs_rel_error'])}, total {e['total_vs_truth']}× the truth); the original "
            f"calculator {_pct(o['within_2pct_share'])} (median {_pct(o['median_abs_rel_error'])}, p90 "
            f"{_pct(o['p90_abs_rel_error'])}, total {o['total_vs_truth']}×): it charges each run on a shared cluster "
            f"the whole cluster (${sh.get('estimated_usd', 0):,.2f} for those runs vs ${sh.get('true_usd', 0):,.2f} "
            "true), "
            "misses job clusters' start-up and autoscaling, and has no idle."
        )
    d = r.get("dagster_day")
    if d:
        out.append(
            f"- Through Dagster, raw tables → `mart/run_costs` at {d['size']} takes "
            f"{d['run_costs_cold_seconds']} s (cold run; target ≤ {TARGET_DAGSTER_S:.0f} s, and no slower than the "
            f"{DAGSTER_BEFORE_S} s before the estimate became one asset)."
        )
    return [*out, ""] if len(out) > 2 else []


def write_results(md: Path, js: Path, r: dict) -> None:
    js.write_text(json.dumps(r, indent=1) + "\n")
    m, sizes = r["machine"], r["sizes"]
    L = next((s for s in sizes if s["size"] == "L"), None)
    d = r.get("dagster_day")
    lines = [
        "# Cost engine benchmark",
        "",
        "Generated by `benchmarks/bench_engine.py`; raw numbers in [`results.json`](results.json); how to read",
        "them in [`README.md`](README.md).",
        "",
        "```sh",
        r["command"],
        "```",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['cores_available']} available), {m['memory_mb']:,} MB RAM; "
        f"Python {m['python']}, polars {m.get('polars')} ({m['polars_threads']} threads), numpy {m.get('numpy')}, "
        f"dagster {m.get('dagster')}, duckdb {m.get('duckdb')}; commit {m['git_commit']} (sha256 of "
        f"`cost_assets/costing/*.py` as run: {m['costing_source_sha256']}); {m['utc']} UTC.",
        f"Load average (1/5/15 min) at start {r['load_average_start']}, at end {r['load_average_end']}: other "
        "processes share the 2 cores, so compare the **ratios** (floor and engine alternate in one process); "
        "absolute seconds move with the load.",
        "",
        *([f"**Warning: {r['warning']}.**", ""] if r.get("warning") else []),
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---:|---|",
    ]
    if L:
        lines += [
            f"| engine ≤ 3× the floor at L (wall, best of {L['repeat']}) | {_x(L['ratio_wall'])} "
            f"(CPU {_x(L['ratio_cpu'])}; median of the {L['repeat']} paired runs "
            f"{_x(L['ratio_wall_paired_median'])}) | "
            f"{_yes(L['ratio_wall'] <= TARGET_RATIO if L['ratio_wall'] is not None else None)} |",
            f"| engine peak RSS ≤ 1 GiB at L (fresh process, inputs included) | {L['engine_peak_rss_mb']} MB | "
            f"{_yes(L['engine_peak_rss_mb'] <= TARGET_PEAK_MB)} |",
        ]
    if not L:
        lines.append("| (size L not in this run: the engine targets are judged at L) | | n/a |")
    if d:
        lines.append(
            f"| whole day raw → `mart/run_costs` through Dagster ≤ 15 s at {d['size']} | "
            f"{d['run_costs_cold_seconds']} s cold, {d['run_costs_best_seconds']} s best | {_yes(d['target_met'])} |"
        )
        lines.append(
            f"| the same, no slower than before the estimate became one asset (≤ {DAGSTER_BEFORE_S} s cold at L) | "
            f"{d['run_costs_cold_seconds']} s cold | "
            f"{_yes(d['run_costs_cold_seconds'] <= DAGSTER_BEFORE_S) if d['size'] == 'L' else 'n/a'} |"
        )
    lines += [
        "",
        *summary(r),
        "## Engine vs floor vs original calculator, per size",
        "",
        "Synthetic days (`benchmarks/synthetic.py`; the floor generates its own input of the same size). "
        "Wall seconds are the best of the repeats, floor / engine / original alternating in one process; peak RSS "
        "is measured per contender and size in a fresh process (inputs included, their share in parentheses).",
        "",
    ]
    for s in sizes:
        lines += [
            f"### {s['size']}: {s['task_runs']:,} task runs, {s['clusters']:,} clusters, {s['events']:,} events",
            "",
            "| | wall s | CPU s | vs floor (wall / CPU) | peak RSS MB (inputs) | throughput |",
            "|---|---:|---:|---:|---:|---|",
        ]
        if s["floor_seconds"] is not None:
            lines.append(
                f"| floor (`sweep_floor.py`) | {s['floor_seconds']} | {s['floor_cpu_seconds']} | 1 | "
                f"{s['floor_peak_rss_mb']} ({s['floor_inputs_rss_mb']}) | "
                f"{s['floor_intervals_per_s']:,} intervals/s ({s['floor_intervals']:,} intervals) |"
            )
        lines += [
            f"| engine `run_costs` | {s['engine_seconds']} | {s['engine_cpu_seconds']} | "
            f"**{_x(s['ratio_wall'])}** / {_x(s['ratio_cpu'])} (paired median {_x(s['ratio_wall_paired_median'])}) | "
            f"{s['engine_peak_rss_mb']} ({s['engine_inputs_rss_mb']}) | "
            f"{s['engine_intervals_per_s']:,} intervals/s ({s['elementary_intervals']:,} intervals); "
            f"{s['engine_segments_per_s']:,} priced segments/s ({s['segments']:,}); "
            f"{s['engine_task_runs_per_s']:,} task runs/s |",
            f"| original calculator (per-run `Decimal` loop, all runs) | {s['original_seconds']} | "
            f"{s['original_cpu_seconds']} | "
            f"{round(s['original_seconds'] / s['floor_seconds'], 2) if s['floor_seconds'] else 'n/a'} | "
            f"{s['original_peak_rss_mb']} ({s['original_inputs_rss_mb']}) | "
            f"{s['original_task_runs_per_s']:,} task runs/s |",
            "",
            f"All wall times (s): floor {s['all_wall_seconds']['floor']}, engine {s['all_wall_seconds']['engine']}, "
            f"original {s['all_wall_seconds']['original']}; engine cold (first call in a fresh process) "
            f"{s['engine_cold_seconds']} s. Output: {s['run_costs_rows']:,} `run_costs` rows, "
            f"{s['engine_unpriced_rows']} unpriced, ${s['engine_total_cost_usd']:,.2f} "
            f"(original calculator: ${s['original_total_cost_usd']:,.2f}).",
        ]
        if s["naive_cross_check"]:
            c = s["naive_cross_check"]
            lines.append(
                f"Cross-check: a naive per-run loop over the priced segments reproduces the engine's DBU shares on "
                f"{c['sample_runs']} shared-cluster runs, max relative difference {c['max_rel_diff']:.1e} "
                f"({c['ms_per_run']} ms per run, i.e. ~{c['ms_per_run'] * s['task_runs'] / 1000:,.0f} s for the "
                "day — the price of the engine's sharing done in a Python loop)."
            )
        lines.append("")
    a = r.get("accuracy")
    if a:
        w = a["world"]
        lines += [
            "## What the engine's extra work buys: error against the generator's ground truth",
            "",
            f"World `{w['scale']}`, seed {w['seed']}, {w['cloud']} {w['tier']}, {w['days']} days from {w['start']} "
            f"(`cost_assets.simulation`): each day's raw tables fetched through `SimulatedApi` + `fetch_day` "
            f"({w['task_run_rows']:,} task-run rows, {w['cluster_rows']:,} cluster rows, {w['event_rows']:,} events "
            f"in all), the engine and the original calculator run per day, compared per (usage_date, job run) with "
            f"`truth.run_costs` — {w['truth_job_runs']:,} job-run days. A run an estimate misses counts as 100 % "
            "error.",
            "",
            "| | runs within 2 % of truth | median abs. rel. error | p90 abs. rel. error | run $ (truth) | "
            "total $ incl. idle (truth) | total / truth |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, label in [("engine", "engine"), ("original", "original calculator")]:
            e = a[name]
            lines.append(
                f"| {label} | {_pct(e['within_2pct_share'])} | {_pct(e['median_abs_rel_error'])} | "
                f"{_pct(e['p90_abs_rel_error'])} | {e['estimated_usd']:,.2f} ({e['true_usd']:,.2f}) | "
                f"{e['estimated_total_usd']:,.2f} ({e['true_total_usd']:,.2f}) | {e['total_vs_truth']} |"
            )
        lines += ["", "By kind of cluster the job run used:", "",
                  "| | runs | engine within 2 % / median / p90 | original within 2 % / median / p90 | "
                  "original run $ vs truth |",
                  "|---|---:|---|---|---:|"]  # fmt: skip
        for part, label in [("job_cluster_runs", "job clusters only"), ("shared_cluster_runs", "on a shared cluster")]:
            e, o = a["engine"][part], a["original"][part]
            if not e.get("runs"):
                continue
            lines.append(
                f"| {label} | {e['runs']:,} | {_pct(e['within_2pct_share'])} / {_pct(e['median_abs_rel_error'])} / "
                f"{_pct(e['p90_abs_rel_error'])} | {_pct(o['within_2pct_share'])} / {_pct(o['median_abs_rel_error'])}"
                f" / {_pct(o['p90_abs_rel_error'])} | {o['estimated_usd']:,.2f} vs {o['true_usd']:,.2f} |"
            )
        sec = a["seconds"]
        lines += [
            "",
            f"Seconds over the {w['days']} days: engine {sec['engine']}, original calculator {sec['original']} "
            f"(world generation {sec['generate_world']}, truth {sec['truth']}, fetch {sec['fetch']}; untimed for "
            "the targets).",
            "",
        ]
    if d:
        rc = d["run_costs"]
        b = rc["best"]
        timed = ", ".join(f"`{k}`" for k in d.get("timed_assets", rc.get("assets", ["mart/run_costs"])))
        same = next((s for s in sizes if s["size"] == d["size"]), None)
        lines += [
            "## The whole day through Dagster",
            "",
            f"`benchmarks/bench_dagster_day.py --size {d['size']}`: the project's `build_defs` with a temporary DuckDB "
            "(`COST_ASSETS_DUCKDB`) and a temporary sqlite Dagster instance; the workspace resource answers with the "
            f"{d['size']} synthetic day; the raw and ref tables upstream of `mart/run_costs` (contracts on every row) "
            f"are materialized first in one run, untimed ({d['raw_setup_untimed']['seconds']} s; rows: "
            + ", ".join(f"{k} {v:,}" for k, v in d["raw_setup_untimed"]["rows"].items())
            + "). Then, in a fresh process, `dg.materialize(defs.assets, selection=..., partition_key=...)` with the "
            "project's `CostDuckDBIOManager`, the selection being every asset upstream of `mart/run_costs` (itself "
            f"included) minus the raw and ref ones: {timed}; repeated (each run replaces the partitions). The step "
            "columns are summed over the run's steps:",
            "",
            "| asset | cold run s (first in the process) | best s | step s | load inputs | compute | write | "
            "checks + rest | peak RSS MB (1st run / all runs) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, x in [("raw → mart/run_costs", rc)]:
            bb = x["best"]
            lines.append(
                f"| `{name}` | {x['runs'][0]['wall_seconds']} | {bb['wall_seconds']} | {bb.get('step_seconds')} | "
                f"{bb.get('load_inputs_seconds')} | {bb.get('compute_seconds')} | {bb.get('write_seconds')} | "
                f"{bb.get('checks_and_rest_seconds')} | {x['runs'][0].get('peak_rss_mb_so_far')} / "
                f"{x['peak_rss_mb']} |"
            )
        steps = b.get("steps") or {}
        if len(steps) > 1:
            lines += [
                "",
                "Steps of the best raw → `mart/run_costs` run (s: step / load inputs / compute / write / "
                "checks + rest): "
                + "; ".join(
                    f"`{k}` {v['step_seconds']} / {v['load_inputs_seconds']} / {v['compute_seconds']} / "
                    f"{v['write_seconds']} / {v['checks_and_rest_seconds']}"
                    for k, v in steps.items()
                )
                + ".",
            ]
        lines += [
            "",
            f"Target ≤ {TARGET_DAGSTER_S:.0f} s: {_yes(d['target_met'])} (cold run {d['run_costs_cold_seconds']} s; "
            f"the engine alone on the frames read back from DuckDB: {rc['engine_only_seconds']} s, so Dagster + "
            f"DuckDB + checks add ~{round(b['wall_seconds'] - rc['engine_only_seconds'], 1)} s). A run worker "
            f"process also pays ~{rc['process_startup_seconds']} s of interpreter start, imports and `build_defs` "
            f"before the run. Output rows: "
            + ", ".join(f"`{k}` {v:,}" for k, v in rc["rows_by_table"].items())
            + ". Peak RSS is the run process's high-water mark (Dagster, DuckDB's buffers and the inputs loaded "
            f"from DuckDB included): {rc['runs'][0].get('peak_rss_mb_so_far')} MB after the cold run, "
            f"{rc['peak_rss_mb']} MB after {len(rc['runs'])} runs in the same process. The 1 GiB target is the "
            "engine's (above); through Dagster the same call sits on top of Dagster, DuckDB's buffers and the inputs "
            "loaded from DuckDB"
            + (
                f" ({rc['peak_rss_mb'] - same['engine_peak_rss_mb']:+,} MB over the engine's own peak at {d['size']})."
                if same
                else "."
            ),
            "",
        ]
    md.write_text("\n".join(lines).rstrip("\n") + "\n")


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="S,M,L", help="comma-separated, of " + ", ".join(SIZES))
    ap.add_argument("--repeat", type=int, default=5, help="best of N, floor / engine / original alternating")
    ap.add_argument("--naive-sample", type=int, default=50, help="shared-cluster runs for the oracle (0: skip)")
    ap.add_argument("--accuracy-scale", default="medium", help="world preset for the accuracy run")
    ap.add_argument("--accuracy-days", type=int, default=7)
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--no-dagster", action="store_true")
    ap.add_argument("--dagster-size", default="L", choices=list(SIZES))
    ap.add_argument("--dagster-repeat", type=int, default=3)
    ap.add_argument(
        "--floor",
        type=Path,
        default=FLOOR,
        help="sweep_floor.py to compare with (default ../shared/bench/sweep_floor.py); absent: no floor",
    )
    ap.add_argument("--out-dir", type=Path, default=HERE, help="where RESULTS.md and results.json go")
    ap.add_argument("--memory-probe", choices=["engine", "floor", "original"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    sizes = [s.strip() for s in a.sizes.split(",") if s.strip()]
    if min(a.repeat, a.dagster_repeat) < 1:
        ap.error("--repeat and --dagster-repeat must be at least 1")
    if unknown := [s for s in sizes if s not in SIZES]:
        ap.error(f"unknown size(s) {unknown}; known: {', '.join(SIZES)}")
    if a.memory_probe:
        print(json.dumps(memory_probe(a.memory_probe, sizes[0], a.floor)))
        return

    started = time.perf_counter()
    result = {
        "command": "POLARS_MAX_THREADS={} .venv/bin/python benchmarks/bench_engine.py {}".format(
            os.environ["POLARS_MAX_THREADS"], " ".join(sys.argv[1:])
        ).strip(),
        "machine": machine(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "targets": {
            "ratio_wall_at_L": TARGET_RATIO,
            "engine_peak_rss_mb_at_L": TARGET_PEAK_MB,
            "dagster_day_seconds_at_L": TARGET_DAGSTER_S,
        },
        "sizes": [],
    }
    floor = _load_floor(a.floor)
    if floor is None:
        print(f"warning: no floor at {a.floor}; ratios are n/a", file=sys.stderr)
    for size in sizes:
        r = bench_size(size, floor, a.floor, a.repeat, a.naive_sample)
        result["sizes"].append(r)
        print(
            f"{size}: floor {r['floor_seconds']} s, engine {r['engine_seconds']} s ({_x(r['ratio_wall'])}), "
            f"original {r['original_seconds']} s, engine peak {r['engine_peak_rss_mb']} MB",
            file=sys.stderr,
        )
        gc.collect()
    if not a.no_accuracy:
        result["accuracy"] = accuracy(a.accuracy_scale, a.accuracy_days)
        print(
            f"accuracy: engine {result['accuracy']['engine']['within_2pct_share']}, original "
            f"{result['accuracy']['original']['within_2pct_share']} within 2 %",
            file=sys.stderr,
        )
    if not a.no_dagster:
        cmd = [sys.executable, str(HERE / "bench_dagster_day.py"), "--size", a.dagster_size,
               "--repeat", str(a.dagster_repeat)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if done.returncode != 0:
            raise RuntimeError(f"Dagster day failed:\n{done.stderr[-4000:]}")
        result["dagster_day"] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"dagster day: {result['dagster_day']['run_costs_cold_seconds']} s cold", file=sys.stderr)
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if costing_hash() != result["machine"]["costing_source_sha256"]:
        result["warning"] = "cost_assets/costing changed while the benchmark ran: re-run it"
        print(f"warning: {result['warning']}", file=sys.stderr)
    result["benchmark_seconds"] = round(time.perf_counter() - started, 1)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    write_results(a.out_dir / "RESULTS.md", a.out_dir / "results.json", result)
    print(json.dumps({k: result[k] for k in ("command", "benchmark_seconds")}))


if __name__ == "__main__":
    sys.exit(main())
