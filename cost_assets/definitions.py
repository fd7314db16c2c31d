"""The Dagster code location: ``build_defs()`` picks resources from the environment when *called*.

Nothing reads the environment at import except the one module-level ``defs = build_defs()`` that
``workspace.yaml`` loads; tests call ``build_defs({...})`` with their own mapping.
"""

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from cost_assets.assets import costs, raw, reconciliation, reference, reporting
from cost_assets.config import Settings
from cost_assets.resources.billing import CsvBillingSource
from cost_assets.resources.prices import BundledPriceCatalog
from cost_assets.resources.simulated import SimulatedBillingSource, SimulatedWorkspace, SimulatedWorld
from cost_assets.resources.warehouse import CostDuckDBIOManager
from cost_assets.schedules import daily_schedule
from cost_assets.sensors import late_billing_sensor

ASSETS = [raw.workspace_tables, raw.billing_usage, raw.serving_usage, reference.dbu_prices,
          reference.instance_types, costs.cluster_segments, costs.run_costs, reconciliation.reconcile_and_attribute,
          reporting.serving_costs, reporting.cost_by_scope]
DAILY_JOB = dg.define_asset_job(
    "daily_pipeline", selection=dg.AssetSelection.groups("raw", "mart"),
    description="Every daily table for one day, or for a range of days in one run (single-run backfill).")
REFERENCE_JOB = dg.define_asset_job(
    "reference_prices", selection=dg.AssetSelection.groups("ref"),
    description="The effective-dated price tables (unpartitioned).")


class ConfigurationError(ValueError):
    """A setting the project cannot act on, naming the variable to fix."""


def build_resources(settings: Settings) -> dict:
    """Resources for the settings: simulated unless a live workspace / billing source is configured."""
    if settings.databricks_host:
        raise ConfigurationError(
            "DATABRICKS_HOST is set but the live Databricks client is not available in this version; "
            "unset DATABRICKS_HOST (and DATABRICKS_TOKEN) to use the simulated workspace")
    world = SimulatedWorld(seed=settings.sim_seed, scale=settings.sim_scale,
                           start=settings.simulated_start.isoformat(), days=settings.sim_days,
                           cloud=settings.cloud, tier=settings.tier)
    source = settings.billing_source
    if source == "simulated":
        billing = SimulatedBillingSource(world=world)
    elif source.startswith("csv:"):
        billing = CsvBillingSource(path=source.removeprefix("csv:"))
    else:
        raise ConfigurationError(
            f"COST_ASSETS_BILLING_SOURCE={source!r} is not available here; use 'simulated' or 'csv:<path or glob>'")
    Path(settings.duckdb_path).parent.mkdir(parents=True, exist_ok=True)
    return {
        "workspace": SimulatedWorkspace(world=world),
        "billing": billing,
        "prices": BundledPriceCatalog(overrides_path=settings.prices_path, tier=settings.tier,
                                      cloud=settings.cloud),
        "io_manager": CostDuckDBIOManager(database=settings.duckdb_path),
    }


def build_defs(environ: Mapping[str, str] | None = None) -> dg.Definitions:
    """The project's Definitions for an environment (``os.environ`` when not given)."""
    settings = Settings.from_environ(os.environ if environ is None else environ)
    return dg.Definitions(assets=ASSETS, jobs=[DAILY_JOB, REFERENCE_JOB],
                          schedules=[daily_schedule(DAILY_JOB)], sensors=[late_billing_sensor],
                          resources=build_resources(settings))


defs = build_defs()
