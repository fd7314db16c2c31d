"""The one read-only way into the DuckDB warehouse, returning polars frames.

``cost-assets report`` (:mod:`cost_assets.reports`), the ``cost-assets run`` summary (:mod:`cost_assets.report`),
``query_attribution`` (:mod:`cost_assets.query`) and the IO manager's helpers (``read_table``, ``Ledger.stored_days`` in
:mod:`cost_assets.resources.warehouse`, whose loads also convert with :func:`to_polars`) all read through
it. Plain duckdb + polars, no Dagster import, so the CLI and notebooks can use it without the graph.

* :func:`connect` opens the file **read-only** (a read can never change stored data) and always closes the
  connection, also when the body raises; :func:`fetch` runs one statement with bound ``?`` parameters.
* Results cross to polars through the Arrow PyCapsule interface (``__arrow_c_stream__``, duckdb ≥ 1.1), on
  duckdb 1.x and 2.x alike and without ``pyarrow``: ``relation.arrow()`` returns a record-batch reader in
  duckdb 2.0, and ``relation.pl()`` needs ``pyarrow`` on both majors (not a dependency of this project).
* What a reader runs into is said in words, as a :class:`WarehouseError`: no database file yet
  (:class:`WarehouseMissingError`, also a ``FileNotFoundError``), a table the file lacks
  (:class:`TableMissingError`, also a ``duckdb.CatalogException``), or the file held by a writer
  (:class:`WarehouseLockedError`, also a ``duckdb.IOException``): DuckDB has a single writer, and while
  another process writes the file it cannot be opened at all, not even read-only.
* The ledger may also be Delta Lake tables (``COST_ASSETS_STORAGE=delta:<uri>``; ``database`` is then that
  ``delta:<uri>``): the tables a statement names (``layer.table``) are read with delta-rs
  (:mod:`cost_assets.delta`) into an in-memory DuckDB connection under the same names, so every reader's
  SQL runs unchanged (DuckDB's own delta and httpfs extensions would have to be downloaded). Delta has no
  single-writer lock: a reader sees the last committed version of each table while runs write.
"""

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from cost_assets import delta

__all__ = [
    "ColumnMissingError",
    "TableMissingError",
    "WarehouseError",
    "WarehouseLockedError",
    "WarehouseMissingError",
    "connect",
    "fetch",
    "quote",
    "table_name",
    "to_polars",
]

# What to do when the warehouse, or a table in it, is not there yet (a DuckDB file; a Delta ledger's folder).
RUN_FIRST = "run `make run` first (it materializes the pipeline into this file)"
RUN_FIRST_DELTA = "run `make run` first (it materializes the pipeline into this ledger's folder)"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
# How duckdb says that the file is held by a writer: another process holds its lock (IOException), or this
# process has it open read-write (ConnectionException: "... with a different configuration ...").
_LOCKED = ("lock", "different configuration")
# Who holds the lock, as duckdb names it: "Conflicting lock is held in /usr/bin/python3 (PID 1234) by user …".
_HOLDER = re.compile(r"held in (?P<exe>\S+) \(PID (?P<pid>\d+)\)")
# How duckdb says that a table, or the schema it should be in, is not in the catalog.
_NO_TABLE = re.compile(r"(Table|Schema) with name .* does not exist", re.IGNORECASE)
# How duckdb says that a column the statement names is not in the table it reads.
_NO_COLUMN = re.compile(r'Referenced column "(?P<c>[^"]+)" not found|does not have a column named "(?P<d>[^"]+)"')
# Why a stored table lacks a column a reader expects: it was written by an older version.
OLDER_LEDGER = (
    "if the ledger was written by an older cost_assets, materialize one day again (e.g. `cost-assets run "
    "--start DAY --end DAY`): the writer adds the new columns to the stored tables"
)


class WarehouseError(Exception):
    """A write or read the warehouse refuses; the message names the table and what is wrong."""


class WarehouseMissingError(WarehouseError, FileNotFoundError):
    """The DuckDB file does not exist (nothing has been materialized into it yet)."""


class TableMissingError(WarehouseError, duckdb.CatalogException):
    """A table (or its schema) the statement reads is not in the DuckDB file."""


class ColumnMissingError(WarehouseError, duckdb.BinderException):
    """A column the statement reads is not in a stored table (a ledger written before the column existed)."""


class WarehouseLockedError(WarehouseError, duckdb.IOException):
    """The DuckDB file is held by a writer (another process, or a read-write connection of this one)."""


def quote(identifier: str) -> str:
    """``identifier`` as a quoted SQL identifier (double quotes doubled)."""
    return '"' + identifier.replace('"', '""') + '"'


def table_name(table: str) -> str:
    """``"layer.table"`` (or ``table``, or ``"db.layer.table"``) checked and quoted for a statement's text.

    SQL has no placeholders for identifiers, so a name is only accepted when every part is a plain
    identifier; anything else is a ``ValueError``.
    """
    parts = table.split(".")
    if not 1 <= len(parts) <= 3 or not all(_IDENTIFIER.match(part) for part in parts):
        raise ValueError(f"Not a table name: {table!r} (expected 'layer.table').")
    return ".".join(quote(part) for part in parts)


