"""The mock server against the Databricks APIs' wire rules, over real HTTP.

Boundary and paging expectations are derived by hand from the rules (inclusive windows, 25 per page,
arrays paged by the configured limit, ``next_page`` bodies); the world only supplies the run times.
"""

import datetime as dt
import math

import httpx
import pytest

from cost_assets.ingest.parse import LEGACY_CSV_COLUMNS
from cost_assets.mock_server import Faults, MockOptions, MockServer, main, serve_in_thread
from cost_assets.simulation import views
from cost_assets.simulation.world import WorldConfig

CFG = WorldConfig(seed=44, scale="tiny", start=dt.date(2026, 1, 1), days=2)
TOKEN = "dapi-mock-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server():
    with MockServer(MockOptions(world=CFG, array_limit=2, sql_chunk_rows=3)) as s:
        yield s


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, headers=AUTH) as client:
        yield client


def runs_of_world() -> list:
    return sorted(views.world_for(CFG).runs, key=lambda r: (r.start, r.run_id))


def statement(http: httpx.Client, sql: str, params: list | None = None, **extra) -> dict:
    body = {"warehouse_id": "wh", "statement": sql, "parameters": params or [], **extra}
    response = http.post("/api/2.0/sql/statements", json=body)
    assert response.status_code == 200, response.text
    return response.json()


# --- auth and errors -----------------------------------------------------------------------------------


def test_missing_token_is_401_and_wrong_token_403(server):
    r = httpx.get(f"{server.url}/api/2.1/clusters/list")
    assert r.status_code == 401
    assert set(r.json()) == {"error_code", "message"}
    r = httpx.get(f"{server.url}/api/2.1/clusters/list", headers={"Authorization": "Bearer dapi-wrong"})
    assert (r.status_code, r.json()["error_code"]) == (403, "PERMISSION_DENIED")


def test_unknown_endpoint_is_404_endpoint_not_found(http):
    r = http.get("/api/2.3/jobs/runs/list")
    assert (r.status_code, r.json()["error_code"]) == (404, "ENDPOINT_NOT_FOUND")


def test_workspace_responses_carry_the_org_id(http):
    assert http.get("/api/2.0/preview/scim/v2/Me").headers["X-Databricks-Org-Id"] == CFG.workspace_id


