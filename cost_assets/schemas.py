"""Data contracts: one pandera.polars model per table.

Conventions every table follows, so joins never guess:
- timestamps are naive ``Datetime("us")`` values in UTC (DuckDB ``TIMESTAMP``);
- every daily table has ``usage_date`` (DuckDB ``DATE``), the IO manager's partition column;
- ``workspace_id`` is on every workspace-level table (billing spans many workspaces);
- ids follow the REST API types (``job_id``/``run_id`` are BIGINT, ``cluster_id`` a string);
- tag maps are stored as canonical JSON strings (sorted keys) because polars has no map type.

``unique`` in each ``Config`` is the key *within one partition*; a partition is replaced whole.
"""

import datetime as dt

import pandera.polars as pa
import polars as pl

# The value lists the contracts check columns against (``isin``) are the vocabulary's.
from cost_assets.vocabulary import (
    ANOMALY_BASELINES,
    ANOMALY_FEEDBACK,
    ANOMALY_MONITORS,
    ANOMALY_STATES,
    ANOMALY_STATUSES,
    ATTRIBUTION_REASONS,
    AVAILABILITIES,
    BILLING_SOURCES,
    CLOUD_ATTRIBUTION_REASONS,
    CLOUD_BILL_FORMATS,
    CLOUD_CHARGE_CATEGORIES,
    CLOUD_GRAINS,
    CLOUD_PRICING_MODELS,
    CLOUD_RESOURCE_KINDS,
    CLOUD_SERVICE_CATEGORIES,
    CLOUDS,
    CLUSTER_REASONS,
    COMPUTE_TYPES,
    CONSUMERS,
    CURRENCY,
    ESTIMATE_CONSUMERS,
    EVENT_TYPES,
    LIFE_CYCLE_STATES,
    PLANTED_ANOMALY_KINDS,
    RECONCILIATION_REASONS,
    RECORD_TYPES,
    RESOURCE_TYPES,
    RUN_TYPES,
    RUNTIME_ENGINES,
    SCOPE_DIMENSIONS,
    SEGMENT_KINDS,
    SEGMENT_STATES,
    TIERS,
    VM_RECONCILIATION_REASONS,
)

UTC_TS = pl.Datetime("us")


class _Daily(pa.DataFrameModel):
    usage_date: dt.date = pa.Field(nullable=False)


class JobRuns(_Daily):
    """raw.job_runs: one row per task run overlapping the day (runs started earlier included)."""

    workspace_id: str
    job_id: pl.Int64 = pa.Field(ge=0)
    run_id: pl.Int64 = pa.Field(ge=0)
    task_run_id: pl.Int64 = pa.Field(ge=0)
    task_key: str
    attempt_number: pl.Int64 = pa.Field(ge=0)
    run_name: str | None = pa.Field(nullable=True)
    run_type: str = pa.Field(isin=RUN_TYPES)
    trigger: str | None = pa.Field(nullable=True)
    creator_user_name: str | None = pa.Field(nullable=True)
    compute_type: str = pa.Field(isin=COMPUTE_TYPES)
    job_cluster_key: str | None = pa.Field(nullable=True)
    cluster_id: str | None = pa.Field(nullable=True)
    run_start_time: UTC_TS
    run_end_time: UTC_TS = pa.Field(nullable=True)
    start_time: UTC_TS
    end_time: UTC_TS = pa.Field(nullable=True)  # null while the task is still active
    life_cycle_state: str = pa.Field(isin=LIFE_CYCLE_STATES)
    result_state: str | None = pa.Field(nullable=True)

    class Config:
        strict = True
        unique = ["usage_date", "workspace_id", "task_run_id"]

    @pa.dataframe_check(error="end_time must not be before start_time")
    def end_after_start(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("end_time").is_null() | (pl.col("end_time") >= pl.col("start_time")))


class Jobs(_Daily):
    """raw.jobs: the jobs seen in the day's runs, with settings.tags and the four standard tag columns."""

    workspace_id: str
    job_id: pl.Int64 = pa.Field(ge=0)
    job_name: str | None = pa.Field(nullable=True)
    creator_user_name: str | None = pa.Field(nullable=True)
    created_time: UTC_TS = pa.Field(nullable=True)
    tags: str  # canonical JSON object
    team: str | None = pa.Field(nullable=True)
    tenant: str | None = pa.Field(nullable=True)
    project: str | None = pa.Field(nullable=True)
    cost_center: str | None = pa.Field(nullable=True)

    class Config:
        strict = True
        unique = ["usage_date", "workspace_id", "job_id"]


