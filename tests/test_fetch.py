"""The per-day fetch plan (cost_assets.ingest.fetch) on a small hand-built world, in-process and live.

The world (2026-03-01 … 03-06, every instant written by hand):

* ``LONG``: a fixed-size (2 workers) shared cluster up from 03-01 08:00 to 03-06 12:00 without a
  restart. After a spot loss and its replacement on 03-02 (NODES_LOST, RESIZING, UPSIZE_COMPLETED) it logs
  nothing for days, so the fixed 2-day event look-back of 03-05 is empty and the state at 00:00 must be
  asked for by walking back.
* ``DOWN``: a shared cluster with one session on 03-01 and the next on 03-06: listed as alive by its
  snapshot (terminated_time on 03-06) but down all of 03-05.
* Job ``SHARED_JOB`` runs on ``LONG`` on 03-05 09:00–10:00.
* Job ``CLUSTER_JOB`` ran twice on 03-04 on its own job clusters: 10:00–11:00 (``EARLY``, gone at 11:01)
  and 23:00–23:50 (``LATE``, whose tear-down crossed midnight: TERMINATING at 03-05 00:10).
"""

import datetime as dt
import itertools

import pytest
from polars.testing import assert_frame_equal

from cost_assets.ingest import fetch, parse
from cost_assets.ingest.http import ApiError
from cost_assets.mock_server import Faults, MockOptions, MockServer
from cost_assets.resources.databricks import DatabricksConnection, LiveWorkspace
from cost_assets.simulation import views
from cost_assets.simulation.api import SimulatedApi
from cost_assets.simulation.world import (
    DAY,
    HOUR,
    MINUTE,
    Cluster,
    Job,
    JobRun,
    Node,
    Session,
    TaskRun,
    World,
    WorldConfig,
)

CFG = WorldConfig(seed=4242, scale="tiny", start=dt.date(2026, 3, 1), days=6, correction_rate=0.0)
TOKEN = "dapi-mock-token"
TABLES = ("job_runs", "jobs", "clusters", "cluster_events")
PAGED = {"runs_page_size": 2, "events_page_size": 3, "clusters_page_size": 1}
LONG, DOWN = "0301-080000-longlife", "0301-070000-downtime"
EARLY, LATE = "0304-100000-earlyjob", "0304-230000-latejob0"
SHARED_JOB, CLUSTER_JOB = 501, 502
SPEC = {
    "node_type": "Standard_DS3_v2",
    "driver_node_type": "Standard_DS3_v2",
    "photon": False,
    "single_node": False,
    "num_workers": 2,
    "autoscale": None,
    "availability": "ON_DEMAND_AZURE",
    "first_on_demand": 1,
    "pool_id": None,
}


def at(day: int, hh: int, mm: int = 0) -> int:
    """2026-03-<day> hh:mm UTC in epoch ms."""
    return CFG.start_ms + (day - 1) * DAY + hh * HOUR + mm * MINUTE


def day_ms(day: dt.date) -> int:
    return parse.to_ms(parse.day_bounds(day)[0])


def ev(c: Cluster, ts: int, kind: str, **details) -> dict:
    return {"cluster_id": c.cluster_id, "timestamp": ts, "type": kind, "details": details}


def cluster(cluster_id: str, name: str, source: str, tags: dict) -> Cluster:
    return Cluster(
        cluster_id=cluster_id,
        name=name,
        source=source,
        custom_tags=tags,
        creator="me@example.com",
        **{
            k: SPEC[k]
            for k in (
                "node_type",
                "driver_node_type",
                "photon",
                "single_node",
                "num_workers",
                "autoscale",
                "availability",
                "first_on_demand",
                "pool_id",
            )
        },
    )


def session(c: Cluster, start: int, end: int, first: bool, between: list[dict] = ()) -> Session:
    """CREATING/STARTING → RUNNING 5 min later (2 workers) → ``between`` → TERMINATING; nodes to match."""
    running = start + 5 * MINUTE
    s = Session(start=start, running=running, end=end)
    s.nodes = [Node(role, c.node_type, False, start, running, end) for role in ("driver", "worker", "worker")]
    s.events = [
        ev(c, start, "CREATING" if first else "STARTING", cluster_size={"num_workers": 2}),
        ev(c, running, "RUNNING", current_num_workers=2, target_num_workers=2),
        *between,
        ev(c, end, "TERMINATING", reason={"code": "INACTIVITY", "type": "SUCCESS", "parameters": {}}),
    ]
    return s


