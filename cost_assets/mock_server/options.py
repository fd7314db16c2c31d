"""How the mock workspace answers: :class:`MockOptions`.

What live workspaces do to a pipeline that the world itself never does is configuration (each option
has a CLI flag): jobs deleted and runs still active; clusters purged (``clusters/get`` 404, or 400 on
older workspaces, while their events are still served); runs and events past their retention, against a
clock (``now``) tests can freeze; system schemas that are not enabled or not granted; instance pools and
jobs the caller may not view (403); and days whose bill is still empty. Everything defaults to a healthy
workspace that keeps all history and grants everything.
"""

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Literal

from cost_assets.mock_server.faults import Faults
from cost_assets.simulation.world import WorldConfig

DEFAULT_TOKEN = "dapi-mock-token"


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
    # INLINE results larger than this (JSON bytes) fail as a warehouse's over 25 MiB do; EXTERNAL_LINKS
    # URLs expire this many seconds after they are handed out (a warehouse's live ≤ 15 min).
    sql_inline_limit_bytes: int = 25 * 1024 * 1024
    sql_link_ttl_s: float = 900.0
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
    # both, as a Databricks warehouse answers a FAILED statement (the Statement Execution API's
    # ServiceErrorCode has no PERMISSION_DENIED member).
    missing_system_schemas: tuple[str, ...] = ()
    denied_system_schemas: tuple[str, ...] = ()
    # 403 PERMISSION_DENIED: instance-pools/get for every pool, and instance-pools/list; jobs/get for these job
    # ids (their runs stay listed).
    forbidden_pools: bool = False
    forbidden_jobs: tuple[int, ...] = ()
    # ISO dates whose bill is still empty: system.billing.usage has no rows of these usage dates and the
    # Account API download has none of them (header only when every requested day is empty).
    empty_bill_days: tuple[str, ...] = ()
    request_log: str | None = None  # a file: one JSON line per request (method, path, status, fault)
    # The bill is the account's: system.billing.usage and the Account API download serve the usage of these
    # worlds (a mock account's workspaces, ``mock_server/account.py``); empty: this workspace's world only.
    account_bill: tuple[WorldConfig, ...] = ()
    faults: Faults = field(default_factory=Faults)

    @property
    def billed_worlds(self) -> tuple[WorldConfig, ...]:
        """The worlds whose usage the account's bill holds."""
        return self.account_bill or (self.world,)

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
