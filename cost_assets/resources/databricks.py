"""The workspace resource: jobs, runs, clusters, events, serving usage and served entities of one Databricks
workspace.

Assets annotate the abstract ``DatabricksWorkspace``; the simulated subclass answers in-process from a
generated world (``resources/simulated.py``), and :class:`LiveWorkspace` talks HTTP (to a real workspace
or to ``cost_assets.mock_server``) through ``cost_assets.ingest.rest.RestWorkspaceApi``, which pages
through the REST APIs. Both hand their payloads to the same parsers through ``cost_assets.ingest.fetch``.
"""

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

import dagster as dg
import polars as pl

from cost_assets.ingest import parse
from cost_assets.ingest.fetch import SourceUnavailable, WorkspaceApi, WorkspaceDay, fetch_days
from cost_assets.ingest.http import (
    ApiClient,
    Credentials,
    OAuthM2MCredentials,
    PatCredentials,
    RetryPolicy,
    normalize_host,
)
from cost_assets.ingest.rest import RestWorkspaceApi
from cost_assets.ingest.serving_sources import entities_by_day, gateway_by_day, read_gateway_usage, read_served_entities
from cost_assets.ingest.sql import StatementClient

SECRET_FIELDS = frozenset({"token", "client_secret"})


class DatabricksConnection(dg.Config):
    """Where a workspace (or the account console) is and how to authenticate; secrets via ``dg.EnvVar``.

    A PAT (``token``) wins over OAuth M2M (``client_id`` + ``client_secret``). ``repr`` never shows a
    secret, so the object can appear in logs and errors safely.
    """

    host: str
    token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    timeout_s: float = 30.0
    max_requests_per_second: float = 20.0  # client-side limit (0: none); Databricks reads allow ~30/s
    max_attempts: int = 6
    retry_timeout_s: float = 300.0
    backoff_s: float = 1.0
    jitter_s: float = 1.0
    # The variables holding the credentials, named in an auth error (a workspaces file names its own);
    # None: DATABRICKS_TOKEN or DATABRICKS_CLIENT_ID/SECRET.
    credential_variables: str | None = None

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, ("<redacted>" if name in SECRET_FIELDS and value else value)

    def client(self, kind: Literal["workspace", "account"] = "workspace", account_id: str | None = None) -> ApiClient:
        """A keep-alive client with this connection's credentials, retries and rate limit."""
        return ApiClient(
            self.host,
            self.credentials(kind, account_id),
            timeout_s=self.timeout_s,
            max_requests_per_second=self.max_requests_per_second,
            retry=RetryPolicy(
                max_attempts=self.max_attempts,
                retry_timeout_s=self.retry_timeout_s,
                backoff_s=self.backoff_s,
                jitter_s=self.jitter_s,
            ),
        )

    def credentials(self, kind: Literal["workspace", "account"], account_id: str | None) -> Credentials:
        where = "DATABRICKS_HOST" if kind == "workspace" else "DATABRICKS_ACCOUNT_HOST and DATABRICKS_ACCOUNT_ID"
        if self.credential_variables:
            where = self.credential_variables
        if self.token:
            return PatCredentials(
                self.token,
                hint=where
                if self.credential_variables
                else f"DATABRICKS_TOKEN (or DATABRICKS_ACCESS_TOKEN) and {where}",
            )
        if self.client_id and self.client_secret:
            path = "/oidc/v1/token" if kind == "workspace" else f"/oidc/accounts/{account_id}/v1/token"
            return OAuthM2MCredentials(
                token_url=normalize_host(self.host) + path,
                client_id=self.client_id,
                client_secret=self.client_secret,
                hint=where
                if self.credential_variables
                else f"DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET and {where}",
            )
        raise ValueError(
            f"no Databricks credentials for {where}: set DATABRICKS_TOKEN, or "
            "DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET"
        )


