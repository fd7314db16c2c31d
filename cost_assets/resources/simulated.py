"""Simulated resources: the generated world (cost_assets.simulation) behind the real resource interfaces."""

import datetime as dt

import dagster as dg
import polars as pl

from cost_assets.ingest import fetch, parse
from cost_assets.resources.billing import BillingSource
from cost_assets.resources.databricks import DatabricksWorkspace
from cost_assets.simulation import truth, views
from cost_assets.simulation.api import SimulatedApi
from cost_assets.simulation.world import WorldConfig


class SimulatedWorld(dg.Config):
    """Which world to generate; the same values give byte-identical data."""

    seed: int = 7
    scale: str = "small"  # tiny | small | medium | large
    start: str = "2026-01-01"  # first simulated UTC day (ISO date)
    days: int = 7
    cloud: str = "AZURE"
    tier: str = "PREMIUM"

    def world_config(self) -> WorldConfig:
        return WorldConfig(seed=self.seed, scale=self.scale, start=dt.date.fromisoformat(self.start),
                           days=self.days, cloud=self.cloud.upper(), tier=self.tier.upper())


class SimulatedWorkspace(DatabricksWorkspace):
    """The workspace of a generated world, answered in-process."""

    world: SimulatedWorld = SimulatedWorld()

    def api(self) -> fetch.WorkspaceApi:
        return SimulatedApi(self.world.world_config())

    def ground_truth_run_costs(self, days: list[dt.date]) -> pl.DataFrame:
        """What every run really cost on ``days`` (simulated worlds only): the yardstick of the estimate."""
        return truth.run_costs_for(self.world.world_config()).filter(pl.col("usage_date").is_in(days))


class SimulatedBillingSource(BillingSource):
    """The world's ``system.billing.usage`` rows; ``as_of`` hides records ingested after that date."""

    world: SimulatedWorld = SimulatedWorld()
    as_of: str | None = None  # ISO date; None shows every record, corrections included

    def usage(self, days: list[dt.date]) -> pl.DataFrame:
        rows = views.billing_usage_rows(self.world.world_config())
        wanted = {d.isoformat() for d in days}
        rows = [r for r in rows if r["usage_date"] in wanted
                and (self.as_of is None or r["ingestion_date"] <= self.as_of)]
        return parse.system_usage_frame(rows, "simulated")
