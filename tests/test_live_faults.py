"""Faults: throttling, 503s, dropped connections and refused credentials, through the live client.

The retry arithmetic is checked with a fake clock shared by the client's sleep and the server's token
bucket, so the expected waits are exact and written by hand. The end-to-end cases materialize through
Dagster into a temporary DuckDB file and compare with the fault-free in-process tables.
"""

import datetime as dt

import dagster as dg
import httpx
import pytest
from polars.testing import assert_frame_equal

from cost_assets.assets import raw
from cost_assets.assets.policies import SOURCE_RETRY
from cost_assets.ingest import fetch
from cost_assets.ingest.http import ApiClient, ApiError, AuthError, PatCredentials, RetryPolicy
from cost_assets.mock_server import Faults, MockOptions, MockServer
from cost_assets.resources.databricks import DatabricksConnection, LiveWorkspace
from cost_assets.resources.warehouse import read_table, storage_resources
from cost_assets.simulation.api import SimulatedApi
from cost_assets.simulation.world import WorldConfig

CFG = WorldConfig(seed=5, scale="tiny", start=dt.date(2026, 1, 1), days=3)
DAY = dt.date(2026, 1, 2)
SECRET = "dapi-SECRET-0123456789abcdef"  # distinctive, so any leak is found by a plain substring search
FAST_RETRY = {"backoff_s": 0.05, "jitter_s": 0.05, "max_attempts": 8, "retry_timeout_s": 60.0}
TABLES = ("job_runs", "jobs", "clusters", "cluster_events")


class FakeClock:
    """Time that moves only when the client sleeps; the server's rate limiter reads the same clock."""

    def __init__(self) -> None:
        self.now, self.sleeps = 1000.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def workspace(server: MockServer, **connection) -> LiveWorkspace:
    return LiveWorkspace(connection=DatabricksConnection(host=server.url, token=SECRET, **connection))


def materialize(resources: dict, tmp_path) -> dg.ExecuteInProcessResult:
    db = str(tmp_path / "cost.duckdb")
    return dg.materialize(
        [raw.workspace_tables],
        partition_key=DAY.isoformat(),
        raise_on_error=False,
        resources={**storage_resources(db), **resources},
    )


def test_retry_after_is_honoured():
    clock = FakeClock()
    with (
        MockServer(
            MockOptions(world=CFG, tokens=(SECRET,), faults=Faults(rate_limit_per_s=1, retry_after_s=2)), clock=clock
        ) as server,
        ApiClient(
            server.url,
            PatCredentials(SECRET),
            max_requests_per_second=None,
            sleep=clock.sleep,
            clock=clock,
            retry=RetryPolicy(jitter_s=0),
        ) as client,
    ):
        client.get_json("/api/2.0/preview/scim/v2/Me")  # takes the bucket's only token
        client.get_json("/api/2.0/preview/scim/v2/Me")  # 429, Retry-After: 2 → sleep 2 s → refilled → 200
    assert clock.sleeps == [2.0]
    stats = client.stats()
    assert (stats["retries"], stats["http_429"], stats["throttled_s"]) == (1, 1, 2.0)
    assert stats["calls/api/2.0/preview/scim/v2/Me"] == 3


def test_backoff_is_exponential_and_bounded():
    clock = FakeClock()
    with (
        MockServer(MockOptions(world=CFG, tokens=(SECRET,), faults=Faults(error_rate=1.0))) as server,
        ApiClient(
            server.url,
            PatCredentials(SECRET),
            max_requests_per_second=None,
            sleep=clock.sleep,
            clock=clock,
            retry=RetryPolicy(max_attempts=4, backoff_s=0.5, jitter_s=0),
        ) as client,
        pytest.raises(ApiError) as failure,
    ):
        client.get_json("/api/2.1/clusters/list")
    assert clock.sleeps == [0.5, 1.0, 2.0]  # 503 without Retry-After: 0.5 · 2^(attempt-1), then give up
    message = str(failure.value)
    assert "GET /api/2.1/clusters/list" in message and "HTTP 503" in message and "4 attempt(s)" in message


