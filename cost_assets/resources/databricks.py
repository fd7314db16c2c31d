"""The workspace resource: jobs, runs, clusters, events and serving usage of one Databricks workspace.

Assets annotate the abstract ``DatabricksWorkspace``; the simulated subclass answers in-process from a
generated world (``resources/simulated.py``), and a live subclass talks HTTP. Both hand their payloads
to the same parsers through ``cost_assets.ingest.fetch``.
"""

import datetime as dt

import dagster as dg
import polars as pl

from cost_assets.ingest import fetch, parse


class DatabricksWorkspace(dg.ConfigurableResource):
    """Abstract: subclasses provide ``api()``."""

    run_lookback_days: int = 2  # runs/list filters on start time: look back this far for long runs
    event_lookback_days: int = 2  # cluster events before 00:00 to know each cluster's state at 00:00

    def api(self) -> fetch.WorkspaceApi:
        raise NotImplementedError(f"{type(self).__name__} does not provide a workspace API")

    def fetch(self, days: list[dt.date]) -> fetch.WorkspaceDay:
        """The four workspace tables for ``days`` (runs overlapping each day, their jobs and clusters)."""
        return fetch.fetch_days(self.api(), days, run_lookback_days=self.run_lookback_days,
                                event_lookback_days=self.event_lookback_days)

    def serving_usage(self, days: list[dt.date]) -> pl.DataFrame:
        """Model-serving requests (system.serving.endpoint_usage) of ``days``."""
        api = self.api()
        frames = []
        for day in days:
            lo, hi = parse.day_bounds(day)
            rows = api.serving_requests(parse.to_ms(lo), parse.to_ms(hi))
            frames.append(parse.serving_usage_frame(rows, day, api.workspace_id))
        return pl.concat(frames)
