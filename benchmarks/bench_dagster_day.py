"""The whole day through Dagster: raw tables in DuckDB → ``mart/run_costs`` (target ≤ 15 s at L).

    python benchmarks/bench_dagster_day.py --size L          # prints one JSON line

Set-up (not timed): the project's ``build_defs`` with ``COST_ASSETS_DUCKDB`` pointing at a temporary
DuckDB file and ``COST_ASSETS_CLOUD=AWS``; the ``workspace`` resource is swapped for
:class:`SyntheticWorkspace`, which answers ``fetch`` with the benchmark's synthetic day (``synthetic.py``,
same frames as ``bench_engine.py``). Then, on a temporary sqlite-backed Dagster instance:

1. job ``reference_prices`` (``ref/instance_types``, ``ref/dbu_prices`` from the bundled sheet);
2. the project's ``raw.workspace_tables`` multi-asset for the day's partition: contract checks on every
   row, then ``raw/job_runs``, ``raw/jobs``, ``raw/clusters``, ``raw/cluster_events`` written by the
   project's ``CostDuckDBIOManager``.

Timed: ``dg.materialize(defs.assets, selection=[mart/run_costs], partition_key=day)`` — one Dagster run
that loads the six input tables from DuckDB, runs the engine, validates the 100k-row result against its
contract, runs the WARN checks and writes the partition back (one DuckDB transaction). Repeated
``--repeat`` times (each run replaces the partition); best and all runs are reported, with a split of
the step from its event log (load inputs / compute + checks / write). ``mart/cluster_segments`` is timed
the same way, separately (``run_costs`` does not read it). Peak RSS is the process's high-water mark
over the timed runs only (reset after the set-up).

Why not the simulated world: at L the world generator cannot produce 10k clusters with 1M events (see
``synthetic.py``), and with ``SimulatedWorkspace`` the ``mart/run_costs`` step also computes the world's
ground truth for its metadata (a plain-Python reference), which is simulation-only work.
"""

import os

os.environ.setdefault("POLARS_MAX_THREADS", "2")

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import polars as pl

from cost_assets.assets import raw
from cost_assets.assets.costs import CLUSTER_SEGMENTS, RUN_COSTS
from cost_assets.costing import engine
from cost_assets.definitions import build_defs
from cost_assets.ingest.fetch import WorkspaceDay
from cost_assets.resources.databricks import DatabricksWorkspace
from cost_assets.resources.warehouse import read_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import peak_rss_mb, reset_peak
from synthetic import DAY, SIZES, synthetic_day

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class SyntheticWorkspace(DatabricksWorkspace):
    """A workspace whose one day is the benchmark's synthetic day (the raw asset validates and stores it)."""

    clusters: int
    events_per_cluster: int
    runs: int
    seed: int = 1

    def fetch(self, days: list[dt.date]) -> WorkspaceDay:
        if days != [DAY]:
            raise ValueError(f"the synthetic workspace only has {DAY}, not {days}")
        f = synthetic_day(self.clusters, self.events_per_cluster, self.runs, self.seed)
        return WorkspaceDay(job_runs=f["job_runs"], jobs=f["jobs"], clusters=f["clusters"],
                            cluster_events=f["events"], stats={"events": f["events"].height})


