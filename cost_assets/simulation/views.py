"""What the Databricks APIs show of a simulated world, in the real wire shapes.

Jobs API run and job objects, clusters/get details, cluster events, list-node-types, the bill as
``system.billing.usage`` rows (with RETRACTION/RESTATEMENT corrections) and as the legacy 12-column
billable-usage CSV, list prices, and ``system.serving.endpoint_usage`` and ``served_entities`` rows. The
mock HTTP server and the in-process simulated resources both serve these, so parsers never know which one
answered.
"""

import csv
import datetime as dt
import io
import json
from functools import lru_cache

import polars as pl

from cost_assets.ingest.parse import LEGACY_CSV_COLUMNS
from cost_assets.prices import PriceSheet, load_price_sheet
from cost_assets.simulation import truth
from cost_assets.simulation.epoch import ANCHOR
from cost_assets.simulation.world import (
    AVAILABILITY,
    DAY,
    HOUR,
    Cluster,
    Job,
    JobRun,
    World,
    WorldConfig,
    world_for,
)
from cost_assets.simulation.world import stable_id as _sid
from cost_assets.timeutil import day_start_ms, from_ms, naive_utc, to_ms


def _ts(ms: int) -> str:
    """An instant as ISO-8601 UTC with milliseconds (system-table TIMESTAMPs, legacy CSV stamps)."""
    return from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _state(result: str) -> dict:
    return {
        "life_cycle_state": "TERMINATED",
        "result_state": result,
        "state_message": "",
        "user_cancelled_or_timedout": False,
    }


def _status(result: str) -> dict:
    code = "SUCCESS" if result == "SUCCESS" else "RUN_EXECUTION_ERROR"
    kind = "SUCCESS" if result == "SUCCESS" else "CLIENT_ERROR"
    return {"state": "TERMINATED", "termination_details": {"code": code, "type": kind, "message": ""}}


def cluster_spec_payload(c: Cluster, cloud: str) -> dict:
    """The ClusterSpec fields shared by clusters/get and a job's new_cluster."""
    # Some Photon clusters show it only through a legacy ``-photon-`` image name (no runtime_engine).
    legacy_photon = c.photon and c.cluster_id[-1] in "0123"
    spec: dict = {
        "spark_version": "15.4.x-photon-scala2.12" if legacy_photon else "15.4.x-scala2.12",
        "node_type_id": c.node_type,
        "driver_node_type_id": c.driver_node_type,
        "custom_tags": dict(sorted(c.custom_tags.items())),
        "enable_elastic_disk": True,
        "data_security_mode": "SINGLE_USER" if c.source == "JOB" else "USER_ISOLATION",
    }
    if not legacy_photon:
        spec["runtime_engine"] = "PHOTON" if c.photon else "STANDARD"
    if c.autoscale is not None:
        spec["autoscale"] = {"min_workers": c.autoscale[0], "max_workers": c.autoscale[1]}
    else:
        spec["num_workers"] = c.num_workers
    attrs = {"availability": c.availability, "first_on_demand": c.first_on_demand}
    if cloud == "AZURE":
        spec["azure_attributes"] = {**attrs, "spot_bid_max_price": -1.0}
    else:
        spec["aws_attributes"] = {**attrs, "zone_id": "us-west-2a", "spot_bid_price_percent": 100}
    if c.pool_id:
        spec["instance_pool_id"] = c.pool_id
        spec["driver_instance_pool_id"] = c.pool_id
    return spec


