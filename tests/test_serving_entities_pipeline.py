"""raw/serving_entities and raw/ai_gateway_usage through real runs of the daily job: mart/serving_costs takes
model and provider from the served entities as of the request's day and adds the gateway requests the
endpoint usage lacks, with hand-computed dollars; an absent source warns and keeps what is stored; the
simulated workspace names a provider per endpoint and has no AI Gateway usage (a WARN)."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cost_assets.definitions import build_defs
from cost_assets.ingest import parse
from cost_assets.ingest.fetch import SourceUnavailable
from cost_assets.ingest.serving_sources import (
    entities_by_day,
    gateway_by_day,
    gateway_usage_frame,
    served_entities_frame,
)
from cost_assets.resources.billing import BillingSource
from cost_assets.resources.simulated import SimulatedWorkspace
from cost_assets.simulation.world import WorldConfig
from tests.conftest import run_daily, sim_environ, table

# A day before the simulated workspace was created (world.ANCHOR): its jobs and clusters are empty, and the
# serving traffic, the served entities and the bill below are the whole day.
DAY = dt.date(2025, 6, 1)
WS = WorldConfig().workspace_id
SKU = "PREMIUM_SERVERLESS_REAL_TIME_INFERENCE"  # AZURE list price 0.112 $/DBU (cost_assets/data/prices.yaml)

ENTITIES = [
    # support-bot: an external model whose config changed before the day (that version counts) and again
    # after it (a later version must not rename a past day's spend).
    {
        "served_entity_id": "se-bot",
        "endpoint_name": "support-bot",
        "entity_type": "EXTERNAL_MODEL",
        "entity_name": "gpt-4o",
        "external_model_config": '{"provider": "openai", "name": "gpt-4o"}',
        "change_time": "2025-05-01T00:00:00.000Z",
    },
    {
        "served_entity_id": "se-bot",
        "endpoint_name": "support-bot",
        "entity_type": "EXTERNAL_MODEL",
        "entity_name": "claude-sonnet-4",
        "external_model_config": '{"provider": "anthropic", "name": "claude-sonnet-4"}',
        "change_time": "2025-05-20T08:00:00.000Z",
    },
    {
        "served_entity_id": "se-bot",
        "endpoint_name": "support-bot",
        "entity_type": "EXTERNAL_MODEL",
        "entity_name": "gpt-5",
        "external_model_config": '{"provider": "openai", "name": "gpt-5"}',
        "change_time": "2025-06-02T09:00:00.000Z",
    },
    {
        "served_entity_id": "se-chat",
        "endpoint_name": "agent-chat",
        "entity_type": "FOUNDATION_MODEL",
        "entity_name": "databricks-meta-llama-3-3-70b-instruct",
        "change_time": "2025-05-01T00:00:00.000Z",
    },
]


def request(rid: str, endpoint: str, entity: str, minute: int, tokens: tuple[int, int], tenant: str) -> dict:
    """An endpoint_usage row as the serving statement returns it (its entity name from the latest version
    of the entity: for support-bot that is gpt-5, changed after the day)."""
    return {
        "workspace_id": WS,
        "databricks_request_id": rid,
        "client_request_id": None,
        "endpoint_name": endpoint,
        "served_entity_id": entity,
        "entity_name": "gpt-5" if entity == "se-bot" else "databricks-meta-llama-3-3-70b-instruct",
        "requester": "svc@example.com",
        "status_code": 200,
        "request_time": f"{DAY}T10:{minute:02d}:00.000Z",
        "input_token_count": tokens[0],
        "output_token_count": tokens[1],
        "usage_context": {"tenant": tenant, "agent": "triage"},
    }


REQUESTS = [
    request("r1", "support-bot", "se-bot", 5, (300, 100), "acme"),  # 400 tokens
    request("r2", "support-bot", "se-bot", 40, (50, 50), "beta"),  # 100 tokens
    request("r3", "agent-chat", "se-chat", 15, (10, 10), "acme"),  # the hour's only request
]


def bill_row(rid: str, endpoint: str, dbus: str) -> dict:
    return {
        "account_id": "acc",
        "workspace_id": WS,
        "record_id": rid,
        "record_type": "ORIGINAL",
        "ingestion_date": str(DAY + dt.timedelta(days=1)),
        "sku_name": SKU,
        "cloud": "AZURE",
        "usage_start_time": f"{DAY}T10:00:00.000Z",
        "usage_end_time": f"{DAY}T11:00:00.000Z",
        "usage_date": str(DAY),
        "usage_unit": "DBU",
        "usage_quantity": dbus,
        "usage_metadata": {"endpoint_name": endpoint, "endpoint_id": f"id-{endpoint}"},
        "identity_metadata": {"run_as": None},
        "billing_origin_product": "MODEL_SERVING",
        "product_features": {"is_serverless": True, "serving_type": "MODEL"},
        "usage_type": "TOKEN",
        "custom_tags": {},
    }


BILL = [bill_row("b-bot", "support-bot", "2.5"), bill_row("b-chat", "agent-chat", "1.0")]


class HandWorkspace(SimulatedWorkspace):
    """The simulated workspace (nothing on DAY) with the hand-written serving traffic and served entities."""

    def serving_usage(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        return pl.concat([parse.serving_usage_frame(REQUESTS, d, WS) for d in days])

    def served_entities(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        return entities_by_day(served_entities_frame(ENTITIES), days, WS)


GATEWAY = [
    # r1 again (the endpoint usage has it: not counted twice) and r4, which only the gateway saw.
    {
        "request_id": "r1",
        "request_time": f"{DAY}T10:05:00.000Z",
        "endpoint_name": "support-bot",
        "usage_context": '{"tenant": "acme", "agent": "triage"}',
        "input_tokens": 300,
        "output_tokens": 100,
    },
    {
        "request_id": "r4",
        "request_time": f"{DAY}T10:50:00.000Z",
        "endpoint_name": "support-bot",
        "requester": "gw@example.com",
        "usage_context": '{"tenant": "gamma", "agent": "triage"}',
        "input_token_count": 200,  # the other spelling of the token columns
        "output_token_count": 300,
    },
]


class WithGateway(HandWorkspace):
    """The hand-written workspace whose AI Gateway usage is readable."""

    def gateway_usage(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        return gateway_by_day(gateway_usage_frame(GATEWAY), days, WS)


class NoEntities(HandWorkspace):
    """A workspace whose served entities are not granted."""

    def served_entities(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        raise SourceUnavailable("system.serving.served_entities: PERMISSION_DENIED (test)")


class HandBill(BillingSource):
    def describe(self) -> str:
        return "the hand-written bill"

    def usage(self, days: list[dt.date], stats: dict | None = None) -> pl.DataFrame:
        return parse.system_usage_frame(
            [r for r in BILL if dt.date.fromisoformat(r["usage_date"]) in days], "system_tables"
        )


def with_resources(defs: dg.Definitions, workspace: SimulatedWorkspace) -> dg.Definitions:
    return dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        resources={**defs.resources, "workspace": workspace, "billing": HandBill()},
    )


def costs(database) -> pl.DataFrame:
    return (
        table(database, "mart.serving_costs")
        .select("endpoint_name", "tenant", "model", "provider", "calls", "actual_dbus", "actual_usd")
        .sort("endpoint_name", "tenant")
    )


def check(result: dg.ExecuteInProcessResult, key: str, name: str):
    return next(
        e for e in result.get_asset_check_evaluations() if e.asset_key.to_user_string() == key and e.check_name == name
    )


def test_mart_serving_costs_takes_model_and_provider_from_the_entities_as_of_the_day(database):
    defs = build_defs(sim_environ(database))
    result = run_daily(with_resources(defs, HandWorkspace(world=defs.resources["workspace"].world)), str(DAY))
    assert result.success
    # raw/serving_entities: each entity's latest version changed before 2025-06-02 00:00.
    entities = table(database, "raw.serving_entities").select("served_entity_id", "entity_name", "provider")
    assert entities.rows() == [
        ("se-bot", "claude-sonnet-4", "anthropic"),
        ("se-chat", "databricks-meta-llama-3-3-70b-instruct", "databricks"),
    ]
    # support-bot 10:00–11:00 billed 2.5 DBU × 0.112 $/DBU = $0.28, split by tokens 400 : 100:
    #   acme 400/500 = 0.8 → 2.0 DBU, $0.224; beta 100/500 = 0.2 → 0.5 DBU, $0.056.
    # agent-chat 10:00–11:00 billed 1.0 DBU × 0.112 = $0.112, all to its only request (acme).
    expected = pl.DataFrame(
        {
            "endpoint_name": ["agent-chat", "support-bot", "support-bot"],
            "tenant": ["acme", "acme", "beta"],
            "model": ["databricks-meta-llama-3-3-70b-instruct", "claude-sonnet-4", "claude-sonnet-4"],
            "provider": ["databricks", "anthropic", "anthropic"],
            "calls": [1, 1, 1],
            "actual_dbus": [1.0, 2.0, 0.5],
            "actual_usd": [0.112, 0.224, 0.056],
        }
    )
    assert_frame_equal(costs(database), expected, check_dtypes=False, abs_tol=1e-9)
    # The simulated workspace (and so this one) has no AI Gateway usage: a WARN, and the day succeeds.
    gateway = check(result, "raw/ai_gateway_usage", "sources_complete")
    assert not gateway.passed and "system.ai_gateway.usage" in gateway.description


def test_gateway_requests_the_endpoint_usage_lacks_take_their_share(database):
    defs = build_defs(sim_environ(database))
    result = run_daily(with_resources(defs, WithGateway(world=defs.resources["workspace"].world)), str(DAY))
    assert result.success and check(result, "raw/ai_gateway_usage", "sources_complete").passed
    assert table(database, "raw.ai_gateway_usage")["request_id"].to_list() == ["r1", "r4"]
    # support-bot 10:00–11:00: r1 400 + r2 100 + r4 (gateway only) 200 + 300 = 1000 tokens; the hour's
    # 2.5 DBU × 0.112 $/DBU = $0.28 splits acme 0.4 → 1.0 DBU $0.112, beta 0.1 → 0.25 DBU $0.028,
    # gamma 0.5 → 1.25 DBU $0.14. r4 takes support-bot's only entity of the day: claude-sonnet-4, anthropic.
    out = costs(database).filter(pl.col("endpoint_name") == "support-bot")
    assert out.rows() == [
        ("support-bot", "acme", "claude-sonnet-4", "anthropic", 1, pytest.approx(1.0), pytest.approx(0.112)),
        ("support-bot", "beta", "claude-sonnet-4", "anthropic", 1, pytest.approx(0.25), pytest.approx(0.028)),
        ("support-bot", "gamma", "claude-sonnet-4", "anthropic", 1, pytest.approx(1.25), pytest.approx(0.14)),
    ]


def test_served_entities_not_granted_warn_keep_what_is_stored_and_the_day_succeeds(database):
    defs = build_defs(sim_environ(database))
    world = defs.resources["workspace"].world
    assert run_daily(with_resources(defs, HandWorkspace(world=world)), str(DAY)).success
    stored = table(database, "raw.serving_entities")
    result = run_daily(with_resources(defs, NoEntities(world=world)), str(DAY))
    assert result.success  # an optional source never fails the day
    warn = check(result, "raw/serving_entities", "sources_complete")
    assert not warn.passed and "PERMISSION_DENIED" in warn.description
    assert_frame_equal(table(database, "raw.serving_entities"), stored)  # nothing stored was lost
    assert set(costs(database)["provider"]) == {"anthropic", "databricks"}  # the mart still names them


def test_without_served_entities_ever_the_provider_is_untagged_and_the_model_the_request_s(database):
    defs = build_defs(sim_environ(database))
    result = run_daily(with_resources(defs, NoEntities(world=defs.resources["workspace"].world)), str(DAY))
    assert result.success and not check(result, "raw/serving_entities", "sources_complete").passed
    assert table(database, "raw.serving_entities").height == 0
    out = costs(database)
    assert set(out["provider"]) == {"(untagged)"}
    # The request's own entity name (the serving statement's latest-version join) is the fallback model.
    assert out["model"].to_list() == ["databricks-meta-llama-3-3-70b-instruct", "gpt-5", "gpt-5"]
    # The dollars do not depend on the entities: 1.0 × 0.112; 2.5 × 0.112 × 0.8; 2.5 × 0.112 × 0.2.
    assert out["actual_usd"].to_list() == pytest.approx([0.112, 0.224, 0.056])


def test_the_simulated_workspace_names_a_provider_per_endpoint(tmp_path):
    # scale small: agent-chat (a foundation model: databricks) and support-bot (an external model: anthropic).
    database = tmp_path / "small.duckdb"
    defs = build_defs(sim_environ(database, COST_ASSETS_SIM_SCALE="small"))
    assert run_daily(defs, "2026-01-02").success
    entities = table(database, "raw.serving_entities")
    assert dict(entities.select("endpoint_name", "provider").iter_rows()) == {
        "agent-chat": "databricks",
        "support-bot": "anthropic",
    }
    providers = table(database, "mart.serving_costs").group_by("endpoint_name").agg(pl.col("provider").unique())
    assert {r[0]: sorted(r[1]) for r in providers.iter_rows()} == {
        "agent-chat": ["databricks"],
        "support-bot": ["anthropic"],
    }
