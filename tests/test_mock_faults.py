"""What live workspaces do, as the mock server injects it (MockOptions), checked over real HTTP.

Each option is checked on the wire with the server's healthy behaviour next to it, so a test fails when
the option does nothing. Expected values come from the stated rules (strict/inclusive retention bounds,
the documented error shapes); the world only supplies ids and timestamps.
"""

import collections
import datetime as dt
import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from cost_assets.ingest.http import ApiClient, PatCredentials
from cost_assets.ingest.sql import SqlStatementError, StatementClient
from cost_assets.mock_server import Faults, MockOptions, MockServer, fault_summary, main
from cost_assets.simulation import views
from cost_assets.simulation.world import WorldConfig

CFG = WorldConfig(seed=5, scale="tiny", start=dt.date(2026, 1, 1), days=2)
TOKEN = "dapi-mock-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WORLD = views.world_for(CFG)
# Ids and counts are taken from the world (it is tuned by others); the rules under test are not.
SHARED = next(cid for cid, c in sorted(WORLD.clusters.items()) if c.source == "UI")  # a shared cluster
SHARED_EVENTS = len(views.cluster_events(WORLD, SHARED))
POOL = sorted(WORLD.pools)[0]
MS_PER_DAY = 86_400_000


def serve(**options) -> MockServer:
    return MockServer(MockOptions(world=CFG, **options))


def client(server: MockServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=AUTH)


def statement(http: httpx.Client, sql: str) -> dict:
    r = http.post("/api/2.0/sql/statements", json={"warehouse_id": "wh", "statement": sql})
    assert r.status_code == 200, r.text  # execution failures are HTTP 200 with state FAILED
    return r.json()


def error_of(r: httpx.Response) -> tuple[int, str, str]:
    return r.status_code, r.json()["error_code"], r.json()["message"]


def ms_to_datetime(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)


# --- the SQL warehouse cannot touch files --------------------------------------------------------------


def test_statements_cannot_read_or_write_files(tmp_path):
    target = tmp_path / "x.csv"
    with serve() as s, client(s) as http:
        read = statement(http, "SELECT * FROM read_csv('/etc/passwd')")
        written = statement(http, f"COPY (SELECT 1 AS one) TO '{target}'")
        unlock = statement(http, "SET enable_external_access = true")
        after = statement(http, f"COPY (SELECT 1 AS one) TO '{target}'")
        tables = statement(http, "SELECT COUNT(*) FROM system.billing.usage")
    for body in (read, written, after):
        assert body["status"]["state"] == "FAILED" and body["status"]["sql_state"] == "42501", body
        assert "disabled by configuration" in body["status"]["error"]["message"]
    assert unlock["status"]["state"] == "FAILED" and "locked" in unlock["status"]["error"]["message"]
    assert not target.exists()
    assert tables["status"]["state"] == "SUCCEEDED" and int(tables["result"]["data_array"][0][0]) > 0


# --- request log and fault summary ---------------------------------------------------------------------


def test_request_log_has_a_line_per_request_and_no_credentials(tmp_path):
    log = tmp_path / "requests.jsonl"
    with serve(request_log=str(log), faults=Faults(error_rate=0.5, seed=1)) as s, client(s) as http:
        replies = [http.get("/api/2.1/clusters/get", params={"cluster_id": SHARED}) for _ in range(12)]
        replies.append(http.get("/api/2.9/nothing", params={"token": TOKEN}))
        injected = dict(s.mock.faults.injected)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 13 and all(set(line) == {"method", "path", "status", "fault"} for line in lines)
    assert [line["status"] for line in lines] == [r.status_code for r in replies]
    assert [line["fault"] for line in lines] == ["503" if r.status_code == 503 else None for r in replies]
    assert injected["503"] == sum(r.status_code == 503 for r in replies) >= 1
    assert lines[0] == {
        "method": "GET",
        "path": "/api/2.1/clusters/get",
        "status": lines[0]["status"],
        "fault": lines[0]["fault"],
    }
    assert lines[-1]["path"] == "/api/2.9/nothing"  # the query string is not logged
    assert TOKEN not in log.read_text() and "Bearer" not in log.read_text()


