"""Raw layer: what the workspace and the bill say, one daily partition at a time (UTC).

Every asset validates its frame against its contract *before* writing: a broken contract fails the
check (ERROR, first failing rows in the metadata) and the step, so stored partitions stay as they were.
"""

import dagster as dg
import polars as pl

from cost_assets import schemas, watermarks
from cost_assets.checks import ContractBroken, contract_result, contract_spec, frame_metadata
from cost_assets.partitions import DAILY, window_days
from cost_assets.resources.billing import BillingSource
from cost_assets.resources.databricks import DatabricksWorkspace

DAILY_ASSET = {"partitions_def": DAILY, "backfill_policy": dg.BackfillPolicy.single_run()}
PARTITIONED = {"partition_expr": "usage_date"}

JOB_RUNS = dg.AssetKey(["raw", "job_runs"])
JOBS = dg.AssetKey(["raw", "jobs"])
CLUSTERS = dg.AssetKey(["raw", "clusters"])
CLUSTER_EVENTS = dg.AssetKey(["raw", "cluster_events"])
BILLING_USAGE = dg.AssetKey(["raw", "billing_usage"])
SERVING_USAGE = dg.AssetKey(["raw", "serving_usage"])

_WORKSPACE_TABLES = {
    JOB_RUNS: (schemas.JobRuns, "One row per task run overlapping the day (runs started earlier included): "
               "task key, cluster, compute type, start/end, states. From Jobs API runs/list with "
               "expand_tasks."),
    JOBS: (schemas.Jobs, "The jobs seen in the day's runs, with settings.tags and the team / tenant / "
           "project / cost_center tag columns. From jobs/get."),
    CLUSTERS: (schemas.Clusters, "clusters/get details of every cluster used or alive on the day: node "
               "types, autoscale, availability and first_on_demand, Photon, pools, custom tags."),
    CLUSTER_EVENTS: (schemas.ClusterEvents, "Cluster events of the day plus the look-back that fixes each "
                     "cluster's state at 00:00 (is_lookback): lifecycle, resizes, lost nodes."),
}


def contract_gate(context: dg.AssetExecutionContext, checks: list[dg.AssetCheckResult]):
    """Yield the check results; if any failed, stop before any output is written."""
    yield from checks
    broken = [c.asset_key.to_user_string() for c in checks if not c.passed]
    if broken:
        raise ContractBroken(description=f"contract broken for {', '.join(broken)}; nothing was written "
                             "(see the failed contract checks for the rows)")


@dg.multi_asset(
    outs={key.path[-1]: dg.AssetOut(key=key, description=desc, group_name="raw", kinds={"databricks", "duckdb"},
                                    metadata=PARTITIONED) for key, (_, desc) in _WORKSPACE_TABLES.items()},
    check_specs=[contract_spec(key, model) for key, (model, _) in _WORKSPACE_TABLES.items()],
    pool="duckdb_writer",
    **DAILY_ASSET,
)
def workspace_tables(context: dg.AssetExecutionContext, workspace: DatabricksWorkspace):
    """Fetch the day's runs, jobs, clusters and events in one pass (one runs/list sweep, one call per
    distinct job and cluster) and write the four raw tables."""
    days = window_days(context.partition_time_window)
    context.log.info(f"fetching workspace data for {len(days)} day(s): {days[0]} .. {days[-1]}")
    got = workspace.fetch(days)
    frames = {JOB_RUNS: got.job_runs, JOBS: got.jobs, CLUSTERS: got.clusters, CLUSTER_EVENTS: got.cluster_events}
    yield from contract_gate(context, [contract_result(_WORKSPACE_TABLES[k][0], f, k) for k, f in frames.items()])
    context.log.info(f"fetched {got.stats}")
    yield dg.Output(got.job_runs, output_name="job_runs", metadata=frame_metadata(
        got.job_runs, runs=got.job_runs["run_id"].n_unique(), **{"api/" + k: v for k, v in got.stats.items()}))
    yield dg.Output(got.jobs, output_name="jobs", metadata=frame_metadata(
        got.jobs, untagged_jobs=got.jobs.filter(pl.col("tags") == "{}").height))
    yield dg.Output(got.clusters, output_name="clusters", metadata=frame_metadata(
        got.clusters, job_clusters=got.clusters.filter(cluster_source="JOB").height,
        photon_clusters=int(got.clusters["is_photon"].sum())))
    yield dg.Output(got.cluster_events, output_name="cluster_events", metadata=frame_metadata(
        got.cluster_events, lookback_events=int(got.cluster_events["is_lookback"].sum())))


@dg.asset(
    key=BILLING_USAGE, group_name="raw", kinds={"databricks", "duckdb"}, metadata=PARTITIONED,
    check_specs=[contract_spec(BILLING_USAGE, schemas.BillingUsage)], pool="duckdb_writer", **DAILY_ASSET,
)
def billing_usage(context: dg.AssetExecutionContext, billing: BillingSource):
    """Every billing record of the day (ORIGINAL, RETRACTION and RESTATEMENT, with ingestion_date), from
    the configured source (simulated, legacy CSV, Account API or system.billing.usage), in one schema.
    The true usage is the plain sum over record types."""
    days = window_days(context.partition_time_window)
    frame = billing.usage(days)
    yield from contract_gate(context, [contract_result(schemas.BillingUsage, frame, BILLING_USAGE)])
    corrections = frame.filter(pl.col("record_type") != "ORIGINAL").height
    yield dg.Output(frame, metadata={**frame_metadata(
        frame, billed_dbus=float(frame["usage_quantity"].sum()), correction_records=corrections,
        source=frame["billing_source"].first() if frame.height else "none"),
        watermarks.METADATA_KEY: dg.MetadataValue.json(watermarks.bill_fingerprints(frame, days))})


@dg.asset(
    key=SERVING_USAGE, group_name="raw", kinds={"databricks", "duckdb"}, metadata=PARTITIONED,
    check_specs=[contract_spec(SERVING_USAGE, schemas.ServingUsage)], pool="duckdb_writer", **DAILY_ASSET,
)
def serving_usage(context: dg.AssetExecutionContext, workspace: DatabricksWorkspace):
    """Model-serving requests of the day with token counts and usage_context (tenant, agent, user)."""
    days = window_days(context.partition_time_window)
    frame = workspace.serving_usage(days)
    yield from contract_gate(context, [contract_result(schemas.ServingUsage, frame, SERVING_USAGE)])
    yield dg.Output(frame, metadata=frame_metadata(
        frame, requests=frame.height,
        tokens=int((frame["input_token_count"] + frame["output_token_count"]).sum()) if frame.height else 0))
