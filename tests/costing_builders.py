"""Small builders for the cost engine's input frames, matching ``cost_assets.schemas`` exactly.

Each builder takes a few keyword rows (only the fields a test cares about) and fills the rest with
neutral defaults; every frame is validated against its pandera model so the tests feed the engine
exactly what the raw/ref assets produce.
"""

import datetime as dt
from typing import Any

import polars as pl

from cost_assets import schemas

DAY = dt.date(2024, 6, 19)
T0 = dt.datetime(2024, 6, 19)
TS = pl.Datetime("us")
WS = "ws-1"


def at(minutes: float, day: dt.datetime = T0) -> dt.datetime:
    """A timestamp ``minutes`` after midnight of the test day (negative: the look-back)."""
    return day + dt.timedelta(minutes=minutes)


def _frame(rows: list[dict[str, Any]], schema: dict[str, Any], defaults: dict[str, Any], model) -> pl.DataFrame:
    full = [{**defaults, **row} for row in rows]
    unknown = {k for row in rows for k in row} - set(schema)
    if unknown:
        raise KeyError(f"unknown columns {sorted(unknown)}")
    frame = pl.DataFrame(full, schema=schema, orient="row") if full else pl.DataFrame(schema=schema)
    return model.validate(frame)


CLUSTERS_SCHEMA = {
    "usage_date": pl.Date,
    "workspace_id": pl.String,
    "cloud": pl.String,
    "cluster_id": pl.String,
    "cluster_name": pl.String,
    "cluster_source": pl.String,
    "node_type_id": pl.String,
    "driver_node_type_id": pl.String,
    "num_workers": pl.Int64,
    "autoscale_min_workers": pl.Int64,
    "autoscale_max_workers": pl.Int64,
    "is_single_node": pl.Boolean,
    "availability": pl.String,
    "first_on_demand": pl.Int64,
    "spark_version": pl.String,
    "runtime_engine": pl.String,
    "is_photon": pl.Boolean,
    "instance_pool_id": pl.String,
    "driver_instance_pool_id": pl.String,
    "custom_tags": pl.String,
    "state": pl.String,
    "start_time": TS,
    "terminated_time": TS,
    "creator_user_name": pl.String,
    "pool_node_type_id": pl.String,
    "pool_min_idle_instances": pl.Int64,
    "pool_custom_tags": pl.String,
    "reason": pl.String,
}


def clusters(*rows: dict[str, Any]) -> pl.DataFrame:
    """raw.clusters rows; default: an AWS all-purpose m5.xlarge cluster, on-demand, 2 workers."""
    defaults = {
        "usage_date": DAY,
        "workspace_id": WS,
        "cloud": "AWS",
        "cluster_name": None,
        "cluster_source": "UI",
        "node_type_id": "m5.xlarge",
        "driver_node_type_id": "m5.xlarge",
        "num_workers": 2,
        "autoscale_min_workers": None,
        "autoscale_max_workers": None,
        "is_single_node": False,
        "availability": "ON_DEMAND",
        "first_on_demand": 1,
        "spark_version": "14.3.x-scala2.12",
        "runtime_engine": "STANDARD",
        "is_photon": False,
        "instance_pool_id": None,
        "driver_instance_pool_id": None,
        "custom_tags": "{}",
        "state": "RUNNING",
        "start_time": None,
        "terminated_time": None,
        "creator_user_name": None,
        "pool_node_type_id": None,
        "pool_min_idle_instances": None,
        "pool_custom_tags": None,
        "reason": None,
    }
    return _frame(list(rows), CLUSTERS_SCHEMA, defaults, schemas.Clusters)


EVENTS_SCHEMA = {
    "usage_date": pl.Date,
    "workspace_id": pl.String,
    "cluster_id": pl.String,
    "timestamp": TS,
    "event_type": pl.String,
    "current_num_workers": pl.Int64,
    "target_num_workers": pl.Int64,
    "cluster_size_num_workers": pl.Int64,
    "cluster_size_min_workers": pl.Int64,
    "cluster_size_max_workers": pl.Int64,
    "cause": pl.String,
    "reason_code": pl.String,
    "is_lookback": pl.Boolean,
}


