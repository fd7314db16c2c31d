"""Time conventions shared by every layer: naive UTC datetimes, epoch milliseconds (the REST APIs), days."""

import datetime as dt

EPOCH = dt.datetime(1970, 1, 1)
# Durations in epoch milliseconds (the unit of the REST APIs and of the simulated world).
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
_ONE_MS = dt.timedelta(milliseconds=1)


def from_ms(ms: int) -> dt.datetime:
    """Epoch ms → naive UTC datetime (0 is the epoch itself; see :func:`ms_to_dt` for API fields)."""
    return EPOCH + dt.timedelta(milliseconds=ms)


def ms_to_dt(ms: int | None) -> dt.datetime | None:
    """Epoch ms → naive UTC datetime; 0 and None mean 'not set' (e.g. end_time of an active run)."""
    return from_ms(int(ms)) if ms else None


def to_ms(t: dt.datetime) -> int:
    """Naive UTC datetime → epoch ms (exact integer arithmetic; sub-millisecond parts are floored)."""
    return (t - EPOCH) // _ONE_MS


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``[00:00, next 00:00)`` of a UTC day as naive datetimes."""
    start = dt.datetime.combine(day, dt.time())
    return start, start + dt.timedelta(days=1)


def day_start_ms(day: dt.date) -> int:
    """Epoch ms of 00:00 UTC of ``day``."""
    return to_ms(day_bounds(day)[0])


def naive_utc(value: str | dt.datetime) -> dt.datetime:
    """An ISO-8601 text (``Z``, an offset, or none meaning UTC; ``T`` or a space) or a datetime → naive UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "T"))
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
