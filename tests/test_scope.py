"""Tag precedence (job > cluster > pool > bill) and the cost_by_scope rollup."""

import polars as pl
import pytest
from costing_builders import DAY, clusters, jobs
from test_reconcile import PRICE, SERVING, WS, estimate, no_estimate, one, prices, usage

from cost_assets.costing.attribute import attributed_costs
from cost_assets.costing.reconcile import reconciliation
from cost_assets.costing.scope import COST_BY_SCOPE_COLUMNS, cost_by_scope, resolve_tags
from cost_assets.vocabulary import SCOPE_DIMENSIONS, UNTAGGED


def _frame(**cols) -> pl.DataFrame:
    base = {"usage_date": [DAY], "workspace_id": [WS], "job_id": [None], "cluster_id": [None], "custom_tags": ["{}"]}
    return pl.DataFrame(
        {**base, **{k: [v] for k, v in cols.items()}},
        schema_overrides={"job_id": pl.Int64, "cluster_id": pl.String, "custom_tags": pl.String},
    )


POOLS = pl.DataFrame({"instance_pool_id": ["pool-1"], "custom_tags": ['{"project":"pool-p","team":"pool-team"}']})
CLUSTERS = clusters(
    {
        "cluster_id": "tagged",
        "instance_pool_id": "pool-1",
        "custom_tags": '{"cost_center":"cc-cluster","team":"analytics"}',
        "creator_user_name": "owner@x",
    },
    {"cluster_id": "bare", "instance_pool_id": "pool-1", "custom_tags": "{}"},
)
JOBS = jobs(
    {"job_id": 5, "team": "ml", "tenant": "acme", "creator_user_name": "creator@x"},
    {"job_id": 6, "creator_user_name": "other@x"},
)


def _tags(frame: pl.DataFrame) -> dict:
    row = resolve_tags(frame, JOBS, CLUSTERS, POOLS).collect().to_dicts()[0]
    return {t: row[t] for t in ("team", "tenant", "project", "cost_center")}


def test_job_tags_win_over_cluster_over_pool_key_by_key():
    assert _tags(_frame(job_id=5, cluster_id="tagged")) == {
        "team": "ml",
        "tenant": "acme",
        "project": "pool-p",
        "cost_center": "cc-cluster",
    }


def test_cluster_tags_win_over_pool_tags_without_a_job():
    assert _tags(_frame(cluster_id="tagged")) == {
        "team": "analytics",
        "tenant": None,
        "project": "pool-p",
        "cost_center": "cc-cluster",
    }


def test_pool_tags_for_an_untagged_cluster_and_bill_tags_last():
    assert _tags(_frame(cluster_id="bare", custom_tags='{"team":"bill-team","tenant":"bill-tenant"}')) == {
        "team": "pool-team",
        "tenant": "bill-tenant",
        "project": "pool-p",
        "cost_center": None,
    }


def test_bill_tags_alone_for_resources_the_rest_api_does_not_describe():
    assert _tags(_frame(custom_tags='{"team":"ai"}'))["team"] == "ai"


def test_an_empty_tag_value_is_no_tag():
    frame = _frame(job_id=6, cluster_id="tagged")
    blank = jobs({"job_id": 6, "team": "  "})
    row = resolve_tags(frame, blank, CLUSTERS).collect().to_dicts()[0]
    assert row["team"] == "analytics"


# --- cost_by_scope ------------------------------------------------------------------------------------


def _attributed() -> tuple[pl.DataFrame, pl.DataFrame]:
    """c1: 10 DBU billed, run of job 5 (3 DBU est) + run of untagged job 6 (1 DBU est); endpoint 2 DBU."""
    bill = usage(
        {"cluster_id": "tagged", "usage_quantity": 10.0},
        {"endpoint_name": "chat", "usage_quantity": 2.0, "sku_name": SERVING},
        {"cluster_id": "job-c", "usage_quantity": 1.0, "job_id": 5, "job_run_id": 55, "run_as": "sp-ml"},
    )
    est = estimate(
        {"cluster_id": "tagged", "task_run_id": 1, "job_id": 5, "dbus": 3.0},
        {"cluster_id": "tagged", "task_run_id": 2, "job_id": 6, "dbus": 1.0},
    )
    recon = reconciliation(bill, est, prices(), "AWS")
    return attributed_costs(recon, est, JOBS, CLUSTERS, POOLS), bill


