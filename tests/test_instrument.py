"""Client instrumentation against the real mock server on 127.0.0.1: usage_context stamped on serving calls,
host normalization with warnings, the local call log's estimates, and the calls attributed end to end in
mart/serving_costs (the pure core) with hand-computed dollars."""

import asyncio
import datetime as dt
import json
import logging

import httpx
import polars as pl
import pytest
from test_reconcile import PRICE, SERVING, no_estimate, prices, usage

from cost_assets.costing.reconcile import reconciliation
from cost_assets.costing.serving import compare_calls, request_costs, serving_costs
from cost_assets.instrument import CallLog, UsageContext, instrument, normalize_workspace_host
from cost_assets.mock_server import DEFAULT_TOKEN, MockOptions, MockServer
from cost_assets.resources.databricks import DatabricksConnection, LiveWorkspace
from cost_assets.simulation.world import WorldConfig

CFG = WorldConfig(seed=5, scale="tiny", start=dt.date(2026, 1, 1), days=1)
# The calls land on a day the generated world has no traffic (it starts in 2026): only the overlay's rows.
NOW = dt.datetime(2024, 6, 19, 10, 20)
LLAMA = "databricks-meta-llama-3-3-70b-instruct"  # the mock world's "agent-chat" serves it
AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
PRICES = {LLAMA: (0.50, 1.50)}  # USD per million tokens (input, output)
ACME = UsageContext(tenant="acme", agent="triage", user="ana", session="s-1", team="search")


@pytest.fixture(scope="module")
def server():
    with MockServer(MockOptions(world=CFG, now=NOW)) as s:
        yield s


def overlay(server: MockServer) -> list[dict]:
    return server.mock.sql.serving_overlay.rows()


def chat(client: httpx.Client, content: str, max_tokens: int | None = None, **body) -> httpx.Response:
    payload = {"model": "agent-chat", "messages": [{"role": "user", "content": content}], **body}
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    response = client.post("/chat/completions", json=payload)
    assert response.status_code == 200, response.text
    return response


# --- host normalization ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected", "warned"),
    [
        ("https://adb-1.azuredatabricks.net", "https://adb-1.azuredatabricks.net", []),
        ("adb-1.azuredatabricks.net", "https://adb-1.azuredatabricks.net", ["no scheme"]),
        ("https://adb-1.azuredatabricks.net/", "https://adb-1.azuredatabricks.net", ["ends with '/'"]),
        (
            "https://ADB-1.azuredatabricks.net/serving-endpoints/",
            "https://adb-1.azuredatabricks.net",
            ["ends with '/'", "names the serving path"],
        ),
        ("http://127.0.0.1:8080//", "http://127.0.0.1:8080", ["ends with '/'"]),
    ],
)
def test_host_is_normalized_and_every_fix_is_warned(caplog, given, expected, warned):
    with caplog.at_level(logging.WARNING, logger="cost_assets.instrument"):
        assert normalize_workspace_host(given) == expected
    assert len(caplog.records) == len(warned)
    for record, words in zip(caplog.records, warned, strict=True):
        assert words in record.getMessage()


@pytest.mark.parametrize(
    ("given", "problem"),
    [("https://adb-1.azuredatabricks.net/api/2.0", "has a path"), ("http://example.com", "plain http")],
)
def test_a_host_that_cannot_be_a_workspace_fails_loudly(given, problem):
    with pytest.raises(ValueError, match=problem):
        normalize_workspace_host(given)


def test_usage_context_values_must_be_strings():
    with pytest.raises(TypeError, match="'tenant' must be a string"):
        UsageContext(tenant=42)


# --- stamping through the mock ---------------------------------------------------------------------------


def test_every_serving_call_carries_the_context_and_a_request_id(server):
    before = len(overlay(server))
    client = instrument(httpx.Client(base_url=f"{server.url}/serving-endpoints", headers=AUTH), server.url + "/", ACME)
    with client:
        chat(client, "hi")
        chat(client, "hi", usage_context={"user": "bo"})  # the request's own key wins
        invoked = client.post("/agent-chat/invocations", json={"messages": [{"role": "user", "content": "x"}]})
        assert invoked.status_code == 200
    rows = overlay(server)[before:]
    stamped = {"tenant": "acme", "agent": "triage", "user": "ana", "session": "s-1", "team": "search"}
    assert [r["usage_context"] for r in rows] == [stamped, {**stamped, "user": "bo"}, stamped]
    assert all(r["client_request_id"] and len(r["client_request_id"]) == 32 for r in rows)


def test_requests_that_are_not_serving_calls_are_left_alone(server):
    client = instrument(httpx.Client(base_url=server.url, headers=AUTH), server.url, ACME)
    with client:
        me = client.get("/api/2.0/preview/scim/v2/Me")
    assert me.status_code == 200 and me.request.content == b""


