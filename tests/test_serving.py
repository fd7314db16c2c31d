"""Serving costs: an endpoint-hour's billed DBUs split over its requests by tokens."""

import datetime as dt
import itertools
from typing import Any

import polars as pl
import pytest
from costing_builders import jobs
from test_reconcile import H10, PRICE, SERVING, WS, no_estimate, prices, usage

from cost_assets import schemas
from cost_assets.costing.attribute import attributed_costs
from cost_assets.costing.reconcile import reconciliation
from cost_assets.costing.scope import cost_by_scope
from cost_assets.costing.serving import SERVING_COSTS_COLUMNS, serving_costs
from cost_assets.ingest import parse
from cost_assets.ingest.serving_sources import (
    entities_by_day,
    gateway_by_day,
    gateway_usage_frame,
    served_entities_frame,
)
from cost_assets.vocabulary import UNTAGGED

LLAMA = "llama"
TOKEN_PRICES = pl.DataFrame(
    {"model": [LLAMA], "input_per_million": [2.0], "output_per_million": [6.0], "currency_code": ["USD"]}
)
_ids = itertools.count()


def requests(*rows: dict[str, Any]) -> pl.DataFrame:
    """raw.serving_usage rows on endpoint ``chat`` serving ``llama``; give tokens and context."""
    schema = {name: col.dtype.type for name, col in schemas.ServingUsage.to_schema().columns.items()}
    out = []
    for row in rows:
        r = {
            "workspace_id": WS,
            "databricks_request_id": f"q{next(_ids)}",
            "client_request_id": None,
            "endpoint_name": "chat",
            "served_entity_id": "se",
            "entity_name": LLAMA,
            "requester": None,
            "status_code": 200,
            "request_time": H10 + dt.timedelta(minutes=5),
            "input_token_count": 0,
            "output_token_count": 0,
            "usage_context": "{}",
            "tenant": "acme",
            "agent": "triage",
            "user": "ana",
            **row,
        }
        r["usage_date"] = r["request_time"].date()
        out.append(r)
    return schemas.ServingUsage.validate(pl.DataFrame(out, schema=schema, orient="row"))


def costs(bill: pl.DataFrame, reqs: pl.DataFrame) -> pl.DataFrame:
    out = serving_costs(reconciliation(bill, no_estimate(), prices(), "AWS"), reqs, TOKEN_PRICES)
    assert out.columns == SERVING_COSTS_COLUMNS
    return out


def chat_hour(dbus: float, **extra: Any) -> dict[str, Any]:
    return {"endpoint_name": "chat", "usage_quantity": dbus, "sku_name": SERVING, **extra}


def test_two_requests_three_hundred_and_one_hundred_tokens_split_eight_dbus_six_and_two():
    reqs = requests(
        {"input_token_count": 200, "output_token_count": 100, "tenant": "acme"},
        {"input_token_count": 60, "output_token_count": 40, "tenant": "globex"},
    )
    out = costs(usage(chat_hour(8.0)), reqs)
    acme, globex = out.filter(tenant="acme").to_dicts()[0], out.filter(tenant="globex").to_dicts()[0]
    assert acme["actual_dbus"] == pytest.approx(8.0 * 300 / 400)
    assert globex["actual_dbus"] == pytest.approx(8.0 * 100 / 400)
    assert acme["actual_usd"] == pytest.approx(6.0 * PRICE)
    assert acme["estimated_usd"] == pytest.approx((200 * 2.0 + 100 * 6.0) / 1e6)
    assert acme["delta_usd"] == pytest.approx(6.0 * PRICE - (200 * 2.0 + 100 * 6.0) / 1e6)
    assert (acme["calls"], acme["input_tokens"], acme["output_tokens"]) == (1, 200, 100)
    assert (acme["endpoint_name"], acme["model"], acme["agent"], acme["user"]) == ("chat", LLAMA, "triage", "ana")
    assert acme["usage_date"] == H10.date() and acme["currency_code"] == "USD"


def test_requests_are_grouped_and_the_corrected_bill_is_used():
    reqs = requests({"input_token_count": 100}, {"input_token_count": 100}, {"input_token_count": 200, "user": "bo"})
    bill = usage(chat_hour(3.0), chat_hour(-3.0, record_type="RETRACTION"), chat_hour(4.0, record_type="RESTATEMENT"))
    out = costs(bill, reqs)
    ana = out.filter(user="ana").to_dicts()[0]
    assert ana["calls"] == 2 and ana["actual_dbus"] == pytest.approx(4.0 * 200 / 400)


