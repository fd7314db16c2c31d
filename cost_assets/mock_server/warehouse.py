"""The SQL warehouse: the Statement Execution API over the world's system tables, on DuckDB.

The world's ``system.billing.usage``, ``system.billing.list_prices`` and ``system.serving.*`` tables are
loaded into an in-memory DuckDB; statements in Databricks SQL are translated to DuckDB (named
parameters, backticks, the ``system`` catalog, and the few Databricks functions the project's statements
use: ``sha2``, ``collect_list``, ``array_join``) and answered in chunks, with the states, SQL states and
error messages a Databricks warehouse gives: ``JSON_ARRAY`` + ``INLINE`` (a result over
``MockOptions.sql_inline_limit_bytes`` fails, as over 25 MiB does), or ``ARROW_STREAM``/``JSON_ARRAY`` +
``EXTERNAL_LINKS`` (chunks behind expiring links, :mod:`cost_assets.mock_server.result_links`).

The warehouse runs statements with file access switched off and the configuration locked after the
tables are loaded: a statement can read the system tables, never the server's files.
"""

import datetime as dt
import json
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from cost_assets.mock_server.options import MockOptions
from cost_assets.mock_server.protocol import MockError, _bad
from cost_assets.mock_server.result_links import ResultLinks, arrow_stream
from cost_assets.mock_server.serving import EndpointUsageOverlay
from cost_assets.prices import load_price_sheet
from cost_assets.simulation import views

SYSTEM_CATALOG = "dbx_system"  # DuckDB reserves the name "system"; statements are rewritten to this