class Clusters(_Daily):
    """raw.clusters: clusters/get details for every cluster used or alive on the day."""

    workspace_id: str
    cloud: str = pa.Field(isin=CLOUDS)
    cluster_id: str
    cluster_name: str | None = pa.Field(nullable=True)
    cluster_source: str | None = pa.Field(nullable=True)
    node_type_id: str
    driver_node_type_id: str
    num_workers: pl.Int64 = pa.Field(nullable=True, ge=0)
    autoscale_min_workers: pl.Int64 = pa.Field(nullable=True, ge=0)
    autoscale_max_workers: pl.Int64 = pa.Field(nullable=True, ge=0)
    is_single_node: bool
    availability: str | None = pa.Field(nullable=True, isin=AVAILABILITIES)
    first_on_demand: pl.Int64 = pa.Field(nullable=True, ge=0)
    spark_version: str | None = pa.Field(nullable=True)
    runtime_engine: str | None = pa.Field(nullable=True, isin=RUNTIME_ENGINES)
    is_photon: bool
    instance_pool_id: str | None = pa.Field(nullable=True)
    driver_instance_pool_id: str | None = pa.Field(nullable=True)
    custom_tags: str  # canonical JSON object
    state: str | None = pa.Field(nullable=True)
    start_time: UTC_TS = pa.Field(nullable=True)
    terminated_time: UTC_TS = pa.Field(nullable=True)
    creator_user_name: str | None = pa.Field(nullable=True)
    # The worker pool (instance-pools/get), when the cluster draws from one: its idle VMs are paid (VM $,
    # no DBUs) whether or not a cluster uses them.
    pool_node_type_id: str | None = pa.Field(nullable=True)
    pool_min_idle_instances: pl.Int64 = pa.Field(nullable=True, ge=0)
    pool_custom_tags: str | None = pa.Field(nullable=True)  # canonical JSON object
    # Why the details are not from clusters/get: 'cluster_not_found' (purged after its retention; rebuilt
    # from the run's new_cluster spec, or with no node type when no run carries one).
    reason: str | None = pa.Field(nullable=True, isin=CLUSTER_REASONS)

    class Config:
        strict = True
        unique = ["usage_date", "workspace_id", "cluster_id"]


class InstancePools(_Daily):
    """raw.instance_pools: every instance pool of the workspace on the day (instance-pools/list). A pool no
    cluster of the day draws from still keeps ``min_idle_instances`` warm (VM $, no DBUs)."""

    workspace_id: str
    cloud: str = pa.Field(isin=CLOUDS)
    instance_pool_id: str
    instance_pool_name: str | None = pa.Field(nullable=True)
    node_type_id: str | None = pa.Field(nullable=True)
    min_idle_instances: pl.Int64 = pa.Field(ge=0)
    max_capacity: pl.Int64 = pa.Field(nullable=True, ge=0)
    idle_instance_autotermination_minutes: pl.Int64 = pa.Field(nullable=True, ge=0)
    state: str | None = pa.Field(nullable=True)
    custom_tags: str  # canonical JSON object

    class Config:
        strict = True
        unique = ["usage_date", "workspace_id", "instance_pool_id"]


class ClusterEvents(_Daily):
    """raw.cluster_events: events of the day plus the look-back that fixes the state at 00:00."""

    workspace_id: str
    cluster_id: str
    timestamp: UTC_TS
    event_type: str = pa.Field(isin=EVENT_TYPES)
    current_num_workers: pl.Int64 = pa.Field(nullable=True, ge=0)
    target_num_workers: pl.Int64 = pa.Field(nullable=True, ge=0)
    cluster_size_num_workers: pl.Int64 = pa.Field(nullable=True, ge=0)
    cluster_size_min_workers: pl.Int64 = pa.Field(nullable=True, ge=0)
    cluster_size_max_workers: pl.Int64 = pa.Field(nullable=True, ge=0)
    cause: str | None = pa.Field(nullable=True)
    reason_code: str | None = pa.Field(nullable=True)
    is_lookback: bool

    class Config:
        strict = True
        unique = ["usage_date", "workspace_id", "cluster_id", "timestamp", "event_type"]


class BillingUsage(_Daily):
    """raw.billing_usage: every billing source normalized to the system.billing.usage shape.

    ``usage_quantity`` is negative only on RETRACTION rows; the true total is the plain sum.
    """

    account_id: str | None = pa.Field(nullable=True)
    workspace_id: str | None = pa.Field(nullable=True)
    record_id: str
    record_type: str = pa.Field(isin=RECORD_TYPES)
    ingestion_date: dt.date | None = pa.Field(nullable=True)
    cloud: str | None = pa.Field(nullable=True, isin=CLOUDS)
    sku_name: str
    usage_start_time: UTC_TS
    usage_end_time: UTC_TS
    usage_unit: str
    usage_quantity: pl.Float64
    billing_origin_product: str | None = pa.Field(nullable=True)
    cluster_id: str | None = pa.Field(nullable=True)
    warehouse_id: str | None = pa.Field(nullable=True)
    endpoint_name: str | None = pa.Field(nullable=True)
    instance_pool_id: str | None = pa.Field(nullable=True)
    node_type: str | None = pa.Field(nullable=True)
    job_id: pl.Int64 = pa.Field(nullable=True)
    job_run_id: pl.Int64 = pa.Field(nullable=True)
    is_photon: bool | None = pa.Field(nullable=True)
    is_serverless: bool | None = pa.Field(nullable=True)
    custom_tags: str  # canonical JSON object
    run_as: str | None = pa.Field(nullable=True)
    run_by: str | None = pa.Field(nullable=True)
    created_by: str | None = pa.Field(nullable=True)
    owned_by: str | None = pa.Field(nullable=True)
    machine_hours: pl.Float64 = pa.Field(nullable=True, ge=0)
    billing_source: str = pa.Field(isin=BILLING_SOURCES)

    class Config:
        strict = True
        unique = ["usage_date", "record_id"]

    @pa.dataframe_check(error="usage_end_time must be after usage_start_time")
    def end_after_start(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("usage_end_time") > pl.col("usage_start_time"))

    @pa.dataframe_check(error="usage_quantity is negative outside a RETRACTION")
    def negative_only_retractions(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("usage_quantity") >= 0) | (pl.col("record_type") == "RETRACTION"))


