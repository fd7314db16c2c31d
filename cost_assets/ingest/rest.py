"""The workspace's REST APIs, every page of them: :class:`RestWorkspaceApi`.

:class:`RestWorkspaceApi` implements ``WorkspaceApi`` (``cost_assets.ingest.fetch``) over the REST APIs
with every paging scheme they use: ``runs/list`` page tokens (25 per page), 2.2 ``runs/get``/``jobs/get``
array pages for objects with more than 100 tasks, ``clusters/list`` page tokens, ``clusters/events``
``next_page`` request bodies, and SQL result chunks. Per day it makes ceil(runs/25) ``runs/list`` calls;
one ``clusters/get`` per job cluster of the day's tasks and per job cluster of the look-back's task runs
that ended before 00:00 (whose tear-down may have crossed midnight; all-purpose clusters come from
``clusters/list``); the events pages (ascending over the day and its look-back window, plus, for a
cluster whose window holds no lifecycle event before 00:00, a few descending pages back to its last
lifecycle event); one ``jobs/get`` per distinct job (a 404 ``RESOURCE_DOES_NOT_EXIST`` is
``fetch.NotFound``: the job becomes a stub); and ``runs/get`` only for runs whose arrays were capped.
A backfill of several days in one run lists clusters once and gets each job and cluster once.
"""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cost_assets.ingest.fetch import NotFound, NotPermitted, SourceUnavailable
from cost_assets.ingest.http import ApiClient, ApiError
from cost_assets.ingest.sql import Param, SqlStatementError, StatementClient, statement
from cost_assets.timeutil import from_ms

# Cluster sources other than JOB: fetch only takes all-purpose-like clusters from clusters/list (job
# clusters come one by one through clusters/get), so listing job clusters would only cost pages.
NON_JOB_SOURCES = ["UI", "API", "PIPELINE", "PIPELINE_MAINTENANCE", "MODELS", "SQL"]
# Arrays that Jobs API 2.2 pages (100 per page) on runs/get, and on jobs/get under ``settings``.
RUN_ARRAYS = ("job_clusters", "job_parameters", "repair_history")
JOB_ARRAYS = ("tasks", "job_clusters", "parameters", "environments")


def _does_not_exist(error: ApiError) -> bool:
    """The object is gone (not a missing endpoint, not auth): HTTP 404 ``RESOURCE_DOES_NOT_EXIST``, or the
    400 ``INVALID_PARAMETER_VALUE`` "Cluster ... does not exist" the Clusters API answers for a purged
    cluster."""
    if error.status == 404 and error.error_code == "RESOURCE_DOES_NOT_EXIST":
        return True
    return error.status == 400 and error.error_code == "INVALID_PARAMETER_VALUE" and "does not exist" in str(error)


def _once(seen: dict, key: Any, fetch: Callable[[], dict], what: str, forbidden_ok: bool = False) -> dict:
    """Fetch an object once per client. One that does not exist raises :class:`NotFound`; with
    ``forbidden_ok``, one the principal may not read (HTTP 403) raises :class:`NotPermitted`. Both are
    remembered, so a backfill asks once. Other errors propagate."""
    if key not in seen:
        try:
            seen[key] = fetch()
        except ApiError as e:
            if _does_not_exist(e):
                seen[key] = NotFound(f"{what} does not exist (HTTP {e.status} {e.error_code})")
            elif forbidden_ok and e.status == 403:
                seen[key] = NotPermitted(f"{what}: HTTP 403 {e.error_code or ''}".rstrip())
            else:
                raise
    if isinstance(seen[key], LookupError):
        raise seen[key]
    return seen[key]


def _query(params: dict[str, Any]) -> dict[str, Any]:
    """Booleans as ``true``/``false`` (httpx would send ``True``); None values dropped."""
    return {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in params.items() if v is not None}


