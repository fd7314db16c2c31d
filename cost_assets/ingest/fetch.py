"""What to ask a workspace for one day, whoever answers (live HTTP client or simulated world).

The plan is the same for both:

* runs started in the look-back window up to the day's end (runs/list filters on *start* time only, so
  runs that began earlier but ran into the day need the look-back), and their tasks overlapping the day;
* the jobs of those runs; a job that no longer exists (deleted, or the anonymous job of a runs/submit
  run: jobs/get answers 404 ``RESOURCE_DOES_NOT_EXIST``) becomes a stub without name or tags and is
  counted in ``stats["jobs_missing"]``; any other failure still fails the day;
* the clusters: every cluster the day's tasks ran on, the all-purpose clusters that may have been alive
  (idle clusters cost money too), and the other job clusters of the listed runs that were up during the
  day by clusters/get (``start_time`` before 24:00, ``terminated_time`` absent or at/after 00:00): above
  all those of task runs that ended before 00:00 but whose tear-down crossed midnight (their VMs still
  cost), and those created before 24:00 for tasks that only started after it;
* every instance pool of the workspace (instance-pools/list, one call): a warm pool no cluster of the day
  draws from still keeps its idle VMs; optional — a 403/404 only warns (see :class:`SourceUnavailable`);
* each cluster's events over the day with a look-back that fixes its state at 00:00: the fixed window of
  ``event_lookback_days`` first; when that window holds no lifecycle event before 00:00 (a cluster up
  longer than the window, e.g. a fixed-size shared cluster with no events for days) the state at
  midnight is asked for directly, newest first, until the last lifecycle event (see
  :func:`_walk_back`).

A listed all-purpose cluster is kept when it was up at 00:00 (its look-back is not empty) or has events
during the day; clusters the day's tasks ran on are always kept.
"""

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from cost_assets.ingest import parse
from cost_assets.timeutil import DAY_MS, day_start_ms

# The event types that fix a cluster's state and size at an instant (lifecycle + resize), asked for when
# walking back from 00:00; parse.LIFECYCLE_EVENTS among them end the walk.
STATE_EVENT_TYPES = (
    "CREATING",
    "STARTING",
    "RESTARTING",
    "RUNNING",
    "RESIZING",
    "UPSIZE_COMPLETED",
    "NODES_LOST",
    "TERMINATING",
)
WALK_BACK_PAGE = 25  # events per clusters/events page when walking back (most walks end on the first page)
WALK_BACK_MAX_EVENTS = 500  # at most 20 pages per cluster; past that the look-back is kept as found


class NotFound(LookupError):
    """The object does not exist (any more): a deleted job or pool, or a cluster purged after its retention
    (clusters/get answers 404 ``RESOURCE_DOES_NOT_EXIST`` or 400 ``INVALID_PARAMETER_VALUE`` "Cluster ...
    does not exist"). Fetching works around it (a stub job, a cluster from its run's spec)."""


class NotPermitted(LookupError):
    """The principal may not read this object (HTTP 403 on ``jobs/get`` or ``instance-pools/get``): like a
    missing object, the day is built without it and the asset says so in a WARN check."""


class SourceUnavailable(RuntimeError):
    """An optional source is absent or not granted (no SQL warehouse, no ``system.serving`` schema, no
    grant): the asset keeps what is stored and warns; only runs, clusters and the bill fail a day."""


class WorkspaceApi(Protocol):
    """The few Databricks calls the pipeline needs; paging is the implementation's business."""

    workspace_id: str
    cloud: str

    def list_runs(self, start_time_from: int, start_time_to: int) -> Iterator[dict]:
        """runs/list?expand_tasks=true over [from, to] (inclusive, epoch ms), every page, arrays complete."""
        ...

    def get_job(self, job_id: int) -> dict:
        """jobs/get, every page; raises :class:`NotFound` if the job does not exist (any more),
        :class:`NotPermitted` if the principal may not see it."""
        ...

    def get_cluster(self, cluster_id: str) -> dict:
        """clusters/get; raises :class:`NotFound` for a cluster purged after its retention."""
        ...

    def list_clusters(self) -> list[dict]: ...

    def get_instance_pool(self, instance_pool_id: str) -> dict:
        """instance-pools/get; :class:`NotFound` for a pool that no longer exists, :class:`NotPermitted` for
        one the principal may not read."""
        ...

    def list_instance_pools(self) -> list[dict]:
        """instance-pools/list: every pool of the workspace; :class:`SourceUnavailable` when the principal
        may not list them (403) or the endpoint is absent (404)."""
        ...

    def cluster_events(self, cluster_id: str, start_time: int, end_time: int) -> list[dict]:
        """clusters/events over [start, end] (inclusive, epoch ms), oldest first, every page."""
        ...

    def cluster_events_before(
        self, cluster_id: str, end_time: int, event_types: Iterable[str], limit: int
    ) -> Iterator[dict]:
        """clusters/events of ``event_types`` at or before ``end_time`` (epoch ms), **newest first**
        (``order=DESC``), ``limit`` per page. Lazy: the caller stops when it has seen enough, and pages
        it does not reach are never requested."""
        ...

    def serving_requests(self, start_time: int, end_time: int) -> list[dict]:
        """system.serving.endpoint_usage rows with request_time in [start, end)."""
        ...