class ServingUsage(_Daily):
    """raw.serving_usage: model-serving requests (system.serving.endpoint_usage) with usage_context."""

    workspace_id: str
    databricks_request_id: str
    client_request_id: str | None = pa.Field(nullable=True)
    endpoint_name: str
    served_entity_id: str
    entity_name: str | None = pa.Field(nullable=True)
    requester: str | None = pa.Field(nullable=True)
    status_code: pl.Int64
    request_time: UTC_TS
    input_token_count: pl.Int64 = pa.Field(ge=0)
    output_token_count: pl.Int64 = pa.Field(ge=0)
    usage_context: str  # canonical JSON object
    tenant: str | None = pa.Field(nullable=True)
    agent: str | None = pa.Field(nullable=True)
    user: str | None = pa.Field(nullable=True)

    class Config:
        strict = True
        unique = ["usage_date", "databricks_request_id"]


class ServingEntities(_Daily):
    """raw.serving_entities: each served entity as of the day's end (its latest version changed before it),
    from system.serving.served_entities: endpoint, model and provider."""

    workspace_id: str
    served_entity_id: str
    endpoint_name: str | None = pa.Field(nullable=True)
    entity_name: str | None = pa.Field(nullable=True)
    entity_type: str | None = pa.Field(nullable=True)
    provider: str | None = pa.Field(nullable=True)
    change_time: UTC_TS = pa.Field(nullable=True)

    class Config:
        strict = True
        unique = ["usage_date", "served_entity_id"]


class AiGatewayUsage(_Daily):
    """raw.ai_gateway_usage: requests through the AI Gateway (system.ai_gateway.usage) with usage_context;
    ``mart/serving_costs`` adds those the endpoint usage does not have."""

    workspace_id: str
    request_id: str
    request_time: UTC_TS
    endpoint_name: str | None = pa.Field(nullable=True)
    requester: str | None = pa.Field(nullable=True)
    usage_context: str  # canonical JSON object
    input_tokens: pl.Int64 = pa.Field(ge=0)
    output_tokens: pl.Int64 = pa.Field(ge=0)

    class Config:
        strict = True
        unique = ["usage_date", "request_id"]


class DbuPrices(pa.DataFrameModel):
    """ref.dbu_prices: $/DBU per SKU over half-open effective windows [price_start_time, price_end_time).

    ``photon_dbu_factor`` is the DBU/hour multiplier of the SKU's workload (1.0 for non-Photon SKUs);
    it is price-sheet data, never a constant in code.
    """

    cloud: str = pa.Field(isin=CLOUDS)
    sku_name: str
    tier: str = pa.Field(isin=TIERS)
    workload: str
    is_photon: bool
    photon_dbu_factor: pl.Float64 = pa.Field(gt=0)
    usage_unit: str
    currency_code: str
    price_start_time: UTC_TS
    price_end_time: UTC_TS = pa.Field(nullable=True)
    list_price: pl.Float64 = pa.Field(ge=0)
    contract_discount: pl.Float64 = pa.Field(ge=0, lt=1)
    contract_price: pl.Float64 = pa.Field(ge=0)
    effective_price: pl.Float64 = pa.Field(ge=0)
    source: str

    class Config:
        strict = True
        unique = ["cloud", "sku_name", "price_start_time"]

    @pa.dataframe_check(error="price_end_time must be after price_start_time")
    def window_is_positive(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("price_end_time").is_null() | (pl.col("price_end_time") > pl.col("price_start_time"))
        )


class InstanceTypes(pa.DataFrameModel):
    """ref.instance_types: DBU/hour, size and VM $/hour per node type over effective windows."""

    cloud: str = pa.Field(isin=CLOUDS)
    node_type_id: str
    vcpus: pl.Float64 = pa.Field(gt=0)
    memory_gb: pl.Float64 = pa.Field(gt=0)
    dbu_per_hour: pl.Float64 = pa.Field(gt=0)
    vm_on_demand_per_hour: pl.Float64 = pa.Field(ge=0)
    vm_spot_per_hour: pl.Float64 = pa.Field(nullable=True, ge=0)
    disk_type: str | None = pa.Field(nullable=True)
    disks_per_node: pl.Int64 = pa.Field(nullable=True, gt=0)
    disk_per_hour: pl.Float64 = pa.Field(nullable=True, ge=0)
    currency_code: str
    effective_from: UTC_TS
    effective_to: UTC_TS = pa.Field(nullable=True)
    source: str

    class Config:
        strict = True
        unique = ["cloud", "node_type_id", "effective_from"]

    @pa.dataframe_check(error="effective_to must be after effective_from")
    def window_is_positive(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("effective_to").is_null() | (pl.col("effective_to") > pl.col("effective_from"))
        )


class DailyDbuPrices(DbuPrices):
    """The ``ref.dbu_prices`` table: the price sheet as it stood on each day (``usage_date``), so a day is
    priced with its own snapshot and the price tables join the daily partitions (one run per backfill).
    The engine reads one day's snapshot, without ``usage_date`` (:class:`DbuPrices`)."""

    usage_date: dt.date = pa.Field(nullable=False)

    class Config:
        strict = True
        unique = ["usage_date", "cloud", "sku_name", "price_start_time"]


