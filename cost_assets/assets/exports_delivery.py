"""The ``export`` assets that deliver the ledger elsewhere: the Observability Service POST and the FOCUS 1.3
files. Each is present only when configured (``definitions.build_defs``), daily-partitioned, idempotent
per day, and downstream of the marts, so its failure never blocks them. The pure cores are
``cost_assets/export/observability.py`` and ``cost_assets/export/focus.py``; the per-run numbers come from
``cost_assets/export/run_ledger.py`` (shared with the Postgres export)."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl

from cost_assets.assets.costs import RUN_COSTS
from cost_assets.assets.policies import DAILY_ASSET, SOURCE_RETRY
from cost_assets.assets.raw import BILLING_USAGE
from cost_assets.assets.reconciliation import ATTRIBUTED_COSTS
from cost_assets.assets.reference import DBU_PRICES
from cost_assets.export import focus, observability
from cost_assets.export.run_ledger import run_ledger
from cost_assets.ingest.http import REDACTED, ApiError
from cost_assets.partitions import window_days

OBSERVABILITY_SERVICE = dg.AssetKey(["export", "observability_service"])
FOCUS_FILES = dg.AssetKey(["export", "focus"])


class ObservabilityService(dg.ConfigurableResource):
    """Where the per-run costs are POSTed; ``token`` is a ``dg.EnvVar`` (read when a run starts, never shown)."""

    url: str
    token: str
    batch_size: int = observability.DEFAULT_BATCH_SIZE

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """``repr`` shows ``token`` as ``<redacted>``, so the resource can appear in logs and errors safely."""
        for name, value in super().__repr_args__():
            yield name, (REDACTED if name == "token" and value else value)

    def deliver(self, day_batches: list[observability.Batch]) -> dict[str, float]:
        """POST the batches; a refusal another try cannot fix (401/403, a rejected payload) fails the step
        without the step's own retries, an outage that outlasts the client's retries gets them."""
        try:
            return observability.deliver(self.url, self.token, day_batches)
        except ApiError as e:
            if e.status is not None and e.status < 500 and e.status != 429:
                raise dg.Failure(description=str(e), allow_retries=False) from None
            raise


class FocusExport(dg.ConfigurableResource):
    """Where the FOCUS files go and what the bill's cloud and region are."""

    directory: str
    cloud: str
    region: str | None = None


def _total_usd(day_batches: list[observability.Batch]) -> float:
    """The priced runs' total $ of a day's batches (unpriced runs carry null and are not in it)."""
    return round(sum(run["total_cost_usd"] or 0.0 for batch in day_batches for run in batch.body["runs"]), 2)


@dg.asset(
    key=OBSERVABILITY_SERVICE,
    group_name="export",
    kinds={"http"},
    ins={"run_costs": dg.AssetIn(RUN_COSTS), "attributed": dg.AssetIn(ATTRIBUTED_COSTS)},
    retry_policy=SOURCE_RETRY,
    # Loading the inputs opens the DuckDB file, which a writing step elsewhere would hold.
    pool="duckdb_writer",
    **DAILY_ASSET,
)
def observability_service(
    context: dg.AssetExecutionContext,
    observability_endpoint: ObservabilityService,
    run_costs: pl.DataFrame,
    attributed: pl.DataFrame,
) -> dg.MaterializeResult:
    """Each day's per-run costs POSTed to the Observability Service as the original calculator's payload
    (``calculation_date``, ``calculation_version``, ``runs``), in deterministic batches with an
    ``Idempotency-Key`` per (date, version, batch): a day sent again repeats the same keys."""
    ledger = run_ledger(run_costs, attributed)
    calls = retries = 0
    for day in window_days(context.partition_time_window):
        day_batches = observability.batches(ledger, day, observability_endpoint.batch_size)
        stats = observability_endpoint.deliver(day_batches) if day_batches else {"calls": 0, "retries": 0}
        calls, retries = calls + int(stats["calls"]), retries + int(stats["retries"])
        context.add_asset_metadata(
            {
                "runs": sum(b.run_count for b in day_batches),
                "batches": len(day_batches),
                "calculation_version": day_batches[0].body["calculation_version"] if day_batches else "",
                "idempotency_keys": dg.MetadataValue.json([b.key for b in day_batches]),
                "total_cost_usd": _total_usd(day_batches),
                "api/calls": int(stats["calls"]),
                "api/retries": int(stats["retries"]),
            },
            partition_key=day.isoformat(),
        )
    context.log.info(f"Observability Service: {calls} call(s), {retries} retried")
    return dg.MaterializeResult()


@dg.asset(
    key=FOCUS_FILES,
    group_name="export",
    kinds={"parquet", "csv"},
    ins={
        "attributed": dg.AssetIn(ATTRIBUTED_COSTS),
        "billing": dg.AssetIn(BILLING_USAGE),
        "dbu_prices": dg.AssetIn(DBU_PRICES),
    },
    pool="duckdb_writer",
    **DAILY_ASSET,
)
def focus_files(
    context: dg.AssetExecutionContext,
    focus_export: FocusExport,
    attributed: pl.DataFrame,
    billing: pl.DataFrame,
    dbu_prices: pl.DataFrame,
) -> dg.MaterializeResult:
    """The attributed ledger as FOCUS 1.3 Cost and Usage rows (split cost allocation columns included), one
    Parquet + CSV pair per day, each file replaced atomically. A day that breaks the FOCUS column rules
    is not written (the step fails naming the rule); unpriced rows are left out and counted."""
    rows = focus.focus_rows(attributed, billing, dbu_prices, cloud=focus_export.cloud, region=focus_export.region)
    problems = focus.violations(rows)
    if problems:
        raise dg.Failure(description="FOCUS rules broken:\n" + "\n".join(problems), allow_retries=False)
    day_of = pl.col("ChargePeriodStart").dt.date()
    for day in window_days(context.partition_time_window):
        day_rows = rows.filter(day_of == day)
        parquet, csv = focus.write_day(day_rows, focus_export.directory, day)
        context.add_asset_metadata(
            {
                "dagster/row_count": day_rows.height,
                "billed_cost_usd": round(float(day_rows["BilledCost"].sum()), 2),
                "correction_rows": day_rows.filter(pl.col("ChargeClass") == "Correction").height,
                "unpriced_rows_left_out": focus.unpriced_rows(attributed.filter(pl.col("usage_date") == day)),
                "parquet": dg.MetadataValue.path(str(parquet)),
                "csv": dg.MetadataValue.path(str(csv)),
            },
            partition_key=day.isoformat(),
        )
    return dg.MaterializeResult()
