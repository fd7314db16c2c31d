"""A Databricks-compatible HTTP server over the simulated world, on 127.0.0.1 only.

It serves the paths, parameters, paging schemes, error bodies and auth of the real APIs the pipeline
uses (``reference/databricks_api.md``): Jobs 2.1/2.2, Clusters, the Account API usage download, the SQL
Statement Execution API over the world's ``system.billing.usage``, ``system.billing.list_prices`` and
``system.serving.*`` tables (DuckDB underneath), and OAuth M2M tokens. Payloads come from
``cost_assets.simulation.views``, the same views the in-process ``SimulatedApi`` returns, so the live
client against this server and the simulated resources must yield equal tables (DESIGN §1.6).

Faults are configuration (:class:`Faults`): a token-bucket rate limit answering 429 with
``Retry-After``, a share of 503s, slow responses, and connections dropped mid-body. The random draws
come from one ``random.Random(seed)`` taken three times per request, so the same request sequence gets
the same faults.

What live workspaces do to a pipeline that the world itself never does is configuration too
(:class:`MockOptions`, each with a CLI flag): jobs deleted and runs still active; clusters purged
(``clusters/get`` 404, or 400 on older workspaces, while their events are still served); runs and events
past their retention, against a clock (``now``) tests can freeze; system schemas that are not enabled or
not granted; instance pools and jobs the caller may not view (403); and days whose bill is still empty.

The SQL warehouse runs statements on DuckDB with file access switched off and the configuration locked
after the tables are loaded: a statement can read the system tables, never the server's files.

``--request-log FILE`` writes one JSON line per request (``method``, ``path`` without the query string,
``status``, ``fault``: ``"429"``, ``"503"``, ``"slow"``, ``"drop"``, ``"slow+drop"`` or null); headers
and tokens are never written. On exit the CLI prints the injected faults per kind to stderr
(``faults: 503×12, 429×3, drop×1``).

Why the standard library's ``ThreadingHTTPServer`` and not starlette + uvicorn (installed only as
dagster-webserver's dependencies, not ours): a test server needs no event loop, starts in a thread in
microseconds, and gives direct control of the socket, which is what "drop the connection mid-body"
requires (write the headers and half the body, then close). ``protocol_version = "HTTP/1.1"`` keeps
connections alive, as the live client expects.
"""

import argparse
import base64
import csv
import datetime as dt
import hashlib
import io
import json
import math
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any, Literal
from urllib.parse import parse_qs, urlsplit

import duckdb

from cost_assets.ingest.parse import LEGACY_CSV_COLUMNS
from cost_assets.prices import load_price_sheet
from cost_assets.schemas import EVENT_TYPES
from cost_assets.simulation import views
from cost_assets.simulation.world import DAY, JobRun, WorldConfig

LOOPBACK = "127.0.0.1"
DEFAULT_TOKEN = "dapi-mock-token"
MAX_RUNS_LIMIT = 25
MAX_EVENTS_LIMIT = 500
UNKNOWN = "x_unknown_field"  # added to objects when MockOptions.unknown_fields is set
EPOCH = dt.datetime(1970, 1, 1)
MOCK_USER = "mock-user@example.com"  # who every accepted credential is
SYSTEM_CATALOG = "dbx_system"  # DuckDB reserves the name "system"; statements are rewritten to this


@dataclass(frozen=True)
class Faults:
    """What goes wrong, and how often. All off by default."""

    rate_limit_per_s: float | None = None  # token bucket (burst = one second's worth); 429 when empty
    retry_after_s: int | None = None  # Retry-After on 429s; None: the time until the bucket refills
    error_rate: float = 0.0  # share of requests answered 503 TEMPORARILY_UNAVAILABLE
    slow_rate: float = 0.0  # share of requests delayed by slow_s
    slow_s: float = 0.0
    drop_rate: float = 0.0  # share of responses cut off mid-body (connection closed)
    seed: int = 0


@dataclass(frozen=True)
class MockOptions:
    """How the mock workspace answers. Everything beyond ``world`` defaults to a healthy workspace that
    keeps all history and grants everything."""

    world: WorldConfig = field(default_factory=WorldConfig)
    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)  # accepted personal access tokens
    client_id: str = "mock-client-id"
    client_secret: str = "mock-client-secret"
    oauth_expires_in: int = 3600
    array_limit: int = 100  # Jobs 2.2 array page size (100 in the real API; smaller to exercise paging)
    jobs_api_versions: tuple[str, ...] = ("2.1", "2.2")  # ("2.1",) plays an older workspace
    sql_chunk_rows: int = 5000
    statement_delay_s: float = 0.0  # statements stay PENDING this long
    unknown_fields: bool = False  # add fields (and a CSV column) no parser knows
    # World objects shown differently from the world: jobs deleted since their runs (jobs/get answers 404
    # RESOURCE_DOES_NOT_EXIST; runs stay listed), and runs still active (end_time 0, RUNNING) – the world
    # is otherwise seen after its last day, when every run has completed.
    deleted_jobs: tuple[int, ...] = ()
    active_runs: tuple[int, ...] = ()
    # Clusters purged since their runs (60 days after termination): clusters/get answers 404
    # RESOURCE_DOES_NOT_EXIST "Cluster <id> does not exist" (purged_cluster_error="400": 400
    # INVALID_PARAMETER_VALUE with the same message, as older workspaces answer), clusters/list leaves them
    # out, and clusters/events still serves their events (events outlive the cluster object).
    purged_clusters: tuple[str, ...] = ()
    purged_cluster_error: Literal["404", "400"] = "404"
    # Retention against the clock ``now`` (None: the real UTC now at each request; a naive datetime is
    # UTC). events_retention_days=N: clusters/events returns only events with timestamp > now − N days.
    # runs_retention_days=N: runs that started before now − N days are gone (runs/list leaves them out,
    # runs/get answers 404 RESOURCE_DOES_NOT_EXIST). None keeps everything.
    events_retention_days: int | None = None
    runs_retention_days: int | None = None
    now: dt.datetime | None = None
    # System schemas as ``"system.<schema>"``. A statement naming a table of a missing schema ends FAILED
    # (HTTP 200) with sql_state 42P01 and ``[TABLE_OR_VIEW_NOT_FOUND] The table or view
    # `system`.`<schema>`.`<table>` cannot be found.`` (the schema alone: 42704 ``[SCHEMA_NOT_FOUND]``); of a
    # denied one, FAILED with sql_state 42501 and ``[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User
    # does not have USE SCHEMA on Schema 'system.<schema>'.``. ``status.error.error_code`` is BAD_REQUEST in
    # both, as in the reference's FAILED example (ServiceErrorCode has no PERMISSION_DENIED member).
    missing_system_schemas: tuple[str, ...] = ()
    denied_system_schemas: tuple[str, ...] = ()
    # 403 PERMISSION_DENIED: instance-pools/get for every pool; jobs/get for these job ids (their runs stay
    # listed).
    forbidden_pools: bool = False
    forbidden_jobs: tuple[int, ...] = ()
    # ISO dates whose bill is still empty: system.billing.usage has no rows of these usage dates and the
    # Account API download has none of them (header only when every requested day is empty).
    empty_bill_days: tuple[str, ...] = ()
    request_log: str | None = None  # a file: one JSON line per request (see the module docstring)
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        """Typos fail here, not as a silently healthy workspace in the test that meant to break it."""
        for schema in (*self.missing_system_schemas, *self.denied_system_schemas):
            if not re.fullmatch(r"system\.[a-z_]\w*", schema):
                raise ValueError(f"system schemas are named system.<schema> in lower case, got {schema!r}")
        if self.purged_cluster_error not in ("404", "400"):
            raise ValueError(f"purged_cluster_error must be '404' or '400', got {self.purged_cluster_error!r}")
        for day in self.empty_bill_days:
            dt.date.fromisoformat(day)
        for days in (self.events_retention_days, self.runs_retention_days):
            if days is not None and days < 0:
                raise ValueError(f"retention days must not be negative, got {days}")


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    fault: str | None = None  # the injected fault, for the request log