class DailyInstanceTypes(InstanceTypes):
    """The ``ref.instance_types`` table: the node types as they stood on each day (see DailyDbuPrices)."""

    usage_date: dt.date = pa.Field(nullable=False)

    class Config:
        strict = True
        unique = ["usage_date", "cloud", "node_type_id", "effective_from"]


# --- mart ------------------------------------------------------------------------------------------------


class ClusterSegments(_Daily):
    """mart.cluster_segments: cluster (or pool) × elementary interval of constant state and node counts."""

    workspace_id: str | None = pa.Field(nullable=True)
    cluster_id: str
    segment_kind: str = pa.Field(isin=SEGMENT_KINDS)
    segment_start: UTC_TS
    segment_end: UTC_TS
    hour_start: UTC_TS
    state: str = pa.Field(isin=SEGMENT_STATES)
    provisioned_workers: pl.Int64 = pa.Field(ge=0)
    ready_workers: pl.Int64 = pa.Field(ge=0)
    driver_provisioned: bool
    driver_ready: bool
    driver_on_demand: bool
    on_demand_workers: pl.Int64 = pa.Field(ge=0)
    spot_workers: pl.Int64 = pa.Field(ge=0)
    vm_billable: bool
    dbu_billable: bool
    is_imputed: bool
    cloud: str | None = pa.Field(nullable=True, isin=CLOUDS)
    driver_node_type_id: str | None = pa.Field(nullable=True)
    node_type_id: str | None = pa.Field(nullable=True)
    cluster_source: str | None = pa.Field(nullable=True)
    workload: str | None = pa.Field(nullable=True)
    is_photon: bool | None = pa.Field(nullable=True)

    class Config:
        strict = True
        unique = ["usage_date", "workspace_id", "cluster_id", "segment_start"]

    @pa.dataframe_check(error="segment must be non-empty and inside its hour")
    def inside_hour(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("segment_end") > pl.col("segment_start"))
            & (pl.col("segment_start") >= pl.col("hour_start"))
            & (pl.col("segment_end") <= pl.col("hour_start") + pl.duration(hours=1))
        )

    @pa.dataframe_check(error="on_demand_workers + spot_workers must equal provisioned_workers >= ready_workers")
    def node_split(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("on_demand_workers") + pl.col("spot_workers") == pl.col("provisioned_workers"))
            & (pl.col("ready_workers") <= pl.col("provisioned_workers"))
        )


class EstimatedCosts(_Daily):
    """mart.estimated_costs: the estimate at the bill's grain, cluster (or pool) × hour × SKU × consumer, with
    each consumer's share of the cluster-hour (what reconciliation hands the billed dollars out by)."""

    workspace_id: str | None = pa.Field(nullable=True)
    cluster_id: str
    hour_start: UTC_TS
    sku_name: str | None = pa.Field(nullable=True)
    is_shared_cluster: bool | None = pa.Field(nullable=True)
    consumer: str = pa.Field(isin=ESTIMATE_CONSUMERS)
    run_id: pl.Int64 = pa.Field(nullable=True, ge=0)
    task_run_id: pl.Int64 = pa.Field(nullable=True, ge=0)
    job_id: pl.Int64 = pa.Field(nullable=True, ge=0)
    task_key: str | None = pa.Field(nullable=True)
    runtime_hours: pl.Float64 = pa.Field(ge=0)
    dbus: pl.Float64 = pa.Field(nullable=True, ge=0)
    dbu_list_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    dbu_contract_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    dbu_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    vm_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    disk_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    total_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    currency_code: str = pa.Field(isin=[CURRENCY])
    unpriced: bool
    cluster_dbus: pl.Float64 = pa.Field(nullable=True, ge=0)
    cluster_total_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    dbu_share: pl.Float64 = pa.Field(nullable=True, ge=0, le=1 + 1e-9)
    cost_share: pl.Float64 = pa.Field(nullable=True, ge=0, le=1 + 1e-9)

    class Config:
        strict = True
        unique = ["usage_date", "workspace_id", "cluster_id", "hour_start", "consumer", "task_run_id"]

    @pa.dataframe_check(error="run rows need a run_id; idle rows have no ids")
    def ids_match_consumer(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.when(pl.col("consumer") == "run")
            .then(pl.col("run_id").is_not_null())
            .otherwise(pl.col("task_run_id").is_null() & pl.col("job_id").is_null())
        )


class BudgetStatus(_Daily):
    """mart.budget_status: per budget and day, spend to date in its period, forecast, remaining and state."""

    workspace_id: str | None = pa.Field(nullable=True)  # the scope's workspace, if it names one
    budget: str
    scope: str
    period: str = pa.Field(isin=["day", "week", "month"])
    period_start: dt.date
    period_end: dt.date
    cost_basis: str = pa.Field(isin=["dbu", "total"])
    amount_usd: pl.Float64 = pa.Field(gt=0)
    currency_code: str = pa.Field(isin=[CURRENCY])
    day_spend_usd: pl.Float64
    day_basis: str = pa.Field(isin=["billed", "estimated"])
    spend_to_date_usd: pl.Float64
    billed_to_date_usd: pl.Float64
    estimated_to_date_usd: pl.Float64
    estimated_days: pl.Int64 = pa.Field(ge=0)
    missing_days: pl.Int64 = pa.Field(ge=0)  # days of the period so far the ledger does not hold at all
    forecast_usd: pl.Float64
    remaining_usd: pl.Float64
    pct_used: pl.Float64
    forecast_pct: pl.Float64
    threshold_crossed_pct: pl.Float64 = pa.Field(nullable=True)
    first_crossed_on: dt.date | None = pa.Field(nullable=True)
    state: str = pa.Field(isin=["ok", "warning", "exceeded", "forecast_exceeded"])
    owner: str | None = pa.Field(nullable=True)
    channel: str | None = pa.Field(nullable=True)

    class Config:
        strict = True
        unique = ["usage_date", "budget"]

    @pa.dataframe_check(error="spend to date = billed part + estimated part")
    def parts_add_up(cls, data) -> pl.LazyFrame:
        parts = pl.col("billed_to_date_usd") + pl.col("estimated_to_date_usd")
        return data.lazyframe.select((pl.col("spend_to_date_usd") - parts).abs() <= 1e-6)


class CostAnomalies(_Daily):
    """mart.cost_anomalies: the anomaly view as of day ``usage_date`` (the partition) — every monitored series
    scored on each of the last 3 closed days ≤ ``usage_date`` (``scored_date``), with its episode. The newest
    partition holding a ``scored_date`` has its current figures (docs/anomalies.md)."""

    scored_date: dt.date
    monitor: str = pa.Field(isin=ANOMALY_MONITORS)
    value: str
    scope: str  # "team = data-eng": monitor and value as a person reads them
    actual_usd: pl.Float64
    expected_usd: pl.Float64 = pa.Field(nullable=True)
    mad_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    lower_usd: pl.Float64 = pa.Field(nullable=True)
    upper_usd: pl.Float64 = pa.Field(nullable=True)
    impact_usd: pl.Float64 = pa.Field(nullable=True)
    threshold_usd: pl.Float64 = pa.Field(nullable=True)
    baseline: str | None = pa.Field(nullable=True, isin=ANOMALY_BASELINES)
    baseline_points: pl.Int32 = pa.Field(ge=0)
    state: str = pa.Field(isin=ANOMALY_STATES)
    alertable: bool
    planned: bool
    unpriced: bool
    anomaly_id: str | None = pa.Field(nullable=True)
    opened_on: dt.date | None = pa.Field(nullable=True)
    opening_impact_usd: pl.Float64 = pa.Field(nullable=True)
    status: str | None = pa.Field(nullable=True, isin=ANOMALY_STATUSES)
    feedback: str | None = pa.Field(nullable=True, isin=ANOMALY_FEEDBACK)
    # JSON list (rank order) of {"dimension", "value", "actual_usd", "expected_usd", "delta_usd"}, on
    # alertable days only.
    top_contributors: str | None = pa.Field(nullable=True)
    # The incident of an alertable row: its series and the others out of band the same scored day whose top
    # resource contributor is the same (costing/anomaly_incidents.py); null on the other rows.
    incident_id: str | None = pa.Field(nullable=True)

    class Config:
        strict = True
        unique = ["usage_date", "scored_date", "monitor", "value"]

    @pa.dataframe_check(error="scored_date is a closed day on or before the partition's day")
    def scored_on_or_before(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("scored_date") <= pl.col("usage_date"))

    @pa.dataframe_check(error="an episode day has its id, its first day and a status")
    def episode_complete(cls, data) -> pl.LazyFrame:
        ids = pl.col("anomaly_id").is_null()
        return data.lazyframe.select((ids == pl.col("opened_on").is_null()) & (ids == pl.col("status").is_null()))


class AnomalyDetection(_Daily):
    """sim.anomaly_detection (simulated worlds only): the alerts of mart.cost_anomalies over the 35 days up
    to ``usage_date`` against the planted anomalies — found, missed, and the other alerts."""

    planted_id: str | None = pa.Field(nullable=True)  # null: an alert no planted anomaly explains
    kind: str | None = pa.Field(nullable=True, isin=PLANTED_ANOMALY_KINDS)
    anomaly_id: str | None = pa.Field(nullable=True)  # null: a planted anomaly no alert found
    monitor: str | None = pa.Field(nullable=True, isin=ANOMALY_MONITORS)
    value: str | None = pa.Field(nullable=True)
    first_alert: dt.date | None = pa.Field(nullable=True)
    # The alert's first day and the resource whose spend moved most: one spend change, many series.
    incident: str | None = pa.Field(nullable=True)
    found: bool

    class Config:
        strict = True


class RunCostAccuracy(_Daily):
    """sim.run_cost_accuracy (simulated worlds only): each job run's estimated day cost against the truth."""

    workspace_id: str | None = pa.Field(nullable=True)
    run_id: pl.Int64 = pa.Field(ge=0)
    estimated_usd: pl.Float64 = pa.Field(nullable=True)
    true_usd: pl.Float64 = pa.Field(ge=0)
    abs_rel_error: pl.Float64 = pa.Field(ge=0)
    within_tolerance: bool

    class Config:
        strict = True
        unique = ["usage_date", "run_id"]


