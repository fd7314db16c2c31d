"""Parsers: Databricks wire payloads → the raw tables' frames (cost_assets.schemas).

One parser per source, used by the live HTTP client and the simulated workspace alike.
They read only the fields they need and ignore unknown ones (the APIs add fields all the time), accept
absent optional keys (the APIs omit empty values), and convert epoch milliseconds to naive UTC datetimes.
"""

import csv
import datetime as dt
import hashlib
import io
import json
import math
from collections.abc import Iterable, Mapping

import polars as pl

from cost_assets import schemas

# to_ms stays importable from here: resources/databricks.py and tests call parse.to_ms / parse.day_bounds.
from cost_assets.timeutil import day_bounds, ms_to_dt, naive_utc, to_ms  # noqa: F401
from cost_assets.vocabulary import CLUSTER_NOT_FOUND, IDENTITY_FIELDS, TAG_DIMENSIONS

LIFECYCLE_EVENTS = ("CREATING", "STARTING", "RESTARTING", "TERMINATING")
# The documented column order of the legacy billable-usage CSV.
LEGACY_CSV_COLUMNS = [
    "workspaceId",
    "timestamp",
    "clusterId",
    "clusterName",
    "clusterNodeType",
    "clusterOwnerUserId",
    "clusterCustomTags",
    "sku",
    "dbus",
    "machineHours",
    "clusterOwnerUserName",
    "tags",
]


class InputError(ValueError):
    """Bad input from a source, with where it came from (file, line, column) in the message."""


def canonical_json(value: Mapping | None) -> str:
    """Tag maps as stable JSON text (sorted keys), the form every table stores them in."""
    return json.dumps(dict(value or {}), sort_keys=True, separators=(",", ":"))


def _frame(rows: list[dict], model: type) -> pl.DataFrame:
    """Rows → frame with exactly the model's columns and dtypes (also for zero rows)."""
    schema = {name: col.dtype.type for name, col in model.to_schema().columns.items()}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


# --- Jobs API ------------------------------------------------------------------------------------------


def _compute_type(task: Mapping) -> str:
    if task.get("job_cluster_key"):
        return "job_cluster"
    if task.get("existing_cluster_id"):
        return "all_purpose"
    if task.get("new_cluster"):
        return "new_cluster"
    if (task.get("cluster_instance") or {}).get("cluster_id"):
        return "new_cluster"
    return "serverless"


def tasks_of(run: Mapping) -> list[Mapping]:
    """A run's task runs; a legacy single-task run (no ``tasks``) is its own only task."""
    if run.get("tasks"):
        return run["tasks"]
    spec = run.get("cluster_spec") or {}
    return [
        {
            "task_key": run.get("run_name") or "main",
            "run_id": run["run_id"],
            "attempt_number": run.get("attempt_number", 0),
            "start_time": run.get("start_time"),
            "end_time": run.get("end_time"),
            "state": run.get("state"),
            "cluster_instance": run.get("cluster_instance"),
            **{k: v for k, v in spec.items() if k != "libraries"},
        }
    ]


def job_runs_frame(runs: Iterable[Mapping], day: dt.date, workspace_id: str) -> pl.DataFrame:
    """Flatten runs to task runs and keep those overlapping ``day`` (a run may have started earlier)."""
    lo, hi = day_bounds(day)
    rows = []
    for run in runs:
        for task in tasks_of(run):
            start = ms_to_dt(task.get("start_time"))
            end = ms_to_dt(task.get("end_time"))
            if start is None or start >= hi or (end is not None and end <= lo):
                continue
            state = task.get("state") or {}
            cluster_id = (task.get("cluster_instance") or {}).get("cluster_id") or task.get("existing_cluster_id")
            rows.append(
                {
                    "usage_date": day,
                    "workspace_id": workspace_id,
                    "job_id": run.get("job_id", 0),
                    "run_id": run["run_id"],
                    "task_run_id": task["run_id"],
                    "task_key": task["task_key"],
                    "attempt_number": task.get("attempt_number", 0),
                    "run_name": run.get("run_name"),
                    "run_type": run.get("run_type", "JOB_RUN"),
                    "trigger": run.get("trigger"),
                    "creator_user_name": run.get("creator_user_name"),
                    "compute_type": _compute_type(task),
                    "job_cluster_key": task.get("job_cluster_key"),
                    "cluster_id": cluster_id,
                    "run_start_time": ms_to_dt(run.get("start_time")),
                    "run_end_time": ms_to_dt(run.get("end_time")),
                    "start_time": start,
                    "end_time": end,
                    "life_cycle_state": state.get("life_cycle_state")
                    or ("TERMINATED" if end is not None else "RUNNING"),
                    "result_state": state.get("result_state"),
                }
            )
    return _frame(rows, schemas.JobRuns).sort(["start_time", "task_run_id"])