def _step_split(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> dict:
    """Seconds of the single step: start → last input loaded → output stored → step success."""
    t = {}
    for entry in instance.all_logs(result.run_id):
        kind = entry.dagster_event.event_type_value if entry.dagster_event else None
        if kind == "STEP_START":
            t["start"] = entry.timestamp
        elif kind == "LOADED_INPUT":
            t["loaded"] = entry.timestamp
        elif kind == "STEP_OUTPUT" and "output" not in t:
            t["output"] = entry.timestamp
        elif kind == "HANDLED_OUTPUT" and "handled" not in t:
            t["handled"] = entry.timestamp
        elif kind == "STEP_SUCCESS":
            t["success"] = entry.timestamp
    need = {"start", "loaded", "output", "handled", "success"}
    if not need <= t.keys():
        return {}
    return {"step_seconds": round(t["success"] - t["start"], 3),
            "load_inputs_seconds": round(t["loaded"] - t["start"], 3),
            "compute_seconds": round(t["output"] - t["loaded"], 3),
            "write_seconds": round(t["handled"] - t["output"], 3),
            "checks_and_rest_seconds": round(t["success"] - t["handled"], 3)}


def _time(defs: dg.Definitions, resources: dict, instance: dg.DagsterInstance, key: dg.AssetKey, repeat: int
          ) -> dict:
    runs = []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        result = dg.materialize(defs.assets, selection=[key], partition_key=DAY.isoformat(), instance=instance,
                                resources=resources, run_config=QUIET)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        if not result.success:
            raise RuntimeError(f"{key.to_user_string()} failed")
        runs.append({"wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3), **_step_split(instance, result),
                     "peak_rss_mb_so_far": round(peak_rss_mb())})
    return {"best": min(runs, key=lambda r: r["wall_seconds"]), "runs": runs}


def _setup(tmp: Path, size: str) -> tuple[dg.Definitions, dict, dg.DagsterInstance, str]:
    """The project's definitions on ``tmp``'s DuckDB file and Dagster instance, workspace swapped."""
    clusters, per_cluster, n_runs = SIZES[size]
    db = str(tmp / "warehouse.duckdb")
    defs = build_defs({"COST_ASSETS_DUCKDB": db, "COST_ASSETS_CLOUD": "AWS", "COST_ASSETS_TIER": "PREMIUM"})
    resources = {**defs.resources, "workspace": SyntheticWorkspace(
        clusters=clusters, events_per_cluster=per_cluster, runs=n_runs)}
    home = tmp / "dagster_home"
    home.mkdir(exist_ok=True)
    return defs, resources, dg.DagsterInstance.local_temp(tempdir=str(home)), db


def phase_raw(tmp: Path, size: str) -> dict:
    """Not timed against the target: reference prices and the day's raw tables into DuckDB."""
    defs, resources, instance, db = _setup(tmp, size)
    try:
        t = time.perf_counter()
        ok = defs.resolve_job_def("reference_prices").execute_in_process(
            instance=instance, run_config=QUIET, resources=resources).success
        ok = ok and dg.materialize([raw.workspace_tables], partition_key=DAY.isoformat(), instance=instance,
                                   resources=resources, run_config=QUIET).success
        if not ok:
            raise RuntimeError("set-up (reference prices / raw tables) failed")
        return {"seconds": round(time.perf_counter() - t, 1),
                "rows": {name: read_table(db, f"raw.{name}").height
                         for name in ("job_runs", "jobs", "clusters", "cluster_events")}}
    finally:
        instance.dispose()


def phase_time(tmp: Path, size: str, asset: str, repeat: int, launched_at: float) -> dict:
    """In a fresh process: materialize one mart asset ``repeat`` times; the first run is the cold one."""
    defs, resources, instance, db = _setup(tmp, size)
    startup = time.time() - launched_at  # interpreter + imports + build_defs, as a run worker pays them
    key = {"run_costs": RUN_COSTS, "cluster_segments": CLUSTER_SEGMENTS}[asset]
    try:
        reset_peak()
        base = peak_rss_mb()
        timed = _time(defs, resources, instance, key, repeat)
        peak = peak_rss_mb()
        out = {"process_startup_seconds": round(startup, 2), **timed, "peak_rss_mb": round(peak),
               "rss_before_mb": round(base), "rows": read_table(db, f"mart.{asset}").height}
        if asset == "run_costs":
            # The same engine call outside Dagster on the frames read back from DuckDB: the overhead split.
            names = [("job_runs", "raw.job_runs"), ("jobs", "raw.jobs"), ("clusters", "raw.clusters"),
                     ("events", "raw.cluster_events"), ("instance_types", "ref.instance_types"),
                     ("dbu_prices", "ref.dbu_prices")]
            frames = {n: read_table(db, t) for n, t in names}
            best = float("inf")
            for _ in range(repeat):
                t = time.perf_counter()
                engine.run_costs(**frames, day=DAY)
                best = min(best, time.perf_counter() - t)
            out["engine_only_seconds"] = round(best, 3)
        return out
    finally:
        instance.dispose()


def _child(args: list[str]) -> dict:
    cmd = [sys.executable, __file__, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(size: str, repeat: int) -> dict:
    """Raw set-up, then ``mart/run_costs`` and ``mart/cluster_segments`` each timed in a fresh process."""
    clusters, per_cluster, n_runs = SIZES[size]
    with tempfile.TemporaryDirectory(prefix="bench_dagster_day_") as tmp:
        common = ["--size", size, "--dir", tmp, "--repeat", str(repeat)]
        setup = _child(["--phase", "raw", *common])
        run_costs = _child(["--phase", "run_costs", "--launched-at", repr(time.time()), *common])
        segments = _child(["--phase", "cluster_segments", "--launched-at", repr(time.time()), *common])
    cold = run_costs["runs"][0]["wall_seconds"]
    return {
        "size": size,
        "clusters": clusters,
        "events_per_cluster": per_cluster,
        "task_runs": n_runs,
        "raw_setup_untimed": setup,
        "run_costs": run_costs,
        "cluster_segments": segments,
        "target_seconds": 15.0,
        "run_costs_cold_seconds": cold,
        "run_costs_best_seconds": run_costs["best"]["wall_seconds"],
        "target_met": cold <= 15.0,
        "threads": int(os.environ["POLARS_MAX_THREADS"]),
        "python": platform.python_version(),
        "polars": pl.__version__,
        "dagster": dg.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="L", choices=sorted(SIZES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--phase", choices=["raw", "run_costs", "cluster_segments"], help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--launched-at", type=float, default=0.0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.phase == "raw":
        result = phase_raw(a.dir, a.size)
    elif a.phase:
        result = phase_time(a.dir, a.size, a.phase, a.repeat, a.launched_at)
    else:
        result = bench(a.size, a.repeat)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
