"""A cluster the APIs no longer know (purged; ``reason = 'cluster_not_found'``) is estimated from its run's spec.

Prices (``standard_prices``): m5.xlarge = 2.0 DBU/h, VM $0.192/h on-demand; $0.15/DBU for PREMIUM jobs.
Every expected number is worked out by hand below.
"""

import polars as pl
import pytest
from costing_builders import DAY, at, clusters, events, job_runs, jobs, standard_prices

from cost_assets import schemas
from cost_assets.costing.engine import cost_by_cluster_hour, run_costs
from cost_assets.costing.spec import spec_events

IT, DP = standard_prices()
# A purged job cluster: 3 workers from the spec, no details, no events left.
PURGED = {
    "cluster_id": "gone",
    "cluster_source": "JOB",
    "num_workers": 3,
    "state": "TERMINATED",
    "reason": "cluster_not_found",
}
NO_EVENTS = events()


def _runs():
    # One task on the purged cluster 10:00–11:30 (90 min).
    return job_runs(
        {
            "task_run_id": 7,
            "cluster_id": "gone",
            "compute_type": "job_cluster",
            "start_time": at(600),
            "end_time": at(690),
        }
    )


def test_a_purged_cluster_without_events_is_estimated_from_its_spec():
    out = run_costs(_runs(), jobs({"job_id": 1}), clusters(PURGED), NO_EVENTS, IT, DP, DAY)
    schemas.RunCosts.validate(out)
    row = out.filter(pl.col("consumer") == "run").row(0, named=True)
    # Up from the task's start to its end: 1.5 h with 3 workers + the driver = 4 nodes.
    dbus = 4 * 2.0 * 1.5  # 12.0 DBU
    assert row["unpriced"] is False
    assert row["dbus"] == pytest.approx(dbus)
    assert row["dbu_cost_usd"] == pytest.approx(dbus * 0.15)  # $1.80
    assert row["vm_cost_usd"] == pytest.approx(4 * 0.192 * 1.5)  # $1.152
    assert out["total_cost_usd"].sum() == pytest.approx(1.80 + 1.152)


def test_an_autoscaling_spec_is_estimated_at_its_minimum_size():
    spec = {**PURGED, "num_workers": None, "autoscale_min_workers": 2, "autoscale_max_workers": 8}
    out = run_costs(_runs(), jobs({"job_id": 1}), clusters(spec), NO_EVENTS, IT, DP, DAY)
    # 2 workers (the minimum) + the driver = 3 nodes × 2.0 DBU/h × 1.5 h.
    assert out["dbus"].sum() == pytest.approx(3 * 2.0 * 1.5)


def test_the_hourly_estimate_splits_the_spec_timeline_at_hours():
    hourly = cost_by_cluster_hour(_runs(), clusters(PURGED), NO_EVENTS, IT, DP, DAY)
    by_hour = dict(hourly.group_by("hour_start").agg(pl.col("dbus").sum()).iter_rows())
    # 10:00–11:00 = 1 h and 11:00–11:30 = 0.5 h, 4 nodes at 2.0 DBU/h each.
    assert by_hour == {at(600): pytest.approx(8.0), at(660): pytest.approx(4.0)}


def test_a_purged_cluster_with_events_left_uses_its_events():
    ev = events(("gone", 600, "RUNNING", 1, None), ("gone", 690, "TERMINATING", 1, None))
    assert spec_events(clusters(PURGED), _runs(), ev).height == 0
    out = run_costs(_runs(), jobs({"job_id": 1}), clusters(PURGED), ev, IT, DP, DAY)
    # The events say 1 worker: 2 nodes × 2.0 DBU/h × 1.5 h, not the spec's 3 workers.
    assert out["dbus"].sum() == pytest.approx(2 * 2.0 * 1.5)


def test_a_cluster_without_spec_or_events_is_unpriced_not_zero():
    # An all-purpose cluster purged: no run carries its spec, so no node type is known.
    unknown = {**PURGED, "cluster_source": None, "node_type_id": "", "driver_node_type_id": "", "num_workers": 0}
    out = run_costs(_runs(), jobs({"job_id": 1}), clusters(unknown), NO_EVENTS, IT, DP, DAY)
    row = out.filter(pl.col("consumer") == "run").row(0, named=True)
    assert row["unpriced"] is True and row["total_cost_usd"] is None
