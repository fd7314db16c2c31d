"""The one daily partitioning (UTC) every daily table shares, and how to turn a window into days."""

import datetime as dt

import dagster as dg

DAILY = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC")


def window_days(window: dg.TimeWindow) -> list[dt.date]:
    """The UTC days of a partition window: one for a single partition, several for a single-run backfill."""
    first, last = window.start.date(), window.end.date()
    return [first + dt.timedelta(days=i) for i in range((last - first).days)]
