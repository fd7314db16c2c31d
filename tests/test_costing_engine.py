"""The engine end to end: ``run_costs``, ``segments_for_day`` and ``cost_by_cluster_hour``.

Every expected number is worked out by hand in the test (node-minutes × rates), never copied from output.
Prices (``standard_prices``): m5.xlarge = 2.0 DBU/h, VM $0.192/h on-demand, spot 0.2 × = $0.0384/h;
$0.15/DBU for PREMIUM jobs and all-purpose.
"""

import datetime as dt

import polars as pl
import pytest
from costing_builders import (
    DAY,
    T0,
    at,
    clusters,
    dbu_prices,
    events,
    instance_types,
    job_runs,
    jobs,
    pools,
    spot_eviction_with_fallback,
    standard_prices,
)
from polars.testing import assert_frame_equal

from cost_assets import schemas
from cost_assets.costing import engine as engine_module
from cost_assets.costing.engine import RUN_COSTS_COLUMNS, cost_by_cluster_hour, run_costs, segments_for_day

# ------------------------------------------------------------------ helpers
IT, DP = standard_prices()


def costs(jr, cl, ev, *, jb=None, it=IT, dp=DP, day=DAY, **kw) -> pl.DataFrame:
    out = run_costs(jr, jb if jb is not None else jobs({"job_id": 1}), cl, ev, it, dp, day, **kw)
    schemas.RunCosts.validate(out)  # the project's contract
    return out


def one(frame: pl.DataFrame, **where) -> dict:
    rows = frame.filter(*[pl.col(k) == v for k, v in where.items()]).to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


def money(row: dict) -> tuple:
    return row["dbus"], row["dbu_cost_usd"], row["vm_cost_usd"], row["total_cost_usd"]


# ------------------------------------------------------------------ tests
def test_worked_example_of_the_original_calculator():
    # 3 workers + driver for 1.5 h at 2.0 DBU/node-hour, $0.15/DBU: 4 × 1.5 × 2.0 = 12 DBU, 12 × 0.15 = $1.80.
    # All 4 nodes spot (first_on_demand=0) at 0.2 × $0.192/h: 0.192 × 0.2 × 4 × 1.5 = $0.2304.
    cl = clusters(
        {"cluster_id": "j", "cluster_source": "JOB", "num_workers": 3, "availability": "SPOT", "first_on_demand": 0}
    )
    ev = events(("j", 60, "RUNNING", 3, 3), ("j", 150, "TERMINATING", None, None))
    jr = job_runs(
        {"task_run_id": 7, "cluster_id": "j", "start_time": at(60), "end_time": at(150), "compute_type": "job_cluster"}
    )
    jb = jobs({"job_id": 1, "team": "data-eng", "tenant": "acme", "project": "p1", "cost_center": "cc-1"})
    out = costs(jr, cl, ev, jb=jb)
    assert out.height == 1  # a job cluster has no idle row
    row = one(out, task_run_id=7)
    assert money(row) == pytest.approx((12.0, 1.80, 0.2304, 1.80 + 0.2304))
    assert row["runtime_hours"] == pytest.approx(1.5)
    assert row["sku_name"] == "PREMIUM_JOBS_COMPUTE" and row["is_shared_cluster"] is False
    assert (row["team"], row["tenant"], row["project"], row["cost_center"]) == ("data-eng", "acme", "p1", "cc-1")
    assert (row["run_id"], row["job_id"], row["task_key"], row["usage_date"]) == (70, 1, "t7", DAY)
    assert row["consumer"] == "run" and row["currency_code"] == "USD" and row["unpriced"] is False


