"""Client instrumentation: stamp ``usage_context`` on every model-serving request an httpx client sends.

An OpenAI-compatible client pointed at a Databricks workspace (``base_url=<host>/serving-endpoints``) sends
its requests through an ``httpx.Client`` or ``httpx.AsyncClient`` it is given. :func:`instrument` adds an
httpx **event hook** to that client — nothing else is patched — which, for each ``POST`` to
``<host>/serving-endpoints/...``:

* merges the :class:`UsageContext` (tenant, agent, user, session, any extra keys) into the JSON body's
  ``usage_context`` object: Databricks serving accepts ``usage_context`` (a map of strings) in the request
  body and stores it on the request's row of ``system.serving.endpoint_usage``, which is what
  ``mart/serving_costs`` splits each endpoint's bill by. Keys the request already carries win (a per-request
  override);
* adds a ``client_request_id`` when the body has none (also stored on the ``endpoint_usage`` row): the key
  that joins a call's local estimate to its billed row;
* optionally records the call's estimate in a local SQLite table (:class:`CallLog`, ``COST_ASSETS_CALL_LOG``;
  never the ledger's DuckDB file, whose writer lock a pipeline run holds).

Why the host is normalized and checked: a workspace URL written with a trailing slash, without a scheme or
with the ``/serving-endpoints`` suffix makes a request's URL differ from what a tool matches (``…net//serving-
endpoints/…``), and other tools then file the call under the wrong category *silently*. Here the host is
normalized once (:func:`normalize_workspace_host`, each fix logged as a WARNING), a request path with doubled
slashes is rewritten to its canonical form with a WARNING, and a serving request to a host other than the
instrumented one is left alone but WARNed about (once per host) — never a silent miss. Requests that are not
serving calls (the REST APIs, other hosts) pass untouched.

The estimate is ``input_tokens × input price + output_tokens × output price`` (USD per million tokens, the
price sheet's ``token_prices``), the price looked up by the served model the response names, else by the
endpoint name (pay-per-token endpoints are named after their model). Tokens come from the response's
``usage``; without one (a streamed response, an error body) they are estimated as ``ceil(characters of the
prompt / 4)`` input and ``max_tokens`` output — no tokenizer, which would download its encodings. A model
without a price, or a call without usage and without ``max_tokens``, is stored with ``estimated_usd`` NULL,
never $0.
"""

import datetime as dt
import json
import logging
import math
import os
import re
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from cost_assets.config import Settings
from cost_assets.ingest.http import normalize_host

log = logging.getLogger(__name__)

SERVING_PREFIX = "/serving-endpoints"
CONTEXT_KEYS = ("tenant", "agent", "user", "session")
Client = TypeVar("Client", httpx.Client, httpx.AsyncClient)
TokenPrices = Mapping[str, tuple[float, float]]  # model → (input, output) USD per million tokens


class UsageContext:
    """The attribution a serving request carries: tenant, agent, user, session and any extra keys.

    Values are strings (Databricks stores ``usage_context`` as ``map<string,string>``); ``None`` leaves a
    key out. A non-string value is a :class:`TypeError` naming the key, not a silently dropped tag.
    """

    def __init__(
        self,
        tenant: str | None = None,
        agent: str | None = None,
        user: str | None = None,
        session: str | None = None,
        **extra: str | None,
    ):
        given = {"tenant": tenant, "agent": agent, "user": user, "session": session, **extra}
        for key, value in given.items():
            if value is not None and not isinstance(value, str):
                raise TypeError(f"usage_context {key!r} must be a string, got {type(value).__name__} {value!r}")
        self.values: dict[str, str] = {k: v for k, v in given.items() if v is not None}

    def as_dict(self) -> dict[str, str]:
        return dict(self.values)

    def __repr__(self) -> str:
        return f"UsageContext({', '.join(f'{k}={v!r}' for k, v in self.values.items())})"


def normalize_workspace_host(host: str) -> str:
    """``https://<host>[:port]``: scheme added, trailing slashes and a ``/serving-endpoints`` suffix removed,
    each fix WARNed; http only for loopback; any other path is a :class:`ValueError` (a workspace URL has
    none, and guessing would attribute to the wrong place)."""
    raw = host.strip()
    if "://" not in raw:
        log.warning("workspace host %r has no scheme: using https://", raw)
    trimmed = raw.rstrip("/")
    if trimmed != raw:
        log.warning("workspace host %r ends with '/': the slash is dropped", raw)
    parts = urlsplit(trimmed if "://" in trimmed else f"https://{trimmed}")
    path = re.sub("/{2,}", "/", parts.path).rstrip("/")
    if path.lower() == SERVING_PREFIX:
        log.warning("workspace host %r names the serving path: the host is %s://%s", raw, parts.scheme, parts.netloc)
        path = ""
    if path or parts.query or parts.fragment:
        raise ValueError(f"workspace host {host!r} has a path {parts.path!r}: expected https://<host>")
    return normalize_host(f"{parts.scheme}://{parts.netloc.lower()}")


