"""``export/postgres``: the ledger and the marts in Postgres' ``finops`` schema, present only with
``COST_ASSETS_POSTGRES_URL`` (docs/exports.md). The pure part and the SQL are
``cost_assets/export/postgres.py`` and its ``migrations/``.

It is a leaf below the marts: in a run of ``daily_pipeline`` the marts are stored before it starts, so a
Postgres that is down or refuses fails only this step (the run is marked failed; every mart of the day is
written) and the next materialization of the day catches up. A connection that fails or breaks is retried
(``SOURCE_RETRY``); a refusal (bad password, a schema it cannot migrate) is not.
"""

from collections.abc import Collection

import dagster as dg
import polars as pl

from cost_assets.assets.budgets import BUDGET_STATUS
from cost_assets.assets.costs import RUN_COSTS
from cost_assets.assets.policies import DAILY_ASSET, SOURCE_RETRY
from cost_assets.assets.reconciliation import ATTRIBUTED_COSTS
from cost_assets.assets.reporting import COST_BY_SCOPE, SERVING_COSTS
from cost_assets.export import postgres
from cost_assets.partitions import window_days

POSTGRES_EXPORT = dg.AssetKey(["export", "postgres"])
COST_ANOMALIES = dg.AssetKey(["mart", "cost_anomalies"])
# The marts the export reads (input name = finops table it feeds), and those it reads only when present.
MARTS = {
    "run_costs": RUN_COSTS,
    "attributed_costs": ATTRIBUTED_COSTS,
    "cost_by_scope": COST_BY_SCOPE,
    "serving_costs": SERVING_COSTS,
}
OPTIONAL_MARTS = {"budget_status": BUDGET_STATUS, "cost_anomalies": COST_ANOMALIES}


class PostgresTarget(dg.ConfigurableResource):
    """The Postgres database of the ``finops`` schema; ``url`` is a ``dg.EnvVar`` (a secret: read when a
    run starts, never shown; only :func:`postgres.redact` of it appears anywhere)."""

    url: str

    def export(self, frames: dict[str, pl.DataFrame], days: list) -> tuple[list[int], dict, dict]:
        """Migrate, replace the days, verify: (migrations applied, rows per table, verification per day)."""
        with postgres.connect(self.url) as connection:
            applied = postgres.migrate(connection)
            written = postgres.replace_days(connection, frames, days)
            return applied, written, postgres.verify(connection, days)

    @property
    def target(self) -> str:
        return postgres.redact(self.url)


def build_postgres_export(present: Collection[dg.AssetKey]) -> dg.AssetsDefinition:
    """The export asset reading the marts, plus budget status and anomalies when ``present`` has them."""
    marts = {**MARTS, **{name: key for name, key in OPTIONAL_MARTS.items() if key in present}}

    @dg.asset(
        key=POSTGRES_EXPORT,
        group_name="export",
        kinds={"postgres"},
        ins={name: dg.AssetIn(key) for name, key in marts.items()},
        retry_policy=SOURCE_RETRY,
        # Loading the inputs opens the DuckDB file, which a writing step elsewhere would hold.
        pool="duckdb_writer",
        **DAILY_ASSET,
    )
    def postgres_export(
        context: dg.AssetExecutionContext, postgres_target: PostgresTarget, **frames: pl.DataFrame
    ) -> dg.MaterializeResult:
        """The day's per-run ledger as ``finops.calculator_run_costs`` (the original calculator's columns,
        cost_basis billed/estimated, calculation_version) and the marts as ``finops.<mart>`` tables; each day
        replaced in one transaction after the schema is migrated."""
        days = window_days(context.partition_time_window)
        tables = postgres.finops_frames(frames)
        try:
            applied, written, verified = postgres_target.export(tables, days)
        except postgres.PostgresExportError as e:
            if e.transient:
                raise
            raise dg.Failure(description=str(e), allow_retries=False) from None
        if applied:
            context.log.info(f"finops schema migrated: {applied} on {postgres_target.target}")
        for day in days:
            rows, total = verified[day]
            context.add_asset_metadata(
                {
                    "target": postgres_target.target,
                    **{
                        f"rows/{table}": frame.filter(pl.col(postgres.DAY_COLUMNS[table]) == day).height
                        for table, frame in tables.items()
                    },
                    # The original verification query's answer, read back from Postgres.
                    "verification/run_rows": rows,
                    "verification/total_cost_usd": round(total, 2) if total is not None else 0.0,
                },
                partition_key=day.isoformat(),
            )
        context.log.info(f"finops: {written} row(s) written for {days[0]}..{days[-1]}")
        return dg.MaterializeResult()

    return postgres_export