class RestWorkspaceApi:
    """``WorkspaceApi`` over HTTP. Jobs API 2.2, falling back to 2.1 once if 2.2 is not served."""

    def __init__(
        self,
        client: ApiClient,
        *,
        cloud: str,
        workspace_id: str | None = None,
        warehouse_id: str | None = None,
        runs_page_size: int = 25,
        events_page_size: int = 500,
        clusters_page_size: int = 100,
    ):
        if not 1 <= runs_page_size <= 25:
            raise ValueError("runs_page_size must be 1..25 (runs/list rejects larger pages)")
        if not 1 <= events_page_size <= 500:
            raise ValueError("events_page_size must be 1..500 (clusters/events rejects larger pages)")
        self.client, self.cloud = client, cloud.upper()
        self.warehouse_id = warehouse_id
        self.runs_page_size, self.events_page_size = runs_page_size, events_page_size
        self.clusters_page_size = clusters_page_size
        self.jobs_version = "2.2"
        self._workspace_id = workspace_id
        # One materialization (possibly a backfill of many days) asks for the same jobs and clusters each day;
        # their details do not change within it, so each is fetched once per instance.
        # Each holds the object, or the NotFound / NotPermitted its fetch raised.
        self._jobs_seen: dict[int, dict | LookupError] = {}
        self._clusters_seen: dict[str, dict | LookupError] = {}
        self._pools_seen: dict[str, dict | LookupError] = {}
        self._listed: list[dict] | None = None
        self._pools_listed: list[dict] | SourceUnavailable | None = None

    def __enter__(self) -> "RestWorkspaceApi":
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    @property
    def workspace_id(self) -> str:
        """Configured, or the ``X-Databricks-Org-Id`` header every workspace response carries."""
        if self._workspace_id is None:
            org = self.client.response_headers.get("x-databricks-org-id")
            if org is None:
                self.client.get_json("/api/2.0/preview/scim/v2/Me")
                org = self.client.response_headers.get("x-databricks-org-id")
            if not org:
                raise ValueError(
                    "the workspace did not say its id (no X-Databricks-Org-Id header): set DATABRICKS_WORKSPACE_ID"
                )
            self._workspace_id = org
        return self._workspace_id

    def stats(self) -> dict[str, float]:
        return {**self.client.stats(), "jobs_api_2_1_fallback": int(self.jobs_version == "2.1")}

    # --- Jobs API ------------------------------------------------------------------------------------

    def _jobs(self, name: str, params: dict[str, Any]) -> dict:
        """GET /api/{2.2|2.1}/jobs/<name>; a 404 that is not about a missing object means 2.2 is absent."""
        try:
            return self.client.get_json(f"/api/{self.jobs_version}/jobs/{name}", _query(params))
        except ApiError as e:
            if self.jobs_version == "2.2" and e.status == 404 and e.error_code != "RESOURCE_DOES_NOT_EXIST":
                self.jobs_version = "2.1"
                return self.client.get_json(f"/api/2.1/jobs/{name}", _query(params))
            raise

    def list_runs(self, start_time_from: int, start_time_to: int) -> Iterator[dict]:
        params: dict[str, Any] = {
            "start_time_from": start_time_from,
            "start_time_to": start_time_to,
            "expand_tasks": True,
            "limit": self.runs_page_size,
        }
        while True:
            page = self._jobs("runs/list", params)
            for run in page.get("runs") or []:
                yield self._complete_run(run) if run.get("has_more") else run
            token = page.get("next_page_token")
            if not token or not page.get("has_more", True):
                return
            params["page_token"] = token

    def _complete_run(self, run: dict) -> dict:
        """A listed run whose arrays were capped at 100: take the arrays from the paged runs/get."""
        full = self.get_run(run["run_id"])
        merged = {k: v for k, v in run.items() if k not in ("has_more", "tasks", "iterations", *RUN_ARRAYS)}
        merged.update({k: full[k] for k in ("tasks", "iterations", *RUN_ARRAYS) if full.get(k)})
        return merged

    def get_run(self, run_id: int) -> dict:
        """runs/get with every 2.2 array page merged (tasks or for-each iterations, and RUN_ARRAYS)."""
        params: dict[str, Any] = {"run_id": run_id, "include_history": True}
        run = self._jobs("runs/get", params)
        paged = "iterations" if run.get("iterations") else "tasks"
        while token := run.pop("next_page_token", None):
            page = self._jobs("runs/get", {**params, "page_token": token})
            for key in (paged, *RUN_ARRAYS):
                if page.get(key):
                    run.setdefault(key, []).extend(page[key])
            run["next_page_token"] = page.get("next_page_token")
        run.pop("next_page_token", None)
        return run

    def get_job(self, job_id: int) -> dict:
        """jobs/get with every 2.2 array page merged; :class:`NotFound` on 404 ``RESOURCE_DOES_NOT_EXIST``
        (a deleted job, or the anonymous job of a runs/submit run). Other errors propagate."""
        return _once(
            self._jobs_seen, job_id, lambda: self._fetch_job(job_id), f"jobs/get: job {job_id}", forbidden_ok=True
        )

    def _fetch_job(self, job_id: int) -> dict:
        job = self._jobs("get", {"job_id": job_id})
        while token := job.pop("next_page_token", None):
            page = self._jobs("get", {"job_id": job_id, "page_token": token})
            settings = job.setdefault("settings", {})
            for key in JOB_ARRAYS:
                if (page.get("settings") or {}).get(key):
                    settings.setdefault(key, []).extend(page["settings"][key])
            job["next_page_token"] = page.get("next_page_token")
        job.pop("next_page_token", None)
        job.pop("has_more", None)
        return job

    # --- Clusters API --------------------------------------------------------------------------------

    def get_cluster(self, cluster_id: str) -> dict:
        """clusters/get (once per cluster per client); :class:`NotFound` for a purged cluster."""
        return _once(
            self._clusters_seen,
            cluster_id,
            lambda: self.client.get_json("/api/2.1/clusters/get", {"cluster_id": cluster_id}),
            f"clusters/get: cluster {cluster_id}",
        )

    def get_instance_pool(self, instance_pool_id: str) -> dict:
        """instance-pools/get (once per pool per client); :class:`NotFound` for a deleted pool,
        :class:`NotPermitted` for one the principal may not read."""
        return _once(
            self._pools_seen,
            instance_pool_id,
            lambda: self.client.get_json("/api/2.0/instance-pools/get", {"instance_pool_id": instance_pool_id}),
            f"instance-pools/get: pool {instance_pool_id}",
            forbidden_ok=True,
        )

    def list_instance_pools(self) -> list[dict]:
        """instance-pools/list (one call, not paged), listed once per instance like the clusters: it knows only
        today's pools, so every day of a backfill gets the same answer. :class:`SourceUnavailable` when the
        principal may not list pools (403) or the endpoint is absent (404), kept and raised for each day:
        the pools are optional, the day goes on."""
        if self._pools_listed is None:
            try:
                self._pools_listed = (
                    self.client.get_json("/api/2.0/instance-pools/list", {}).get("instance_pools") or []
                )
            except ApiError as e:
                if e.status not in (403, 404):
                    raise
                detail = f"instance-pools/list: HTTP {e.status} {e.error_code or ''}".rstrip()
                self._pools_listed = SourceUnavailable(detail)
        if isinstance(self._pools_listed, SourceUnavailable):
            raise self._pools_listed
        return self._pools_listed

    def list_clusters(self) -> list[dict]:
        """The non-job clusters (see NON_JOB_SOURCES), every page; listed once per instance."""
        if self._listed is None:
            self._listed = self._list_clusters()
        return self._listed

    def _list_clusters(self) -> list[dict]:
        params: dict[str, Any] = {"page_size": self.clusters_page_size, "filter_by.cluster_sources": NON_JOB_SOURCES}
        out: list[dict] = []
        while True:
            page = self.client.get_json("/api/2.1/clusters/list", params)
            out.extend(page.get("clusters") or [])
            if not page.get("next_page_token"):
                return out
            params["page_token"] = page["next_page_token"]

    def cluster_events(self, cluster_id: str, start_time: int, end_time: int) -> list[dict]:
        body = {
            "cluster_id": cluster_id,
            "start_time": start_time,
            "end_time": end_time,
            "order": "ASC",
            "limit": self.events_page_size,
        }
        return list(self._events_pages(body))

    def cluster_events_before(
        self, cluster_id: str, end_time: int, event_types: Iterable[str], limit: int
    ) -> Iterator[dict]:
        """Newest first (``order=DESC``, no ``start_time``), ``limit`` per page (capped at
        ``events_page_size``); lazy, so a caller that stops early never requests the later pages."""
        body = {
            "cluster_id": cluster_id,
            "end_time": end_time,
            "order": "DESC",
            "event_types": list(event_types),
            "limit": max(1, min(limit, self.events_page_size)),
        }
        return self._events_pages(body)

    def _events_pages(self, body: dict | None) -> Iterator[dict]:
        """POST clusters/events, following each response's ``next_page`` request body; :class:`NotFound`
        when the cluster (and its events) was purged."""
        while body:
            try:
                page = self.client.post_json("/api/2.1/clusters/events", body)
            except ApiError as e:
                if _does_not_exist(e):
                    raise NotFound(f"clusters/events: cluster {body['cluster_id']} does not exist") from e
                raise
            yield from page.get("events") or []
            body = page.get("next_page")

    # --- system tables -------------------------------------------------------------------------------

    def serving_requests(self, start_time: int, end_time: int) -> list[dict]:
        """system.serving.endpoint_usage rows; :class:`SourceUnavailable` without a SQL warehouse, or when the
        statement fails (schema not enabled, no grant) or the API refuses it."""
        if not self.warehouse_id:
            raise SourceUnavailable(
                "system.serving.endpoint_usage is read through a SQL warehouse and "
                "DATABRICKS_WAREHOUSE_ID is not set (a workspace without Unity Catalog has "
                "no system tables)"
            )
        try:
            return self._serving_rows(start_time, end_time)
        except (ApiError, SqlStatementError) as e:
            raise SourceUnavailable(f"system.serving.endpoint_usage: {e}") from e

    def _serving_rows(self, start_time: int, end_time: int) -> list[dict]:
        fmt = "%Y-%m-%d %H:%M:%S.%f"  # naive UTC: SQL warehouses run in UTC unless the session says otherwise
        return StatementClient(self.client, self.warehouse_id).query(
            statement("serving_usage"),
            [
                Param("workspace_id", self.workspace_id),
                Param("start_time", from_ms(start_time).strftime(fmt), "TIMESTAMP"),
                Param("end_time", from_ms(end_time).strftime(fmt), "TIMESTAMP"),
            ],
        )