def jobs_frame(jobs: Iterable[Mapping], day: dt.date, workspace_id: str) -> pl.DataFrame:
    """jobs/get payloads → one row per job with its tags and the four standard tag columns."""
    rows = []
    for job in jobs:
        settings = job.get("settings") or {}
        tags = settings.get("tags") or {}
        rows.append(
            {
                "usage_date": day,
                "workspace_id": workspace_id,
                "job_id": job["job_id"],
                "job_name": settings.get("name"),
                "creator_user_name": job.get("creator_user_name"),
                "created_time": ms_to_dt(job.get("created_time")),
                "tags": canonical_json(tags),
                **{k: tags.get(k) for k in TAG_DIMENSIONS},
            }
        )
    return _frame(rows, schemas.Jobs).sort("job_id")


# --- Clusters API --------------------------------------------------------------------------------------


def _cloud_and_attrs(details: Mapping, default_cloud: str) -> tuple[str, Mapping]:
    for key, cloud in (("azure_attributes", "AZURE"), ("aws_attributes", "AWS"), ("gcp_attributes", "GCP")):
        if details.get(key):
            return cloud, details[key]
    return default_cloud.upper(), {}


def is_photon(details: Mapping) -> bool:
    """Photon from ``runtime_engine`` or, for legacy images, ``-photon-`` in ``spark_version``."""
    return details.get("runtime_engine") == "PHOTON" or "-photon-" in (details.get("spark_version") or "")


def clusters_frame(
    clusters: Iterable[Mapping],
    day: dt.date,
    workspace_id: str,
    default_cloud: str,
    pools: Mapping[str, Mapping] | None = None,
    not_found: Iterable[str] = (),
) -> pl.DataFrame:
    """clusters/get ClusterDetails → one row per cluster and day; ``pools`` (instance-pools/get by id) adds
    the worker pool's node type, minimum idle instances and custom tags. The ``not_found`` clusters were
    rebuilt from their runs' specs (clusters/get no longer knows them): ``reason = 'cluster_not_found'``."""
    not_found = frozenset(not_found)
    rows = []
    for c in clusters:
        pool = (pools or {}).get(c.get("instance_pool_id") or "")
        cloud, attrs = _cloud_and_attrs(c, default_cloud)
        tags = c.get("custom_tags") or {}
        autoscale = c.get("autoscale") or {}
        rows.append(
            {
                "usage_date": day,
                "workspace_id": workspace_id,
                "cloud": cloud,
                "cluster_id": c["cluster_id"],
                "cluster_name": c.get("cluster_name"),
                "cluster_source": c.get("cluster_source"),
                "node_type_id": c.get("node_type_id") or "",
                "driver_node_type_id": c.get("driver_node_type_id") or c.get("node_type_id") or "",
                "num_workers": None if autoscale else c.get("num_workers", 0),
                "autoscale_min_workers": autoscale.get("min_workers"),
                "autoscale_max_workers": autoscale.get("max_workers"),
                "is_single_node": bool(c.get("is_single_node"))
                or (not autoscale and not c.get("num_workers") and tags.get("ResourceClass") == "SingleNode"),
                "availability": attrs.get("availability"),
                "first_on_demand": attrs.get("first_on_demand"),
                "spark_version": c.get("spark_version"),
                "runtime_engine": c.get("runtime_engine"),
                "is_photon": is_photon(c),
                "instance_pool_id": c.get("instance_pool_id"),
                "driver_instance_pool_id": c.get("driver_instance_pool_id") or c.get("instance_pool_id"),
                "custom_tags": canonical_json(tags),
                "state": c.get("state"),
                "start_time": ms_to_dt(c.get("start_time")),
                "terminated_time": ms_to_dt(c.get("terminated_time")),
                "creator_user_name": c.get("creator_user_name"),
                "pool_node_type_id": pool.get("node_type_id") if pool else None,
                "pool_min_idle_instances": pool.get("min_idle_instances", 0) if pool else None,
                "pool_custom_tags": canonical_json(pool.get("custom_tags")) if pool else None,
                "reason": CLUSTER_NOT_FOUND if c["cluster_id"] in not_found else None,
            }
        )
    return _frame(rows, schemas.Clusters).sort("cluster_id")


