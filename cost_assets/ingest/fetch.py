"""What to ask a workspace for one day, whoever answers (live HTTP client or simulated world).

The plan is the same for both: runs started in the look-back window up to the day's end (runs/list
filters on *start* time only, so runs that began earlier but ran into the day need the look-back), their
tasks overlapping the day, the jobs of those runs, every cluster they ran on plus the all-purpose
clusters that were alive (idle clusters cost money too), and each cluster's events over the day with a
look-back that fixes its state at 00:00.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from cost_assets.ingest import parse

DAY_MS = 86_400_000


class WorkspaceApi(Protocol):
    """The few Databricks calls the pipeline needs; paging is the implementation's business."""

    workspace_id: str
    cloud: str

    def list_runs(self, start_time_from: int, start_time_to: int) -> Iterator[dict]:
        """runs/list?expand_tasks=true over [from, to] (inclusive, epoch ms), every page, arrays complete."""
        ...

    def get_job(self, job_id: int) -> dict: ...

    def get_cluster(self, cluster_id: str) -> dict: ...

    def list_clusters(self) -> list[dict]: ...

    def cluster_events(self, cluster_id: str, start_time: int, end_time: int) -> list[dict]:
        """clusters/events over [start, end] (inclusive, epoch ms), oldest first, every page."""
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


def _alive_all_purpose(cluster: dict, lo_ms: int, hi_ms: int) -> bool:
    """An all-purpose cluster that may have been up during [lo, hi): created before hi, not gone before lo."""
    if cluster.get("cluster_source") == "JOB":
        return False
    started = cluster.get("start_time") or 0
    terminated = cluster.get("terminated_time") or 0
    return started < hi_ms and (not terminated or terminated >= lo_ms or cluster.get("state") == "RUNNING")


def fetch_day(api: WorkspaceApi, day: dt.date, run_lookback_days: int = 2, event_lookback_days: int = 2
              ) -> WorkspaceDay:
    """Fetch one UTC day: runs overlapping it, their jobs, the clusters involved and their events."""
    lo, _ = parse.day_bounds(day)
    lo_ms = parse.to_ms(lo)
    hi_ms = lo_ms + DAY_MS
    runs = list(api.list_runs(lo_ms - run_lookback_days * DAY_MS, hi_ms - 1))
    job_runs = parse.job_runs_frame(runs, day, api.workspace_id)

    listed = {c["cluster_id"]: c for c in api.list_clusters() if _alive_all_purpose(c, lo_ms, hi_ms)}
    used = set(job_runs["cluster_id"].drop_nulls().to_list())
    details = [listed[cid] if cid in listed else api.get_cluster(cid) for cid in sorted(used | set(listed))]

    events: list[dict] = []
    for c in details:
        raw = api.cluster_events(c["cluster_id"], lo_ms - event_lookback_days * DAY_MS, hi_ms - 1)
        events.extend(parse.trim_lookback(raw, lo_ms))
    events_frame = parse.cluster_events_frame(events, day, api.workspace_id)
    # A listed all-purpose cluster without a single event near the day was not up: leave it out.
    with_events = set(events_frame["cluster_id"].to_list()) | used
    clusters = parse.clusters_frame([c for c in details if c["cluster_id"] in with_events], day,
                                    api.workspace_id, api.cloud)
    job_ids = sorted(set(job_runs["job_id"].to_list()))
    jobs = parse.jobs_frame([api.get_job(j) for j in job_ids], day, api.workspace_id)
    return WorkspaceDay(job_runs=job_runs, jobs=jobs, clusters=clusters, cluster_events=events_frame,
                        stats={"runs_listed": len(runs), "clusters": clusters.height, "jobs": jobs.height,
                               "events": events_frame.height})


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
        job_runs=pl.concat([p.job_runs for p in parts]), jobs=pl.concat([p.jobs for p in parts]),
        clusters=pl.concat([p.clusters for p in parts]),
        cluster_events=pl.concat([p.cluster_events for p in parts]), stats=stats)
