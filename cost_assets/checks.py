"""Pandera contracts as Dagster asset checks, and the metadata every materialization carries.

dagster-pandera only builds type checks (no check evaluations, no severity), so the project owns this
small bridge: a contract break becomes a failed ERROR ``AssetCheckResult`` whose metadata shows the
first failing rows, visible in the UI's Checks tab.

Metadata is per partition: a single-run backfill computes many days in one step, and
``add_daily_metadata`` gives each day's materialization that day's own rows and totals (the UI plots
them per partition). Numbers are rounded for reading by name: money (``*_usd``) to cents, every other
float (DBUs, shares) to 4 decimals.
"""

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg
import pandera.errors
import polars as pl

CONTRACT = "contract"
# What a table's blocking contract check says in the UI (its pandera model is in cost_assets/schemas.py).
CONTRACT_DESCRIPTION = (
    "The table's pandera contract (cost_assets/schemas.py: types, nullability, keys, ranges, allowed values); "
    "ERROR: a broken contract writes nothing and blocks everything downstream"
)
PREVIEW_ROWS = 5
FAILING_ROWS = 10


def markdown_table(frame: pl.DataFrame, limit: int = PREVIEW_ROWS) -> str:
    """A small markdown table (the UI renders it) of the first ``limit`` rows."""
    head = frame.head(limit)
    if head.width == 0:
        return "_no columns_"
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * head.width]
    for row in head.iter_rows():
        lines.append("| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |")
    if frame.height > limit:
        lines.append(f"\n_{frame.height - limit} more rows_")
    return "\n".join(lines)


def contract_result(model: type, frame: pl.DataFrame, asset_key: dg.AssetKey) -> dg.AssetCheckResult:
    """Validate ``frame`` against a pandera model; on failure name the failing rows in the metadata."""
    try:
        model.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as e:
        cases = e.failure_cases
        rows = sorted({int(i) for i in cases["index"].drop_nulls().to_list()})[:FAILING_ROWS]
        failing = frame.with_row_index("row").filter(pl.col("row").is_in(rows)) if rows else frame.head(0)
        summary = cases.select("column", "check", pl.col("failure_case").cast(pl.Utf8)).unique().head(20)
        return dg.AssetCheckResult(
            check_name=CONTRACT,
            asset_key=asset_key,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{cases.height} contract violation(s) in {asset_key.to_user_string()}",
            metadata={
                "rows": frame.height,
                "violations": cases.height,
                "failing_row_numbers": dg.MetadataValue.text(", ".join(map(str, rows)) or "(table-level)"),
                "failures": dg.MetadataValue.md(markdown_table(summary, 20)),
                "first_failing_rows": dg.MetadataValue.md(markdown_table(failing, FAILING_ROWS)),
            },
        )
    return dg.AssetCheckResult(check_name=CONTRACT, asset_key=asset_key, passed=True, metadata={"rows": frame.height})


def contract_spec(key: dg.AssetKey, model: type) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CONTRACT,
        asset=key,
        description=f"{model.__name__} contract "
        "(types, nullability, keys, ranges, enums); blocks the write when broken",
    )


MONEY_DECIMALS = 2  # dollars are read in cents
OTHER_DECIMALS = 4  # DBUs (a DBU costs ~$0.07–0.70, so 4 decimals is sub-cent), shares, ratios


def decimals_for(name: str) -> int:
    """How many decimals a metadata value or preview column is shown with, by its name: a name ending in
    ``_usd`` is money (cents); anything else, DBUs included, gets 4 decimals."""
    return MONEY_DECIMALS if name.endswith("_usd") else OTHER_DECIMALS


def rounded(name: str, value: Any) -> Any:
    """``value`` rounded by the rule of ``decimals_for(name)`` if it is a float, else unchanged."""
    return round(value, decimals_for(name)) if isinstance(value, float) else value


def rounded_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every float column rounded by its name (for previews, never for storage)."""
    return frame.with_columns(
        pl.col(name).round(decimals_for(name)) for name, dtype in frame.schema.items() if dtype.is_float()
    )


def frame_metadata(frame: pl.DataFrame, **totals: Any) -> dict:
    """Row count, a small rounded preview, and ``totals`` rounded by name (``rounded``) for one
    materialization. Metadata values (``dg.MetadataValue``), ints and strings pass unchanged."""
    meta: dict = {
        "dagster/row_count": frame.height,
        "preview": dg.MetadataValue.md(markdown_table(rounded_frame(frame))),
    }
    for name, value in totals.items():
        meta[name] = rounded(name, value)
    return meta


def add_daily_metadata(
    context: dg.AssetExecutionContext,
    frame: pl.DataFrame,
    days: Sequence[dt.date],
    totals_fn: Callable[[pl.DataFrame, dt.date], Mapping[str, Any]] | None = None,
    output_name: str | None = None,
    day_column: str = "usage_date",
) -> None:
    """Give each day's partition of a (possibly multi-day) materialization its own metadata.

    For every day of ``days`` (``window_days(context.partition_time_window)``) the rows of ``frame``
    whose ``day_column`` equals that day are the day's frame; its partition (``day.isoformat()``) gets
    ``frame_metadata(day_frame, **totals_fn(day_frame, day))``: ``dagster/row_count`` and ``preview`` of
    that day, plus the totals ``totals_fn`` computes from that day's rows, rounded by name (``*_usd``
    to cents, other floats to 4 decimals). ``totals_fn`` is called for every day, also for a day without
    rows (an empty frame with the same columns), so it must cope with empty frames.

    Contract (verified on Dagster 1.13):

    - Call it **before** yielding the output's ``dg.Output``: Dagster attaches the per-partition
      metadata when it stores the output; metadata added afterwards is silently dropped.
    - Per-day keys win over same-named keys of ``dg.Output(metadata=...)`` and of the IO manager (whose
      ``dagster/row_count`` counts the whole window). Keys given only in ``dg.Output(metadata=...)``
      are copied to *every* day's event, so yield ``dg.Output(frame)`` without window totals.
    - In a multi-asset, pass the ``output_name`` of the output the frame belongs to (one call per
      output); for a single asset leave it ``None``.
    - The days must be partitions of the current run (Dagster raises otherwise); a single-partition run
      is the one-day case.

    Example (raw/billing_usage)::

        add_daily_metadata(context, frame, days, lambda f, day: {
            "billed_dbus": float(f["usage_quantity"].sum()),
            watermarks.METADATA_KEY: dg.MetadataValue.json(watermarks.bill_fingerprints(f, [day]))})
        yield dg.Output(frame)
    """
    asset_key = context.asset_key_for_output(output_name) if output_name is not None else None
    for day in days:
        day_frame = frame.filter(pl.col(day_column) == day)
        totals = totals_fn(day_frame, day) if totals_fn is not None else {}
        context.add_asset_metadata(
            frame_metadata(day_frame, **totals), asset_key=asset_key, partition_key=day.isoformat()
        )


class ContractBroken(dg.Failure):
    """Raised after failed contract checks so nothing is written and stored partitions stay intact. The same
    rows would break the contract again, so the step is never retried."""

    def __init__(self, description: str) -> None:
        super().__init__(description=description, allow_retries=False)