def test_a_doubled_slash_is_rewritten_and_warned(server, caplog):
    before = len(overlay(server))
    client = instrument(httpx.Client(headers=AUTH), server.url, ACME)
    with client, caplog.at_level(logging.WARNING, logger="cost_assets.instrument"):
        response = client.post(
            f"{server.url}//serving-endpoints/chat/completions", json={"model": "agent-chat", "prompt": "x"}
        )
    assert response.status_code == 200  # without the rewrite the mock answers 404 for '//serving-endpoints'
    assert overlay(server)[before]["usage_context"]["tenant"] == "acme"
    assert any("rewritten" in r.getMessage() for r in caplog.records)


def test_serving_calls_to_another_host_are_not_stamped_but_warned(server, caplog):
    with MockServer(MockOptions(world=CFG, now=NOW)) as other:
        client = instrument(httpx.Client(base_url=f"{other.url}/serving-endpoints", headers=AUTH), server.url, ACME)
        with client, caplog.at_level(logging.WARNING, logger="cost_assets.instrument"):
            chat(client, "hi")
            chat(client, "hi")
        assert [r["usage_context"] for r in overlay(other)] == [{}, {}]
    warnings = [r.getMessage() for r in caplog.records if "not to the instrumented workspace" in r.getMessage()]
    assert len(warnings) == 1  # once per host, not once per call


def test_the_mock_rejects_a_usage_context_that_is_not_a_string_map(server):
    with httpx.Client(base_url=f"{server.url}/serving-endpoints", headers=AUTH) as client:
        response = client.post("/chat/completions", json={"model": "agent-chat", "usage_context": {"n": 1}})
        unknown = client.post("/nope/invocations", json={})
    assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


# --- the call log ----------------------------------------------------------------------------------------


def test_call_log_records_the_estimate_from_the_response_usage(server, tmp_path):
    log = CallLog(tmp_path / "calls.sqlite")
    client = instrument(
        httpx.Client(base_url=f"{server.url}/serving-endpoints", headers=AUTH), server.url, ACME, log, PRICES
    )
    with client:
        chat(client, "hello world!", max_tokens=100)  # 12 characters
        chat(client, "abcde", stream=True, max_tokens=10)  # streamed: the body is not read
    usage, streamed = log.rows()
    # The mock answers prompt_tokens = ceil(12 / 4) = 3 and completion_tokens = max_tokens = 100:
    # (3 × $0.50 + 100 × $1.50) / 1e6 = (1.5 + 150) / 1e6 = $0.0001515.
    assert (usage["input_tokens"], usage["output_tokens"], usage["token_source"]) == (3, 100, "usage")
    assert usage["estimated_usd"] == pytest.approx(151.5e-6)
    assert (usage["endpoint"], usage["model"]) == ("agent-chat", LLAMA)
    assert (usage["tenant"], usage["session"]) == ("acme", "s-1")
    assert json.loads(usage["usage_context"])["team"] == "search"
    # Without usage: ceil(5 / 4) = 2 input tokens + max_tokens 10 output; priced by the endpoint name, which
    # has no price (the served model is only known from a response body): estimated_usd NULL, never $0.
    assert (streamed["input_tokens"], streamed["output_tokens"], streamed["token_source"]) == (2, 10, "chars")
    assert streamed["model"] is None and streamed["estimated_usd"] is None


def test_chars_estimate_is_priced_by_the_endpoint_name(server, tmp_path):
    log = CallLog(tmp_path / "calls.sqlite")
    endpoint_prices = {"agent-chat": (1.0, 2.0)}
    client = instrument(
        httpx.Client(base_url=f"{server.url}/serving-endpoints", headers=AUTH), server.url, ACME, log, endpoint_prices
    )
    with client:
        chat(client, "abcdefghi", stream=True, max_tokens=50)
    (row,) = log.rows()
    # ceil(9 / 4) = 3 input tokens, 50 output: (3 × $1 + 50 × $2) / 1e6 = $0.000103
    assert row["estimated_usd"] == pytest.approx(103e-6)


def test_async_clients_are_instrumented_too(server, tmp_path):
    log = CallLog(tmp_path / "calls.sqlite")
    before = len(overlay(server))

    async def call() -> None:
        client = instrument(
            httpx.AsyncClient(base_url=f"{server.url}/serving-endpoints", headers=AUTH), server.url, ACME, log, PRICES
        )
        async with client:
            response = await client.post("/chat/completions", json={"model": "agent-chat", "prompt": "abcd"})
            assert response.status_code == 200

    asyncio.run(call())
    assert overlay(server)[before]["usage_context"]["agent"] == "triage"
    (row,) = log.rows()
    # ceil(4 / 4) = 1 input token; the mock's default 16 output tokens: (1 × 0.5 + 16 × 1.5) / 1e6 = $0.0000245
    assert row["estimated_usd"] == pytest.approx(24.5e-6)