@dataclass
class WorkspaceDay:
    """The workspace's raw tables for one or more days, plus what fetching them cost."""

    job_runs: pl.DataFrame
    jobs: pl.DataFrame
    clusters: pl.DataFrame
    cluster_events: pl.DataFrame
    stats: dict[str, float] = field(default_factory=dict)  # call counts, retries, throttled seconds
    # What could not be read and was worked around (a purged cluster, a job or pool not granted), one line
    # each: the raw asset turns them into WARN checks.
    warnings: list[str] = field(default_factory=list)
    # The workspace the rows are of (the guard compares them with that workspace's stored rows only).
    workspace_id: str | None = None
    # instance-pools/list per day (optional: empty when not read), and the days it could not be read (their
    # stored rows are kept).
    instance_pools: pl.DataFrame = field(default_factory=lambda: parse.instance_pools_frame([], dt.date.min, "", ""))
    pools_unread: list[dt.date] = field(default_factory=list)


def _alive_all_purpose(cluster: dict, lo_ms: int, hi_ms: int) -> bool:
    """An all-purpose cluster that may have been up during [lo, hi): created before hi, not gone before lo."""
    if cluster.get("cluster_source") == "JOB":
        return False
    started = cluster.get("start_time") or 0
    terminated = cluster.get("terminated_time") or 0
    return started < hi_ms and (not terminated or terminated >= lo_ms or cluster.get("state") == "RUNNING")


def _job_clusters_of(runs: Iterable[Mapping]) -> set[str]:
    """The clusters the runs' tasks ran on, except existing (all-purpose) ones: job clusters."""
    out: set[str] = set()
    for run in runs:
        # A legacy single-task run has no ``tasks``: its cluster is at the top (cluster_spec + cluster_instance).
        for task in run.get("tasks") or [
            {**(run.get("cluster_spec") or {}), "cluster_instance": run.get("cluster_instance")}
        ]:
            cluster_id = (task.get("cluster_instance") or {}).get("cluster_id")
            if cluster_id and not task.get("existing_cluster_id"):
                out.add(cluster_id)
    return out


def _up_during(cluster: Mapping, lo_ms: int, hi_ms: int) -> bool:
    """By the clusters/get snapshot, up at some time in [lo, hi): started before hi, and not terminated
    yet or terminated at or after lo (a job cluster has a single life)."""
    terminated = cluster.get("terminated_time") or 0
    return (cluster.get("start_time") or 0) < hi_ms and (not terminated or terminated >= lo_ms)


def _walk_back(api: WorkspaceApi, cluster_id: str, end_time: int) -> tuple[list[dict] | None, int]:
    """The state-fixing events at or before ``end_time`` from the last lifecycle event on, oldest first, or
    None if that event is TERMINATING (the cluster was down); and how many events were read.

    Newest first, stopping at the first lifecycle event or after WALK_BACK_MAX_EVENTS (then the events
    found are kept: they still show an up cluster, best effort like ``parse.trim_lookback``)."""
    found: list[dict] = []
    newest_first = api.cluster_events_before(cluster_id, end_time, STATE_EVENT_TYPES, WALK_BACK_PAGE)
    for event in itertools.islice(newest_first, WALK_BACK_MAX_EVENTS):
        found.append(event)
        if event.get("type") in parse.LIFECYCLE_EVENTS:
            break
    if found and found[-1].get("type") == "TERMINATING":
        return None, len(found)
    return found[::-1], len(found)