class MockError(Exception):
    """An error reply: ``{"error_code", "message"}`` with an HTTP status."""

    def __init__(self, status: int, error_code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message
        self.headers = headers or {}


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(body, separators=(",", ":")).encode(), headers=headers or {})


def _token(**fields: int) -> str:
    """An opaque page token (base64 of a small JSON object)."""
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()


def _untoken(token: str, key: str) -> int:
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))[key])
    except (ValueError, KeyError, TypeError):
        raise MockError(400, "INVALID_PARAMETER_VALUE", f"invalid page_token {token!r}") from None


def _bad(message: str) -> MockError:
    return MockError(400, "INVALID_PARAMETER_VALUE", message)


class _Query:
    """Query-string access with the API's 400s for malformed values."""

    def __init__(self, raw: str):
        self.values = parse_qs(raw, keep_blank_values=True)

    def str(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, [default])[-1]

    def list(self, name: str) -> list[str]:
        return [v for item in self.values.get(name, []) for v in item.split(",") if v]

    def int(self, name: str, default: int | None = None) -> int | None:
        value = self.str(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise _bad(f"{name} must be an integer, got {value!r}") from None

    def bool(self, name: str) -> bool:
        value = (self.str(name) or "false").lower()
        if value not in ("true", "false"):
            raise _bad(f"{name} must be true or false, got {value!r}")
        return value == "true"

    def required(self, name: str) -> str:
        value = self.str(name)
        if not value:
            raise _bad(f"Missing required field: {name}")
        return value


class _FaultInjector:
    def __init__(self, faults: Faults, clock: Callable[[], float]):
        self.faults, self.clock = faults, clock
        self.rng = random.Random(faults.seed)
        self.capacity = max(1.0, faults.rate_limit_per_s or 0.0)
        self.tokens, self.refilled = self.capacity, clock()
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    def decide(self, path: str) -> tuple[float, bool]:
        """Raise the fault reply if this request gets one; else (seconds to stall, drop mid-body)."""
        f = self.faults
        with self.lock:
            if f.rate_limit_per_s:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.refilled) * f.rate_limit_per_s)
                self.refilled = now
                if self.tokens < 1:
                    self.injected["429"] += 1
                    wait = f.retry_after_s or max(1, math.ceil((1 - self.tokens) / f.rate_limit_per_s))
                    raise MockError(429, "REQUEST_LIMIT_EXCEEDED", f"Too many requests to {path}; "
                                    f"the limit is {f.rate_limit_per_s:g} per second", {"Retry-After": str(wait)})
                self.tokens -= 1
            # Drawn after the (time-dependent) rate limit, so the same seed gives the same faults.
            error, slow, drop = self.rng.random(), self.rng.random(), self.rng.random()
            if error < f.error_rate:
                self.injected["503"] += 1
                raise MockError(503, "TEMPORARILY_UNAVAILABLE",
                                f"The service at {path} is temporarily unavailable. Please try again later.")
            stall = f.slow_s if slow < f.slow_rate else 0.0
            if stall:
                self.injected["slow"] += 1
            if drop < f.drop_rate:
                self.injected["drop"] += 1
            return stall, drop < f.drop_rate


# --- SQL -------------------------------------------------------------------------------------------------

_STRUCTS = {
    "usage_metadata": "STRUCT(" + ", ".join(f"{c} VARCHAR" for c in (
        "cluster_id", "job_id", "warehouse_id", "instance_pool_id", "node_type", "job_run_id", "notebook_id",
        "dlt_pipeline_id", "endpoint_name", "endpoint_id", "dlt_update_id", "run_name", "job_name",
        "notebook_path", "budget_policy_id")) + ")",
    "identity_metadata": "STRUCT(run_as VARCHAR, created_by VARCHAR, owned_by VARCHAR, run_by VARCHAR)",
    "product_features": "STRUCT(jobs_tier VARCHAR, sql_tier VARCHAR, dlt_tier VARCHAR, is_serverless BOOLEAN, "
                        "is_photon BOOLEAN, serving_type VARCHAR, performance_target VARCHAR)",
    "pricing": 'STRUCT("default" DECIMAL(38,18), promotional STRUCT("default" DECIMAL(38,18)), '
               'effective_list STRUCT("default" DECIMAL(38,18)))',
}
_TAGS = "MAP(VARCHAR, VARCHAR)"
_TABLES: dict[str, dict[str, str]] = {
    "billing.usage": {
        "account_id": "VARCHAR", "workspace_id": "VARCHAR", "record_id": "VARCHAR", "sku_name": "VARCHAR",
        "cloud": "VARCHAR", "usage_start_time": "TIMESTAMP", "usage_end_time": "TIMESTAMP", "usage_date": "DATE",
        "custom_tags": _TAGS, "usage_unit": "VARCHAR", "usage_quantity": "DECIMAL(38,18)",
        "usage_metadata": _STRUCTS["usage_metadata"], "identity_metadata": _STRUCTS["identity_metadata"],
        "record_type": "VARCHAR", "ingestion_date": "DATE", "billing_origin_product": "VARCHAR",
        "product_features": _STRUCTS["product_features"], "usage_type": "VARCHAR"},
    "billing.list_prices": {
        "account_id": "VARCHAR", "price_start_time": "TIMESTAMP", "price_end_time": "TIMESTAMP",
        "sku_name": "VARCHAR", "cloud": "VARCHAR", "currency_code": "VARCHAR", "usage_unit": "VARCHAR",
        "pricing": _STRUCTS["pricing"]},
    "serving.endpoint_usage": {
        "workspace_id": "VARCHAR", "account_id": "VARCHAR", "client_request_id": "VARCHAR",
        "databricks_request_id": "VARCHAR", "requester": "VARCHAR", "status_code": "INTEGER",
        "request_time": "TIMESTAMP", "input_token_count": "BIGINT", "output_token_count": "BIGINT",
        "usage_context": _TAGS, "served_entity_id": "VARCHAR"},
    "serving.served_entities": {
        "served_entity_id": "VARCHAR", "account_id": "VARCHAR", "workspace_id": "VARCHAR", "created_by": "VARCHAR",
        "endpoint_name": "VARCHAR", "endpoint_id": "VARCHAR", "served_entity_name": "VARCHAR",
        "entity_type": "VARCHAR", "entity_name": "VARCHAR", "entity_version": "VARCHAR", "task": "VARCHAR",
        "change_time": "TIMESTAMP", "endpoint_delete_time": "TIMESTAMP"},
}
_PARAM_TYPES = {"STRING": "VARCHAR", "DATE": "DATE", "TIMESTAMP": "TIMESTAMP", "TIMESTAMP_NTZ": "TIMESTAMP",
                "INT": "INTEGER", "INTEGER": "INTEGER", "BIGINT": "BIGINT", "LONG": "BIGINT", "SMALLINT": "SMALLINT",
                "TINYINT": "TINYINT", "DOUBLE": "DOUBLE", "FLOAT": "FLOAT", "BOOLEAN": "BOOLEAN"}
