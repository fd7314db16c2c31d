"""Cluster timeline: events → segments. Expected values are worked out by hand in each test."""

import datetime as dt

import polars as pl
import pytest
from costing_builders import DAY, T0, at, clusters, events, pools, spot_eviction_with_fallback

from cost_assets.costing.timeline import cluster_segments

END = T0 + dt.timedelta(days=1)
COUNTS = ["provisioned_workers", "ready_workers", "on_demand_workers", "spot_workers"]


def segs(cl: pl.DataFrame, ev: pl.DataFrame, **kw) -> pl.DataFrame:
    return cluster_segments(cl, ev, T0, END, **kw)


def rows(frame: pl.DataFrame, *cols: str) -> list[tuple]:
    return [tuple(r) for r in frame.select("segment_start", "segment_end", *cols).iter_rows()]


def test_worked_example_all_spot_segment():
    # 3 workers + driver, SPOT with first_on_demand=0 → every node spot; 01:00–02:30 cut at 02:00.
    cl = clusters({"cluster_id": "c", "num_workers": 3, "availability": "SPOT", "first_on_demand": 0})
    ev = events(("c", 60, "RUNNING", 3, 3), ("c", 150, "TERMINATING", None, None))
    out = segs(cl, ev)
    assert rows(out, "hour_start", *COUNTS, "driver_on_demand") == [
        (at(60), at(120), at(60), 3, 3, 0, 3, False),
        (at(120), at(150), at(120), 3, 3, 0, 3, False),
    ]
    assert out["state"].to_list() == ["RUNNING", "RUNNING"]
    assert out["vm_billable"].all() and out["dbu_billable"].all()
    assert out["driver_provisioned"].all() and out["driver_ready"].all()
    assert out["usage_date"].to_list() == [DAY, DAY]
    assert out["workload"].to_list() == ["all_purpose"] * 2


def test_starting_pays_vms_but_not_dbus_and_terminating_closes():
    # CREATING at 10 asks for 2 workers (cluster_size only) → VMs paid, nothing ready until RUNNING at 15.
    cl = clusters({"cluster_id": "c", "cluster_source": "JOB"})
    ev = events(
        ("c", 10, "CREATING", None, None, {"cluster_size_num_workers": 2}),
        ("c", 15, "RUNNING", 2, 2),
        ("c", 40, "TERMINATING", None, None),
        ("c", 45, "NODES_LOST", 1, 2),  # after termination: must not reopen the cluster
    )
    out = segs(cl, ev)
    assert rows(out, "state", "provisioned_workers", "ready_workers", "driver_ready", "dbu_billable") == [
        (at(10), at(15), "CREATING", 2, 0, False, False),
        (at(15), at(40), "RUNNING", 2, 2, True, True),
    ]
    assert out["workload"].unique().to_list() == ["jobs"]


def test_lookback_fixes_state_at_midnight_and_open_cluster_closes_at_window_end():
    # Started yesterday 22:00 (look-back), still running at the end of the day → 24 hourly segments.
    cl = clusters({"cluster_id": "c"})
    ev = events(("c", -120, "STARTING", None, 4), ("c", -110, "RUNNING", 4, 4))
    out = segs(cl, ev)
    assert out.height == 24
    assert out["segment_start"].min() == T0 and out["segment_end"].max() == END
    assert out["ready_workers"].unique().to_list() == [4]
    assert not out["is_imputed"].any()


