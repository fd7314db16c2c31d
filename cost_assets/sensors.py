"""Sensors. ``late_billing_sensor``: re-materialize exactly the days whose bill changed after they ran.

Billing lags 12–48 h and corrections (RETRACTION + RESTATEMENT) land days later with a later
``ingestion_date``. Each ``raw/billing_usage`` materialization records, per usage day, the newest
``ingestion_date`` it saw (its *watermark*). On every tick the sensor asks the billing source for the
watermarks of the recent materialized days and requests ``raw/billing_usage`` and everything downstream
for each day whose source watermark moved past the stored one. The run key carries the new watermark,
so a change is requested once.
"""

import datetime as dt

import dagster as dg

from cost_assets.assets.raw import BILLING_USAGE
from cost_assets.resources.billing import BillingSource
from cost_assets.watermarks import METADATA_KEY, ingestion_watermarks

LOOKBACK_DAYS = 14  # corrections arrive within days; older days are considered final
REFRESH = dg.AssetSelection.assets(BILLING_USAGE).downstream()


def _stored_watermark(instance: dg.DagsterInstance, day: str) -> tuple[bool, str | None]:
    """(found, watermark) from the latest materialization of that day's partition."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=BILLING_USAGE, asset_partitions=[day]), limit=1, ascending=False).records
    if not records or records[0].asset_materialization is None:
        return False, None
    entry = records[0].asset_materialization.metadata.get(METADATA_KEY)
    marks = entry.value if entry is not None else {}
    return day in marks, marks.get(day)


@dg.sensor(name="late_billing_sensor", asset_selection=REFRESH, minimum_interval_seconds=3600,
           description="Re-materializes raw/billing_usage and its downstream for exactly the days whose bill "
           "gained records (new ingestion_date, e.g. RETRACTION/RESTATEMENT) after they were materialized.")
def late_billing_sensor(context: dg.SensorEvaluationContext, billing: BillingSource):
    materialized = context.instance.get_materialized_partitions(BILLING_USAGE)
    today = dt.datetime.now(dt.UTC).date()
    days = sorted(d for d in (dt.date.fromisoformat(p) for p in materialized)
                  if today - dt.timedelta(days=LOOKBACK_DAYS) <= d < today)
    if not days:
        return dg.SkipReason("no materialized billing day in the look-back window")
    current = ingestion_watermarks(billing.usage(days), days)
    requests = []
    for day, mark in current.items():
        found, stored = _stored_watermark(context.instance, day)
        if mark is not None and (not found or stored is None or mark > stored):
            context.log.info(f"billing of {day} changed: ingested up to {mark}, stored up to {stored}")
            requests.append(dg.RunRequest(run_key=f"late-billing:{day}:{mark}", partition_key=day,
                                          tags={"cost_assets/reason": "late_billing"}))
    if not requests:
        return dg.SkipReason(f"billing unchanged for {len(days)} materialized day(s)")
    return requests
