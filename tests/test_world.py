"""The simulated world: deterministic, and its bill consistent with its ground truth."""

import datetime as dt
import itertools
import json

import polars as pl
import pytest

from cost_assets.prices import load_price_sheet
from cost_assets.simulation import truth, views
from cost_assets.simulation.world import (
    HOUR,
    MINUTE,
    Cluster,
    Node,
    Session,
    World,
    WorldConfig,
    generate_world,
)


def _everything(world: World) -> bytes:
    """Every API view of a world, serialized."""
    sheet = load_price_sheet()
    payload = {
        "runs": [views.run_payload(world, r) for r in world.runs],
        "jobs": [views.job_payload(world, world.jobs[j]) for j in sorted(world.jobs)],
        "clusters": [views.cluster_payload(world, c) for c in sorted(world.clusters)],
        "events": [views.cluster_events(world, c) for c in sorted(world.clusters)],
        "bill": list(views.bill(world, sheet)),
        "serving": views.serving_rows(world),
    }
    return json.dumps(payload, sort_keys=True).encode()


def test_same_seed_gives_byte_identical_output():
    config = WorldConfig(seed=11, scale="tiny", days=3)
    assert _everything(generate_world(config)) == _everything(generate_world(config))


def test_another_seed_gives_another_world():
    a = generate_world(WorldConfig(seed=11, scale="tiny", days=3))
    b = generate_world(WorldConfig(seed=12, scale="tiny", days=3))
    assert _everything(a) != _everything(b)


