"""Sensors. ``late_billing_sensor``: re-materialize exactly the days whose bill changed after they ran.

Billing lags 12–48 h and corrections (RETRACTION + RESTATEMENT) land days later with a later
``ingestion_date``. Each ``raw/billing_usage`` materialization records, per usage day, a fingerprint of
the records it saw (newest ingestion date, count, net quantity, a digest of record ids; see
``watermarks.py``). On every tick the sensor fingerprints the billing source's current records of the
recent materialized days and requests ``raw/billing_usage`` and everything downstream for each day whose
fingerprint differs from the stored one. The run key carries the new fingerprint, so a change is
requested once. On by default: it ticks as soon as the daemon runs.
"""

import datetime as dt

import dagster as dg

from cost_assets.assets.raw import BILLING_USAGE
from cost_assets.resources.billing import BillingSource
from cost_assets.watermarks import METADATA_KEY, bill_fingerprints

LOOKBACK_DAYS = 14  # corrections arrive within days; older days are considered final
REFRESH = dg.AssetSelection.assets(BILLING_USAGE).downstream()


def _stored_fingerprint(instance: dg.DagsterInstance, day: str) -> dict | None:
    """The fingerprint of ``day`` in the latest materialization of that day's partition (None: unknown)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=BILLING_USAGE, asset_partitions=[day]), limit=1, ascending=False
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    entry = records[0].asset_materialization.metadata.get(METADATA_KEY)
    return (entry.value if entry is not None else {}).get(day)


@dg.sensor(
    name="late_billing_sensor",
    asset_selection=REFRESH,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-materializes raw/billing_usage and its downstream for exactly the days whose bill "
    "changed (new records, e.g. RETRACTION/RESTATEMENT) after they were materialized.",
)
def late_billing_sensor(context: dg.SensorEvaluationContext, billing: BillingSource):
    materialized = context.instance.get_materialized_partitions(BILLING_USAGE)
    today = dt.datetime.now(dt.UTC).date()
    days = sorted(
        d
        for d in (dt.date.fromisoformat(p) for p in materialized)
        if today - dt.timedelta(days=LOOKBACK_DAYS) <= d < today
    )
    if not days:
        return dg.SkipReason("no materialized billing day in the look-back window")
    requests = []
    for day, now in bill_fingerprints(billing.usage(days), days).items():
        stored = _stored_fingerprint(context.instance, day)
        if now != stored:
            context.log.info(f"billing of {day} changed: {stored} → {now}")
            requests.append(
                dg.RunRequest(
                    run_key=f"late-billing:{day}:{now['digest']}:{now['quantity']}",
                    partition_key=day,
                    tags={"cost_assets/reason": "late_billing"},
                )
            )
    if not requests:
        return dg.SkipReason(f"billing unchanged for {len(days)} materialized day(s)")
    return requests
