"""The project's vocabulary: every closed set of values a table column can hold, defined once.

The pandera contracts (``schemas.py``) check columns against these lists and the costing modules produce
and compare the same strings, so a value added or renamed here is added or renamed everywhere. Plain
constants only (no pandera, no Dagster), so anything can import this module cheaply.
"""

# --- money and clouds ----------------------------------------------------------------------------------

# Every money column is in this currency (``currency_code`` sits next to each); price rows in another
# currency are not used.
CURRENCY = "USD"
# The clouds Databricks runs on: the ``cloud`` of clusters, bills and price rows (upper case, as the bill).
CLOUDS = ["AZURE", "AWS", "GCP"]
# Workspace pricing tiers; a SKU name starts with its tier (``PREMIUM_JOBS_COMPUTE``).
TIERS = ["STANDARD", "PREMIUM", "ENTERPRISE"]

# --- what the APIs say (values as the REST APIs and system tables spell them) ----------------------------

# Cluster event types of the clusters/events API (their order is the timeline's Int8 code of each type).
EVENT_TYPES = [
    "ADD_NODES_FAILED",
    "AUTOMATIC_CLUSTER_UPDATE",
    "AUTOSCALING_BACKOFF",
    "AUTOSCALING_FAILED",
    "AUTOSCALING_STATS_REPORT",
    "CLUSTER_MIGRATED",
    "CREATING",
    "DBFS_DOWN",
    "DECOMMISSION_ENDED",
    "DECOMMISSION_STARTED",
    "DEFERRED_POLICY_ENFORCEMENT_FAILED",
    "DEFERRED_POLICY_ENFORCEMENT_SCHEDULED",
    "DID_NOT_EXPAND_DISK",
    "DRIVER_HEALTHY",
    "DRIVER_NOT_RESPONDING",
    "DRIVER_UNAVAILABLE",
    "EDITED",
    "EXPANDED_DISK",
    "FAILED_TO_EXPAND_DISK",
    "INIT_SCRIPTS_FINISHED",
    "INIT_SCRIPTS_STARTED",
    "METASTORE_DOWN",
    "NODES_LOST",
    "NODE_BLACKLISTED",
    "NODE_EXCLUDED_DECOMMISSIONED",
    "PINNED",
    "RESIZING",
    "RESTARTING",
    "RUNNING",
    "SPARK_EXCEPTION",
    "STARTING",
    "TERMINATING",
    "UC_VOLUME_MISCONFIGURED",
    "UNPINNED",
    "UPSIZE_COMPLETED",
]
# ``record_type`` of a billing usage row: a RETRACTION negates its ORIGINAL, a RESTATEMENT replaces it.
RECORD_TYPES = ["ORIGINAL", "RETRACTION", "RESTATEMENT"]
# Where ``raw.billing_usage`` rows came from (``billing_source``), one name per billing source.
BILLING_SOURCES = ["simulated", "csv", "account_api", "system_tables"]
# What a task run ran on (``raw.job_runs.compute_type``), as parsed from the run payload.
COMPUTE_TYPES = ["job_cluster", "all_purpose", "new_cluster", "serverless"]
# The Jobs API ``run_type`` of a run.
RUN_TYPES = ["JOB_RUN", "WORKFLOW_RUN", "SUBMIT_RUN"]
# The Jobs API ``life_cycle_state`` of a task run.
LIFE_CYCLE_STATES = [
    "QUEUED",
    "PENDING",
    "RUNNING",
    "TERMINATING",
    "TERMINATED",
    "SKIPPED",
    "INTERNAL_ERROR",
    "BLOCKED",
    "WAITING_FOR_RETRY",
]
# The clusters API ``availability`` of a cluster's VMs (spot-type ones make workers spot).
AVAILABILITIES = [
    "ON_DEMAND",
    "SPOT",
    "SPOT_WITH_FALLBACK",
    "ON_DEMAND_AZURE",
    "SPOT_AZURE",
    "SPOT_WITH_FALLBACK_AZURE",
    "ON_DEMAND_GCP",
    "PREEMPTIBLE_GCP",
    "PREEMPTIBLE_WITH_FALLBACK_GCP",
]
# The clusters API ``runtime_engine``.
RUNTIME_ENGINES = ["STANDARD", "PHOTON"]

# --- why a cluster's details are not from clusters/get ----------------------------------------------------

# The cluster was purged after its retention; fetching rebuilt it from its run's ``new_cluster`` spec and the
# engine gives it a timeline from that spec when it has no events (``costing/spec.py``).
CLUSTER_NOT_FOUND = "cluster_not_found"
# Every value of ``raw.clusters.reason`` (null: the details are from clusters/get).
CLUSTER_REASONS = [CLUSTER_NOT_FOUND]

# --- cluster segments --------------------------------------------------------------------------------------

# What a segment describes: a cluster, or the idle VMs of an instance pool (``cluster_id`` is the pool id).
SEGMENT_KINDS = ["cluster", "pool"]
# The states a segment can be in: the up states of the cluster state machine plus POOL_IDLE. A down
# (terminated) cluster costs nothing and has no segment; the timeline codes it as TERMINATED internally.
SEGMENT_STATES = ["CREATING", "STARTING", "RESTARTING", "RUNNING", "RESIZING", "POOL_IDLE"]

# --- who owns the money ------------------------------------------------------------------------------------

