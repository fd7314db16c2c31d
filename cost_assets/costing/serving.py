"""``mart/serving_costs``: each endpoint's billed DBUs split over its requests by tokens.

Pure polars, no Dagster. The actual side comes from ``mart/reconciliation`` (``resource_type =
'endpoint'``), so serving dollars are priced exactly once, with the same price join and the same
correction handling as every other billed row. Per endpoint-hour (workspace, endpoint, hour) the billed
DBUs and $ are split over the requests of that hour by their share of tokens (input + output): the bill
itself is per hour and proportional to tokens, so the token share is the request's share. A request's
``usage_context`` names its tenant, agent and user.

The estimate is ``tokens × token price`` (``PriceSheet.token_prices_frame()``: model, input_per_million,
output_per_million) by the served model (``entity_name``). A model without a token price makes its
group's ``estimated_usd`` null (never $0) and is counted in ``unpriced_calls``.

Why the edge cases go where they go:

* an hour whose requests have no tokens at all is split equally per request (the bill still has to go
  somewhere and nothing says otherwise);
* a billed endpoint-hour with no request (traffic logs missing, warm-up, provisioned throughput) becomes
  one row with tenant/agent/user/model ``vocabulary.UNTAGGED`` and 0 calls, so Σ ``actual_usd`` of the table
  equals the endpoints' billed $ (of the configured workspaces) — nothing is dropped;
* requests in an hour nothing was billed for (yet) get ``actual_* = 0``;
* a request without a tenant (or agent, or session) is ``vocabulary.UNTAGGED``;
* the user, first found wins: the request's own ``usage_context.user``; its ``requester`` (the identity
  that called, per request); the identity the bill names for the endpoint-hour (``billing_identity``:
  ``identity_metadata.run_as`` → ``run_by`` → ``created_by`` → ``owned_by``, whichever the bill carries);
  ``vocabulary.UNTAGGED``. A billed hour without requests takes the bill's identity the same way;
* model and provider come from ``served_entities`` (``system.serving.served_entities``: the entity's name
  and, for an external model, its provider; a Databricks-hosted foundation model's provider is
  ``databricks``) when given, the model else from the request's ``entity_name``; unknown is
  ``vocabulary.UNTAGGED``. ``session`` is the ``usage_context`` key of that name. Entities with a
  ``usage_date`` (``raw/serving_entities``) are joined per day: a request takes the model and provider its
  entity had on the request's day, never those of a later version;
* AI Gateway requests (``raw/ai_gateway_usage``) the endpoint usage does not have (same day and request id)
  are requests too; one names no served entity, so it takes its endpoint's only entity of the day (an
  endpoint serving several: model and provider unknown, ``vocabulary.UNTAGGED``);
* endpoints of a workspace the account does not list (reconciliation reason ``workspace_not_configured``)
  are left out: their money is that bucket of ``mart/attributed_costs``, not an ``(untagged)`` request.

``delta_usd = actual_usd − estimated_usd`` (positive: the bill is higher than the token-price estimate).
"""

import polars as pl

from cost_assets import schemas
from cost_assets.costing.frames import Frame, lazy
from cost_assets.vocabulary import CURRENCY, IDENTITY_FIELDS, NOT_CONFIGURED, UNTAGGED

# One row per group: the contract's key is the grouping.
GROUP = schemas.ServingCosts.to_schema().unique
ENDPOINT_HOUR = ["workspace_id", "endpoint_name", "hour_start"]
SERVING_COSTS_COLUMNS = list(schemas.ServingCosts.to_schema().columns)


def _present(column: str) -> pl.Expr:
    """The column with blank strings as null (an empty tag is no tag)."""
    return pl.when(pl.col(column).str.strip_chars() != "").then(pl.col(column))


def _endpoint_bill(reconciliation: Frame) -> pl.LazyFrame:
    """Billed DBUs and $ per endpoint-hour (all SKUs; $ null if any SKU is unpriced), except the endpoints
    of workspaces the account does not list: nothing of them is fetched, no request to split over, and their
    money is already the ``workspace_not_configured`` bucket (shown twice it would be counted twice)."""
    return (
        lazy(reconciliation)
        .filter(
            (pl.col("resource_type") == "endpoint")
            & (pl.col("billing_records") > 0)
            & (pl.col("reason") != NOT_CONFIGURED)
        )
        .group_by(pl.col("workspace_id"), pl.col("resource_id").alias("endpoint_name"), "hour_start")
        .agg(
            pl.col("billed_dbus").sum().alias("_hour_dbus"),
            pl.when(pl.col("billed_cost_usd").null_count() == 0)
            .then(pl.col("billed_cost_usd").sum())
            .alias("_hour_usd"),
        )
    )


