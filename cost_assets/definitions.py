"""The Dagster code location: ``build_defs()`` picks resources from the environment when *called*.

Nothing reads the environment at import except the one module-level ``defs = build_defs()`` that
``workspace.yaml`` loads; tests call ``build_defs({...})`` with their own mapping.
"""

import os
from collections.abc import Mapping

import dagster as dg

from cost_assets import catalog, partitions
from cost_assets.alerting import build_budget_sensor, build_cost_anomaly_sensor, build_run_failure_sensor
from cost_assets.assets import (
    accuracy,
    budgets,
    cloud,
    cloud_accuracy,
    costs,
    raw,
    reconciliation,
    reference,
    reporting,
)
from cost_assets.assets.anomalies import AnomalyDetector, cost_anomalies
from cost_assets.assets.anomaly_accuracy import anomaly_detection
from cost_assets.assets.export_postgres import PostgresTarget, build_postgres_export
from cost_assets.assets.exports_delivery import FocusExport, ObservabilityService, focus_files, observability_service
from cost_assets.assets.report_html import ReportFiles, build_report_html
from cost_assets.budgets import BudgetError
from cost_assets.budgets import load as load_budgets
from cost_assets.cloud_sensor import cloud_bill_sensor
from cost_assets.config import BILLING_SOURCES, SIMULATED_CLOUD_BILLS, ConfigurationError, Settings
from cost_assets.ingest.cloud_bill import parse_setting
from cost_assets.resources.billing import (
    AccountApiBillingSource,
    BillingSource,
    CsvBillingSource,
    SystemTablesBillingSource,
)
from cost_assets.resources.cloud_bill import CloudBill
from cost_assets.resources.databricks import AccountWorkspace, DatabricksConnection, LiveAccount, LiveWorkspace
from cost_assets.resources.prices import AzureRetailPriceCatalog, BundledPriceCatalog, SystemTablesPriceCatalog
from cost_assets.resources.simulated import (
    SimulatedBillingSource,
    SimulatedCloudBill,
    SimulatedWorkspace,
    SimulatedWorld,
)
from cost_assets.resources.storage import storage_assets, storage_resources
from cost_assets.schedules import daily_schedule
from cost_assets.sensors import late_billing_sensor
from cost_assets.workspaces import WorkspaceEntry, WorkspacesError
from cost_assets.workspaces import load as load_workspaces

ASSETS = [
    raw.workspace_tables,
    raw.billing_usage,
    raw.serving_usage,
    raw.serving_entities,
    raw.ai_gateway_usage,
    reference.dbu_prices,
    reference.instance_types,
    costs.estimate,
    reconciliation.reconcile_and_attribute,
    reporting.serving_costs,
    reporting.cost_by_scope,
    cost_anomalies,
]
# Only a simulated workspace has a ground truth to measure the estimate against.
SIMULATION_ASSETS = [accuracy.run_cost_accuracy, anomaly_detection]
DAILY_JOB = dg.define_asset_job(
    "daily_pipeline",
    selection=dg.AssetSelection.all(),
    description="Every table (the day's price snapshot, the raw tables, the marts) for one day, or for a "
    "range of days in one run (single-run backfill).",
)


ACCOUNT_HOSTS = {
    "AZURE": "https://accounts.azuredatabricks.net",
    "AWS": "https://accounts.cloud.databricks.com",
    "GCP": "https://accounts.gcp.databricks.com",
}


def _connection(settings: Settings, host: str, where: str) -> DatabricksConnection:
    """Host and limits as plain config (shown in the UI); secrets as dg.EnvVar, read when a run starts."""
    if settings.token_variable:
        secrets = {"token": dg.EnvVar(settings.token_variable)}
    elif settings.has_client_credentials:
        secrets = {
            "client_id": dg.EnvVar("DATABRICKS_CLIENT_ID"),
            "client_secret": dg.EnvVar("DATABRICKS_CLIENT_SECRET"),
        }
    else:
        raise ConfigurationError(
            [
                f"{where} is set but there are no credentials: set DATABRICKS_TOKEN, or "
                "DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET (OAuth M2M)"
            ]
        )
    return DatabricksConnection(host=host, max_requests_per_second=settings.databricks_rate_limit, **secrets)


