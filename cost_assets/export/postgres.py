"""The Postgres export: the ledger in a ``finops`` schema, replaced one day at a time (docs/exports.md).

The calculator this project replaces kept its figures in Postgres, where FinOps teams and dashboards read
them (``SELECT COUNT(*), SUM(total_cost_usd) FROM finops.calculator_run_costs WHERE reporting_date = …``).
This module writes the same table from the run ledger (:mod:`cost_assets.export.run_ledger`, the numbers
the Observability Service receives too) and mirrors the marts beside it. psycopg 3, no Dagster.

**Migrations.** ``migrations/NNN_name.sql`` are applied in version order, each in the same transaction as
its row in ``finops.schema_migrations`` (version, name, sha256 of the file, applied_at), under a
transaction-scoped advisory lock, so two processes starting at once apply each migration once and a
failing migration leaves nothing behind. An applied migration whose file has changed since is refused:
the schema it built is not what the file now says.

**Days.** :func:`replace_days` deletes the days' rows of every table it is given and COPYs the new rows in,
in one transaction under a second advisory lock (two writers of the same day would otherwise both delete
nothing the other has not committed and both insert). Materializing a day again gives the same rows;
a reader sees the old day or the new day, never half of one. A frame column the table lacks is refused
before anything is deleted, naming the table and column (the schema needs a migration).

**The password is a secret.** It is never logged, stored in metadata or put in an exception: a connection
error is re-raised as :class:`PostgresExportError` with the password scrubbed from its text (psycopg quotes
a malformed connection string whole), and :func:`redact` is the only form of the URL anything shows.
"""

import datetime as dt
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import polars as pl
import psycopg
from psycopg import sql

from cost_assets.export.run_ledger import calculation_version, run_ledger

SCHEMA = "finops"
MIGRATIONS = Path(__file__).parent / "migrations"
# Transaction-scoped advisory lock keys (any two fixed 64-bit numbers; their meaning is in the name).
MIGRATION_LOCK = 0x636F_7374_6D69_6772  # "costmigr"
WRITE_LOCK = 0x636F_7374_7772_6974  # "costwrit"
SCHEMES = ("postgresql", "postgres")
_MIGRATION_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

# The ledger's columns under the names finops.calculator_run_costs gives them (the original calculator's
# where it had one); every other ledger column keeps its name.
RUN_COST_NAMES = {"usage_date": "reporting_date", "run_id": "databricks_run_id"}
# Each finops table and the column a day is replaced by.
DAY_COLUMNS = {
    "calculator_run_costs": "reporting_date",
    "attributed_costs": "usage_date",
    "cost_by_scope": "usage_date",
    "serving_costs": "usage_date",
    "budget_status": "usage_date",
    "cost_anomalies": "usage_date",
}


class PostgresExportError(Exception):
    """The export cannot proceed; the message names the table, file or setting, never the password.
    ``transient``: the connection failed or broke, so another try may succeed (a refusal will not)."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


# ------------------------------------------------------------------------------------------ the URL


def url_problem(url: str) -> str | None:
    """What is wrong with a ``COST_ASSETS_POSTGRES_URL`` value (redacted in the text), or None."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        return f"{redact(url)}: must be postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    if not parts.hostname or not parts.path.strip("/"):
        return f"{redact(url)}: needs a host and a database (postgresql://USER:PASSWORD@HOST:PORT/DATABASE)"
    return None


def redact(url: str) -> str:
    """``url`` with its password (and any query string) replaced by ``***``: the only form ever shown."""
    parts = urlsplit(url)
    if not parts.scheme or "://" not in url:
        return "***"
    host = f"{parts.hostname or ''}{f':{parts.port}' if _port(parts) else ''}"
    user = f"{parts.username}:***@" if parts.password is not None else f"{parts.username}@" if parts.username else ""
    query = "?***" if parts.query else ""
    return f"{parts.scheme}://{user}{host}{parts.path}{query}"


def _port(parts) -> int | None:
    try:
        return parts.port
    except ValueError:  # a non-numeric port: not shown
        return None