def instance_pools_frame(pools: Iterable[Mapping], day: dt.date, workspace_id: str, cloud: str) -> pl.DataFrame:
    """instance-pools/list InstancePoolAndStats → one row per pool and day (what prices its idle VMs: node
    type and the minimum of idle instances kept warm)."""
    rows = [
        {
            "usage_date": day,
            "workspace_id": workspace_id,
            "cloud": cloud,
            "instance_pool_id": p["instance_pool_id"],
            "instance_pool_name": p.get("instance_pool_name"),
            "node_type_id": p.get("node_type_id"),
            "min_idle_instances": p.get("min_idle_instances") or 0,
            "max_capacity": p.get("max_capacity"),
            "idle_instance_autotermination_minutes": p.get("idle_instance_autotermination_minutes"),
            "state": p.get("state"),
            "custom_tags": canonical_json(p.get("custom_tags")),
        }
        for p in pools
    ]
    return _frame(rows, schemas.InstancePools).sort("instance_pool_id")


def trim_lookback(events: list[Mapping], day_start_ms: int) -> list[Mapping]:
    """Keep the day's events plus the look-back from the last lifecycle event before 00:00.

    If that event is TERMINATING the cluster was down at 00:00 and no look-back is needed. If the
    look-back window holds no lifecycle event the cluster ran through it: keep it all (best effort).
    """
    before = [e for e in events if e["timestamp"] < day_start_ms]
    after = [e for e in events if e["timestamp"] >= day_start_ms]
    marks = [i for i, e in enumerate(before) if e.get("type") in LIFECYCLE_EVENTS]
    if marks:
        last = marks[-1]
        before = [] if before[last]["type"] == "TERMINATING" else before[last:]
    return before + after


def cluster_events_frame(events: Iterable[Mapping], day: dt.date, workspace_id: str) -> pl.DataFrame:
    """ClusterEvent payloads → rows; events before 00:00 are flagged ``is_lookback``."""
    lo, _ = day_bounds(day)
    rows = []
    for e in events:
        d = e.get("details") or {}
        size = d.get("cluster_size") or {}
        ts = ms_to_dt(e["timestamp"])
        rows.append(
            {
                "usage_date": day,
                "workspace_id": workspace_id,
                "cluster_id": e["cluster_id"],
                "timestamp": ts,
                "event_type": e["type"],
                "current_num_workers": d.get("current_num_workers"),
                "target_num_workers": d.get("target_num_workers"),
                "cluster_size_num_workers": size.get("num_workers"),
                "cluster_size_min_workers": (size.get("autoscale") or {}).get("min_workers"),
                "cluster_size_max_workers": (size.get("autoscale") or {}).get("max_workers"),
                "cause": d.get("cause"),
                "reason_code": (d.get("reason") or {}).get("code"),
                "is_lookback": ts < lo,
            }
        )
    return _frame(rows, schemas.ClusterEvents).sort(["cluster_id", "timestamp", "event_type"])


# --- billing -------------------------------------------------------------------------------------------


def _tags(value: str | Mapping | None) -> Mapping:
    if value is None or value == "":
        return {}
    return json.loads(value) if isinstance(value, str) else value


def _int_or_none(value: object) -> int | None:
    return None if value in (None, "") else int(value)


def _usage_row(r: Mapping, source: str) -> dict:
    """One ``system.billing.usage`` row → a ``raw.billing_usage`` row (raises on a bad field)."""
    meta = _tags(r.get("usage_metadata"))
    features = _tags(r.get("product_features"))
    identity = _tags(r.get("identity_metadata"))
    start = naive_utc(r["usage_start_time"])
    ingestion = r.get("ingestion_date")
    return {
        "usage_date": start.date(),
        "account_id": r.get("account_id"),
        "workspace_id": r.get("workspace_id"),
        "record_id": r["record_id"],
        "record_type": r.get("record_type") or "ORIGINAL",
        "ingestion_date": dt.date.fromisoformat(str(ingestion)[:10]) if ingestion else None,
        "cloud": (r.get("cloud") or "").upper() or None,
        "sku_name": r["sku_name"],
        "usage_start_time": start,
        "usage_end_time": naive_utc(r["usage_end_time"]),
        "usage_unit": r.get("usage_unit") or "DBU",
        "usage_quantity": float(r["usage_quantity"]),
        "billing_origin_product": r.get("billing_origin_product"),
        "cluster_id": meta.get("cluster_id"),
        "warehouse_id": meta.get("warehouse_id"),
        "endpoint_name": meta.get("endpoint_name"),
        "instance_pool_id": meta.get("instance_pool_id"),
        "node_type": meta.get("node_type"),
        "job_id": _int_or_none(meta.get("job_id")),
        "job_run_id": _int_or_none(meta.get("job_run_id")),
        "is_photon": _bool_or_none(features.get("is_photon")),
        "is_serverless": _bool_or_none(features.get("is_serverless")),
        "custom_tags": canonical_json(_tags(r.get("custom_tags"))),
        **{field: identity.get(field) for field in IDENTITY_FIELDS},
        "machine_hours": None,
        "billing_source": source,
    }