_SIMPLE_TYPES = {"VARCHAR": ("STRING", "STRING"), "BIGINT": ("LONG", "BIGINT"), "HUGEINT": ("LONG", "BIGINT"),
                 "INTEGER": ("INT", "INT"), "SMALLINT": ("SHORT", "SMALLINT"), "TINYINT": ("BYTE", "TINYINT"),
                 "DOUBLE": ("DOUBLE", "DOUBLE"), "FLOAT": ("FLOAT", "FLOAT"), "BOOLEAN": ("BOOLEAN", "BOOLEAN"),
                 "DATE": ("DATE", "DATE"), "TIMESTAMP": ("TIMESTAMP", "TIMESTAMP"),
                 "TIMESTAMP WITH TIME ZONE": ("TIMESTAMP", "TIMESTAMP"), '"NULL"': ("NULL", "NULL")}
_SQLSTATES = {"CatalogException": "42P01", "BinderException": "42703", "ParserException": "42601",
              "PermissionException": "42501"}
# A system table after _translate: dbx_system.<schema>[.<table>], names possibly double-quoted.
_SYSTEM_REFERENCE = re.compile(SYSTEM_CATALOG + r'\."?([A-Za-z_]\w*)"?(?:\."?([A-Za-z_]\w*)"?)?')


class _SqlFailure(Exception):
    """Execution errors: answered with HTTP 200 and state FAILED."""

    def __init__(self, message: str, sql_state: str = "42000"):
        super().__init__(message)
        self.sql_state = sql_state


def _translate(sql: str, params: dict[str, tuple[str | None, str]]) -> tuple[str, dict[str, str | None]]:
    """Databricks SQL → DuckDB: ``:name`` → ``CAST($name AS type)``, backticks → double quotes, the
    ``system`` catalog → ``dbx_system``. String literals and comments are left alone."""
    out: list[str] = []
    binds: dict[str, str | None] = {}
    i, n = 0, len(sql)

    def qualifier_ahead(j: int) -> bool:
        return j < n and sql[j] == "." and not "".join(out).rstrip().endswith(".")

    while i < n:
        c = sql[i]
        if c == "'":  # a string literal: '' and \' escape a quote
            j = i + 1
            while (j < n and sql[j] != "'") or sql.startswith("''", j):
                j += 2 if sql[j] == "\\" or sql.startswith("''", j) else 1
            out.append(sql[i:j + 1])
            i = j + 1
        elif sql.startswith("--", i) or sql.startswith("/*", i):
            j = sql.find("\n" if c == "-" else "*/", i)
            j = n if j < 0 else j + (1 if c == "-" else 2)
            out.append(sql[i:j])
            i = j
        elif c in "`\"":
            j = sql.find(c, i + 1)
            j = n - 1 if j < 0 else j
            name = sql[i + 1:j]
            catalog = name.lower() == "system" and qualifier_ahead(j + 1)
            out.append(SYSTEM_CATALOG if catalog else '"' + name.replace('"', '""') + '"')
            i = j + 1
        elif sql.startswith("::", i):
            out.append("::")
            i += 2
        elif c == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            m = re.match(r"[A-Za-z_]\w*", sql[i + 1:])
            name = m.group(0)
            if name not in params:
                raise _SqlFailure(f"[UNBOUND_SQL_PARAMETER] Found the unbound parameter: {name}.", "42P02")
            value, kind = params[name]
            out.append(f"CAST(${name} AS {kind})")
            binds[name] = value
            i += 1 + len(name)
        elif c.isalpha() or c == "_":
            m = re.match(r"[A-Za-z_]\w*", sql[i:])
            word = m.group(0)
            catalog = word.lower() == "system" and qualifier_ahead(i + len(word))
            out.append(SYSTEM_CATALOG if catalog else word)
            i += len(word)
        else:
            out.append(c)
            i += 1
    return "".join(out), binds


