"""Pandera contracts as Dagster asset checks, and the metadata every materialization carries.

dagster-pandera only builds type checks (no check evaluations, no severity), so the project owns this
small bridge: a contract break becomes a failed ERROR ``AssetCheckResult`` whose metadata shows the
first failing rows, visible in the UI's Checks tab.
"""

import dagster as dg
import pandera.errors
import polars as pl

CONTRACT = "contract"
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
            check_name=CONTRACT, asset_key=asset_key, passed=False, severity=dg.AssetCheckSeverity.ERROR,
            description=f"{cases.height} contract violation(s) in {asset_key.to_user_string()}",
            metadata={
                "rows": frame.height,
                "violations": cases.height,
                "failing_row_numbers": dg.MetadataValue.text(", ".join(map(str, rows)) or "(table-level)"),
                "failures": dg.MetadataValue.md(markdown_table(summary, 20)),
                "first_failing_rows": dg.MetadataValue.md(markdown_table(failing, FAILING_ROWS)),
            })
    return dg.AssetCheckResult(check_name=CONTRACT, asset_key=asset_key, passed=True,
                               metadata={"rows": frame.height})


def contract_spec(key: dg.AssetKey, model: type) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(CONTRACT, asset=key, description=f"{model.__name__} contract "
                             "(types, nullability, keys, ranges, enums); blocks the write when broken")


def frame_metadata(frame: pl.DataFrame, **totals: float | int | str) -> dict:
    """Row count, a small preview, and totals (rounded for reading) for a materialization."""
    meta: dict = {"dagster/row_count": frame.height, "preview": dg.MetadataValue.md(markdown_table(frame))}
    for name, value in totals.items():
        meta[name] = round(value, 4) if isinstance(value, float) else value
    return meta


class ContractBroken(dg.Failure):
    """Raised after failed contract checks so nothing is written and stored partitions stay intact."""
