"""The optional model-serving sources beside ``system.serving.endpoint_usage``: served entities (model and
provider names) and AI Gateway usage.

Each is optional: a workspace without the table, the schema or the grant answers a FAILED statement (or
the API refuses it), and the reader returns an empty frame plus one warning line naming the source and the
reason — a missing optional source is a WARN, never a failed run. Statements are files in ``queries/``
(``served_entities.sql``, ``ai_gateway_usage.sql``) sent with typed parameters only.

Provider: an ``EXTERNAL_MODEL`` entity names its provider in ``external_model_config.provider`` (openai,
anthropic, ...); a ``FOUNDATION_MODEL`` is served by Databricks (``databricks``); anything else (a custom
model, a feature spec) has no provider (null, ``(untagged)`` in the mart).

The pipeline keeps served entities per day (:func:`entities_by_day`, ``raw/serving_entities``): each entity as
its latest version changed before the day's end, so a past day keeps the model and provider it had then.
"""

import datetime as dt
import json
from collections.abc import Iterable, Mapping

import polars as pl

from cost_assets.ingest.http import ApiError
from cost_assets.ingest.parse import canonical_json
from cost_assets.ingest.sql import Param, SqlStatementError, StatementClient, statement
from cost_assets.timeutil import naive_utc

DATABRICKS_PROVIDER = "databricks"
SERVED_ENTITIES_SCHEMA = {
    "served_entity_id": pl.String,
    "endpoint_name": pl.String,
    "entity_name": pl.String,
    "entity_type": pl.String,
    "provider": pl.String,
    "change_time": pl.Datetime("us"),
}
GATEWAY_USAGE_SCHEMA = {
    "request_id": pl.String,
    "request_time": pl.Datetime("us"),
    "endpoint_name": pl.String,
    "requester": pl.String,
    "usage_context": pl.String,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
}
_TS = "%Y-%m-%d %H:%M:%S.%f"  # naive UTC, as the serving usage statement sends it


def _struct(value: str | Mapping | None) -> Mapping:
    """A JSON_ARRAY struct/map value (JSON text) as a mapping; null or malformed → empty."""
    if isinstance(value, Mapping):
        return value
    try:
        parsed = json.loads(value) if value else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def provider_of(row: Mapping) -> str | None:
    """The provider of a served entity row (see the module doc)."""
    if row.get("entity_type") == "EXTERNAL_MODEL":
        return _struct(row.get("external_model_config")).get("provider")
    return DATABRICKS_PROVIDER if row.get("entity_type") == "FOUNDATION_MODEL" else None


def served_entities_frame(rows: Iterable[Mapping]) -> pl.DataFrame:
    """``system.serving.served_entities`` rows → served_entity_id, endpoint_name, entity_name, entity_type,
    provider, change_time."""
    out = [
        {
            "served_entity_id": r["served_entity_id"],
            "endpoint_name": r.get("endpoint_name"),
            "entity_name": r.get("entity_name"),
            "entity_type": r.get("entity_type"),
            "provider": provider_of(r),
            "change_time": naive_utc(r["change_time"]) if r.get("change_time") else None,
        }
        for r in rows
    ]
    return pl.DataFrame(out, schema=SERVED_ENTITIES_SCHEMA, orient="row")


def entities_by_day(entities: pl.DataFrame, days: list[dt.date], workspace_id: str) -> pl.DataFrame:
    """Per day of ``days``, each served entity as of the day's end: its latest version with ``change_time``
    before the next midnight (a version without a change time counts from the start). An entity changed
    only after a day is not in that day. Columns as ``schemas.ServingEntities``."""
    versions = entities.lazy().with_columns(pl.lit(workspace_id).alias("workspace_id"))
    calendar = pl.LazyFrame({"usage_date": days}, schema={"usage_date": pl.Date})
    return (
        calendar.join(versions, how="cross")
        .filter(pl.col("change_time").is_null() | (pl.col("change_time") < pl.col("usage_date").dt.offset_by("1d")))
        .sort("change_time", nulls_last=False)
        .group_by("usage_date", "served_entity_id", maintain_order=True)
        .last()
        .select("usage_date", "workspace_id", *SERVED_ENTITIES_SCHEMA)
        .sort("usage_date", "served_entity_id")
        .collect()
    )


def gateway_by_day(usage: pl.DataFrame, days: list[dt.date], workspace_id: str) -> pl.DataFrame:
    """AI Gateway usage rows of ``days`` with their day (UTC) and workspace; columns as
    ``schemas.AiGatewayUsage``."""
    return (
        usage.with_columns(
            pl.col("request_time").dt.date().alias("usage_date"), pl.lit(workspace_id).alias("workspace_id")
        )
        .filter(pl.col("usage_date").is_in(days))
        .select("usage_date", "workspace_id", *GATEWAY_USAGE_SCHEMA)
        .sort("request_time", "request_id")
    )


def _first(row: Mapping, *names: str) -> object:
    return next((row[n] for n in names if row.get(n) is not None), None)


def gateway_usage_frame(rows: Iterable[Mapping]) -> pl.DataFrame:
    """AI Gateway usage rows → request_id, request_time, endpoint_name, requester, usage_context (canonical
    JSON), input_tokens, output_tokens; both the ``*_tokens`` and the ``*_token_count`` spellings are read."""
    out = []
    for r in rows:
        tokens = [_first(r, f"{side}_tokens", f"{side}_token_count") for side in ("input", "output")]
        out.append(
            {
                "request_id": _first(r, "request_id", "databricks_request_id"),
                "request_time": naive_utc(r["request_time"]),
                "endpoint_name": r.get("endpoint_name"),
                "requester": r.get("requester"),
                "usage_context": canonical_json(_struct(r.get("usage_context"))),
                "input_tokens": int(tokens[0] or 0),
                "output_tokens": int(tokens[1] or 0),
            }
        )
    return pl.DataFrame(out, schema=GATEWAY_USAGE_SCHEMA, orient="row")


def _optional(source: str, read, empty: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    try:
        return read(), []
    except (ApiError, SqlStatementError) as e:
        return empty, [f"{source}: {e}"]


def read_served_entities(sql: StatementClient, workspace_id: str) -> tuple[pl.DataFrame, list[str]]:
    """The workspace's served entities, or an empty frame and a warning when the source is unavailable."""
    return _optional(
        "system.serving.served_entities",
        lambda: served_entities_frame(sql.query(statement("served_entities"), [Param("workspace_id", workspace_id)])),
        served_entities_frame([]),
    )


def read_gateway_usage(
    sql: StatementClient, workspace_id: str, start: dt.datetime, end: dt.datetime
) -> tuple[pl.DataFrame, list[str]]:
    """AI Gateway usage in [start, end) (naive UTC), or an empty frame and a warning when unavailable."""
    params = [
        Param("workspace_id", workspace_id),
        Param("start_time", start.strftime(_TS), "TIMESTAMP"),
        Param("end_time", end.strftime(_TS), "TIMESTAMP"),
    ]
    return _optional(
        "system.ai_gateway.usage",
        lambda: gateway_usage_frame(sql.query(statement("ai_gateway_usage"), params)),
        gateway_usage_frame([]),
    )
