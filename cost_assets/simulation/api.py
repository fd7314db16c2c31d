"""The simulated workspace answering the pipeline's API calls in-process (no HTTP).

Same payloads as the mock HTTP server, minus paging and the network, so the in-process path is fast and
the live parsers are still what reads them.
"""

import bisect
from collections.abc import Iterator
from functools import cached_property

from cost_assets.simulation import views
from cost_assets.simulation.world import WorldConfig


class SimulatedApi:
    """`cost_assets.ingest.fetch.WorkspaceApi` over a generated world."""

    def __init__(self, config: WorldConfig):
        self.config = config
        self.world = views.world_for(config)
        self.workspace_id = config.workspace_id
        self.cloud = config.cloud

    @cached_property
    def _runs_by_start(self) -> tuple[list[int], list]:
        runs = sorted(self.world.runs, key=lambda r: (r.start, r.run_id))
        return [r.start for r in runs], runs

    def list_runs(self, start_time_from: int, start_time_to: int) -> Iterator[dict]:
        starts, runs = self._runs_by_start
        lo = bisect.bisect_left(starts, start_time_from)
        hi = bisect.bisect_right(starts, start_time_to)
        for run in reversed(runs[lo:hi]):  # newest first, like the real API
            yield views.run_payload(self.world, run)

    def get_job(self, job_id: int) -> dict:
        return views.job_payload(self.world, self.world.jobs[job_id])

    def get_cluster(self, cluster_id: str) -> dict:
        return views.cluster_payload(self.world, cluster_id)

    def list_clusters(self) -> list[dict]:
        return [views.cluster_payload(self.world, cid) for cid in sorted(self.world.clusters)]

    def cluster_events(self, cluster_id: str, start_time: int, end_time: int) -> list[dict]:
        return [e for e in views.cluster_events(self.world, cluster_id) if start_time <= e["timestamp"] <= end_time]

    def serving_requests(self, start_time: int, end_time: int) -> list[dict]:
        return views.serving_rows(self.world, start_time, end_time)