def test_no_tenant_is_untagged_and_no_user_falls_back_to_the_requester():
    reqs = requests({"input_token_count": 10, "tenant": None, "user": None, "agent": "", "requester": "sp-bot"})
    row = costs(usage(chat_hour(1.0)), reqs).to_dicts()[0]
    assert (row["tenant"], row["agent"], row["user"]) == (UNTAGGED, UNTAGGED, "sp-bot")
    assert row["actual_dbus"] == pytest.approx(1.0)


def test_billed_hour_without_requests_stays_visible_and_money_is_conserved():
    reqs = requests({"input_token_count": 10})
    bill = usage(chat_hour(2.0), chat_hour(5.0, usage_start_time=H10 + dt.timedelta(hours=1)))
    out = costs(bill, reqs)
    orphan = out.filter(calls=0).to_dicts()[0]
    assert (orphan["tenant"], orphan["model"], orphan["actual_dbus"]) == (UNTAGGED, UNTAGGED, pytest.approx(5.0))
    assert orphan["estimated_usd"] == 0.0
    assert out["actual_usd"].sum() == pytest.approx((2.0 + 5.0) * PRICE)


def test_request_in_an_unbilled_hour_has_zero_actual_and_its_estimate():
    row = costs(usage(), requests({"input_token_count": 1000})).to_dicts()[0]
    assert row["actual_usd"] == 0.0 and row["actual_dbus"] == 0.0
    assert row["estimated_usd"] == pytest.approx(1000 * 2.0 / 1e6)


def test_model_without_token_price_has_unknown_estimate():
    reqs = requests({"input_token_count": 10, "entity_name": "mystery"}, {"input_token_count": 30, "tenant": "globex"})
    out = costs(usage(chat_hour(4.0)), reqs)
    mystery = out.filter(model="mystery").to_dicts()[0]
    assert mystery["estimated_usd"] is None and mystery["delta_usd"] is None and mystery["unpriced_calls"] == 1
    assert mystery["actual_dbus"] == pytest.approx(4.0 * 10 / 40)


def test_requests_without_tokens_share_the_hour_equally():
    out = costs(usage(chat_hour(3.0)), requests({"tenant": "a"}, {"tenant": "b"}, {"tenant": "c"}))
    assert out["actual_dbus"].to_list() == pytest.approx([1.0, 1.0, 1.0])


def test_unpriced_endpoint_sku_gives_unknown_actual_dollars():
    bill = usage(chat_hour(2.0, sku_name="PREMIUM_SERVERLESS_REAL_TIME_INFERENCE_US_EAST_2"))
    row = costs(bill, requests({"input_token_count": 5})).to_dicts()[0]
    assert row["actual_usd"] is None and row["actual_dbus"] == pytest.approx(2.0)


# --- session, provider and the user's identity fallback ----------------------------------------------------

ENTITIES = pl.DataFrame(
    {
        "served_entity_id": ["se", "se"],
        "entity_name": ["old-llama", LLAMA],
        "provider": ["openai", "databricks"],
        "change_time": [H10 - dt.timedelta(days=2), H10 - dt.timedelta(days=1)],
    }
)


def bill_identity(**identity: str | None) -> pl.DataFrame:
    """raw.billing_usage-like rows of endpoint ``chat`` in the 10:00 hour with the given identity fields."""
    return pl.DataFrame(
        [{"workspace_id": WS, "endpoint_name": "chat", "usage_start_time": H10, **identity}],
        schema={
            "workspace_id": pl.String,
            "endpoint_name": pl.String,
            "usage_start_time": pl.Datetime("us"),
            **{k: pl.String for k in identity},
        },
    )


def test_session_comes_from_the_usage_context_and_provider_from_the_latest_served_entity():
    reqs = requests(
        {"input_token_count": 10, "usage_context": '{"session":"s-1","tenant":"acme"}'},
        {"input_token_count": 30, "usage_context": '{"tenant":"acme"}'},
    )
    bill = reconciliation(usage(chat_hour(4.0)), no_estimate(), prices(), "AWS")
    out = serving_costs(bill, reqs, TOKEN_PRICES, served_entities=ENTITIES)
    s1 = out.filter(session="s-1").to_dicts()[0]
    none = out.filter(session=UNTAGGED).to_dicts()[0]
    # The latest version of entity "se" names LLAMA served by databricks (the older row said openai).
    assert (s1["model"], s1["provider"]) == (LLAMA, "databricks")
    # 10 and 30 tokens of 40 split 4 DBUs: 1 and 3.
    assert s1["actual_dbus"] == pytest.approx(1.0) and none["actual_dbus"] == pytest.approx(3.0)