def events(*rows: tuple) -> pl.DataFrame:
    """raw.cluster_events from ``(cluster_id, minute, event_type, current, target[, extra dict])`` tuples.

    ``usage_date`` is the test day; ``is_lookback`` is set for events before 00:00.
    """
    out = []
    for row in rows:
        cluster_id, minute, kind, current, target, *extra = row
        ts = at(minute)
        out.append(
            {
                "cluster_id": cluster_id,
                "timestamp": ts,
                "event_type": kind,
                "current_num_workers": current,
                "target_num_workers": target,
                "is_lookback": ts < T0,
                **(extra[0] if extra else {}),
            }
        )
    defaults = {
        "usage_date": DAY,
        "workspace_id": WS,
        "cluster_size_num_workers": None,
        "cluster_size_min_workers": None,
        "cluster_size_max_workers": None,
        "cause": None,
        "reason_code": None,
    }
    return _frame(out, EVENTS_SCHEMA, defaults, schemas.ClusterEvents)


JOB_RUNS_SCHEMA = {
    "usage_date": pl.Date,
    "workspace_id": pl.String,
    "job_id": pl.Int64,
    "run_id": pl.Int64,
    "task_run_id": pl.Int64,
    "task_key": pl.String,
    "attempt_number": pl.Int64,
    "run_name": pl.String,
    "run_type": pl.String,
    "trigger": pl.String,
    "creator_user_name": pl.String,
    "compute_type": pl.String,
    "job_cluster_key": pl.String,
    "cluster_id": pl.String,
    "run_start_time": TS,
    "run_end_time": TS,
    "start_time": TS,
    "end_time": TS,
    "life_cycle_state": pl.String,
    "result_state": pl.String,
}


def job_runs(*rows: dict[str, Any]) -> pl.DataFrame:
    """raw.job_runs rows; give task_run_id, cluster_id, start_time, end_time (+ job_id, compute_type)."""
    out = []
    for row in rows:
        r = {"job_id": 1, "run_id": row["task_run_id"] * 10, "task_key": f"t{row['task_run_id']}", **row}
        r.setdefault("run_start_time", r["start_time"])
        r.setdefault("run_end_time", r["end_time"])
        r.setdefault("life_cycle_state", "TERMINATED" if r["end_time"] is not None else "RUNNING")
        out.append(r)
    defaults = {
        "usage_date": DAY,
        "workspace_id": WS,
        "attempt_number": 0,
        "run_name": None,
        "run_type": "JOB_RUN",
        "trigger": None,
        "creator_user_name": None,
        "compute_type": "all_purpose",
        "job_cluster_key": None,
        "result_state": None,
    }
    return _frame(out, JOB_RUNS_SCHEMA, defaults, schemas.JobRuns)


JOBS_SCHEMA = {
    "usage_date": pl.Date,
    "workspace_id": pl.String,
    "job_id": pl.Int64,
    "job_name": pl.String,
    "creator_user_name": pl.String,
    "created_time": TS,
    "tags": pl.String,
    "team": pl.String,
    "tenant": pl.String,
    "project": pl.String,
    "cost_center": pl.String,
}


def jobs(*rows: dict[str, Any]) -> pl.DataFrame:
    defaults = {
        "usage_date": DAY,
        "workspace_id": WS,
        "job_name": None,
        "creator_user_name": None,
        "created_time": None,
        "tags": "{}",
        "team": None,
        "tenant": None,
        "project": None,
        "cost_center": None,
    }
    return _frame(list(rows), JOBS_SCHEMA, defaults, schemas.Jobs)


INSTANCE_TYPES_SCHEMA = {
    "cloud": pl.String,
    "node_type_id": pl.String,
    "vcpus": pl.Float64,
    "memory_gb": pl.Float64,
    "dbu_per_hour": pl.Float64,
    "vm_on_demand_per_hour": pl.Float64,
    "vm_spot_per_hour": pl.Float64,
    "disk_type": pl.String,
    "disks_per_node": pl.Int64,
    "disk_per_hour": pl.Float64,
    "currency_code": pl.String,
    "effective_from": TS,
    "effective_to": TS,
    "source": pl.String,
}