def cluster_payload(world: World, cluster_id: str) -> dict:
    """clusters/get → ClusterDetails, as seen after the world's last day (every session has ended).

    A long-lived cluster (``Cluster.created`` set: the generator's shared clusters) is shown RUNNING since
    its creation instead: the world holds only its sessions around the window, so "after the last day"
    would change with the window, and a day's raw.clusters row must not (the real API shows the state at
    the time of the call)."""
    c = world.clusters[cluster_id]
    out = {
        "cluster_id": c.cluster_id,
        "cluster_name": c.name,
        **cluster_spec_payload(c, world.config.cloud),
        "default_tags": {
            "Vendor": "Databricks",
            "Creator": c.creator,
            "ClusterName": c.name,
            "ClusterId": c.cluster_id,
        },
        "cluster_source": c.source,
        "state": "RUNNING",
        "state_message": "",
        "start_time": c.created,
        "creator_user_name": c.creator,
        "autotermination_minutes": 0 if c.source == "JOB" else 60,
        "spark_context_id": int(_sid(c.cluster_id, "ctx", length=15), 16),
    }
    if c.created is None:
        first, last = c.sessions[0], c.sessions[-1]
        out.update(
            state="TERMINATED",
            start_time=first.start,
            terminated_time=last.end,
            last_restarted_time=last.start,
            termination_reason={
                "code": "JOB_FINISHED" if c.source == "JOB" else "INACTIVITY",
                "type": "SUCCESS",
                "parameters": {},
            },
        )
    if c.source == "JOB":
        job_id, run_id = c.name.split("-")[1], c.name.split("-")[3]
        out["default_tags"].update({"JobId": job_id, "RunName": f"run-{run_id}"})
    return out


AVAILABILITY_ON_DEMAND = {cloud: kinds[0] for cloud, kinds in AVAILABILITY.items()}


def instance_pool_payload(world: World, pool_id: str) -> dict:
    """instance-pools/get: the pool's node type, its minimum of idle instances (kept warm, paid as VMs with
    no DBUs) and its custom tags."""
    p = world.pools[pool_id]
    attrs = {"availability": AVAILABILITY_ON_DEMAND[world.config.cloud]}
    return {
        "instance_pool_id": p.pool_id,
        "instance_pool_name": p.name,
        "node_type_id": p.node_type,
        "min_idle_instances": p.min_idle,
        "idle_instance_autotermination_minutes": 0,
        "custom_tags": dict(sorted(p.custom_tags.items())),
        "state": "ACTIVE",
        ("azure_attributes" if world.config.cloud == "AZURE" else "aws_attributes"): attrs,
        "stats": {"used_count": 0, "idle_count": p.min_idle, "pending_used_count": 0, "pending_idle_count": 0},
    }


def instance_pools_list(world: World) -> list[dict]:
    """instance-pools/list as of the window's end: every pool, in id order, once the workspace exists
    (``ANCHOR``; a window that ends before it lists none, as its bill has no pool charges)."""
    if world.config.start + dt.timedelta(days=world.config.days) <= ANCHOR:
        return []
    return [instance_pool_payload(world, pool_id) for pool_id in sorted(world.pools)]


def cluster_events(world: World, cluster_id: str) -> list[dict]:
    """All events of a cluster, oldest first."""
    return [e for s in world.clusters[cluster_id].sessions for e in s.events]


def job_payload(world: World, job: Job) -> dict:
    """jobs/get → Job with settings.tags (run objects carry no tags)."""
    new_cluster = None
    if job.mode != "shared":
        probe = Cluster(
            cluster_id="0000",
            name="",
            source="JOB",
            custom_tags=job.tags,
            creator=job.creator,
            **_spec_args(job.cluster_spec),
        )
        new_cluster = cluster_spec_payload(probe, world.config.cloud)
    tasks = []
    for k, key in enumerate(job.tasks):
        task: dict = {
            "task_key": key,
            "notebook_task": {"notebook_path": f"/Repos/{job.name}/{key}", "source": "WORKSPACE"},
        }
        if k:
            task["depends_on"] = [{"task_key": job.tasks[k - 1]}]
        if job.mode == "shared" or (job.mode == "mixed" and k % 2 == 1):
            task["existing_cluster_id"] = job.shared_cluster_id
        else:
            task["job_cluster_key"] = "main"
        tasks.append(task)
    settings: dict = {
        "name": job.name,
        "tags": dict(sorted(job.tags.items())),
        "tasks": tasks,
        "max_concurrent_runs": 3,
        "format": "MULTI_TASK",
    }
    if new_cluster is not None:
        settings["job_clusters"] = [{"job_cluster_key": "main", "new_cluster": new_cluster}]
    return {"job_id": job.job_id, "creator_user_name": job.creator, "created_time": job.created, "settings": settings}


