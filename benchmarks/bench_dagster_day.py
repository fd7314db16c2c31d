"""The whole day through Dagster: raw tables in DuckDB → ``mart/run_costs`` (target ≤ 15 s at L).

    python benchmarks/bench_dagster_day.py --size L          # prints one JSON line

Set-up (not timed): the project's ``build_defs`` with ``COST_ASSETS_DUCKDB`` pointing at a temporary
DuckDB file and ``COST_ASSETS_CLOUD=AWS``; the ``workspace`` resource is swapped for
:class:`SyntheticWorkspace`, which answers ``fetch`` with the benchmark's synthetic day (``synthetic.py``,
same frames as ``bench_engine.py``). Then, on a temporary sqlite-backed Dagster instance, one run for the
day's partition materializes the *sources*: every asset upstream of ``mart/run_costs`` in the ``raw`` or
``ref`` group (or under the ``raw/`` / ``ref/`` key prefix): the day's price snapshots
``ref/instance_types`` and ``ref/dbu_prices`` (bundled sheet) and the four workspace tables of
``raw.workspace_tables`` (contract checks on every row, written by the project's ``CostDuckDBIOManager``).

Timed, in a fresh process: the *timed selection*, every asset upstream of ``mart/run_costs`` (itself
included) minus the sources, chosen from the asset graph (:func:`timed_selection`) so that it follows the
lineage: ``mart/run_costs`` and every mart asset it reads, directly or not (the result lists them as
``timed_assets``); a new asset between the raw tables and ``mart/run_costs`` joins it by itself.
``dg.materialize(defs.assets, selection=..., partition_key=day)`` is one Dagster run that loads the
input tables from DuckDB, runs the engine, validates each result against its contract, runs the asset
checks and writes each partition back. Repeated ``--repeat`` times (each run
replaces the partitions); best and all runs are reported, with a split of the steps from the event log
(load inputs / compute / write / checks, summed over the steps, and per step), and the ``engine.run_costs``
call timed alone on the frames read back from DuckDB. Peak RSS is the process's high-water mark over
the timed runs only (reset after the set-up).

Why not the simulated world: at L the world generator cannot produce 10k clusters with 1M events (see
``synthetic.py``); the synthetic day has exactly the shape ``bench_engine.py`` times the engine on.
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

from cost_assets.assets.costs import RUN_COSTS
from cost_assets.assets.reference import snapshot
from cost_assets.costing import engine
from cost_assets.definitions import build_defs
from cost_assets.ingest.fetch import WorkspaceDay
from cost_assets.resources.databricks import DatabricksWorkspace
from cost_assets.resources.warehouse import read_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import peak_rss_mb, reset_peak
from synthetic import DAY, SIZES, synthetic_day

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# The layers the set-up writes untimed: what the workspace and the price sheet give, before any costing.
SOURCES = dg.AssetSelection.groups("raw", "ref") | dg.AssetSelection.key_prefixes("raw", "ref")
TARGET = RUN_COSTS


def setup_selection() -> dg.AssetSelection:
    """The raw and ref assets ``mart/run_costs`` depends on (directly or not): materialized untimed."""
    return dg.AssetSelection.assets(TARGET).upstream() & SOURCES


def timed_selection() -> dg.AssetSelection:
    """Everything between the sources and ``mart/run_costs``, itself included (with their checks)."""
    return dg.AssetSelection.assets(TARGET).upstream() - SOURCES


def _keys(defs: dg.Definitions, selection: dg.AssetSelection) -> list[dg.AssetKey]:
    return sorted(selection.resolve(defs.resolve_asset_graph()), key=lambda k: k.to_user_string())


def _table(key: dg.AssetKey) -> str:
    """The DuckDB table of an asset (``layer.table``, as ``CostDuckDBIOManager`` names it)."""
    return ".".join(key.path)


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
        return WorkspaceDay(
            job_runs=f["job_runs"],
            jobs=f["jobs"],
            clusters=f["clusters"],
            cluster_events=f["events"],
            stats={"events": f["events"].height},
        )


_SPLIT = ("step_seconds", "load_inputs_seconds", "compute_seconds", "write_seconds", "checks_and_rest_seconds")


def _step_split(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> dict:
    """Seconds of each step (start → last input loaded → first output → first output stored → success),
    and their sums over the steps (the in-process executor runs the steps one after the other)."""
    marks: dict[str, dict[str, float]] = {}
    for entry in instance.all_logs(result.run_id):
        kind = entry.dagster_event.event_type_value if entry.dagster_event else None
        if not entry.step_key:
            continue
        t = marks.setdefault(entry.step_key, {})
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
    steps = {}
    for step, t in marks.items():
        if not {"start", "output", "handled", "success"} <= t.keys():
            continue
        loaded = t.get("loaded", t["start"])  # a step without inputs loads nothing
        steps[step] = dict(
            zip(
                _SPLIT,
                (
                    t["success"] - t["start"],
                    loaded - t["start"],
                    t["output"] - loaded,
                    t["handled"] - t["output"],
                    t["success"] - t["handled"],
                ),
                strict=True,
            )
        )
    if not steps:
        return {}
    total = {k: round(sum(s[k] for s in steps.values()), 3) for k in _SPLIT}
    return {**total, "steps": {step: {k: round(v, 3) for k, v in s.items()} for step, s in steps.items()}}


def _time(
    defs: dg.Definitions, resources: dict, instance: dg.DagsterInstance, selection: dg.AssetSelection, repeat: int
) -> dict:
    runs = []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        result = dg.materialize(
            defs.assets,
            selection=selection,
            partition_key=DAY.isoformat(),
            instance=instance,
            resources=resources,
            run_config=QUIET,
        )
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        if not result.success:
            raise RuntimeError(f"{selection} failed")
        runs.append(
            {
                "wall_seconds": round(wall, 3),
                "cpu_seconds": round(cpu, 3),
                **_step_split(instance, result),
                "peak_rss_mb_so_far": round(peak_rss_mb()),
            }
        )
    return {"best": min(runs, key=lambda r: r["wall_seconds"]), "runs": runs}


def _setup(tmp: Path, size: str) -> tuple[dg.Definitions, dict, dg.DagsterInstance, str]:
    """The project's definitions on ``tmp``'s DuckDB file and Dagster instance, workspace swapped."""
    clusters, per_cluster, n_runs = SIZES[size]
    db = str(tmp / "warehouse.duckdb")
    defs = build_defs({"COST_ASSETS_DUCKDB": db, "COST_ASSETS_CLOUD": "AWS", "COST_ASSETS_TIER": "PREMIUM"})
    resources = {
        **defs.resources,
        "workspace": SyntheticWorkspace(clusters=clusters, events_per_cluster=per_cluster, runs=n_runs),
    }
    home = tmp / "dagster_home"
    home.mkdir(exist_ok=True)
    return defs, resources, dg.DagsterInstance.local_temp(tempdir=str(home)), db


def phase_raw(tmp: Path, size: str) -> dict:
    """Not timed against the target: the day's price snapshots and raw tables into DuckDB, one run."""
    defs, resources, instance, db = _setup(tmp, size)
    keys = _keys(defs, setup_selection())
    if not keys:
        raise RuntimeError(f"no raw/ref asset upstream of {TARGET.to_user_string()}")
    try:
        t = time.perf_counter()
        ok = dg.materialize(
            defs.assets,
            selection=setup_selection(),
            partition_key=DAY.isoformat(),
            instance=instance,
            resources=resources,
            run_config=QUIET,
        ).success
        if not ok:
            raise RuntimeError(f"set-up ({', '.join(k.to_user_string() for k in keys)}) failed")
        return {
            "seconds": round(time.perf_counter() - t, 1),
            "rows": {_table(k): read_table(db, _table(k)).height for k in keys},
        }
    finally:
        instance.dispose()


def _engine_only(db: str, repeat: int) -> float:
    """Best seconds of ``engine.run_costs`` on the raw and ref frames read back from DuckDB (as the asset
    calls it for one day: the day's price snapshot, without ``usage_date``)."""
    frames = {
        n: read_table(db, t)
        for n, t in [
            ("job_runs", "raw.job_runs"),
            ("jobs", "raw.jobs"),
            ("clusters", "raw.clusters"),
            ("events", "raw.cluster_events"),
        ]
    }
    for n, t in [("instance_types", "ref.instance_types"), ("dbu_prices", "ref.dbu_prices")]:
        frames[n] = snapshot(read_table(db, t), DAY)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        engine.run_costs(**frames, day=DAY, tier="PREMIUM")
        best = min(best, time.perf_counter() - t)
    return round(best, 3)


def phase_time(tmp: Path, size: str, repeat: int, launched_at: float) -> dict:
    """In a fresh process: materialize the timed selection ``repeat`` times; the first run is the cold one."""
    defs, resources, instance, db = _setup(tmp, size)
    startup = time.time() - launched_at  # interpreter + imports + build_defs, as a run worker pays them
    selection = timed_selection()
    keys = _keys(defs, selection)
    if TARGET not in keys:
        raise RuntimeError(f"{TARGET.to_user_string()} is not in the timed selection {keys}")
    try:
        reset_peak()
        base = peak_rss_mb()
        timed = _time(defs, resources, instance, selection, repeat)
        peak = peak_rss_mb()
        out = {
            "assets": [k.to_user_string() for k in keys],
            "process_startup_seconds": round(startup, 2),
            **timed,
            "peak_rss_mb": round(peak),
            "rss_before_mb": round(base),
            "rows": read_table(db, _table(TARGET)).height,
            "rows_by_table": {_table(k): read_table(db, _table(k)).height for k in keys},
        }
        # The same engine call outside Dagster: what Dagster, DuckDB and the checks add around it.
        out["engine_only_seconds"] = _engine_only(db, repeat)
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
    """Raw set-up, then the timed selection in a fresh process."""
    clusters, per_cluster, n_runs = SIZES[size]
    with tempfile.TemporaryDirectory(prefix="bench_dagster_day_") as tmp:
        common = ["--size", size, "--dir", tmp, "--repeat", str(repeat)]
        setup = _child(["--phase", "raw", *common])
        run_costs = _child(["--phase", "run_costs", "--launched-at", repr(time.time()), *common])
    cold = run_costs["runs"][0]["wall_seconds"]
    return {
        "size": size,
        "clusters": clusters,
        "events_per_cluster": per_cluster,
        "task_runs": n_runs,
        "raw_setup_untimed": setup,
        "timed_assets": run_costs["assets"],
        "run_costs": run_costs,
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
    ap.add_argument("--size", default="L", choices=list(SIZES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--phase", choices=["raw", "run_costs"], help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--launched-at", type=float, default=0.0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    if a.phase == "raw":
        result = phase_raw(a.dir, a.size)
    elif a.phase:
        result = phase_time(a.dir, a.size, a.repeat, a.launched_at)
    else:
        result = bench(a.size, a.repeat)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