def build_world() -> World:
    long = cluster(LONG, "shared-long", "UI", {"team": "platform"})
    long.sessions = [
        session(
            long,
            at(1, 8),
            at(6, 12),
            True,
            [
                ev(long, at(1, 8, 2), "INIT_SCRIPTS_STARTED"),  # not a state-fixing type: the walk-back skips it
                ev(
                    long,
                    at(2, 10),
                    "NODES_LOST",
                    current_num_workers=1,
                    target_num_workers=2,
                    reason={"code": "SPOT_INSTANCE_TERMINATION", "type": "CLOUD_FAILURE", "parameters": {}},
                ),
                ev(
                    long,
                    at(2, 10, 1),
                    "RESIZING",
                    current_num_workers=1,
                    target_num_workers=2,
                    cause="REPLACE_BAD_NODES",
                ),
                ev(long, at(2, 10, 4), "UPSIZE_COMPLETED", current_num_workers=2, target_num_workers=2),
            ],
        )
    ]
    long.sessions[0].events.sort(key=lambda e: e["timestamp"])
    down = cluster(DOWN, "shared-down", "API", {"team": "ops"})
    down.sessions = [session(down, at(1, 7), at(1, 12), True), session(down, at(6, 8), at(6, 10), False)]
    jobs = {
        SHARED_JOB: Job(
            SHARED_JOB,
            "on-long",
            {"team": "data-eng"},
            "me@example.com",
            at(1, 0) - 30 * DAY,
            "shared",
            ["main"],
            SPEC,
            LONG,
        ),
        CLUSTER_JOB: Job(
            CLUSTER_JOB,
            "own-cluster",
            {"team": "ml"},
            "me@example.com",
            at(1, 0) - 30 * DAY,
            "job_cluster",
            ["main"],
            SPEC,
            None,
        ),
    }
    clusters = {LONG: long, DOWN: down}
    runs = [
        JobRun(
            SHARED_JOB,
            9001,
            at(5, 9),
            at(5, 10),
            "PERIODIC",
            [TaskRun("main", 9002, LONG, None, at(5, 9), at(5, 10), 0, "SUCCESS")],
            {},
        )
    ]
    for cid, run_id, start, end, gone in (
        (EARLY, 9101, at(4, 10), at(4, 11), at(4, 11, 1)),
        (LATE, 9201, at(4, 23), at(4, 23, 50), at(5, 0, 10)),
    ):
        c = cluster(cid, f"job-{CLUSTER_JOB}-run-{run_id}", "JOB", {"team": "ml"})
        c.sessions = [session(c, start, gone, True)]
        clusters[cid] = c
        runs.append(
            JobRun(
                CLUSTER_JOB,
                run_id,
                start,
                end,
                "PERIODIC",
                [TaskRun("main", run_id + 1, cid, "main", start + 5 * MINUTE, end - MINUTE, 0, "SUCCESS")],
                {"main": cid},
            )
        )
    runs.sort(key=lambda r: (r.start, r.run_id))
    return World(config=CFG, jobs=jobs, clusters=clusters, runs=runs, pools={}, endpoints=[], requests=[])


@pytest.fixture(autouse=True)
def hand_world(monkeypatch) -> World:
    """``views.world_for(CFG)`` is the hand-built world, for SimulatedApi and the mock server alike."""
    world, generated = build_world(), views.world_for
    monkeypatch.setattr(views, "world_for", lambda config: world if config == CFG else generated(config))
    return world


def live(server: MockServer, **kwargs) -> LiveWorkspace:
    return LiveWorkspace(
        connection=DatabricksConnection(host=server.url, token=TOKEN, max_requests_per_second=0, max_attempts=1),
        **kwargs,
    )


