"""The routes of every Databricks API the mock serves, and the workspace state behind them.

:class:`MockWorkspace` maps a request to a :class:`Reply`, independent of the socket layer: Jobs
2.1/2.2 (``runs/list``, ``runs/get``, ``jobs/get``), Clusters (``get``, ``list``, ``events``,
``list-node-types``), instance pools, the Account API usage download, the SQL Statement Execution API
(handed to :mod:`cost_assets.mock_server.warehouse`), SCIM ``Me`` and OAuth M2M tokens, with their
paths, parameters, paging schemes, error bodies and auth. Payloads come from
``cost_assets.simulation.views``, the same views the in-process ``SimulatedApi`` returns, so the live
client against this server and the simulated resources yield equal tables.

With ``MockOptions.request_log`` set, every request writes one JSON line (``method``, ``path`` without
the query string, ``status``, ``fault``: ``"429"``, ``"503"``, ``"slow"``, ``"drop"``, ``"slow+drop"``
or null); headers and tokens are never written.
"""

import base64
import csv
import datetime as dt
import hashlib
import io
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

from cost_assets.ingest.parse import LEGACY_CSV_COLUMNS
from cost_assets.mock_server.faults import _FaultInjector
from cost_assets.mock_server.options import MockOptions
from cost_assets.mock_server.protocol import MockError, Reply, _bad, _json, _Query, _token, _untoken
from cost_assets.mock_server.result_links import LINK_PREFIX
from cost_assets.mock_server.serving import ServingEndpoints
from cost_assets.mock_server.warehouse import _SqlWarehouse
from cost_assets.prices import load_price_sheet
from cost_assets.schemas import EVENT_TYPES
from cost_assets.simulation import views
from cost_assets.simulation.world import JobRun

