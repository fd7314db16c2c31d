"""SQL Statement Execution API client: parameterized statements, polling, chunk fetching.

Only named parameters (``:name``) are sent, never values spliced into SQL text: dates and ids reach the
warehouse as typed parameters. :meth:`StatementClient.query` asks for JSON_ARRAY/INLINE, where every
non-null value is a string (complex types are JSON text); the shared parsers convert them. INLINE results
are capped at 25 MiB (beyond it the statement fails), so :meth:`StatementClient.query_arrow` asks for
ARROW_STREAM through EXTERNAL_LINKS: typed Arrow chunks downloaded from short-lived presigned URLs.

**The Authorization header never goes to a link.** A link is signed by its own URL and lives on cloud
storage, not on the workspace: the downloads use a separate :class:`ApiClient` without credentials (the
workspace client's retries for 503s and dropped connections, no token: sending it there would hand it to
a third party, and storage refuses a second auth mechanism anyway). Links must be https (plain http only
on loopback, as for the workspace). A link whose ``expiration`` has passed (or that storage refuses with
403) is asked for again once through its chunk's ``result/chunks/{n}`` call, which hands out a fresh one.

An execution failure is an HTTP 200 with ``status.state = FAILED`` and is raised as
:class:`SqlStatementError` with the warehouse's error code, SQLSTATE and message. A statement still
PENDING/RUNNING after ``timeout_s`` is cancelled and raised. A truncated result is an error, not a
silently short bill.
"""

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from urllib.parse import urlsplit

import polars as pl