def billing_identity(billing: Frame) -> pl.DataFrame:
    """The identity the bill names per endpoint-hour: ``run_as`` → ``run_by`` → ``created_by`` →
    ``owned_by`` (those of the columns ``billing`` has; ``raw/billing_usage`` carries all four). Several
    identities in one hour: the first in sort order, so the answer does not depend on row order."""
    frame = lazy(billing)
    present = [c for c in IDENTITY_FIELDS if c in frame.collect_schema().names()]
    identity = pl.coalesce(*(_present(c) for c in present)) if present else pl.lit(None, pl.String)
    return (
        frame.filter(pl.col("endpoint_name").is_not_null())
        .select(
            "workspace_id",
            "endpoint_name",
            pl.col("usage_start_time").dt.truncate("1h").alias("hour_start"),
            identity.alias("_identity"),
        )
        .group_by(ENDPOINT_HOUR)
        .agg(pl.col("_identity").drop_nulls().min())
        .collect()
    )


def _entities(served_entities: Frame | None) -> tuple[pl.LazyFrame, list[str]]:
    """served_entity_id → entity name and provider (the latest version of each entity), and the join keys.
    A frame with ``usage_date`` (``raw/serving_entities``: each entity as of each day) is joined per day, so
    a request takes the model and provider its entity had on the request's day (its ``usage_date``)."""
    if served_entities is None:
        schema = {"served_entity_id": pl.String, "_entity": pl.String, "_provider": pl.String}
        return pl.LazyFrame(schema=schema), ["served_entity_id"]
    frame = lazy(served_entities)
    keys = [c for c in ("usage_date", "served_entity_id") if c in frame.collect_schema().names()]
    latest = (
        frame.sort("change_time", nulls_last=False)
        .group_by(keys)
        .agg(pl.col("entity_name").last().alias("_entity"), pl.col("provider").last().alias("_provider"))
    )
    return latest, keys


def _with_gateway(serving_usage: Frame, gateway_usage: Frame | None, served_entities: Frame | None) -> pl.LazyFrame:
    """The endpoint usage plus the AI Gateway requests it does not have (same day and request id), in its
    shape. A gateway row names no served entity: it takes its endpoint's when the endpoint served exactly
    one entity that day (else none: the model is unknown, never guessed among several)."""
    usage = lazy(serving_usage)
    if gateway_usage is None:
        return usage
    context = pl.col("usage_context")
    request = ["usage_date", "databricks_request_id"]
    gateway = (
        lazy(gateway_usage)
        .rename({"request_id": "databricks_request_id", "input_tokens": "input_token_count"})
        .rename({"output_tokens": "output_token_count"})
        .join(usage.select(request), on=request, how="anti")
        .with_columns(*(context.str.json_path_match(f"$.{k}").alias(k) for k in ("tenant", "agent", "user")))
    )
    if served_entities is not None:
        entities = lazy(served_entities)
        keys = [c for c in ("usage_date", "endpoint_name") if c in entities.collect_schema().names()]
        single = (
            entities.group_by(keys)
            .agg(pl.col("served_entity_id").unique().alias("_ids"))
            .filter(pl.col("_ids").list.len() == 1)
            .select(*keys, pl.col("_ids").list.first().alias("served_entity_id"))
        )
        gateway = gateway.join(single, on=keys, how="left")
    return pl.concat([usage, gateway], how="diagonal_relaxed")