def _spec_args(spec: dict) -> dict:
    return {
        "node_type": spec["node_type"],
        "driver_node_type": spec["driver_node_type"],
        "photon": spec["photon"],
        "single_node": spec["single_node"],
        "num_workers": spec["num_workers"],
        "autoscale": spec["autoscale"],
        "availability": spec["availability"],
        "first_on_demand": spec["first_on_demand"],
        "pool_id": spec["pool_id"],
    }


def run_payload(world: World, run: JobRun) -> dict:
    """A Jobs API run object as runs/list?expand_tasks=true returns it (multitask shape)."""
    job = world.jobs[run.job_id]
    result = (
        "SUCCESS"
        if all(any(t.result == "SUCCESS" and t.task_key == key for t in run.tasks) for key in job.tasks)
        else "FAILED"
    )
    host = f"https://adb-{world.config.workspace_id}.7.azuredatabricks.net"
    tasks = []
    for t in sorted(run.tasks, key=lambda t: (t.start, t.task_run_id)):
        task: dict = {
            "task_key": t.task_key,
            "run_id": t.task_run_id,
            "attempt_number": t.attempt,
            "cluster_instance": {
                "cluster_id": t.cluster_id,
                "spark_context_id": str(int(_sid(t.cluster_id, "ctx", length=15), 16)),
            },
            "notebook_task": {"notebook_path": f"/Repos/{job.name}/{t.task_key}", "source": "WORKSPACE"},
            "start_time": t.start,
            "end_time": t.end,
            "setup_duration": 0,
            "execution_duration": t.end - t.start,
            "cleanup_duration": 0,
            "state": _state(t.result),
            "status": _status(t.result),
            "run_page_url": f"{host}/?o={world.config.workspace_id}#job/{job.job_id}/run/{t.task_run_id}",
        }
        if t.depends_on:
            task["depends_on"] = [{"task_key": d} for d in t.depends_on]
        if t.job_cluster_key:
            task["job_cluster_key"] = t.job_cluster_key
        else:
            task["existing_cluster_id"] = t.cluster_id
        tasks.append(task)
    out: dict = {
        "job_id": run.job_id,
        "run_id": run.run_id,
        "number_in_job": run.run_id,
        "original_attempt_run_id": run.run_id,
        "creator_user_name": job.creator,
        "run_name": job.name,
        "run_page_url": f"{host}/?o={world.config.workspace_id}#job/{job.job_id}/run/{run.run_id}",
        "run_type": "JOB_RUN",
        "trigger": run.trigger,
        "attempt_number": 0,
        "start_time": run.start,
        "end_time": run.end,
        "setup_duration": 0,
        "execution_duration": 0,
        "cleanup_duration": 0,
        "run_duration": run.end - run.start,
        "queue_duration": 0,
        "state": _state(result),
        "status": _status(result),
        "tasks": tasks,
        "format": "MULTI_TASK",
    }
    if run.job_clusters:
        jp = job_payload(world, job)["settings"].get("job_clusters", [])
        out["job_clusters"] = jp
    if run.repairs:
        out["repair_history"] = [
            {"type": "ORIGINAL", "id": run.run_id, "start_time": run.start, "end_time": run.repairs[0][1]}
        ] + [{"type": "REPAIR", "id": rid, "start_time": a, "end_time": b} for rid, a, b in run.repairs]
    return out


def list_node_types(sheet: PriceSheet, cloud: str) -> dict:
    """clusters/list-node-types: sizes only (the real API has no DBU rate and no price)."""
    frame = sheet.instance_types_frame().filter(cloud=cloud.upper()).unique("node_type_id", keep="last")
    return {
        "node_types": [
            {
                "node_type_id": r["node_type_id"],
                "memory_mb": int(r["memory_gb"] * 1024),
                "num_cores": r["vcpus"],
                "description": r["node_type_id"],
                "instance_type_id": r["node_type_id"],
                "category": "General Purpose",
                "is_deprecated": False,
                "photon_worker_capable": True,
                "photon_driver_capable": True,
                "num_gpus": 0,
            }
            for r in frame.sort("node_type_id").iter_rows(named=True)
        ]
    }


