"""Contract: the live HTTP client against the mock server yields the same raw tables as the in-process
simulated resources, frame for frame, and costs the calls the fetch plan promises.

Two servers over the same tiny world: one with the real limits (25 runs per page, arrays paged above
100) and one with small limits so that every paging path (runs/list tokens, 2.2 runs/get and jobs/get
array pages, clusters/list tokens, clusters/events ``next_page``, SQL chunks) is taken.
"""

import datetime as dt
import math

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cost_assets import schemas
from cost_assets.assets import raw
from cost_assets.ingest import fetch, parse
from cost_assets.ingest.http import ApiClient, OAuthM2MCredentials
from cost_assets.mock_server import MockOptions, MockServer
from cost_assets.resources.billing import AccountApiBillingSource, SystemTablesBillingSource
from cost_assets.resources.databricks import DatabricksConnection, LiveWorkspace
from cost_assets.resources.simulated import SimulatedBillingSource, SimulatedWorkspace, SimulatedWorld
from cost_assets.resources.warehouse import read_table, storage_resources
from cost_assets.simulation.api import SimulatedApi
from cost_assets.simulation.world import DAY, WorldConfig

CFG = WorldConfig(seed=5, scale="tiny", start=dt.date(2026, 1, 1), days=3)
WORLD = SimulatedWorld(seed=5, scale="tiny", start="2026-01-01", days=3)
DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
TOKEN = "dapi-mock-token"
TABLES = ("job_runs", "jobs", "clusters", "cluster_events", "instance_pools")
PAGED = {"runs_page_size": 4, "events_page_size": 3, "clusters_page_size": 2}


def connection(server: MockServer, **kwargs) -> DatabricksConnection:
    return DatabricksConnection(host=server.url, token=TOKEN, max_requests_per_second=0, **kwargs)


@pytest.fixture(scope="module")
def real_limits():
    with MockServer(MockOptions(world=CFG)) as server:
        yield server


@pytest.fixture(scope="module")
def small_limits():
    with MockServer(MockOptions(world=CFG, array_limit=2, sql_chunk_rows=5)) as server:
        yield server


def assert_same_tables(got: fetch.WorkspaceDay, expected: fetch.WorkspaceDay) -> None:
    for name in TABLES:
        assert_frame_equal(getattr(got, name), getattr(expected, name))


def calls(server: MockServer, key: str) -> int:
    return server.mock.calls[key]


def listed_runs(day: dt.date) -> list[dict]:
    """The runs fetch_day lists for ``day``: started in the two days before it or on it."""
    lo = parse.to_ms(parse.day_bounds(day)[0])
    return list(SimulatedApi(CFG).list_runs(lo - 2 * DAY, lo + DAY - 1))


def job_clusters_of(runs: list[dict]) -> set[str]:
    """Every job cluster of the runs' tasks: each is looked at once (clusters/get) to see whether it was
    up during the day, whether or not one of its tasks overlaps the day (tear-down across midnight)."""
    return {t["cluster_instance"]["cluster_id"] for r in runs for t in r["tasks"] if "existing_cluster_id" not in t}