class VmCostAccuracy(_Daily):
    """sim.vm_cost_accuracy (simulated cloud bill only): the estimate's VM $ per cluster or pool and period
    against the VMs' true cost (``simulation/vm_accuracy.py``)."""

    period_start: UTC_TS
    resource_kind: str = pa.Field(isin=["cluster", "pool"])
    resource_key: str
    grain: str = pa.Field(isin=CLOUD_GRAINS)
    estimated_vm_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    billed_vm_cost_usd: pl.Float64
    true_vm_cost_usd: pl.Float64 = pa.Field(ge=0)
    abs_rel_error: pl.Float64 = pa.Field(nullable=True, ge=0)
    estimated_disk_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    true_disk_cost_usd: pl.Float64 = pa.Field(ge=0)

    class Config:
        strict = True
        unique = ["usage_date", "period_start", "resource_kind", "resource_key"]


class RunCosts(_Daily):
    """mart.run_costs: task run × cluster × day, plus one idle row per shared cluster (or pool) × day."""

    workspace_id: str | None = pa.Field(nullable=True)
    consumer: str = pa.Field(isin=ESTIMATE_CONSUMERS)
    run_id: pl.Int64 = pa.Field(nullable=True, ge=0)
    task_run_id: pl.Int64 = pa.Field(nullable=True, ge=0)
    job_id: pl.Int64 = pa.Field(nullable=True, ge=0)
    task_key: str | None = pa.Field(nullable=True)
    cluster_id: str
    sku_name: str | None = pa.Field(nullable=True)
    is_shared_cluster: bool
    runtime_hours: pl.Float64 = pa.Field(ge=0)
    dbus: pl.Float64 = pa.Field(nullable=True, ge=0)
    dbu_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    vm_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    disk_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    total_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    currency_code: str = pa.Field(isin=[CURRENCY])
    unpriced: bool
    team: str | None = pa.Field(nullable=True)
    tenant: str | None = pa.Field(nullable=True)
    project: str | None = pa.Field(nullable=True)
    cost_center: str | None = pa.Field(nullable=True)

    class Config:
        strict = True
        unique = ["usage_date", "workspace_id", "consumer", "cluster_id", "task_run_id"]

    @pa.dataframe_check(
        error="run rows need a run_id (and a task_run_id unless it is a job cluster's run-free "
        "time); idle rows have no ids"
    )
    def ids_match_consumer(cls, data) -> pl.LazyFrame:
        is_run = pl.col("consumer") == "run"
        return data.lazyframe.select(
            pl.when(is_run)
            .then(pl.col("run_id").is_not_null() & (pl.col("task_run_id").is_not_null() | ~pl.col("is_shared_cluster")))
            .otherwise(pl.col("task_run_id").is_null() & pl.col("job_id").is_null())
        )

    @pa.dataframe_check(error="unpriced rows have null money, priced rows have all of it (total = dbu + vm + disk)")
    def unpriced_is_null(cls, data) -> pl.LazyFrame:
        total = pl.col("dbu_cost_usd") + pl.col("vm_cost_usd") + pl.col("disk_cost_usd").fill_null(0.0)
        return data.lazyframe.select(
            pl.when(pl.col("unpriced"))
            .then(pl.col("total_cost_usd").is_null() & pl.col("dbus").is_null())
            .otherwise((pl.col("total_cost_usd") - total).abs() <= 1e-9 * total.abs() + 1e-12)
        )


class Reconciliation(_Daily):
    """mart.reconciliation: estimated vs billed per resource × hour × SKU (costing/reconcile.py)."""

    workspace_id: str | None = pa.Field(nullable=True)
    resource_type: str = pa.Field(isin=RESOURCE_TYPES)
    resource_id: str
    hour_start: UTC_TS
    sku_name: str | None = pa.Field(nullable=True)  # null only for an estimate with no timeline
    job_id: pl.Int64 = pa.Field(nullable=True)
    job_run_id: pl.Int64 = pa.Field(nullable=True)
    billing_records: pl.Int64 = pa.Field(ge=0)
    estimated_dbus: pl.Float64 = pa.Field(nullable=True)
    estimated_cost_usd: pl.Float64 = pa.Field(nullable=True)
    billed_dbus: pl.Float64
    billed_cost_usd: pl.Float64 = pa.Field(nullable=True)
    ratio: pl.Float64 = pa.Field(nullable=True)
    delta_dbus: pl.Float64 = pa.Field(nullable=True)
    delta_usd: pl.Float64 = pa.Field(nullable=True)
    within_tolerance: bool
    has_correction: bool
    unpriced: bool
    estimate_unpriced: bool
    custom_tags: str | None = pa.Field(nullable=True)
    currency_code: str
    reason: str = pa.Field(isin=RECONCILIATION_REASONS)

    class Config:
        strict = True
        unique = ["usage_date", "workspace_id", "resource_type", "resource_id", "hour_start", "sku_name"]

    @pa.dataframe_check(error="billed_cost_usd is null exactly when the row is unpriced on the bill side")
    def null_money_means_unpriced(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("billed_cost_usd").is_null() == pl.col("unpriced"))

    @pa.dataframe_check(error="usage_date must be the date of hour_start")
    def date_of_hour(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("usage_date") == pl.col("hour_start").dt.date())