def test_client_side_rate_limit_spaces_requests():
    clock = FakeClock()
    with (
        MockServer(MockOptions(world=CFG, tokens=(SECRET,))) as server,
        ApiClient(
            server.url, PatCredentials(SECRET), max_requests_per_second=4, sleep=clock.sleep, clock=clock
        ) as client,
    ):
        for _ in range(3):
            client.get_json("/api/2.0/preview/scim/v2/Me")
    assert clock.sleeps == [0.25, 0.25]  # 4 per second: a quarter second between starts
    assert client.stats()["rate_limit_wait_s"] == 0.5


def test_day_materializes_completely_under_rate_limit_and_503s(tmp_path):
    faults = Faults(rate_limit_per_s=5, error_rate=0.1, seed=11)
    with MockServer(MockOptions(world=CFG, tokens=(SECRET,), faults=faults)) as server:
        # No client-side limit: the server's 5 per second (burst 5) is met at once and answers 429.
        result = materialize({"workspace": workspace(server, max_requests_per_second=0, **FAST_RETRY)}, tmp_path)
        injected = server.mock.faults.injected
    assert result.success
    assert injected["503"] >= 1 and injected["429"] >= 1
    expected = fetch.fetch_day(SimulatedApi(CFG), DAY)
    for name in TABLES:
        stored = read_table(str(tmp_path / "cost.duckdb"), f"raw.{name}")
        assert_frame_equal(stored, getattr(expected, name), check_row_order=False)
    meta = result.asset_materializations_for_node("workspace_tables")[0].metadata
    retries = meta["api/retries"].value
    assert retries == injected["503"] + injected["429"]
    assert meta["api/http_503"].value == injected["503"] and meta["api/throttled_s"].value > 0
    assert SECRET not in repr(meta)


def test_dropped_connection_is_retried():
    with MockServer(MockOptions(world=CFG, tokens=(SECRET,), faults=Faults(drop_rate=0.2, seed=4))) as server:
        got = workspace(server, max_requests_per_second=0, **FAST_RETRY).fetch([DAY])
        dropped = server.mock.faults.injected["drop"]
    expected = fetch.fetch_day(SimulatedApi(CFG), DAY)
    for name in TABLES:
        assert_frame_equal(getattr(got, name), getattr(expected, name))
    assert dropped >= 1 and got.stats["connection_errors"] == dropped == got.stats["retries"]