def test_request_log_names_slow_and_dropped_replies(tmp_path):
    log = tmp_path / "requests.jsonl"
    with (
        serve(request_log=str(log), faults=Faults(drop_rate=1.0, slow_rate=1.0, slow_s=0.01)) as s,
        client(s) as http,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        http.get("/api/2.1/clusters/list-node-types")
    assert json.loads(log.read_text()) == {
        "method": "GET",
        "path": "/api/2.1/clusters/list-node-types",
        "status": 200,
        "fault": "slow+drop",
    }


def test_fault_summary_most_frequent_first():
    assert fault_summary(collections.Counter({"drop": 1, "429": 3, "503": 12})) == "faults: 503×12, 429×3, drop×1"
    assert fault_summary(collections.Counter()) == "faults: none"


CLI = [sys.executable, "-m", "cost_assets.mock_server", "--port", "0", "--scale", "tiny", "--days", "1"]


def _served(extra: list[str], stop: signal.Signals, talk=lambda base: None, **popen) -> tuple[object, str, int]:
    """Start the mock server's CLI, let ``talk`` call it, stop it with ``stop``: (what talk returned, its
    stderr, its exit code). A server that ignores the signal is killed and the test fails."""
    command = [*CLI, "--start", "2026-01-01", "--token", TOKEN, *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **popen) as proc:
        try:
            url = proc.stdout.readline().split(" at ")[1].split(":", 2)
            answer = talk(":".join(url[:2]) + ":" + url[2].split(":")[0])
        finally:
            proc.send_signal(stop)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"the mock server ignored {stop.name}")
    return answer, err, proc.returncode