def test_without_served_entities_the_provider_is_untagged():
    row = costs(usage(chat_hour(1.0)), requests({"input_token_count": 5})).to_dicts()[0]
    assert (row["provider"], row["session"], row["model"]) == (UNTAGGED, UNTAGGED, LLAMA)


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        ({"run_as": "ra", "run_by": "rb", "created_by": "cb", "owned_by": "ob"}, "ra"),
        ({"run_as": None, "run_by": "rb", "created_by": "cb", "owned_by": "ob"}, "rb"),
        ({"run_as": "", "run_by": None, "created_by": "cb", "owned_by": "ob"}, "cb"),
        ({"run_as": None, "run_by": None, "created_by": None, "owned_by": "ob"}, "ob"),
        ({"run_as": None}, UNTAGGED),
    ],
)
def test_the_bill_identity_falls_back_run_as_run_by_created_by_owned_by(identity, expected):
    reqs = requests({"input_token_count": 10, "user": None, "requester": None})
    bill = reconciliation(usage(chat_hour(2.0)), no_estimate(), prices(), "AWS")
    row = serving_costs(bill, reqs, TOKEN_PRICES, billing=bill_identity(**identity)).to_dicts()[0]
    assert row["user"] == expected


def test_the_request_s_own_user_then_its_requester_win_over_the_bill_identity():
    reqs = requests(
        {"input_token_count": 10, "user": "ana", "requester": "sp-1"},
        {"input_token_count": 10, "user": None, "requester": "sp-1", "tenant": "globex"},
    )
    bill = reconciliation(usage(chat_hour(2.0)), no_estimate(), prices(), "AWS")
    out = serving_costs(bill, reqs, TOKEN_PRICES, billing=bill_identity(run_as="owner@x"))
    assert out.filter(tenant="acme")["user"].to_list() == ["ana"]
    assert out.filter(tenant="globex")["user"].to_list() == ["sp-1"]


def test_a_billed_hour_without_requests_takes_the_bill_identity():
    bill = reconciliation(usage(chat_hour(5.0)), no_estimate(), prices(), "AWS")
    row = serving_costs(bill, requests().clear(), TOKEN_PRICES, billing=bill_identity(run_as="owner@x")).to_dicts()[0]
    assert (row["user"], row["calls"], row["actual_dbus"]) == ("owner@x", 0, pytest.approx(5.0))