MAX_RUNS_LIMIT = 25
MAX_EVENTS_LIMIT = 500
UNKNOWN = "x_unknown_field"  # added to objects when MockOptions.unknown_fields is set
MOCK_USER = "mock-user@example.com"  # who every accepted credential is


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
        self.serving = ServingEndpoints(
            self.world.endpoints,
            self.config.workspace_id,
            self.config.account_id,
            self.sql.serving_overlay,
            now=lambda: self.options.now or dt.datetime.now(dt.UTC),
            requester=MOCK_USER,
        )
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
            ("GET", re.compile(r"/api/2\.0/instance-pools/list"), self.instance_pools_list),
            ("GET", re.compile(r"/api/2\.0/accounts/([^/]+)/usage/download"), self.usage_download),
            ("POST", re.compile(r"/api/2\.0/sql/statements/?"), self.statements_post),
            ("GET", re.compile(r"/api/2\.0/sql/statements/([^/]+)"), self.statements_get),
            ("POST", re.compile(r"/api/2\.0/sql/statements/([^/]+)/cancel"), self.statements_cancel),
            ("GET", re.compile(r"/api/2\.0/sql/statements/([^/]+)/result/chunks/(\d+)"), self.statements_chunk),
            ("GET", re.compile(r"/api/2\.0/preview/scim/v2/Me"), self.me),
            ("GET", re.compile(re.escape(LINK_PREFIX) + r"([^/]+)/(\d+)"), self.statements_download),
            ("POST", re.compile(r"/serving-endpoints/chat/completions"), self.serving.chat_completions),
            ("POST", re.compile(r"/serving-endpoints/([^/]+)/invocations"), self.serving.invocations),
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
                    if not path.startswith(("/oidc/", LINK_PREFIX)):  # a result link is signed instead
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
            raise MockError(
                401, "UNAUTHENTICATED", "Credential was not sent or was of an unsupported type for this API."
            )
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
        runs = (
            []
            if run_type not in (None, "JOB_RUN")
            else [
                r
                for r in self.runs_newest_first
                if lo <= r.start <= hi
                and job_id in (None, r.job_id)
                and self._retained(r)
                and not (active_only and not self._active(r))
                and not (completed_only and self._active(r))
            ]
        )
        token = query.str("page_token")
        offset = _untoken(token, "offset") if token else query.int("offset", 0)
        page = runs[offset : offset + limit]
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
            payload = self._array_page(
                payload, ("tasks", "job_clusters", "job_parameters", "repair_history"), query.str("page_token")
            )
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
            raise MockError(
                403, "PERMISSION_DENIED", f"User {MOCK_USER} does not have View permissions on job {job_id}."
            )
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
            raise MockError(
                403, "PERMISSION_DENIED", f"User {MOCK_USER} does not have permission to view instance pool {pool_id}."
            )
        if pool_id not in self.world.pools:
            raise MockError(404, "RESOURCE_DOES_NOT_EXIST", f"Instance pool {pool_id} does not exist")
        return _json(200, self._mark(views.instance_pool_payload(self.world, pool_id)))

    def instance_pools_list(self, **_: Any) -> Reply:
        """Every pool of the world (not paged, like the real endpoint); 403 with ``forbidden_pools``."""
        if self.options.forbidden_pools:
            raise MockError(
                403, "PERMISSION_DENIED", f"User {MOCK_USER} does not have permission to list instance pools."
            )
        return _json(200, {"instance_pools": [self._mark(p) for p in views.instance_pools_list(self.world)]})

    def clusters_list(self, *, query: _Query, **_: Any) -> Reply:
        size = min(100, query.int("page_size", 20) or 20)  # the server may constrain the page size
        sources, states = query.list("filter_by.cluster_sources"), query.list("filter_by.cluster_states")
        # Every simulated cluster is TERMINATED when seen (after the world's last day).
        ids = [
            cid
            for cid, c in sorted(self.world.clusters.items())
            if (not sources or c.source in sources)
            and (not states or "TERMINATED" in states)
            and cid not in self.options.purged_clusters
        ]
        token = query.str("page_token")
        offset = _untoken(token, "offset") if token else 0
        out: dict[str, Any] = {
            "next_page_token": _token(offset=offset + size) if offset + size < len(ids) else "",
            "prev_page_token": _token(offset=max(0, offset - size)) if offset else "",
        }
        if ids[offset : offset + size]:
            out["clusters"] = [self._cluster(cid) for cid in ids[offset : offset + size]]
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
        events = [
            self._mark({**e, "details": self._mark(dict(e.get("details") or {}))})
            for e in views.cluster_events(self.world, cluster_id)
            if lo <= e["timestamp"] <= hi and (not types or e["type"] in types)
        ]
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
                "prev_page_token": _token(offset=max(0, offset - size)) if offset else "",
                "total_count": 0,
            }
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
        if events[offset : offset + size]:
            out["events"] = events[offset : offset + size]
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
        parts = [views.legacy_csv(billed, start, last) for billed in self.options.billed_worlds]
        text = parts[0] + "".join(part.split("\n", 1)[1] for part in parts[1:])  # one header
        text = _without_days(text, set(self.options.empty_bill_days))
        if self.options.unknown_fields:
            lines = text.splitlines()
            text = "\n".join([lines[0] + ",x_unknown_column", *(line + ",later" for line in lines[1:])]) + "\n"
        return Reply(200, text.encode(), content_type="text/plain; charset=utf-8")

    # --- SQL ----------------------------------------------------------------------------------------------

    def statements_post(self, *, body: bytes, headers: dict[str, str], **_: Any) -> Reply:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise MockError(400, "MALFORMED_REQUEST", "Could not parse request object") from None
        sid = self._serial_id("statement")
        statement_id = f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:32]}"
        return _json(200, self._mark(self.sql.execute(request, statement_id, headers.get("host", "127.0.0.1"))))

    def statements_get(self, statement_id: str, *, headers: dict[str, str], **_: Any) -> Reply:
        return _json(200, self._mark(self.sql.status(statement_id, headers.get("host", "127.0.0.1"))))

    def statements_chunk(self, statement_id: str, index: str, *, headers: dict[str, str], **_: Any) -> Reply:
        return _json(200, self._mark(self.sql.chunk(statement_id, int(index), headers.get("host", "127.0.0.1"))))

    def statements_download(self, statement_id: str, index: str, *, query: _Query, headers: dict[str, str], **_: Any):
        """The storage behind an external link: signed by its query string, no Authorization header."""
        body = self.sql.download(statement_id, int(index), query.str("signature"), "authorization" in headers)
        return Reply(200, body, content_type="application/vnd.apache.arrow.stream")

    def statements_cancel(self, statement_id: str, **_: Any) -> Reply:
        self.sql.cancel(statement_id)
        return _json(200, {})

    # --- identity -----------------------------------------------------------------------------------------

    def me(self, **_: Any) -> Reply:
        return _json(200, {"id": "4711471147114711", "userName": MOCK_USER, "active": True})

    def oauth_token(self, account_id: str | None = None, *, body: bytes, headers: dict[str, str], **_: Any) -> Reply:
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
            account_id is not None and account_id != self.config.account_id
        ):
            return _json(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        token = f"mock-oauth-{self._serial_id('oauth')[:40]}"
        with self._lock:
            self.oauth_tokens[token] = self.clock() + self.options.oauth_expires_in
        return _json(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.options.oauth_expires_in,
                "scope": form.get("scope") or "all-apis",
            },
        )


def _without_days(text: str, days: set[str]) -> str:
    """The legacy CSV without the rows of ``days`` (ISO dates). A row's usage date is its end-of-hour
    timestamp's date: the end of an hour is never midnight, so it falls on the hour's own day."""
    if not days:
        return text
    rows = list(csv.reader(io.StringIO(text)))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(
        [rows[0], *(r for r in rows[1:] if r[LEGACY_CSV_COLUMNS.index("timestamp")][:10] not in days)]
    )
    return buf.getvalue()
