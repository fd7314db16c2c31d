"""Schedules, on by default once the daemon runs (``dagster dev`` / ``make ui`` start it).

- ``daily_pipeline_schedule``: at 06:00 UTC, materialize yesterday's partition of the daily pipeline.
  Billing lags 12–48 h, so yesterday's bill is provisional at 06:00; the late-billing sensor re-runs days
  whose bill changes later.
- ``reference_prices_schedule``: at 05:00 UTC, refresh the unpartitioned price tables the marts read, so
  the 06:00 run prices yesterday with today's sheet and a fresh instance has them before its first day.
"""

from typing import Any

import dagster as dg

# What dg.define_asset_job returns; its class (UnresolvedAssetJobDefinition) is not exported by Dagster 1.13.
AssetJob = Any
DAILY_HOUR_UTC = 6
REFERENCE_HOUR_UTC = 5  # before the daily run, which reads ref/*


def daily_schedule(job: AssetJob) -> dg.ScheduleDefinition:
    """``job`` is the partitioned daily asset job (an unresolved `define_asset_job` result)."""
    return dg.build_schedule_from_partitioned_job(job, hour_of_day=DAILY_HOUR_UTC, minute_of_hour=0,
                                                  name="daily_pipeline_schedule",
                                                  default_status=dg.DefaultScheduleStatus.RUNNING)


def reference_schedule(job: AssetJob) -> dg.ScheduleDefinition:
    """``job`` materializes the unpartitioned reference assets (ref/dbu_prices, ref/instance_types)."""
    return dg.ScheduleDefinition(name="reference_prices_schedule", job=job,
                                 cron_schedule=f"0 {REFERENCE_HOUR_UTC} * * *", execution_timezone="UTC",
                                 default_status=dg.DefaultScheduleStatus.RUNNING,
                                 description="Refreshes the price tables daily, an hour before the daily run.")