@pytest.mark.parametrize("day", DAYS)
def test_workspace_tables_equal_with_every_paging_path(small_limits, day):
    expected = fetch.fetch_day(SimulatedApi(CFG), day)
    before = small_limits.mock.calls.copy()
    got = LiveWorkspace(connection=connection(small_limits), **PAGED).fetch([day])
    assert_same_tables(got, expected)

    # The call bill, from the paging rules: ceil(n / page) per listing, at least one call each.
    made = small_limits.mock.calls - before
    sim = SimulatedApi(CFG)
    lo = parse.to_ms(parse.day_bounds(day)[0])
    runs = list(sim.list_runs(lo - 2 * DAY, lo + DAY - 1))
    pages = lambda n, size: max(1, math.ceil(n / size))  # noqa: E731
    assert made["GET /api/2.2/jobs/runs/list"] == pages(len(runs), 4)
    assert made["GET /api/2.2/jobs/runs/get"] == sum(pages(len(r["tasks"]), 2) for r in runs if len(r["tasks"]) > 2)
    jobs = [sim.get_job(j) for j in expected.jobs["job_id"]]
    assert made["GET /api/2.2/jobs/get"] == sum(pages(len(j["settings"]["tasks"]), 2) for j in jobs)
    job_clusters = expected.clusters.filter(cluster_source="JOB")["cluster_id"].to_list()
    assert set(job_clusters) <= job_clusters_of(runs)
    assert made["GET /api/2.1/clusters/get"] == len(job_clusters_of(runs))
    assert made["GET /api/2.1/clusters/list"] == 1  # one all-purpose cluster: one page of 2
    assert made["GET /api/2.0/instance-pools/list"] == 1  # not paged: one call a day
    assert expected.instance_pools["instance_pool_id"].to_list() == sorted(sim.world.pools) != []
    asked = sorted(set(expected.clusters["cluster_id"]) | {"0701-000000-0dbfa9c7"})
    assert made["POST /api/2.1/clusters/events"] == sum(
        pages(len(sim.cluster_events(c, lo - 2 * DAY, lo + DAY - 1)), 3) for c in asked
    )
    assert got.stats["calls"] == sum(made.values())


def test_a_day_costs_the_planned_calls_at_real_limits(real_limits):
    day = DAYS[1]
    expected = fetch.fetch_day(SimulatedApi(CFG), day)
    before = real_limits.mock.calls.copy()
    got = LiveWorkspace(connection=connection(real_limits)).fetch([day])
    assert_same_tables(got, expected)
    made = real_limits.mock.calls - before
    job_clusters = expected.clusters.filter(cluster_source="JOB").height
    assert dict(made) == {
        "GET /api/2.2/jobs/runs/list": 1,  # ceil(runs / 25) with fewer than 25 runs
        "GET /api/2.1/clusters/list": 1,
        "GET /api/2.0/instance-pools/list": 1,  # every pool, once a day (not paged)
        # One per job cluster of the listed runs (those of the day's tasks, and those of tasks that ended
        # before 00:00: up after midnight?); all-purpose ones come listed.
        "GET /api/2.1/clusters/get": len(job_clusters_of(listed_runs(day))),
        "POST /api/2.1/clusters/events": job_clusters + 1,  # one page per cluster (+ the shared one)
        "GET /api/2.2/jobs/get": expected.jobs.height,  # one per distinct job; no runs/get at all
    }
    assert got.stats["calls"] == sum(made.values())
    assert got.stats["calls/api/2.2/jobs/runs/list"] == 1 and got.stats["retries"] == 0


def test_backfill_of_several_days_equals_days_alone_and_gets_each_object_once(real_limits):
    before = real_limits.mock.calls.copy()
    got = LiveWorkspace(connection=connection(real_limits)).fetch(DAYS)
    expected = fetch.fetch_days(SimulatedApi(CFG), DAYS)
    assert_same_tables(got, expected)
    made = real_limits.mock.calls - before
    assert made["GET /api/2.2/jobs/get"] == expected.jobs["job_id"].n_unique()
    assert made["GET /api/2.1/clusters/get"] == len(set().union(*(job_clusters_of(listed_runs(d)) for d in DAYS)))
    assert made["GET /api/2.1/clusters/list"] == 1 and made["GET /api/2.2/jobs/runs/list"] == len(DAYS)


def test_jobs_api_2_1_fallback_on_older_workspaces():
    with MockServer(MockOptions(world=CFG, jobs_api_versions=("2.1",))) as server:
        got = LiveWorkspace(connection=connection(server)).fetch([DAYS[0]])
        assert_same_tables(got, fetch.fetch_day(SimulatedApi(CFG), DAYS[0]))
        assert calls(server, "GET /api/2.2/jobs/runs/list") == 1  # the one 404, then 2.1 for good
        assert calls(server, "GET /api/2.2/jobs/get") == 0
        assert got.stats["jobs_api_2_1_fallback"] == 1


