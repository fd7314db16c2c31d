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


# What the late billing sensor and the late cloud bill sensor (cloud_sensor.py) share: both re-run the recent
# days whose source now answers differently from the fingerprint their materialization stored.


def recent_materialized_days(instance: dg.DagsterInstance, key: dg.AssetKey) -> list[dt.date]:
    """The materialized days of ``key`` in the last :data:`LOOKBACK_DAYS` before today, oldest first (today is
    never complete, older days are final)."""
    today = dt.datetime.now(dt.UTC).date()
    return sorted(
        d
        for d in (dt.date.fromisoformat(p) for p in instance.get_materialized_partitions(key))
        if today - dt.timedelta(days=LOOKBACK_DAYS) <= d < today
    )


def stored_fingerprint(instance: dg.DagsterInstance, key: dg.AssetKey, metadata_key: str, day: str) -> dict | None:
    """The fingerprint of ``day`` (under ``metadata_key``) in the latest materialization of that day's partition
    of ``key`` (None: unknown)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1, ascending=False
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    entry = records[0].asset_materialization.metadata.get(metadata_key)
    return (entry.value if entry is not None else {}).get(day)


def changed_day_requests(
    context: dg.SensorEvaluationContext,
    key: dg.AssetKey,
    metadata_key: str,
    fingerprints: dict[str, dict],
    *,
    what: str,
    run_key_prefix: str,
    amount: str,
    reason: str,
) -> list[dg.RunRequest]:
    """A run of ``day``'s partition for each day whose fingerprint now differs from the stored one. The run key
    is ``<run_key_prefix>:<day>:<digest>:<fingerprint[amount]>``: the new fingerprint, so a change is requested
    once; the ``cost_assets/reason`` tag says why the day runs again."""
    requests = []
    for day, now in fingerprints.items():
        stored = stored_fingerprint(context.instance, key, metadata_key, day)
        if now != stored:
            context.log.info(f"{what} of {day} changed: {stored} → {now}")
            requests.append(
                dg.RunRequest(
                    run_key=f"{run_key_prefix}:{day}:{now['digest']}:{now[amount]}",
                    partition_key=day,
                    tags={"cost_assets/reason": reason},
                )
            )
    return requests


@dg.sensor(
    name="late_billing_sensor",
    asset_selection=REFRESH,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-materializes raw/billing_usage and its downstream for exactly the days whose bill "
    "changed (new records, e.g. RETRACTION/RESTATEMENT) after they were materialized.",
)
def late_billing_sensor(context: dg.SensorEvaluationContext, billing: BillingSource):
    days = recent_materialized_days(context.instance, BILLING_USAGE)
    if not days:
        return dg.SkipReason("no materialized billing day in the look-back window")
    requests = changed_day_requests(
        context,
        BILLING_USAGE,
        METADATA_KEY,
        bill_fingerprints(billing.usage(days), days),
        what="billing",
        run_key_prefix="late-billing",
        amount="quantity",
        reason="late_billing",
    )
    if not requests:
        return dg.SkipReason(f"billing unchanged for {len(days)} materialized day(s)")
    return requests