@pytest.mark.parametrize("downscale", [(6, 3), (3, 3)], ids=["as-databricks-logs-it", "already-at-target"])
def test_autoscaling_two_six_three(downscale):
    # RUNNING 2 → RESIZING asks 6 at 20 (VMs paid from the request, 2 ready) → UPSIZE_COMPLETED 6 at 23
    # → downscale to 3 at 40 → TERMINATING at 60. Databricks logs a downscale as RESIZING current=6 →
    # target=3 with no completion event: from minute 40 three workers are provisioned and ready either way.
    cl = clusters({"cluster_id": "c", "num_workers": None, "autoscale_min_workers": 2, "autoscale_max_workers": 8})
    ev = events(
        ("c", 0, "RUNNING", 2, 2),
        ("c", 20, "RESIZING", 2, 6),
        ("c", 23, "UPSIZE_COMPLETED", 6, 6),
        ("c", 40, "RESIZING", *downscale),
        ("c", 60, "TERMINATING", None, None),
    )
    assert rows(segs(cl, ev), "state", "provisioned_workers", "ready_workers") == [
        (at(0), at(20), "RUNNING", 2, 2),
        (at(20), at(23), "RESIZING", 6, 2),
        (at(23), at(40), "RUNNING", 6, 6),
        (at(40), at(60), "RESIZING", 3, 3),
    ]


def test_spot_eviction_with_fallback_replacement_is_on_demand():
    # SPOT_WITH_FALLBACK, first_on_demand=1: driver on-demand, 4 spot workers. One is evicted at 20 (3 left),
    # its replacement is requested at 21 and ready at 23: that replacement is on-demand (fallback).
    cl, ev = spot_eviction_with_fallback()
    out = segs(cl, ev)
    assert rows(out, *COUNTS) == [
        (at(0), at(20), 4, 4, 0, 4),
        (at(20), at(21), 3, 3, 0, 3),
        (at(21), at(23), 4, 3, 1, 3),
        (at(23), at(60), 4, 4, 1, 3),
    ]
    assert out["driver_on_demand"].all()


def test_spot_eviction_without_fallback_stays_spot():
    cl = clusters({"cluster_id": "c", "num_workers": 4, "availability": "SPOT", "first_on_demand": 2})
    lost = {"reason_code": "SPOT_INSTANCE_TERMINATION"}
    ev = events(
        ("c", 0, "RUNNING", 4, 4),
        ("c", 20, "NODES_LOST", 3, 4, lost),
        ("c", 23, "UPSIZE_COMPLETED", 4, 4),
        ("c", 60, "TERMINATING", None, None),
    )
    # first_on_demand=2 → driver + 1 worker on-demand, the other workers spot, before and after.
    assert rows(segs(cl, ev), "on_demand_workers", "spot_workers") == [
        (at(0), at(20), 1, 3),
        (at(20), at(23), 1, 2),
        (at(23), at(60), 1, 3),
    ]


def test_single_node_has_driver_only():
    cl = clusters({"cluster_id": "c", "num_workers": 0, "is_single_node": True})
    ev = events(("c", 0, "RUNNING", 0, 0), ("c", 30, "TERMINATING", None, None))
    out = segs(cl, ev)
    assert rows(out, *COUNTS, "driver_provisioned", "driver_ready") == [(at(0), at(30), 0, 0, 0, 0, True, True)]


def test_missing_lookback_is_imputed_from_first_event():
    # First event of the day is a TERMINATING at 03:00 and nothing before it: the cluster was up since
    # 00:00 (imputed RUNNING, count from the config: 2 workers).
    cl = clusters({"cluster_id": "c", "num_workers": 2})
    ev = events(("c", 180, "TERMINATING", None, None))
    out = segs(cl, ev)
    assert rows(out, "state", "ready_workers", "is_imputed") == [
        (at(0), at(60), "RUNNING", 2, True),
        (at(60), at(120), "RUNNING", 2, True),
        (at(120), at(180), "RUNNING", 2, True),
    ]


def test_missing_terminating_imputed_from_snapshot():
    cl = clusters({"cluster_id": "c", "state": "TERMINATED", "terminated_time": at(90)})
    ev = events(("c", 30, "RUNNING", 2, 2))
    assert rows(segs(cl, ev), "state") == [(at(30), at(60), "RUNNING"), (at(60), at(90), "RUNNING")]


