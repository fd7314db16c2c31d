"""SQL Statement Execution API client: parameterized statements, polling, chunk fetching.

Only named parameters (``:name``) are sent, never values spliced into SQL text: dates and ids reach the
warehouse as typed parameters. Results come back as JSON_ARRAY/INLINE, where every non-null value is a
string (complex types are JSON text); the shared parsers convert them.

An execution failure is an HTTP 200 with ``status.state = FAILED`` and is raised as
:class:`SqlStatementError` with the warehouse's error code, SQLSTATE and message. A statement still
PENDING/RUNNING after ``timeout_s`` is cancelled and raised. A truncated result is an error, not a
silently short bill.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from cost_assets.ingest.http import ApiClient

STATEMENTS = "/api/2.0/sql/statements"


@cache
def statement(name: str) -> str:
    """The SQL of ``queries/<name>.sql``: every statement sent to a SQL warehouse is a file there."""
    return files("cost_assets.ingest").joinpath("queries", f"{name}.sql").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Param:
    """A named statement parameter; ``value=None`` is SQL NULL. ``type`` is a Databricks SQL type name."""

    name: str
    value: str | None
    type: str = "STRING"

    def wire(self) -> dict:
        out = {"name": self.name, "type": self.type}
        if self.value is not None:
            out["value"] = self.value
        return out


class SqlStatementError(RuntimeError):
    """The warehouse did not produce the full result (failed, cancelled, timed out or truncated)."""


class StatementClient:
    """Runs one statement at a time on a SQL warehouse and returns every row as a dict of strings."""

    def __init__(
        self,
        client: ApiClient,
        warehouse_id: str,
        *,
        wait_timeout_s: int = 30,
        poll_interval_s: float = 1.0,
        max_poll_interval_s: float = 5.0,
        timeout_s: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not warehouse_id:
            raise ValueError("a SQL warehouse id is needed for system tables: set DATABRICKS_WAREHOUSE_ID")
        if wait_timeout_s != 0 and not 5 <= wait_timeout_s <= 50:
            raise ValueError("wait_timeout_s must be 0 or between 5 and 50 (the API's limits)")
        self.client, self.warehouse_id = client, warehouse_id
        self.wait_timeout_s, self.timeout_s = wait_timeout_s, timeout_s
        self.poll_interval_s, self.max_poll_interval_s = poll_interval_s, max_poll_interval_s
        self.sleep = sleep

    def query(self, statement: str, params: Sequence[Param] = ()) -> list[dict[str, str | None]]:
        """Execute, wait for a terminal state, fetch every chunk; rows keyed by column name."""
        response = self.client.post_json(
            STATEMENTS,
            {
                "warehouse_id": self.warehouse_id,
                "statement": statement,
                "parameters": [p.wire() for p in params],
                "wait_timeout": f"{self.wait_timeout_s}s",
                "on_wait_timeout": "CONTINUE",
                "format": "JSON_ARRAY",
                "disposition": "INLINE",
            },
        )
        response = self._wait(response)
        manifest = response.get("manifest") or {}
        if manifest.get("truncated"):
            raise SqlStatementError(
                f"statement {response.get('statement_id')}: the result was truncated "
                f"({manifest.get('total_row_count')} rows); query a narrower range"
            )
        columns = [
            c["name"] for c in sorted((manifest.get("schema") or {}).get("columns") or [], key=lambda c: c["position"])
        ]
        rows: list[list[str | None]] = []
        chunk = response.get("result") or {}
        while True:
            rows.extend(chunk.get("data_array") or [])
            link = chunk.get("next_chunk_internal_link")
            if not link and chunk.get("next_chunk_index") is None:
                break
            link = link or f"{STATEMENTS}/{response['statement_id']}/result/chunks/{chunk['next_chunk_index']}"
            chunk = self.client.get_json(link)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def _wait(self, response: dict) -> dict:
        statement_id = response.get("statement_id")
        waited, interval = 0.0, self.poll_interval_s
        while (state := (response.get("status") or {}).get("state")) in ("PENDING", "RUNNING"):
            if waited >= self.timeout_s:
                self.client.post_json(f"{STATEMENTS}/{statement_id}/cancel", {})
                raise SqlStatementError(
                    f"statement {statement_id} still {state} after {self.timeout_s:g} s; "
                    "cancelled it (is the SQL warehouse running?)"
                )
            self.sleep(interval)
            waited += interval
            interval = min(self.max_poll_interval_s, interval * 2)
            response = self.client.get_json(f"{STATEMENTS}/{statement_id}")
        if state == "SUCCEEDED":
            return response
        status = response.get("status") or {}
        error = status.get("error") or {}
        detail = f"{error.get('error_code') or ''} {error.get('message') or ''}".strip()
        sql_state = f" (SQLSTATE {status['sql_state']})" if status.get("sql_state") else ""
        raise SqlStatementError(
            f"statement {statement_id} on warehouse {self.warehouse_id} ended {state}"
            f"{sql_state}: {detail or 'no error message'}"
        )