def test_shared_cluster_idle_row_takes_cluster_tags():
    # Cluster up 0–100 min, 3 nodes: per minute 3 × 2.0 / 60 = 0.1 DBU and 3 × 0.192 / 60 = $0.0096 VM.
    # A 0–30 (job 1), B 50–90 (job 2): idle 30–50 and 90–100 = 30 min.
    cl = clusters({"cluster_id": "c", "custom_tags": '{"cost_center":"cc-9","team":"platform"}'})
    ev = events(("c", 0, "RUNNING", 2, 2), ("c", 100, "TERMINATING", None, None))
    jr = job_runs(
        {"task_run_id": 1, "cluster_id": "c", "start_time": at(0), "end_time": at(30), "job_id": 1},
        {"task_run_id": 2, "cluster_id": "c", "start_time": at(50), "end_time": at(90), "job_id": 2},
    )
    jb = jobs({"job_id": 1, "team": "a"}, {"job_id": 2, "team": "b"})
    out = costs(jr, cl, ev, jb=jb)
    assert out.height == 3
    for key, minutes, team in [({"task_run_id": 1}, 30, "a"), ({"task_run_id": 2}, 40, "b"), ({}, 30, "platform")]:
        row = one(out, consumer="idle" if not key else "run", **key)
        dbus = minutes * 0.1
        assert money(row) == pytest.approx((dbus, dbus * 0.15, minutes * 0.0096, dbus * 0.15 + minutes * 0.0096))
        assert row["runtime_hours"] == pytest.approx(minutes / 60)
        assert row["team"] == team and row["is_shared_cluster"] is True
    idle = one(out, consumer="idle")
    assert idle["cost_center"] == "cc-9" and idle["task_run_id"] is None and idle["job_id"] is None
    # Precedence per key, as in the attributed bill: the jobs set `team`, the cluster fills `cost_center`.
    assert one(out, consumer="run", task_run_id=1)["cost_center"] == "cc-9"
    # A malformed tag map must not fail the day: the idle row just has no tags.
    broken = costs(jr, cl.with_columns(pl.lit("{not json").alias("custom_tags")), ev, jb=jb)
    assert one(broken, consumer="idle")["team"] is None
    assert out["total_cost_usd"].sum() == pytest.approx(100 * (0.1 * 0.15 + 0.0096))


def test_autoscaling_two_six_three_inside_one_run():
    # Ready nodes (driver + workers): 0–20: 3, 20–23: 3 (upsize requested), 23–40: 7, 40–60: 4
    #   → 3×20 + 3×3 + 7×17 + 4×20 = 268 node-min → 268/60 × 2.0 DBU.
    # Provisioned (VMs paid from the request): 0–20: 3, 20–23: 7, 23–40: 7, 40–60: 4 → 280 node-min.
    cl = clusters({"cluster_id": "c", "num_workers": None, "autoscale_min_workers": 2, "autoscale_max_workers": 8})
    ev = events(
        ("c", 0, "RUNNING", 2, 2),
        ("c", 20, "RESIZING", 2, 6),
        ("c", 23, "UPSIZE_COMPLETED", 6, 6),
        ("c", 40, "RESIZING", 3, 3),
        ("c", 60, "TERMINATING", None, None),
    )
    jr = job_runs({"task_run_id": 1, "cluster_id": "c", "start_time": at(0), "end_time": at(60)})
    out = costs(jr, cl, ev)
    dbus = 268 / 60 * 2.0
    vm = 280 * 0.192 / 60
    assert money(one(out, consumer="run")) == pytest.approx((dbus, dbus * 0.15, vm, dbus * 0.15 + vm))
    assert money(one(out, consumer="idle")) == (0.0, 0.0, 0.0, 0.0)


def test_spot_eviction_with_fallback_replacement():
    # SPOT_WITH_FALLBACK, first_on_demand=1, 4 workers, 0–60. Spot worker lost at 20, replacement requested
    # at 21 (on-demand: fallback), ready at 23.
    # VM: driver on-demand 60 min; on-demand workers 21–60 = 39 min; spot workers 4×20 + 3×1 + 3×2 + 3×37 = 200.
    #     60 × 0.192/60 + 39 × 0.192/60 + 200 × 0.0384/60 = 0.192 + 0.1248 + 0.128 = 0.4448
    # DBU: driver 60 + workers 4×20 + 3×1 + 3×2 + 4×37 = 237 → 297 node-min × 2.0/60 = 9.9 DBU.
    cl, ev = spot_eviction_with_fallback()
    jr = job_runs({"task_run_id": 1, "cluster_id": "c", "start_time": at(0), "end_time": at(60)})
    row = one(costs(jr, cl, ev), consumer="run")
    assert money(row) == pytest.approx((9.9, 9.9 * 0.15, 0.4448, 9.9 * 0.15 + 0.4448))