def _events_with_lookback(
    api: WorkspaceApi, cluster_id: str, window_lo: int, lo_ms: int, hi_ms: int, stats: dict[str, float]
) -> list[dict]:
    """The cluster's events of the day plus the look-back that fixes its state at 00:00 (``lo_ms``)."""
    raw = api.cluster_events(cluster_id, window_lo, hi_ms - 1)
    lifecycle_before = any(e["timestamp"] < lo_ms and e.get("type") in parse.LIFECYCLE_EVENTS for e in raw)
    # CREATING is a cluster's very first event: with it in the window there is nothing older to find.
    if lifecycle_before or any(e.get("type") == "CREATING" for e in raw):
        return parse.trim_lookback(raw, lo_ms)
    # No lifecycle event in the window before 00:00: the cluster's state at midnight was set earlier.
    # Walk back from just before the window (its own events are already here) to the last lifecycle event.
    older, read = _walk_back(api, cluster_id, window_lo - 1)
    stats["clusters_walked_back"] += 1
    stats["events_walked_back"] += read
    if older is None:  # down before the window and no lifecycle event since: down at 00:00, no look-back
        return [e for e in raw if e["timestamp"] >= lo_ms]
    return older + raw  # the window's events in full (no lifecycle event before 00:00 to trim at)


def fetch_day(
    api: WorkspaceApi, day: dt.date, run_lookback_days: int = 2, event_lookback_days: int = 2
) -> WorkspaceDay:
    """Fetch one UTC day: runs overlapping it, their jobs, the clusters involved and their events."""
    lo_ms = day_start_ms(day)
    hi_ms = lo_ms + DAY_MS
    window_lo = lo_ms - event_lookback_days * DAY_MS
    stats: dict[str, float] = {
        "jobs_missing": 0,
        "jobs_not_permitted": 0,
        "pools_missing": 0,
        "pools_not_permitted": 0,
        "job_clusters_up_without_tasks": 0,
        "clusters_walked_back": 0,
        "events_walked_back": 0,
    }
    warnings: list[str] = []
    runs = list(api.list_runs(lo_ms - run_lookback_days * DAY_MS, hi_ms - 1))
    job_runs = parse.job_runs_frame(runs, day, api.workspace_id)

    listed = {c["cluster_id"]: c for c in api.list_clusters() if _alive_all_purpose(c, lo_ms, hi_ms)}
    used = set(job_runs["cluster_id"].drop_nulls().to_list())
    details: dict[str, Mapping] = {}
    not_found: set[str] = set()
    for cid in sorted(used | set(listed)):
        try:
            details[cid] = listed[cid] if cid in listed else api.get_cluster(cid)
        except NotFound as e:  # purged after its retention: rebuild what its runs say about it
            details[cid] = cluster_from_runs(runs, cid)
            not_found.add(cid)
            warnings.append(
                f"clusters/get: cluster {cid} not found ({e}); estimated from its run's cluster spec"
                if details[cid].get("node_type_id")
                else f"clusters/get: cluster {cid} not found ({e}) and no run carries its spec: unpriced"
            )
    stats["clusters_not_found"] = len(not_found)
    # The listed runs' other job clusters (their tasks ended before 00:00, or start after 24:00) that were
    # up during the day anyway, e.g. a tear-down that crossed midnight: their VMs cost money on this day.
    for cid in sorted(_job_clusters_of(runs) - details.keys()):
        try:
            cluster = api.get_cluster(cid)
        except NotFound:  # purged: its tear-down (if any crossed midnight) cannot be known
            continue
        if _up_during(cluster, lo_ms, hi_ms):
            details[cid] = cluster
            stats["job_clusters_up_without_tasks"] += 1

    events: list[dict] = []
    for cid in sorted(details):
        try:
            events.extend(_events_with_lookback(api, cid, window_lo, lo_ms, hi_ms, stats))
        except NotFound:  # events of a purged cluster may be gone with it
            continue
    events_frame = parse.cluster_events_frame(events, day, api.workspace_id)
    # Kept: clusters the day's tasks ran on, and the others when they have a row: an event during the
    # day or a look-back (up at 00:00). A listed cluster that was down all day has neither.
    kept = set(events_frame["cluster_id"].to_list()) | used
    kept_details = [c for cid, c in sorted(details.items()) if cid in kept]
    clusters = parse.clusters_frame(
        kept_details,
        day,
        api.workspace_id,
        api.cloud,
        pools=_pools_of(api, kept_details, stats, warnings),
        not_found=not_found,
    )
    # Every pool, also those no cluster of the day draws from (their warm VMs cost too); optional.
    pool_list: list[dict] = []
    pools_unread: list[dt.date] = []
    try:
        pool_list = api.list_instance_pools()
    except SourceUnavailable as e:
        pools_unread.append(day)
        warnings.append(f"instance-pools/list: not read ({e}); stored pools kept, unused pools not estimated")
    listed_pools = parse.instance_pools_frame(pool_list, day, api.workspace_id, api.cloud)
    jobs = parse.jobs_frame(
        [_job_or_stub(api, j, stats, warnings) for j in sorted(set(job_runs["job_id"].to_list()))],
        day,
        api.workspace_id,
    )
    return WorkspaceDay(
        job_runs=job_runs,
        jobs=jobs,
        clusters=clusters,
        cluster_events=events_frame,
        instance_pools=listed_pools,
        pools_unread=pools_unread,
        stats={
            "runs_listed": len(runs),
            "clusters": clusters.height,
            "jobs": jobs.height,
            "events": events_frame.height,
            "instance_pools": listed_pools.height,
            **stats,
        },
        warnings=[f"{day}: {w}" for w in warnings],
    )