class DatabricksWorkspace(dg.ConfigurableResource):
    """Abstract: subclasses provide ``api()``. An account of several workspaces is a resource whose
    :meth:`members` are one workspace resource each; the raw assets fetch them concurrently."""

    run_lookback_days: int = 2  # runs/list filters on start time: look back this far for long runs
    # Cluster events before 00:00 fetched with the day to know each cluster's state at 00:00; a cluster
    # without a lifecycle event in them is walked back further (newest first) to its last one.
    event_lookback_days: int = 2
    name: str = "workspace"  # how logs and metadata name it (the workspaces file's ``name``)
    region: str | None = None  # shown beside the name in the metadata (the workspaces file's ``region``)
    # At most this many workspaces are fetched at once (COST_ASSETS_WORKSPACE_CONCURRENCY); each has its
    # own client and rate limit.
    max_concurrent: int = 8

    def api(self) -> WorkspaceApi:
        raise NotImplementedError(f"{type(self).__name__} does not provide a workspace API")

    def members(self) -> list["DatabricksWorkspace"]:
        """The workspaces a daily run fetches: this one, unless the resource is an account of several."""
        return [self]

    def configured_workspace_ids(self) -> list[str] | None:
        """The workspace ids of an account of several (bill rows of any other workspace are
        ``workspace_not_configured``); None for one workspace, which owns the whole bill as always."""
        return None

    def workspace_names(self) -> dict[str, str]:
        """The name of each workspace of an account of several, by id (how the run summary labels them);
        empty for one workspace. :meth:`members` follow :meth:`configured_workspace_ids` in order."""
        ids = self.configured_workspace_ids()
        return {} if ids is None else dict(zip(ids, (m.name for m in self.members()), strict=True))

    def fetch(self, days: list[dt.date]) -> WorkspaceDay:
        """The four workspace tables for ``days`` (runs overlapping each day, their jobs and clusters)."""
        return self._fetch_with(self.api(), days)

    def serving_usage(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        """Model-serving requests (system.serving.endpoint_usage) of ``days``; :class:`SourceUnavailable`
        when the workspace has no such source or it may not be read. ``stats`` (if given) receives the
        API call statistics."""
        return self._serving_with(self.api(), days)

    def served_entities(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        """``system.serving.served_entities`` as of each of ``days`` (``serving_sources.entities_by_day``);
        :class:`SourceUnavailable` when the workspace has no such source or it may not be read."""
        raise SourceUnavailable(f"{type(self).__name__} does not read system.serving.served_entities")

    def gateway_usage(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        """``system.ai_gateway.usage`` requests of ``days`` (``serving_sources.gateway_by_day``);
        :class:`SourceUnavailable` when the workspace has no such source or it may not be read."""
        raise SourceUnavailable(f"{type(self).__name__} does not read system.ai_gateway.usage")

    def _fetch_with(self, api: WorkspaceApi, days: list[dt.date]) -> WorkspaceDay:
        return fetch_days(
            api, days, run_lookback_days=self.run_lookback_days, event_lookback_days=self.event_lookback_days
        )

    @staticmethod
    def _serving_with(api: WorkspaceApi, days: list[dt.date]) -> pl.DataFrame:
        frames = []
        for day in days:
            lo, hi = parse.day_bounds(day)
            rows = api.serving_requests(parse.to_ms(lo), parse.to_ms(hi))
            frames.append(parse.serving_usage_frame(rows, day, api.workspace_id))
        return pl.concat(frames)


class LiveWorkspace(DatabricksWorkspace):
    """A real workspace (or the mock server) over HTTPS. Call statistics go into ``WorkspaceDay.stats``,
    which the raw asset writes to the materialization metadata under ``api/``."""

    connection: DatabricksConnection
    cloud: str = "AZURE"  # used when a cluster has no cloud-specific attributes
    workspace_id: str | None = None  # default: the X-Databricks-Org-Id response header
    warehouse_id: str | None = None  # SQL warehouse for system.serving.endpoint_usage
    runs_page_size: int = 25
    events_page_size: int = 500
    clusters_page_size: int = 100

    def api(self) -> RestWorkspaceApi:
        return RestWorkspaceApi(
            self.connection.client(),
            cloud=self.cloud,
            workspace_id=self.workspace_id,
            warehouse_id=self.warehouse_id,
            runs_page_size=self.runs_page_size,
            events_page_size=self.events_page_size,
            clusters_page_size=self.clusters_page_size,
        )

    def fetch(self, days: list[dt.date]) -> WorkspaceDay:
        with self.api() as api:
            got = self._fetch_with(api, days)
            got.stats.update(api.stats())
        return got

    def serving_usage(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        with self.api() as api:
            try:
                return self._serving_with(api, days)
            finally:
                if stats is not None:
                    stats.update(api.stats())

    def served_entities(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        return self._system_table(
            "system.serving.served_entities",
            lambda sql, ws: entities_by_day(_or_unavailable(read_served_entities(sql, ws)), days, ws),
            stats,
        )

    def gateway_usage(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
        start, end = parse.day_bounds(days[0])[0], parse.day_bounds(days[-1])[1]
        return self._system_table(
            "system.ai_gateway.usage",
            lambda sql, ws: gateway_by_day(_or_unavailable(read_gateway_usage(sql, ws, start, end)), days, ws),
            stats,
        )

    def _system_table(
        self,
        table: str,
        read: Callable[[StatementClient, str], pl.DataFrame],
        stats: dict[str, float] | None,
    ) -> pl.DataFrame:
        """``read(statements, workspace_id)`` of an optional system table through the SQL warehouse."""
        if not self.warehouse_id:
            raise SourceUnavailable(f"{table} is read through a SQL warehouse and DATABRICKS_WAREHOUSE_ID is not set")
        with self.api() as api:
            try:
                return read(StatementClient(api.client, self.warehouse_id), api.workspace_id)
            finally:
                if stats is not None:
                    stats.update(api.stats())


def _or_unavailable(read: tuple[pl.DataFrame, list[str]]) -> pl.DataFrame:
    """An optional reader's frame, or :class:`SourceUnavailable` with its warning when it could not read."""
    frame, problems = read
    if problems:
        raise SourceUnavailable("; ".join(problems))
    return frame


class AccountWorkspace(dg.Config):
    """One entry of the workspaces file (``cost_assets/workspaces.py``) as resource config: the secrets of
    ``connection`` are ``dg.EnvVar`` of the variables the entry names."""

    name: str
    connection: DatabricksConnection
    workspace_id: str
    cloud: str = "AZURE"
    region: str | None = None
    warehouse_id: str | None = None


class LiveAccount(DatabricksWorkspace):
    """The workspaces of a workspaces file (``COST_ASSETS_WORKSPACES``): each a :class:`LiveWorkspace` with
    its own connection, client and rate limit. The raw assets fetch its :meth:`members`; it has no API of
    its own."""

    workspaces: list[AccountWorkspace]

    def members(self) -> list[DatabricksWorkspace]:
        return [
            LiveWorkspace(
                name=w.name,
                region=w.region,
                connection=w.connection,
                cloud=w.cloud,
                workspace_id=w.workspace_id,
                warehouse_id=w.warehouse_id,
                run_lookback_days=self.run_lookback_days,
                event_lookback_days=self.event_lookback_days,
            )
            for w in self.workspaces
        ]

    def configured_workspace_ids(self) -> list[str] | None:
        return [w.workspace_id for w in self.workspaces]