def assert_same_tables(got: fetch.WorkspaceDay, expected: fetch.WorkspaceDay) -> None:
    for name in TABLES:
        assert_frame_equal(getattr(got, name), getattr(expected, name))


def events_of(got: fetch.WorkspaceDay, cluster_id: str) -> list[tuple[str, bool]]:
    frame = got.cluster_events.filter(cluster_id=cluster_id)
    return list(zip(frame["event_type"], frame["is_lookback"], strict=True))


# --- long-running clusters: the state at 00:00 ------------------------------------------------------------


def test_cluster_up_longer_than_the_lookback_window_is_walked_back_to_its_last_lifecycle_event():
    got = fetch.fetch_day(SimulatedApi(CFG), dt.date(2026, 3, 5))
    # Nothing in the fixed window (03-03 00:00 → 03-05): the walk-back found CREATING on 03-01 and kept the
    # state-fixing events since (not INIT_SCRIPTS_STARTED), all before 00:00.
    assert events_of(got, LONG) == [
        ("CREATING", True),
        ("RUNNING", True),
        ("NODES_LOST", True),
        ("RESIZING", True),
        ("UPSIZE_COMPLETED", True),
    ]
    assert LONG in got.clusters["cluster_id"].to_list()
    # DOWN's walk-back ends on its TERMINATING of 03-01: down at 00:00, no event all day, not kept.
    assert DOWN not in got.clusters["cluster_id"].to_list() and not events_of(got, DOWN)
    assert got.stats["clusters_walked_back"] == 2


def test_walk_back_adds_what_precedes_a_window_without_lifecycle_events():
    got = fetch.fetch_day(SimulatedApi(CFG), dt.date(2026, 3, 4))
    # The window (from 03-02 00:00) holds the spot loss; the walk-back from before it adds RUNNING and
    # CREATING of 03-01.
    assert events_of(got, LONG) == [
        ("CREATING", True),
        ("RUNNING", True),
        ("NODES_LOST", True),
        ("RESIZING", True),
        ("UPSIZE_COMPLETED", True),
    ]
    assert [e["type"] for e in SimulatedApi(CFG).cluster_events(LONG, day_ms(dt.date(2026, 3, 2)), at(5, 0))] == [
        "NODES_LOST",
        "RESIZING",
        "UPSIZE_COMPLETED",
    ]


def test_a_cluster_with_a_lifecycle_event_in_the_window_is_not_walked_back():
    got = fetch.fetch_day(SimulatedApi(CFG), dt.date(2026, 3, 2))
    assert events_of(got, LONG)[:3] == [("CREATING", True), ("INIT_SCRIPTS_STARTED", True), ("RUNNING", True)]
    assert DOWN not in got.clusters["cluster_id"].to_list()  # its window shows it down from 03-01 12:00
    assert got.stats["clusters_walked_back"] == 0


def test_walk_back_is_bounded():
    class Endless(SimulatedApi):
        """A cluster with resizes as far back as anyone looks, and no lifecycle event."""

        pulled = 0

        def cluster_events_before(self, cluster_id, end_time, event_types, limit):
            if cluster_id != LONG:
                return super().cluster_events_before(cluster_id, end_time, event_types, limit)

            def resizes():
                for k in itertools.count():
                    Endless.pulled += 1
                    yield {
                        "cluster_id": LONG,
                        "timestamp": end_time - k * MINUTE,
                        "type": "RESIZING",
                        "details": {"current_num_workers": 2, "target_num_workers": 2},
                    }

            return resizes()

    got = fetch.fetch_day(Endless(CFG), dt.date(2026, 3, 5))
    assert Endless.pulled == fetch.WALK_BACK_MAX_EVENTS
    assert events_of(got, LONG) == [("RESIZING", True)] * fetch.WALK_BACK_MAX_EVENTS  # kept as found


# --- job clusters torn down after midnight ---------------------------------------------------------------