def test_restart_resets_counts_to_new_life():
    # Life 1 autoscaled to 5; after TERMINATING, STARTING has no count → config (autoscale min 1).
    cl = clusters({"cluster_id": "c", "num_workers": None, "autoscale_min_workers": 1, "autoscale_max_workers": 5})
    ev = events(
        ("c", 0, "RUNNING", 5, 5),
        ("c", 10, "TERMINATING", None, None),
        ("c", 20, "STARTING", None, None),
        ("c", 25, "RUNNING", 1, 1),
        ("c", 30, "TERMINATING", None, None),
    )
    assert rows(segs(cl, ev), "state", "provisioned_workers", "ready_workers") == [
        (at(0), at(10), "RUNNING", 5, 5),
        (at(20), at(25), "STARTING", 1, 0),
        (at(25), at(30), "RUNNING", 1, 1),
    ]


def test_pool_idle_segments():
    cl = clusters({"cluster_id": "c", "instance_pool_id": "pool-1"})
    out = segs(cl, events(), pools=pools({"instance_pool_id": "pool-1", "idle_instances": 2}))
    assert out.height == 24
    assert out["cluster_id"].unique().to_list() == ["pool-1"]
    assert out["segment_kind"].unique().to_list() == ["pool"]
    assert out["provisioned_workers"].unique().to_list() == [2]
    assert out["on_demand_workers"].unique().to_list() == [2]
    assert not out["dbu_billable"].any() and out["vm_billable"].all() and not out["driver_provisioned"].any()


def test_no_pools_no_pool_rows():
    cl = clusters({"cluster_id": "c", "instance_pool_id": "pool-1"})
    assert segs(cl, events()).height == 0


@pytest.mark.parametrize("minute", [-5, 0, 59.5])
def test_segments_never_cross_an_hour(minute):
    cl = clusters({"cluster_id": "c"})
    ev = events(("c", minute, "RUNNING", 1, 1), ("c", minute + 200, "TERMINATING", None, None))
    out = segs(cl, ev)
    assert (out["segment_end"] <= out["hour_start"] + dt.timedelta(hours=1)).all()
    assert (out["segment_start"] >= out["hour_start"]).all()
    hours = ((out["segment_end"] - out["segment_start"]).dt.total_microseconds().sum()) / 3.6e9
    assert hours == pytest.approx((min(minute + 200, 1440) - max(minute, 0)) / 60)


def test_events_repeated_across_partitions_count_once():
    # The look-back of one day repeats events of the day before: duplicates must not change anything.
    cl = clusters({"cluster_id": "c"})
    ev = events(("c", 0, "RUNNING", 2, 2), ("c", 30, "NODES_LOST", 1, 2), ("c", 90, "TERMINATING", None, None))
    twice = pl.concat([ev, ev.with_columns(pl.lit(DAY - dt.timedelta(days=1)).alias("usage_date"))])
    assert segs(cl, twice).equals(segs(cl, ev))


def test_events_in_any_order_give_the_same_timeline():
    # Two clusters, their events interleaved and reversed, two of them at the same instant: the timeline
    # sorts them (the lifecycle order breaks the tie: RESIZING before UPSIZE_COMPLETED at 20). Hand-worked:
    # a RUNNING 0–20 with 2 workers, 20–40 with 4 (resized and completed at 20), down at 40; b 10–50, 1 worker.
    cl = clusters({"cluster_id": "a"}, {"cluster_id": "b"})
    ev = events(
        ("a", 0, "RUNNING", 2, 2),
        ("a", 20, "RESIZING", 2, 4),
        ("a", 20, "UPSIZE_COMPLETED", 4, 4),
        ("a", 40, "TERMINATING", None, None),
        ("b", 10, "RUNNING", 1, 1),
        ("b", 50, "TERMINATING", None, None),
    )
    want = [("a", at(0), at(20), 2), ("a", at(20), at(40), 4), ("b", at(10), at(50), 1)]
    for frame in (ev, ev.reverse(), ev.sort("timestamp")):
        out = segs(cl, frame).select("cluster_id", "segment_start", "segment_end", "ready_workers")
        assert list(out.iter_rows()) == want