def _ts_text(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return _ts_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _wire(value: Any) -> str | None:
    """A result value as the JSON_ARRAY format sends it: a string (complex types as JSON text) or null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return _ts_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        return json.dumps(_jsonable(value), separators=(",", ":"))
    return str(value)


def _column(position: int, name: str, duck_type: str) -> dict:
    t = duck_type.upper()
    column: dict[str, Any] = {"name": name, "position": position}
    if m := re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", t):
        p, s = int(m.group(1)), int(m.group(2))
        return {**column, "type_name": "DECIMAL", "type_text": f"DECIMAL({p},{s})", "type_precision": p,
                "type_scale": s}
    if t in _SIMPLE_TYPES:
        type_name, type_text = _SIMPLE_TYPES[t]
    elif t.startswith("STRUCT"):
        type_name, type_text = "STRUCT", t
    elif t.startswith("MAP"):
        type_name, type_text = "MAP", t
    elif t.endswith("[]"):
        type_name, type_text = "ARRAY", t
    else:
        type_name, type_text = "STRING", t
    return {**column, "type_name": type_name, "type_text": type_text}


@dataclass
class _Statement:
    statement_id: str
    ready_at: float
    state: str = "SUCCEEDED"
    columns: list[dict] = field(default_factory=list)
    rows: list[list[str | None]] = field(default_factory=list)
    truncated: bool = False
    error: dict | None = None
    sql_state: str | None = None


class _SqlWarehouse:
    """The world's system tables in an in-memory DuckDB, and the statement store."""

    def __init__(self, options: MockOptions, clock: Callable[[], float]):
        self.options, self.clock = options, clock
        self.statements: dict[str, _Statement] = {}
        self.executed: list[dict] = []  # request bodies, for tests ("parameterized statements only")
        self.lock = threading.Lock()
        self._connection: duckdb.DuckDBPyConnection | None = None

    def _tables(self) -> duckdb.DuckDBPyConnection:
        with self.lock:
            if self._connection is None:
                self._connection = self._load()
            return self._connection

    def _load(self) -> duckdb.DuckDBPyConnection:
        config = self.options.world
        world = views.world_for(config)
        empty = set(self.options.empty_bill_days)
        rows = {
            "billing.usage": [r for r in views.billing_usage_rows(config) if r["usage_date"] not in empty],
            "billing.list_prices": views.list_prices_rows(load_price_sheet(), config),
            "serving.endpoint_usage": [{k: v for k, v in r.items() if k not in ("endpoint_name", "entity_name")}
                                       for r in views.serving_rows(world)],
            "serving.served_entities": [{
                "served_entity_id": e.served_entity_id, "account_id": config.account_id,
                "workspace_id": config.workspace_id, "created_by": "owner@example.com", "endpoint_name": e.name,
                "endpoint_id": e.endpoint_id, "served_entity_name": e.entity_name, "entity_type": "FOUNDATION_MODEL",
                "entity_name": e.entity_name, "entity_version": "1", "task": "llm/v1/chat",
                "change_time": _ts_text(EPOCH + dt.timedelta(milliseconds=config.start_ms - 30 * DAY)),
                "endpoint_delete_time": None} for e in world.endpoints],
        }
        con = duckdb.connect()
        con.execute(f"ATTACH ':memory:' AS {SYSTEM_CATALOG}")
        with tempfile.TemporaryDirectory(prefix="cost-assets-mock-") as tmp:
            for table, columns in _TABLES.items():
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {SYSTEM_CATALOG}.{table.split('.')[0]}")
                ddl = ", ".join(f'"{c}" {t}' for c, t in columns.items())
                con.execute(f"CREATE TABLE {SYSTEM_CATALOG}.{table} ({ddl})")
                if not rows[table]:
                    continue
                path = os.path.join(tmp, f"{table}.json")
                with open(path, "w", encoding="utf-8") as f:
                    f.writelines(json.dumps(r) + "\n" for r in rows[table])
                # Timestamps, dates and decimals arrive as text and are cast; the rest JSON reads typed.
                textual = {c: ("VARCHAR" if t in ("TIMESTAMP", "DATE") or t.startswith("DECIMAL") else t)
                           for c, t in columns.items()}
                spec = "{" + ", ".join(f"'{c}': '{t}'" for c, t in textual.items()) + "}"
                select = ", ".join(f'CAST("{c}" AS {t})' for c, t in columns.items())
                con.execute(f"INSERT INTO {SYSTEM_CATALOG}.{table} SELECT {select} FROM "
                            f"read_json('{path}', format='newline_delimited', columns={spec})")
        # Loaded: from now on no statement may touch the file system (read_csv('/etc/passwd'), COPY … TO,
        # ATTACH, INSTALL), and none may switch that back on.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    def _unavailable_schema(self, sql: str) -> None:
        """FAILED as Databricks answers for a schema that is not enabled (missing) or not granted (denied)."""
        missing, denied = set(self.options.missing_system_schemas), set(self.options.denied_system_schemas)
        for schema, table in _SYSTEM_REFERENCE.findall(sql):
            name = f"system.{schema.lower()}"
            if name in missing and table:
                raise _SqlFailure(f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `system`.`{schema}`.`{table}` "
                                  "cannot be found.", "42P01")
            if name in missing:
                raise _SqlFailure(f"[SCHEMA_NOT_FOUND] The schema `system`.`{schema}` cannot be found.", "42704")
            if name in denied:
                raise _SqlFailure("[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have "
                                  f"USE SCHEMA on Schema '{name}'.", "42501")

    def execute(self, body: dict, statement_id: str) -> dict:
        warehouse, statement = body.get("warehouse_id"), body.get("statement")
        if not warehouse or not statement:
            raise _bad("warehouse_id and statement are required")
        if (body.get("disposition") or "INLINE") != "INLINE" or (body.get("format") or "JSON_ARRAY") != "JSON_ARRAY":
            raise _bad("the mock warehouse serves format JSON_ARRAY with disposition INLINE only "
                       "(ARROW_STREAM and CSV need EXTERNAL_LINKS)")
        wait = str(body.get("wait_timeout") or "10s")
        if not re.fullmatch(r"\d+s", wait) or not (wait == "0s" or 5 <= int(wait[:-1]) <= 50):
            raise _bad(f"wait_timeout must be 0s or between 5s and 50s, got {wait!r}")
        on_timeout = body.get("on_wait_timeout") or "CONTINUE"
        params = {p["name"]: (p.get("value"), self._param_type(p.get("type") or "STRING"))
                  for p in body.get("parameters") or []}
        self.executed.append(body)
        st = _Statement(statement_id, ready_at=self.clock() + self.options.statement_delay_s)
        try:
            sql, binds = _translate(statement, params)
            self._unavailable_schema(sql)
            cursor = self._tables().cursor()
            cursor.execute(sql, binds)
            result = cursor.fetchall()
            st.columns = [_column(i, d[0], str(d[1])) for i, d in enumerate(cursor.description or [])]
        except _SqlFailure as e:
            st.state, st.sql_state, st.error = "FAILED", e.sql_state, {"error_code": "BAD_REQUEST", "message": str(e)}
        except duckdb.Error as e:
            message = str(e).replace(SYSTEM_CATALOG, "system").splitlines()[0]
            st.state, st.sql_state = "FAILED", _SQLSTATES.get(type(e).__name__, "42000")
            st.error = {"error_code": "BAD_REQUEST", "message": f"[{type(e).__name__}] {message}"}
        else:
            limit = body.get("row_limit")
            st.truncated = limit is not None and len(result) > int(limit)
            st.rows = [[_wire(v) for v in row] for row in (result[: int(limit)] if st.truncated else result)]
        with self.lock:
            self.statements[statement_id] = st
        pending = st.ready_at - self.clock()
        if st.state == "SUCCEEDED" and pending > 0:
            time.sleep(min(pending, int(wait[:-1])))
            if self.clock() < st.ready_at and on_timeout == "CANCEL":
                st.state = "CANCELED"
        return self.status(statement_id)

    @staticmethod
    def _param_type(kind: str) -> str:
        kind = kind.upper().strip()
        if re.fullmatch(r"DECIMAL\(\d+,\s*\d+\)", kind):
            return kind
        if kind not in _PARAM_TYPES:
            raise _bad(f"unsupported parameter type {kind!r}")
        return _PARAM_TYPES[kind]

    def _get(self, statement_id: str) -> _Statement:
        with self.lock:
            st = self.statements.get(statement_id)
        if st is None:
            raise MockError(404, "RESOURCE_DOES_NOT_EXIST", f"Statement {statement_id} does not exist.")
        return st

    def status(self, statement_id: str) -> dict:
        st = self._get(statement_id)
        out: dict[str, Any] = {"statement_id": statement_id}
        if st.state == "FAILED":
            return {**out, "status": {"state": "FAILED", "sql_state": st.sql_state, "error": st.error}}
        if st.state == "CANCELED":
            return {**out, "status": {"state": "CANCELED"}}
        if self.clock() < st.ready_at:
            return {**out, "status": {"state": "PENDING"}}
        size = self.options.sql_chunk_rows
        count = max(1, math.ceil(len(st.rows) / size))
        chunks = [{"chunk_index": i, "row_offset": i * size, "row_count": len(st.rows[i * size:(i + 1) * size])}
                  for i in range(count)]
        return {**out, "status": {"state": "SUCCEEDED"}, "manifest": {
            "format": "JSON_ARRAY", "schema": {"column_count": len(st.columns), "columns": st.columns},
            "total_chunk_count": count, "chunks": chunks, "total_row_count": len(st.rows),
            "truncated": st.truncated}, "result": self.chunk(statement_id, 0)}

    def chunk(self, statement_id: str, index: int) -> dict:
        st = self._get(statement_id)
        if st.state != "SUCCEEDED" or self.clock() < st.ready_at:
            raise MockError(400, "BAD_REQUEST", f"Statement {statement_id} has no result to fetch ({st.state}).")
        size = self.options.sql_chunk_rows
        count = max(1, math.ceil(len(st.rows) / size))
        if not 0 <= index < count:
            raise _bad(f"chunk_index {index} is out of range [0, {count})")
        data = st.rows[index * size:(index + 1) * size]
        out: dict[str, Any] = {"chunk_index": index, "row_offset": index * size, "row_count": len(data)}
        if data:
            out["data_array"] = data
        if index + 1 < count:
            out["next_chunk_index"] = index + 1
            out["next_chunk_internal_link"] = (f"/api/2.0/sql/statements/{statement_id}/result/chunks/{index + 1}"
                                               f"?row_offset={(index + 1) * size}")
        return out

    def close(self) -> None:
        with self.lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def cancel(self, statement_id: str) -> None:
        st = self._get(statement_id)
        if st.state == "SUCCEEDED" and self.clock() < st.ready_at:
            st.state = "CANCELED"


# --- the API ---------------------------------------------------------------------------------------------

class MockWorkspace:
    """Routes and state, independent of the socket layer (``handle`` maps a request to a :class:`Reply`)."""

    def __init__(self, options: MockOptions, clock: Callable[[], float] = time.monotonic):
        self.options, self.clock = options, clock
        self.config = options.world
        self.world = views.world_for(self.config)
        ordered = sorted(self.world.runs, key=lambda r: (r.start, r.run_id))
        self.runs_newest_first: list[JobRun] = ordered[::-1]
        self.runs_by_id = {r.run_id: r for r in ordered}
        self.faults = _FaultInjector(options.faults, clock)
        self.sql = _SqlWarehouse(options, clock)
        self.calls: Counter[str] = Counter()  # "GET /api/2.2/jobs/runs/list" → count (faulted ones included)
        self.oauth_tokens: dict[str, float] = {}
        self._serial = 0
        self._lock = threading.Lock()
        self._log: IO[str] | None = None
        if options.request_log:  # open for the server's life (a line per request); close() closes it
            self._log = open(options.request_log, "w", encoding="utf-8")  # noqa: SIM115
        self._node_types: dict | None = None
        self._routes: list[tuple[str, re.Pattern, Callable[..., Reply]]] = [
            ("GET", re.compile(r"/api/(2\.[12])/jobs/runs/list"), self.runs_list),
            ("GET", re.compile(r"/api/(2\.[12])/jobs/runs/get"), self.runs_get),
            ("GET", re.compile(r"/api/(2\.[12])/jobs/get"), self.jobs_get),
            ("GET", re.compile(r"/api/2\.[01]/clusters/get"), self.clusters_get),
            ("GET", re.compile(r"/api/2\.[01]/clusters/list"), self.clusters_list),
            ("POST", re.compile(r"/api/2\.[01]/clusters/events"), self.clusters_events),
            ("GET", re.compile(r"/api/2\.[01]/clusters/list-node-types"), self.node_types),
            ("GET", re.compile(r"/api/2\.0/instance-pools/get"), self.instance_pools_get),
            ("GET", re.compile(r"/api/2\.0/accounts/([^/]+)/usage/download"), self.usage_download),
            ("POST", re.compile(r"/api/2\.0/sql/statements/?"), self.statements_post),
            ("GET", re.compile(r"/api/2\.0/sql/statements/([^/]+)"), self.statements_get),
            ("POST", re.compile(r"/api/2\.0/sql/statements/([^/]+)/cancel"), self.statements_cancel),
            ("GET", re.compile(r"/api/2\.0/sql/statements/([^/]+)/result/chunks/(\d+)"), self.statements_chunk),
            ("GET", re.compile(r"/api/2\.0/preview/scim/v2/Me"), self.me),
            ("POST", re.compile(r"/oidc/v1/token"), self.oauth_token),
            ("POST", re.compile(r"/oidc/accounts/([^/]+)/v1/token"), self.oauth_token),
        ]

    # --- dispatch -----------------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """One request (``headers`` with lower-case names) → its reply, faults included; logged when
        ``MockOptions.request_log`` is set."""
        url = urlsplit(target)
        path = url.path
        with self._lock:
            self.calls[f"{method} {path}"] += 1
        reply = self._reply(method, path, _Query(url.query), headers, body)
        line = json.dumps({"method": method, "path": path, "status": reply.status, "fault": reply.fault})
        with self._lock:
            if self._log is not None:  # None also once closed (a handler thread may outlive stop())
                self._log.write(line + "\n")
                self._log.flush()  # readable while the server runs (tail -f, tests)
        return reply

    def _reply(self, method: str, path: str, query: _Query, headers: dict[str, str], body: bytes) -> Reply:
        extra = {} if "/accounts/" in path else {"X-Databricks-Org-Id": self.config.workspace_id}
        try:
            stall, drop = self.faults.decide(path)
        except MockError as e:  # 429 or 503
            return self._error(e, extra, fault=str(e.status))
        fault = "+".join(kind for kind, on in (("slow", stall), ("drop", drop)) if on) or None
        if stall:
            time.sleep(stall)
        try:
            for verb, pattern, handler in self._routes:
                m = pattern.fullmatch(path)
                if m and verb == method:
                    if not path.startswith("/oidc/"):
                        self._authorize(headers)
                    reply = handler(*m.groups(), query=query, body=body, headers=headers)
                    reply.headers.update(extra)
                    reply.drop, reply.fault = drop, fault
                    return reply
            raise MockError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
        except MockError as e:  # an error reply is cut off like any other: the network does not care
            return self._error(e, extra, fault=fault, drop=drop)

    @staticmethod
    def _error(e: MockError, extra: dict[str, str], fault: str | None, drop: bool = False) -> Reply:
        reply = _json(e.status, {"error_code": e.error_code, "message": e.message}, {**extra, **e.headers})
        reply.fault, reply.drop = fault, drop
        return reply

    def close(self) -> None:
        self.sql.close()
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def _cutoff_ms(self, days: int | None) -> int | None:
        """Epoch ms of ``now − days`` (MockOptions.now, else the real UTC now); None without retention."""
        if days is None:
            return None
        now = self.options.now or dt.datetime.now(dt.UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
        return int((now - dt.timedelta(days=days)).timestamp() * 1000)

    def _retained(self, run: JobRun) -> bool:
        cutoff = self._cutoff_ms(self.options.runs_retention_days)
        return cutoff is None or run.start >= cutoff

    def _authorize(self, headers: dict[str, str]) -> None:
        value = headers.get("authorization", "")
        if not value.startswith("Bearer ") or not value[7:].strip():
            raise MockError(401, "UNAUTHENTICATED",
                            "Credential was not sent or was of an unsupported type for this API.")
        token = value[7:].strip()
        if token in self.options.tokens:
            return
        with self._lock:
            expiry = self.oauth_tokens.get(token)
        if expiry is None:
            raise MockError(403, "PERMISSION_DENIED", "Invalid access token.")
        if self.clock() >= expiry:
            raise MockError(403, "PERMISSION_DENIED", "Token is expired.")

    def _serial_id(self, kind: str) -> str:
        with self._lock:
            self._serial += 1
            n = self._serial
        return hashlib.sha256(f"{self.config.seed}|{kind}|{n}".encode()).hexdigest()

    def _jobs_version(self, version: str) -> None:
        if version not in self.options.jobs_api_versions:
            raise MockError(404, "ENDPOINT_NOT_FOUND", f"No API found for 'GET /{version}/jobs'")

    def _mark(self, obj: dict) -> dict:
        if self.options.unknown_fields:
            obj[UNKNOWN] = {"added": "later", "values": [1, 2]}
        return obj

    # --- Jobs ---------------------------------------------------------------------------------------------

    def runs_list(self, version: str, *, query: _Query, **_: Any) -> Reply:
        self._jobs_version(version)
        limit = query.int("limit", 20)
        if not 0 <= limit <= MAX_RUNS_LIMIT:
            raise _bad(f"The limit must be between 0 and {MAX_RUNS_LIMIT}, got {limit}")
        limit = limit or MAX_RUNS_LIMIT
        if query.bool("active_only") and query.bool("completed_only"):
            raise _bad("active_only and completed_only cannot both be true")
        lo, hi = query.int("start_time_from", 0), query.int("start_time_to", 2**62)
        job_id, run_type = query.int("job_id"), query.str("run_type")
        active_only, completed_only = query.bool("active_only"), query.bool("completed_only")
        runs = [] if run_type not in (None, "JOB_RUN") else [
            r for r in self.runs_newest_first if lo <= r.start <= hi and job_id in (None, r.job_id)
            and self._retained(r)
            and not (active_only and not self._active(r)) and not (completed_only and self._active(r))]
        token = query.str("page_token")
        offset = _untoken(token, "offset") if token else query.int("offset", 0)
        page = runs[offset:offset + limit]
        out: dict[str, Any] = {"has_more": offset + limit < len(runs)}
        if page:
            out["runs"] = [self._listed_run(r, version, query.bool("expand_tasks")) for r in page]
        if out["has_more"]:
            out["next_page_token"] = _token(offset=offset + limit)
        if offset:
            out["prev_page_token"] = _token(offset=max(0, offset - limit))
        return _json(200, self._mark(out))

    def _active(self, run: JobRun) -> bool:
        return run.run_id in self.options.active_runs

    def _run_payload(self, run: JobRun) -> dict:
        """The run object; an active run (MockOptions.active_runs) has end_time 0 and its last task(s)
        still RUNNING."""
        payload = views.run_payload(self.world, run)
        if self._active(run):
            running = {"life_cycle_state": "RUNNING", "state_message": ""}
            payload.update(end_time=0, run_duration=0, state=running, status={"state": "RUNNING"})
            last = max(t["end_time"] for t in payload["tasks"])
            for task in payload["tasks"]:
                if task["end_time"] == last:
                    task.update(end_time=0, execution_duration=0, state=running, status={"state": "RUNNING"})
        return payload

    def _listed_run(self, run: JobRun, version: str, expand: bool) -> dict:
        payload = self._run_payload(run)
        if not expand:
            payload.pop("tasks", None)
            payload.pop("job_clusters", None)
        elif version == "2.2":
            limit = self.options.array_limit
            for key in ("tasks", "job_clusters", "job_parameters", "repair_history"):
                if len(payload.get(key) or []) > limit:
                    payload[key] = payload[key][:limit]
                    payload["has_more"] = True
        for task in payload.get("tasks") or []:
            self._mark(task)
        return self._mark(payload)

    def runs_get(self, version: str, *, query: _Query, **_: Any) -> Reply:
        self._jobs_version(version)
        run_id = query.int("run_id")
        if run_id is None:
            raise _bad("Missing required field: run_id")
        if run_id not in self.runs_by_id or not self._retained(self.runs_by_id[run_id]):
            raise MockError(404, "RESOURCE_DOES_NOT_EXIST", f"Run {run_id} does not exist.")
        payload = self._run_payload(self.runs_by_id[run_id])
        if not query.bool("include_history"):
            payload.pop("repair_history", None)
        if version == "2.2":
            payload = self._array_page(payload, ("tasks", "job_clusters", "job_parameters", "repair_history"),
                                       query.str("page_token"))
        return _json(200, self._mark(payload))

    def _array_page(self, obj: dict, keys: tuple[str, ...], token: str | None) -> dict:
        """Jobs 2.2: arrays longer than the limit come ``limit`` elements per page; exhausted ones empty."""
        limit = self.options.array_limit
        if not any(len(obj.get(k) or []) > limit for k in keys):
            return obj
        page = _untoken(token, "page") if token else 0
        lo, hi = page * limit, (page + 1) * limit
        out = {**obj, **{k: (obj.get(k) or [])[lo:hi] for k in keys}}
        if any(len(obj.get(k) or []) > hi for k in keys):
            out["next_page_token"] = _token(page=page + 1)
        return out

    def jobs_get(self, version: str, *, query: _Query, **_: Any) -> Reply:
        self._jobs_version(version)
        job_id = query.int("job_id")
        if job_id is None:
            raise _bad("Missing required field: job_id")
        if job_id not in self.world.jobs or job_id in self.options.deleted_jobs:
            raise MockError(404, "RESOURCE_DOES_NOT_EXIST", f"Job {job_id} does not exist.")
        if job_id in self.options.forbidden_jobs:
            raise MockError(403, "PERMISSION_DENIED", f"User {MOCK_USER} does not have View permissions on job "
                                                      f"{job_id}.")
        payload = views.job_payload(self.world, self.world.jobs[job_id])
        if version == "2.2":
            settings = self._array_page(payload["settings"], ("tasks", "job_clusters"), query.str("page_token"))
            token = settings.pop("next_page_token", None)
            payload["settings"] = self._mark(settings)
            if token:
                payload["next_page_token"] = token
        return _json(200, self._mark(payload))

    # --- Clusters -----------------------------------------------------------------------------------------

    def _cluster(self, cluster_id: str | None) -> dict:
        if not cluster_id:
            raise _bad("Missing required field: cluster_id")
        if cluster_id not in self.world.clusters:
            raise _bad(f"Cluster {cluster_id} does not exist")
        return self._mark(views.cluster_payload(self.world, cluster_id))

    def clusters_get(self, *, query: _Query, **_: Any) -> Reply:
        cluster_id = query.str("cluster_id")
        if cluster_id in self.options.purged_clusters:
            if self.options.purged_cluster_error == "400":
                raise _bad(f"Cluster {cluster_id} does not exist")
            raise MockError(404, "RESOURCE_DOES_NOT_EXIST", f"Cluster {cluster_id} does not exist")
        return _json(200, self._cluster(cluster_id))

    def instance_pools_get(self, *, query: _Query, **_: Any) -> Reply:
        pool_id = query.str("instance_pool_id")
        if not pool_id:
            raise _bad("Missing required field: instance_pool_id")
        if self.options.forbidden_pools:
            raise MockError(403, "PERMISSION_DENIED", f"User {MOCK_USER} does not have permission to view "
                                                      f"instance pool {pool_id}.")
        if pool_id not in self.world.pools:
            raise MockError(404, "RESOURCE_DOES_NOT_EXIST", f"Instance pool {pool_id} does not exist")
        return _json(200, self._mark(views.instance_pool_payload(self.world, pool_id)))

    def clusters_list(self, *, query: _Query, **_: Any) -> Reply:
        size = min(100, query.int("page_size", 20) or 20)  # the server may constrain the page size
        sources, states = query.list("filter_by.cluster_sources"), query.list("filter_by.cluster_states")
        # Every simulated cluster is TERMINATED when seen (after the world's last day).
        ids = [cid for cid, c in sorted(self.world.clusters.items())
               if (not sources or c.source in sources) and (not states or "TERMINATED" in states)
               and cid not in self.options.purged_clusters]
        token = query.str("page_token")
        offset = _untoken(token, "offset") if token else 0
        out: dict[str, Any] = {"next_page_token": _token(offset=offset + size) if offset + size < len(ids)
                               else "", "prev_page_token": _token(offset=max(0, offset - size)) if offset else ""}
        if ids[offset:offset + size]:
            out["clusters"] = [self._cluster(cid) for cid in ids[offset:offset + size]]
        return _json(200, out)

    def clusters_events(self, *, body: bytes, **_: Any) -> Reply:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise MockError(400, "MALFORMED_REQUEST", "Could not parse request object") from None
        cluster_id = request.get("cluster_id")
        self._cluster(cluster_id)  # a purged cluster too: its events outlive it
        order = request.get("order") or "DESC"
        if order not in ("ASC", "DESC"):
            raise _bad(f"order must be ASC or DESC, got {order!r}")
        lo, hi = request.get("start_time") or 0, request.get("end_time") or 2**62
        cutoff = self._cutoff_ms(self.options.events_retention_days)
        lo = lo if cutoff is None else max(lo, cutoff + 1)  # retention: only events newer than the cutoff
        types = set(request.get("event_types") or [])
        if unknown := sorted(map(str, types - set(EVENT_TYPES))):
            raise _bad(f"event_types: unknown event type(s) {', '.join(unknown)}")
        events = [self._mark({**e, "details": self._mark(dict(e.get("details") or {}))})
                  for e in views.cluster_events(self.world, cluster_id)
                  if lo <= e["timestamp"] <= hi and (not types or e["type"] in types)]
        if order == "DESC":
            events.reverse()
        if "page_token" in request or "page_size" in request:
            size = request.get("page_size") or 50
            if not 1 <= size <= MAX_EVENTS_LIMIT:
                raise _bad(f"page_size must be between 0 and {MAX_EVENTS_LIMIT}")
            token = request.get("page_token")
            offset = _untoken(token, "offset") if token else 0
            out: dict[str, Any] = {
                "next_page_token": _token(offset=offset + size) if offset + size < len(events) else "",
                "prev_page_token": _token(offset=max(0, offset - size)) if offset else "", "total_count": 0}
        else:
            size, offset = request.get("limit") or 50, request.get("offset") or 0
            if not 1 <= size <= MAX_EVENTS_LIMIT:
                raise _bad(f"limit must be between 1 and {MAX_EVENTS_LIMIT}, got {size}")
            if order == "DESC" and offset and not request.get("end_time"):
                raise _bad("end_time is required when paging with offset in DESC order")
            out = {"total_count": len(events)}
            if offset + size < len(events):
                out["next_page"] = {**request, "offset": offset + size, "limit": size}
                if order == "DESC" and not request.get("end_time"):
                    # DESC offsets need a fixed end: pin it to the newest event, as the service pins "now".
                    out["next_page"]["end_time"] = events[0]["timestamp"]
        if events[offset:offset + size]:
            out["events"] = events[offset:offset + size]
        return _json(200, out)

    def node_types(self, **_: Any) -> Reply:
        if self._node_types is None:
            self._node_types = views.list_node_types(load_price_sheet(), self.config.cloud)
        return _json(200, self._node_types)

    # --- Account API --------------------------------------------------------------------------------------

    def usage_download(self, account_id: str, *, query: _Query, **_: Any) -> Reply:
        if account_id != self.config.account_id:
            raise MockError(404, "RESOURCE_DOES_NOT_EXIST", f"Account {account_id} does not exist.")
        months = []
        for name in ("start_month", "end_month"):
            value = query.required(name)
            if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
                raise _bad(f"{name} must be YYYY-MM, got {value!r}")
            months.append(dt.date(int(value[:4]), int(value[5:]), 1))
        start, end = months
        if start > end:
            raise _bad("start_month must not be after end_month")
        last = (end.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
        text = _without_days(views.legacy_csv(self.config, start, last), set(self.options.empty_bill_days))
        if self.options.unknown_fields:
            lines = text.splitlines()
            text = "\n".join([lines[0] + ",x_unknown_column", *(line + ",later" for line in lines[1:])]) + "\n"
        return Reply(200, text.encode(), content_type="text/plain; charset=utf-8")

    # --- SQL ----------------------------------------------------------------------------------------------

    def statements_post(self, *, body: bytes, **_: Any) -> Reply:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise MockError(400, "MALFORMED_REQUEST", "Could not parse request object") from None
        sid = self._serial_id("statement")
        statement_id = f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:32]}"
        return _json(200, self._mark(self.sql.execute(request, statement_id)))

    def statements_get(self, statement_id: str, **_: Any) -> Reply:
        return _json(200, self._mark(self.sql.status(statement_id)))

    def statements_chunk(self, statement_id: str, index: str, **_: Any) -> Reply:
        return _json(200, self._mark(self.sql.chunk(statement_id, int(index))))

    def statements_cancel(self, statement_id: str, **_: Any) -> Reply:
        self.sql.cancel(statement_id)
        return _json(200, {})

    # --- identity -----------------------------------------------------------------------------------------

    def me(self, **_: Any) -> Reply:
        return _json(200, {"id": "4711471147114711", "userName": MOCK_USER, "active": True})

    def oauth_token(self, account_id: str | None = None, *, body: bytes, headers: dict[str, str], **_: Any
                    ) -> Reply:
        form = {k: v[-1] for k, v in parse_qs(body.decode(errors="replace")).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                client_id = secret = None
        if form.get("grant_type") != "client_credentials":
            return _json(400, {"error": "unsupported_grant_type", "error_description": "use client_credentials"})
        if (client_id, secret) != (self.options.client_id, self.options.client_secret) or (
                account_id is not None and account_id != self.config.account_id):
            return _json(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        token = f"mock-oauth-{self._serial_id('oauth')[:40]}"
        with self._lock:
            self.oauth_tokens[token] = self.clock() + self.options.oauth_expires_in
        return _json(200, {"access_token": token, "token_type": "Bearer",
                           "expires_in": self.options.oauth_expires_in, "scope": form.get("scope") or "all-apis"})


def _without_days(text: str, days: set[str]) -> str:
    """The legacy CSV without the rows of ``days`` (ISO dates). A row's usage date is its end-of-hour
    timestamp's date: the end of an hour is never midnight, so it falls on the hour's own day."""
    if not days:
        return text
    rows = list(csv.reader(io.StringIO(text)))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(
        [rows[0], *(r for r in rows[1:] if r[LEGACY_CSV_COLUMNS.index("timestamp")][:10] not in days)])
    return buf.getvalue()


# --- the socket layer ------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    timeout = 60  # idle keep-alive connections end after a minute
    server: "_HttpServer"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.mock.handle(method, self.path, headers, body)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            if reply.drop:  # half the promised body, then the connection goes away
                self.wfile.write(reply.body[: len(reply.body) // 2])
                self.close_connection = True
            else:
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up first (e.g. on a slow reply)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines would flood test output (and headers are never logged)."""


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    mock: MockWorkspace


class MockServer:
    """The server on ``127.0.0.1:port`` (0 picks a free port); ``start()`` serves from a daemon thread."""

    def __init__(self, options: MockOptions | None = None, port: int = 0,
                 clock: Callable[[], float] = time.monotonic):
        self.mock = MockWorkspace(options or MockOptions(), clock)
        self._httpd = _HttpServer((LOOPBACK, port), _Handler)
        self._httpd.mock = self.mock
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._httpd.server_address[1]}"

    def start(self) -> "MockServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="cost-assets-mock", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
        self.mock.close()

    def __enter__(self) -> "MockServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve_in_thread(options: MockOptions | None = None, port: int = 0) -> Iterator[str]:
    """Serve in a background thread for the ``with`` block; yields the base URL (``http://127.0.0.1:N``)."""
    with MockServer(options, port) as server:
        yield server.url