def _values(scope: pl.DataFrame, dimension: str) -> dict[str, float]:
    return dict(scope.filter(dimension=dimension).select("value", "billed_cost_usd").iter_rows())


def test_cost_by_scope_team_with_untagged_bucket():
    attributed, bill = _attributed()
    scope = cost_by_scope(attributed, JOBS, CLUSTERS, bill)
    assert scope.columns == COST_BY_SCOPE_COLUMNS
    # job 5 → ml (10 × 3/4 DBU on c1, and the 1 DBU job-cluster hour); job 6 has no team tag → the
    # cluster's team; the endpoint has no tag at all.
    assert _values(scope, "team") == pytest.approx(
        {"ml": (7.5 + 1.0) * PRICE, "analytics": 2.5 * PRICE, UNTAGGED: 2.0 * PRICE}
    )
    assert _values(scope, "tenant") == pytest.approx({"acme": 8.5 * PRICE, UNTAGGED: (2.5 + 2.0) * PRICE})
    total = (10.0 + 2.0 + 1.0) * PRICE
    for dimension in SCOPE_DIMENSIONS:
        assert sum(_values(scope, dimension).values()) == pytest.approx(total), dimension


def test_cost_by_scope_job_and_user():
    attributed, bill = _attributed()
    scope = cost_by_scope(attributed, JOBS, CLUSTERS, bill)
    assert _values(scope, "job") == pytest.approx({"5": 8.5 * PRICE, "6": 2.5 * PRICE, UNTAGGED: 2.0 * PRICE})
    # Job 5 runs as the bill's run_as; job 6 has no run_as → its creator; the endpoint has no user.
    assert _values(scope, "user") == pytest.approx(
        {"sp-ml": 8.5 * PRICE, "other@x": 2.5 * PRICE, UNTAGGED: 2.0 * PRICE}
    )
    without_bill = cost_by_scope(attributed, JOBS, CLUSTERS)
    assert _values(without_bill, "user")["creator@x"] == pytest.approx(8.5 * PRICE)


def test_idle_money_counts_for_the_cluster_creator():
    bill = usage({"cluster_id": "tagged", "usage_quantity": 4.0})
    est = estimate({"cluster_id": "tagged", "consumer": "idle", "dbus": 4.0})
    attributed = attributed_costs(reconciliation(bill, est, prices(), "AWS"), est, JOBS, CLUSTERS)
    scope = cost_by_scope(attributed, JOBS, CLUSTERS)
    assert _values(scope, "user") == pytest.approx({"owner@x": 4.0 * PRICE})
    row = one(scope, dimension="team")
    assert (row["value"], row["idle_cost_usd"], row["run_cost_usd"]) == ("analytics", pytest.approx(2.0), 0.0)


def test_serving_split_replaces_the_endpoint_rows():
    attributed, bill = _attributed()
    serving = pl.DataFrame(
        {
            "usage_date": [DAY, DAY],
            "workspace_id": [WS, WS],
            "tenant": ["o'reilly", UNTAGGED],
            "agent": ["a", "a"],
            "user": ["u@x", "u@x"],
            "endpoint_name": ["chat", "chat"],
            "model": ["m", "m"],
            "actual_dbus": [1.5, 0.5],
            "actual_usd": [1.5 * PRICE, 0.5 * PRICE],
            "estimated_usd": [0.7, 0.2],
        }
    )
    scope = cost_by_scope(attributed, JOBS, CLUSTERS, bill, serving_costs=serving)
    tenant = _values(scope, "tenant")
    assert tenant["o'reilly"] == pytest.approx(1.5 * PRICE)
    assert tenant[UNTAGGED] == pytest.approx((2.5 + 0.5) * PRICE)
    assert sum(tenant.values()) == pytest.approx(13.0 * PRICE)
    assert one(scope, dimension="tenant", value="o'reilly")["serving_cost_usd"] == pytest.approx(0.75)


def test_unknown_money_keeps_the_scope_total_unknown():
    bill = usage({"cluster_id": "tagged", "usage_quantity": 4.0, "sku_name": "PREMIUM_NEW_SHINY_COMPUTE"})
    attributed = attributed_costs(reconciliation(bill, no_estimate(), prices(), "AWS"), no_estimate(), JOBS, CLUSTERS)
    row = one(cost_by_scope(attributed, JOBS, CLUSTERS), dimension="team")
    assert row["billed_cost_usd"] is None and row["billed_dbus"] == pytest.approx(4.0)