# --- the bill -------------------------------------------------------------------------------------------


def _cluster_context(world: World) -> dict[str, dict]:
    """Per cluster: the job/run it belongs to (job clusters only), tags and owner for billing rows."""
    out: dict[str, dict] = {}
    for run in world.runs:
        for cid in {t.cluster_id for t in run.tasks}:
            c = world.clusters[cid]
            if c.source == "JOB":
                out[cid] = {
                    "job_id": str(run.job_id),
                    "job_run_id": str(run.run_id),
                    "run_as": world.jobs[run.job_id].creator,
                }
    return out


@lru_cache(maxsize=4)
def _every_record(config: WorldConfig) -> tuple[dict, ...]:
    return bill(world_for(config), load_price_sheet())


def billing_usage_rows(config: WorldConfig, as_of: dt.date | None = None) -> tuple[dict, ...]:
    """The bill of the world generated from ``config`` as it stands on ``as_of`` (default: today, UTC):
    a record shows once its ingestion_date is on or before that date, so corrections appear days after
    the ORIGINAL records, as the clock moves on."""
    today = (as_of or dt.datetime.now(dt.UTC).date()).isoformat()
    return tuple(r for r in _every_record(config) if r["ingestion_date"] <= today)


def bill(world: World, sheet: PriceSheet) -> tuple[dict, ...]:
    """Every ``system.billing.usage`` record the world's usage will ever get, whatever the date (SQL-API
    value types: strings), with corrections for some hours; ``billing_usage_rows`` applies the clock.

    ORIGINAL records are ingested the day after the usage. A corrected hour has an ORIGINAL that was wrong
    by 5–20 %, then, 3–5 days after the usage, a RETRACTION that negates it and a RESTATEMENT with the
    true quantity. Serving endpoints bill DBUs per hour by tokens. Which hours are corrected, and how,
    depends only on the hour's key, never on the other hours of the world.
    """
    config = world.config
    ctx = _cluster_context(world)
    rows: list[dict] = []
    hours = truth.cluster_hours(world, sheet).filter(pl.col("dbus") > 0)
    for r in hours.iter_rows(named=True):
        c = world.clusters[r["cluster_id"]]
        start = to_ms(r["hour_start"])
        meta = {
            "cluster_id": c.cluster_id,
            "node_type": c.node_type,
            "instance_pool_id": c.pool_id,
            "job_id": None,
            "job_run_id": None,
            "warehouse_id": None,
            "endpoint_name": None,
        }
        meta.update({k: v for k, v in ctx.get(c.cluster_id, {}).items() if k != "run_as"})
        base = {
            "account_id": config.account_id,
            "workspace_id": config.workspace_id,
            "sku_name": r["sku_name"],
            "cloud": config.cloud,
            "usage_start_time": _ts(start),
            "usage_end_time": _ts(start + HOUR),
            "usage_date": _ts(start)[:10],
            "custom_tags": dict(sorted(c.custom_tags.items())),
            "usage_unit": "DBU",
            "usage_metadata": meta,
            "identity_metadata": {"run_as": ctx.get(c.cluster_id, {}).get("run_as"), "owned_by": None},
            "billing_origin_product": "JOBS" if c.source == "JOB" else "ALL_PURPOSE",
            "product_features": {
                "jobs_tier": "CLASSIC" if c.source == "JOB" else None,
                "is_serverless": False,
                "is_photon": c.photon,
            },
            "usage_type": "COMPUTE_TIME",
        }
        rows.extend(_with_corrections(config, base, r["dbus"], start, ("c", c.cluster_id, start)))
    rows.extend(_serving_rows(world))
    rows.sort(key=lambda x: (x["usage_start_time"], x["record_id"]))
    return tuple(rows)


def _draws(seed: int, key: tuple) -> list[float]:
    """Four uniform numbers in [0, 1) from the record's key alone (a hash, not a shared RNG stream)."""
    h = _sid(seed, "bill", *key, length=64)
    return [int(h[i : i + 16], 16) / 16**16 for i in range(0, 64, 16)]


