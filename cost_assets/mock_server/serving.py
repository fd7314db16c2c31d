"""Model-serving invocations on the mock workspace, and the overlay of ``system.serving.endpoint_usage`` they
leave behind.

Routes: ``POST /serving-endpoints/{name}/invocations`` and the OpenAI-compatible
``POST /serving-endpoints/chat/completions`` (the body's ``model`` names the endpoint). Both answer an
OpenAI-shaped chat completion with ``usage`` (``prompt_tokens``, ``completion_tokens``, ``total_tokens``)
and record the call — with the ``usage_context`` and ``client_request_id`` the body carried — as one row of
the endpoint-usage overlay.

Why an overlay and not rows of the world: the world is generated from a seed, and every simulated day must
read the same however many calls a test made. The overlay is a table of its own; the warehouse serves
``system.serving.endpoint_usage`` as a view of the generated rows UNION ALL the overlay rows, so a
statement sees both and the generated table never changes.

The answer is deterministic, so tests can compute it by hand: ``prompt_tokens = ceil(characters of the
prompt text / 4)`` (:func:`cost_assets.instrument.prompt_text`) and ``completion_tokens = max_tokens``
(default :data:`DEFAULT_COMPLETION_TOKENS`); the request time is ``MockOptions.now`` (else the real UTC
now).
"""

import datetime as dt
import json
import math
import threading
from collections.abc import Callable
from typing import Any

import duckdb

from cost_assets.instrument import prompt_text
from cost_assets.mock_server.protocol import MockError, Reply, _bad, _json
from cost_assets.simulation.world import Endpoint

DEFAULT_COMPLETION_TOKENS = 16
GENERATED = "memory.main.endpoint_usage_generated"
OVERLAY = "memory.main.endpoint_usage_overlay"


class EndpointUsageOverlay:
    """The ``endpoint_usage`` rows of calls made to the mock, apart from the generated world's rows.

    Rows recorded before the warehouse loads its tables are kept and inserted when :meth:`install` runs.
    """

    def __init__(self) -> None:
        self._rows: list[dict] = []
        self._columns: list[str] = []
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def install(self, connection: duckdb.DuckDBPyConnection, table: str) -> None:
        """Turn the loaded ``table`` (``<catalog>.serving.endpoint_usage``) into generated ∪ overlay."""
        with self._lock:
            connection.execute(f"CREATE TABLE {GENERATED} AS SELECT * FROM {table}")
            connection.execute(f"CREATE TABLE {OVERLAY} AS SELECT * FROM {table} LIMIT 0")
            connection.execute(f"DROP TABLE {table}")
            connection.execute(f"CREATE VIEW {table} AS SELECT * FROM {GENERATED} UNION ALL SELECT * FROM {OVERLAY}")
            self._columns = [row[0] for row in connection.execute(f"DESCRIBE {OVERLAY}").fetchall()]
            self._connection = connection
            for row in self._rows:
                self._insert(row)

    def record(self, row: dict) -> None:
        with self._lock:
            self._rows.append(row)
            if self._connection is not None:
                self._insert(row)

    def rows(self) -> list[dict]:
        with self._lock:
            return list(self._rows)

    def _insert(self, row: dict) -> None:
        marks = ", ".join("?" for _ in self._columns)
        self._connection.cursor().execute(
            f"INSERT INTO {OVERLAY} VALUES ({marks})", [row.get(c) for c in self._columns]
        )


def _usage_context(body: dict) -> dict[str, str]:
    """The body's ``usage_context``: a JSON object of string values (Databricks stores a map<string,string>)."""
    context = body.get("usage_context")
    if context is None:
        return {}
    if not isinstance(context, dict) or not all(isinstance(v, str) for v in context.values()):
        raise _bad("usage_context must be an object of string values")
    return context


class ServingEndpoints:
    """The invocation routes over the world's endpoints; each call becomes an overlay row."""

    def __init__(
        self,
        endpoints: list[Endpoint],
        workspace_id: str,
        account_id: str,
        overlay: EndpointUsageOverlay,
        now: Callable[[], dt.datetime],
        requester: str,
    ):
        self.endpoints = {e.name: e for e in endpoints}
        self.workspace_id, self.account_id = workspace_id, account_id
        self.overlay, self.now, self.requester = overlay, now, requester
        self._serial = 0
        self._lock = threading.Lock()

    def chat_completions(self, *, body: bytes, **_: Any) -> Reply:
        request = self._json(body)
        name = request.get("model")
        if not isinstance(name, str) or not name:
            raise _bad("model is required: the name of the serving endpoint")
        return self._invoke(name, request)

    def invocations(self, name: str, *, body: bytes, **_: Any) -> Reply:
        return self._invoke(name, self._json(body))

    @staticmethod
    def _json(body: bytes) -> dict:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise MockError(400, "MALFORMED_REQUEST", "the request body is not valid JSON") from None
        if not isinstance(request, dict):
            raise MockError(400, "MALFORMED_REQUEST", "the request body must be a JSON object")
        return request

    def _invoke(self, name: str, request: dict) -> Reply:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise MockError(404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint with name '{name}' does not exist.")
        context = _usage_context(request)
        max_tokens = request.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise _bad(f"max_tokens must be a positive integer, got {max_tokens!r}")
        prompt_tokens = math.ceil(len(prompt_text(request)) / 4)
        completion_tokens = max_tokens or DEFAULT_COMPLETION_TOKENS
        now = self.now()
        now = now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now.astimezone(dt.UTC)  # naive is UTC
        with self._lock:
            self._serial += 1
            request_id = f"mock-{self._serial:08d}"
        self.overlay.record(
            {
                "workspace_id": self.workspace_id,
                "account_id": self.account_id,
                "client_request_id": request.get("client_request_id"),
                "databricks_request_id": request_id,
                "requester": self.requester,
                "status_code": 200,
                "request_time": now.replace(tzinfo=None),
                "input_token_count": prompt_tokens,
                "output_token_count": completion_tokens,
                "usage_context": context,
                "served_entity_id": endpoint.served_entity_id,
            }
        )
        return _json(
            200,
            {
                "id": request_id,
                "object": "chat.completion",
                "created": int(now.timestamp()),
                "model": endpoint.entity_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": " ".join(["mock"] * completion_tokens)},
                        "finish_reason": "length" if max_tokens else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )
