"""Raw layer: what the workspace and the bill say, one daily partition at a time (UTC).

Every asset validates its frame against its contract *before* writing: a broken contract fails the
check (ERROR, first failing rows in the metadata) and the step, so stored partitions stay as they were.

Nothing stored is lost to a source that forgets (``cost_assets/guard.py``): a day whose new answer is
empty or much smaller than what is stored keeps its stored rows. For the sources the estimate cannot do
without (runs, clusters and events, the bill) the run then fails naming the days kept, unless it carries
the ``cost_assets/accept_smaller_source`` tag. Optional sources (serving usage; pools and jobs the
principal may not read or list; served entities, AI Gateway usage) degrade to a WARN check and keep what is stored.
"""

import datetime as dt
from collections.abc import Callable

import dagster as dg
import pandera.polars as pa
import polars as pl

from cost_assets import guard, schemas, watermarks
from cost_assets.assets.guarded import (
    FINAL_ERRORS,
    Guarded,
    OptionalRead,
    contract_gate,
    days_present_check,
    final_errors,
    guard_retained,
    read_optional,
    sources_check,
    sources_spec,
    stored_rows,
    table_name,
)
from cost_assets.assets.policies import DAILY_ASSET, PARTITIONED, SOURCE_RETRY
from cost_assets.checks import add_daily_metadata, contract_result, contract_spec
from cost_assets.ingest import parse
from cost_assets.ingest.account import Answer, read_all
from cost_assets.ingest.serving_sources import (
    entities_by_day,
    gateway_by_day,
    gateway_usage_frame,
    served_entities_frame,
)
from cost_assets.partitions import window_days
from cost_assets.resources.billing import BillingSource
from cost_assets.resources.databricks import DatabricksWorkspace
from cost_assets.resources.warehouse import ADDED_COLUMNS, REPLACE_BY, Ledger

JOB_RUNS = dg.AssetKey(["raw", "job_runs"])
JOBS = dg.AssetKey(["raw", "jobs"])
CLUSTERS = dg.AssetKey(["raw", "clusters"])
CLUSTER_EVENTS = dg.AssetKey(["raw", "cluster_events"])
INSTANCE_POOLS = dg.AssetKey(["raw", "instance_pools"])
BILLING_USAGE = dg.AssetKey(["raw", "billing_usage"])
SERVING_USAGE = dg.AssetKey(["raw", "serving_usage"])
SERVING_ENTITIES = dg.AssetKey(["raw", "serving_entities"])
AI_GATEWAY_USAGE = dg.AssetKey(["raw", "ai_gateway_usage"])

# WARN check: the bill has nothing for a day (a source answered only in part: guarded.SOURCES).
BILL_PRESENT = "bill_present"
BILL_LAG = "bill lag is 12–48 h"

_WORKSPACE_TABLES = {
    JOB_RUNS: (
        schemas.JobRuns,
        "One row per task run overlapping the day (runs started earlier included): "
        "task key, cluster, compute type, start/end, states. From Jobs API runs/list with "
        "expand_tasks.",
    ),
    JOBS: (
        schemas.Jobs,
        "The jobs seen in the day's runs, with settings.tags and the team / tenant / "
        "project / cost_center tag columns. From jobs/get.",
    ),
    CLUSTERS: (
        schemas.Clusters,
        "clusters/get details of every cluster used or alive on the day: node "
        "types, autoscale, availability and first_on_demand, Photon, pools, custom tags. A cluster "
        "purged after its retention is rebuilt from its run's spec (reason cluster_not_found).",
    ),
    CLUSTER_EVENTS: (
        schemas.ClusterEvents,
        "Cluster events of the day plus the look-back that fixes each "
        "cluster's state at 00:00 (is_lookback): lifecycle, resizes, lost nodes.",
    ),
    INSTANCE_POOLS: (
        schemas.InstancePools,
        "Every instance pool of the workspace on the day (instance-pools/list): node type, min idle "
        "instances, max capacity, custom tags. A warm pool no cluster draws from is estimated from it "
        "(idle VM $ + disk $, no DBUs). Optional: not granted (403) or absent (404) warns and keeps the "
        "stored rows.",
    ),
}
# The workspace tables whose source forgets a past day (runs ~60 days, events ~30 days): guarded by count.
_RETAINED = (JOB_RUNS, CLUSTER_EVENTS)