def to_polars(relation: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    """Fetch a relation as a polars frame on duckdb 1.x and 2.x, without pyarrow.

    Relations implement ``__arrow_c_stream__`` (duckdb ≥ 1.1), which the polars constructor consumes
    directly; ``.pl()`` stays as the fallback for builds without it.
    """
    if hasattr(relation, "__arrow_c_stream__"):
        return pl.DataFrame(relation)
    return relation.pl()


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _delta_connection(
    database: str, tables: Sequence[str] | None, days: tuple[dt.date, dt.date] | None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection holding ``tables`` (``layer.table``; every stored one when None) of
    the Delta ledger ``database`` — only the ``days`` (first, last) of those with a ``usage_date``, when
    given; a table not stored is left out (a statement naming it then fails as a missing table)."""
    root = delta.root_of(database)
    if delta.is_local(root) and not Path(root).exists():
        raise WarehouseMissingError(f"Delta ledger {database!r} does not exist: {RUN_FIRST_DELTA}.")
    connection = duckdb.connect()
    name = ""
    try:
        for name in delta.table_names(root) if tables is None else tables:
            table = delta.open_table(delta.table_uri(root, name))
            if table is not None:
                dated = days is not None and "usage_date" in {field.name for field in table.schema().fields}
                window = delta.Window("usage_date", days[0], days[1] + dt.timedelta(days=1)) if dated else None
                connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(name.split('.')[0])}")
                connection.from_arrow(delta.scan(table, window=window)).create(table_name(name))
    except (*delta.READ_ERRORS, duckdb.Error) as e:  # duckdb's: the Arrow stream failed while it was copied
        connection.close()
        raise WarehouseError(
            f"Delta ledger {database!r}: {name or 'its tables'} could not be read ({_first_line(e)})"
        ) from e
    except BaseException:
        connection.close()
        raise
    return connection


@contextmanager
def _translated(ledger: str, run_first: str) -> Iterator[None]:
    """Turn duckdb's "no such table" into :class:`TableMissingError` and "no such column" into
    :class:`ColumnMissingError`, each saying what to do; every other error passes through unchanged."""
    try:
        yield
    except duckdb.CatalogException as e:
        if isinstance(e, WarehouseError) or not _NO_TABLE.search(str(e)):
            raise
        raise TableMissingError(f"{ledger} lacks a table ({_first_line(e)}): {run_first}.") from e
    except duckdb.BinderException as e:
        missing = _NO_COLUMN.search(str(e))
        if isinstance(e, WarehouseError) or not missing:
            raise
        column = missing["c"] or missing["d"]
        raise ColumnMissingError(f"{ledger} has no column {column!r} where it is read: {OLDER_LEDGER}.") from e


@contextmanager
def connect(
    database: str, tables: Sequence[str] | None = None, days: tuple[dt.date, dt.date] | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the DuckDB file ``database``, closed on leaving the block.

    Raises :class:`WarehouseMissingError` when the file does not exist, :class:`WarehouseLockedError` when a
    writer holds it, and turns a missing table or schema met inside the block into
    :class:`TableMissingError` and a missing column into :class:`ColumnMissingError`; every other duckdb error
    passes through unchanged. For a Delta ledger
    (``delta:<uri>``) the connection holds ``tables`` (every table of a local ledger when None; object
    storage is not listed, so name them there), copied into memory: writes to it change nothing stored;
    ``days`` (first, last) copies only those days of them (partition pruning: a window of a long history
    opens only its days' files), for statements that read no other day. A DuckDB file ignores both.
    """
    if delta.is_delta(database):
        connection = _delta_connection(database, tables, days)
        try:
            with _translated(f"Delta ledger {database!r}", RUN_FIRST_DELTA):
                yield connection
        finally:
            connection.close()
        return
    if not Path(database).exists():
        raise WarehouseMissingError(f"DuckDB database {database!r} does not exist: {RUN_FIRST}.")
    try:
        connection = duckdb.connect(database, read_only=True)
    except (duckdb.IOException, duckdb.ConnectionException) as e:
        if not any(word in str(e).lower() for word in _LOCKED):
            raise
        holder = _HOLDER.search(str(e))
        who = f" Process {holder['pid']} ({holder['exe']}) holds it." if holder else ""
        raise WarehouseLockedError(
            f"DuckDB database {database!r} is held by a writer (another process running the pipeline, e.g. "
            "`make run` or a Dagster run, or a read-write connection of this process): DuckDB lets no one else "
            f"open the file meanwhile.{who} Try again when it has finished. ({_first_line(e)})"
        ) from e
    try:
        with _translated(f"DuckDB database {database!r}", RUN_FIRST):
            yield connection
    finally:
        connection.close()


def fetch(
    database: str, sql: str, params: Sequence[object] | None = None, days: tuple[dt.date, dt.date] | None = None
) -> pl.DataFrame:
    """The result of one statement over ``database`` (read-only), with ``params`` bound to its ``?``; from a
    Delta ledger only the tables the statement names are read (only ``days`` of them when given: see
    :func:`connect`)."""
    tables = delta.referenced_tables(sql) if delta.is_delta(database) else None
    with connect(database, tables, days) as connection:
        return to_polars(connection.sql(sql, params=list(params) if params else None))
