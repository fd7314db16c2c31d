"""``cloud_bill_sensor``: re-materialize the days whose cloud bill changed after they ran.

Cloud cost exports lag a day or two and are re-written as the provider finalizes a month, so the 06:00
daily run usually finds yesterday's cloud bill missing or partial (``cloud_bill_present`` warns). Each
``raw/cloud_costs`` materialization records, per day, a fingerprint of the charges it stored
(``ingest/cloud_bill.day_fingerprints``); on every tick this sensor fingerprints what the export files
answer now for the recent materialized days and requests ``raw/cloud_costs`` and everything downstream for
each day that differs. The run key carries the new fingerprint, so a change is requested once. Registered
with the cloud bill assets (only with ``COST_ASSETS_CLOUD_BILL``); on by default.
"""

import datetime as dt

import dagster as dg

from cost_assets.assets.cloud import CLOUD_COSTS, FINGERPRINTS
from cost_assets.ingest.cloud_bill import day_fingerprints
from cost_assets.ingest.fetch import SourceUnavailable
from cost_assets.ingest.parse import InputError
from cost_assets.resources.cloud_bill import CloudBill
from cost_assets.sensors import LOOKBACK_DAYS

REFRESH = dg.AssetSelection.assets(CLOUD_COSTS).downstream()


def _stored(instance: dg.DagsterInstance, day: str) -> dict | None:
    """The fingerprint of ``day`` in the latest materialization of its partition (None: unknown)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=CLOUD_COSTS, asset_partitions=[day]), limit=1, ascending=False
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    entry = records[0].asset_materialization.metadata.get(FINGERPRINTS)
    return (entry.value if entry is not None else {}).get(day)


@dg.sensor(
    name="cloud_bill_sensor",
    asset_selection=REFRESH,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-materializes raw/cloud_costs and its downstream for exactly the days whose cloud cost "
    "export changed (a late day, a re-export) after they were materialized.",
)
def cloud_bill_sensor(context: dg.SensorEvaluationContext, cloud_bill: CloudBill):
    today = dt.datetime.now(dt.UTC).date()
    days = sorted(
        d
        for d in (dt.date.fromisoformat(p) for p in context.instance.get_materialized_partitions(CLOUD_COSTS))
        if today - dt.timedelta(days=LOOKBACK_DAYS) <= d < today
    )
    if not days:
        return dg.SkipReason("no materialized cloud bill day in the look-back window")
    try:
        frame, _ = cloud_bill.costs(days)
    except (SourceUnavailable, InputError) as e:  # the daily run reports these; a tick does not retry them
        return dg.SkipReason(f"cloud bill not readable: {e}")
    requests = []
    for day, now in day_fingerprints(frame, days).items():
        stored = _stored(context.instance, day)
        if now != stored:
            context.log.info(f"cloud bill of {day} changed: {stored} → {now}")
            requests.append(
                dg.RunRequest(
                    run_key=f"cloud-bill:{day}:{now['digest']}:{now['effective_cost']}",
                    partition_key=day,
                    tags={"cost_assets/reason": "late_cloud_bill"},
                )
            )
    return requests or dg.SkipReason(f"cloud bill unchanged for {len(days)} materialized day(s)")