_STRUCTS = {
    "usage_metadata": "STRUCT("
    + ", ".join(
        f"{c} VARCHAR"
        for c in (
            "cluster_id",
            "job_id",
            "warehouse_id",
            "instance_pool_id",
            "node_type",
            "job_run_id",
            "notebook_id",
            "dlt_pipeline_id",
            "endpoint_name",
            "endpoint_id",
            "dlt_update_id",
            "run_name",
            "job_name",
            "notebook_path",
            "budget_policy_id",
        )
    )
    + ")",
    "identity_metadata": "STRUCT(run_as VARCHAR, created_by VARCHAR, owned_by VARCHAR, run_by VARCHAR)",
    "product_features": "STRUCT(jobs_tier VARCHAR, sql_tier VARCHAR, dlt_tier VARCHAR, is_serverless BOOLEAN, "
    "is_photon BOOLEAN, serving_type VARCHAR, performance_target VARCHAR)",
    "pricing": 'STRUCT("default" DECIMAL(38,18), promotional STRUCT("default" DECIMAL(38,18)), '
    'effective_list STRUCT("default" DECIMAL(38,18)))',
}
_TAGS = "MAP(VARCHAR, VARCHAR)"
_TABLES: dict[str, dict[str, str]] = {
    "billing.usage": {
        "account_id": "VARCHAR",
        "workspace_id": "VARCHAR",
        "record_id": "VARCHAR",
        "sku_name": "VARCHAR",
        "cloud": "VARCHAR",
        "usage_start_time": "TIMESTAMP",
        "usage_end_time": "TIMESTAMP",
        "usage_date": "DATE",
        "custom_tags": _TAGS,
        "usage_unit": "VARCHAR",
        "usage_quantity": "DECIMAL(38,18)",
        "usage_metadata": _STRUCTS["usage_metadata"],
        "identity_metadata": _STRUCTS["identity_metadata"],
        "record_type": "VARCHAR",
        "ingestion_date": "DATE",
        "billing_origin_product": "VARCHAR",
        "product_features": _STRUCTS["product_features"],
        "usage_type": "VARCHAR",
    },
    "billing.list_prices": {
        "account_id": "VARCHAR",
        "price_start_time": "TIMESTAMP",
        "price_end_time": "TIMESTAMP",
        "sku_name": "VARCHAR",
        "cloud": "VARCHAR",
        "currency_code": "VARCHAR",
        "usage_unit": "VARCHAR",
        "pricing": _STRUCTS["pricing"],
    },
    "serving.endpoint_usage": {
        "workspace_id": "VARCHAR",
        "account_id": "VARCHAR",
        "client_request_id": "VARCHAR",
        "databricks_request_id": "VARCHAR",
        "requester": "VARCHAR",
        "status_code": "INTEGER",
        "request_time": "TIMESTAMP",
        "input_token_count": "BIGINT",
        "output_token_count": "BIGINT",
        "usage_context": _TAGS,
        "served_entity_id": "VARCHAR",
    },
    "serving.served_entities": {
        "served_entity_id": "VARCHAR",
        "account_id": "VARCHAR",
        "workspace_id": "VARCHAR",
        "created_by": "VARCHAR",
        "endpoint_name": "VARCHAR",
        "endpoint_id": "VARCHAR",
        "served_entity_name": "VARCHAR",
        "entity_type": "VARCHAR",
        "entity_name": "VARCHAR",
        "entity_version": "VARCHAR",
        "task": "VARCHAR",
        "external_model_config": "STRUCT(provider VARCHAR, name VARCHAR, task VARCHAR)",
        "change_time": "TIMESTAMP",
        "endpoint_delete_time": "TIMESTAMP",
    },
}
_PARAM_TYPES = {
    "STRING": "VARCHAR",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP",
    "TIMESTAMP_NTZ": "TIMESTAMP",
    "INT": "INTEGER",
    "INTEGER": "INTEGER",
    "BIGINT": "BIGINT",
    "LONG": "BIGINT",
    "SMALLINT": "SMALLINT",
    "TINYINT": "TINYINT",
    "DOUBLE": "DOUBLE",
    "FLOAT": "FLOAT",
    "BOOLEAN": "BOOLEAN",
}
_SIMPLE_TYPES = {
    "VARCHAR": ("STRING", "STRING"),
    "BIGINT": ("LONG", "BIGINT"),
    "HUGEINT": ("LONG", "BIGINT"),
    "INTEGER": ("INT", "INT"),
    "SMALLINT": ("SHORT", "SMALLINT"),
    "TINYINT": ("BYTE", "TINYINT"),
    "DOUBLE": ("DOUBLE", "DOUBLE"),
    "FLOAT": ("FLOAT", "FLOAT"),
    "BOOLEAN": ("BOOLEAN", "BOOLEAN"),
    "DATE": ("DATE", "DATE"),
    "TIMESTAMP": ("TIMESTAMP", "TIMESTAMP"),
    "TIMESTAMP WITH TIME ZONE": ("TIMESTAMP", "TIMESTAMP"),
    '"NULL"': ("NULL", "NULL"),
}
_SQLSTATES = {
    "CatalogException": "42P01",
    "BinderException": "42703",
    "ParserException": "42601",
    "PermissionException": "42501",
}
# Databricks SQL functions the project's statements use, as DuckDB macros (same results for their uses).
_DATABRICKS_FUNCTIONS = {
    "sha2(x, n)": "sha256(x)",  # only sha2(..., 256) is used
    "collect_list(x)": "list(x)",
    "array_join(a, sep)": "array_to_string(a, sep)",
}
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
            out.append(sql[i : j + 1])
            i = j + 1
        elif sql.startswith("--", i) or sql.startswith("/*", i):
            j = sql.find("\n" if c == "-" else "*/", i)
            j = n if j < 0 else j + (1 if c == "-" else 2)
            out.append(sql[i:j])
            i = j
        elif c in '`"':
            j = sql.find(c, i + 1)
            j = n - 1 if j < 0 else j
            name = sql[i + 1 : j]
            catalog = name.lower() == "system" and qualifier_ahead(j + 1)
            out.append(SYSTEM_CATALOG if catalog else '"' + name.replace('"', '""') + '"')
            i = j + 1
        elif sql.startswith("::", i):
            out.append("::")
            i += 2
        elif c == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            m = re.match(r"[A-Za-z_]\w*", sql[i + 1 :])
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
        return {
            **column,
            "type_name": "DECIMAL",
            "type_text": f"DECIMAL({p},{s})",
            "type_precision": p,
            "type_scale": s,
        }
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
    disposition: str = "INLINE"
    format: str = "JSON_ARRAY"
    values: list[tuple] = field(default_factory=list)  # typed rows, for ARROW_STREAM
    duck_types: list[str] = field(default_factory=list)
    encoded: dict[int, bytes] = field(default_factory=dict)  # chunk index → the bytes behind its link


