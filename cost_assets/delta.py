"""The ledger as Delta Lake tables (``COST_ASSETS_STORAGE=delta:<uri>``): locations, reads and the one write.

Plain delta-rs (``deltalake``) + polars, no Dagster import: the IO manager
(:mod:`cost_assets.resources.delta`) and the readers (:mod:`cost_assets.read`) share it.

* **Layout.** Table ``layer.table`` lives at ``<root>/<layer>/<table>`` (the same names as the DuckDB
  tables), a local folder or an S3-compatible bucket (``s3://bucket/prefix``). Daily tables are
  partitioned by ``usage_date``: each day is its own folder, so writers of different days touch disjoint
  files and delta-rs commits them one after the other without a conflict.
* **Credentials** are never read here: delta-rs's object store takes the standard ``AWS_*`` variables
  (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``,
  ``AWS_ALLOW_HTTP`` …) or the pod's web identity straight from the environment, so no secret passes
  through the project's config, logs or metadata.
* **No pyarrow.** Frames cross to delta-rs and back through the Arrow PyCapsule interface (polars ↔
  ``arro3``, which ``deltalake`` brings); reads run through delta-rs's own query engine
  (``QueryBuilder``), so a window of days only opens that window's files.
* :func:`replace` is the write, with the DuckDB IO manager's guarantees (module docstring of
  :mod:`cost_assets.resources.warehouse`): by name, one commit per write (the window's old files removed
  and the new ones added together, or nothing), the partition-window check, an empty frame still creates
  the table, schema drift refused, ``ADDED_COLUMNS`` added in the same commit, ``REPLACE_BY`` narrowing.
"""

import datetime as dt
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from arro3.core import RecordBatchReader
from arro3.core import Table as ArrowTable
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from deltalake.exceptions import (
    CommitFailedError,
    DeltaError,
    DeltaProtocolError,
    SchemaMismatchError,
    TableNotFoundError,
)

__all__ = [
    "PREFIX",
    "READ_ERRORS",
    "Window",
    "is_delta",
    "is_local",
    "load",
    "location_problem",
    "open_table",
    "referenced_tables",
    "replace",
    "root_of",
    "scan",
    "table_names",
    "table_uri",
]

PREFIX = "delta:"
# What COST_ASSETS_STORAGE may name after ``delta:``: a local folder (or file://) and S3-compatible storage.
REMOTE_SCHEMES = ("s3", "s3a")
FORMS = "duckdb, or delta:<folder>, delta:file://<folder> or delta:s3://<bucket>/<prefix> (S3-compatible)"
# The layers (DuckDB schemas) the pipeline writes; a statement's ``layer.table`` names are looked up here.
LAYERS = ("raw", "ref", "mart", "sim", "export", "report")
_TABLE_REF = re.compile(
    r'(?<![\w."])"?(?P<layer>' + "|".join(LAYERS) + r')"?\s*\.\s*"?(?P<table>[A-Za-z_][A-Za-z0-9_]*)"?',
    re.IGNORECASE,
)
# What delta-rs raises when a table cannot be read (storage unreachable, refused credentials, a missing
# data file, a protocol it does not support); readers turn these into warehouse errors.
READ_ERRORS = (DeltaError, DeltaProtocolError, OSError)
# A commit that still conflicts after delta-rs's own retries (e.g. two runs of the same day at once) is
# tried again this many times, a little later each time, before the write fails.
COMMIT_ATTEMPTS = 4


class DeltaWriteError(ValueError):
    """A write :func:`replace` refuses, when no ``errors`` are given (the IO manager passes its warehouse
    errors, so a Delta write fails with the same types as a DuckDB one)."""


@dataclass(frozen=True)
class ErrorTypes:
    """The exception types :func:`replace` raises for its three kinds of refusal."""

    generic: type[Exception] = DeltaWriteError
    window: type[Exception] = DeltaWriteError
    drift: type[Exception] = DeltaWriteError


@dataclass(frozen=True)
class Window:
    """The partition being written: ``start <= column < end`` (days)."""

    column: str
    start: dt.date
    end: dt.date

    def predicate(self) -> str:
        return (
            f"{_ident(self.column)} >= '{self.start.isoformat()}' AND {_ident(self.column)} < '{self.end.isoformat()}'"
        )

    def describe(self) -> str:
        return f"{self.start.isoformat()} <= {self.column} < {self.end.isoformat()}"


def is_delta(location: str) -> bool:
    """Whether a ledger location (``COST_ASSETS_STORAGE``'s form) names Delta tables, not a DuckDB file."""
    return location.startswith(PREFIX)


def location_problem(value: str) -> str | None:
    """Why ``value`` is not a storage setting (``duckdb`` or ``delta:<uri>``), or None."""
    if value == "duckdb":
        return None
    if not is_delta(value) or not value.removeprefix(PREFIX).strip():
        return f"allowed: {FORMS}"
    uri = value.removeprefix(PREFIX)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", uri)
    if scheme and scheme.group(1).lower() not in (*REMOTE_SCHEMES, "file"):
        return f"the scheme {scheme.group(1)}:// is not supported; allowed: {FORMS}"
    if scheme and scheme.group(1).lower() in REMOTE_SCHEMES and not uri.split("://", 1)[1].strip("/"):
        return f"names no bucket; allowed: {FORMS}"
    return None


def root_of(location: str) -> str:
    """The root URI of a ``delta:<uri>`` location (no trailing slash; a local folder made absolute)."""
    uri = location.removeprefix(PREFIX).rstrip("/")
    if uri.startswith("file://"):
        uri = uri.removeprefix("file://")
    if "://" in uri:
        return uri
    return str(Path(uri).expanduser().absolute())


def table_uri(root: str, table: str) -> str:
    """The URI of ``layer.table`` under ``root``."""
    layer, name = table.split(".")
    return f"{root}/{layer}/{name}"


def is_local(root: str) -> bool:
    """Whether a Delta root (:func:`root_of`) is a local folder rather than object storage."""
    return "://" not in root


def table_names(root: str) -> list[str]:
    """Every ``layer.table`` stored under a local ``root`` (a folder with a ``_delta_log``), sorted.

    Object storage is not listed (that would need pyarrow's file systems): there, name the tables.
    """
    if not is_local(root):
        raise ValueError(f"{root}: only a local Delta root can be listed; name the tables to read")
    found = []
    for layer in LAYERS:
        folder = Path(root) / layer
        if folder.is_dir():
            found += [f"{layer}.{t.name}" for t in sorted(folder.iterdir()) if (t / "_delta_log").is_dir()]
    return found


def referenced_tables(sql: str) -> list[str]:
    """The ``layer.table`` names a statement mentions (quoted or not), lower case, in order of appearance."""
    seen: dict[str, None] = {}
    for match in _TABLE_REF.finditer(sql):
        seen[f"{match['layer'].lower()}.{match['table'].lower()}"] = None
    return list(seen)


def open_table(uri: str) -> DeltaTable | None:
    """The Delta table at ``uri``, or None when there is none (yet)."""
    try:
        return DeltaTable(uri)
    except TableNotFoundError:
        return None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _stream(table: DeltaTable, sql: str) -> RecordBatchReader:
    """``sql`` over ``table`` (registered as ``t``) in delta-rs's query engine: an Arrow stream (PyCapsule),
    which polars and DuckDB both consume without pyarrow."""
    return QueryBuilder().register("t", table).execute(sql)


def _query(table: DeltaTable, sql: str) -> pl.DataFrame:
    return pl.DataFrame(_stream(table, sql))


def scan(
    table: DeltaTable, columns: Sequence[str] | None = None, window: Window | None = None, rows: bool = True
) -> RecordBatchReader:
    """The rows of ``table`` (those of ``window`` when given; none when not ``rows``), only ``columns`` when
    given, as an Arrow stream; a window opens only its days' files (partition pruning)."""
    select = ", ".join(_ident(col) for col in columns) if columns else "*"
    where = f" WHERE {window.predicate()}" if window else ""
    return _stream(table, f"SELECT {select} FROM t{where}{'' if rows else ' LIMIT 0'}")


def load(
    uri: str,
    columns: Sequence[str] | None = None,
    window: Window | None = None,
    table: DeltaTable | None = None,
    rows: bool = True,
) -> pl.DataFrame | None:
    """:func:`scan` of the Delta table at ``uri`` as polars; None when the table does not exist."""
    table = table or open_table(uri)
    return None if table is None else pl.DataFrame(scan(table, columns, window, rows))


def _stored_schema(table: DeltaTable) -> dict[str, pl.DataType]:
    return dict(_query(table, "SELECT * FROM t LIMIT 0").schema)


def _literal(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, dt.date)):
        raise ValueError(f"cannot narrow a write by a value of type {type(value).__name__} ({value!r})")
    if isinstance(value, int):
        return str(value)
    text = value.isoformat() if isinstance(value, dt.date) else value
    return "'" + text.replace("'", "''") + "'"


def _narrowing(frame: pl.DataFrame, replace_by: Sequence[str]) -> str:
    """The condition matching the stored rows whose ``replace_by`` values (as a combination) occur in the
    frame: ``col IN (...)`` for one column, ``(a = … AND b = …) OR …`` for several (the DuckDB backend's
    ``(a, b) IN (SELECT DISTINCT a, b FROM frame)``). The frame has no NULL there (checked before)."""
    combos = frame.select(replace_by).unique().sort(replace_by).rows()
    if len(replace_by) == 1:
        return f"{_ident(replace_by[0])} IN ({', '.join(_literal(combo[0]) for combo in combos)})"
    return " OR ".join(
        "(" + " AND ".join(f"{_ident(col)} = {_literal(v)}" for col, v in zip(replace_by, combo, strict=True)) + ")"
        for combo in combos
    )


def _commit(write: Callable[[], None], name: str) -> None:
    """Run ``write`` (one Delta commit), again after a conflict delta-rs could not resolve itself."""
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            write()
            return
        except CommitFailedError as e:
            if attempt == COMMIT_ATTEMPTS:
                raise DeltaWriteError(
                    f"{name}: another writer kept committing conflicting changes ({attempt} attempts; two runs "
                    f"of the same day at once?). Nothing was written; re-run the partition. ({e})"
                ) from e
            time.sleep(0.2 * attempt)


def _create(uri: str, frame: pl.DataFrame, partition_by: str | None) -> DeltaTable:
    """Create the table from the frame's schema (also when the frame has no rows); a table another writer
    created meanwhile is kept."""
    schema = ArrowTable.from_arrow(frame.head(0)).schema
    partitions = [partition_by] if partition_by else None
    try:
        return DeltaTable.create(uri, schema=schema, partition_by=partitions, mode="ignore")
    except CommitFailedError:  # created by a concurrent writer between our check and our commit
        table = open_table(uri)
        if table is None:
            raise
        return table


@dataclass(frozen=True)
class Written:
    """What :func:`replace` stored: the frame as written and the table's columns afterwards."""

    frame: pl.DataFrame
    columns: dict[str, pl.DataType]