from cost_assets.ingest.http import ApiClient, AuthError, normalize_host
from cost_assets.timeutil import naive_utc

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
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None),
    ):
        if not warehouse_id:
            raise ValueError("a SQL warehouse id is needed for system tables: set DATABRICKS_WAREHOUSE_ID")
        if wait_timeout_s != 0 and not 5 <= wait_timeout_s <= 50:
            raise ValueError("wait_timeout_s must be 0 or between 5 and 50 (the API's limits)")
        self.client, self.warehouse_id = client, warehouse_id
        self.wait_timeout_s, self.timeout_s = wait_timeout_s, timeout_s
        self.poll_interval_s, self.max_poll_interval_s = poll_interval_s, max_poll_interval_s
        self.sleep = sleep
        self.now = now
        self.link_stats: Counter[str] = Counter()

    def query(self, statement: str, params: Sequence[Param] = ()) -> list[dict[str, str | None]]:
        """Execute, wait for a terminal state, fetch every chunk; rows keyed by column name."""
        response = self._execute(statement, params, "JSON_ARRAY", "INLINE")
        columns = _columns(response)
        rows: list[list[str | None]] = []
        chunk = response.get("result") or {}
        while True:
            rows.extend(chunk.get("data_array") or [])
            link = _next_chunk(response["statement_id"], chunk)
            if link is None:
                break
            chunk = self.client.get_json(link)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def query_arrow(self, statement: str, params: Sequence[Param] = ()) -> pl.DataFrame:
        """Execute with ARROW_STREAM + EXTERNAL_LINKS and download every chunk; one typed frame.

        ``self.link_stats`` counts the downloads (``calls/external_link``, ``retries/external_link``,
        ``http_<status>/external_link``, ``bytes/external_link``, ``links_refreshed``); see
        :func:`add_link_stats`."""
        response = self._execute(statement, params, "ARROW_STREAM", "EXTERNAL_LINKS")
        statement_id = response["statement_id"]
        frames: list[pl.DataFrame] = []
        storage: dict[str, ApiClient] = {}  # one credential-free client per storage origin
        try:
            links = (response.get("result") or {}).get("external_links") or []
            while links:
                for link in links:
                    frames.append(pl.read_ipc_stream(self._download(storage, statement_id, link)))
                path = _next_chunk(statement_id, links[-1])
                links = (self.client.get_json(path).get("external_links") or []) if path else []
        finally:
            for client in storage.values():
                self._count_storage(client)
                client.close()
        if not frames:  # an empty result has no chunk: the manifest's column names, no rows
            return pl.DataFrame(schema={name: pl.String for name in _columns(response)})
        return pl.concat(frames, how="vertical_relaxed")

    def _download(self, storage: dict[str, ApiClient], statement_id: str, link: dict) -> bytes:
        """The bytes behind one external link, without credentials; a fresh link once if it had expired."""
        refreshed = False
        while True:
            url = link.get("external_link") or ""
            parts = urlsplit(url)
            origin = normalize_host(f"{parts.scheme}://{parts.netloc}")  # https, or http on loopback only
            if origin not in storage:
                # Same retries as the workspace (503s, dropped connections), but no credentials at all.
                storage[origin] = ApiClient(
                    origin,
                    None,
                    timeout_s=self.client.http.timeout.read or 30.0,
                    max_requests_per_second=None,
                    retry=self.client.retry,
                    sleep=self.client.sleep,
                    clock=self.client.clock,
                    rng=self.client.rng,
                    name="SQL result storage",
                )
            if not (link.get("expiration") and naive_utc(link["expiration"]) <= self.now()):
                try:
                    # Only the headers the warehouse listed for the link (none carry the workspace's token).
                    body = storage[origin].send("GET", url, headers=link.get("http_headers") or {}).content
                except AuthError:  # 403: expired or revoked meanwhile; asked for again below, once
                    if refreshed:
                        raise
                else:
                    self.link_stats["bytes/external_link"] += len(body)
                    return body
            elif refreshed:
                raise SqlStatementError(
                    f"statement {statement_id}: the external link of chunk {link.get('chunk_index')} had "
                    "expired when it was handed out (is this machine's clock right?)"
                )
            refreshed = True
            self.link_stats["links_refreshed"] += 1
            fresh = self.client.get_json(f"{STATEMENTS}/{statement_id}/result/chunks/{link['chunk_index']}")
            link = (fresh.get("external_links") or [{}])[0]

    def _count_storage(self, client: ApiClient) -> None:
        """The storage client's totals as ``<key>/external_link`` (its per-path keys would be one per chunk)."""
        for key, value in client.stats().items():
            if key in ("calls", "retries", "throttled_s", "connection_errors") or key.startswith("http_"):
                self.link_stats[f"{key}/external_link"] += value

    def _execute(self, statement: str, params: Sequence[Param], result_format: str, disposition: str) -> dict:
        """POST the statement, wait for SUCCEEDED; a truncated result is an error."""
        response = self.client.post_json(
            STATEMENTS,
            {
                "warehouse_id": self.warehouse_id,
                "statement": statement,
                "parameters": [p.wire() for p in params],
                "wait_timeout": f"{self.wait_timeout_s}s",
                "on_wait_timeout": "CONTINUE",
                "format": result_format,
                "disposition": disposition,
            },
        )
        response = self._wait(response)
        manifest = response.get("manifest") or {}
        if manifest.get("truncated"):
            raise SqlStatementError(
                f"statement {response.get('statement_id')}: the result was truncated "
                f"({manifest.get('total_row_count')} rows); query a narrower range"
            )
        return response

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


def _columns(response: dict) -> list[str]:
    """The result's column names in position order (from the manifest)."""
    columns = ((response.get("manifest") or {}).get("schema") or {}).get("columns") or []
    return [c["name"] for c in sorted(columns, key=lambda c: c["position"])]


def _next_chunk(statement_id: str, chunk: dict) -> str | None:
    """The path of the chunk after this one (an inline chunk or an external link), None after the last."""
    if chunk.get("next_chunk_internal_link"):
        return chunk["next_chunk_internal_link"]
    if chunk.get("next_chunk_index") is not None:
        return f"{STATEMENTS}/{statement_id}/result/chunks/{chunk['next_chunk_index']}"
    return None


def add_link_stats(stats: dict, link_stats: Mapping[str, float]) -> None:
    """Adds the result-link downloads to a workspace client's statistics: every ``<key>/external_link`` as
    it is, and its calls, retries, HTTP errors and waits into the totals too, so ``calls`` and
    ``retries`` still count every request the result took."""
    for key, value in link_stats.items():
        stats[key] = stats.get(key, 0) + value
        total = key.removesuffix("/external_link")
        if total != key and total != "bytes":
            stats[total] = stats.get(total, 0) + value