class AttributedCosts(_Daily):
    """mart.attributed_costs: the bill handed out per resource × hour × SKU × consumer."""

    hour_start: UTC_TS
    workspace_id: str | None = pa.Field(nullable=True)
    resource_type: str = pa.Field(isin=RESOURCE_TYPES)
    resource_id: str
    sku_name: str | None = pa.Field(nullable=True)
    consumer: str = pa.Field(isin=CONSUMERS)
    run_id: pl.Int64 = pa.Field(nullable=True)
    task_run_id: pl.Int64 = pa.Field(nullable=True)
    job_id: pl.Int64 = pa.Field(nullable=True)
    billed_dbus: pl.Float64
    billed_cost_usd: pl.Float64 = pa.Field(nullable=True)
    estimated_cost_usd: pl.Float64 = pa.Field(nullable=True)
    currency_code: str
    reason: str = pa.Field(isin=ATTRIBUTION_REASONS)
    team: str | None = pa.Field(nullable=True)
    tenant: str | None = pa.Field(nullable=True)
    project: str | None = pa.Field(nullable=True)
    cost_center: str | None = pa.Field(nullable=True)

    class Config:
        strict = True
        # task_run_id is null for idle/unattributed and for bill-metadata runs; run_id disambiguates those.
        unique = [
            "usage_date",
            "workspace_id",
            "resource_type",
            "resource_id",
            "hour_start",
            "sku_name",
            "consumer",
            "run_id",
            "task_run_id",
        ]

    @pa.dataframe_check(error="a run row needs a run_id or a job_id; idle/unattributed rows have neither")
    def consumer_ids(cls, data) -> pl.LazyFrame:
        has_ids = pl.col("run_id").is_not_null() | pl.col("job_id").is_not_null()
        return data.lazyframe.select((pl.col("consumer") == "run") == has_ids)


class CostByScope(_Daily):
    """mart.cost_by_scope: daily attributed $ per workspace × dimension × value ('(untagged)' included)."""

    workspace_id: str | None = pa.Field(nullable=True)
    dimension: str = pa.Field(isin=SCOPE_DIMENSIONS)
    value: str
    billed_dbus: pl.Float64
    billed_cost_usd: pl.Float64 = pa.Field(nullable=True)
    estimated_cost_usd: pl.Float64
    run_cost_usd: pl.Float64
    idle_cost_usd: pl.Float64
    unattributed_cost_usd: pl.Float64
    serving_cost_usd: pl.Float64
    currency_code: str

    class Config:
        strict = True
        unique = ["usage_date", "workspace_id", "dimension", "value"]


class ServingCosts(_Daily):
    """mart.serving_costs: endpoint bill split over requests by tokens, vs the token-price estimate."""

    workspace_id: str
    tenant: str
    agent: str
    user: str
    session: str
    endpoint_name: str
    model: str
    provider: str
    calls: pl.Int64 = pa.Field(ge=0)
    input_tokens: pl.Int64 = pa.Field(ge=0)
    output_tokens: pl.Int64 = pa.Field(ge=0)
    estimated_usd: pl.Float64 = pa.Field(nullable=True)
    actual_usd: pl.Float64 = pa.Field(nullable=True)
    actual_dbus: pl.Float64
    delta_usd: pl.Float64 = pa.Field(nullable=True)
    unpriced_calls: pl.Int64 = pa.Field(ge=0)
    currency_code: str

    class Config:
        strict = True
        unique = [
            "usage_date",
            "workspace_id",
            "tenant",
            "agent",
            "user",
            "session",
            "endpoint_name",
            "model",
            "provider",
        ]


class CloudCosts(_Daily):
    """raw.cloud_costs: the cloud provider's cost export (FOCUS or Azure cost details), one row per charge,
    with the tags Databricks puts on the VMs it launches (``ingest/cloud_bill.py``; docs/cloud-bill.md)."""

    provider: str = pa.Field(isin=CLOUDS)
    export_format: str = pa.Field(isin=CLOUD_BILL_FORMATS)
    source_file: str
    source_row: pl.Int64 = pa.Field(ge=1)  # the data row of the file (1 = the first row after the header)
    export_time: UTC_TS  # the file's modification time: the latest export of a day wins
    billing_account_id: str | None = pa.Field(nullable=True)
    sub_account_id: str | None = pa.Field(nullable=True)
    charge_period_start: UTC_TS
    charge_period_end: UTC_TS
    grain: str = pa.Field(isin=CLOUD_GRAINS)
    charge_category: str = pa.Field(isin=CLOUD_CHARGE_CATEGORIES)
    resource_id: str | None = pa.Field(nullable=True)
    service_name: str | None = pa.Field(nullable=True)
    sku_description: str | None = pa.Field(nullable=True)
    service_category: str = pa.Field(isin=CLOUD_SERVICE_CATEGORIES)
    pricing_model: str = pa.Field(isin=CLOUD_PRICING_MODELS)
    consumed_quantity: pl.Float64 = pa.Field(nullable=True)
    billed_cost: pl.Float64
    effective_cost: pl.Float64
    list_cost: pl.Float64 = pa.Field(nullable=True)
    currency_code: str
    tags: str  # canonical JSON object, the keys as the export spells them
    is_databricks: bool
    cluster_id: str | None = pa.Field(nullable=True)
    cluster_name: str | None = pa.Field(nullable=True)
    vendor: str | None = pa.Field(nullable=True)
    creator: str | None = pa.Field(nullable=True)
    job_id: pl.Int64 = pa.Field(nullable=True)
    run_name: str | None = pa.Field(nullable=True)
    instance_pool_id: str | None = pa.Field(nullable=True)
    sql_warehouse_id: str | None = pa.Field(nullable=True)

    class Config:
        strict = True
        unique = ["usage_date", "source_file", "source_row"]

    @pa.dataframe_check(error="charge_period_end must be after charge_period_start")
    def end_after_start(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("charge_period_end") > pl.col("charge_period_start"))