def instance_types(*rows: dict[str, Any]) -> pl.DataFrame:
    """ref.instance_types; default row values give m5.xlarge 2.0 DBU/h, $0.192/h, spot 0.2 × on-demand."""
    defaults = {
        "cloud": "AWS",
        "node_type_id": "m5.xlarge",
        "vcpus": 4.0,
        "memory_gb": 16.0,
        "dbu_per_hour": 2.0,
        "vm_on_demand_per_hour": 0.192,
        "vm_spot_per_hour": 0.192 * 0.2,
        "disk_type": None,  # no disk price unless a test gives one (its disk $ is then unknown)
        "disks_per_node": None,
        "disk_per_hour": None,
        "currency_code": "USD",
        "effective_from": dt.datetime(2020, 1, 1),
        "effective_to": None,
        "source": "test",
    }
    return _frame(list(rows) or [{}], INSTANCE_TYPES_SCHEMA, defaults, schemas.InstanceTypes)


DBU_PRICES_SCHEMA = {
    "cloud": pl.String,
    "sku_name": pl.String,
    "tier": pl.String,
    "workload": pl.String,
    "is_photon": pl.Boolean,
    "photon_dbu_factor": pl.Float64,
    "usage_unit": pl.String,
    "currency_code": pl.String,
    "price_start_time": TS,
    "price_end_time": TS,
    "list_price": pl.Float64,
    "contract_discount": pl.Float64,
    "contract_price": pl.Float64,
    "effective_price": pl.Float64,
    "source": pl.String,
}


def dbu_prices(*rows: dict[str, Any]) -> pl.DataFrame:
    """ref.dbu_prices; each row needs sku_name, workload and a price (list = contract = effective)."""
    out = []
    for row in rows:
        price = row.pop("price", None)
        r = dict(row)
        if price is not None:
            r.setdefault("list_price", price)
            r.setdefault("contract_price", price)
            r.setdefault("effective_price", price)
        out.append(r)
    defaults = {
        "cloud": "AWS",
        "tier": "PREMIUM",
        "is_photon": False,
        "photon_dbu_factor": 1.0,
        "usage_unit": "DBU",
        "currency_code": "USD",
        "price_start_time": dt.datetime(2020, 1, 1),
        "price_end_time": None,
        "contract_discount": 0.0,
        "source": "test",
    }
    return _frame(out, DBU_PRICES_SCHEMA, defaults, schemas.DbuPrices)


def standard_prices() -> tuple[pl.DataFrame, pl.DataFrame]:
    """m5.xlarge (2.0 DBU/h, $0.192/h, spot $0.0384/h) and $0.15/DBU for all-purpose and jobs."""
    return instance_types({}), dbu_prices(
        {"sku_name": "PREMIUM_ALL_PURPOSE_COMPUTE", "workload": "all_purpose", "price": 0.15},
        {"sku_name": "PREMIUM_JOBS_COMPUTE", "workload": "jobs", "price": 0.15},
    )


def pools(*rows: dict[str, Any]) -> pl.DataFrame:
    """The optional pools frame: instance_pool_id, node_type_id, cloud, usage_date, idle_instances."""
    defaults = {"cloud": "AWS", "node_type_id": "m5.xlarge", "usage_date": DAY, "workspace_id": WS}
    schema = {
        "instance_pool_id": pl.String,
        "node_type_id": pl.String,
        "cloud": pl.String,
        "usage_date": pl.Date,
        "idle_instances": pl.Int64,
        "workspace_id": pl.String,
    }
    return pl.DataFrame([{**defaults, **r} for r in rows], schema=schema, orient="row")


def spot_eviction_with_fallback() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cluster ``c``: SPOT_WITH_FALLBACK, first_on_demand=1, 4 workers, up 0–60 min. A spot worker is lost at
    20, its replacement requested at 21 (on-demand: the fallback) and ready at 23."""
    cl = clusters({"cluster_id": "c", "num_workers": 4, "availability": "SPOT_WITH_FALLBACK", "first_on_demand": 1})
    ev = events(
        ("c", 0, "RUNNING", 4, 4),
        ("c", 20, "NODES_LOST", 3, 4, {"reason_code": "SPOT_INSTANCE_TERMINATION"}),
        ("c", 21, "RESIZING", 3, 4),
        ("c", 23, "UPSIZE_COMPLETED", 4, 4),
        ("c", 60, "TERMINATING", None, None),
    )
    return cl, ev