def test_world_has_the_hard_cases():
    """The default world holds what the cost model must handle."""
    world = generate_world(WorldConfig(days=4))
    clusters = list(world.clusters.values())
    events = [e for c in clusters for s in c.sessions for e in s.events]
    kinds = {e["type"] for e in events}
    assert {"CREATING", "STARTING", "RUNNING", "RESIZING", "UPSIZE_COMPLETED", "NODES_LOST", "TERMINATING"} <= kinds
    assert any(c.single_node for c in clusters) and any(c.pool_id for c in clusters)
    assert any(c.photon for c in clusters) and any(c.autoscale for c in clusters)
    assert any(c.source != "JOB" for c in clusters)
    tasks = [t for r in world.runs for t in r.tasks]
    assert any(t.attempt > 0 for t in tasks), "retries"
    assert any(r.repairs for r in world.runs), "repairs"
    assert any(len({t.task_key for t in r.tasks}) > 1 for r in world.runs), "multi-task runs"
    assert any(t.start // (24 * HOUR) != t.end // (24 * HOUR) for t in tasks), "a task across midnight"
    shared = {c.cluster_id for c in clusters if c.source != "JOB"}
    overlaps = 0
    for cid in shared:
        spans = sorted((t.start, t.end, r.job_id) for r in world.runs for t in r.tasks if t.cluster_id == cid)
        overlaps += sum(1 for a, b in itertools.pairwise(spans) if b[0] < a[1] and a[2] != b[2])
    assert overlaps > 0, "overlapping runs of different jobs on a shared cluster"
    assert any(c.name.startswith("job-") and "-run-" in c.name for c in clusters)
    # An always-on cluster: its state at 00:00 lies further back than the 2-day event look-back.
    assert any(s.end - s.start > 3 * 24 * HOUR for c in clusters for s in c.sessions)
    # Downscales are logged the Databricks way: RESIZING with target below current.
    assert any(
        e["type"] == "RESIZING" and e["details"]["target_num_workers"] < e["details"]["current_num_workers"]
        for e in events
    )


def test_aws_world_uses_aws_node_types():
    world = generate_world(WorldConfig(scale="tiny", days=2, cloud="AWS"))
    payload = views.cluster_payload(world, sorted(world.clusters)[0])
    assert "aws_attributes" in payload and "." in payload["node_type_id"]


def _ms(hh: int, mm: int) -> int:
    return int(dt.datetime(2026, 3, 10, tzinfo=dt.UTC).timestamp() * 1000) + hh * HOUR + mm * MINUTE


@pytest.fixture
def hand_world() -> World:
    """One Photon all-purpose cluster of Standard_DS3_v2 on Azure, Premium, no billing corrections.

    Session 10:00 → RUNNING 10:05 → TERMINATING 12:30. Nodes (provisioned, ready, released):
      driver 10:00, 10:05, 12:30;  w1 10:00, 10:05, 12:30;  w2 10:00, 10:05, 11:30 (scaled down);
      w3 10:50, 10:55, 12:30 (scaled up).
    """
    c = Cluster(
        cluster_id="0310-100000-handmade",
        name="shared-hand",
        source="UI",
        node_type="Standard_DS3_v2",
        driver_node_type="Standard_DS3_v2",
        photon=True,
        single_node=False,
        num_workers=None,
        autoscale=(1, 3),
        availability="ON_DEMAND_AZURE",
        first_on_demand=1,
        pool_id=None,
        custom_tags={"team": "hand"},
        creator="me@example.com",
    )
    s = Session(start=_ms(10, 0), running=_ms(10, 5), end=_ms(12, 30))
    s.nodes = [
        Node("driver", "Standard_DS3_v2", False, _ms(10, 0), _ms(10, 5), _ms(12, 30)),
        Node("worker", "Standard_DS3_v2", False, _ms(10, 0), _ms(10, 5), _ms(12, 30)),
        Node("worker", "Standard_DS3_v2", False, _ms(10, 0), _ms(10, 5), _ms(11, 30)),
        Node("worker", "Standard_DS3_v2", False, _ms(10, 50), _ms(10, 55), _ms(12, 30)),
    ]
    c.sessions = [s]
    config = WorldConfig(start=dt.date(2026, 3, 10), days=1, correction_rate=0.0)
    return World(config=config, jobs={}, clusters={c.cluster_id: c}, runs=[], pools={}, endpoints=[], requests=[])


def test_billed_dbus_per_cluster_hour_match_ready_nodes_by_hand(hand_world):
    # DS3_v2 is 0.75 DBU/h; all-purpose Photon multiplies by 2.0 → 1.5 DBU per ready node-hour.
    rate = 0.75 * 2.0
    expected = {
        # 10:00-11:00: driver, w1, w2 ready 55 min each; w3 ready 5 min → 170 node-minutes
        "2026-03-10T10:00:00.000Z": (55 + 55 + 55 + 5) / 60 * rate,  # 4.25
        # 11:00-12:00: driver, w1, w3 60 min; w2 30 min → 210 node-minutes
        "2026-03-10T11:00:00.000Z": (60 + 60 + 30 + 60) / 60 * rate,  # 5.25
        # 12:00-12:30: driver, w1, w3 30 min → 90 node-minutes
        "2026-03-10T12:00:00.000Z": (30 + 30 + 30) / 60 * rate,  # 2.25
    }
    rows = views.bill(hand_world, load_price_sheet())
    billed = {r["usage_start_time"]: float(r["usage_quantity"]) for r in rows}
    assert billed.keys() == expected.keys()
    for hour, dbus in expected.items():
        assert billed[hour] == pytest.approx(dbus, rel=1e-12)
    assert {r["sku_name"] for r in rows} == {"PREMIUM_ALL_PURPOSE_COMPUTE_(PHOTON)"}
    assert {r["record_type"] for r in rows} == {"ORIGINAL"}


def test_truth_vm_hours_count_provisioned_nodes_from_request(hand_world):
    hours = truth.cluster_hours(hand_world, load_price_sheet()).sort("hour_start")
    # Machine hours: driver, w1, w2 from 10:00, w3 from 10:50 → 10:00-11:00: 60+60+60+10 minutes.
    assert hours["machine_hours"].to_list() == pytest.approx([190 / 60, 210 / 60, 90 / 60])
    # DS3_v2 on-demand $0.23/h, all nodes on demand.
    assert hours["vm_cost_usd"].sum() == pytest.approx((190 + 210 + 90) / 60 * 0.23)


def test_truth_idle_is_everything_on_a_cluster_without_runs(hand_world):
    runs = truth.run_costs(hand_world, load_price_sheet())
    assert runs["consumer"].unique().to_list() == ["idle"]
    assert runs["dbus"].sum() == pytest.approx((170 + 210 + 90) / 60 * 1.5)


def test_generated_bill_nets_to_the_truth():
    """Corrections (RETRACTION + RESTATEMENT) sum back to the true DBUs of every cluster-hour."""
    config = WorldConfig(scale="tiny", days=3, correction_rate=0.5)
    world = generate_world(config)
    sheet = load_price_sheet()
    rows = pl.DataFrame(
        [
            {
                "cluster_id": r["usage_metadata"]["cluster_id"],
                "hour": r["usage_start_time"],
                "q": float(r["usage_quantity"]),
                "type": r["record_type"],
            }
            for r in views.bill(world, sheet)
            if r["usage_metadata"]["cluster_id"]
        ]
    )
    assert rows.filter(pl.col("type") == "RETRACTION").height > 0
    net = rows.group_by("cluster_id", "hour").agg(pl.col("q").sum())
    expected = (
        truth.cluster_hours(world, sheet)
        .filter(pl.col("dbus") > 0)
        .with_columns(hour=pl.col("hour_start").dt.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    )
    joined = expected.join(net, on=["cluster_id", "hour"], how="full", coalesce=True)
    assert joined.height == expected.height
    assert (joined["q"] - joined["dbus"]).abs().max() < 1e-9