def cluster_from_runs(runs: Iterable[Mapping], cluster_id: str) -> dict:
    """What the runs say about a cluster that clusters/get no longer knows: the ``new_cluster`` spec of the
    task that ran on it (directly, through its ``job_cluster_key``, or a legacy run's ``cluster_spec``), up
    from its first task's start to its last task's end. An all-purpose cluster (``existing_cluster_id``)
    has no spec in a run: the result has no node type, and its cost is flagged unpriced, never $0."""
    spec: Mapping = {}
    starts, ends, name = [], [], None
    for run in runs:
        clusters_by_key = {c.get("job_cluster_key"): c.get("new_cluster") or {} for c in run.get("job_clusters") or []}
        for task in parse.tasks_of(run):
            if (task.get("cluster_instance") or {}).get("cluster_id") != cluster_id:
                continue
            spec = spec or task.get("new_cluster") or clusters_by_key.get(task.get("job_cluster_key")) or {}
            if not task.get("existing_cluster_id"):
                name = name or f"job-{run.get('job_id')}-run-{run.get('run_id')}"
            starts.append(task.get("start_time") or 0)
            ends.append(task.get("end_time") or 0)
    return {
        **spec,
        "cluster_id": cluster_id,
        "cluster_name": name,
        "cluster_source": "JOB" if name else None,
        "state": "TERMINATED",
        "start_time": min(starts, default=None) or None,
        "terminated_time": max(ends, default=None) or None,
    }


def _pools_of(api: WorkspaceApi, clusters: list[dict], stats: dict[str, float], warnings: list[str]) -> dict[str, dict]:
    """instance-pools/get for each pool the day's clusters draw from; a vanished pool, or one the principal
    may not read (403), is left out (its idle VMs are then not estimated: a WARN says so)."""
    ids = {c.get(k) for c in clusters for k in ("instance_pool_id", "driver_instance_pool_id")} - {None, ""}
    pools = {}
    for pool_id in sorted(ids):
        try:
            pools[pool_id] = api.get_instance_pool(pool_id)
        except NotFound:
            stats["pools_missing"] += 1
        except NotPermitted as e:
            stats["pools_not_permitted"] += 1
            warnings.append(f"instance-pools/get: pool {pool_id} not readable ({e}); its idle VMs are not estimated")
    return pools


def _job_or_stub(api: WorkspaceApi, job_id: int, stats: dict[str, float], warnings: list[str]) -> dict:
    """jobs/get, or for a job that no longer exists (or that the principal may not see) a stub: no name, no
    tags (its runs stay costed, as untagged)."""
    try:
        return api.get_job(job_id)
    except NotFound:
        stats["jobs_missing"] += 1
    except NotPermitted as e:
        stats["jobs_not_permitted"] += 1
        warnings.append(f"jobs/get: job {job_id} not readable ({e}); its runs are costed without its tags")
    return {"job_id": job_id, "settings": {}}


def fetch_days(api: WorkspaceApi, days: list[dt.date], **kwargs: int) -> WorkspaceDay:
    """Several days (a single-run backfill): each day fetched as on its own, then stacked."""
    parts = [fetch_day(api, d, **kwargs) for d in days]
    if not parts:
        raise ValueError("fetch_days needs at least one day")
    stats: dict[str, float] = {}
    for p in parts:
        for k, v in p.stats.items():
            stats[k] = stats.get(k, 0) + v
    return WorkspaceDay(
        job_runs=pl.concat([p.job_runs for p in parts]),
        jobs=pl.concat([p.jobs for p in parts]),
        clusters=pl.concat([p.clusters for p in parts]),
        cluster_events=pl.concat([p.cluster_events for p in parts]),
        instance_pools=pl.concat([p.instance_pools for p in parts]),
        pools_unread=[d for p in parts for d in p.pools_unread],
        stats=stats,
        warnings=[w for p in parts for w in p.warnings],
        workspace_id=api.workspace_id,
    )
