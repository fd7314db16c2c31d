"""Simulated resources: the generated world (cost_assets.simulation) behind the real resource interfaces.

The world is anchored to the calendar (a day's content depends on the seed, the scale and the date only),
so the resources answer for whatever days they are asked, e.g. a partition materialized from the UI: each
call generates the world of a window around its days, and any window holding a day gives the same rows.
"""

import datetime as dt
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import polars as pl

from cost_assets.ingest import cloud_bill, fetch, parse
from cost_assets.ingest.serving_sources import entities_by_day, served_entities_frame
from cost_assets.resources.billing import BillingSource
from cost_assets.resources.cloud_bill import CloudBill
from cost_assets.resources.databricks import DatabricksWorkspace
from cost_assets.simulation import cloud_bill as sim_cloud_bill
from cost_assets.simulation import planted, truth, views
from cost_assets.simulation.api import SimulatedApi
from cost_assets.simulation.world import WorldConfig, account_member, ground_truth_anomalies

# Days generated before the first asked day: runs/list looks back two days by default (a run crosses at
# most one midnight, so they change nothing in the day's tables, but the listing is then the real one).
LOOKBACK_DAYS = 1
# Any day: a simulated workspace's id does not depend on the days asked for.
ANY_DAY = dt.date(2026, 1, 1)


class SimulatedWorld(dg.Config):
    """Which world to generate; the same values give byte-identical data for every day."""

    seed: int = 7
    scale: str = "small"  # tiny | small | medium | large
    cloud: str = "AZURE"
    tier: str = "PREMIUM"
    # The planted cost anomalies (simulation/planted.py) with their ground truth.
    anomalies: bool = True
    # Accepted so existing run configs still load; no effect: a day's content does not depend on a window,
    # and the resources generate the window of the days they are asked for.
    start: str | None = None
    days: int | None = None
    # Which workspace of a simulated account (``world.account_member``): 0 is the one-workspace world.
    workspace_index: int = 0

    def config_for(self, days: Sequence[dt.date]) -> WorldConfig:
        """The world covering ``days`` (and LOOKBACK_DAYS before them; the generator adds the day before)."""
        first = min(days) - dt.timedelta(days=LOOKBACK_DAYS)
        config = WorldConfig(
            seed=self.seed,
            scale=self.scale,
            start=first,
            days=(max(days) - first).days + 1,
            cloud=self.cloud.upper(),
            tier=self.tier.upper(),
            anomalies=self.anomalies,
        )
        return account_member(config, self.workspace_index)

    def member(self, index: int) -> "SimulatedWorld":
        """Workspace ``index`` of the simulated account this world is the first workspace of."""
        return self.model_copy(update={"workspace_index": index})


