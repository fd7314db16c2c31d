-- The finops schema: the per-run ledger under the original calculator's columns, and the marts beside it.
-- Money is NUMERIC (USD, currency_code beside it); timestamps are naive UTC; tag maps are jsonb.
-- Each table is replaced one day at a time (its date column), so every table is indexed by it.
-- Keys are the marts' keys; NULLS NOT DISTINCT (PostgreSQL 15) makes a null id part of the key.

CREATE TABLE finops.calculator_run_costs (
    reporting_date            DATE    NOT NULL,
    databricks_run_id         BIGINT  NOT NULL,
    calculator_id             TEXT,
    cluster_id                TEXT,
    total_cost_usd            NUMERIC,
    dbu_cost_usd              NUMERIC,
    vm_total_cost_usd         NUMERIC,
    task_run_id               BIGINT,
    task_key                  TEXT,
    job_id                    BIGINT,
    workspace_id              TEXT,
    runtime_hours             DOUBLE PRECISION,
    dbus                      NUMERIC,
    billed_dbus               NUMERIC NOT NULL,
    estimated_dbu_cost_usd    NUMERIC,
    estimated_vm_cost_usd     NUMERIC,
    estimated_total_cost_usd  NUMERIC,
    billed_dbu_cost_usd       NUMERIC,
    cost_basis                TEXT    NOT NULL CHECK (cost_basis IN ('billed', 'estimated')),
    unpriced                  BOOLEAN NOT NULL,
    currency_code             TEXT    NOT NULL,
    team                      TEXT,
    tenant                    TEXT,
    project                   TEXT,
    cost_center               TEXT,
    tags                      JSONB   NOT NULL,
    calculation_version       TEXT    NOT NULL,
    UNIQUE NULLS NOT DISTINCT (reporting_date, workspace_id, cluster_id, databricks_run_id, task_run_id)
);

CREATE TABLE finops.attributed_costs (
    usage_date          DATE      NOT NULL,
    hour_start          TIMESTAMP NOT NULL,
    workspace_id        TEXT,
    resource_type       TEXT      NOT NULL,
    resource_id         TEXT      NOT NULL,
    sku_name            TEXT,
    consumer            TEXT      NOT NULL,
    run_id              BIGINT,
    task_run_id         BIGINT,
    job_id              BIGINT,
    billed_dbus         NUMERIC   NOT NULL,
    billed_cost_usd     NUMERIC,
    estimated_cost_usd  NUMERIC,
    currency_code       TEXT      NOT NULL,
    reason              TEXT      NOT NULL,
    team                TEXT,
    tenant              TEXT,
    project             TEXT,
    cost_center         TEXT,
    UNIQUE NULLS NOT DISTINCT (usage_date, workspace_id, resource_type, resource_id, hour_start, sku_name,
                               consumer, run_id, task_run_id)
);

CREATE TABLE finops.cost_by_scope (
    usage_date             DATE    NOT NULL,
    workspace_id           TEXT,
    dimension              TEXT    NOT NULL,
    value                  TEXT    NOT NULL,
    billed_dbus            NUMERIC NOT NULL,
    billed_cost_usd        NUMERIC,
    estimated_cost_usd     NUMERIC NOT NULL,
    run_cost_usd           NUMERIC NOT NULL,
    idle_cost_usd          NUMERIC NOT NULL,
    unattributed_cost_usd  NUMERIC NOT NULL,
    serving_cost_usd       NUMERIC NOT NULL,
    currency_code          TEXT    NOT NULL,
    UNIQUE NULLS NOT DISTINCT (usage_date, workspace_id, dimension, value)
);

CREATE TABLE finops.serving_costs (
    usage_date      DATE    NOT NULL,
    workspace_id    TEXT    NOT NULL,
    tenant          TEXT    NOT NULL,
    agent           TEXT    NOT NULL,
    "user"          TEXT    NOT NULL,
    endpoint_name   TEXT    NOT NULL,
    model           TEXT    NOT NULL,
    calls           BIGINT  NOT NULL,
    input_tokens    BIGINT  NOT NULL,
    output_tokens   BIGINT  NOT NULL,
    estimated_usd   NUMERIC,
    actual_usd      NUMERIC,
    actual_dbus     NUMERIC NOT NULL,
    delta_usd       NUMERIC,
    unpriced_calls  BIGINT  NOT NULL,
    currency_code   TEXT    NOT NULL,
    UNIQUE (usage_date, workspace_id, tenant, agent, "user", endpoint_name, model)
);

CREATE TABLE finops.budget_status (
    usage_date              DATE    NOT NULL,
    workspace_id            TEXT,
    budget                  TEXT    NOT NULL,
    scope                   TEXT    NOT NULL,
    period                  TEXT    NOT NULL,
    period_start            DATE    NOT NULL,
    period_end              DATE    NOT NULL,
    cost_basis              TEXT    NOT NULL,
    amount_usd              NUMERIC NOT NULL,
    currency_code           TEXT    NOT NULL,
    day_spend_usd           NUMERIC NOT NULL,
    day_basis               TEXT    NOT NULL,
    spend_to_date_usd       NUMERIC NOT NULL,
    billed_to_date_usd      NUMERIC NOT NULL,
    estimated_to_date_usd   NUMERIC NOT NULL,
    estimated_days          BIGINT  NOT NULL,
    missing_days            BIGINT  NOT NULL,
    forecast_usd            NUMERIC NOT NULL,
    remaining_usd           NUMERIC NOT NULL,
    pct_used                DOUBLE PRECISION NOT NULL,
    forecast_pct            DOUBLE PRECISION NOT NULL,
    threshold_crossed_pct   DOUBLE PRECISION,
    first_crossed_on        DATE,
    state                   TEXT    NOT NULL,
    owner                   TEXT,
    channel                 TEXT,
    UNIQUE (usage_date, budget)
);

CREATE TABLE finops.cost_anomalies (
    usage_date           DATE    NOT NULL,
    scored_date          DATE    NOT NULL,
    monitor              TEXT    NOT NULL,
    value                TEXT    NOT NULL,
    scope                TEXT    NOT NULL,
    actual_usd           NUMERIC NOT NULL,
    expected_usd         NUMERIC,
    mad_usd              NUMERIC,
    lower_usd            NUMERIC,
    upper_usd            NUMERIC,
    impact_usd           NUMERIC,
    threshold_usd        NUMERIC,
    baseline             TEXT,
    baseline_points      INTEGER NOT NULL,
    state                TEXT    NOT NULL,
    alertable            BOOLEAN NOT NULL,
    planned              BOOLEAN NOT NULL,
    unpriced             BOOLEAN NOT NULL,
    anomaly_id           TEXT,
    opened_on            DATE,
    opening_impact_usd   NUMERIC,
    status               TEXT,
    feedback             TEXT,
    top_contributors     JSONB,
    UNIQUE (usage_date, scored_date, monitor, value)
);

-- The UNIQUE constraints' indexes lead with the date column, which serves the per-day delete and the
-- verification query (SELECT COUNT(*), SUM(total_cost_usd) ... WHERE reporting_date = ...).