# --- end to end: the calls attributed in mart/serving_costs ----------------------------------------------


def test_instrumented_calls_are_attributed_to_tenant_agent_and_user_with_hand_computed_dollars(tmp_path):
    log = CallLog(tmp_path / "calls.sqlite")
    with MockServer(MockOptions(world=CFG, now=NOW)) as server:
        base = f"{server.url}/serving-endpoints"
        acme_context, globex_context = UsageContext("acme", "triage", "ana"), UsageContext("globex", "writer", "bo")
        acme = instrument(httpx.Client(base_url=base, headers=AUTH), server.url, acme_context, log, PRICES)
        globex = instrument(httpx.Client(base_url=base, headers=AUTH), server.url, globex_context, log, PRICES)
        with acme, globex:
            chat(acme, "x" * 400, max_tokens=200)  # 100 input + 200 output = 300 tokens
            chat(globex, "y" * 200, max_tokens=50)  # 50 input + 50 output = 100 tokens
        conn = DatabricksConnection(host=server.url, token=DEFAULT_TOKEN, max_requests_per_second=0)
        requests = LiveWorkspace(connection=conn, warehouse_id="wh").serving_usage([NOW.date()])
    assert requests.height == 2
    # The endpoint billed 8 DBUs in the 10:00 hour at $0.5/DBU = $4.
    bill = usage(
        {
            "workspace_id": CFG.workspace_id,
            "endpoint_name": "agent-chat",
            "usage_quantity": 8.0,
            "sku_name": SERVING,
            "billing_origin_product": "MODEL_SERVING",
        }
    )
    token_prices = pl.DataFrame(
        {"model": [LLAMA], "input_per_million": [0.5], "output_per_million": [1.5], "currency_code": ["USD"]}
    )
    out = serving_costs(reconciliation(bill, no_estimate(), prices(), "AWS"), requests, token_prices)
    a = out.filter(tenant="acme").to_dicts()[0]
    g = out.filter(tenant="globex").to_dicts()[0]
    assert (a["agent"], a["user"], a["model"], a["endpoint_name"]) == ("triage", "ana", LLAMA, "agent-chat")
    assert (g["agent"], g["user"]) == ("writer", "bo")
    # Token shares 300/400 and 100/400 of 8 DBUs: 6 and 2 DBUs, × $0.5 = $3 and $1.
    assert a["actual_dbus"] == pytest.approx(6.0) and a["actual_usd"] == pytest.approx(6.0 * PRICE)
    assert g["actual_dbus"] == pytest.approx(2.0) and g["actual_usd"] == pytest.approx(2.0 * PRICE)
    # Estimates: acme (100 × 0.5 + 200 × 1.5) / 1e6 = $0.00035; globex (50 × 0.5 + 50 × 1.5) / 1e6 = $0.0001.
    assert a["estimated_usd"] == pytest.approx(350e-6) and g["estimated_usd"] == pytest.approx(100e-6)
    assert a["delta_usd"] == pytest.approx(3.0 - 350e-6)
    # Per call: the client's estimate (the call log) next to the bill's share, joined by client_request_id.
    per_call = compare_calls(
        pl.DataFrame(log.rows()),
        request_costs(reconciliation(bill, no_estimate(), prices(), "AWS"), requests, token_prices),
    )
    got = {r["tenant"]: (r["client_estimated_usd"], r["actual_usd"], r["delta_usd"]) for r in per_call.to_dicts()}
    assert got == {
        "acme": (pytest.approx(350e-6), pytest.approx(3.0), pytest.approx(3.0 - 350e-6)),
        "globex": (pytest.approx(100e-6), pytest.approx(1.0), pytest.approx(1.0 - 100e-6)),
    }


def test_the_generated_world_is_unchanged_by_calls():
    day = CFG.start
    with MockServer(MockOptions(world=CFG)) as server:
        live = LiveWorkspace(
            connection=DatabricksConnection(host=server.url, token=DEFAULT_TOKEN, max_requests_per_second=0),
            warehouse_id="wh",
        )
        before = live.serving_usage([day])
        with instrument(httpx.Client(base_url=f"{server.url}/serving-endpoints", headers=AUTH), server.url) as c:
            chat(c, "hi")
        after = live.serving_usage([day])
    # The call landed at the real now (no MockOptions.now), never on the simulated day.
    assert before.equals(after) and before.height > 0