class SimulatedWorkspace(DatabricksWorkspace):
    """The workspace of a generated world, answered in-process for any days."""

    world: SimulatedWorld = SimulatedWorld()
    # COST_ASSETS_SIM_WORKSPACES: how many workspaces the simulated account has (1: the one workspace, as
    # always). With more, workspace k is ``world.member(k)`` and the bill also names one workspace that is
    # not configured (``SimulatedBillingSource.workspaces``).
    workspaces: int = 1

    def members(self) -> list[DatabricksWorkspace]:
        if self.workspaces == 1:
            return [self]
        return [
            SimulatedWorkspace(world=self.world.member(k), name=f"simulated-{k}", max_concurrent=self.max_concurrent)
            for k in range(self.workspaces)
        ]

    def configured_workspace_ids(self) -> list[str] | None:
        if self.workspaces == 1:
            return None
        return [self.world.member(k).config_for([ANY_DAY]).workspace_id for k in range(self.workspaces)]

    def api_for(self, days: Sequence[dt.date]) -> fetch.WorkspaceApi:
        """The workspace API over the world of ``days``."""
        return SimulatedApi(self.world.config_for(days))

    def fetch(self, days: list[dt.date]) -> fetch.WorkspaceDay:
        return self._fetch_with(self.api_for(days), days)

    def serving_usage(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        return self._serving_with(self.api_for(days), days)

    def served_entities(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        config = self.world.config_for(days)
        rows = views.served_entity_rows(views.world_for(config))
        return entities_by_day(served_entities_frame(rows), days, config.workspace_id)

    def ground_truth_run_costs(self, days: list[dt.date]) -> pl.DataFrame:
        """What every run really cost on ``days`` (simulated worlds only, every workspace of the account):
        the yardstick of the estimate."""
        worlds = [m.world for m in self.members() if isinstance(m, SimulatedWorkspace)]
        return pl.concat([truth.run_costs_for(w.config_for(days)) for w in worlds]).filter(
            pl.col("usage_date").is_in(days)
        )

    def planted_anomalies(self, days: list[dt.date]) -> pl.DataFrame:
        """The anomalies planted on ``days`` (simulated worlds only): the yardstick of the anomaly detector."""
        return planted.planted_frame(ground_truth_anomalies(self.world.config_for(days), days))


class SimulatedBillingSource(BillingSource):
    """The world's ``system.billing.usage`` rows as they stand on the clock: ORIGINAL records show from the
    day after the usage, corrections (RETRACTION + RESTATEMENT) 3–5 days after it."""

    world: SimulatedWorld = SimulatedWorld()
    as_of: str | None = None  # ISO date the clock is frozen at (tests); None: the real current UTC date
    # The account's configured workspaces (COST_ASSETS_SIM_WORKSPACES). With more than one, the account bill
    # covers them all plus one more workspace, ``world.member(workspaces)``, that is not configured (as a
    # workspace nobody listed yet): its money goes to unattributed, reason workspace_not_configured.
    workspaces: int = 1

    def describe(self) -> str:
        return "the simulated bill" if self.workspaces == 1 else f"the simulated account bill ({self.workspaces} + 1)"

    def usage(self, days: list[dt.date], stats: dict | None = None) -> pl.DataFrame:
        as_of = dt.date.fromisoformat(self.as_of) if self.as_of else None
        billed = range(self.workspaces + 1) if self.workspaces > 1 else [0]
        wanted = {d.isoformat() for d in days}
        rows = [
            r
            for k in billed
            for r in views.billing_usage_rows(self.world.member(k).config_for(days), as_of)
            if r["usage_date"] in wanted
        ]
        return parse.system_usage_frame(rows, "simulated")


class SimulatedCloudBill(CloudBill):
    """The world's cloud bill (``simulation/cloud_bill.py``) as the provider would export it, read by the real
    parser: ``COST_ASSETS_CLOUD_BILL=simulated`` (FOCUS), ``simulated:focus`` or ``simulated:azure`` (the
    Azure amortized cost details export). One file per day, written to a scratch folder with the time the
    export of that day would be written (two days later, 06:00 UTC), so a day's fingerprint is the same
    whichever window asks for it and the late cloud bill sensor sees no change."""

    path: str = "simulated"
    shape: str = "focus"  # focus | azure
    world: SimulatedWorld = SimulatedWorld()
    # The simulated account's configured workspaces (COST_ASSETS_SIM_WORKSPACES): the export covers them all,
    # each its own subscription's charges in the one billing account's file (the other team's storage
    # account is the account's, billed once).
    workspaces: int = 1

    def describe(self) -> str:
        return f"the simulated cloud bill ({self.shape})"

    def _configs(self, days: list[dt.date]) -> list[WorldConfig]:
        """The worlds billed: ``world`` and the account's next ``workspaces - 1`` workspaces."""
        first = self.world.workspace_index
        return [self.world.member(first + k).config_for(days) for k in range(self.workspaces)]

    def _export(self, configs: list[WorldConfig], frames: list[pl.DataFrame]) -> pl.DataFrame:
        """A day's export from each member's ``frames``: every charge, the other team's storage once (the
        first member's)."""
        other = sim_cloud_bill.OTHER_TEAM_STORAGE[configs[0].cloud]
        rest = [f.filter(pl.col("ResourceId") != other) for f in frames[1:]]
        return pl.concat([frames[0], *rest], how="diagonal_relaxed")

    def costs(self, days: list[dt.date]) -> tuple[pl.DataFrame, int]:
        configs = self._configs(days)
        fmt = cloud_bill.FOCUS if self.shape == "focus" else cloud_bill.AZURE
        # Member by member, all its days while its world is in the simulation's small caches: day by day over
        # more members than the caches hold would rebuild every world for every day.
        per_day = {day: [] for day in days}
        for c in configs:
            for day in days:
                per_day[day].append(sim_cloud_bill.export_frame(c, self.shape, [day]))
        with tempfile.TemporaryDirectory(prefix="cost-assets-cloud-bill-") as scratch:
            files = []
            for day in sorted(days):
                path = Path(scratch) / f"{self.shape}-{day.isoformat()}.csv"
                self._export(configs, per_day[day]).write_csv(path)
                written = dt.datetime.combine(day + dt.timedelta(days=2), dt.time(6), dt.UTC).timestamp()
                os.utime(path, (written, written))
                files.append(path)
            frame = cloud_bill.read_exports(files, days, fmt)
            frame = frame.with_columns(pl.col("source_file").str.replace(scratch, "simulated", literal=True))
        return frame, len(files)

    def ground_truth_vm_costs(self, days: list[dt.date]) -> pl.DataFrame:
        """What every cluster's and pool's VMs really cost per hour on ``days`` (simulated worlds only, every
        workspace of the account)."""
        truth = pl.concat([sim_cloud_bill.true_vm_costs(c) for c in self._configs(days)])
        return truth.filter(pl.col("hour_start").dt.date().is_in(days))