# The tag keys read from job, cluster and pool tags and the bill's custom_tags, each a column of the tagged
# tables (``raw.jobs``, ``mart.run_costs``, ``mart.attributed_costs``) and a dimension of cost_by_scope.
TAG_DIMENSIONS = ["team", "tenant", "project", "cost_center"]
# The dimensions of ``mart.cost_by_scope``: the tags, plus the job and the user the money counts for.
SCOPE_DIMENSIONS = [*TAG_DIMENSIONS, "job", "user"]
# The value of a dimension (or a serving request's tenant, agent, user, model) when nothing names one, so
# every dimension still sums to the same total.
UNTAGGED = "(untagged)"
# Consumers of estimated cost (``mart.estimated_costs`` / ``mart.run_costs``): a run, or a cluster's idle time.
ESTIMATE_CONSUMERS = ["run", "idle"]
# Consumers of billed cost (``mart.attributed_costs``): the above, or ``unattributed`` when nothing in the
# estimate or the bill's metadata says whose money it is.
CONSUMERS = [*ESTIMATE_CONSUMERS, "unattributed"]

# --- reconciliation and attribution ------------------------------------------------------------------------

# The kind of resource a billed row is for (``costing/reconcile.py`` decides it from the bill's ids).
RESOURCE_TYPES = ["cluster", "warehouse", "endpoint", "serverless"]
# ``mart.reconciliation.reason``, in precedence order (the first that applies wins; the meaning of each
# is in ``costing/reconcile.py``).
# ``NOT_CONFIGURED``: a bill row of a workspace the account's workspaces file does not list.
NOT_CONFIGURED = "workspace_not_configured"
RECONCILIATION_REASONS = [
    "unpriced",
    "sku_mismatch",
    NOT_CONFIGURED,
    "no_estimate",
    "no_billing",
    "correction",
    "mismatch",
    "ok",
]
# ``mart.attributed_costs.reason``: the reconciliation reason, or what the attribution path says instead
# (``costing/attribute.py``): an endpoint (serving), serverless compute, a warehouse, no usable share.
ATTRIBUTION_REASONS = [*RECONCILIATION_REASONS, "serving", "serverless", "warehouse", "no_share"]

# --- cost anomalies (costing/anomalies.py, docs/anomalies.md) ----------------------------------------------

# The monitored series of ``mart.cost_anomalies``: the layers (account, workspace × SKU family), the scope
# dimensions as cost_by_scope counts them, and model serving per endpoint × user.
ANOMALY_MONITORS = ["account", "workspace_sku", *TAG_DIMENSIONS, "job", "user", "endpoint_user"]
# ``state`` of a scored series-day.
ANOMALY_STATES = ["normal", "high", "low", "insufficient_history", "new_spender"]
# ``baseline``: how expected was computed (null when there is none).
ANOMALY_BASELINES = ["weekday", "rolling_28d"]
# ``status`` of a day inside an anomaly episode (null outside episodes).
ANOMALY_STATUSES = ["open", "escalated", "closed"]
# What a person said about an anomaly (``cost-assets anomaly ack|planned``): acknowledged anomalies are
# not alerted again unless they escalate; a planned anomaly's days are left out of the baselines.
ANOMALY_FEEDBACK = ["acknowledged", "planned"]
# The kinds of anomaly the simulated world plants (``simulation/planted.py``; ``sim.anomaly_detection``).
PLANTED_ANOMALY_KINDS = ["runaway_job", "weekend_cluster", "serving_spike"]

# --- the cloud bill (docs/cloud-bill.md) -------------------------------------------------------------------

# The shapes of cloud cost export ``raw.cloud_costs`` reads: FOCUS (AWS, Azure, GCP) and Azure's own cost
# details export (actual or amortized).
CLOUD_BILL_FORMATS = ["focus", "azure_cost"]
# What a cloud charge is for (``ingest/cloud_bill.py`` decides it from the service, meter and resource).
CLOUD_SERVICE_CATEGORIES = ["vm_compute", "managed_disk", "network", "public_ip", "storage", "other"]
# How a cloud charge was priced.
CLOUD_PRICING_MODELS = ["on_demand", "spot", "reservation", "savings_plan", "other"]
# FOCUS ``ChargeCategory`` (Azure's ChargeType is mapped onto it).
CLOUD_CHARGE_CATEGORIES = ["Usage", "Purchase", "Tax", "Credit", "Adjustment"]
# The length of a charge period: an hour, a day, or longer (a monthly purchase).
CLOUD_GRAINS = ["hour", "day", "period"]
# What a Databricks cloud charge is matched to: a cluster, an instance pool, a SQL warehouse, or nothing
# (a Databricks resource without a cluster, pool or warehouse tag).
CLOUD_RESOURCE_KINDS = ["cluster", "pool", "warehouse", "untagged"]
# ``mart.vm_reconciliation.reason``, in precedence order (meaning in ``costing/vm_reconcile.py``).
VM_RECONCILIATION_REASONS = [
    "untagged",
    "not_estimated_component",
    "other_currency",
    "no_cloud_bill",
    "no_estimate",
    "ok",
    "spot_price",
    "commitment_discount",
    "mismatch",
]
# ``mart.attributed_cloud_costs.reason``: by what the charge was handed out (``costing/cloud_attribute.py``).
CLOUD_ATTRIBUTION_REASONS = ["hour_share", "day_share", "no_estimate", "untagged", "warehouse"]
# The bill's ``identity_metadata`` fields raw/billing_usage keeps, in the serving core's user fallback order
# (the first one set wins; a request's own ``usage_context.user`` wins over all of them).
IDENTITY_FIELDS = ("run_as", "run_by", "created_by", "owned_by")