def _requests(
    serving_usage: Frame,
    token_prices: Frame,
    served_entities: Frame | None,
    identity: pl.LazyFrame,
    gateway_usage: Frame | None = None,
) -> pl.LazyFrame:
    """Requests (the endpoint usage, plus the gateway requests it lacks) with their hour, group keys, tokens,
    token share weight and estimated $."""
    prices = lazy(token_prices).select(pl.col("model").alias("_model"), "input_per_million", "output_per_million")
    tagged = [pl.coalesce(_present(c), pl.lit(UNTAGGED)).alias(c) for c in ("tenant", "agent")]
    session = pl.col("usage_context").str.json_path_match("$.session")
    entities, keys = _entities(served_entities)
    return (
        _with_gateway(serving_usage, gateway_usage, served_entities)
        .with_columns(pl.col("request_time").dt.truncate("1h").alias("hour_start"))
        .join(entities, on=keys, how="left")
        .join(identity, on=ENDPOINT_HOUR, how="left", nulls_equal=True)
        .with_columns(
            *tagged,
            pl.coalesce(_present("user"), _present("requester"), "_identity", pl.lit(UNTAGGED)).alias("user"),
            pl.coalesce(session.str.strip_chars().replace("", None), pl.lit(UNTAGGED)).alias("session"),
            pl.coalesce("_entity", "entity_name").alias("_model"),
            pl.coalesce("_provider", pl.lit(UNTAGGED)).alias("provider"),
            pl.col("input_token_count").alias("input_tokens"),
            pl.col("output_token_count").alias("output_tokens"),
        )
        .join(prices, on="_model", how="left")
        .with_columns(
            pl.coalesce("_model", pl.lit(UNTAGGED)).alias("model"),
            (
                (
                    pl.col("input_tokens") * pl.col("input_per_million")
                    + pl.col("output_tokens") * pl.col("output_per_million")
                )
                / 1e6
            ).alias("_estimated"),
            (pl.col("input_tokens") + pl.col("output_tokens")).cast(pl.Float64).alias("_tokens"),
        )
    )


def _identity_frame(billing: Frame | None) -> pl.LazyFrame:
    if billing is not None:
        return billing_identity(billing).lazy()
    empty = pl.LazyFrame(schema={**{c: pl.String for c in ENDPOINT_HOUR}, "_identity": pl.String})
    return empty.with_columns(pl.col("hour_start").cast(pl.Datetime("us")))


def _split(bill: pl.LazyFrame, req: pl.LazyFrame) -> pl.LazyFrame:
    """Each request with its share of its endpoint-hour's bill (``_actual_dbus``, ``_actual_usd``)."""
    tokens_in_hour = pl.col("_tokens").sum().over(ENDPOINT_HOUR)
    share = (
        pl.when(tokens_in_hour > 0)
        .then(pl.col("_tokens") / tokens_in_hour)
        .otherwise(1.0 / pl.len().over(ENDPOINT_HOUR))
    )
    return (
        req.join(bill, on=ENDPOINT_HOUR, how="left", nulls_equal=True)
        .with_columns(share.alias("_share"))
        .with_columns(
            (pl.col("_hour_dbus").fill_null(0.0) * pl.col("_share")).alias("_actual_dbus"),
            # No bill for the hour (yet): $0; a bill whose price is unknown: null.
            pl.when(pl.col("_hour_dbus").is_null())
            .then(0.0)
            .otherwise(pl.col("_hour_usd") * pl.col("_share"))
            .alias("_actual_usd"),
            pl.lit(1, pl.Int64).alias("_call"),
        )
    )


def request_costs(
    reconciliation: Frame,
    serving_usage: Frame,
    token_prices: Frame,
    served_entities: Frame | None = None,
    billing: Frame | None = None,
    gateway_usage: Frame | None = None,
) -> pl.DataFrame:
    """Per request: its group keys, ids (``databricks_request_id``, ``client_request_id``), tokens, token
    estimate and share of the bill — the rows :func:`serving_costs` groups, for comparing one call's
    estimate with what the bill charged for it (:func:`compare_calls`). Arguments as :func:`serving_costs`."""
    identity = _identity_frame(billing)
    req = _requests(serving_usage, token_prices, served_entities, identity, gateway_usage)
    return (
        _split(_endpoint_bill(reconciliation), req)
        .select(
            pl.col("hour_start").dt.date().alias("usage_date"),
            "workspace_id",
            "databricks_request_id",
            "client_request_id",
            "request_time",
            "endpoint_name",
            "model",
            "provider",
            "tenant",
            "agent",
            "user",
            "session",
            "input_tokens",
            "output_tokens",
            pl.col("_estimated").alias("estimated_usd"),
            pl.col("_actual_usd").alias("actual_usd"),
            pl.col("_actual_dbus").alias("actual_dbus"),
        )
        .sort("request_time", "databricks_request_id")
        .collect()
    )