# The per-workspace tables: a write replaces, in its days, only the workspaces its frame holds, so a workspace
# whose fetch failed keeps its stored rows (warehouse.REPLACE_BY).
BY_WORKSPACE = {**PARTITIONED, REPLACE_BY: ["workspace_id"]}


@dg.multi_asset(
    outs={
        key.path[-1]: dg.AssetOut(
            key=key, description=desc, group_name="raw", kinds={"databricks", "duckdb"}, metadata=BY_WORKSPACE
        )
        for key, (_, desc) in _WORKSPACE_TABLES.items()
    },
    check_specs=[contract_spec(key, model) for key, (model, _) in _WORKSPACE_TABLES.items()]
    + [
        sources_spec(JOBS, "a job (jobs/get: no permission)"),
        sources_spec(CLUSTERS, "a cluster (purged) or an instance pool (no permission)"),
        sources_spec(INSTANCE_POOLS, "instance-pools/list (no permission, or no such endpoint)"),
    ],
    pool="duckdb_writer",
    retry_policy=SOURCE_RETRY,
    **DAILY_ASSET,
)
def workspace_tables(context: dg.AssetExecutionContext, workspace: DatabricksWorkspace, ledger: Ledger):
    """Fetch the day's runs, jobs, clusters, events and instance pools in one pass (one runs/list sweep, one
    call per distinct job and cluster, one instance-pools/list) and write the five raw tables. A day for which
    runs or events come back fewer than stored (past the API's retention) keeps its stored rows in all five
    tables; a day whose pools could not be listed (optional) keeps its stored pools and warns.

    An account of several workspaces is fetched concurrently, each workspace with its own client and rate
    limit, and each judged by the guard against its own stored rows. A workspace that fails keeps its stored
    rows (the tables replace by workspace); the others' days are written, then the step fails naming it."""
    days = window_days(context.partition_time_window)
    members = workspace.members()
    context.log.info(
        f"fetching workspace data for {len(days)} day(s): {days[0]} .. {days[-1]}"
        + (f", {len(members)} workspaces, at most {workspace.max_concurrent} at once" if len(members) > 1 else "")
    )
    answers = read_all(members, lambda m: m.fetch(days), lambda m: m.name, workspace.max_concurrent, context.log.info)
    if len(members) == 1 and answers[0].error is not None:  # one workspace: its error is the step's, as ever
        with final_errors("workspace"):
            raise answers[0].error
    fetched = [a for a in answers if a.error is None]
    failed = [a for a in answers if a.error is not None]
    if not fetched:
        raise _workspaces_failure(failed, [])
    stored_all = {
        key: stored_rows(ledger, key, days, getattr(fetched[0].value, _FIELDS[key])) for key in _WORKSPACE_TABLES
    }
    parts: dict[dg.AssetKey, list[pl.DataFrame]] = {key: [] for key in _WORKSPACE_TABLES}
    verdicts: list[Guarded] = []
    for answer in fetched:
        got = answer.value
        frames = {key: getattr(got, _FIELDS[key]) for key in _WORKSPACE_TABLES}
        stored = {key: rows.filter(pl.col("workspace_id") == got.workspace_id) for key, rows in stored_all.items()}
        source = "the Jobs and Clusters APIs" + (f" of workspace {answer.name}" if len(members) > 1 else "")
        verdict = Guarded(
            context,
            source,
            days,
            [
                check
                for key in _RETAINED
                for check in guard.check_days(table_name(key), stored[key], frames[key], days, guard.RETAINED)
            ],
        )
        if len(members) == 1:
            verdict.fail_if_nothing_written()
        for key, frame in frames.items():
            kept_days = sorted(set(verdict.kept) | set(got.pools_unread)) if key == INSTANCE_POOLS else verdict.kept
            parts[key].append(guard.keep_stored(frame, stored[key], kept_days))
        verdicts.append(verdict)
    frames = {key: pl.concat(part, how="vertical_relaxed") for key, part in parts.items()}
    yield from contract_gate(context, [contract_result(_WORKSPACE_TABLES[k][0], f, k) for k, f in frames.items()])
    warnings = [(w if len(members) == 1 else f"workspace {a.name}: {w}") for a in fetched for w in a.value.warnings]
    jobs_warnings = [w for w in warnings if "jobs/get" in w]
    pools_warnings = [w for w in warnings if "instance-pools/list" in w]
    yield sources_check(JOBS, jobs_warnings)
    yield sources_check(INSTANCE_POOLS, pools_warnings)
    yield sources_check(CLUSTERS, [w for w in warnings if w not in jobs_warnings + pools_warnings])
    per_day = {
        JOB_RUNS: lambda f, _: {"runs": f["run_id"].n_unique()},
        JOBS: lambda f, _: {"untagged_jobs": f.filter(pl.col("tags") == "{}").height},
        CLUSTERS: lambda f, _: {
            "job_clusters": f.filter(cluster_source="JOB").height,
            "photon_clusters": int(f["is_photon"].sum()),
            "clusters_not_found": f.filter(reason="cluster_not_found").height,
        },
        CLUSTER_EVENTS: lambda f, _: {"lookback_events": int(f["is_lookback"].sum())},
        INSTANCE_POOLS: lambda f, _: {"pools": f.height, "min_idle_instances": int(f["min_idle_instances"].sum())},
    }
    stats: dict[str, float] = {}
    for answer in fetched:
        for k, v in answer.value.stats.items():
            stats[k] = stats.get(k, 0) + v
    # Run-wide facts (the same on every day's event): what was kept, and what the fetch cost in calls.
    kept = sorted({d for v in verdicts for d in v.kept})
    run_wide = {
        JOB_RUNS: {"api/" + k: v for k, v in stats.items()}
        | (_workspaces_metadata(answers) if len(members) > 1 else {}),
        JOBS: {"jobs_not_permitted": int(stats.get("jobs_not_permitted", 0))},
        CLUSTERS: {"pools_not_permitted": int(stats.get("pools_not_permitted", 0))},
    }
    for key, frame in frames.items():
        add_daily_metadata(context, frame, days, per_day[key], output_name=key.path[-1])
        yield dg.Output(
            frame,
            output_name=key.path[-1],
            metadata={**({"kept_stored_days": ", ".join(map(str, kept))} if kept else {}), **run_wide.get(key, {})},
        )
    refused = [v for v in verdicts if v.refused]
    if failed or len(refused) > 1:
        raise _workspaces_failure(failed, refused)
    for verdict in refused:
        verdict.fail_if_refused()


