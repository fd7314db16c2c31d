"""DuckDB storage for the cost tables: dagster-duckdb's IO manager with the project's own polars handler.

Asset keys ``[layer, table]`` become DuckDB tables ``layer.table``: dagster-duckdb takes the table from the
last key component and the schema from the one before it (unless the asset's ``schema`` metadata or the IO
manager's ``schema`` config overrides it), and runs ``CREATE SCHEMA IF NOT EXISTS`` before every write.

Why not ``dagster-duckdb-polars``'s ``DuckDBPolarsIOManager``? Its behaviour, read from the installed
library and verified on this stack, breaks the project's rules:

* ``DbIOManager.handle_output`` runs ``ensure_schema_exists`` → ``delete_table_slice`` → the handler's
  insert on an autocommit connection. The partition delete and the insert are two transactions, so a
  failed insert leaves the partition *empty* ("nothing already stored is lost" is violated).
* The insert is ``INSERT INTO t SELECT * FROM frame``: **positional**. A frame whose columns come in a
  different order either fails with a conversion error or, worse, silently swaps same-typed columns.
* An empty frame is skipped with a warning and the table is never created, so a downstream asset that
  loads an empty first day fails with ``Catalog Error: Table ... does not exist``.
* Its loads call ``relation.arrow()``, which returns a record-batch reader in duckdb 2.0;
  and here both ``.arrow()`` and ``.pl()`` need ``pyarrow``, which is not a dependency of this project
  (checked on duckdb 1.1.3, 1.5.6 and 2.0.0: ``ModuleNotFoundError``), as does registering a polars frame.
* ``DuckDbClient.connect`` does not close the connection when the body raises, so after a failed write the
  file stays open until garbage collection (a read-only open in the same process is then refused).

What this module does instead:

* :class:`CostDuckDbClient` keeps the library's connect/schema/select logic but makes
  ``delete_table_slice`` a no-op, so that the delete can move into the handler's transaction;
* :class:`PolarsByNameTypeHandler` does, in **one** DuckDB transaction: ``CREATE TABLE ... AS SELECT * FROM
  frame LIMIT 0`` if the table is new (so an empty frame still creates it), the schema-drift check, the
  library's own partition ``DELETE`` (``DuckDbClient.delete_table_slice``: same WHERE clause, same
  escaping as the select used for loads), ``INSERT INTO t BY NAME``, a check that every inserted row lies
  inside the partition window, then ``COMMIT``; any error ``ROLLBACK``s, leaving the old rows in place.
  Unpartitioned tables are replaced whole (``CREATE OR REPLACE TABLE ... AS SELECT``, same transaction);
* frames cross the polars/DuckDB boundary through the Arrow PyCapsule interface
  (``__arrow_c_stream__``), which polars and duckdb ≥ 1.1 speak natively, so neither direction needs
  ``pyarrow`` and the same code runs on duckdb 1.x and 2.x. Loads convert with
  :func:`cost_assets.read.to_polars`, and :func:`read_table` and :class:`Ledger` read through
  :mod:`cost_assets.read` (read-only, a clear error for a missing file or table and for a locked file),
  the same reader as the ``cost-assets run`` summary and ``query_attribution``.

Concurrency: a DuckDB file has a single writer. Run every asset that uses this IO manager in a Dagster
pool with limit 1; the library's connect already retries a locked file ten times with backoff.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl
from dagster._core.storage.db_io_manager import (  # the same (internal) base classes dagster-duckdb builds on
    DbIOManager,
    DbTypeHandler,
    TableSlice,
)
from dagster_duckdb import DuckDBIOManager
from dagster_duckdb.io_manager import DuckDbClient, _get_cleanup_statement

from cost_assets.catalog import descriptions_by_name
from cost_assets.read import (
    TableMissingError,
    WarehouseError,
    WarehouseMissingError,
    fetch,
    quote,
    table_name,
    to_polars,
)

__all__ = [
    "ADDED_COLUMNS",
    "REPLACE_BY",
    "CostDuckDBIOManager",
    "CostDuckDbClient",
    "PartitionWindowError",
    "PolarsByNameTypeHandler",
    "SchemaDriftError",
    "WarehouseError",
    "read_table",
]

# Definition metadata key: the columns an asset added to its contract after tables were stored (nullable,
# NULL on the stored rows). A stored partitioned table lacking one of them gains it (ALTER TABLE ... ADD
# COLUMN, in the write's transaction) instead of failing as schema drift; any other new column still fails.
ADDED_COLUMNS = "cost_assets/added_columns"

# Definition metadata key: the columns (e.g. ``["workspace_id"]``) that narrow a partitioned write. The write
# then replaces, inside the partition window, only the rows whose values of these columns occur in the
# outgoing frame; stored rows of other values (a workspace whose fetch failed this run) are kept. Without
# the key a write replaces the whole partition window. Every storage backend honours the same contract.
REPLACE_BY = "cost_assets/replace_by"

# The name under which the outgoing frame is visible to SQL while it is written. It is registered on the
# write connection only and is unregistered afterwards.
_INCOMING = "__cost_assets_incoming"


class SchemaDriftError(WarehouseError, ValueError):
    """The frame has columns that the existing table lacks (the table is left untouched)."""


class PartitionWindowError(WarehouseError, ValueError):
    """Rows of a partitioned output fall outside the partition being written (the write is rolled back).

    Such rows would survive the next re-materialization of the partition (its DELETE only covers the
    partition's own window) and be duplicated, so re-running a day would no longer be idempotent.
    """


class _ArrowStream:
    """Expose a polars frame to DuckDB only through the Arrow PyCapsule interface.

    Registering a ``pl.DataFrame`` directly makes duckdb (1.x and 2.x) call ``DataFrame.to_arrow()``, which
    needs ``pyarrow``. An object with just ``__arrow_c_stream__`` is read through the C stream instead.
    duckdb 1.1 reads the stream once per registration, so the frame is re-registered before each statement
    that scans it (see :func:`_register`).
    """

    def __init__(self, frame: pl.DataFrame) -> None:
        self._frame = frame

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._frame.__arrow_c_stream__(requested_schema)


def _register(connection: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> None:
    connection.register(_INCOMING, _ArrowStream(frame))


def _unregister(connection: duckdb.DuckDBPyConnection) -> None:
    with suppress(duckdb.Error):  # never registered, or the connection is gone: nothing to clean up
        connection.unregister(_INCOMING)


def _qualified_name(table_slice: TableSlice) -> str:
    return f"{quote(table_slice.schema)}.{quote(table_slice.table)}"


def _display_name(table_slice: TableSlice) -> str:
    return f"{table_slice.schema}.{table_slice.table}"


def _table_columns(connection: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, str]:
    """Column name → DuckDB type of ``schema.table`` in the current database, in table order; {} if absent."""
    rows = connection.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?"
        " ORDER BY ordinal_position",
        [schema, table],
    ).fetchall()
    return {str(name): str(dtype) for name, dtype in rows}


def _frame_types(connection: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> dict[str, str]:
    """Column name → the DuckDB type the frame's column arrives as."""
    _register(connection, frame)
    rows = connection.execute(f"DESCRIBE SELECT * FROM {_INCOMING}").fetchall()
    return {str(row[0]): str(row[1]) for row in rows}


def _log_warning(context: dg.OutputContext, message: str) -> None:
    log = getattr(context, "log", None)
    if log is not None:
        log.warning(message)


def _count(connection: duckdb.DuckDBPyConnection, select: str) -> int:
    """The rows of ``select``; fetched whole, since duckdb 2.0 refuses a ``register`` while a result is open."""
    [(count,)] = connection.execute(f"SELECT count(*) FROM ({select})").fetchall()
    return int(count)


def _window_description(table_slice: TableSlice) -> str:
    parts = []
    for dim in table_slice.partition_dimensions or []:
        if isinstance(dim.partitions, dg.TimeWindow):
            start, end = (f"{t:%Y-%m-%d %H:%M:%S}" for t in (dim.partitions.start, dim.partitions.end))
            parts.append(f"{start} <= {dim.partition_expr} < {end}")
        else:
            parts.append(f"{dim.partition_expr} in {list(dim.partitions)}")
    return " and ".join(parts)


def _replace_by(context: dg.OutputContext, name: str, frame: pl.DataFrame) -> str:
    """The SQL condition narrowing a partition write to the frame's values of the asset's ``REPLACE_BY``
    columns (e.g. ``workspace_id IN (SELECT DISTINCT workspace_id FROM <frame>)``); "" without the key."""
    declared = (context.definition_metadata or {}).get(REPLACE_BY) or []
    columns = list(getattr(declared, "value", declared))  # raw or a MetadataValue
    if not columns:
        return ""
    missing = [col for col in columns if col not in frame.columns]
    if missing:
        raise WarehouseError(
            f"Cannot write to {name}: its {REPLACE_BY} column(s) {missing} are not in the frame "
            f"(frame columns: {frame.columns}). Nothing was written."
        )
    keys = ", ".join(quote(col) for col in columns)
    tuple_of = keys if len(columns) == 1 else f"({keys})"
    return f"{tuple_of} IN (SELECT DISTINCT {keys} FROM {_INCOMING})"


class PolarsByNameTypeHandler(DbTypeHandler[pl.DataFrame]):
    """Stores ``pl.DataFrame`` outputs by column name, atomically per partition; loads them back.

    Must be paired with :class:`CostDuckDbClient` (whose ``delete_table_slice`` is a no-op): the delete of
    the partition window happens here, inside the same transaction as the insert. With the library's
    ``DuckDbClient`` the window would be deleted twice and the first delete would not be atomic.
    """

    def handle_output(
        self,
        context: dg.OutputContext,
        table_slice: TableSlice,
        obj: pl.DataFrame,
        connection: duckdb.DuckDBPyConnection,
    ) -> Mapping[str, Any]:
        name = _display_name(table_slice)
        if obj.width == 0:
            raise WarehouseError(
                f"Refusing to write a frame without columns to {name}: a DuckDB table needs columns. "
                "Return an empty frame with the table's schema instead (e.g. pl.DataFrame(schema=...))."
            )
        connection.begin()
        try:
            if table_slice.partition_dimensions:
                frame = self._replace_partition(context, table_slice, obj, connection)
            else:
                frame = self._replace_table(table_slice, obj, connection)
            stored = _table_columns(connection, table_slice.schema, table_slice.table)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            _unregister(connection)

        # Dagster's standard table metadata keys (what TableMetadataSet writes): shown in the UI, which shows
        # a materialization's column schema over the definition's, so the definition's descriptions
        # (cost_assets.catalog) are carried over.
        described = descriptions_by_name((context.definition_metadata or {}).get("dagster/column_schema"))
        return {
            "dagster/row_count": dg.MetadataValue.int(frame.height),
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(name=col, type=dtype, description=described.get(col))
                    for col, dtype in stored.items()
                ]
            ),
        }

    @staticmethod
    def _replace_table(
        table_slice: TableSlice, frame: pl.DataFrame, connection: duckdb.DuckDBPyConnection
    ) -> pl.DataFrame:
        """Unpartitioned: the frame *is* the table, so the table (rows and columns) is replaced whole."""
        untyped = [col for col, dtype in frame.schema.items() if dtype == pl.Null]
        if untyped:
            raise WarehouseError(
                f"Cannot create {_display_name(table_slice)}: column(s) {untyped} have polars dtype Null "
                "(all values None and no type), so the DuckDB column type is unknown. Cast them, e.g. "
                "pl.col(...).cast(pl.String)."
            )
        _register(connection, frame)
        connection.execute(f"CREATE OR REPLACE TABLE {_qualified_name(table_slice)} AS SELECT * FROM {_INCOMING}")
        return frame

    @staticmethod
    def _replace_partition(
        context: dg.OutputContext,
        table_slice: TableSlice,
        frame: pl.DataFrame,
        connection: duckdb.DuckDBPyConnection,
    ) -> pl.DataFrame:
        """Partitioned: replace the rows of the partition window; other partitions are untouched."""
        name = _display_name(table_slice)
        fq = _qualified_name(table_slice)
        existing = _table_columns(connection, table_slice.schema, table_slice.table)
        existing_lower = {col.lower(): col for col in existing}

        # A Null-dtype column (all None, no type) has no DuckDB type of its own (and duckdb 2.0 cannot read
        # it over Arrow). If the table already types it, dropping it is the same as inserting NULLs there.
        untyped = [col for col, dtype in frame.schema.items() if dtype == pl.Null]
        untyped_unknown = [col for col in untyped if col.lower() not in existing_lower]
        if untyped_unknown:
            raise WarehouseError(
                f"Cannot write to {name}: column(s) {untyped_unknown} have polars dtype Null (all values "
                "None and no type) and the table has no such column to take the type from. Cast them, "
                "e.g. pl.col(...).cast(pl.String)."
            )
        frame = frame.drop(untyped)

        if not existing:
            # Creating from the frame even when it has no rows: an empty day leaves an empty table.
            _register(connection, frame)
            connection.execute(f"CREATE TABLE {fq} AS SELECT * FROM {_INCOMING} LIMIT 0")
        else:
            new_columns = [col for col in frame.columns if col.lower() not in existing_lower]
            declared = (context.definition_metadata or {}).get(ADDED_COLUMNS) or []
            addable = {col.lower() for col in getattr(declared, "value", declared)}  # raw or a MetadataValue
            added = [col for col in new_columns if col.lower() in addable]
            if added:
                incoming = _frame_types(connection, frame)
                for col in added:
                    connection.execute(f"ALTER TABLE {fq} ADD COLUMN {quote(col)} {incoming[col]}")
                _log_warning(context, f"{name}: added column(s) {added} to the stored table (NULL on its rows).")
                existing = _table_columns(connection, table_slice.schema, table_slice.table)
                existing_lower = {col.lower(): col for col in existing}
                new_columns = [col for col in new_columns if col not in added]
            if new_columns:
                raise SchemaDriftError(
                    f"Schema drift in {name}: the frame has column(s) {new_columns} that the table lacks "
                    f"(table columns: {list(existing)}). Nothing was written. Add the column(s) to the "
                    f"table (ALTER TABLE {name} ADD COLUMN ...) or drop the table and re-materialize "
                    "every partition."
                )
            frame_lower = {col.lower() for col in frame.columns} | {col.lower() for col in untyped}
            missing = [col for col in existing if col.lower() not in frame_lower]
            if missing:
                _log_warning(context, f"{name}: the frame lacks column(s) {missing}; stored as NULL.")
            incoming_types = _frame_types(connection, frame)
            retyped = {
                col: (existing[existing_lower[col.lower()]], dtype)
                for col, dtype in incoming_types.items()
                if dtype != existing[existing_lower[col.lower()]]
            }
            if retyped:
                _log_warning(
                    context,
                    f"{name}: column(s) arrive with other types and are cast to the table's "
                    f"(table type, frame type): {retyped}.",
                )

        narrowed = _replace_by(context, name, frame)
        window_select = DuckDbClient.get_select_statement(table_slice._replace(columns=None))
        kept = 0
        if narrowed:  # only the window's rows whose REPLACE_BY values the frame brings; the others stay
            _register(connection, frame)
            connection.execute(f"{_get_cleanup_statement(table_slice)} AND {narrowed}")
            kept = _count(connection, window_select)
        else:  # the library's own DELETE for this window (its WHERE clause is the one loads select with)
            DuckDbClient.delete_table_slice(context, table_slice, connection)
        if frame.height:
            _register(connection, frame)
            connection.execute(f"INSERT INTO {fq} BY NAME SELECT * FROM {_INCOMING}")
            # The window now holds the rows kept after the delete plus exactly the frame's rows; fewer means
            # some lie outside it (or have a NULL partition value). Counted by the window alone: duckdb 2.0
            # filters wrongly on a string column of a table created in the same transaction once the insert
            # spans two row groups (> 122,880 rows), so the REPLACE_BY condition is not used here.
            in_window = _count(connection, window_select) - kept
            if in_window != frame.height:
                raise PartitionWindowError(
                    f"{frame.height - in_window} of {frame.height} rows written to {name} lie outside the "
                    f"partition being written ({_window_description(table_slice)}) or have a NULL partition "
                    "value. Nothing was written: filter the frame to its partition."
                )
        return frame

    def load_input(
        self, context: dg.InputContext, table_slice: TableSlice, connection: duckdb.DuckDBPyConnection
    ) -> pl.DataFrame:
        """Load the partition window (or the whole table) and the requested ``columns``, as polars."""
        if not _table_columns(connection, table_slice.schema, table_slice.table):
            raise WarehouseError(
                f"Table {_display_name(table_slice)} does not exist in the DuckDB warehouse: materialize "
                f"its asset ({context.asset_key.to_user_string() if context.has_asset_key else 'upstream'}) "
                "first."
            )
        dims = table_slice.partition_dimensions or []
        if any(len(dim.partitions) == 0 for dim in dims):
            # The input maps to no upstream partition (e.g. the first day under a "previous day" mapping).
            # The library would render an invalid WHERE clause; return no rows, but the table's columns.
            whole = DuckDbClient.get_select_statement(table_slice._replace(partition_dimensions=None))
            return to_polars(connection.sql(f"SELECT * FROM ({whole}) WHERE false"))
        return to_polars(connection.sql(DuckDbClient.get_select_statement(table_slice)))

    @property
    def supported_types(self) -> Sequence[type[object]]:
        return [pl.DataFrame]