def _billing(
    settings: Settings, world: SimulatedWorld, workspace: DatabricksConnection | None, live: bool
) -> BillingSource:
    """The account's bill, fetched once per run whatever the number of workspaces. ``live``: the workspaces
    are live (DATABRICKS_HOST or a workspaces file), so a simulated bill is never the default."""
    source = settings.billing_source or (
        "simulated"
        if not live
        else "system_tables"
        if workspace is not None and settings.databricks_warehouse_id
        else None
    )
    if source is None:
        raise ConfigurationError(
            [
                f"{'DATABRICKS_HOST' if workspace is not None else 'COST_ASSETS_WORKSPACES'} is set, so the bill "
                "must come from the same account: set DATABRICKS_HOST and DATABRICKS_WAREHOUSE_ID (a SQL "
                "warehouse that reads system.billing.usage), or COST_ASSETS_BILLING_SOURCE=account_api (with "
                "DATABRICKS_ACCOUNT_ID) or csv:<path or glob>"
            ]
        )
    if source == "simulated":
        return SimulatedBillingSource(world=world, workspaces=settings.sim_workspaces)
    if source.startswith("csv:"):
        return CsvBillingSource(path=source.removeprefix("csv:"))
    if source == "system_tables":
        if workspace is None or not settings.databricks_warehouse_id:
            raise ConfigurationError(
                [
                    "COST_ASSETS_BILLING_SOURCE='system_tables': needs DATABRICKS_HOST, "
                    "credentials and DATABRICKS_WAREHOUSE_ID (a SQL warehouse that can read "
                    "system.billing)"
                ]
            )
        return SystemTablesBillingSource(
            connection=workspace, warehouse_id=settings.databricks_warehouse_id, pushdown=settings.sql_pushdown
        )
    if source == "account_api":
        if not settings.databricks_account_id:
            raise ConfigurationError(
                [
                    "COST_ASSETS_BILLING_SOURCE='account_api': needs DATABRICKS_ACCOUNT_ID "
                    "(and account-level credentials)"
                ]
            )
        host = settings.databricks_account_host or ACCOUNT_HOSTS[settings.cloud]
        return AccountApiBillingSource(
            connection=_connection(settings, host, "DATABRICKS_ACCOUNT_ID"), account_id=settings.databricks_account_id
        )
    raise ConfigurationError([f"COST_ASSETS_BILLING_SOURCE={source!r}: allowed: {BILLING_SOURCES}"])


def _prices(settings: Settings) -> BundledPriceCatalog:
    """The bundled sheet (+ overrides); with COST_ASSETS_AZURE_REGION, Azure VM prices from the Retail API."""
    common = {"overrides_path": settings.prices_path, "tier": settings.tier, "cloud": settings.cloud}
    if settings.azure_region:
        url = {"prices_url": settings.azure_prices_url} if settings.azure_prices_url else {}
        return AzureRetailPriceCatalog(region=settings.azure_region, **url, **common)
    return BundledPriceCatalog(**common)


def _account(settings: Settings, entries: list[WorkspaceEntry]) -> LiveAccount:
    """The workspaces file's workspaces: each its own connection (host and rate limit as plain config, the
    secrets as dg.EnvVar of the variables the entry names, read when a run starts)."""
    members = []
    for entry in entries:
        if entry.token_env:
            secrets = {"token": dg.EnvVar(entry.token_env)}
        else:
            secrets = {"client_id": dg.EnvVar(entry.client_id_env), "client_secret": dg.EnvVar(entry.client_secret_env)}
        rate = settings.databricks_rate_limit if entry.rate_limit is None else entry.rate_limit
        connection = DatabricksConnection(
            host=entry.host,
            max_requests_per_second=rate,
            credential_variables=f"{' and '.join(entry.credential_variables)} (workspace {entry.name!r} of "
            "COST_ASSETS_WORKSPACES)",
            **secrets,
        )
        members.append(
            AccountWorkspace(
                name=entry.name,
                connection=connection,
                workspace_id=entry.workspace_id,
                cloud=entry.cloud,
                region=entry.region,
                warehouse_id=entry.warehouse_id,
            )
        )
    return LiveAccount(workspaces=members, max_concurrent=settings.workspace_concurrency)


def workspaces_of(settings: Settings, environ: Mapping[str, str]) -> list[WorkspaceEntry]:
    """The workspaces file's entries (none without COST_ASSETS_WORKSPACES); a bad file stops the definitions
    from loading with one line per problem, before anything is read or written."""
    if not settings.workspaces_path:
        return []
    try:
        return load_workspaces(settings.workspaces_path, environ)
    except WorkspacesError as e:
        raise ConfigurationError(e.problems) from None