def prompt_text(body: Mapping[str, Any]) -> str:
    """The prompt text of a serving request body: the messages' contents (text parts included), else
    ``prompt`` / ``input`` (a string or a list of strings)."""
    parts: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(v for v in value if isinstance(v, str))
    return "".join(parts)


@dataclass(frozen=True)
class CallRecord:
    """One serving call as the client saw it, with its estimate."""

    client_request_id: str
    request_time: dt.datetime
    host: str
    endpoint: str
    model: str | None
    usage_context: dict[str, str]
    status_code: int
    input_tokens: int
    output_tokens: int | None
    token_source: str  # "usage": the response's usage; "chars": ceil(chars/4) + max_tokens
    estimated_usd: float | None


class CallLog:
    """The calls' estimates in a local SQLite file (``COST_ASSETS_CALL_LOG``), one row per call.

    SQLite, not the ledger's DuckDB: a serving application must never wait on (or block) a pipeline run.
    ``client_request_id`` is the key; a call recorded twice keeps its first row.
    """

    COLUMNS = (
        "client_request_id TEXT PRIMARY KEY",
        "request_time TEXT NOT NULL",
        "host TEXT NOT NULL",
        "endpoint TEXT NOT NULL",
        "model TEXT",
        "tenant TEXT",
        "agent TEXT",
        "user TEXT",
        "session TEXT",
        "usage_context TEXT NOT NULL",
        "status_code INTEGER NOT NULL",
        "input_tokens INTEGER NOT NULL",
        "output_tokens INTEGER",
        "token_source TEXT NOT NULL",
        "estimated_usd REAL",
    )

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as con:
            con.execute(f"CREATE TABLE IF NOT EXISTS calls ({', '.join(self.COLUMNS)})")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def record(self, call: CallRecord) -> None:
        context = call.usage_context
        row = (
            call.client_request_id,
            call.request_time.isoformat(),
            call.host,
            call.endpoint,
            call.model,
            *(context.get(k) for k in CONTEXT_KEYS),
            json.dumps(context, sort_keys=True),
            call.status_code,
            call.input_tokens,
            call.output_tokens,
            call.token_source,
            call.estimated_usd,
        )
        with self._lock, self._connect() as con:
            con.execute(f"INSERT OR IGNORE INTO calls VALUES ({', '.join('?' * len(row))})", row)

    def rows(self) -> list[dict]:
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute("SELECT * FROM calls ORDER BY request_time, client_request_id")]


def token_prices(prices_path: str | None = None) -> dict[str, tuple[float, float]]:
    """model → (input, output) USD per million tokens, from the price sheet (bundled + overrides)."""
    from cost_assets.prices import load_price_sheet  # the sheet is loaded only when estimates are recorded

    frame = load_price_sheet(prices_path).token_prices_frame()
    return {r["model"]: (r["input_per_million"], r["output_per_million"]) for r in frame.iter_rows(named=True)}


def estimate_usd(prices: TokenPrices, models: list[str | None], input_tokens: int, output_tokens: int | None):
    """USD of one call by the first of ``models`` with a price; None when none has one or tokens are unknown."""
    price = next((prices[m] for m in models if m and m in prices), None)
    if price is None or output_tokens is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1e6


@dataclass
class _Pending:
    """What the request hook learned, for the response hook."""

    client_request_id: str
    endpoint: str
    context: dict[str, str]
    prompt_chars: int
    max_tokens: int | None
    streamed: bool
    started: dt.datetime


def _endpoint_of(path: str, body: Mapping[str, Any]) -> str:
    """``/serving-endpoints/{name}/invocations`` → name; the OpenAI-compatible paths name it in ``model``."""
    rest = path[len(SERVING_PREFIX) + 1 :].split("/")
    if len(rest) >= 2 and rest[1] == "invocations":
        return rest[0]
    return str(body.get("model") or "")