_FIELDS = {
    JOB_RUNS: "job_runs",
    JOBS: "jobs",
    CLUSTERS: "clusters",
    CLUSTER_EVENTS: "cluster_events",
    INSTANCE_POOLS: "instance_pools",
}


def _workspaces_failure(failed: list[Answer], refused: list[Guarded]) -> dg.Failure:
    """The step's failure when workspaces of an account failed (each named with its error) or the guard
    refused the answers of several: all in one message. Retried (the step's retry policy) unless a refusal
    is in it or every error is one a retry cannot fix; a retry fetches every workspace again and rewrites
    their days."""
    lines = [f"{len(failed)} workspace(s) could not be fetched; their stored rows were kept:"] if failed else []
    lines += [f"  workspace {a.name}: {type(a.error).__name__}: {a.error}" for a in failed]
    lines += [v.message for v in refused]
    return dg.Failure(
        description="\n".join(lines),
        metadata={"failed_workspaces": ", ".join(a.name for a in failed) or "none"},
        allow_retries=not refused and not all(isinstance(a.error, FINAL_ERRORS) for a in failed),
    )


def _workspaces_metadata(answers: list[Answer]) -> dict[str, object]:
    """Per workspace: rows, API calls, seconds, and the error of a failed one (a table, and a number each)."""
    out: dict[str, object] = {
        "workspaces": len(answers),
        "workspaces_failed": sum(a.error is not None for a in answers),
    }
    lines = ["| workspace | id | region | status | runs | API calls | seconds |", "|---|---|---|---|---:|---:|---:|"]
    for a in answers:
        got = a.value
        calls = got.stats.get("calls", 0) if got else 0  # the HTTP client's count (none in-process)
        runs = got.job_runs["run_id"].n_unique() if got else 0
        status = "ok" if got else f"failed: {type(a.error).__name__}"
        lines.append(
            f"| {a.name} | {got.workspace_id if got else ''} | {a.member.region or ''} | {status} | {runs} | "
            f"{calls:g} | {a.seconds:.1f} |"
        )
        out[f"workspace/{a.name}/runs"] = runs
        out[f"workspace/{a.name}/api_calls"] = float(calls)
        out[f"workspace/{a.name}/failed"] = int(got is None)
    out["workspace_status"] = dg.MetadataValue.md("\n".join(lines))
    return out


def _bill_present(days: list[dt.date], frame: pl.DataFrame, source: str) -> dg.AssetCheckResult:
    """WARN for each day without a single bill record: a $0 day is not a fact until the bill is in."""
    return days_present_check(
        BILL_PRESENT,
        BILLING_USAGE,
        days,
        frame,
        absent=lambda d: f"no bill for {d} from {source}",
        lag=BILL_LAG,
        complete=f"every day has bill records from {source}",
        metadata_key="days_without_bill",
    )


@dg.asset(
    key=BILLING_USAGE,
    group_name="raw",
    kinds={"databricks", "duckdb"},
    # A bill stored before these identity columns existed gains them on its next write (NULL on stored rows).
    metadata={**PARTITIONED, ADDED_COLUMNS: ["run_by", "created_by", "owned_by"]},
    check_specs=[
        contract_spec(BILLING_USAGE, schemas.BillingUsage),
        dg.AssetCheckSpec(
            BILL_PRESENT,
            asset=BILLING_USAGE,
            description=f"WARN for a day without any bill record from the source ({BILL_LAG}); never a silent $0",
        ),
    ],
    pool="duckdb_writer",
    retry_policy=SOURCE_RETRY,
    **DAILY_ASSET,
)
def billing_usage(context: dg.AssetExecutionContext, billing: BillingSource, ledger: Ledger):
    """Every billing record of the day (ORIGINAL, RETRACTION and RESTATEMENT, with ingestion_date), from
    the configured source (simulated, legacy CSV, Account API or system.billing.usage), in one schema.
    The true usage is the plain sum over record types. A stored day the source now answers with no rows,
    or with a much smaller net quantity that no RETRACTION explains, keeps its stored bill."""
    days = window_days(context.partition_time_window)
    stats: dict[str, float] = {}
    source = billing.describe()
    with final_errors(source):
        frame = billing.usage(days, stats=stats)
    stored = stored_rows(ledger, BILLING_USAGE, days, frame)
    verdict = Guarded(
        context,
        f"the bill ({source})",
        days,
        guard.check_days(table_name(BILLING_USAGE), stored, frame, days, guard.BILL, ledger.shrink_threshold),
    )
    verdict.fail_if_nothing_written()
    frame = guard.keep_stored(frame, stored, verdict.kept)
    yield from contract_gate(context, [contract_result(schemas.BillingUsage, frame, BILLING_USAGE)])
    yield _bill_present(days, frame, source)
    add_daily_metadata(
        context,
        frame,
        days,
        lambda f, day: {
            "billed_dbus": float(f["usage_quantity"].sum()),
            "correction_records": f.filter(pl.col("record_type") != "ORIGINAL").height,
            watermarks.METADATA_KEY: dg.MetadataValue.json(watermarks.bill_fingerprints(f, [day])),
        },
    )
    yield dg.Output(
        frame, metadata={"source": source, **verdict.metadata(), **{"api/" + k: v for k, v in stats.items()}}
    )
    verdict.fail_if_refused()


