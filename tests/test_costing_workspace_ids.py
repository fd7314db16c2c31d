"""Two workspaces of one account that share cluster, job and run ids: each keeps its own timeline, runs and
tags (ids are unique within a workspace only). Hand-computed; prices as in ``test_costing_engine.py``:
m5.xlarge 2.0 DBU/h, VM $0.192/h, $0.15/DBU."""

import polars as pl
import pytest
from costing_builders import DAY, at, clusters, events, job_runs, jobs, standard_prices

from cost_assets import schemas
from cost_assets.costing.engine import cost_by_cluster_hour, run_costs, segments_for_day
from cost_assets.costing.workspace_ids import qualified, shared_across_workspaces, unqualified

IT, DP = standard_prices()


def in_workspace(frame: pl.DataFrame, workspace: str) -> pl.DataFrame:
    return frame.with_columns(pl.lit(workspace).alias("workspace_id"))


def account() -> dict[str, pl.DataFrame]:
    """Workspaces 1 and 2, each with shared cluster 'c' up 0–100 min (2 workers + driver) and task run 7
    (run 70, job 1) on it: 0–60 in workspace 1, 0–30 in workspace 2. Cluster tags: team a / team b."""
    frames = {"clusters": [], "events": [], "job_runs": [], "jobs": []}
    for workspace, end, team in (("1", 60, "a"), ("2", 30, "b")):
        frames["clusters"].append(
            in_workspace(clusters({"cluster_id": "c", "custom_tags": f'{{"team":"{team}"}}'}), workspace)
        )
        frames["events"].append(
            in_workspace(events(("c", 0, "RUNNING", 2, 2), ("c", 100, "TERMINATING", None, None)), workspace)
        )
        frames["job_runs"].append(
            in_workspace(
                job_runs({"task_run_id": 7, "cluster_id": "c", "start_time": at(0), "end_time": at(end)}), workspace
            )
        )
        frames["jobs"].append(in_workspace(jobs({"job_id": 1}), workspace))
    return {name: pl.concat(parts) for name, parts in frames.items()}


def test_shared_ids_keep_each_workspaces_timeline_runs_and_tags():
    a = account()
    out = run_costs(a["job_runs"], a["jobs"], a["clusters"], a["events"], IT, DP, DAY)
    schemas.RunCosts.validate(out)
    # Per minute, 3 nodes: 3 × 2.0 / 60 = 0.1 DBU ($0.015) and 3 × 0.192 / 60 = $0.0096 of VM.
    # Workspace 1: the run 60 min → 6 DBU, idle 40 min → 4 DBU. Workspace 2: run 30 → 3 DBU, idle 70 → 7 DBU.
    got = {(r["workspace_id"], r["consumer"]): (r["dbus"], r["vm_cost_usd"], r["team"]) for r in out.to_dicts()}
    assert got == {
        ("1", "run"): pytest.approx((6.0, 60 * 0.0096, "a")),
        ("1", "idle"): pytest.approx((4.0, 40 * 0.0096, "a")),
        ("2", "run"): pytest.approx((3.0, 30 * 0.0096, "b")),
        ("2", "idle"): pytest.approx((7.0, 70 * 0.0096, "b")),
    }
    assert set(out["cluster_id"]) == {"c"}  # the ids come out as the workspaces name them


def test_the_stored_segments_and_the_hourly_estimate_keep_the_bare_ids():
    a = account()
    segments = segments_for_day(a["clusters"], a["events"], DAY, job_runs=a["job_runs"])
    schemas.ClusterSegments.validate(segments)
    # Each workspace's cluster is up 0–100 min, cut at the hour: 0–60 and 60–100.
    assert sorted(segments.select("workspace_id", "cluster_id", "segment_start").rows()) == [
        ("1", "c", at(0)),
        ("1", "c", at(60)),
        ("2", "c", at(0)),
        ("2", "c", at(60)),
    ]
    hourly = cost_by_cluster_hour(a["job_runs"], a["clusters"], a["events"], IT, DP, DAY)
    schemas.EstimatedCosts.validate(hourly)
    per_workspace = dict(hourly.group_by("workspace_id").agg(pl.col("dbus").sum()).rows())
    assert per_workspace == pytest.approx({"1": 10.0, "2": 10.0})  # 100 min × 0.1 DBU each
    assert set(hourly["cluster_id"]) == {"c"}


def test_ids_are_qualified_only_when_two_workspaces_share_one():
    a = account()
    assert shared_across_workspaces(a["clusters"])
    assert not shared_across_workspaces(a["clusters"].filter(pl.col("workspace_id") == "1"))
    two_names = a["clusters"].with_columns(
        pl.when(pl.col("workspace_id") == "2").then(pl.lit("d")).otherwise("cluster_id").alias("cluster_id")
    )
    assert not shared_across_workspaces(two_names)
    q = qualified(a["job_runs"])
    assert q["cluster_id"].to_list() == ["1\x1fc", "2\x1fc"]
    assert unqualified(q)["cluster_id"].to_list() == ["c", "c"]


def test_a_shared_id_that_only_the_events_and_runs_name_is_told_apart_too():
    # Workspace 2's cluster 'c' is gone from raw/clusters (clusters/get no longer knows it): only its events
    # (up 200–300 min) and its run (200–230) name it. Were the two 'c' merged, workspace 1's cluster would be
    # up 0–100 and 200–300; told apart, workspace 1 is as alone: run 0–60 → 6 DBU, idle 60–100 → 4 DBU.
    one = account()
    cl = one["clusters"].filter(pl.col("workspace_id") == "1")
    ev = pl.concat(
        [
            one["events"].filter(pl.col("workspace_id") == "1"),
            in_workspace(events(("c", 200, "RUNNING", 2, 2), ("c", 300, "TERMINATING", None, None)), "2"),
        ]
    )
    jr = pl.concat(
        [
            one["job_runs"].filter(pl.col("workspace_id") == "1"),
            in_workspace(
                job_runs({"task_run_id": 7, "cluster_id": "c", "start_time": at(200), "end_time": at(230)}), "2"
            ),
        ]
    )
    assert shared_across_workspaces(cl, ev, jr) and not shared_across_workspaces(cl)
    out = run_costs(jr, one["jobs"], cl, ev, IT, DP, DAY)
    ws1 = {r["consumer"]: r["dbus"] for r in out.filter(pl.col("workspace_id") == "1").to_dicts()}
    assert ws1 == pytest.approx({"run": 6.0, "idle": 4.0})
    # Workspace 2 has its own rows: the run and its cluster's idle (a cluster without config is shared unless
    # its runs say job cluster); no config, so no node type to price them by: unknown, not $0.
    ws2 = out.filter(pl.col("workspace_id") == "2").sort("consumer").to_dicts()
    assert [(r["consumer"], r["task_run_id"], r["unpriced"], r["total_cost_usd"]) for r in ws2] == [
        ("idle", None, True, None),
        ("run", 7, True, None),
    ]
