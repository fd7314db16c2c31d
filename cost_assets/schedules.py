"""The daily schedule, on by default once the daemon runs (``dagster dev`` / ``make ui`` start it).

``daily_pipeline_schedule``: at 06:00 UTC, materialize yesterday's partition of every daily asset (the
price snapshot, the raw tables, the marts). Billing lags 12–48 h, so yesterday's bill is provisional at
06:00; the late-billing sensor re-runs days whose bill changes later.
"""

from typing import Any

import dagster as dg

# What dg.define_asset_job returns; its class (UnresolvedAssetJobDefinition) is not exported by Dagster 1.13.
AssetJob = Any
DAILY_HOUR_UTC = 6


def daily_schedule(job: AssetJob) -> dg.ScheduleDefinition:
    """``job`` is the partitioned daily asset job (an unresolved `define_asset_job` result)."""
    return dg.build_schedule_from_partitioned_job(
        job,
        hour_of_day=DAILY_HOUR_UTC,
        minute_of_hour=0,
        name="daily_pipeline_schedule",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