def test_run_across_midnight_costs_on_both_days():
    # Cluster up 23:00 (day before) → 01:00; the run covers it. Each day: 1 h × 3 nodes.
    prev = DAY - dt.timedelta(days=1)
    cl = clusters({"cluster_id": "c"}, {"cluster_id": "c", "usage_date": prev})
    ev = events(("c", -60, "RUNNING", 2, 2), ("c", 60, "TERMINATING", None, None))
    run = {"task_run_id": 1, "cluster_id": "c", "start_time": at(-60), "end_time": at(60)}
    jr = pl.concat([job_runs({**run, "usage_date": prev}), job_runs(run)])
    for day in (prev, DAY):
        out = costs(jr, cl, ev, day=day)
        row = one(out, consumer="run")
        assert row["usage_date"] == day
        assert row["runtime_hours"] == pytest.approx(1.0)
        assert money(row) == pytest.approx((6.0, 0.9, 0.576, 1.476))
        assert one(out, consumer="idle")["total_cost_usd"] == 0.0


def test_price_changes_split_the_hour_never_drop_it():
    # DBU price $0.15 → $0.30 at 12:00; VM price $0.192 → $0.384 at 12:20 (inside the running hour).
    # Cluster + run 11:30–12:30, 3 nodes: 6 DBU/h.
    # DBU $: 0.5 h × 6 × 0.15 + 0.5 h × 6 × 0.30 = 0.45 + 0.90 = 1.35
    # VM  $: 3 × (0.192 × 50/60 + 0.384 × 10/60) = 3 × (0.16 + 0.064) = 0.672
    noon = T0 + dt.timedelta(hours=12)
    it = instance_types(
        {"effective_to": noon + dt.timedelta(minutes=20)},
        {"effective_from": noon + dt.timedelta(minutes=20), "vm_on_demand_per_hour": 0.384},
    )
    sku = {"sku_name": "PREMIUM_ALL_PURPOSE_COMPUTE", "workload": "all_purpose"}
    dp = dbu_prices({**sku, "price": 0.15, "price_end_time": noon}, {**sku, "price": 0.30, "price_start_time": noon})
    cl = clusters({"cluster_id": "c"})
    ev = events(("c", 690, "RUNNING", 2, 2), ("c", 750, "TERMINATING", None, None))
    jr = job_runs({"task_run_id": 1, "cluster_id": "c", "start_time": at(690), "end_time": at(750)})
    row = one(costs(jr, cl, ev, it=it, dp=dp), consumer="run")
    assert money(row) == pytest.approx((6.0, 1.35, 0.672, 1.35 + 0.672))
    hourly = cost_by_cluster_hour(jr, cl, ev, it, dp, DAY).filter(pl.col("consumer") == "run")
    by_hour = {r["hour_start"]: (r["dbu_cost_usd"], r["vm_cost_usd"]) for r in hourly.to_dicts()}
    # 11:00 hour: 0.5 × 6 × 0.15 = 0.45, VM 3 × 0.192 × 0.5 = 0.288;
    # 12:00 hour: 0.5 × 6 × 0.30 = 0.90, VM 3 × (0.192 × 20/60 + 0.384 × 10/60) = 0.384.
    assert by_hour == {
        at(660): pytest.approx((0.45, 0.288)),
        at(720): pytest.approx((0.90, 0.384)),
    }


def test_single_node_pays_for_the_driver_only():
    # 1 h, driver only: 2.0 DBU → $0.30; VM $0.192.
    cl = clusters(
        {"cluster_id": "c", "num_workers": 0, "is_single_node": True, "custom_tags": '{"ResourceClass":"SingleNode"}'}
    )
    ev = events(("c", 0, "RUNNING", 0, 0), ("c", 60, "TERMINATING", None, None))
    jr = job_runs({"task_run_id": 1, "cluster_id": "c", "start_time": at(0), "end_time": at(60)})
    assert money(one(costs(jr, cl, ev), consumer="run")) == pytest.approx((2.0, 0.30, 0.192, 0.492))


def test_pool_idle_row():
    # 2 idle m5.xlarge all day: VM only, 2 × 24 h × 0.192 = $9.216; no DBUs.
    out = costs(job_runs(), clusters(), events(), pools=pools({"instance_pool_id": "pool-1", "idle_instances": 2}))
    row = one(out, cluster_id="pool-1")
    assert row["consumer"] == "idle" and row["is_shared_cluster"] is True and row["sku_name"] is None
    assert money(row) == pytest.approx((0.0, 0.0, 9.216, 9.216))
    assert row["runtime_hours"] == pytest.approx(24.0) and row["workspace_id"] == "ws-1"


