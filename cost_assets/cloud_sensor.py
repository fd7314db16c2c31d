"""``cloud_bill_sensor``: re-materialize the days whose cloud bill changed after they ran.

Cloud cost exports lag a day or two and are re-written as the provider finalizes a month, so the 06:00
daily run usually finds yesterday's cloud bill missing or partial (``cloud_bill_present`` warns). Each
``raw/cloud_costs`` materialization records, per day, a fingerprint of the charges it stored
(``ingest/cloud_bill.day_fingerprints``); on every tick this sensor fingerprints what the export files
answer now for the recent materialized days and requests ``raw/cloud_costs`` and everything downstream for
each day that differs. The run key carries the new fingerprint, so a change is requested once. Registered
with the cloud bill assets (only with ``COST_ASSETS_CLOUD_BILL``); on by default.
"""

import dagster as dg

from cost_assets.assets.cloud import CLOUD_COSTS, FINGERPRINTS
from cost_assets.ingest.cloud_bill import day_fingerprints
from cost_assets.ingest.fetch import SourceUnavailable
from cost_assets.ingest.parse import InputError
from cost_assets.resources.cloud_bill import CloudBill
from cost_assets.sensors import changed_day_requests, recent_materialized_days

REFRESH = dg.AssetSelection.assets(CLOUD_COSTS).downstream()


@dg.sensor(
    name="cloud_bill_sensor",
    asset_selection=REFRESH,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-materializes raw/cloud_costs and its downstream for exactly the days whose cloud cost "
    "export changed (a late day, a re-export) after they were materialized.",
)
def cloud_bill_sensor(context: dg.SensorEvaluationContext, cloud_bill: CloudBill):
    days = recent_materialized_days(context.instance, CLOUD_COSTS)
    if not days:
        return dg.SkipReason("no materialized cloud bill day in the look-back window")
    try:
        frame, _ = cloud_bill.costs(days)
    except (SourceUnavailable, InputError) as e:  # the daily run reports these; a tick does not retry them
        return dg.SkipReason(f"cloud bill not readable: {e}")
    requests = changed_day_requests(
        context,
        CLOUD_COSTS,
        FINGERPRINTS,
        day_fingerprints(frame, days),
        what="cloud bill",
        run_key_prefix="cloud-bill",
        amount="effective_cost",
        reason="late_cloud_bill",
    )
    return requests or dg.SkipReason(f"cloud bill unchanged for {len(days)} materialized day(s)")
