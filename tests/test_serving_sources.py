"""The optional serving sources against the mock server on 127.0.0.1: served entities give model and
provider; a source the workspace lacks (schema missing, not granted, table absent) is an empty frame and a
warning, never an error."""

import datetime as dt

import pytest

from cost_assets.ingest.fetch import SourceUnavailable
from cost_assets.ingest.serving_sources import (
    gateway_usage_frame,
    provider_of,
    read_gateway_usage,
    read_served_entities,
    served_entities_frame,
)
from cost_assets.ingest.sql import StatementClient
from cost_assets.mock_server import DEFAULT_TOKEN, MockOptions, MockServer
from cost_assets.resources.databricks import DatabricksConnection, LiveWorkspace
from cost_assets.simulation import views
from cost_assets.simulation.world import WorldConfig

CFG = WorldConfig(seed=5, scale="tiny", start=dt.date(2026, 1, 1), days=1)
DAY = dt.datetime(2026, 1, 1)


def statements(server: MockServer) -> StatementClient:
    client = DatabricksConnection(host=server.url, token=DEFAULT_TOKEN, max_requests_per_second=0).client()
    return StatementClient(client, "wh")


def test_served_entities_name_each_endpoint_s_model_and_provider():
    with MockServer(MockOptions(world=CFG)) as server:
        frame, warnings = read_served_entities(statements(server), CFG.workspace_id)
    assert warnings == []
    expected = {(e.served_entity_id, e.name, e.entity_name) for e in views.world_for(CFG).endpoints}
    assert set(frame.select("served_entity_id", "endpoint_name", "entity_name").iter_rows()) == expected
    # The mock's endpoints serve foundation models: Databricks is the provider.
    assert set(frame["provider"]) == {"databricks"}


@pytest.mark.parametrize("option", ["missing_system_schemas", "denied_system_schemas"])
def test_served_entities_absent_or_not_granted_is_empty_with_a_warning(option):
    with MockServer(MockOptions(world=CFG, **{option: ("system.serving",)})) as server:
        frame, warnings = read_served_entities(statements(server), CFG.workspace_id)
    assert frame.is_empty() and list(frame.columns)[:3] == ["served_entity_id", "endpoint_name", "entity_name"]
    assert len(warnings) == 1 and warnings[0].startswith("system.serving.served_entities: ")


def test_ai_gateway_usage_table_absent_is_empty_with_a_warning():
    # The mock workspace, like many, has no system.ai_gateway schema.
    with MockServer(MockOptions(world=CFG)) as server:
        frame, warnings = read_gateway_usage(statements(server), CFG.workspace_id, DAY, DAY + dt.timedelta(days=1))
    assert frame.is_empty() and len(warnings) == 1 and "system.ai_gateway.usage" in warnings[0]


def test_provider_by_entity_type():
    assert provider_of({"entity_type": "EXTERNAL_MODEL", "external_model_config": '{"provider":"openai"}'}) == "openai"
    assert provider_of({"entity_type": "FOUNDATION_MODEL"}) == "databricks"
    assert provider_of({"entity_type": "CUSTOM_MODEL"}) is None
    assert provider_of({"entity_type": "EXTERNAL_MODEL"}) is None  # no config: unknown, not a guess


def test_frames_read_either_token_spelling_and_keep_the_usage_context():
    rows = [
        {
            "request_id": "r1",
            "request_time": "2026-01-01T10:00:00.000Z",
            "endpoint_name": "gw",
            "requester": "ana@x",
            "usage_context": '{"tenant":"acme"}',
            "input_tokens": "12",
            "output_tokens": "3",
        },
        {"databricks_request_id": "r2", "request_time": "2026-01-01T11:00:00.000Z", "input_token_count": "7"},
    ]
    got = gateway_usage_frame(rows).to_dicts()
    assert [(r["request_id"], r["input_tokens"], r["output_tokens"]) for r in got] == [("r1", 12, 3), ("r2", 7, 0)]
    assert got[0]["usage_context"] == '{"tenant":"acme"}' and got[1]["usage_context"] == "{}"
    entities = served_entities_frame(
        [{"served_entity_id": "se", "entity_type": "FOUNDATION_MODEL", "change_time": "2026-01-01T00:00:00.000Z"}]
    )
    assert entities["change_time"].to_list() == [DAY]


def test_the_live_workspace_reads_served_entities_per_day_and_warns_without_ai_gateway():
    # scale small: agent-chat serves a foundation model, support-bot an external (anthropic) model, both
    # created with the workspace (before 2026-01-01), so each day lists both.
    small = WorldConfig(seed=5, scale="small", start=dt.date(2026, 1, 1), days=2)
    days = [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]
    with MockServer(MockOptions(world=small)) as server:
        conn = DatabricksConnection(host=server.url, token=DEFAULT_TOKEN, max_requests_per_second=0)
        live = LiveWorkspace(connection=conn, warehouse_id="wh")
        entities = live.served_entities(days)
        with pytest.raises(SourceUnavailable, match=r"system\.ai_gateway\.usage"):
            live.gateway_usage(days)
    assert entities.select("usage_date", "endpoint_name", "entity_type", "provider").rows() == [
        (day, name, kind, provider)
        for day in days
        for name, kind, provider in sorted(
            [("agent-chat", "FOUNDATION_MODEL", "databricks"), ("support-bot", "EXTERNAL_MODEL", "anthropic")],
            key=lambda r: {e.name: e.served_entity_id for e in views.world_for(small).endpoints}[r[0]],
        )
    ]
    with pytest.raises(SourceUnavailable, match="DATABRICKS_WAREHOUSE_ID"):
        LiveWorkspace(connection=conn).served_entities(days)