class _SqlWarehouse:
    """The world's system tables in an in-memory DuckDB, and the statement store."""

    def __init__(self, options: MockOptions, clock: Callable[[], float]):
        self.options, self.clock = options, clock
        self.statements: dict[str, _Statement] = {}
        self.executed: list[dict] = []  # request bodies, for tests ("parameterized statements only")
        self.lock = threading.Lock()
        self._connection: duckdb.DuckDBPyConnection | None = None
        self.serving_overlay = EndpointUsageOverlay()  # calls made to the mock (mock_server/serving.py)
        self.links = ResultLinks()

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
            "billing.usage": [
                r
                for billed in self.options.billed_worlds
                for r in views.billing_usage_rows(billed)
                if r["usage_date"] not in empty
            ],
            "billing.list_prices": views.list_prices_rows(load_price_sheet(), config),
            "serving.endpoint_usage": [
                {k: v for k, v in r.items() if k not in ("endpoint_name", "entity_name")}
                for r in views.serving_rows(world)
            ],
            "serving.served_entities": views.served_entity_rows(world),
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
                textual = {
                    c: ("VARCHAR" if t in ("TIMESTAMP", "DATE") or t.startswith("DECIMAL") else t)
                    for c, t in columns.items()
                }
                spec = "{" + ", ".join(f"'{c}': '{t}'" for c, t in textual.items()) + "}"
                select = ", ".join(f'CAST("{c}" AS {t})' for c, t in columns.items())
                con.execute(
                    f"INSERT INTO {SYSTEM_CATALOG}.{table} SELECT {select} FROM "
                    f"read_json('{path}', format='newline_delimited', columns={spec})"
                )
        self.serving_overlay.install(con, f"{SYSTEM_CATALOG}.serving.endpoint_usage")
        for signature, body in _DATABRICKS_FUNCTIONS.items():
            con.execute(f"CREATE MACRO {signature} AS {body}")
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
                raise _SqlFailure(
                    f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `system`.`{schema}`.`{table}` cannot be found.",
                    "42P01",
                )
            if name in missing:
                raise _SqlFailure(f"[SCHEMA_NOT_FOUND] The schema `system`.`{schema}` cannot be found.", "42704")
            if name in denied:
                raise _SqlFailure(
                    "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have "
                    f"USE SCHEMA on Schema '{name}'.",
                    "42501",
                )

    def execute(self, body: dict, statement_id: str, host: str = "127.0.0.1") -> dict:
        warehouse, statement = body.get("warehouse_id"), body.get("statement")
        if not warehouse or not statement:
            raise _bad("warehouse_id and statement are required")
        disposition, result_format = body.get("disposition") or "INLINE", body.get("format") or "JSON_ARRAY"
        if disposition not in ("INLINE", "EXTERNAL_LINKS") or result_format not in ("JSON_ARRAY", "ARROW_STREAM"):
            raise _bad(
                "the mock warehouse serves disposition INLINE or EXTERNAL_LINKS, format JSON_ARRAY or ARROW_STREAM"
            )
        if disposition == "INLINE" and result_format != "JSON_ARRAY":
            raise _bad(f"format {result_format} needs disposition EXTERNAL_LINKS")
        wait = str(body.get("wait_timeout") or "10s")
        if not re.fullmatch(r"\d+s", wait) or not (wait == "0s" or 5 <= int(wait[:-1]) <= 50):
            raise _bad(f"wait_timeout must be 0s or between 5s and 50s, got {wait!r}")
        on_timeout = body.get("on_wait_timeout") or "CONTINUE"
        params = {
            p["name"]: (p.get("value"), self._param_type(p.get("type") or "STRING"))
            for p in body.get("parameters") or []
        }
        self.executed.append(body)
        st = _Statement(
            statement_id,
            ready_at=self.clock() + self.options.statement_delay_s,
            disposition=disposition,
            format=result_format,
        )
        try:
            sql, binds = _translate(statement, params)
            self._unavailable_schema(sql)
            cursor = self._tables().cursor()
            cursor.execute(sql, binds)
            result = cursor.fetchall()
            st.columns = [_column(i, d[0], str(d[1])) for i, d in enumerate(cursor.description or [])]
            st.duck_types = [str(d[1]) for d in cursor.description or []]
        except _SqlFailure as e:
            st.state, st.sql_state, st.error = "FAILED", e.sql_state, {"error_code": "BAD_REQUEST", "message": str(e)}
        except duckdb.Error as e:
            message = str(e).replace(SYSTEM_CATALOG, "system").splitlines()[0]
            st.state, st.sql_state = "FAILED", _SQLSTATES.get(type(e).__name__, "42000")
            st.error = {"error_code": "BAD_REQUEST", "message": f"[{type(e).__name__}] {message}"}
        else:
            limit = body.get("row_limit")
            st.truncated = limit is not None and len(result) > int(limit)
            st.values = result[: int(limit)] if st.truncated else result
            st.rows = [[_wire(v) for v in row] for row in st.values]
            inline_bytes = len(json.dumps(st.rows, separators=(",", ":")))
            if disposition == "INLINE" and inline_bytes > self.options.sql_inline_limit_bytes:
                st.state, st.sql_state, st.rows, st.values = "FAILED", "54000", [], []
                st.error = {
                    "error_code": "BAD_REQUEST",
                    "message": "Inline byte limit exceeded. Statements executed with disposition=INLINE can have "
                    f"a result size of at most {self.options.sql_inline_limit_bytes} bytes. Please use "
                    "disposition=EXTERNAL_LINKS for large result sets.",
                }
        with self.lock:
            self.statements[statement_id] = st
        pending = st.ready_at - self.clock()
        if st.state == "SUCCEEDED" and pending > 0:
            time.sleep(min(pending, int(wait[:-1])))
            if self.clock() < st.ready_at and on_timeout == "CANCEL":
                st.state = "CANCELED"
        return self.status(statement_id, host)

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

    def status(self, statement_id: str, host: str = "127.0.0.1") -> dict:
        """The statement's state; once SUCCEEDED with its manifest and first chunk (``host``: the one the
        request named, for the external links)."""
        st = self._get(statement_id)
        out: dict[str, Any] = {"statement_id": statement_id}
        if st.state == "FAILED":
            return {**out, "status": {"state": "FAILED", "sql_state": st.sql_state, "error": st.error}}
        if st.state == "CANCELED":
            return {**out, "status": {"state": "CANCELED"}}
        if self.clock() < st.ready_at:
            return {**out, "status": {"state": "PENDING"}}
        size, count = self.options.sql_chunk_rows, self._chunk_count(st)
        chunks = [
            {"chunk_index": i, "row_offset": i * size, "row_count": len(st.rows[i * size : (i + 1) * size])}
            for i in range(count)
        ]
        if st.disposition == "EXTERNAL_LINKS":
            for chunk in chunks:
                chunk["byte_count"] = len(self._chunk_bytes(st, chunk["chunk_index"]))
        return {
            **out,
            "status": {"state": "SUCCEEDED"},
            "manifest": {
                "format": st.format,
                "schema": {"column_count": len(st.columns), "columns": st.columns},
                "total_chunk_count": count,
                "chunks": chunks,
                "total_row_count": len(st.rows),
                "truncated": st.truncated,
            },
            # An empty EXTERNAL_LINKS result has no chunk, hence no link.
            "result": self.chunk(statement_id, 0, host) if count else {},
        }

    def _chunk_count(self, st: _Statement) -> int:
        """INLINE answers one (possibly empty) chunk at least; EXTERNAL_LINKS none for an empty result."""
        count = math.ceil(len(st.rows) / self.options.sql_chunk_rows)
        return count if st.disposition == "EXTERNAL_LINKS" else max(1, count)

    def _chunk_bytes(self, st: _Statement, index: int) -> bytes:
        """The bytes behind a chunk's external link: an Arrow IPC stream or a JSON array of rows."""
        if index not in st.encoded:
            size = self.options.sql_chunk_rows
            lo, hi = index * size, (index + 1) * size
            st.encoded[index] = (
                arrow_stream([c["name"] for c in st.columns], st.duck_types, st.values[lo:hi], _wire)
                if st.format == "ARROW_STREAM"
                else json.dumps(st.rows[lo:hi], separators=(",", ":")).encode()
            )
        return st.encoded[index]

    def _now(self) -> dt.datetime:
        now = self.options.now or dt.datetime.now(dt.UTC)
        return now if now.tzinfo else now.replace(tzinfo=dt.UTC)

    def chunk(self, statement_id: str, index: int, host: str = "127.0.0.1") -> dict:
        st = self._get(statement_id)
        if st.state != "SUCCEEDED" or self.clock() < st.ready_at:
            raise MockError(400, "BAD_REQUEST", f"Statement {statement_id} has no result to fetch ({st.state}).")
        size, count = self.options.sql_chunk_rows, self._chunk_count(st)
        if not 0 <= index < count:
            raise _bad(f"chunk_index {index} is out of range [0, {count})")
        data = st.rows[index * size : (index + 1) * size]
        out: dict[str, Any] = {"chunk_index": index, "row_offset": index * size, "row_count": len(data)}
        if index + 1 < count:
            out["next_chunk_index"] = index + 1
            out["next_chunk_internal_link"] = (
                f"/api/2.0/sql/statements/{statement_id}/result/chunks/{index + 1}?row_offset={(index + 1) * size}"
            )
        if st.disposition == "EXTERNAL_LINKS":
            url, expiration = self.links.issue(host, statement_id, index, self._now(), self.options.sql_link_ttl_s)
            link = {**out, "byte_count": len(self._chunk_bytes(st, index)), "external_link": url}
            return {"external_links": [{**link, "expiration": expiration, "http_headers": {}}]}
        if data:
            out["data_array"] = data
        return out

    def download(self, statement_id: str, index: int, signature: str | None, authorized: bool) -> bytes:
        """What the storage behind an external link answers (see :class:`ResultLinks` for refusals)."""
        self.links.check(statement_id, index, signature, authorized, self._now())
        st = self._get(statement_id)
        if not 0 <= index < self._chunk_count(st):
            raise MockError(404, "NoSuchKey", "The specified key does not exist.")
        return self._chunk_bytes(st, index)

    def close(self) -> None:
        with self.lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def cancel(self, statement_id: str) -> None:
        st = self._get(statement_id)
        if st.state == "SUCCEEDED" and self.clock() < st.ready_at:
            st.state = "CANCELED"