def test_pool_idle_from_the_pool_details_on_raw_clusters():
    # A job cluster drew from pool-7 (instance-pools/get: m5.xlarge, min_idle_instances 3, team=platform).
    # The pool keeps 3 idle VMs all day: 3 × 24 h × $0.192 = $13.824 of VM, no DBUs.
    cl = clusters(
        {
            "cluster_id": "c",
            "instance_pool_id": "pool-7",
            "pool_node_type_id": "m5.xlarge",
            "pool_min_idle_instances": 3,
            "pool_custom_tags": '{"team":"platform"}',
        }
    )
    ev = events(("c", 0, "RUNNING", 2, 2), ("c", 60, "TERMINATING", None, None))
    out = costs(job_runs(), cl, ev)
    row = one(out, cluster_id="pool-7")
    assert row["consumer"] == "idle" and money(row) == pytest.approx((0.0, 0.0, 3 * 24 * 0.192, 3 * 24 * 0.192))


def test_photon_factor_comes_from_the_price_sheet():
    # Photon jobs SKU: factor 2.5, $0.20/DBU. 1 h × 3 nodes × 2.0 × 2.5 = 15 DBU → $3.00.
    dp = dbu_prices(
        {"sku_name": "PREMIUM_JOBS_COMPUTE", "workload": "jobs", "price": 0.15},
        {
            "sku_name": "PREMIUM_JOBS_COMPUTE_(PHOTON)",
            "workload": "jobs",
            "is_photon": True,
            "photon_dbu_factor": 2.5,
            "price": 0.20,
        },
    )
    cl = clusters({"cluster_id": "j", "cluster_source": "JOB", "is_photon": True, "runtime_engine": "PHOTON"})
    ev = events(("j", 0, "RUNNING", 2, 2), ("j", 60, "TERMINATING", None, None))
    jr = job_runs(
        {"task_run_id": 1, "cluster_id": "j", "start_time": at(0), "end_time": at(60), "compute_type": "job_cluster"}
    )
    row = one(costs(jr, cl, ev, dp=dp), task_run_id=1)
    assert row["sku_name"] == "PREMIUM_JOBS_COMPUTE_(PHOTON)"
    assert money(row) == pytest.approx((15.0, 3.0, 0.576, 3.576))


@pytest.mark.parametrize(
    "case",
    ["unknown_node_type", "unknown_sku_tier", "no_events"],
)
def test_unpriced_rows_are_kept_with_null_money(case):
    cl = clusters({"cluster_id": "c", "node_type_id": "x9.mystery" if case == "unknown_node_type" else "m5.xlarge"})
    ev = events() if case == "no_events" else events(("c", 0, "RUNNING", 2, 2), ("c", 60, "TERMINATING", None, None))
    jr = job_runs({"task_run_id": 1, "cluster_id": "c", "start_time": at(10), "end_time": at(40)})
    out = costs(jr, cl, ev, tier="ENTERPRISE" if case == "unknown_sku_tier" else "PREMIUM")
    row = one(out, consumer="run")
    assert row["unpriced"] is True
    assert money(row) == (None, None, None, None)
    assert row["runtime_hours"] == pytest.approx(0.5)
    if case != "no_events":
        assert one(out, consumer="idle")["unpriced"] is True


def test_serverless_and_clusterless_runs_are_not_cluster_costs():
    cl = clusters({"cluster_id": "c"})
    ev = events(("c", 0, "RUNNING", 2, 2), ("c", 60, "TERMINATING", None, None))
    jr = job_runs(
        {"task_run_id": 1, "cluster_id": "c", "start_time": at(0), "end_time": at(60)},
        {"task_run_id": 2, "cluster_id": None, "start_time": at(0), "end_time": at(60), "compute_type": "serverless"},
    )
    assert costs(jr, cl, ev)["task_run_id"].drop_nulls().to_list() == [1]


def test_active_run_is_clipped_at_day_end():
    # Cluster up since yesterday (look-back), run started 22:00 and still active: 2 h today, all the cost
    # from 22:00 on; the idle row gets 00:00–22:00.
    cl = clusters({"cluster_id": "c"})
    ev = events(("c", -30, "RUNNING", 2, 2))
    jr = job_runs({"task_run_id": 1, "cluster_id": "c", "start_time": at(22 * 60), "end_time": None})
    out = costs(jr, cl, ev)
    run = one(out, consumer="run")
    assert run["runtime_hours"] == pytest.approx(2.0)
    assert run["dbus"] == pytest.approx(2 * 6.0)
    assert one(out, consumer="idle")["dbus"] == pytest.approx(22 * 6.0)