class ObservedVmPrices(_Daily):
    """mart.observed_vm_prices: the cloud bill's effective $ per VM-hour by node type and pricing model
    (spot market, reservations, savings plans) against the price sheet's (``costing/observed_prices.py``)."""

    cloud: str = pa.Field(isin=CLOUDS)
    node_type_id: str
    pricing_model: str = pa.Field(isin=CLOUD_PRICING_MODELS)
    currency_code: str
    charges: pl.Int64 = pa.Field(ge=1)
    node_hours: pl.Float64 = pa.Field(gt=0)
    billed_cost: pl.Float64
    effective_cost: pl.Float64
    effective_per_hour: pl.Float64
    sheet_per_hour: pl.Float64 = pa.Field(nullable=True, ge=0)
    ratio_to_sheet: pl.Float64 = pa.Field(nullable=True)

    class Config:
        strict = True
        unique = ["usage_date", "cloud", "node_type_id", "pricing_model", "currency_code"]


class VmReconciliation(_Daily):
    """mart.vm_reconciliation: estimated VM $ vs the cloud bill per cluster or pool × period × service
    category (``costing/vm_reconcile.py``)."""

    period_start: UTC_TS
    grain: str = pa.Field(isin=CLOUD_GRAINS)
    resource_kind: str = pa.Field(isin=CLOUD_RESOURCE_KINDS)
    resource_key: str
    service_category: str = pa.Field(isin=CLOUD_SERVICE_CATEGORIES)
    workspace_id: str | None = pa.Field(nullable=True)
    cloud_rows: pl.Int64 = pa.Field(ge=0)
    pricing_models: str | None = pa.Field(nullable=True)
    estimated_vm_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    estimated_disk_cost_usd: pl.Float64 = pa.Field(nullable=True, ge=0)
    billed_cost: pl.Float64 = pa.Field(nullable=True)
    effective_cost: pl.Float64 = pa.Field(nullable=True)
    list_cost: pl.Float64 = pa.Field(nullable=True)
    currency_code: str | None = pa.Field(nullable=True)
    ratio: pl.Float64 = pa.Field(nullable=True)
    delta: pl.Float64 = pa.Field(nullable=True)
    reason: str = pa.Field(isin=VM_RECONCILIATION_REASONS)

    class Config:
        strict = True
        unique = ["usage_date", "period_start", "resource_kind", "resource_key", "service_category", "currency_code"]


class AttributedCloudCosts(_Daily):
    """mart.attributed_cloud_costs: the cloud bill of Databricks resources handed out to runs, idle and
    unattributed by the estimate's VM-$ shares (``costing/cloud_attribute.py``)."""

    period_start: UTC_TS
    grain: str = pa.Field(isin=CLOUD_GRAINS)
    resource_kind: str = pa.Field(isin=CLOUD_RESOURCE_KINDS)
    resource_key: str
    service_category: str = pa.Field(isin=CLOUD_SERVICE_CATEGORIES)
    workspace_id: str | None = pa.Field(nullable=True)
    cluster_id: str | None = pa.Field(nullable=True)
    consumer: str = pa.Field(isin=CONSUMERS)
    run_id: pl.Int64 = pa.Field(nullable=True)
    task_run_id: pl.Int64 = pa.Field(nullable=True)
    job_id: pl.Int64 = pa.Field(nullable=True)
    share: pl.Float64 = pa.Field(ge=0, le=1 + 1e-9)
    billed_cost: pl.Float64
    effective_cost: pl.Float64
    currency_code: str
    reason: str = pa.Field(isin=CLOUD_ATTRIBUTION_REASONS)

    class Config:
        strict = True
        unique = [
            "usage_date",
            "period_start",
            "resource_kind",
            "resource_key",
            "service_category",
            "currency_code",
            "cluster_id",
            "consumer",
            "run_id",
            "task_run_id",
        ]


class RunTotalCosts(_Daily):
    """mart.run_total_costs: each run's share of both bills per day — the DBU bill's attributed $ plus the
    cloud bill's attributed effective $ (USD only)."""

    workspace_id: str | None = pa.Field(nullable=True)
    consumer: str = pa.Field(isin=CONSUMERS)
    run_id: pl.Int64 = pa.Field(nullable=True)
    task_run_id: pl.Int64 = pa.Field(nullable=True)
    job_id: pl.Int64 = pa.Field(nullable=True)
    dbu_cost_usd: pl.Float64
    cloud_cost_usd: pl.Float64
    total_cost_usd: pl.Float64
    currency_code: str = pa.Field(isin=[CURRENCY])

    class Config:
        strict = True
        unique = ["usage_date", "workspace_id", "consumer", "run_id", "task_run_id", "job_id"]