def test_cli_logs_requests_and_prints_the_fault_summary_on_exit(tmp_path):
    log = tmp_path / "requests.jsonl"

    def talk(base: str) -> list[int]:
        return [httpx.get(f"{base}/api/2.0/preview/scim/v2/Me", headers=AUTH).status_code for _ in range(3)]

    # Started as a shell starts a background job (`mock_server &`, as CI does): SIGINT ignored.
    statuses, err, _ = _served(
        ["--error-rate", "1", "--request-log", str(log)],
        signal.SIGINT,
        talk,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert statuses == [503, 503, 503]
    assert "faults: 503×3" in err and TOKEN not in err
    assert [json.loads(line)["fault"] for line in log.read_text().splitlines()] == ["503"] * 3


def test_cli_stops_cleanly_on_sigterm():
    _, err, code = _served([], signal.SIGTERM)
    assert code == 0 and "faults: none" in err


def test_cli_help_documents_every_live_option(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for flag in (
        "--purged-cluster",
        "--purged-cluster-error",
        "--events-retention-days",
        "--runs-retention-days",
        "--now",
        "--missing-system-schema",
        "--denied-system-schema",
        "--forbidden-pools",
        "--forbidden-job",
        "--empty-bill-day",
        "--request-log",
        "--deleted-job",
    ):
        assert flag in out


def test_bad_options_fail_when_built():
    with pytest.raises(ValueError, match=r"system\.<schema>"):
        MockOptions(missing_system_schemas=("serving",))
    with pytest.raises(ValueError, match="'404' or '400'"):
        MockOptions(purged_cluster_error="410")
    with pytest.raises(ValueError):
        MockOptions(empty_bill_days=("2026-13-01",))


# --- purged clusters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "status", "code"), [("404", 404, "RESOURCE_DOES_NOT_EXIST"), ("400", 400, "INVALID_PARAMETER_VALUE")]
)
def test_purged_cluster_is_gone_from_get_and_list_but_its_events_are_served(variant, status, code):
    with serve() as s, client(s) as http:
        events_before = http.post("/api/2.1/clusters/events", json={"cluster_id": SHARED, "limit": 500}).json()
    with serve(purged_clusters=(SHARED,), purged_cluster_error=variant) as s, client(s) as http:
        got = http.get("/api/2.1/clusters/get", params={"cluster_id": SHARED})
        listed = [
            c["cluster_id"] for c in http.get("/api/2.1/clusters/list", params={"page_size": 100}).json()["clusters"]
        ]
        events = http.post("/api/2.1/clusters/events", json={"cluster_id": SHARED, "limit": 500}).json()
        other = http.get("/api/2.1/clusters/get", params={"cluster_id": listed[0]})
    assert error_of(got) == (status, code, f"Cluster {SHARED} does not exist")
    assert SHARED not in listed and len(listed) == len(WORLD.clusters) - 1
    assert events == events_before and events["total_count"] == SHARED_EVENTS > 0
    assert other.status_code == 200


# --- retention against a frozen clock ------------------------------------------------------------------


def test_events_retention_keeps_only_events_newer_than_the_cutoff():
    stamps = sorted(e["timestamp"] for e in views.cluster_events(WORLD, SHARED))
    cutoff = stamps[10]
    newer = [t for t in stamps if t > cutoff]
    assert stamps[10] not in newer and 0 < len(newer) < len(stamps) - 10  # ties at the cutoff go too
    now = ms_to_datetime(cutoff + 3 * MS_PER_DAY)
    with serve(events_retention_days=3, now=now) as s, client(s) as http:
        body = http.post("/api/2.1/clusters/events", json={"cluster_id": SHARED, "order": "ASC", "limit": 500}).json()
        windowed = http.post(
            "/api/2.1/clusters/events", json={"cluster_id": SHARED, "start_time": 0, "end_time": cutoff, "limit": 500}
        ).json()
    assert [e["timestamp"] for e in body["events"]] == newer and body["total_count"] == len(newer)
    assert "events" not in windowed and windowed["total_count"] == 0


def test_naive_now_is_utc_and_one_millisecond_later_drops_the_boundary_event():
    stamps = sorted(e["timestamp"] for e in views.cluster_events(WORLD, SHARED))
    now = ms_to_datetime(stamps[0] + MS_PER_DAY - 1).replace(tzinfo=None)  # cutoff one ms before the first
    with serve(events_retention_days=1, now=now) as s, client(s) as http:
        assert http.post("/api/2.1/clusters/events", json={"cluster_id": SHARED, "limit": 500}).json()[
            "total_count"
        ] == len(stamps)
    with serve(events_retention_days=1, now=now + dt.timedelta(milliseconds=1)) as s, client(s) as http:
        assert http.post("/api/2.1/clusters/events", json={"cluster_id": SHARED, "limit": 500}).json()[
            "total_count"
        ] == len(stamps) - stamps.count(stamps[0])


def test_runs_retention_forgets_runs_started_before_the_cutoff():
    runs = sorted(WORLD.runs, key=lambda r: (r.start, r.run_id))
    kept_from = 5
    assert runs[kept_from - 1].start < runs[kept_from].start
    now = ms_to_datetime(runs[kept_from].start + 2 * MS_PER_DAY)  # cutoff = the 6th run's start, inclusive
    with serve(runs_retention_days=2, now=now) as s, client(s) as http:
        listed = [r["run_id"] for r in http.get("/api/2.2/jobs/runs/list", params={"limit": 25}).json()["runs"]]
        gone = http.get("/api/2.2/jobs/runs/get", params={"run_id": runs[kept_from - 1].run_id})
        kept = http.get("/api/2.2/jobs/runs/get", params={"run_id": runs[kept_from].run_id})
    assert listed == [r.run_id for r in reversed(runs[kept_from:])]
    assert error_of(gone)[:2] == (404, "RESOURCE_DOES_NOT_EXIST") and kept.status_code == 200


def test_retention_without_now_uses_the_real_clock():
    # The world is January 2026; a day's retention measured from the real now forgets all of it, and
    # a retention reaching back to 1970 forgets nothing.
    assert dt.datetime.now(dt.UTC).date() > dt.date(2026, 1, 3)
    with serve(runs_retention_days=1, events_retention_days=1) as s, client(s) as http:
        assert http.get("/api/2.2/jobs/runs/list").json() == {"has_more": False}
        assert http.post("/api/2.1/clusters/events", json={"cluster_id": SHARED}).json()["total_count"] == 0
    assert len(WORLD.runs) <= 25  # one page
    with serve(runs_retention_days=40_000) as s, client(s) as http:
        assert len(http.get("/api/2.2/jobs/runs/list", params={"limit": 25}).json()["runs"]) == len(WORLD.runs)


# --- system schemas that are not there or not granted --------------------------------------------------

SERVING = "SELECT COUNT(*) AS n FROM system.serving.endpoint_usage"


def test_missing_system_schema_fails_the_statement_as_databricks_does():
    with serve(missing_system_schemas=("system.serving",)) as s, client(s) as http:
        plain = statement(http, SERVING)
        quoted = statement(http, "SELECT * FROM `system`.`serving`.`served_entities`")
        schema = statement(http, "SHOW TABLES FROM system.serving")
        billing = statement(http, "SELECT COUNT(*) FROM system.billing.usage")
    assert plain["status"] == {
        "state": "FAILED",
        "sql_state": "42P01",
        "error": {
            "error_code": "BAD_REQUEST",
            "message": "[TABLE_OR_VIEW_NOT_FOUND] The table or view `system`.`serving`.`endpoint_usage` "
            "cannot be found.",
        },
    }
    assert "`system`.`serving`.`served_entities`" in quoted["status"]["error"]["message"]
    assert schema["status"]["sql_state"] == "42704" and "[SCHEMA_NOT_FOUND]" in schema["status"]["error"]["message"]
    assert billing["status"]["state"] == "SUCCEEDED"


def test_denied_system_schema_fails_with_insufficient_permissions():
    with serve(denied_system_schemas=("system.serving",)) as s, client(s) as http:
        denied = statement(http, SERVING)
        joined = statement(
            http,
            "SELECT COUNT(*) FROM system.billing.usage u "
            "JOIN system.serving.served_entities e ON u.workspace_id = e.workspace_id",
        )
    with serve() as s, client(s) as http:
        granted = statement(http, SERVING)
    assert denied["status"] == {
        "state": "FAILED",
        "sql_state": "42501",
        "error": {
            "error_code": "BAD_REQUEST",
            "message": "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not "
            "have USE SCHEMA on Schema 'system.serving'.",
        },
    }
    assert joined["status"]["sql_state"] == "42501"
    assert granted["status"]["state"] == "SUCCEEDED"


def test_the_statement_client_raises_the_missing_schema():
    with (
        serve(missing_system_schemas=("system.serving",)) as s,
        ApiClient(s.url, PatCredentials(TOKEN), max_requests_per_second=None) as api,
        pytest.raises(SqlStatementError, match=r"FAILED \(SQLSTATE 42P01\).*TABLE_OR_VIEW_NOT_FOUND"),
    ):
        StatementClient(api, "wh").query(SERVING)


# --- forbidden pools and jobs --------------------------------------------------------------------------


def test_forbidden_pools_answer_403():
    with serve(forbidden_pools=True) as s, client(s) as http:
        forbidden = http.get("/api/2.0/instance-pools/get", params={"instance_pool_id": POOL})
    with serve() as s, client(s) as http:
        allowed = http.get("/api/2.0/instance-pools/get", params={"instance_pool_id": POOL})
    status, code, message = error_of(forbidden)
    assert (status, code) == (403, "PERMISSION_DENIED") and POOL in message
    assert allowed.status_code == 200 and allowed.json()["instance_pool_id"] == POOL


def test_forbidden_job_answers_403_and_its_runs_stay_listed():
    run = sorted(WORLD.runs, key=lambda r: r.start)[0]
    others = sorted(set(WORLD.jobs) - {run.job_id})
    with serve(forbidden_jobs=(run.job_id,)) as s, client(s) as http:
        forbidden = http.get("/api/2.2/jobs/get", params={"job_id": run.job_id})
        other = http.get("/api/2.2/jobs/get", params={"job_id": others[0]})
        listed = {r["run_id"] for r in http.get("/api/2.2/jobs/runs/list", params={"limit": 25}).json()["runs"]}
    status, code, message = error_of(forbidden)
    assert (status, code) == (403, "PERMISSION_DENIED") and str(run.job_id) in message
    assert other.status_code == 200 and run.run_id in listed


# --- days whose bill is still empty --------------------------------------------------------------------


def _rows_per_day(http: httpx.Client) -> dict[str, int]:
    body = statement(http, "SELECT CAST(usage_date AS STRING), COUNT(*) FROM system.billing.usage GROUP BY 1")
    return {day: int(n) for day, n in body["result"]["data_array"]}


def _download(http: httpx.Client) -> list[str]:
    r = http.get(
        f"/api/2.0/accounts/{CFG.account_id}/usage/download", params={"start_month": "2026-01", "end_month": "2026-01"}
    )
    assert r.status_code == 200
    return r.text.splitlines()


def test_empty_bill_day_has_no_rows_in_the_system_table_or_the_download():
    with serve() as s, client(s) as http:
        full_table, full_csv = _rows_per_day(http), _download(http)
    with serve(empty_bill_days=("2026-01-01",)) as s, client(s) as http:
        table, csv_lines = _rows_per_day(http), _download(http)
    assert full_table["2026-01-01"] > 0
    assert table == {day: n for day, n in full_table.items() if day != "2026-01-01"}
    day_of = {line: line.split(",")[1][:10] for line in full_csv[1:]}  # the end-of-hour timestamp's day
    assert sum(d == "2026-01-01" for d in day_of.values()) > 0 and sum(d == "2026-01-02" for d in day_of.values()) > 0
    assert csv_lines == [full_csv[0], *(line for line in full_csv[1:] if day_of[line] != "2026-01-01")]


def test_every_requested_day_empty_downloads_the_header_only():
    with serve() as s, client(s) as http:
        days = {line.split(",")[1][:10] for line in _download(http)[1:]}
    assert len(days) >= 2  # the world's two days, and tear-downs after its last midnight
    with serve(empty_bill_days=tuple(sorted(days))) as s, client(s) as http:
        lines = _download(http)
    assert lines == [
        "workspaceId,timestamp,clusterId,clusterName,clusterNodeType,clusterOwnerUserId,"
        "clusterCustomTags,sku,dbus,machineHours,clusterOwnerUserName,tags"
    ]
