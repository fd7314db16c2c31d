"""An account whose workspaces share cluster, job, run and pool ids (ids are unique within a workspace
only), through the daily job: every table keeps each workspace's rows apart, and the twin workspaces come
out equal, each as it would alone."""

import dataclasses
import datetime as dt
from collections.abc import Sequence

import dagster as dg
import polars as pl
import pytest

from cost_assets.definitions import build_defs
from cost_assets.resources.databricks import DatabricksWorkspace
from cost_assets.resources.simulated import SimulatedBillingSource, SimulatedWorkspace, SimulatedWorld
from cost_assets.simulation.world import WorldConfig
from tests.conftest import run_daily, sim_environ, table

DAY = "2026-01-02"


class TwinWorld(SimulatedWorld):
    """Every workspace of the account is the first one's world under its own workspace id: the same
    cluster, job, run and pool ids in each, and the same costs."""

    def config_for(self, days: Sequence[dt.date]) -> WorldConfig:
        first = super(TwinWorld, self.model_copy(update={"workspace_index": 0})).config_for(days)
        return dataclasses.replace(first, workspace_id=str(int(first.workspace_id) + self.workspace_index))


def _twin(world: SimulatedWorld) -> TwinWorld:
    return TwinWorld(**world.model_dump())


def _own(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    """Ids that are UUIDs in Databricks (unique across the account) made unique per workspace again."""
    return frame.with_columns(pl.concat_str("workspace_id", pl.lit("-"), c).alias(c) for c in columns)


class TwinMember(SimulatedWorkspace):
    """One twin workspace: the first workspace's world; its serving request and entity ids (UUIDs) its own."""

    def serving_usage(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        return _own(super().serving_usage(days, stats), "databricks_request_id", "served_entity_id")

    def served_entities(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        return _own(super().served_entities(days, stats), "served_entity_id")


class TwinAccount(SimulatedWorkspace):
    """The simulated account (``COST_ASSETS_SIM_WORKSPACES``) with twin workspaces. The world is swapped where
    it is used: Dagster rebuilds a resource from its config, which knows the field's type, not the subclass."""

    def members(self) -> list[DatabricksWorkspace]:
        return [TwinMember(**{**dict(m), "world": _twin(m.world)}) for m in super().members()]


class TwinBill(SimulatedBillingSource):
    """The account bill of the twin workspaces (and of the one more workspace nobody configured). Its record
    ids stay unique: the bill's ``record_id`` is unique across the account, only workspace ids repeat."""

    def usage(self, days: list[dt.date], stats: dict | None = None) -> pl.DataFrame:
        return _own(
            SimulatedBillingSource.usage(self.model_copy(update={"world": _twin(self.world)}), days, stats), "record_id"
        )


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> str:
    tmp_path = tmp_path_factory.mktemp("twins")
    defs = build_defs(sim_environ(tmp_path / "ledger.duckdb", COST_ASSETS_SIM_WORKSPACES="2"))
    workspace, billing = defs.resources["workspace"], defs.resources["billing"]
    resources = {
        **defs.resources,
        "workspace": TwinAccount(**{k: getattr(workspace, k) for k in type(workspace).model_fields}),
        "billing": TwinBill(**{k: getattr(billing, k) for k in type(billing).model_fields}),
    }
    result = run_daily(dg.Definitions(assets=defs.assets, jobs=defs.jobs, resources=resources), DAY)
    assert result.success  # the contracts (keys with workspace_id) and the bill's conservation hold
    clusters = table(tmp_path / "ledger.duckdb", "raw.clusters")
    shared = clusters.group_by("cluster_id").agg(pl.col("workspace_id").n_unique())
    assert shared["workspace_id"].min() == 2  # every cluster id is in both workspaces
    return tmp_path / "ledger.duckdb"


def _per_workspace(ledger, name: str, key: list[str], money: str) -> dict[str, pl.DataFrame]:
    frame = table(ledger, name).filter(pl.col("usage_date") == dt.date.fromisoformat(DAY))
    return {
        ws: part.drop("workspace_id").sort(key, nulls_last=True).select(*key, money)
        for (ws,), part in frame.group_by(["workspace_id"])
    }


def test_twin_workspaces_keep_their_own_runs_and_come_out_equal(ledger):
    runs = _per_workspace(ledger, "mart.run_costs", ["cluster_id", "consumer", "task_run_id"], "total_cost_usd")
    configured = sorted(runs)
    assert len(configured) == 2
    first, second = (runs[ws] for ws in configured)
    # The same clusters and task runs in each workspace (the ids they share), none lost to the other.
    assert first.height > 0 and first.drop("total_cost_usd").equals(second.drop("total_cost_usd"))
    assert first["total_cost_usd"].to_list() == pytest.approx(second["total_cost_usd"].to_list(), rel=1e-12)
    segments = table(ledger, "mart.cluster_segments")
    assert segments.group_by("workspace_id").len()["len"].n_unique() == 1  # each twin's own timeline


def test_the_bill_of_each_twin_is_reconciled_and_handed_out_on_its_own(ledger):
    day = dt.date.fromisoformat(DAY)
    rec = table(ledger, "mart.reconciliation").filter(pl.col("usage_date") == day)
    sums = rec.group_by("workspace_id").agg(pl.col("billed_dbus").sum(), pl.col("estimated_dbus").sum())
    by_ws = {r["workspace_id"]: (r["billed_dbus"], r["estimated_dbus"]) for r in sums.to_dicts()}
    twins = sorted(_per_workspace(ledger, "mart.run_costs", ["cluster_id"], "dbus"))
    assert by_ws[twins[0]] == pytest.approx(by_ws[twins[1]], rel=1e-12)
    assert by_ws[twins[0]][0] > 0
    attributed = table(ledger, "mart.attributed_costs").filter(pl.col("usage_date") == day)
    runs = attributed.filter(pl.col("consumer") == "run").group_by("workspace_id").agg(pl.col("billed_cost_usd").sum())
    per_ws = dict(runs.rows())
    assert per_ws[twins[0]] == pytest.approx(per_ws[twins[1]], rel=1e-9) and per_ws[twins[0]] > 0
