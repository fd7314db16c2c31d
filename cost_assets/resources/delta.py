"""Delta Lake storage for the cost tables (``COST_ASSETS_STORAGE=delta:<uri>``): the project's own IO manager.

Asset keys ``[layer, table]`` become Delta tables at ``<root>/<layer>/<table>``, the names of the DuckDB
tables; the write itself is :func:`cost_assets.delta.replace` (polars + delta-rs, no Dagster).

Why not ``dagster-deltalake-polars`` (0.29.27, in lockstep with Dagster 1.13.27)? Read from its source:

* it needs ``pyarrow`` (``polars[pyarrow]``, ``dagster-deltalake`` imports ``pyarrow.dataset``), which this
  project does without (frames cross as Arrow PyCapsules, ``arro3`` on the delta-rs side);
* when it cannot open the existing table it swallows *every* exception (``except Exception: pass``), and
  when it cannot build a partition predicate it silently falls back to ``append``: a credentials error or a
  re-run then duplicates a day instead of failing or replacing it;
* there is no partition-window check (rows outside the day would survive the next re-run), no
  ``REPLACE_BY`` narrowing, no declared-added-column path, and a new column fails with delta-rs's bare
  ``Cannot cast schema, number of fields does not match`` rather than naming the table and the columns;
* its column metadata is the frame's, not the stored table's.

What this IO manager guarantees (the same as :mod:`cost_assets.resources.warehouse`'s DuckDB one):

* a partitioned write replaces the partition window — narrowed to the frame's values of the asset's
  ``REPLACE_BY`` columns when it declares them — in **one Delta commit** (delta-rs's predicate overwrite
  removes the window's files and adds the new ones together): a failed write leaves the old rows;
* columns are matched **by name** and cast to the table's types; a column the frame lacks is stored as NULL
  (a WARN); a new column is :class:`~cost_assets.resources.warehouse.SchemaDriftError` unless the asset
  declares it in ``ADDED_COLUMNS`` (then it joins the table in the same commit);
* every row must lie in the partition window (:class:`~cost_assets.resources.warehouse.PartitionWindowError`,
  nothing written);
* an empty frame still creates the table (a downstream load then sees an empty day, not a missing table);
* unpartitioned outputs replace the table whole.

Concurrency: unlike a DuckDB file, a Delta table takes writers of different days at once (each day is its
own partition folder; delta-rs retries a commit that raced a disjoint one). These assets therefore do not
take the ``duckdb_writer`` pool (:func:`cost_assets.resources.storage.storage_assets`).
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
import polars as pl
from dagster._core.storage.db_io_manager import DbClient, DbIOManager, DbTypeHandler, TableSlice

from cost_assets import delta
from cost_assets.catalog import descriptions_by_name
from cost_assets.resources.warehouse import (
    ADDED_COLUMNS,
    REPLACE_BY,
    PartitionWindowError,
    SchemaDriftError,
    WarehouseError,
)

__all__ = ["CostDeltaIOManager", "DeltaClient", "PolarsDeltaTypeHandler"]

ERRORS = delta.ErrorTypes(generic=WarehouseError, window=PartitionWindowError, drift=SchemaDriftError)


def _declared(context: dg.OutputContext, key: str) -> list[str]:
    """A list-valued definition metadata entry (raw or a MetadataValue); [] when absent."""
    value = (context.definition_metadata or {}).get(key) or []
    return list(getattr(value, "value", value))


def _uri(table_slice: TableSlice) -> str:
    return delta.table_uri(str(table_slice.database), f"{table_slice.schema}.{table_slice.table}")


def _window(table_slice: TableSlice) -> delta.Window | None:
    """The daily window a partitioned slice covers; None for an unpartitioned one."""
    dims = table_slice.partition_dimensions or []
    if not dims:
        return None
    if len(dims) != 1 or not isinstance(dims[0].partitions, dg.TimeWindow):
        raise WarehouseError(
            f"{table_slice.schema}.{table_slice.table}: the Delta ledger stores time-partitioned (daily) or "
            "unpartitioned tables only."
        )
    window = dims[0].partitions
    return delta.Window(dims[0].partition_expr, window.start.date(), window.end.date())


class PolarsDeltaTypeHandler(DbTypeHandler[pl.DataFrame]):
    """Stores ``pl.DataFrame`` outputs in Delta tables, one commit per write; loads them back."""

    def handle_output(
        self, context: dg.OutputContext, table_slice: TableSlice, obj: pl.DataFrame, connection: str
    ) -> Mapping[str, Any]:
        name = f"{table_slice.schema}.{table_slice.table}"
        log = getattr(context, "log", None)
        written = delta.replace(
            connection,
            obj,
            name=name,
            window=_window(table_slice),
            replace_by=_declared(context, REPLACE_BY),
            added_columns=_declared(context, ADDED_COLUMNS),
            warn=log.warning if log is not None else lambda _message: None,
            errors=ERRORS,
        )
        described = descriptions_by_name((context.definition_metadata or {}).get("dagster/column_schema"))
        return {
            "dagster/row_count": dg.MetadataValue.int(written.frame.height),
            "dagster/uri": dg.MetadataValue.path(connection),
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(name=col, type=str(dtype), description=described.get(col))
                    for col, dtype in written.columns.items()
                ]
            ),
        }

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection: str) -> pl.DataFrame:
        """Load the partition window (or the whole table) and the requested ``columns``, as polars."""
        table = delta.open_table(connection)
        if table is None:
            asset = context.asset_key.to_user_string() if context.has_asset_key else "upstream"
            raise WarehouseError(
                f"Table {table_slice.schema}.{table_slice.table} does not exist in the Delta ledger "
                f"({connection}): materialize its asset ({asset}) first."
            )
        columns = list(table_slice.columns) if table_slice.columns else None
        if any(len(dim.partitions) == 0 for dim in table_slice.partition_dimensions or []):
            # The input maps to no upstream partition (e.g. the first day under a "previous day" mapping).
            return delta.load(connection, columns, table=table, rows=False)
        return delta.load(connection, columns, _window(table_slice), table=table)

    @property
    def supported_types(self) -> Sequence[type[object]]:
        return [pl.DataFrame]


class DeltaClient(DbClient[str]):
    """The "connection" is the table's URI: delta-rs opens the table per operation, and there is no schema
    to create nor a separate delete (the handler's commit replaces the window)."""

    @staticmethod
    def delete_table_slice(context: dg.OutputContext, table_slice: TableSlice, connection: str) -> None:
        return None

    @staticmethod
    def ensure_schema_exists(context: dg.OutputContext, table_slice: TableSlice, connection: str) -> None:
        return None

    @staticmethod
    def get_table_name(table_slice: TableSlice) -> str:
        return f"{table_slice.schema}.{table_slice.table}"

    @staticmethod
    def get_select_statement(table_slice: TableSlice) -> str:
        """The slice as Databricks SQL reads the table in place (``delta.`<uri>```; backquoted identifiers)."""
        columns = ", ".join(f"`{col}`" for col in table_slice.columns) if table_slice.columns else "*"
        window = _window(table_slice)
        where = ""
        if window:
            day = f"`{window.column}`"
            where = f" WHERE {day} >= '{window.start.isoformat()}' AND {day} < '{window.end.isoformat()}'"
        return f"SELECT {columns} FROM delta.`{_uri(table_slice)}`{where}"

    @staticmethod
    @contextmanager
    def connect(context: dg.OutputContext | dg.InputContext, table_slice: TableSlice) -> Iterator[str]:
        yield _uri(table_slice)


class CostDeltaIOManager(dg.ConfigurableIOManagerFactory):
    """The project's IO manager for ``COST_ASSETS_STORAGE=delta:<uri>``: polars frames in Delta tables
    ``<root>/<layer>/<table>``.

    Partitioned assets need ``partition_expr`` metadata naming the partition column (``usage_date``), which
    is also the Delta partition column. Credentials for object storage come from the environment (``AWS_*``),
    read by delta-rs, never by this config.
    """

    root: str

    def create_io_manager(self, context: dg.InitResourceContext) -> DbIOManager:
        return DbIOManager(
            db_client=DeltaClient(),
            database=self.root,
            schema=None,
            type_handlers=[PolarsDeltaTypeHandler()],
            default_load_type=pl.DataFrame,
            io_manager_name="CostDeltaIOManager",
        )