def test_invalid_weight_names_the_row():
    cl = clusters({"cluster_id": "c"})
    jr = job_runs({"task_run_id": 5, "cluster_id": "c", "start_time": at(0), "end_time": at(1)})
    with pytest.raises(ValueError, match=r"weight.*\[5\]"):
        run_costs(jr.with_columns(pl.lit(0.0).alias("weight")), jobs({"job_id": 1}), cl, events(), IT, DP, DAY)


def test_output_contract_columns_and_types():
    out = costs(job_runs(), clusters(), events())
    assert out.columns == RUN_COSTS_COLUMNS
    assert out.schema["usage_date"] == pl.Date and out.schema["job_id"] == pl.Int64


def test_segments_for_day_matches_the_proposed_contract():
    cl = clusters(
        {"cluster_id": "c", "availability": "SPOT_WITH_FALLBACK", "first_on_demand": 1},
        {"cluster_id": "s", "is_single_node": True, "num_workers": 0},
    )
    ev = events(
        ("c", -30, "RUNNING", 2, 2),
        ("c", 20, "RESIZING", 2, 5),
        ("c", 22, "UPSIZE_COMPLETED", 5, 5),
        ("c", 30, "NODES_LOST", 4, 5, {"reason_code": "SPOT_INSTANCE_TERMINATION"}),
        ("c", 200, "TERMINATING", None, None),
        ("s", 10, "STARTING", None, None),
        ("s", 12, "RUNNING", 0, 0),
        ("ghost", 10, "RUNNING", 1, 1),  # events for a cluster missing from raw.clusters
    )
    seg = segments_for_day(cl, ev, DAY, pools=pools({"instance_pool_id": "p", "idle_instances": 1}))
    schemas.ClusterSegments.validate(seg)
    schemas.ClusterSegments.validate(seg)
    assert set(seg["cluster_id"]) == {"c", "s", "ghost", "p"}


def test_cost_by_cluster_hour_reconciles_with_run_costs():
    # Contract price $0.12 (list $0.15): list/contract columns differ, totals use the effective price ($0.12).
    dp = dbu_prices(
        {
            "sku_name": "PREMIUM_ALL_PURPOSE_COMPUTE",
            "workload": "all_purpose",
            "list_price": 0.15,
            "contract_discount": 0.2,
            "contract_price": 0.12,
            "effective_price": 0.12,
        }
    )
    cl = clusters({"cluster_id": "c"})
    ev = events(("c", 0, "RUNNING", 2, 2), ("c", 150, "TERMINATING", None, None))
    jr = job_runs(
        {"task_run_id": 1, "cluster_id": "c", "start_time": at(0), "end_time": at(100)},
        {"task_run_id": 2, "cluster_id": "c", "start_time": at(50), "end_time": at(120)},
    )
    jb = jobs({"job_id": 1})
    hourly = cost_by_cluster_hour(jr, cl, ev, IT, dp, DAY)
    daily = run_costs(jr, jb, cl, ev, IT, dp, DAY)
    # 150 min × 0.1 DBU/min = 15 DBU: list 15 × 0.15 = 2.25, contract/effective 15 × 0.12 = 1.80.
    assert hourly["dbus"].sum() == pytest.approx(15.0)
    assert hourly["dbu_list_cost_usd"].sum() == pytest.approx(2.25)
    assert hourly["dbu_contract_cost_usd"].sum() == pytest.approx(1.80)
    assert hourly["total_cost_usd"].sum() == pytest.approx(daily["total_cost_usd"].sum())
    shares = hourly.group_by("hour_start").agg(pl.col("dbu_share").sum(), pl.col("cost_share").sum())
    assert shares["dbu_share"].to_list() == pytest.approx([1.0, 1.0, 1.0])
    assert shares["cost_share"].to_list() == pytest.approx([1.0, 1.0, 1.0])
    # Hour 00: run 1 alone 0–50, with run 2 50–60 → run 1 = (50 + 5)/60, run 2 = 5/60.
    h0 = {r["task_run_id"]: r["dbu_share"] for r in hourly.filter(pl.col("hour_start") == at(0)).to_dicts()}
    assert h0 == pytest.approx({1: 55 / 60, 2: 5 / 60})