@dg.asset(
    key=SERVING_USAGE,
    group_name="raw",
    kinds={"databricks", "duckdb"},
    metadata=BY_WORKSPACE,
    check_specs=[
        contract_spec(SERVING_USAGE, schemas.ServingUsage),
        sources_spec(SERVING_USAGE, "system.serving (no SQL warehouse, schema not enabled, no grant)"),
    ],
    pool="duckdb_writer",
    retry_policy=SOURCE_RETRY,
    **DAILY_ASSET,
)
def serving_usage(context: dg.AssetExecutionContext, workspace: DatabricksWorkspace, ledger: Ledger):
    """Model-serving requests of the day with token counts and usage_context (tenant, agent, user).

    Optional: a workspace without the source (no SQL warehouse, no ``system.serving`` schema, no grant)
    keeps what is stored (an empty partition when nothing is) and the ``sources_complete`` check warns;
    the day does not fail. A source that now answers with fewer rows than stored keeps the stored day
    (with a WARN), unless the run carries the ``cost_assets/accept_smaller_source`` tag."""
    days = window_days(context.partition_time_window)
    stats: dict[str, float] = {}
    yield from _optional_source(
        context,
        ledger,
        SERVING_USAGE,
        schemas.ServingUsage,
        days,
        parse.serving_usage_frame([], days[0], ""),
        workspace,
        lambda member, stats: member.serving_usage(days, stats=stats),
        "serving usage",
        stats,
        lambda f, _: {"requests": f.height, "tokens": int((f["input_token_count"] + f["output_token_count"]).sum())},
    )


@dg.asset(
    key=SERVING_ENTITIES,
    group_name="raw",
    kinds={"databricks", "duckdb"},
    metadata=BY_WORKSPACE,
    check_specs=[
        contract_spec(SERVING_ENTITIES, schemas.ServingEntities),
        sources_spec(
            SERVING_ENTITIES, "system.serving.served_entities (no SQL warehouse, schema not enabled, no grant)"
        ),
    ],
    pool="duckdb_writer",
    retry_policy=SOURCE_RETRY,
    **DAILY_ASSET,
)
def serving_entities(context: dg.AssetExecutionContext, workspace: DatabricksWorkspace, ledger: Ledger):
    """Each served entity as of the day's end (system.serving.served_entities, its latest version changed
    before the next midnight): endpoint, model (entity name), entity type and provider (an external model's
    ``external_model_config.provider``, ``databricks`` for a foundation model). ``mart/serving_costs`` takes
    model and provider from it.

    Optional, like ``raw/serving_usage``: a workspace without the source keeps what is stored (an empty
    partition when nothing is) and the ``sources_complete`` check warns; a day now answered with fewer
    entities than stored keeps its stored rows (WARN) unless the run carries the
    ``cost_assets/accept_smaller_source`` tag."""
    days = window_days(context.partition_time_window)
    stats: dict[str, float] = {}
    yield from _optional_source(
        context,
        ledger,
        SERVING_ENTITIES,
        schemas.ServingEntities,
        days,
        entities_by_day(served_entities_frame([]), days, ""),
        workspace,
        lambda member, stats: member.served_entities(days, stats=stats),
        "served entities",
        stats,
        lambda f, _: {"entities": f.height, "providers": ", ".join(sorted(set(f["provider"].drop_nulls()))) or "none"},
    )


@dg.asset(
    key=AI_GATEWAY_USAGE,
    group_name="raw",
    kinds={"databricks", "duckdb"},
    metadata=BY_WORKSPACE,
    check_specs=[
        contract_spec(AI_GATEWAY_USAGE, schemas.AiGatewayUsage),
        sources_spec(AI_GATEWAY_USAGE, "system.ai_gateway.usage (no SQL warehouse, schema not enabled, no grant)"),
    ],
    pool="duckdb_writer",
    retry_policy=SOURCE_RETRY,
    **DAILY_ASSET,
)
def ai_gateway_usage(context: dg.AssetExecutionContext, workspace: DatabricksWorkspace, ledger: Ledger):
    """Requests through the AI Gateway (system.ai_gateway.usage, where the workspace has it): request id,
    time, endpoint, requester, usage_context and tokens. ``mart/serving_costs`` adds the requests
    ``raw/serving_usage`` does not have (by request id), so a gateway-only request still takes its share.

    Optional, like ``raw/serving_usage`` (a preview table many workspaces lack: the ``sources_complete``
    check warns and what is stored stays)."""
    days = window_days(context.partition_time_window)
    stats: dict[str, float] = {}
    yield from _optional_source(
        context,
        ledger,
        AI_GATEWAY_USAGE,
        schemas.AiGatewayUsage,
        days,
        gateway_by_day(gateway_usage_frame([]), days, ""),
        workspace,
        lambda member, stats: member.gateway_usage(days, stats=stats),
        "AI Gateway usage",
        stats,
        lambda f, _: {"requests": f.height, "tokens": int((f["input_tokens"] + f["output_tokens"]).sum())},
    )


def _optional_source(
    context: dg.AssetExecutionContext,
    ledger: Ledger,
    key: dg.AssetKey,
    contract: type[pa.DataFrameModel],
    days: list[dt.date],
    empty: pl.DataFrame,
    workspace: DatabricksWorkspace,
    read: Callable[[DatabricksWorkspace, dict[str, float]], pl.DataFrame],
    what: str,
    stats: dict[str, float],
    per_day: Callable[[pl.DataFrame, dt.date], dict],
):
    """The body of an optional serving source's asset: read (absent → WARN, stored days kept), keep a day
    answered with fewer rows than stored (``guard.RETAINED``), check the contract, warn, write. An account of
    several workspaces is read concurrently, each workspace judged against its own stored rows."""
    members = workspace.members()
    if len(members) == 1:
        got = read_optional(context, ledger, key, days, empty, lambda: read(members[0], stats), source=what, what=what)
        frame, problems, kept = guard_retained(context, key, got, days)
    else:
        frame, problems, kept = _optional_by_workspace(
            context, ledger, key, days, empty, members, read, what, stats, workspace.max_concurrent
        )
    yield from contract_gate(context, [contract_result(contract, frame, key)])
    yield sources_check(key, problems)
    add_daily_metadata(context, frame, days, per_day)
    yield dg.Output(
        frame,
        metadata={
            **({"kept_stored_days": ", ".join(map(str, kept))} if kept else {}),
            **{"api/" + k: v for k, v in stats.items()},
        },
    )


def _optional_by_workspace(
    context: dg.AssetExecutionContext,
    ledger: Ledger,
    key: dg.AssetKey,
    days: list[dt.date],
    empty: pl.DataFrame,
    members: list[DatabricksWorkspace],
    read: Callable[[DatabricksWorkspace, dict[str, float]], pl.DataFrame],
    what: str,
    stats: dict[str, float],
    max_concurrent: int,
) -> tuple[pl.DataFrame, list[str], list[dt.date]]:
    """An optional source over the workspaces of an account: a workspace that cannot be read (any error) is a
    problem (WARN) and brings no rows, so its stored rows stay (``REPLACE_BY``); each answer is guarded
    against its own workspace's stored rows (``guard_retained``). Returns the frame, problems, days kept."""
    per_member: dict[str, dict[str, float]] = {m.name: {} for m in members}
    answers = read_all(
        members, lambda m: read(m, per_member[m.name]), lambda m: m.name, max_concurrent, context.log.info
    )
    for counts in per_member.values():
        for k, v in counts.items():
            stats[k] = stats.get(k, 0) + v
    stored = stored_rows(ledger, key, days, empty)
    frames, problems, kept = [empty], [], set()
    for answer in answers:
        if answer.error is not None:
            problems.append(f"workspace {answer.name}: {what} not read, stored rows kept: {answer.error}")
            continue
        mine = stored.filter(pl.col("workspace_id").is_in(answer.value["workspace_id"].unique().to_list()))
        frame, found, days_kept = guard_retained(context, key, OptionalRead(answer.value, mine, [], []), days)
        frames.append(frame)
        problems += [f"workspace {answer.name}: {p}" for p in found]
        kept.update(days_kept)
    return pl.concat(frames, how="vertical_relaxed"), problems, sorted(kept)