class _Instrumentation:
    """The hooks' shared logic (sync and async clients differ only in how a response body is read)."""

    def __init__(
        self,
        host: str,
        context: UsageContext,
        call_log: CallLog | None,
        prices: TokenPrices,
        clock: Callable[[], dt.datetime],
    ):
        self.host = normalize_workspace_host(host)
        self.origin = urlsplit(self.host)
        self.context, self.call_log, self.prices, self.clock = context.as_dict(), call_log, prices, clock
        self.pending: weakref.WeakKeyDictionary[httpx.Request, _Pending] = weakref.WeakKeyDictionary()
        self.warned: set[str] = set()

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self.warned:
            self.warned.add(key)
            log.warning(message, *args)

    def _same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (self.origin.scheme, self.origin.hostname, self.origin.port)

    def on_request(self, request: httpx.Request) -> None:
        path = re.sub("/{2,}", "/", request.url.path)
        if not path.startswith(SERVING_PREFIX + "/") or request.method != "POST":
            return
        if not self._same_origin(request.url):
            self._warn_once(
                f"host:{request.url.host}",
                "serving request to %s is not to the instrumented workspace %s: no usage_context stamped",
                f"{request.url.scheme}://{request.url.netloc.decode()}",
                self.host,
            )
            return
        if path != request.url.path:
            self._warn_once(f"path:{request.url.path}", "serving path %r rewritten to %r", request.url.path, path)
            request.url = request.url.copy_with(path=path)
        if not isinstance(request.stream, httpx.ByteStream):
            self._warn_once("stream", "a streamed request body to %s cannot be stamped with usage_context", path)
            return
        try:
            body = json.loads(request.content or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._warn_once(f"body:{path}", "request to %s has no JSON object body: no usage_context stamped", path)
            return
        own = body.get("usage_context") if isinstance(body.get("usage_context"), dict) else {}
        body["usage_context"] = {**self.context, **own}  # the request's own keys win
        body.setdefault("client_request_id", uuid.uuid4().hex)
        content = json.dumps(body, separators=(",", ":")).encode()
        # httpx has no public setter for a built request's body: the stream is what is sent, ``_content`` is
        # what ``request.content`` returns; both, and the length, must agree.
        request.stream = httpx.ByteStream(content)
        request._content = content
        request.headers["Content-Length"] = str(len(content))
        if self.call_log is not None:
            max_tokens = body.get("max_tokens")
            self.pending[request] = _Pending(
                client_request_id=str(body["client_request_id"]),
                endpoint=_endpoint_of(path, body),
                context=body["usage_context"],
                prompt_chars=len(prompt_text(body)),
                max_tokens=max_tokens if isinstance(max_tokens, int) else None,
                streamed=bool(body.get("stream")),
                started=self.clock(),
            )

    def on_response(self, response: httpx.Response, payload: Any) -> None:
        """Record the call (``payload``: the parsed JSON response, None when unread or not JSON)."""
        call = self.pending.pop(response.request, None)
        if call is None or self.call_log is None:
            return
        usage = payload.get("usage") if isinstance(payload, dict) else None
        model = payload.get("model") if isinstance(payload, dict) else None
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            tokens = (usage["prompt_tokens"], int(usage.get("completion_tokens") or 0))
            source = "usage"
        else:
            tokens = (math.ceil(call.prompt_chars / 4), call.max_tokens)
            source = "chars"
        self.call_log.record(
            CallRecord(
                client_request_id=call.client_request_id,
                request_time=call.started,
                host=self.host,
                endpoint=call.endpoint,
                model=model if isinstance(model, str) else None,
                usage_context=call.context,
                status_code=response.status_code,
                input_tokens=tokens[0],
                output_tokens=tokens[1],
                token_source=source,
                estimated_usd=estimate_usd(self.prices, [model, call.endpoint], *tokens),
            )
        )

    def wants_body(self, response: httpx.Response) -> bool:
        call = self.pending.get(response.request)
        return call is not None and not call.streamed


def _payload(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def instrument(
    http_client: Client,
    host: str,
    context: UsageContext | None = None,
    call_log: str | Path | CallLog | None = None,
    prices: TokenPrices | None = None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> Client:
    """Add the usage-context hook to ``http_client`` (sync or async) for the workspace ``host``; returns it.

    ``call_log``: a SQLite path (or :class:`CallLog`) to record each call's estimate in (default:
    ``COST_ASSETS_CALL_LOG``, unset: none); ``prices``: model →
    (input, output) USD per million tokens (default: the bundled price sheet's ``token_prices``, loaded only
    with a call log). Pass the client on, e.g. ``OpenAI(base_url=f"{host}/serving-endpoints",
    http_client=instrument(httpx.Client(), host, UsageContext(tenant="acme", agent="triage")))``.
    """
    if call_log is None:
        call_log = Settings.from_environ(os.environ).call_log_path
    log_store = CallLog(call_log) if isinstance(call_log, str | Path) else call_log
    if log_store is not None and prices is None:
        prices = token_prices()
    hooks = _Instrumentation(host, context or UsageContext(), log_store, prices or {}, clock)
    current = http_client.event_hooks
    if isinstance(http_client, httpx.AsyncClient):

        async def on_request(request: httpx.Request) -> None:
            hooks.on_request(request)

        async def on_response(response: httpx.Response) -> None:
            if hooks.wants_body(response):
                await response.aread()
                hooks.on_response(response, _payload(response))
            else:
                hooks.on_response(response, None)

    else:

        def on_request(request: httpx.Request) -> None:
            hooks.on_request(request)

        def on_response(response: httpx.Response) -> None:
            if hooks.wants_body(response):
                response.read()
                hooks.on_response(response, _payload(response))
            else:
                hooks.on_response(response, None)

    http_client.event_hooks = {
        "request": [*current.get("request", []), on_request],
        "response": [*current.get("response", []), on_response],
    }
    return http_client
