"""A schema-exact synthetic day of raw tables for the benchmarks (numpy, seconds even at L).

The simulated world (``cost_assets.simulation.world``) cannot produce the benchmark's L shape: every job
run there gets its own job cluster with a handful of events, so 100k task runs means ~40k clusters and
~5 events per cluster. The benchmark's L is 100k task runs on 10k clusters with ~1M events (100 per
cluster: long-lived, autoscaling, spot-evicted clusters), so timing uses this generator at exactly the
floor's sizes, and accuracy (which needs ground truth) uses the world (see ``original_calculator.py``).

What it makes, per size (clusters C, events per cluster E, task runs R):

* ``raw.clusters``: C clusters, 60 % job clusters (source JOB), 30 % UI, 10 % API; AWS node types of the
  bundled price sheet; 60 % fixed size (1–7 workers), 35 % autoscale (min 1–3, max min+2..6), 5 % single
  node; ON_DEMAND / SPOT / SPOT_WITH_FALLBACK, first_on_demand 0/1, 20 % Photon.
* ``raw.cluster_events``: C × E events at random times from 23:00 the day before (look-back) to the end
  of the day, cycling through a life (start, autoscale up twice, spot loss and replacement, terminate).
* ``raw.job_runs``: R task runs, 1–60 min, uniformly over the day, on uniformly chosen clusters.
* ``raw.jobs``: 5,000 jobs with tags; ``ref.instance_types`` / ``ref.dbu_prices``: the bundled sheet.
"""

import datetime as dt

import numpy as np
import polars as pl

from cost_assets import schemas
from cost_assets.prices import load_price_sheet

DAY = dt.date(2026, 1, 2)  # inside the DAILY partitions (from 2025-01-01): the Dagster bench uses it too
T0 = dt.datetime(2026, 1, 2)
US_DAY = 86_400_000_000
US_HOUR = 3_600_000_000
CLOUD = "AWS"
NODE_TYPES = ["m5.xlarge", "m5.2xlarge", "i3.xlarge", "r5.xlarge", "c5.2xlarge"]
# One cluster life: start, autoscale up twice, a spot loss and its replacement, then termination.
LIFE = ["STARTING", "RUNNING", "RESIZING", "UPSIZE_COMPLETED", "RESIZING", "UPSIZE_COMPLETED",
        "NODES_LOST", "RESIZING", "UPSIZE_COMPLETED", "TERMINATING"]  # fmt: skip
# name -> (clusters, events per cluster, task runs)
SIZES = {
    "S": (100, 100, 1_000),
    "M": (1_000, 100, 10_000),
    "L": (10_000, 100, 100_000),
}


def _ts(us: np.ndarray) -> np.ndarray:
    return np.datetime64(T0, "us") + us.astype("timedelta64[us]")


def price_frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    """``ref.instance_types`` and ``ref.dbu_prices`` of the bundled price sheet (what the project ships)."""
    sheet = load_price_sheet()
    return sheet.instance_types_frame(), sheet.dbu_prices_frame()


def synthetic_day(clusters: int, events_per_cluster: int, runs: int, seed: int = 1) -> dict[str, pl.DataFrame]:
    """raw.job_runs / raw.jobs / raw.clusters / raw.cluster_events and ref prices for one day."""
    rng = np.random.default_rng(seed)
    cid = np.array([f"0102-{i:06d}-bench{i % 97:02d}" for i in range(clusters)])
    source = rng.choice(["JOB", "UI", "API"], clusters, p=[0.6, 0.3, 0.1])
    shape = rng.choice(["fixed", "autoscale", "single"], clusters, p=[0.6, 0.35, 0.05])
    lo = rng.integers(1, 4, clusters)
    null_s, null_t = pl.lit(None, pl.String), pl.lit(None, pl.Datetime("us"))
    cl = pl.DataFrame(
        {
            "cluster_id": cid,
            "cluster_source": source,
            "node_type_id": rng.choice(NODE_TYPES, clusters),
            "shape": shape,
            "fixed": rng.integers(1, 8, clusters),
            "lo": lo,
            "hi": lo + rng.integers(2, 7, clusters),
            "availability": rng.choice(["ON_DEMAND", "SPOT", "SPOT_WITH_FALLBACK"], clusters),
            "first_on_demand": rng.integers(0, 2, clusters),
            "is_photon": rng.random(clusters) < 0.2,
        }
    ).select(
        pl.lit(DAY).alias("usage_date"),
        pl.lit("ws-1").alias("workspace_id"),
        pl.lit(CLOUD).alias("cloud"),
        "cluster_id",
        null_s.alias("cluster_name"),
        "cluster_source",
        "node_type_id",
        pl.col("node_type_id").alias("driver_node_type_id"),
        pl.when(pl.col("shape") == "fixed")
        .then("fixed")
        .when(pl.col("shape") == "single")
        .then(0)
        .alias("num_workers"),
        pl.when(pl.col("shape") == "autoscale").then("lo").alias("autoscale_min_workers"),
        pl.when(pl.col("shape") == "autoscale").then("hi").alias("autoscale_max_workers"),
        (pl.col("shape") == "single").alias("is_single_node"),
        "availability",
        "first_on_demand",
        pl.lit("15.4.x-scala2.12").alias("spark_version"),
        pl.when(pl.col("is_photon")).then(pl.lit("PHOTON")).otherwise(pl.lit("STANDARD")).alias("runtime_engine"),
        "is_photon",
        null_s.alias("instance_pool_id"),
        null_s.alias("driver_instance_pool_id"),
        pl.lit('{"team":"bench"}').alias("custom_tags"),
        pl.lit("RUNNING").alias("state"),
        null_t.alias("start_time"),
        null_t.alias("terminated_time"),
        null_s.alias("creator_user_name"),
        null_s.alias("pool_node_type_id"),
        pl.lit(None, pl.Int64).alias("pool_min_idle_instances"),
        null_s.alias("pool_custom_tags"),
        null_s.alias("reason"),
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
        *[
            pl.lit(None, pl.Int64).alias(c)
            for c in ("cluster_size_num_workers", "cluster_size_min_workers", "cluster_size_max_workers")
        ],
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
    it, dp = price_frames()
    return {"job_runs": jr, "jobs": jb, "clusters": cl, "events": ev, "instance_types": it, "dbu_prices": dp}


def validate(frames: dict[str, pl.DataFrame], rows: int | None = 20_000) -> None:
    """The synthetic frames obey the raw/ref contracts (on the first ``rows`` rows; None: all)."""
    models = {"job_runs": schemas.JobRuns, "jobs": schemas.Jobs, "clusters": schemas.Clusters,
              "events": schemas.ClusterEvents, "instance_types": schemas.InstanceTypes,
              "dbu_prices": schemas.DbuPrices}  # fmt: skip
    for name, model in models.items():
        model.validate(frames[name] if rows is None else frames[name].head(rows))
