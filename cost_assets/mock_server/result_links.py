"""``EXTERNAL_LINKS`` results of the mock warehouse: Arrow IPC stream chunks behind presigned-like URLs.

A Databricks warehouse writes a large result to cloud storage and hands out one short-lived URL per
chunk (``external_link`` with an ``expiration``); the URL carries its own signature, and the storage
refuses a request that also sends an ``Authorization`` header (S3 answers 400 "Only one auth mechanism
allowed"). The mock does the same on 127.0.0.1: ``/mock-storage/results/<statement>/<chunk>`` with a
random ``signature`` and an ``expires`` instant in the query string. Every download is recorded (path and
whether an ``Authorization`` header came, never its value) so tests can prove the client sends none.

Arrow types: strings, integers, doubles, booleans, dates, ``TIMESTAMP`` (microseconds, UTC) and
``DECIMAL(p,s)`` are sent as the Arrow types a warehouse sends; structs, maps and arrays are sent as their
JSON text (a warehouse sends nested Arrow types; the project's statements flatten them in SQL anyway).
Polars writes the stream (pyarrow is not a dependency).
"""

import datetime as dt
import io
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any

import polars as pl

from cost_assets.mock_server.protocol import MockError

LINK_PREFIX = "/mock-storage/results/"
_ARROW_TYPES: dict[str, pl.DataType] = {
    "VARCHAR": pl.String(),
    "BIGINT": pl.Int64(),
    "HUGEINT": pl.Int64(),
    "INTEGER": pl.Int32(),
    "SMALLINT": pl.Int16(),
    "TINYINT": pl.Int8(),
    "DOUBLE": pl.Float64(),
    "FLOAT": pl.Float32(),
    "BOOLEAN": pl.Boolean(),
    "DATE": pl.Date(),
    "TIMESTAMP": pl.Datetime("us", "UTC"),
    "TIMESTAMP WITH TIME ZONE": pl.Datetime("us", "UTC"),
}


def _arrow_type(duck_type: str) -> pl.DataType | None:
    """The polars (Arrow) type of a DuckDB result column; None: sent as JSON text."""
    t = duck_type.upper()
    if m := re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", t):
        return pl.Decimal(int(m.group(1)), int(m.group(2)))
    return _ARROW_TYPES.get(t)


def arrow_stream(names: list[str], duck_types: list[str], rows: list[tuple], as_text: Any) -> bytes:
    """One chunk as an Arrow IPC stream; ``as_text`` turns a nested value into its JSON text."""
    columns = []
    for i, (name, duck_type) in enumerate(zip(names, duck_types, strict=True)):
        values = [row[i] for row in rows]
        kind = _arrow_type(duck_type)
        if kind is None:
            columns.append(pl.Series(name, [as_text(v) for v in values], dtype=pl.String))
        elif isinstance(kind, pl.Datetime):  # DuckDB hands out naive UTC datetimes
            naive = [v.replace(tzinfo=None) if v is not None and v.tzinfo else v for v in values]
            columns.append(pl.Series(name, naive, dtype=pl.Datetime("us")).dt.replace_time_zone("UTC"))
        else:
            columns.append(pl.Series(name, values, dtype=kind))
    buffer = io.BytesIO()
    pl.DataFrame(columns).write_ipc_stream(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class _Link:
    statement_id: str
    chunk_index: int
    expires: dt.datetime


class ResultLinks:
    """Signed, expiring download URLs of result chunks, and the record of every download."""

    def __init__(self) -> None:
        self._links: dict[str, _Link] = {}
        self._lock = threading.Lock()
        self.downloads: list[dict] = []  # {"path", "authorization": bool, "status"}: no header values

    def issue(self, host: str, statement_id: str, chunk_index: int, now: dt.datetime, ttl_s: float) -> tuple[str, str]:
        """A new URL for the chunk and its expiration (ISO, UTC), as ``external_link`` and ``expiration``."""
        signature = secrets.token_urlsafe(24)
        expires = now + dt.timedelta(seconds=ttl_s)
        with self._lock:
            self._links[signature] = _Link(statement_id, chunk_index, expires)
        stamp = expires.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        url = f"http://{host}{LINK_PREFIX}{statement_id}/{chunk_index}?expires={stamp}&signature={signature}"
        return url, stamp

    def check(self, statement_id: str, chunk_index: int, signature: str | None, authorized: bool, now: dt.datetime):
        """Raises the storage's refusal of a download: 400 with an Authorization header, 403 for a wrong
        signature or an expired link."""
        record = {"path": f"{LINK_PREFIX}{statement_id}/{chunk_index}", "authorization": authorized, "status": 200}
        with self._lock:
            self.downloads.append(record)
            link = self._links.get(signature or "")
        if authorized:
            record["status"] = 400
            raise MockError(400, "InvalidArgument", "Only one auth mechanism allowed; the URL is already signed")
        if link is None or (link.statement_id, link.chunk_index) != (statement_id, chunk_index):
            record["status"] = 403
            raise MockError(403, "AccessDenied", "The request signature does not match")
        if now >= link.expires:
            record["status"] = 403
            raise MockError(403, "AccessDenied", "Request has expired")
