"""The one daily partitioning (UTC) every daily table shares, and how to turn a window into days.

The assets are declared with :data:`DAILY` (first day :data:`DEFAULT_START`); ``build_defs()`` moves them all
to the first day of ``COST_ASSETS_PARTITION_START`` with :func:`starting`, so the setting is read when the
definitions are built, never at import. The first day only bounds what can be asked for (the UI lists
partitions from it, a backfill cannot reach before it); nothing is computed for a day until it is asked for.
"""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

DEFAULT_START = dt.date(2025, 1, 1)


def daily(start: dt.date) -> dg.DailyPartitionsDefinition:
    """Daily UTC partitions from ``start``."""
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC")


DAILY = daily(DEFAULT_START)


def starting(assets: Sequence[dg.AssetsDefinition], start: dt.date) -> list[dg.AssetsDefinition]:
    """``assets`` with every spec partitioned by :data:`DAILY` moved to daily partitions from ``start``
    (their checks, backfill policy and partition mappings unchanged); other assets are returned as they are."""
    if start == DEFAULT_START:
        return list(assets)
    moved = daily(start)

    def move(spec: dg.AssetSpec) -> dg.AssetSpec:
        return spec.replace_attributes(partitions_def=moved) if spec.partitions_def == DAILY else spec

    return [asset.map_asset_specs(move) if asset.partitions_def == DAILY else asset for asset in assets]


def window_days(window: dg.TimeWindow) -> list[dt.date]:
    """The UTC days of a partition window: one for a single partition, several for a single-run backfill."""
    first, last = window.start.date(), window.end.date()
    return [first + dt.timedelta(days=i) for i in range((last - first).days)]