def compare_calls(calls: Frame, requests: Frame) -> pl.DataFrame:
    """The client's per-call estimates (the instrumentation's call log: client_request_id, estimated_usd,
    input_tokens, output_tokens, token_source) next to the bill's per-request share (:func:`request_costs`),
    joined by ``client_request_id``. A call the bill has no request for (yet) keeps null actuals."""
    client = lazy(calls).select(
        "client_request_id",
        "token_source",
        pl.col("input_tokens").alias("client_input_tokens"),
        pl.col("output_tokens").alias("client_output_tokens"),
        pl.col("estimated_usd").alias("client_estimated_usd"),
    )
    billed = lazy(requests).filter(pl.col("client_request_id").is_not_null())
    return (
        client.join(billed, on="client_request_id", how="left")
        .with_columns((pl.col("actual_usd") - pl.col("client_estimated_usd")).alias("delta_usd"))
        .sort("client_request_id")
        .collect()
    )


def serving_costs(
    reconciliation: Frame,
    serving_usage: Frame,
    token_prices: Frame,
    served_entities: Frame | None = None,
    billing: Frame | None = None,
    gateway_usage: Frame | None = None,
) -> pl.DataFrame:
    """``mart/serving_costs`` per day × workspace × tenant × agent × user × session × endpoint × model ×
    provider.

    ``reconciliation``: ``mart/reconciliation`` (its endpoint rows are the bill); ``serving_usage``:
    ``raw/serving_usage`` (``schemas.ServingUsage``); ``token_prices``: model, input_per_million,
    output_per_million; ``served_entities`` (optional): served_entity_id, entity_name, provider,
    change_time (``raw/serving_entities``, with usage_date: joined per day); ``billing`` (optional):
    ``raw/billing_usage`` or any frame with workspace_id, endpoint_name, usage_start_time and identity
    columns, for the bill's identity; ``gateway_usage`` (optional): ``raw/ai_gateway_usage``, whose requests
    the endpoint usage lacks are added. Columns
    :data:`SERVING_COSTS_COLUMNS`; see the module doc for the rules.
    """
    bill = _endpoint_bill(reconciliation)
    identity = _identity_frame(billing)
    req = _requests(serving_usage, token_prices, served_entities, identity, gateway_usage)
    split = _split(bill, req)
    orphan_hours = bill.join(req.select(ENDPOINT_HOUR).unique(), on=ENDPOINT_HOUR, how="anti", nulls_equal=True)
    orphans = orphan_hours.join(identity, on=ENDPOINT_HOUR, how="left", nulls_equal=True).select(
        *ENDPOINT_HOUR,
        *[pl.lit(UNTAGGED).alias(c) for c in ("tenant", "agent", "session", "model", "provider")],
        pl.coalesce("_identity", pl.lit(UNTAGGED)).alias("user"),
        pl.col("_hour_dbus").alias("_actual_dbus"),
        pl.col("_hour_usd").alias("_actual_usd"),
        pl.lit(0, pl.Int64).alias("_call"),
        pl.lit(0, pl.Int64).alias("input_tokens"),
        pl.lit(0, pl.Int64).alias("output_tokens"),
        pl.lit(0.0).alias("_estimated"),
    )
    rows = pl.concat([split, orphans], how="diagonal_relaxed").with_columns(
        pl.col("hour_start").dt.date().alias("usage_date")
    )
    unpriced = pl.col("_estimated").is_null() & (pl.col("_call") > 0)
    return (
        rows.group_by(GROUP)
        .agg(
            pl.col("_call").sum().alias("calls"),
            pl.col("input_tokens").sum(),
            pl.col("output_tokens").sum(),
            pl.when(pl.col("_estimated").null_count() == 0).then(pl.col("_estimated").sum()).alias("estimated_usd"),
            pl.when(pl.col("_actual_usd").null_count() == 0).then(pl.col("_actual_usd").sum()).alias("actual_usd"),
            pl.col("_actual_dbus").sum().alias("actual_dbus"),
            unpriced.sum().cast(pl.Int64).alias("unpriced_calls"),
        )
        .with_columns(
            (pl.col("actual_usd") - pl.col("estimated_usd")).alias("delta_usd"),
            pl.lit(CURRENCY).alias("currency_code"),
        )
        .select(SERVING_COSTS_COLUMNS)
        .sort(GROUP)
        .collect()
    )