def test_a_deleted_job_is_a_stub_on_both_paths():
    """jobs/get 404 RESOURCE_DOES_NOT_EXIST (a job deleted after its runs) does not fail the day."""
    day = DAYS[1]
    gone = fetch.fetch_day(SimulatedApi(CFG), day).jobs["job_id"][0]
    with MockServer(MockOptions(world=CFG, deleted_jobs=(gone,))) as server:
        got = LiveWorkspace(connection=connection(server)).fetch([day])
        schemas.Jobs.validate(got.jobs)
    expected = fetch.fetch_day(SimulatedApi(CFG, deleted_jobs=[gone]), day)
    assert_same_tables(got, expected)
    assert got.stats["jobs_missing"] == expected.stats["jobs_missing"] == 1
    stub = expected.jobs.filter(job_id=gone).row(0, named=True)
    assert (stub["job_name"], stub["tags"], stub["team"]) == (None, "{}", None)
    assert gone in expected.job_runs["job_id"].to_list()  # its runs are still there to cost


def test_parsers_ignore_unknown_fields():
    with MockServer(MockOptions(world=CFG, unknown_fields=True, array_limit=2)) as server:
        conn = connection(server)
        live = LiveWorkspace(connection=conn, warehouse_id="wh", **PAGED)
        assert_same_tables(live.fetch([DAYS[0]]), fetch.fetch_day(SimulatedApi(CFG), DAYS[0]))
        assert_frame_equal(live.serving_usage([DAYS[0]]), SimulatedWorkspace(world=WORLD).serving_usage([DAYS[0]]))
        csv = AccountApiBillingSource(connection=conn, account_id=CFG.account_id).usage([DAYS[0]])
        assert csv.height > 0


def test_serving_usage_equal(small_limits):
    live = LiveWorkspace(connection=connection(small_limits), warehouse_id="wh")
    assert_frame_equal(live.serving_usage(DAYS), SimulatedWorkspace(world=WORLD).serving_usage(DAYS))


def test_system_tables_billing_equal(small_limits):
    got = SystemTablesBillingSource(connection=connection(small_limits), warehouse_id="wh").usage(DAYS[:2])
    expected = SimulatedBillingSource(world=WORLD).usage(DAYS[:2])
    assert got.height > 0 and set(got["record_type"]) >= {"ORIGINAL"}
    assert_frame_equal(got.drop("billing_source"), expected.drop("billing_source"))  # only provenance differs
    assert set(got["billing_source"]) == {"system_tables"}
    body = small_limits.mock.sql.executed[-1]
    assert "2026-01" not in body["statement"] and ":first_day" in body["statement"]
    assert body["parameters"] == [
        {"name": "first_day", "type": "DATE", "value": "2026-01-01"},
        {"name": "last_day", "type": "DATE", "value": "2026-01-02"},
    ]