def build_resources(settings: Settings, workspaces: list[WorkspaceEntry] | None = None) -> dict:
    """Resources for the settings: the workspaces file's workspaces, or the live workspace when DATABRICKS_HOST
    is set, else the simulated one (an account of COST_ASSETS_SIM_WORKSPACES workspaces)."""
    # The simulated world answers for any day from its creation (2025-07-01) on; the run chooses the days.
    world = SimulatedWorld(seed=settings.sim_seed, scale=settings.sim_scale, cloud=settings.cloud, tier=settings.tier)
    if settings.databricks_host:
        connection = _connection(settings, settings.databricks_host, "DATABRICKS_HOST")
        workspace = LiveWorkspace(
            connection=connection,
            cloud=settings.cloud,
            workspace_id=settings.databricks_workspace_id,
            warehouse_id=settings.databricks_warehouse_id,
        )
    else:
        connection = None
        workspace = SimulatedWorkspace(
            world=world, workspaces=settings.sim_workspaces, max_concurrent=settings.workspace_concurrency
        )
    if workspaces:  # DATABRICKS_HOST, if set too, is then only the workspace whose warehouse reads the bill
        workspace = _account(settings, workspaces)
    live = connection is not None or bool(workspaces)
    billing, prices = _billing(settings, world, connection, live), _prices(settings)
    if isinstance(billing, SystemTablesBillingSource):  # the estimate priced like the bill: the account's list
        prices = SystemTablesPriceCatalog(
            base=prices,
            connection=billing.connection,
            warehouse_id=billing.warehouse_id,
            tier=settings.tier,
            cloud=settings.cloud,
        )
    return {
        "workspace": workspace,
        "billing": billing,
        "prices": prices,
        **storage_resources(settings.ledger, settings.shrink_threshold),
    }


def _exports(settings: Settings, resources: dict) -> list[dg.AssetsDefinition]:
    """The configured ``export`` assets (none by default), with their resources added to ``resources``."""
    assets = []
    if settings.observability_url:
        resources["observability_endpoint"] = ObservabilityService(
            url=settings.observability_url,
            token=dg.EnvVar("COST_ASSETS_OBSERVABILITY_TOKEN"),
            batch_size=settings.observability_batch_size,
        )
        assets.append(observability_service)
    if settings.focus_export:
        resources["focus_export"] = FocusExport(
            directory=settings.focus_dir, cloud=settings.cloud, region=settings.azure_region
        )
        assets.append(focus_files)
    return assets


def build_defs(environ: Mapping[str, str] | None = None) -> dg.Definitions:
    """The project's Definitions for an environment (``os.environ`` when not given)."""
    environ = os.environ if environ is None else environ
    settings = Settings.from_environ(environ)
    resources = build_resources(settings, workspaces_of(settings, environ))
    simulated = isinstance(resources["workspace"], SimulatedWorkspace)
    optional = SIMULATION_ASSETS if simulated else []
    sensors = [
        late_billing_sensor,
        build_run_failure_sensor(settings.alert_store_path),
        build_cost_anomaly_sensor(settings.ledger, settings.alert_store_path),
    ]
    resources["anomaly_detector"] = AnomalyDetector(
        k=settings.anomaly_k,
        floor_usd=settings.anomaly_floor_usd,
        pct=settings.anomaly_pct,
        feedback_store=settings.alert_store_path,
    )
    if settings.budgets_path:
        try:  # a bad budgets file stops the definitions from loading, before anything is read or written
            load_budgets(settings.budgets_path)
        except BudgetError as e:
            raise ConfigurationError(e.problems) from None
        resources["budgets"] = budgets.BudgetBook(path=settings.budgets_path)
        optional = [*optional, budgets.budget_status_asset]
        sensors.append(build_budget_sensor(settings.ledger, settings.alert_store_path, settings.budgets_path))
    if settings.cloud_bill:  # the cloud provider's bill: registered only when its exports are named
        if settings.cloud_bill in SIMULATED_CLOUD_BILLS:
            shape = SIMULATED_CLOUD_BILLS[settings.cloud_bill]
            resources["cloud_bill"] = SimulatedCloudBill(
                shape=shape, world=resources["workspace"].world, workspaces=settings.sim_workspaces
            )
            optional = [*optional, cloud_accuracy.vm_cost_accuracy]
        else:
            fmt, path = parse_setting(settings.cloud_bill)
            resources["cloud_bill"] = CloudBill(path=path, format=fmt)
        optional = [*optional, cloud.cloud_costs, cloud.reconcile_and_attribute_cloud]
        sensors.append(cloud_bill_sensor)
    optional = [*optional, *_exports(settings, resources)]
    if settings.postgres_url_set:  # last: it reads whichever optional marts (budgets, anomalies) are present
        resources["postgres_target"] = PostgresTarget(url=dg.EnvVar("COST_ASSETS_POSTGRES_URL"))
        optional = [*optional, build_postgres_export({key for asset in ASSETS + optional for key in asset.keys})]
    # Last: the HTML report reads whichever optional marts (budgets, anomalies) are present.
    resources["report_files"] = ReportFiles(directory=settings.report_dir, database=settings.ledger)
    optional = [*optional, build_report_html({key for asset in ASSETS + optional for key in asset.keys})]
    return dg.Definitions(
        assets=storage_assets(
            catalog.describe(partitions.starting(ASSETS + optional, settings.partition_start)), settings.ledger
        ),
        jobs=[DAILY_JOB],
        schedules=[daily_schedule(DAILY_JOB)],
        sensors=sensors,
        resources=resources,
    )


defs = build_defs()
