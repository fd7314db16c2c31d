"""Reporting: the attributed bill rolled up by scope, and model-serving spend by tenant, agent and user.

Metadata is per day (``add_daily_metadata``): a single-run backfill gives every partition its own totals.
"""

import dagster as dg
import polars as pl

from cost_assets import schemas
from cost_assets.assets.policies import MART_ASSET, PARTITIONED
from cost_assets.assets.raw import AI_GATEWAY_USAGE, BILLING_USAGE, CLUSTERS, JOBS, SERVING_ENTITIES, SERVING_USAGE
from cost_assets.assets.reconciliation import ATTRIBUTED_COSTS, RECONCILIATION
from cost_assets.checks import CONTRACT_DESCRIPTION, add_daily_metadata, contract_result
from cost_assets.costing import scope, serving
from cost_assets.partitions import window_days
from cost_assets.reports import rollup
from cost_assets.resources.prices import PriceCatalog

COST_BY_SCOPE = dg.AssetKey(["mart", "cost_by_scope"])
SERVING_COSTS = dg.AssetKey(["mart", "serving_costs"])


@dg.asset(
    key=SERVING_COSTS,
    group_name="mart",
    kinds={"polars", "duckdb"},
    metadata=PARTITIONED,
    ins={
        "reconciliation": dg.AssetIn(RECONCILIATION),
        "serving_usage": dg.AssetIn(SERVING_USAGE),
        "serving_entities": dg.AssetIn(SERVING_ENTITIES),
        "gateway_usage": dg.AssetIn(AI_GATEWAY_USAGE),
        "billing": dg.AssetIn(BILLING_USAGE),
    },
    check_specs=[dg.AssetCheckSpec("contract", asset=SERVING_COSTS, blocking=True, description=CONTRACT_DESCRIPTION)],
    pool="duckdb_writer",
    **MART_ASSET,
)
def serving_costs(
    context: dg.AssetExecutionContext,
    prices: PriceCatalog,
    reconciliation: pl.DataFrame,
    serving_usage: pl.DataFrame,
    serving_entities: pl.DataFrame,
    gateway_usage: pl.DataFrame,
    billing: pl.DataFrame,
):
    """Model-serving (AI) spend: each endpoint's billed DBUs per hour split over its requests by tokens,
    grouped by day, tenant, agent, user, session, endpoint, model and provider, next to the token-price
    estimate. Model and provider come from ``raw/serving_entities`` as of the request's day (the model else
    from the request's own entity name; no served entities: provider ``(untagged)``). AI Gateway requests
    the endpoint usage lacks are requests too. A request without a user in its usage context falls back to
    its requester, then to the identity the bill names (run_as → run_by → created_by → owned_by)."""
    days = window_days(context.partition_time_window)
    frame = serving.serving_costs(
        reconciliation.filter(pl.col("usage_date").is_in(days)),
        serving_usage,
        prices.token_prices(),
        served_entities=serving_entities,
        billing=billing,
        gateway_usage=gateway_usage,
    )
    add_daily_metadata(
        context,
        frame,
        days,
        lambda f, _: {
            "calls": int(f["calls"].sum() or 0),
            "actual_usd": float(f["actual_usd"].sum() or 0.0),
            "estimated_usd": float(f["estimated_usd"].sum() or 0.0),
        },
    )
    yield dg.Output(frame)
    yield contract_result(schemas.ServingCosts, frame, SERVING_COSTS)


@dg.asset(
    key=COST_BY_SCOPE,
    group_name="mart",
    kinds={"polars", "duckdb"},
    metadata=PARTITIONED,
    ins={
        "attributed": dg.AssetIn(ATTRIBUTED_COSTS),
        "jobs": dg.AssetIn(JOBS),
        "clusters": dg.AssetIn(CLUSTERS),
        "billing": dg.AssetIn(BILLING_USAGE),
        "serving": dg.AssetIn(SERVING_COSTS),
    },
    check_specs=[dg.AssetCheckSpec("contract", asset=COST_BY_SCOPE, blocking=True, description=CONTRACT_DESCRIPTION)],
    pool="duckdb_writer",
    **MART_ASSET,
)
def cost_by_scope(
    context: dg.AssetExecutionContext,
    attributed: pl.DataFrame,
    jobs: pl.DataFrame,
    clusters: pl.DataFrame,
    billing: pl.DataFrame,
    serving: pl.DataFrame,
):
    """Daily attributed $ by team, tenant, project, cost_center, job and user ('(untagged)' is a value of
    its own). Tag precedence: job tags > cluster custom tags > pool tags. Serving spend joins by tenant and
    user through its token split."""
    frame = scope.cost_by_scope(attributed, jobs, clusters=clusters, billing=billing, serving_costs=serving)
    add_daily_metadata(
        context,
        frame,
        window_days(context.partition_time_window),
        lambda f, day: {
            "dimensions": ", ".join(sorted(f["dimension"].unique())) if f.height else "none",
            **{
                key: dg.MetadataValue.md(table)
                for key, table in rollup.day_tops(f, attributed.filter(pl.col("usage_date") == day)).items()
            },
        },
    )
    yield dg.Output(frame)
    yield contract_result(schemas.CostByScope, frame, COST_BY_SCOPE)