def test_account_api_download_equals_the_bill_per_cluster_hour(small_limits):
    got = AccountApiBillingSource(connection=connection(small_limits), account_id=CFG.account_id).usage(DAYS)
    expected = SimulatedBillingSource(world=WORLD).usage(DAYS).filter(pl.col("cluster_id").is_not_null())
    key = ["cluster_id", "usage_start_time"]

    def net(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.group_by(key).agg(pl.col("usage_quantity").sum()).sort(key)

    assert_frame_equal(net(got), net(expected), abs_tol=1e-6)  # the CSV has 6 decimals
    assert set(got["billing_source"]) == {"account_api"}


class Clock:
    """Time the test moves by hand, shared by the client (token refresh) and the server (token expiry)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_oauth_m2m_token_is_cached_and_refreshed():
    clock = Clock()
    with MockServer(MockOptions(world=CFG, oauth_expires_in=3600), clock=clock) as server:
        credentials = OAuthM2MCredentials(
            token_url=f"{server.url}/oidc/v1/token", client_id="mock-client-id", client_secret="mock-client-secret"
        )
        with ApiClient(server.url, credentials, max_requests_per_second=None, clock=clock) as client:
            for _ in range(3):
                client.get_json("/api/2.0/preview/scim/v2/Me")
            assert calls(server, "POST /oidc/v1/token") == 1  # cached
            clock.now += 3600 - 61  # 61 s before expiry: still the cached token
            client.get_json("/api/2.0/preview/scim/v2/Me")
            assert calls(server, "POST /oidc/v1/token") == 1
            clock.now += 2  # 59 s before expiry: inside the 60 s refresh margin
            client.get_json("/api/2.0/preview/scim/v2/Me")
            assert calls(server, "POST /oidc/v1/token") == 2  # refreshed before the server would refuse it
            clock.now += 3600 - 60  # the first token has expired on the server; the second is still good
            client.get_json("/api/2.0/preview/scim/v2/Me")
        assert calls(server, "GET /api/2.0/preview/scim/v2/Me") == 6


def test_databricks_sdk_pages_through_the_mock(small_limits):
    """Fidelity check: the official SDK follows runs/list tokens, 2.2 runs/get pages and events next_page."""
    from databricks.sdk import WorkspaceClient  # a dev dependency; imported here so only this test needs it
    from databricks.sdk.service.compute import GetEventsOrder

    w = WorkspaceClient(host=small_limits.url, token=TOKEN)
    runs = list(w.jobs.list_runs(expand_tasks=True, start_time_from=CFG.start_ms, start_time_to=CFG.end_ms, limit=4))
    sim = list(SimulatedApi(CFG).list_runs(CFG.start_ms, CFG.end_ms))
    assert [r.run_id for r in runs] == [r["run_id"] for r in sim]
    assert [len(r.tasks) for r in runs] == [len(r["tasks"]) for r in sim]  # capped arrays completed
    cid = "0701-000000-0dbfa9c7"
    events = list(w.clusters.events(cluster_id=cid, order=GetEventsOrder.ASC, limit=7))
    assert [e.timestamp for e in events] == [e["timestamp"] for e in SimulatedApi(CFG).cluster_events(cid, 0, 2**62)]
    # The SDK's default call: DESC, no end_time, 50 per page, following next_page to the oldest event.
    newest_first = [e.timestamp for e in w.clusters.events(cluster_id=cid)]
    assert newest_first == [e.timestamp for e in reversed(events)]


def test_raw_group_materializes_on_the_live_path_from_environment_variables(small_limits, tmp_path, monkeypatch):
    """What ``build_defs`` wires when DATABRICKS_HOST is set: secrets resolved from the environment at run time."""
    monkeypatch.setenv("DATABRICKS_HOST", small_limits.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    monkeypatch.setenv("DATABRICKS_WAREHOUSE_ID", "wh")
    conn = DatabricksConnection(
        host=dg.EnvVar("DATABRICKS_HOST"), token=dg.EnvVar("DATABRICKS_TOKEN"), max_requests_per_second=0
    )
    warehouse = dg.EnvVar("DATABRICKS_WAREHOUSE_ID")
    db = str(tmp_path / "cost.duckdb")
    result = dg.materialize(
        [raw.workspace_tables, raw.billing_usage, raw.serving_usage],
        partition_key="2026-01-02",
        resources={
            "workspace": LiveWorkspace(connection=conn, warehouse_id=warehouse),
            "billing": SystemTablesBillingSource(connection=conn, warehouse_id=warehouse),
            **storage_resources(db),
        },
    )
    assert result.success
    expected = fetch.fetch_day(SimulatedApi(CFG), DAYS[1])
    for name in TABLES:
        assert_frame_equal(read_table(db, f"raw.{name}"), getattr(expected, name), check_row_order=False)
    assert_frame_equal(
        read_table(db, "raw.serving_usage"),
        SimulatedWorkspace(world=WORLD).serving_usage([DAYS[1]]),
        check_row_order=False,
    )
    billed = read_table(db, "raw.billing_usage").drop("billing_source")
    assert_frame_equal(
        billed, SimulatedBillingSource(world=WORLD).usage([DAYS[1]]).drop("billing_source"), check_row_order=False
    )
    meta = result.asset_materializations_for_node("workspace_tables")[0].metadata
    assert meta["api/calls/api/2.2/jobs/runs/list"].value == 1
    assert TOKEN not in "".join(repr(e) for e in result.all_events)
