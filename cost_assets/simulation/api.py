"""The simulated workspace answering the pipeline's API calls in-process (no HTTP).

Same payloads as the mock HTTP server, minus paging and the network, so the in-process path is fast and
the live parsers are still what reads them.
"""

import bisect
from collections.abc import Iterable, Iterator
from functools import cached_property

from cost_assets.ingest.fetch import NotFound
from cost_assets.simulation import views
from cost_assets.simulation.world import WorldConfig


class SimulatedApi:
    """`cost_assets.ingest.fetch.WorkspaceApi` over a generated world.

    ``deleted_jobs``: job ids jobs/get no longer knows (their runs are still listed), as after a job was
    deleted; the mock server's ``MockOptions.deleted_jobs`` is the same knob over HTTP.
    """

    def __init__(self, config: WorldConfig, deleted_jobs: Iterable[int] = ()):
        self.config = config
        self.world = views.world_for(config)
        self.workspace_id = config.workspace_id
        self.cloud = config.cloud
        self.deleted_jobs = frozenset(deleted_jobs)
        # Payloads built once per instance: the world does not change, and a window's daily fetches ask for
        # the same runs (look-back), jobs and clusters day after day (90 days rebuilt them ~400k times).
        self._payloads: dict[tuple[str, object], dict] = {}

    def _payload(self, kind: str, key: object, build) -> dict:
        if (kind, key) not in self._payloads:
            self._payloads[(kind, key)] = build()
        return self._payloads[(kind, key)]

    @cached_property
    def _runs_by_start(self) -> tuple[list[int], list]:
        runs = sorted(self.world.runs, key=lambda r: (r.start, r.run_id))
        return [r.start for r in runs], runs

    def list_runs(self, start_time_from: int, start_time_to: int) -> Iterator[dict]:
        starts, runs = self._runs_by_start
        lo = bisect.bisect_left(starts, start_time_from)
        hi = bisect.bisect_right(starts, start_time_to)
        for run in reversed(runs[lo:hi]):  # newest first, like the real API
            yield self._payload("run", run.run_id, lambda run=run: views.run_payload(self.world, run))

    def get_job(self, job_id: int) -> dict:
        if job_id not in self.world.jobs or job_id in self.deleted_jobs:
            raise NotFound(f"Job {job_id} does not exist.")
        return self._payload("job", job_id, lambda: views.job_payload(self.world, self.world.jobs[job_id]))

    def get_cluster(self, cluster_id: str) -> dict:
        return self._payload("cluster", cluster_id, lambda: views.cluster_payload(self.world, cluster_id))

    def get_instance_pool(self, instance_pool_id: str) -> dict:
        if instance_pool_id not in self.world.pools:
            raise NotFound(f"instance-pools/get: pool {instance_pool_id} does not exist")
        return views.instance_pool_payload(self.world, instance_pool_id)

    @cached_property
    def _pools_listed(self) -> list[dict]:
        return views.instance_pools_list(self.world)

    def list_instance_pools(self) -> list[dict]:
        """The world's pools as of the window's end (the mock server's instance-pools/list), built once per
        instance as the REST client lists them once."""
        return self._pools_listed

    def list_clusters(self) -> list[dict]:
        """Every cluster, built once per instance (the world does not change; the REST client also lists
        once per instance): rebuilding all of them for each day made a 90-day fetch quadratic."""
        return self._listed

    @cached_property
    def _listed(self) -> list[dict]:
        return [self.get_cluster(cid) for cid in sorted(self.world.clusters)]

    def cluster_events(self, cluster_id: str, start_time: int, end_time: int) -> list[dict]:
        return [e for e in views.cluster_events(self.world, cluster_id) if start_time <= e["timestamp"] <= end_time]

    def cluster_events_before(
        self, cluster_id: str, end_time: int, event_types: Iterable[str], limit: int
    ) -> Iterator[dict]:
        """Newest first, like clusters/events with ``order=DESC`` (no pages in-process: ``limit`` unused)."""
        kinds = frozenset(event_types)
        events = views.cluster_events(self.world, cluster_id)
        return (e for e in reversed(events) if e["timestamp"] <= end_time and (not kinds or e["type"] in kinds))

    @cached_property
    def _requests_by_time(self) -> tuple[list[int], list[int]]:
        requests = self.world.requests
        order = sorted(range(len(requests)), key=lambda i: requests[i]["request_time"])
        return [requests[i]["request_time"] for i in order], order

    def serving_requests(self, start_time: int, end_time: int) -> list[dict]:
        """Requests in [start, end), in the world's order, found by bisection (a scan of every request for
        each day made a 90-day fetch quadratic)."""
        times, order = self._requests_by_time
        picked = sorted(order[bisect.bisect_left(times, start_time) : bisect.bisect_left(times, end_time)])
        return [views.serving_row(self.world.requests[i]) for i in picked]