def test_slow_responses_time_out_and_are_retried(capfd):
    faults = Faults(slow_rate=0.15, slow_s=2.0, seed=2)
    with MockServer(MockOptions(world=CFG, tokens=(SECRET,), faults=faults)) as server:
        got = workspace(server, max_requests_per_second=0, timeout_s=0.5, **FAST_RETRY).fetch([DAY])
        slow = server.mock.faults.injected["slow"]
    expected = fetch.fetch_day(SimulatedApi(CFG), DAY)
    for name in TABLES:
        assert_frame_equal(getattr(got, name), getattr(expected, name))
    assert slow >= 1 and got.stats["connection_errors"] == slow == got.stats["retries"]
    assert "Traceback" not in capfd.readouterr().err  # the server shrugs off clients that hung up


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The step failure's error and its causes (Dagster wraps the resource's exception)."""
    error, parts = result.get_step_failure_events()[0].event_specific_data.error, []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)


def _all_text(result: dg.ExecuteInProcessResult, captured: str) -> str:
    return "\n".join([captured, *(repr(e) for e in result.all_events)])


def test_exhausted_retries_fail_naming_endpoint_and_status_never_the_token(tmp_path, capfd):
    with MockServer(MockOptions(world=CFG, tokens=(SECRET,), faults=Faults(error_rate=1.0))) as server:
        result = materialize(
            {"workspace": workspace(server, max_requests_per_second=0, backoff_s=0.01, jitter_s=0, max_attempts=3)},
            tmp_path,
        )
        # 3 attempts by the HTTP client, in each of the step's tries (its retry policy is a second layer).
        assert server.mock.calls["GET /api/2.2/jobs/runs/list"] == 3 * (1 + SOURCE_RETRY.max_retries)
    assert not result.success
    message = failure_message(result)
    assert "GET /api/2.2/jobs/runs/list" in message and "HTTP 503 TEMPORARILY_UNAVAILABLE" in message
    assert "3 attempt(s)" in message
    out = capfd.readouterr()
    assert SECRET not in _all_text(result, out.out + out.err)


def test_wrong_token_fails_fast_naming_the_variable(tmp_path, capfd):
    with MockServer(MockOptions(world=CFG, tokens=("dapi-the-right-one",))) as server:
        result = materialize({"workspace": workspace(server, max_requests_per_second=0, **FAST_RETRY)}, tmp_path)
        assert sum(server.mock.calls.values()) == 1  # no retry
    message = failure_message(result)
    assert "HTTP 403 PERMISSION_DENIED" in message and "DATABRICKS_TOKEN" in message
    out = capfd.readouterr()
    assert SECRET not in _all_text(result, out.out + out.err)


def test_401_fails_fast_without_retries_naming_the_variables(capfd):
    with MockServer(MockOptions(world=CFG)) as server:
        conn = DatabricksConnection(
            host=server.url, client_id="mock-client-id", client_secret=SECRET, max_requests_per_second=0, **FAST_RETRY
        )
        with pytest.raises(AuthError) as failure:
            LiveWorkspace(connection=conn).fetch([DAY])
        assert server.mock.calls == {"POST /oidc/v1/token": 1}
    message = str(failure.value)
    assert failure.value.status == 401 and "invalid_client" in message
    assert "DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET" in message
    assert SECRET not in message and SECRET not in repr(conn) and SECRET not in str(conn)
    out = capfd.readouterr()
    assert SECRET not in out.out + out.err


def test_plain_http_to_a_remote_host_is_refused():
    with pytest.raises(ValueError, match="only https"):
        ApiClient("http://example.com", PatCredentials(SECRET))
    assert ApiClient("adb-1.2.azuredatabricks.net").base_url == "https://adb-1.2.azuredatabricks.net"


def _refused_with(status: int, **reply) -> str:
    """The client's error text for one error reply (an in-memory transport: no socket, no other host)."""
    client = ApiClient("http://127.0.0.1:9", PatCredentials(SECRET), max_requests_per_second=None)
    client.http = httpx.Client(
        base_url=client.base_url, transport=httpx.MockTransport(lambda request: httpx.Response(status, **reply))
    )
    with client, pytest.raises(ApiError) as failure:
        client.get_json("/api/2.1/clusters/get")
    return str(failure.value)


def _leaked_prefixes(text: str) -> list[str]:
    return [SECRET[:n] for n in range(4, len(SECRET) + 1) if SECRET[:n] in text]


@pytest.mark.parametrize("offset", [490, 495])  # the secret starts before the 500-char cut, ends after it
def test_a_secret_straddling_the_message_cut_is_redacted_not_truncated(offset):
    message = "x" * offset + SECRET + " was rejected"
    text = _refused_with(400, json={"error_code": "INVALID_PARAMETER_VALUE", "message": message})
    assert f"HTTP 400 INVALID_PARAMETER_VALUE: {'x' * offset}" in text
    assert _leaked_prefixes(text) == []


@pytest.mark.parametrize("offset", [190, 196])  # a non-JSON body is cut at 200 characters
def test_a_secret_straddling_the_text_body_cut_is_redacted_not_truncated(offset):
    text = _refused_with(400, text="y" * offset + SECRET + " in a proxy's HTML page")
    assert f"HTTP 400: {'y' * offset}" in text
    assert _leaked_prefixes(text) == []
