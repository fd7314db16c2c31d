"""What every asset of a layer shares: partitions and backfill, retries on sources, freshness of the marts."""

import datetime as dt

import dagster as dg

from cost_assets.partitions import DAILY

# One daily UTC partition per day; a range of days is one run (a single-run backfill), never one per day.
DAILY_ASSET = {"partitions_def": DAILY, "backfill_policy": dg.BackfillPolicy.single_run()}
# The column the IO manager replaces a partition by.
PARTITIONED = {"partition_expr": "usage_date"}
# A second layer over the HTTP client's own retries (429/5xx with backoff within its budget): what outlasts
# them (an outage, a dropped connection) gets two more tries of the step, 5 s then 10 s later, spread by
# jitter so that parallel runs do not retry in step. Failures another try cannot fix — bad input, refused
# credentials, the guard's refusals, a broken contract — raise dg.Failure(allow_retries=False).
SOURCE_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
# The daily run starts at 06:00 UTC and takes minutes: a mart not refreshed in the 24 h before 09:00 UTC
# missed its day, and the UI says so.
MART_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 9 * * *", lower_bound_delta=dt.timedelta(hours=24))
MART_ASSET = {**DAILY_ASSET, "freshness_policy": MART_FRESHNESS}