def _with_corrections(config: WorldConfig, base: dict, quantity: float, start: int, key: tuple) -> list[dict]:
    day = start // DAY * DAY
    ingested = _ts(day + DAY)[:10]
    corrected, sign, size, lag = _draws(config.seed, key)
    if corrected >= config.correction_rate:
        return [
            {
                **base,
                "record_id": _uuid(config.seed, *key),
                "record_type": "ORIGINAL",
                "ingestion_date": ingested,
                "usage_quantity": _q(quantity),
            }
        ]
    wrong = quantity * (1 + (-1 if sign < 0.5 else 1) * (0.05 + 0.15 * size))
    later = _ts(day + (3 + int(lag * 3)) * DAY)[:10]
    return [
        {
            **base,
            "record_id": _uuid(config.seed, *key),
            "record_type": "ORIGINAL",
            "ingestion_date": ingested,
            "usage_quantity": _q(wrong),
        },
        {
            **base,
            "record_id": _uuid(config.seed, *key, "r"),
            "record_type": "RETRACTION",
            "ingestion_date": later,
            "usage_quantity": _q(-wrong),
        },
        {
            **base,
            "record_id": _uuid(config.seed, *key, "s"),
            "record_type": "RESTATEMENT",
            "ingestion_date": later,
            "usage_quantity": _q(quantity),
        },
    ]