class CostDuckDbClient(DuckDbClient):
    """dagster-duckdb's client, minus the autocommitted partition delete, plus a close on error.

    ``delete_table_slice`` is a no-op because :class:`PolarsByNameTypeHandler` deletes the window itself,
    inside its transaction. ``connect`` reuses the library's (retry with backoff, user agent,
    ``connection_config``) but also closes the connection when the write fails; the library's generator
    skips ``close()`` on an exception, which keeps the file open (and locked) until garbage collection.
    """

    @staticmethod
    def delete_table_slice(
        context: dg.OutputContext, table_slice: TableSlice, connection: duckdb.DuckDBPyConnection
    ) -> None:
        return None

    @staticmethod
    @contextmanager
    def connect(
        context: dg.OutputContext | dg.InputContext, table_slice: TableSlice
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        # The file's folder is created on first use (not when the definitions are built: no work at import).
        database = context.resource_config["database"]
        if database != ":memory:" and not database.startswith("md:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        with DuckDbClient.connect(context, table_slice) as connection:
            try:
                yield connection
            finally:
                connection.close()


class CostDuckDBIOManager(DuckDBIOManager):
    """The project's IO manager: polars frames in DuckDB tables ``layer.table``.

    Config (inherited from ``DuckDBIOManager``): ``database`` (path to the DuckDB file),
    ``connection_config`` (DuckDB settings) and ``schema`` (forces one schema for every asset; leave it
    unset so that the key prefix picks the layer).

    Partitioned assets need ``partition_expr`` metadata naming the partition column, ``usage_date`` (a
    ``DATE``) for the daily tables. A single-run backfill writes its whole range with one delete and one
    insert. Downstream inputs may restrict columns with ``AssetIn(metadata={"columns": [...]})``.
    """

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [PolarsByNameTypeHandler()]

    @staticmethod
    def default_load_type() -> type | None:
        return pl.DataFrame

    def create_io_manager(self, context: dg.InitResourceContext) -> DbIOManager:
        # Same as DuckDBIOManager.create_io_manager, except for the client (which the base hard-codes).
        return DbIOManager(
            db_client=CostDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="CostDuckDBIOManager",
        )


def read_table(
    database: str, table: str, where: str = "", params: list | None = None, days: tuple[Any, Any] | None = None
) -> pl.DataFrame:
    """Read ``table`` (``"layer.table"``) from the DuckDB file ``database``, opened read-only.

    ``where`` is a SQL condition appended after ``WHERE`` (it may end with ``ORDER BY ...``); pass values
    as ``?`` placeholders with ``params`` rather than formatting them into the string. For tests and the
    CLI. Errors are :mod:`cost_assets.read`'s: ``WarehouseMissingError`` (a ``FileNotFoundError``),
    ``TableMissingError``, and ``WarehouseLockedError`` while another process writes the file (DuckDB's
    single writer); a name that is not ``layer.table`` is a ``ValueError``. ``days`` (first, last): a Delta
    ledger reads only those days (``where`` must not need others; see :func:`cost_assets.read.connect`).
    """
    query = f"SELECT * FROM {table_name(table)}"
    if where:
        query += f" WHERE {where}"
    return fetch(database, query, params, days)


class Ledger(dg.ConfigurableResource):
    """The stored tables, read-only, for assets that must know what a day already holds before replacing it
    (see ``cost_assets/guard.py``); and how much smaller a source may answer for a stored day."""

    database: str
    # A bill whose net quantity for a stored day drops by more than this share (without RETRACTION records
    # explaining it) is refused; COST_ASSETS_SHRINK_THRESHOLD.
    shrink_threshold: float = 0.5

    def stored_days(self, table: str, days: Sequence[Any]) -> pl.DataFrame | None:
        """The stored rows of ``table`` (``"layer.table"``) whose ``usage_date`` is one of ``days``; None when
        the database or the table does not exist yet (nothing is stored)."""
        if not days:
            return None
        try:
            window = (min(days), max(days))
            return read_table(self.database, table, "usage_date BETWEEN ? AND ?", list(window), days=window)
        except (WarehouseMissingError, TableMissingError):
            return None


def storage_resources(database: str, shrink_threshold: float = 0.5) -> dict[str, dg.ConfigurableResource]:
    """The two resources every graph over one DuckDB file needs: the IO manager writing it and the ledger
    reading it (the raw assets compare a new answer with what is stored before replacing a day)."""
    return {
        "io_manager": CostDuckDBIOManager(database=database),
        "ledger": Ledger(database=database, shrink_threshold=shrink_threshold),
    }