def replace(
    uri: str,
    frame: pl.DataFrame,
    *,
    name: str,
    window: Window | None = None,
    replace_by: Sequence[str] = (),
    added_columns: Collection[str] = (),
    warn: Callable[[str], None] = lambda _message: None,
    errors: ErrorTypes | None = None,
) -> Written:
    """Write ``frame`` to the Delta table at ``uri`` in one commit (see the module docstring).

    Without ``window`` the frame *is* the table (rows and columns replaced). With it, only the window's
    rows are replaced (narrowed to the frame's ``replace_by`` values); every row must lie in the window.
    ``errors`` chooses the exception types (the IO manager passes its warehouse errors).
    """
    kinds = errors or ErrorTypes()
    if frame.width == 0:
        raise kinds.generic(
            f"Refusing to write a frame without columns to {name}: a Delta table needs columns. Return an "
            "empty frame with the table's schema instead (e.g. pl.DataFrame(schema=...))."
        )
    table = open_table(uri)
    untyped = [col for col, dtype in frame.schema.items() if dtype == pl.Null]
    if window is None:
        if untyped:
            raise kinds.generic(
                f"Cannot create {name}: column(s) {untyped} have polars dtype Null (all values None and no "
                "type), so the Delta column type is unknown. Cast them, e.g. pl.col(...).cast(pl.String)."
            )
        _commit(lambda: write_deltalake(uri, frame, mode="overwrite", schema_mode="overwrite"), name)
        return Written(frame, dict(frame.schema))

    stored = _stored_schema(table) if table is not None else {}
    stored_lower = {col.lower(): col for col in stored}
    unknown = [col for col in untyped if col.lower() not in stored_lower]
    if unknown:
        raise kinds.generic(
            f"Cannot write to {name}: column(s) {unknown} have polars dtype Null (all values None and no type) "
            "and the table has no such column to take the type from. Cast them, e.g. pl.col(...).cast(pl.String)."
        )
    missing_keys = [col for col in replace_by if col not in frame.columns]
    if missing_keys:
        raise kinds.generic(
            f"Cannot write to {name}: its replace-by column(s) {missing_keys} are not in the frame "
            f"(frame columns: {frame.columns}). Nothing was written."
        )
    unkeyed = frame.filter(pl.any_horizontal(pl.col(col).is_null() for col in replace_by)).height if replace_by else 0
    if unkeyed:
        raise kinds.window(
            f"{unkeyed} of {frame.height} rows written to {name} have a NULL replace-by value ({list(replace_by)}): "
            "no later write could replace them. Nothing was written."
        )
    frame = frame.drop(untyped)
    if window.column not in frame.columns:
        raise kinds.window(f"Cannot write to {name}: the frame has no partition column {window.column!r}.")
    day = pl.col(window.column).cast(pl.Date)
    outside = frame.filter(day.is_null() | (day < window.start) | (day >= window.end)).height
    if outside:
        raise kinds.window(
            f"{outside} of {frame.height} rows written to {name} lie outside the partition being written "
            f"({window.describe()}) or have a NULL partition value. Nothing was written: filter the frame to "
            "its partition."
        )

    schema_mode = None
    if table is not None:
        new = [col for col in frame.columns if col.lower() not in stored_lower]
        addable = {col.lower() for col in added_columns}
        added = [col for col in new if col.lower() in addable]
        drift = [col for col in new if col not in added]
        if drift:
            raise kinds.drift(
                f"Schema drift in {name}: the frame has column(s) {drift} that the table lacks (table columns: "
                f"{list(stored)}). Nothing was written. Declare them as added columns of the asset, or delete "
                "the table's folder and re-materialize every partition."
            )
        if added:
            schema_mode = "merge"  # the new columns join the table in the same commit as the rows
            warn(f"{name}: added column(s) {added} to the stored table (NULL on its rows).")
        given = {col.lower() for col in frame.columns} | {col.lower() for col in untyped}
        missing = [col for col in stored if col.lower() not in given]
        if missing:
            warn(f"{name}: the frame lacks column(s) {missing}; stored as NULL.")
        frame = frame.rename({col: stored_lower[col.lower()] for col in frame.columns if col.lower() in stored_lower})
        retyped = {
            col: (str(stored[col]), str(frame.schema[col]))
            for col in frame.columns
            if col in stored and frame.schema[col] != stored[col]
        }
        if retyped:
            warn(
                f"{name}: column(s) arrive with other types and are cast to the table's "
                f"(table type, frame type): {retyped}."
            )
        frame = frame.select(
            *(
                pl.col(col).cast(dtype) if col in frame.columns else pl.lit(None, dtype).alias(col)
                for col, dtype in stored.items()
            ),
            *added,
        )
    else:
        _create(uri, frame, window.column)

    predicate = window.predicate()
    if replace_by:
        if frame.is_empty():
            return Written(frame, _stored_schema(DeltaTable(uri)))  # no values brought: nothing to replace
        try:
            predicate += f" AND ({_narrowing(frame, replace_by)})"
        except ValueError as e:
            raise kinds.generic(f"Cannot write to {name}: {e}. Nothing was written.") from e
    try:
        _commit(
            lambda: write_deltalake(uri, frame, mode="overwrite", predicate=predicate, schema_mode=schema_mode),
            name,
        )
    except SchemaMismatchError as e:
        raise kinds.drift(f"Cannot write to {name}: {e}. Nothing was written.") from e
    return Written(frame, _stored_schema(DeltaTable(uri)))