def _serving_rows(world: World) -> list[dict]:
    """MODEL_SERVING usage: per endpoint-hour, DBUs proportional to the tokens served in it."""
    cfg = world.config
    tokens: dict[tuple[str, int], int] = {}
    for r in world.requests:
        key = (r["endpoint_name"], r["request_time"] // HOUR * HOUR)
        tokens[key] = tokens.get(key, 0) + r["input_token_count"] + r["output_token_count"]
    by_name = {e.name: e for e in world.endpoints}
    sku = f"{cfg.tier}_SERVERLESS_REAL_TIME_INFERENCE"
    rows = []
    for (name, start), n in sorted(tokens.items()):
        ep = by_name[name]
        base = {
            "account_id": cfg.account_id,
            "workspace_id": cfg.workspace_id,
            "sku_name": sku,
            "cloud": cfg.cloud,
            "usage_start_time": _ts(start),
            "usage_end_time": _ts(start + HOUR),
            "usage_date": _ts(start)[:10],
            "custom_tags": {},
            "usage_unit": "DBU",
            "usage_metadata": {
                "endpoint_name": ep.name,
                "endpoint_id": ep.endpoint_id,
                "cluster_id": None,
                "job_id": None,
                "job_run_id": None,
                "warehouse_id": None,
                "node_type": None,
                "instance_pool_id": None,
            },
            "identity_metadata": {"run_as": None, "owned_by": None},
            "billing_origin_product": "MODEL_SERVING",
            "product_features": {"is_serverless": True, "is_photon": False, "serving_type": "MODEL"},
            "usage_type": "TOKEN",
        }
        rows.extend(_with_corrections(cfg, base, n / 1e6 * ep.dbu_per_million_tokens, start, ("e", name, start)))
    return rows


def _q(x: float) -> str:
    return f"{x:.18f}"


def _uuid(*parts: object) -> str:
    h = _sid(*parts, length=32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def net_cluster_hours(config: WorldConfig, as_of: dt.date | None = None) -> dict[tuple[str, str, str], float]:
    """(resource id, usage_start_time, sku) → net billed quantity over the record types visible on ``as_of``
    (default: today, UTC)."""
    out: dict[tuple[str, str, str], float] = {}
    for r in billing_usage_rows(config, as_of):
        m = r["usage_metadata"]
        key = (m["cluster_id"] or m["endpoint_name"], r["usage_start_time"], r["sku_name"])
        out[key] = out.get(key, 0.0) + float(r["usage_quantity"])
    return out


def legacy_csv(config: WorldConfig, start: dt.date, end: dt.date, as_of: dt.date | None = None) -> str:
    """The legacy billable-usage CSV (12 columns, end-of-hour timestamps, JSON-in-CSV tags) for
    usage dates in [start, end], as downloaded on ``as_of`` (default: today, UTC). Cluster usage only;
    quantities net of the corrections ingested by then."""
    world = world_for(config)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LEGACY_CSV_COLUMNS)
    machine = {
        (r["cluster_id"], _ts(to_ms(r["hour_start"])), r["sku_name"]): r["machine_hours"]
        for r in truth.cluster_hours(world, load_price_sheet()).iter_rows(named=True)
    }
    for (rid, hour, sku), qty in sorted(net_cluster_hours(config, as_of).items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if rid not in world.clusters or not (start.isoformat() <= hour[:10] <= end.isoformat()):
            continue
        c = world.clusters[rid]
        start_ms = to_ms(naive_utc(hour))
        end_of_hour = _ts(start_ms + HOUR - 1)
        default = {"Vendor": "Databricks", "Creator": c.creator, "ClusterName": c.name, "ClusterId": c.cluster_id}
        w.writerow(
            [
                config.workspace_id,
                end_of_hour,
                c.cluster_id,
                c.name,
                c.node_type,
                "4711471147114711",
                json.dumps(dict(sorted(c.custom_tags.items())), separators=(",", ":")),
                sku,
                f"{qty:.6f}",
                f"{machine.get((rid, _ts(start_ms), sku), 0.0):.6f}",
                "",
                json.dumps({**default, **dict(sorted(c.custom_tags.items()))}, separators=(",", ":")),
            ]
        )
    return buf.getvalue()


def list_prices_rows(sheet: PriceSheet, config: WorldConfig) -> list[dict]:
    """``system.billing.list_prices`` rows from the price sheet (list prices, no discounts)."""
    frame = sheet.dbu_prices_frame().filter(cloud=config.cloud).sort(["sku_name", "price_start_time"])
    return [
        {
            "account_id": config.account_id,
            "sku_name": r["sku_name"],
            "cloud": r["cloud"],
            "currency_code": r["currency_code"],
            "usage_unit": r["usage_unit"],
            "price_start_time": r["price_start_time"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "price_end_time": r["price_end_time"].strftime("%Y-%m-%dT%H:%M:%S.000Z") if r["price_end_time"] else None,
            "pricing": {"default": _q(r["list_price"]), "effective_list": {"default": _q(r["list_price"])}},
        }
        for r in frame.iter_rows(named=True)
    ]


def serving_rows(world: World, start_ms: int = 0, end_ms: int = 2**62) -> list[dict]:
    """``system.serving.endpoint_usage`` rows in [start, end), joined to served_entities (endpoint and
    model names), with SQL-API value types."""
    return [serving_row(r) for r in world.requests if start_ms <= r["request_time"] < end_ms]


def serving_row(request: dict) -> dict:
    """One simulated request as a ``system.serving.endpoint_usage`` row (SQL-API value types)."""
    return {**request, "request_time": _ts(request["request_time"])}


# Endpoints that serve an external model (system.serving.served_entities ``EXTERNAL_MODEL``) and its
# provider; every other simulated endpoint serves a Databricks-hosted foundation model.
EXTERNAL_PROVIDERS = {"support-bot": "anthropic"}


def served_entity_rows(world: World) -> list[dict]:
    """``system.serving.served_entities`` rows, one version per endpoint, created with the workspace at
    ``ANCHOR`` (so every window of the world shows the same rows), with SQL-API value types."""
    rows = []
    for e in world.endpoints:
        provider = EXTERNAL_PROVIDERS.get(e.name)
        rows.append(
            {
                "served_entity_id": e.served_entity_id,
                "account_id": world.config.account_id,
                "workspace_id": world.config.workspace_id,
                "created_by": "owner@example.com",
                "endpoint_name": e.name,
                "endpoint_id": e.endpoint_id,
                "served_entity_name": e.entity_name,
                "entity_type": "EXTERNAL_MODEL" if provider else "FOUNDATION_MODEL",
                "entity_name": e.entity_name,
                "entity_version": "1",
                "task": "llm/v1/chat",
                "external_model_config": {"provider": provider, "name": e.entity_name, "task": "llm/v1/chat"}
                if provider
                else None,
                "change_time": _ts(day_start_ms(ANCHOR)),
                "endpoint_delete_time": None,
            }
        )
    return rows