def scrub(text: str, url: str) -> str:
    """``text`` without the URL's password (as written and percent-decoded) or the URL itself."""
    secrets = [url]
    password = urlsplit(url).password
    if password:
        secrets += [password, unquote(password), quote(unquote(password), safe="")]
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@contextmanager
def connect(url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to ``url`` (closed on leaving). Every psycopg error, on connecting or
    inside the block, comes out as :class:`PostgresExportError` scrubbed of the password, without the
    original chained (its text may quote the connection string)."""
    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="cost_assets export")
    except psycopg.Error as e:
        raise _scrubbed(e, url, f"cannot connect to {redact(url)}") from None
    try:
        yield connection
    except psycopg.Error as e:
        raise _scrubbed(e, url, f"on {redact(url)}") from None
    finally:
        connection.close()


# How libpq words a refused connection (it gives no SQLSTATE before the session exists).
_REFUSALS = ("authentication failed", "pg_hba.conf", "does not exist", "permission denied", "invalid")


def _scrubbed(error: psycopg.Error, url: str, where: str) -> PostgresExportError:
    # A connection that failed or broke (SQLSTATE class 08 connection / 53 resources / 57 operator
    # intervention, or none) may work on another try; a refusal (a bad password or database, an SQL error)
    # will not.
    text = scrub(str(error), url).strip()
    state = error.sqlstate
    transient = (
        isinstance(error, psycopg.OperationalError)
        and (state is None or state[:2] in ("08", "53", "57"))
        and not any(word in text.lower() for word in _REFUSALS)
    )
    return PostgresExportError(f"{where}: {text}", transient=transient)


# ------------------------------------------------------------------------------------------ migrations


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations(directory: Path = MIGRATIONS) -> list[Migration]:
    """The migrations in ``directory`` (``NNN_name.sql``), by version; a stray or duplicate file is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise PostgresExportError(f"{path.name}: a migration file is named NNN_lowercase_name.sql")
        version = int(match.group(1))
        if version in found:
            raise PostgresExportError(f"{path.name}: version {version} is also {found[version].name}")
        found[version] = Migration(version, path.stem, path.read_text())
    return [found[v] for v in sorted(found)]


SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS finops.schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


def migrate(connection: psycopg.Connection, directory: Path = MIGRATIONS) -> list[int]:
    """Bring the ``finops`` schema to the newest migration; the versions applied now (none when current)."""
    wanted = migrations(directory)
    with connection.transaction(), connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
        cur.execute("CREATE SCHEMA IF NOT EXISTS finops")
        cur.execute(SCHEMA_MIGRATIONS)
        cur.execute("SELECT version, name, checksum FROM finops.schema_migrations")
        applied = {version: (name, checksum) for version, name, checksum in cur.fetchall()}
        done = []
        for migration in wanted:
            if migration.version in applied:
                name, checksum = applied[migration.version]
                if checksum != migration.checksum:
                    raise PostgresExportError(
                        f"migration {migration.name}.sql was changed after it was applied (as {name}); "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            cur.execute(migration.sql)
            cur.execute(
                "INSERT INTO finops.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                [migration.version, migration.name, migration.checksum],
            )
            done.append(migration.version)
    return done


# ------------------------------------------------------------------------------------------ the rows


def calculator_run_costs(run_costs: pl.DataFrame, attributed: pl.DataFrame) -> pl.DataFrame:
    """``finops.calculator_run_costs`` rows: the run ledger renamed, each day with its calculation_version."""
    ledger = run_ledger(run_costs, attributed)
    versions = pl.DataFrame(
        [(day, calculation_version(part)) for (day,), part in ledger.group_by("usage_date")],
        schema={"usage_date": pl.Date, "calculation_version": pl.String},
        orient="row",
    )
    return ledger.join(versions, on="usage_date", how="left").rename(RUN_COST_NAMES)


def finops_frames(marts: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The rows of each finops table from the marts it mirrors: ``run_costs`` and ``attributed_costs``
    (both needed) give ``calculator_run_costs``; every other mart given (``attributed_costs``,
    ``cost_by_scope``, ``serving_costs``, ``budget_status``, ``cost_anomalies``) is copied as it is."""
    frames = {"calculator_run_costs": calculator_run_costs(marts["run_costs"], marts["attributed_costs"])}
    unknown = set(marts) - {"run_costs"} - set(DAY_COLUMNS)
    if unknown:
        raise ValueError(f"no finops table for {sorted(unknown)}")
    frames.update({name: frame for name, frame in marts.items() if name in DAY_COLUMNS})
    return frames


def _table_columns(cur: psycopg.Cursor, table: str) -> set[str]:
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        [SCHEMA, table],
    )
    return {row[0] for row in cur.fetchall()}


def replace_days(
    connection: psycopg.Connection, frames: Mapping[str, pl.DataFrame], days: Sequence[dt.date]
) -> dict[str, int]:
    """In one transaction, every table of ``frames`` loses its rows of ``days`` and gets the frame's rows
    (which must lie within ``days``); the rows written per table."""
    for table, frame in frames.items():
        outside = frame.filter(~pl.col(DAY_COLUMNS[table]).is_in(list(days)))
        if outside.height:
            raise PostgresExportError(
                f"finops.{table}: {outside.height} row(s) outside the days written "
                f"(first {outside[DAY_COLUMNS[table]][0]})"
            )
    written = {}
    with connection.transaction(), connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK])
        for table, frame in frames.items():
            missing = [c for c in frame.columns if c not in _table_columns(cur, table)]
            if missing:
                raise PostgresExportError(
                    f"finops.{table} lacks column(s) {missing}: the schema needs a migration for them"
                )
            name = sql.Identifier(SCHEMA, table)
            cur.execute(
                sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(name, sql.Identifier(DAY_COLUMNS[table])),
                [list(days)],
            )
            columns = sql.SQL(", ").join(map(sql.Identifier, frame.columns))
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(name, columns)) as copy:
                for row in frame.iter_rows():
                    copy.write_row(row)
            written[table] = frame.height
    return written


VERIFY = (
    "SELECT reporting_date, COUNT(*), SUM(total_cost_usd) FROM finops.calculator_run_costs "
    "WHERE reporting_date = ANY(%s) GROUP BY reporting_date"
)


def verify(connection: psycopg.Connection, days: Sequence[dt.date]) -> dict[dt.date, tuple[int, float | None]]:
    """The original verification query's answer per day: rows and Σ total_cost_usd of calculator_run_costs."""
    with connection.cursor() as cur:
        cur.execute(VERIFY, [list(days)])
        found = {day: (count, float(total) if total is not None else None) for day, count, total in cur.fetchall()}
    return {day: found.get(day, (0, None)) for day in days}
