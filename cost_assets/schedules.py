"""The daily schedule: at 06:00 UTC, materialize yesterday's partition of the daily pipeline.

Billing lags 12–48 h, so yesterday's bill is provisional at 06:00; the late-billing sensor re-runs days
whose bill changes later.
"""

import dagster as dg


def daily_schedule(job) -> dg.ScheduleDefinition:
    """``job`` is the partitioned daily asset job (an unresolved `define_asset_job` result)."""
    return dg.build_schedule_from_partitioned_job(job, hour_of_day=6, minute_of_hour=0,
                                                  name="daily_pipeline_schedule")
