"""A snapshot of the whole asset graph: any change to the lineage has to be made on purpose.

For every asset: its upstream assets, its checks (and which block), its group, partitions and backfill
policy — one daily asset without a single-run policy would turn a range backfill into one run per day —
its retry policy and its freshness policy.
Also the jobs, schedules and sensors. For the simulated and for a live deployment (the ground-truth
asset exists only for the simulated one).

After an intended change: ``UPDATE_SNAPSHOTS=1 pytest tests/test_asset_graph.py`` and review the diff of
``tests/__snapshots__/asset_graph.json`` like code.
"""

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from cost_assets.definitions import build_defs

SNAPSHOT = Path(__file__).parent / "__snapshots__" / "asset_graph.json"
LIVE = {
    "DATABRICKS_HOST": "https://adb-1.azuredatabricks.net",
    "DATABRICKS_TOKEN": "unused",
    "DATABRICKS_WAREHOUSE_ID": "wh",
}


def _partitions(definition) -> str | None:
    if definition is None:
        return None
    if isinstance(definition, dg.TimeWindowPartitionsDefinition):
        return f"{definition.cron_schedule} {definition.timezone} from {definition.start.date()}"
    return repr(definition)


def _retry(policy: dg.RetryPolicy | None) -> str | None:
    if policy is None:
        return None
    return f"{policy.max_retries} × from {policy.delay} s, {policy.backoff.value}, jitter {policy.jitter.value}"


def _freshness(policy) -> str | None:
    if policy is None:
        return None
    if isinstance(policy, dg.FreshnessPolicy) and hasattr(policy, "deadline_cron"):
        return f"by {policy.deadline_cron} {policy.timezone}, within {policy.lower_bound_delta}"
    return repr(policy)


def graph_of(defs: dg.Definitions) -> dict:
    """The graph as plain data, sorted so that the JSON diff shows exactly what changed."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        policy = node.backfill_policy
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "checks": sorted(f"{c.name}{' (blocking)' if graph.get(c).blocking else ''}" for c in node.check_keys),
            "partitions": _partitions(node.partitions_def),
            "backfill": None
            if policy is None
            else f"{policy.policy_type.value}"
            f"{'' if policy.max_partitions_per_run is None else f' ≤ {policy.max_partitions_per_run}'}",
            "retry": _retry(defs.resolve_assets_def(key).op.retry_policy),
            "freshness": _freshness(node.freshness_policy),
        }
    repository = defs.get_repository_def()
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in repository.get_all_jobs() if not j.name.startswith("__")),
        "schedules": sorted(f"{s.name}: {s.cron_schedule} {s.execution_timezone}" for s in repository.schedule_defs),
        "sensors": sorted(s.name for s in repository.sensor_defs),
    }


@pytest.fixture(scope="module")
def current(tmp_path_factory) -> dict:
    database = str(tmp_path_factory.mktemp("graph") / "d.duckdb")
    return {
        "simulated": graph_of(build_defs({"COST_ASSETS_DUCKDB": database})),
        "live": graph_of(build_defs({"COST_ASSETS_DUCKDB": database, **LIVE})),
    }


def test_the_asset_graph_matches_its_snapshot(current):
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        "the asset graph changed; if intended, run UPDATE_SNAPSHOTS=1 pytest tests/test_asset_graph.py"
    )


def test_a_dollar_flows_raw_segments_estimate_reconciliation_attribution(current):
    deps = {key: node["deps"] for key, node in current["simulated"]["assets"].items()}
    assert "mart/cluster_segments" in deps["mart/estimated_costs"]
    assert "mart/estimated_costs" in deps["mart/run_costs"]
    assert "mart/estimated_costs" in deps["mart/reconciliation"]
    assert "mart/reconciliation" in deps["mart/attributed_costs"]
    assert "mart/attributed_costs" in deps["mart/cost_by_scope"]
    # The estimate is built once: nothing downstream of the segments reads the events again.
    readers_of_events = {key for key, d in deps.items() if "raw/cluster_events" in d}
    assert readers_of_events == {"mart/cluster_segments"}


def test_every_daily_asset_backfills_a_range_in_one_run(current):
    for deployment in current.values():
        for key, node in deployment["assets"].items():
            assert node["partitions"] == "0 0 * * * UTC from 2025-01-01", key
            assert node["backfill"] == "SINGLE_RUN", key


def test_sources_retry_with_jitter_and_every_mart_has_a_freshness_policy(current):
    for key, node in current["simulated"]["assets"].items():
        if key.startswith("raw/"):
            assert node["retry"] and "jitter PLUS_MINUS" in node["retry"], key
        if key.startswith("mart/"):
            assert node["freshness"], key


def test_the_ground_truth_exists_only_for_the_simulated_workspace(current):
    assert "sim/run_cost_accuracy" in current["simulated"]["assets"]
    assert not [k for k in current["live"]["assets"] if k.startswith("sim/")]
