"""Ad-hoc attribution queries over the warehouse: ``mart.serving_costs`` grouped as the caller asks.

Plain duckdb + polars (no Dagster import, so the CLI and notebooks can use it without the graph). It reads
through :mod:`cost_assets.read`: the file is opened read-only, so a query can never change stored data.
"""

import datetime as dt
import os
from collections.abc import Sequence

import polars as pl

from cost_assets import schemas
from cost_assets.config import Settings
from cost_assets.read import fetch

TABLE = '"mart"."serving_costs"'
# The allow-list of group_by columns: the key of mart.serving_costs (the groups it is stored by).
GROUP_COLUMNS = tuple(schemas.ServingCosts.to_schema().unique)
ALIASES = {"endpoint": "endpoint_name", "workspace": "workspace_id", "date": "usage_date", "day": "usage_date"}
# The dimensions a query can filter on (keyword → column): every key of mart.serving_costs but the day.
FILTERS = {
    "tenant": "tenant",
    "agent": "agent",
    "user": "user",
    "model": "model",
    "provider": "provider",
    "session": "session",
    "endpoint": "endpoint_name",
    "workspace": "workspace_id",
}
MEASURES = ("estimated_usd", "actual_usd", "actual_dbus", "delta_usd", "calls")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _measure(column: str) -> str:
    """SUM that stays NULL when any summed value is NULL (unknown money is not $0); calls as BIGINT."""
    if column == "calls":
        return f"CAST(SUM({_quote(column)}) AS BIGINT) AS {_quote(column)}"
    q = _quote(column)
    return f"CASE WHEN COUNT(*) = COUNT({q}) THEN SUM({q}) END AS {q}"


def query_attribution(
    tenant_id: str | None = None,
    start_date: dt.date | str | None = None,
    end_date: dt.date | str | None = None,
    group_by: str | Sequence[str] = ("tenant",),
    database: str | None = None,
    **where: str | None,
) -> pl.DataFrame:
    """Serving cost per group over ``[start_date, end_date]`` (both inclusive), optionally for one tenant.

    Every dimension can be grouped by and filtered on: ``tenant, agent, user, model, provider, session,
    endpoint`` (``endpoint_name``) and ``workspace`` (``workspace_id``), plus ``usage_date`` (``day``) for
    grouping. Filters are keywords matching a column exactly (``agent="triage", provider="databricks"``);
    ``tenant_id`` is the tenant filter under the name the first version of this function gave it.

    ``start_date``/``end_date`` are required (dates or ISO strings); ``database`` defaults to the
    ledger the pipeline writes (``COST_ASSETS_DUCKDB``, or ``COST_ASSETS_STORAGE=delta:<uri>``).

    Returns the ``group_by`` columns plus ``estimated_usd, actual_usd, actual_dbus, delta_usd, calls``
    (summed; a money column is null for a group holding any unknown amount). ``tenant_id`` matches the
    ``tenant`` column exactly, including ``'(untagged)'``. An empty ``group_by`` gives one total row; a
    single column may be given as a plain string (``group_by="tenant"``).

    Why values and identifiers are treated differently: the dates and the filter values are **bound
    parameters** (``?``), so DuckDB never parses them as SQL — a tenant such as ``o'reilly`` (or a
    hostile string) is just a value. SQL has no placeholders for identifiers, so the ``group_by`` and
    filter column names have to be written into the statement text; they are therefore checked against
    the fixed allow-lists :data:`GROUP_COLUMNS` and :data:`FILTERS` (and quoted) before they get anywhere
    near it.
    """
    if start_date is None or end_date is None:
        raise TypeError("query_attribution needs start_date and end_date")
    start_date, end_date = (d if isinstance(d, dt.date) else dt.date.fromisoformat(d) for d in (start_date, end_date))
    if database is None:
        database = Settings.from_environ(os.environ).ledger
    # A lone string is one column, not its characters: group_by="tenant" means ("tenant",).
    columns = [ALIASES.get(c, c) for c in ((group_by,) if isinstance(group_by, str) else group_by)]
    unknown = [c for c in columns if c not in GROUP_COLUMNS]
    if unknown:
        raise ValueError(f"cannot group by {unknown}: allowed columns are {list(GROUP_COLUMNS)}")
    if len(set(columns)) != len(columns):
        raise ValueError(f"group_by has a column twice: {columns}")
    if start_date > end_date:
        raise ValueError(f"start_date {start_date} is after end_date {end_date}")
    unknown_filters = sorted(set(where) - set(FILTERS))
    if unknown_filters:
        raise TypeError(f"cannot filter on {unknown_filters}: allowed filters are {list(FILTERS)}")
    if tenant_id is not None and where.get("tenant", tenant_id) != tenant_id:
        raise ValueError(f"tenant_id={tenant_id!r} and tenant={where['tenant']!r} disagree")
    if tenant_id is not None:
        where = {**where, "tenant": tenant_id}
    filters = {FILTERS[k]: v for k, v in where.items() if v is not None}  # None: no filter, as tenant_id
    keys = ", ".join(_quote(c) for c in columns)
    select = ", ".join([*(_quote(c) for c in columns), *(_measure(m) for m in MEASURES)])
    sql = f"SELECT {select} FROM {TABLE} WHERE usage_date BETWEEN ? AND ?"
    params: list[object] = [start_date, end_date]
    for column, value in filters.items():
        sql += f" AND {_quote(column)} = ?"
        params.append(value)
    if columns:
        sql += f" GROUP BY {keys} ORDER BY {keys}"
    return fetch(database, sql, params)
