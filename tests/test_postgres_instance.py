"""The production Dagster instance (deploy/dagster.yaml) against a real PostgreSQL server.

`make test` starts a throwaway PostgreSQL 15 server (scripts/pg.sh) and exports its address as
COST_ASSETS_TEST_PG_URL. Each test gets a database of its own on that server, renders an instance from
deploy/dagster.yaml with the DAGSTER_PG_* variables pointing at it, and uses it for real.
"""

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[1]
DEPLOY_INSTANCE_YAML = REPO / "deploy" / "dagster.yaml"
ASSET_KEY = dg.AssetKey(["raw", "jobs"])
PARTITION = "2026-01-05"


def _server_url() -> sa.URL:
    raw = os.environ.get("COST_ASSETS_TEST_PG_URL")
    if not raw:
        pytest.fail(
            "COST_ASSETS_TEST_PG_URL is not set. These tests need the throwaway PostgreSQL server that "
            "`make test` starts (scripts/pg.sh run -- .venv/bin/pytest ...): run `make test`, or export "
            "COST_ASSETS_TEST_PG_URL=postgresql://USER:PASSWORD@127.0.0.1:PORT/postgres for a server "
            "whose user may create databases.",
            pytrace=False,
        )
    # SQLAlchemy 2.1 maps a bare postgresql:// URL to psycopg 3; dagster-postgres installs psycopg2.
    return sa.make_url(raw).set(drivername="postgresql+psycopg2")


@contextmanager
def _fresh_database() -> Iterator[sa.URL]:
    """A fresh, empty database on the test server; dropped afterwards."""
    server = _server_url()
    name = f"cost_assets_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield server.set(database=name)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def _deploy_instance(tmp_path: Path, database: sa.URL, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """deploy/dagster.yaml, unchanged, in a temporary DAGSTER_HOME, pointed at `database`."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(DEPLOY_INSTANCE_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_USER", database.username or "")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", database.password or "")
    monkeypatch.setenv("DAGSTER_PG_HOST", database.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(database.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_DB", database.database or "")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


def _table_names(database: sa.URL) -> set[str]:
    engine = sa.create_engine(database)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_deploy_yaml_renders_a_postgres_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    with _fresh_database() as database, _deploy_instance(tmp_path, database, monkeypatch) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        # The storages created their tables in the test's own database.
        expected = {"runs", "event_logs", "jobs", "concurrency_limits", "alembic_version"}
        assert expected <= _table_names(database)


def test_materialize_a_partition_on_the_postgres_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with _fresh_database() as database, _deploy_instance(tmp_path, database, monkeypatch) as instance:
        from cost_assets.definitions import build_defs

        defs = build_defs({"COST_ASSETS_DUCKDB": str(tmp_path / "t.duckdb")})
        assets_def = defs.get_assets_def(ASSET_KEY)
        pool = assets_def.node_def.pool
        assert pool == "duckdb_writer", f"{ASSET_KEY.to_user_string()} writes DuckDB but is in pool {pool!r}"
        # All that the op making raw/jobs produces: a multi-asset need not allow a subset.
        job_name = "postgres_instance_test"
        selection = dg.AssetSelection.assets(*assets_def.keys)
        defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[dg.define_asset_job(job_name, selection=selection)]))
        result = defs.resolve_job_def(job_name).execute_in_process(partition_key=PARTITION, instance=instance)
        assert result.success

        # The run, read back through the Postgres-backed instance.
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags.get("dagster/partition") == PARTITION

        # The materialization event for this asset and partition.
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ASSET_KEY, asset_partitions=[PARTITION]), limit=10
        ).records
        assert [r.run_id for r in records] == [result.run_id]
        assert records[0].asset_materialization is not None
        assert records[0].asset_materialization.partition == PARTITION

        # The step took its slot from the pool limit the instance keeps in Postgres (default_limit: 1),
        # and gave it back.
        info = instance.event_log_storage.get_concurrency_info(pool)
        assert (info.slot_count, info.claimed_slots) == (1, [])

        # And the row itself, straight from the `runs` table of the test's database.
        engine = sa.create_engine(database)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text("SELECT run_id, status, partition FROM runs WHERE run_id = :run_id"),
                    {"run_id": result.run_id},
                ).all()
        finally:
            engine.dispose()
        assert [tuple(r) for r in rows] == [(result.run_id, "SUCCESS", PARTITION)]