def system_usage_frame(rows: Iterable[Mapping], source: str) -> pl.DataFrame:
    """``system.billing.usage`` rows (structs as dicts or JSON text, values possibly strings).

    A bad row fails the whole batch with its position, record id and field, so nothing half-read is stored.
    """
    out = []
    for i, r in enumerate(rows):
        try:
            out.append(_usage_row(r, source))
        except KeyError as e:
            raise InputError(f"{source} usage: row {i} (record {r.get('record_id')!r}): missing field {e}") from None
        except (ValueError, TypeError, json.JSONDecodeError) as e:
            raise InputError(f"{source} usage: row {i} (record {r.get('record_id')!r}): {e}") from None
        if not math.isfinite(out[-1]["usage_quantity"]):
            raise InputError(
                f"{source} usage: row {i} (record {r.get('record_id')!r}): usage_quantity "
                f"{r['usage_quantity']!r} is not a finite number"
            )
    return _frame(out, schemas.BillingUsage).sort(["usage_start_time", "record_id"])


def _bool_or_none(value: object) -> bool | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, bool) else str(value).lower() == "true"


def legacy_csv_frame(text: str, file_name: str, source: str = "csv") -> pl.DataFrame:
    """The legacy billable-usage CSV (12 columns, RFC 4180, JSON-in-CSV tags) → raw.billing_usage rows.

    The ``timestamp`` is the *end* of the hour it covers (``…T09:59:59.999Z`` is 09:00–10:00), so the
    row's hour starts at the timestamp floored to the hour. Errors name the file, line and column.

    A leading UTF-8 byte order mark (Excel's "CSV UTF-8" writes one; decoded as ``utf-8`` it stays as
    U+FEFF) is dropped, or it would glue itself to the first column name and ``workspaceId`` would be
    reported missing.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise InputError(f"{file_name}: line 1: empty file, expected the header {','.join(LEGACY_CSV_COLUMNS)}")
    missing = [c for c in LEGACY_CSV_COLUMNS if c not in header]
    if missing:
        raise InputError(
            f"{file_name}: line 1: header lacks column(s) {', '.join(missing)}; expected {','.join(LEGACY_CSV_COLUMNS)}"
        )
    index = {name: header.index(name) for name in LEGACY_CSV_COLUMNS}
    rows = []
    for cells in reader:
        line_no = reader.line_num  # the physical line the record ends on (quoted cells may hold newlines)
        if not cells:
            continue
        if len(cells) != len(header):
            raise InputError(f"{file_name}: line {line_no}: expected {len(header)} fields, found {len(cells)}")

        def cell(name: str, cells=cells) -> str:
            return cells[index[name]]

        def fail(name: str, problem: str, line_no=line_no) -> InputError:
            return InputError(f"{file_name}: line {line_no}: column {name}: {problem}")

        try:
            end = naive_utc(cell("timestamp"))
        except ValueError:
            raise fail("timestamp", f"not an ISO-8601 timestamp: {cell('timestamp')!r}") from None
        start = end.replace(minute=0, second=0, microsecond=0)
        if end == start:  # a stamp exactly on the hour closes the previous hour
            start -= dt.timedelta(hours=1)
        dbus = _finite(cell("dbus"), lambda problem: fail("dbus", problem))
        machine = (
            _finite(cell("machineHours"), lambda problem: fail("machineHours", problem))
            if cell("machineHours")
            else None
        )
        for name in ("clusterCustomTags", "tags"):
            try:
                if not isinstance(_tags(cell(name)), dict):
                    raise fail(name, f"not a JSON object: {cell(name)[:40]!r}")
            except json.JSONDecodeError as e:
                raise fail(name, f"not a JSON object: {e.msg}") from None
        if dbus < 0:
            raise fail("dbus", f"negative quantity {dbus} (the legacy CSV has no retractions)")
        cluster_id, sku = cell("clusterId"), cell("sku")
        # The legacy CSV has no record id: derive one from the whole row, so only an identical row (the
        # same hour downloaded twice in overlapping files) collapses; two rows of one cluster-hour-SKU that
        # differ (e.g. tags changed within the hour) both count.
        record_id = hashlib.sha256("\x1f".join(cells).encode()).hexdigest()[:32]
        rows.append(
            {
                "usage_date": start.date(),
                "account_id": None,
                "workspace_id": cell("workspaceId"),
                "record_id": record_id,
                "record_type": "ORIGINAL",
                "ingestion_date": None,
                "cloud": None,
                "sku_name": sku,
                "usage_start_time": start,
                "usage_end_time": start + dt.timedelta(hours=1),
                "usage_unit": "DBU",
                "usage_quantity": dbus,
                "billing_origin_product": _origin_from_sku(sku),
                # A SQL warehouse row carries the warehouse id in clusterId and its size in clusterNodeType.
                "cluster_id": None if "_SQL_" in sku else cluster_id,
                "warehouse_id": cluster_id if "_SQL_" in sku else None,
                "endpoint_name": None,
                "instance_pool_id": None,
                "node_type": cell("clusterNodeType") or None,
                "job_id": _job_id_from_name(cell("clusterName")),
                "job_run_id": _run_id_from_name(cell("clusterName")),
                "is_photon": "(PHOTON)" in sku,
                "is_serverless": "SERVERLESS" in sku,
                "custom_tags": canonical_json(_tags(cell("clusterCustomTags"))),
                **dict.fromkeys(IDENTITY_FIELDS),  # the legacy CSV names no identity
                "machine_hours": machine,
                "billing_source": source,
            }
        )
    return _frame(rows, schemas.BillingUsage).sort(["usage_start_time", "record_id"])


def _finite(text: str, fail) -> float:
    """A finite number, or the error ``fail(problem)`` builds (NaN and infinity are not quantities)."""
    try:
        value = float(text)
    except ValueError:
        raise fail(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise fail(f"not a finite number: {text!r}")
    return value


def _origin_from_sku(sku: str) -> str | None:
    for needle, origin in (
        ("ALL_PURPOSE", "ALL_PURPOSE"),
        ("JOBS", "JOBS"),
        ("DLT", "DLT"),
        ("SQL", "SQL"),
        ("INFERENCE", "MODEL_SERVING"),
    ):
        if needle in sku:
            return origin
    return None


def _job_id_from_name(name: str) -> int | None:
    """Job clusters are named ``job-<job_id>-run-<run_id>``."""
    parts = name.split("-")
    return int(parts[1]) if len(parts) == 4 and parts[0] == "job" and parts[1].isdigit() else None


def _run_id_from_name(name: str) -> int | None:
    parts = name.split("-")
    return int(parts[3]) if len(parts) == 4 and parts[2] == "run" and parts[3].isdigit() else None


# --- serving -------------------------------------------------------------------------------------------


def serving_usage_frame(rows: Iterable[Mapping], day: dt.date, workspace_id: str) -> pl.DataFrame:
    """``system.serving.endpoint_usage`` rows (joined to served_entities) for one day."""
    out = []
    for r in rows:
        t = naive_utc(r["request_time"]) if not isinstance(r["request_time"], int) else ms_to_dt(r["request_time"])
        if t.date() != day:
            continue
        context = _tags(r.get("usage_context"))
        out.append(
            {
                "usage_date": day,
                "workspace_id": r.get("workspace_id") or workspace_id,
                "databricks_request_id": r["databricks_request_id"],
                "client_request_id": r.get("client_request_id"),
                "endpoint_name": r["endpoint_name"],
                "served_entity_id": r["served_entity_id"],
                "entity_name": r.get("entity_name"),
                "requester": r.get("requester"),
                "status_code": int(r.get("status_code") or 0),
                "request_time": t,
                "input_token_count": int(r.get("input_token_count") or 0),
                "output_token_count": int(r.get("output_token_count") or 0),
                "usage_context": canonical_json(context),
                "tenant": context.get("tenant"),
                "agent": context.get("agent"),
                "user": context.get("user"),
            }
        )
    return _frame(out, schemas.ServingUsage).sort(["request_time", "databricks_request_id"])