def test_a_gateway_request_on_an_endpoint_serving_two_entities_has_no_model_and_is_counted_once():
    day = H10.date()
    reqs = requests({"databricks_request_id": "seen", "input_token_count": 100, "tenant": "acme"})
    stamp = (H10 + dt.timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    gateway = gateway_by_day(
        gateway_usage_frame(
            [
                # "seen" again (counted once) and "new", which only the gateway has.
                {"request_id": "seen", "request_time": stamp, "endpoint_name": "chat", "input_tokens": 100},
                {
                    "request_id": "new",
                    "request_time": stamp,
                    "endpoint_name": "chat",
                    "usage_context": '{"tenant": "globex", "session": "s9"}',
                    "input_tokens": 300,
                },
            ]
        ),
        [day],
        WS,
    )
    # chat serves two entities that day (a traffic split): which one "new" reached is unknown.
    split = entities_by_day(
        served_entities_frame(
            [
                {
                    "served_entity_id": "se",
                    "endpoint_name": "chat",
                    "entity_name": LLAMA,
                    "entity_type": "FOUNDATION_MODEL",
                },
                {
                    "served_entity_id": "se2",
                    "endpoint_name": "chat",
                    "entity_name": "b",
                    "entity_type": "FOUNDATION_MODEL",
                },
            ]
        ),
        [day],
        WS,
    )
    out = serving_costs(
        reconciliation(usage(chat_hour(8.0)), no_estimate(), prices(), "AWS"),
        reqs,
        TOKEN_PRICES,
        served_entities=split,
        gateway_usage=gateway,
    )
    rows = {r["tenant"]: r for r in out.to_dicts()}
    assert set(rows) == {"acme", "globex"} and out["calls"].sum() == 2  # "seen" once, "new" once
    # 8 DBU over 100 + 300 tokens: acme 2, globex 6.
    assert rows["acme"]["actual_dbus"] == pytest.approx(8.0 * 100 / 400)
    assert rows["globex"]["actual_dbus"] == pytest.approx(8.0 * 300 / 400)
    assert (rows["globex"]["model"], rows["globex"]["provider"], rows["globex"]["session"]) == (
        UNTAGGED,
        UNTAGGED,
        "s9",
    )
    assert (rows["acme"]["model"], rows["acme"]["provider"]) == (LLAMA, "databricks")  # its own entity "se"


def test_a_parsed_bill_row_without_run_as_names_its_creator_as_the_user():
    """Through the real parser: a system.billing.usage row of endpoint ``chat`` whose identity_metadata has
    run_as null and created_by set; a request without user or requester takes created_by."""
    row = {
        "record_id": "srv-1",
        "account_id": "acc",
        "workspace_id": WS,
        "record_type": "ORIGINAL",
        "ingestion_date": "2024-06-20",
        "cloud": "AWS",
        "sku_name": SERVING,
        "usage_start_time": "2024-06-19T10:00:00.000+00:00",  # H10
        "usage_end_time": "2024-06-19T11:00:00.000+00:00",
        "usage_unit": "DBU",
        "usage_quantity": "4.000000000000000000",
        "billing_origin_product": "MODEL_SERVING",
        "usage_metadata": {"endpoint_name": "chat"},
        "identity_metadata": '{"run_as":null,"created_by":"maker@x","owned_by":"owner@x"}',  # JSON text
        "product_features": {"is_serverless": True},
        "custom_tags": {},
    }
    billing = parse.system_usage_frame([row], "system_tables")
    assert billing.select("run_as", "run_by", "created_by", "owned_by").row(0) == (None, None, "maker@x", "owner@x")
    bill = reconciliation(billing, no_estimate(), prices(), "AWS")
    reqs = requests({"input_token_count": 10, "user": None, "requester": None})
    out = serving_costs(bill, reqs, TOKEN_PRICES, billing=billing).to_dicts()
    # run_as null, run_by absent → created_by; the one request takes the hour's 4 DBUs × $0.5 = $2.
    assert [(r["user"], r["actual_dbus"], r["actual_usd"]) for r in out] == [
        ("maker@x", pytest.approx(4.0), pytest.approx(2.0))
    ]


def test_an_unlisted_workspaces_endpoint_is_left_out_of_the_split_and_counted_once():
    """Configured: WS. WS's chat hour billed 8 DBU, one request → tenant acme, 8 × 0.5 = $4.00. Workspace
    "other" (not listed) billed 6 DBU on its endpoint, no request fetched (nothing of it is): it is not an
    "(untagged)" row here — its $3.00 is the workspace_not_configured bucket of attribution alone — and
    cost_by_scope still sums to the whole bill, 8 + 6 = 14 DBU = $7.00."""
    bill = usage(chat_hour(8.0), chat_hour(6.0, workspace_id="other"))
    recon = reconciliation(bill, no_estimate(), prices(), "AWS", configured=[WS])
    out = serving_costs(recon, requests({"input_token_count": 10, "tenant": "acme"}), TOKEN_PRICES)
    assert out["workspace_id"].to_list() == [WS] and out["tenant"].to_list() == ["acme"]
    assert out["actual_usd"].sum() == pytest.approx(8.0 * PRICE)  # $4.00, not $4.00 + $3.00 untagged
    attributed = attributed_costs(recon, no_estimate(), configured=[WS])
    bucket = attributed.filter(pl.col("reason") == "workspace_not_configured")
    assert bucket["workspace_id"].to_list() == ["other"]
    assert bucket["billed_cost_usd"].sum() == pytest.approx(6.0 * PRICE)  # $3.00, only here
    scope = cost_by_scope(attributed, jobs(), serving_costs=out).filter(pl.col("dimension") == "tenant")
    assert dict(scope.select("workspace_id", "billed_cost_usd").iter_rows()) == pytest.approx(
        {WS: 8.0 * PRICE, "other": 6.0 * PRICE}
    )
    assert scope["billed_cost_usd"].sum() == pytest.approx((8.0 + 6.0) * PRICE)  # $7.00 = the bill