def test_batches_of_clusters_give_the_same_result(monkeypatch):
    # Shared, job and single-node clusters plus a pool; forcing tiny batches must not change a number.
    cl = clusters(
        {"cluster_id": "c", "custom_tags": '{"team":"t"}'},
        {"cluster_id": "j", "cluster_source": "JOB", "availability": "SPOT_WITH_FALLBACK", "first_on_demand": 1},
        {"cluster_id": "s", "is_single_node": True, "num_workers": 0},
    )
    ev = events(
        ("c", -30, "RUNNING", 2, 2),
        ("c", 300, "TERMINATING", None, None),
        ("j", 10, "CREATING", None, 3),
        ("j", 14, "RUNNING", 3, 3),
        ("j", 50, "NODES_LOST", 2, 3, {"reason_code": "SPOT_INSTANCE_TERMINATION"}),
        ("j", 51, "RESIZING", 2, 3),
        ("j", 53, "UPSIZE_COMPLETED", 3, 3),
        ("j", 130, "TERMINATING", None, None),
        ("s", 100, "RUNNING", 0, 0),
    )
    jr = job_runs(
        {"task_run_id": 1, "cluster_id": "c", "start_time": at(0), "end_time": at(100)},
        {"task_run_id": 2, "cluster_id": "c", "start_time": at(50), "end_time": None},
        {"task_run_id": 3, "cluster_id": "j", "start_time": at(12), "end_time": at(120), "compute_type": "job_cluster"},
        {"task_run_id": 4, "cluster_id": "j", "start_time": at(20), "end_time": at(90), "compute_type": "job_cluster"},
        {"task_run_id": 5, "cluster_id": "s", "start_time": at(110), "end_time": at(200)},
    )
    pool = pools({"instance_pool_id": "p", "idle_instances": 3})
    whole = costs(jr, cl, ev, pools=pool)
    hourly = cost_by_cluster_hour(jr, cl, ev, IT, DP, DAY, pools=pool)
    monkeypatch.setattr(engine_module, "SEGMENTS_PER_BATCH", 1)
    # Same rows and numbers; sums may differ in the last bit, as the order rows are added in is not fixed (the
    # hourly estimate is not sorted: at a million rows the sort would cost more than computing it).
    assert_frame_equal(costs(jr, cl, ev, pools=pool), whole, check_exact=False, rel_tol=1e-12)
    by = ["cluster_id", "hour_start", "consumer", "task_run_id"]
    batched = cost_by_cluster_hour(jr, cl, ev, IT, DP, DAY, pools=pool)
    assert_frame_equal(
        batched.sort(by, nulls_last=True), hourly.sort(by, nulls_last=True), check_exact=False, rel_tol=1e-12
    )
    assert set(whole["cluster_id"]) == {"c", "j", "s", "p"}


def test_a_job_cluster_tearing_down_after_midnight_bills_its_run_not_idle():
    # The run (job 7, run 70) ended the day before; its cluster terminated at 00:10. No task run today.
    cl = clusters({"cluster_id": "jc", "cluster_source": "JOB", "cluster_name": "job-7-run-70", "num_workers": 2})
    ev = events(("jc", -60, "RUNNING", 2, 2), ("jc", 10, "TERMINATING", None, None))
    out = costs(job_runs(), cl, ev, jb=jobs({"job_id": 7, "team": "etl"}))
    row = one(out, cluster_id="jc")
    assert (row["consumer"], row["run_id"], row["job_id"], row["task_run_id"]) == ("run", 70, 7, None)
    assert row["team"] == "etl"  # the owner job's tags
    # 00:00-00:10, 3 nodes of 2.0 DBU/h: 3 × 2.0 × 10/60 = 1.0 DBU; VM 3 × 0.192 × 10/60 = $0.096.
    dbus = 3 * 2.0 * 10 / 60
    assert money(row) == pytest.approx((dbus, dbus * 0.15, 3 * 0.192 * 10 / 60, dbus * 0.15 + 3 * 0.192 * 10 / 60))
    hourly = cost_by_cluster_hour(job_runs(), cl, ev, IT, DP, DAY)
    assert hourly["consumer"].to_list() == ["run"] and hourly["run_id"].to_list() == [70]


def test_a_day_with_nothing_gives_empty_tables_that_obey_the_contracts():
    # No runs, clusters or events (a new workspace, or a quiet day): every output is empty, with its columns
    # and dtypes, so the day's partitions are written and downstream reads an empty day, not a failure.
    hourly = cost_by_cluster_hour(job_runs(), clusters(), events(), IT, DP, DAY)
    schemas.EstimatedCosts.validate(hourly)
    segments = segments_for_day(clusters(), events(), DAY)
    schemas.ClusterSegments.validate(segments)
    out = costs(job_runs(), clusters(), events())
    assert (hourly.height, segments.height, out.height) == (0, 0, 0)