# --- Jobs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.1", "2.2"])
def test_runs_list_limit_above_25_is_400(http, version):
    r = http.get(f"/api/{version}/jobs/runs/list", params={"limit": 26})
    assert (r.status_code, r.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert http.get(f"/api/{version}/jobs/runs/list", params={"limit": 25}).status_code == 200


def test_runs_list_limit_0_means_25(http):
    # The tiny world has 17 runs: one page of at most 25 holds them all.
    body = http.get("/api/2.2/jobs/runs/list", params={"limit": 0}).json()
    assert len(body["runs"]) == 17 and body["has_more"] is False and "next_page_token" not in body


def test_runs_list_window_is_inclusive_on_start_time_newest_first(http):
    a, b, c = runs_of_world()[3:6]
    ids = [
        r["run_id"]
        for r in http.get(
            "/api/2.2/jobs/runs/list", params={"start_time_from": a.start, "start_time_to": c.start}
        ).json()["runs"]
    ]
    assert ids == [c.run_id, b.run_id, a.run_id]
    ids = [
        r["run_id"]
        for r in http.get(
            "/api/2.2/jobs/runs/list", params={"start_time_from": a.start + 1, "start_time_to": c.start - 1}
        ).json()["runs"]
    ]
    assert ids == [b.run_id]


def test_runs_list_without_runs_omits_the_key(http):
    body = http.get("/api/2.2/jobs/runs/list", params={"start_time_from": 0, "start_time_to": 1000}).json()
    assert body == {"has_more": False}


def test_runs_list_pages_with_tokens(http):
    seen, calls, params = [], 0, {"limit": 4}
    while True:
        body = http.get("/api/2.2/jobs/runs/list", params=params).json()
        calls += 1
        seen += [r["run_id"] for r in body["runs"]]
        if not body["has_more"]:
            assert "next_page_token" not in body
            break
        params["page_token"] = body["next_page_token"]
    assert calls == math.ceil(17 / 4) == 5
    assert seen == [r.run_id for r in reversed(runs_of_world())]


def test_active_only_with_completed_only_is_400(http):
    r = http.get("/api/2.2/jobs/runs/list", params={"active_only": "true", "completed_only": "true"})
    assert r.status_code == 400
    assert "runs" not in http.get("/api/2.2/jobs/runs/list", params={"active_only": "true"}).json()
    assert len(http.get("/api/2.2/jobs/runs/list", params={"completed_only": "true"}).json()["runs"]) == 17


def test_completed_only_and_active_only_filter_on_end_time():
    active = runs_of_world()[4].run_id
    with (
        MockServer(MockOptions(world=CFG, active_runs=(active,))) as s,
        httpx.Client(base_url=s.url, headers=AUTH) as c,
    ):

        def listed(**flags) -> dict[int, dict]:
            body = c.get("/api/2.2/jobs/runs/list", params={"limit": 25, "expand_tasks": "true", **flags}).json()
            return {r["run_id"]: r for r in body.get("runs", [])}

        every = listed()
        assert len(every) == 17 and every[active]["end_time"] == 0  # still running: end_time 0
        assert every[active]["state"]["life_cycle_state"] == "RUNNING"
        assert any(t["end_time"] == 0 for t in every[active]["tasks"])
        assert all(r["end_time"] > 0 for rid, r in every.items() if rid != active)
        assert set(listed(completed_only="true")) == set(every) - {active}
        assert set(listed(active_only="true")) == {active}
        assert c.get("/api/2.2/jobs/runs/get", params={"run_id": active}).json()["end_time"] == 0


def test_deleted_job_is_404_but_its_runs_stay_listed():
    run = runs_of_world()[0]
    with (
        MockServer(MockOptions(world=CFG, deleted_jobs=(run.job_id,))) as s,
        httpx.Client(base_url=s.url, headers=AUTH) as c,
    ):
        r = c.get("/api/2.2/jobs/get", params={"job_id": run.job_id})
        assert (r.status_code, r.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
        listed = c.get("/api/2.2/jobs/runs/list", params={"limit": 25}).json()["runs"]
        assert run.run_id in {x["run_id"] for x in listed}


def _five_task_run() -> int:
    return next(r.run_id for r in runs_of_world() if len(r.tasks) == 5)


def test_expand_tasks_caps_arrays_in_2_2_only(http):
    run_id = _five_task_run()
    window = {"start_time_from": 0, "start_time_to": 2**60, "limit": 25}
    listed = {
        r["run_id"]: r
        for r in http.get("/api/2.2/jobs/runs/list", params={**window, "expand_tasks": "true"}).json()["runs"]
    }
    assert len(listed[run_id]["tasks"]) == 2 and listed[run_id]["has_more"] is True
    full = {
        r["run_id"]: r
        for r in http.get("/api/2.1/jobs/runs/list", params={**window, "expand_tasks": "true"}).json()["runs"]
    }
    assert len(full[run_id]["tasks"]) == 5 and "has_more" not in full[run_id]
    plain = http.get("/api/2.2/jobs/runs/list", params=window).json()["runs"]
    assert all("tasks" not in r for r in plain)


def test_runs_get_pages_arrays_of_more_than_the_limit(http):
    run_id = _five_task_run()
    pages, params = [], {"run_id": run_id}
    while True:
        page = http.get("/api/2.2/jobs/runs/get", params=params).json()
        pages.append(page)
        if "next_page_token" not in page:
            break
        params["page_token"] = page["next_page_token"]
    assert [len(p["tasks"]) for p in pages] == [2, 2, 1]
    assert [len(p["job_clusters"]) for p in pages] == [1, 0, 0]  # exhausted arrays are empty later
    whole = http.get("/api/2.1/jobs/runs/get", params={"run_id": run_id}).json()
    assert [t for p in pages for t in p["tasks"]] == whole["tasks"]


def test_runs_get_and_jobs_get_unknown_ids_are_404(http):
    for path, key in (("runs/get", "run_id"), ("get", "job_id")):
        r = http.get(f"/api/2.2/jobs/{path}", params={key: 42})
        assert (r.status_code, r.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_jobs_get_has_settings_tags(http):
    job = http.get("/api/2.2/jobs/get", params={"job_id": 123801}).json()
    assert job["job_id"] == 123801 and set(job["settings"]["tags"]) <= {"team", "tenant", "project", "cost_center"}


# --- Clusters ------------------------------------------------------------------------------------------


def test_clusters_get_unknown_is_400(http):
    r = http.get("/api/2.1/clusters/get", params={"cluster_id": "0000-000000-nothere"})
    assert (r.status_code, r.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")


def test_clusters_list_pages_and_filters(http):
    # 16 clusters: 15 job clusters and one API cluster.
    ids, params, calls = [], {"page_size": 4}, 0
    while True:
        body = http.get("/api/2.1/clusters/list", params=params).json()
        calls += 1
        ids += [c["cluster_id"] for c in body["clusters"]]
        if body["next_page_token"] == "":
            break
        params["page_token"] = body["next_page_token"]
    assert calls == 4 and len(ids) == 16 == len(set(ids))
    ui = http.get(
        "/api/2.1/clusters/list", params=[("filter_by.cluster_sources", "UI"), ("filter_by.cluster_sources", "API")]
    ).json()
    assert [c["cluster_id"] for c in ui["clusters"]] == ["0701-000000-6317cf6d"]


def test_cluster_events_next_page_is_the_next_request_body(http):
    cid = "0701-000000-6317cf6d"  # the shared cluster: 119 events in the world
    assert len(http.post("/api/2.1/clusters/events", json={"cluster_id": cid}).json()["events"]) == 50
    r = http.post("/api/2.1/clusters/events", json={"cluster_id": cid, "limit": 501})
    assert (r.status_code, r.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    first = http.post("/api/2.1/clusters/events", json={"cluster_id": cid, "order": "ASC", "limit": 40}).json()
    assert first["total_count"] == 119
    assert first["next_page"] == {"cluster_id": cid, "order": "ASC", "limit": 40, "offset": 40}
    events, body, calls = list(first["events"]), first["next_page"], 1
    while body:
        page = http.post("/api/2.1/clusters/events", json=body).json()
        events += page["events"]
        body, calls = page.get("next_page"), calls + 1
    assert calls == 3 and len(events) == 119
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)
    desc = http.post("/api/2.1/clusters/events", json={"cluster_id": cid, "limit": 500}).json()["events"]
    assert [e["timestamp"] for e in desc] == sorted(stamps, reverse=True)  # DESC is the default


def test_cluster_events_window_is_inclusive(http):
    cid = "0701-000000-6317cf6d"
    all_events = http.post("/api/2.1/clusters/events", json={"cluster_id": cid, "limit": 500}).json()["events"]
    t = sorted(e["timestamp"] for e in all_events)[10]
    window = http.post(
        "/api/2.1/clusters/events", json={"cluster_id": cid, "start_time": t, "end_time": t, "limit": 500}
    ).json()["events"]
    assert [e["timestamp"] for e in window] == [t] * sum(1 for e in all_events if e["timestamp"] == t)


def test_cluster_events_desc_before_end_time_of_some_types_pages_newest_first(http):
    """The walk back to a cluster's state at an instant: order DESC, end_time, event_types, next_page."""
    cid = "0701-000000-6317cf6d"
    kinds = ["RUNNING", "TERMINATING", "STARTING"]
    everything = views.cluster_events(views.world_for(CFG), cid)
    end = sorted(e["timestamp"] for e in everything)[60]
    wanted = [(e["timestamp"], e["type"]) for e in reversed(everything) if e["timestamp"] <= end and e["type"] in kinds]
    assert len(wanted) == 8  # two sessions and the start of a third before end_time, out of 61 events
    body = {"cluster_id": cid, "order": "DESC", "end_time": end, "event_types": kinds, "limit": 2}
    events, calls = [], 0
    while body:
        page = http.post("/api/2.1/clusters/events", json=body).json()
        events += page.get("events", [])
        calls += 1
        if page.get("next_page"):
            assert {k: page["next_page"][k] for k in ("order", "end_time", "event_types")} == {
                "order": "DESC",
                "end_time": end,
                "event_types": kinds,
            }
        body = page.get("next_page")
    assert [(e["timestamp"], e["type"]) for e in events] == wanted  # newest first, none after end_time
    assert calls == math.ceil(len(wanted) / 2)
    r = http.post("/api/2.1/clusters/events", json={"cluster_id": cid, "event_types": ["TERMINATED"]})
    assert (r.status_code, r.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")  # not an event type


def test_cluster_events_page_token_scheme(http):
    cid = "0701-000000-6317cf6d"
    body = {"cluster_id": cid, "order": "ASC", "page_size": 60}
    first = http.post("/api/2.1/clusters/events", json=body).json()
    assert len(first["events"]) == 60 and first["total_count"] == 0 and first["next_page_token"]
    second = http.post("/api/2.1/clusters/events", json={**body, "page_token": first["next_page_token"]}).json()
    assert len(second["events"]) == 59 and second["next_page_token"] == ""


def test_list_node_types_has_sizes_but_no_prices(http):
    types = {t["node_type_id"]: t for t in http.get("/api/2.1/clusters/list-node-types").json()["node_types"]}
    ds3 = types["Standard_DS3_v2"]
    assert ds3["num_cores"] == 4.0 and isinstance(ds3["memory_mb"], int)
    assert not any("price" in k or "dbu" in k.lower() for t in types.values() for k in t)


# --- Account API ---------------------------------------------------------------------------------------


def test_usage_download_is_the_legacy_csv(http):
    r = http.get(
        f"/api/2.0/accounts/{CFG.account_id}/usage/download", params={"start_month": "2026-01", "end_month": "2026-01"}
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.text.splitlines()[0] == ",".join(LEGACY_CSV_COLUMNS)
    assert (
        http.get(
            f"/api/2.0/accounts/{CFG.account_id}/usage/download",
            params={"start_month": "2026-1", "end_month": "2026-01"},
        ).status_code
        == 400
    )
    assert (
        http.get(
            "/api/2.0/accounts/other/usage/download", params={"start_month": "2026-01", "end_month": "2026-01"}
        ).status_code
        == 404
    )


# --- SQL -----------------------------------------------------------------------------------------------


def test_statement_values_are_strings_with_a_schema(http):
    body = statement(
        http,
        "SELECT 1 AS one, 'x' AS s, CAST(2.5 AS DECIMAL(10,2)) AS d, NULL AS n, "
        "DATE '2026-01-02' AS day, TRUE AS b, TIMESTAMP '2026-01-02 03:04:05' AS t",
    )
    assert body["status"] == {"state": "SUCCEEDED"}
    assert body["result"]["data_array"] == [["1", "x", "2.50", None, "2026-01-02", "true", "2026-01-02T03:04:05.000Z"]]
    columns = body["manifest"]["schema"]["columns"]
    assert [(c["name"], c["type_name"], c["position"]) for c in columns] == [
        ("one", "INT", 0),
        ("s", "STRING", 1),
        ("d", "DECIMAL", 2),
        ("n", "NULL", 3),
        ("day", "DATE", 4),
        ("b", "BOOLEAN", 5),
        ("t", "TIMESTAMP", 6),
    ]
    assert (columns[2]["type_precision"], columns[2]["type_scale"]) == (10, 2)


def test_statement_named_parameters_are_typed(http):
    body = statement(
        http,
        "SELECT :day + 1 AS next_day, :n * 2 AS twice, :s AS s, :missing_value AS m",
        [
            {"name": "day", "value": "2026-01-31", "type": "DATE"},
            {"name": "n", "value": "21", "type": "INT"},
            {"name": "s", "value": "it's"},
            {"name": "missing_value", "type": "STRING"},
        ],
    )
    assert body["result"]["data_array"] == [["2026-02-01", "42", "it's", None]]


def test_unbound_parameter_and_bad_sql_fail_with_http_200(http):
    body = statement(http, "SELECT :nope AS x")
    assert body["status"]["state"] == "FAILED" and "UNBOUND_SQL_PARAMETER" in body["status"]["error"]["message"]
    body = statement(http, "SELECT * FROM system.billing.usagex")
    assert body["status"]["state"] == "FAILED" and body["status"]["sql_state"] == "42P01"
    assert "usagex" in body["status"]["error"]["message"] and "dbx_system" not in body["status"]["error"]["message"]


def test_system_tables_resolve_and_hold_the_world(http):
    rows = [r for r in views.billing_usage_rows(CFG) if r["usage_date"] == "2026-01-01"]
    body = statement(
        http,
        "SELECT COUNT(*) AS n, SUM(usage_quantity) AS q FROM system.billing.usage WHERE usage_date = :day",
        [{"name": "day", "value": "2026-01-01", "type": "DATE"}],
    )
    n, q = body["result"]["data_array"][0]
    assert int(n) == len(rows) and float(q) == pytest.approx(sum(float(r["usage_quantity"]) for r in rows))
    prices = statement(http, "SELECT pricing FROM system.billing.list_prices LIMIT 1")["result"]["data_array"]
    assert prices and "effective_list" in prices[0][0]


def test_results_come_in_chunks(http):
    body = statement(http, "SELECT range AS i FROM range(7)")
    assert body["manifest"]["total_chunk_count"] == 3 and body["manifest"]["total_row_count"] == 7
    result, values = body["result"], []
    while True:
        values += [int(row[0]) for row in result["data_array"]]
        if "next_chunk_internal_link" not in result:
            assert "next_chunk_index" not in result
            break
        result = http.get(result["next_chunk_internal_link"]).json()
    assert values == list(range(7))


def test_request_errors_are_4xx(http):
    for extra in ({"wait_timeout": "3s"}, {"format": "ARROW_STREAM"}, {"format": "CSV"}):
        r = http.post("/api/2.0/sql/statements", json={"warehouse_id": "wh", "statement": "SELECT 1", **extra})
        assert r.status_code == 400, extra
    assert http.get("/api/2.0/sql/statements/not-a-statement").status_code == 404


class Clock:
    """A clock the test moves by hand (the server's statement delays, token expiry and rate limit)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_slow_statement_is_pending_then_succeeded():
    clock = Clock()
    with (
        MockServer(MockOptions(world=CFG, statement_delay_s=60), clock=clock) as s,
        httpx.Client(base_url=s.url, headers=AUTH) as http,
    ):
        body = statement(http, "SELECT 1 AS x", wait_timeout="0s")
        assert body["status"]["state"] == "PENDING" and "manifest" not in body
        path = f"/api/2.0/sql/statements/{body['statement_id']}"
        clock.now += 59
        assert http.get(path).json()["status"]["state"] == "PENDING"
        assert http.get(f"{path}/result/chunks/0").status_code == 400
        clock.now += 1
        done = http.get(path).json()
        assert done["status"]["state"] == "SUCCEEDED" and done["result"]["data_array"] == [["1"]]


# --- OAuth ---------------------------------------------------------------------------------------------


def test_oauth_client_credentials_token_works_until_it_expires():
    clock = Clock()
    with MockServer(MockOptions(world=CFG, oauth_expires_in=3600), clock=clock) as s:
        r = httpx.post(
            f"{s.url}/oidc/v1/token",
            auth=("mock-client-id", "mock-client-secret"),
            data={"grant_type": "client_credentials", "scope": "all-apis"},
        )
        assert r.status_code == 200
        token = r.json()
        assert (token["token_type"], token["expires_in"], token["scope"]) == ("Bearer", 3600, "all-apis")
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        clock.now += 3599
        assert httpx.get(f"{s.url}/api/2.0/preview/scim/v2/Me", headers=headers).status_code == 200
        clock.now += 1
        assert httpx.get(f"{s.url}/api/2.0/preview/scim/v2/Me", headers=headers).status_code == 403
        bad = httpx.post(
            f"{s.url}/oidc/v1/token", auth=("mock-client-id", "wrong"), data={"grant_type": "client_credentials"}
        )
        assert (bad.status_code, bad.json()["error"]) == (401, "invalid_client")


# --- faults --------------------------------------------------------------------------------------------


def _statuses(faults: Faults, n: int) -> list[int]:
    with MockServer(MockOptions(world=CFG, faults=faults)) as s, httpx.Client(base_url=s.url, headers=AUTH) as c:
        return [c.get("/api/2.0/preview/scim/v2/Me").status_code for _ in range(n)]


def test_503_faults_are_deterministic_given_a_seed():
    first = _statuses(Faults(error_rate=0.3, seed=1), 40)
    assert first == _statuses(Faults(error_rate=0.3, seed=1), 40)
    assert first != _statuses(Faults(error_rate=0.3, seed=2), 40)
    assert set(first) == {200, 503} and 4 <= first.count(503) <= 20


def test_rate_limit_answers_429_with_retry_after():
    clock = Clock()
    with (
        MockServer(MockOptions(world=CFG, faults=Faults(rate_limit_per_s=2)), clock=clock) as s,
        httpx.Client(base_url=s.url, headers=AUTH) as c,
    ):
        replies = [c.get("/api/2.0/preview/scim/v2/Me") for _ in range(3)]  # a burst of 2 is allowed
        assert [r.status_code for r in replies] == [200, 200, 429]
        assert replies[2].headers["Retry-After"] == "1"  # one token refills in 0.5 s: rounded up to 1 s
        assert replies[2].json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        clock.now += 0.5
        assert c.get("/api/2.0/preview/scim/v2/Me").status_code == 200


def test_dropped_connection_cuts_the_body():
    with (
        MockServer(MockOptions(world=CFG, faults=Faults(drop_rate=1.0))) as s,
        httpx.Client(base_url=s.url, headers=AUTH) as c,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        c.get("/api/2.1/clusters/list-node-types")


def test_serve_in_thread_yields_a_loopback_url():
    with serve_in_thread(MockOptions(world=CFG)) as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/api/2.0/preview/scim/v2/Me", headers=AUTH).status_code == 200


def test_cli_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--rate-limit" in capsys.readouterr().out


def test_the_mock_account_prints_a_workspaces_file_naming_its_workspaces(tmp_path):
    """`cost-assets mock-server --workspaces 2 > workspaces.yaml`: what it prints is the file (the lines that
    are not workspaces are YAML comments), naming the two served workspaces at the URLs the comment gives."""
    import os
    import re
    import signal
    import subprocess
    import sys

    from cost_assets.workspaces import load

    command = [sys.executable, "-m", "cost_assets.cli", "mock-server", "--workspaces", "2", "--port", "0"]
    command += ["--scale", "tiny", "--days", "1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "COST_ASSETS_"))}
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        while (line := server.stdout.readline()) not in ("\n", ""):  # the file ends with an empty line
            lines.append(line)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    path = tmp_path / "workspaces.yaml"
    path.write_text("".join(lines))
    entries = load(path, {"DATABRICKS_TOKEN": TOKEN})
    urls = re.findall(r"http://127\.0\.0\.1:\d+", lines[0])  # "# mock Databricks account …: 2 workspaces at …"
    assert [(e.name, e.host, e.token_env, e.warehouse_id) for e in entries] == [
        ("mock-0", urls[0], "DATABRICKS_TOKEN", "mock"),
        ("mock-1", urls[1], "DATABRICKS_TOKEN", "mock"),
    ]
    assert len(urls) == 2 and urls[0] != urls[1]