def main(argv: list[str] | None = None) -> int:
    """``cost-assets mock-server``: serve a simulated world until interrupted."""
    p = argparse.ArgumentParser(prog="cost-assets mock-server", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--scale", default="small", choices=["tiny", "small", "medium", "large"])
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--start", type=dt.date.fromisoformat, default=None,
                   help="first simulated UTC day (default: the last --days complete days)")
    p.add_argument("--cloud", default="AZURE", type=str.upper)
    p.add_argument("--tier", default="PREMIUM", type=str.upper)
    p.add_argument("--token", default=DEFAULT_TOKEN, help="the personal access token to accept")
    p.add_argument("--rate-limit", type=float, default=None, help="requests per second before 429s")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 503")
    p.add_argument("--slow-rate", type=float, default=0.0)
    p.add_argument("--slow-seconds", type=float, default=0.0)
    p.add_argument("--drop-rate", type=float, default=0.0, help="share of responses cut off mid-body")
    p.add_argument("--fault-seed", type=int, default=0)
    p.add_argument("--statement-delay", type=float, default=0.0, help="seconds a SQL statement stays PENDING")
    live = p.add_argument_group("what live workspaces do (repeat the flags that take one id or day)")
    live.add_argument("--deleted-job", type=int, action="append", default=[], metavar="JOB_ID",
                      help="jobs/get answers 404 RESOURCE_DOES_NOT_EXIST; its runs stay listed")
    live.add_argument("--forbidden-job", type=int, action="append", default=[], metavar="JOB_ID",
                      help="jobs/get answers 403 PERMISSION_DENIED; its runs stay listed")
    live.add_argument("--forbidden-pools", action="store_true", help="instance-pools/get answers 403 PERMISSION_DENIED")
    live.add_argument("--purged-cluster", action="append", default=[], metavar="CLUSTER_ID",
                      help="clusters/get answers 'Cluster <id> does not exist', clusters/list leaves it out, "
                           "clusters/events still serves its events")
    live.add_argument("--purged-cluster-error", choices=["404", "400"], default="404",
                      help="a purged cluster's clusters/get: 404 RESOURCE_DOES_NOT_EXIST or 400 "
                           "INVALID_PARAMETER_VALUE (default 404)")
    live.add_argument("--events-retention-days", type=int, default=None, metavar="N",
                      help="clusters/events returns only events newer than now - N days")
    live.add_argument("--runs-retention-days", type=int, default=None, metavar="N",
                      help="runs started before now - N days are gone from runs/list and runs/get")
    live.add_argument("--now", type=dt.datetime.fromisoformat, default=None, metavar="ISO_DATETIME",
                      help="the clock retention is measured from (UTC; default: the real now)")
    live.add_argument("--missing-system-schema", action="append", default=[], metavar="system.SCHEMA",
                      help="statements on its tables end FAILED with [TABLE_OR_VIEW_NOT_FOUND]")
    live.add_argument("--denied-system-schema", action="append", default=[], metavar="system.SCHEMA",
                      help="statements on its tables end FAILED with [INSUFFICIENT_PERMISSIONS]")
    live.add_argument("--empty-bill-day", action="append", default=[], metavar="YYYY-MM-DD",
                      help="no bill rows of that usage date in system.billing.usage or the usage download")
    p.add_argument("--request-log", default=None, metavar="FILE",
                   help="write one JSON line per request: method, path, status, injected fault (never headers)")
    args = p.parse_args(argv)
    start = args.start or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=args.days)
    try:
        options = MockOptions(
            world=WorldConfig(seed=args.seed, scale=args.scale, start=start, days=args.days, cloud=args.cloud,
                              tier=args.tier),
            tokens=(args.token,), statement_delay_s=args.statement_delay,
            deleted_jobs=tuple(args.deleted_job), forbidden_jobs=tuple(args.forbidden_job),
            forbidden_pools=args.forbidden_pools, purged_clusters=tuple(args.purged_cluster),
            purged_cluster_error=args.purged_cluster_error, events_retention_days=args.events_retention_days,
            runs_retention_days=args.runs_retention_days, now=args.now,
            missing_system_schemas=tuple(args.missing_system_schema),
            denied_system_schemas=tuple(args.denied_system_schema), empty_bill_days=tuple(args.empty_bill_day),
            request_log=args.request_log,
            faults=Faults(rate_limit_per_s=args.rate_limit, error_rate=args.error_rate, slow_rate=args.slow_rate,
                          slow_s=args.slow_seconds, drop_rate=args.drop_rate, seed=args.fault_seed))
    except ValueError as e:
        p.error(str(e))
    server = MockServer(options, args.port)
    config = options.world
    print(f"mock Databricks workspace {config.workspace_id} (account {config.account_id}) at {server.url}: "
          f"{args.scale} world, seed {args.seed}, {start} + {args.days} days", flush=True)
    print(f"export DATABRICKS_HOST={server.url} DATABRICKS_TOKEN={args.token} DATABRICKS_WAREHOUSE_ID=mock "
          f"DATABRICKS_ACCOUNT_HOST={server.url} DATABRICKS_ACCOUNT_ID={config.account_id}", flush=True)
    # A shell that starts a background job ignores SIGINT in it, and Python then installs no
    # KeyboardInterrupt handler: restore it, and treat SIGTERM (docker stop, kill) the same way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print(fault_summary(server.mock.faults.injected), file=sys.stderr, flush=True)
    return 0


def fault_summary(injected: Counter[str]) -> str:
    """``faults: 503×12, 429×3, drop×1`` (most frequent first), or ``faults: none``."""
    counts = sorted(injected.items(), key=lambda kv: (-kv[1], kv[0]))
    return "faults: " + (", ".join(f"{kind}×{n}" for kind, n in counts if n) or "none")


if __name__ == "__main__":
    raise SystemExit(main())