def test_job_cluster_torn_down_after_midnight_is_fetched_though_its_run_ended_before():
    got = fetch.fetch_day(SimulatedApi(CFG), dt.date(2026, 3, 5))
    jobs = got.clusters.filter(cluster_source="JOB")["cluster_id"].to_list()
    assert jobs == [LATE]  # EARLY was looked at too, but it was gone at 11:01 the day before
    assert LATE not in got.job_runs["cluster_id"].to_list()  # no task of the day ran on it
    assert events_of(got, LATE) == [("CREATING", True), ("RUNNING", True), ("TERMINATING", False)]
    assert got.stats["job_clusters_up_without_tasks"] == 1


# --- missing jobs -----------------------------------------------------------------------------------------


def test_a_run_whose_job_is_gone_keeps_the_day_with_a_stub_job():
    got = fetch.fetch_day(SimulatedApi(CFG, deleted_jobs=[SHARED_JOB]), dt.date(2026, 3, 5))
    assert got.job_runs["job_id"].to_list() == [SHARED_JOB]  # the run is still costed
    row = got.jobs.row(0, named=True)
    assert (row["job_id"], row["job_name"], row["tags"], row["team"]) == (SHARED_JOB, None, "{}", None)
    assert got.stats["jobs_missing"] == 1


def test_only_not_found_is_tolerated():
    class Failing(SimulatedApi):
        def get_job(self, job_id):
            raise ApiError("jobs/get failed: HTTP 503", method="GET", endpoint="/api/2.2/jobs/get", status=503)

    with pytest.raises(ApiError, match="503"):
        fetch.fetch_day(Failing(CFG), dt.date(2026, 3, 5))


def test_simulated_api_raises_not_found_for_unknown_jobs():
    with pytest.raises(fetch.NotFound):
        SimulatedApi(CFG).get_job(42)


# --- live client against the mock: the same tables --------------------------------------------------------


@pytest.mark.parametrize("day", [dt.date(2026, 3, d) for d in (2, 4, 5, 6)])
def test_live_client_yields_the_same_tables(day):
    with MockServer(MockOptions(world=CFG, deleted_jobs=(SHARED_JOB,))) as server:
        got = live(server, **PAGED).fetch([day])
    expected = fetch.fetch_day(SimulatedApi(CFG, deleted_jobs=[SHARED_JOB]), day)
    assert_same_tables(got, expected)
    for key in ("jobs_missing", "job_clusters_up_without_tasks", "clusters_walked_back", "events_walked_back"):
        assert got.stats[key] == expected.stats[key], key


def test_live_walk_back_pages_newest_first_and_stops_at_the_lifecycle_event():
    with MockServer(MockOptions(world=CFG)) as server:
        got = live(server, **PAGED).fetch([dt.date(2026, 3, 5)])
        made = server.mock.calls["POST /api/2.1/clusters/events"]
    assert events_of(got, LONG)[0] == ("CREATING", True)
    # Pages of 3: LONG's window (empty) 1 + walk-back 2 (UPSIZE_COMPLETED, RESIZING, NODES_LOST | RUNNING,
    # CREATING); DOWN's window 1 + walk-back 1 (TERMINATING first); LATE's window 1 (3 events, CREATING
    # among them: no walk-back). EARLY was gone before 00:00: no events asked for.
    assert made == 6
    assert got.stats["events_walked_back"] == 5 + 1


def test_live_missing_job_is_a_stub_and_asked_for_once_in_a_backfill():
    days = [dt.date(2026, 3, 5), dt.date(2026, 3, 5)]
    with MockServer(MockOptions(world=CFG, deleted_jobs=(SHARED_JOB,))) as server:
        got = live(server).fetch(days)
        asked = server.mock.calls["GET /api/2.2/jobs/get"]
    assert asked == 1  # the 404 is remembered like a found job
    assert got.stats["jobs_missing"] == 2  # once per day
    assert got.jobs["job_name"].to_list() == [None, None]


def test_live_errors_other_than_not_found_still_fail():
    with (
        MockServer(MockOptions(world=CFG, faults=Faults(error_rate=1.0))) as server,
        live(server).api() as api,
        pytest.raises(ApiError) as failure,
    ):
        api.get_job(SHARED_JOB)  # 503, retries exhausted (max_attempts=1)
    assert failure.value.status == 503 and not isinstance(failure.value, fetch.NotFound)
