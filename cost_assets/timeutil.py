"""Time conventions shared by every layer: naive UTC datetimes, epoch milliseconds (the REST APIs), days."""

import datetime as dt

EPOCH = dt.datetime(1970, 1, 1)


def ms_to_dt(ms: int | None) -> dt.datetime | None:
    """Epoch ms → naive UTC datetime; 0 and None mean 'not set' (e.g. end_time of an active run)."""
    return EPOCH + dt.timedelta(milliseconds=int(ms)) if ms else None


def to_ms(t: dt.datetime) -> int:
    """Naive UTC datetime → epoch ms."""
    return int((t - EPOCH).total_seconds() * 1000)


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``[00:00, next 00:00)`` of a UTC day as naive datetimes."""
    start = dt.datetime.combine(day, dt.time())
    return start, start + dt.timedelta(days=1)
