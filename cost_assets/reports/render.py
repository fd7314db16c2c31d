"""A :class:`~cost_assets.reports.ledger.Report` as an aligned text table, JSON or CSV.

How a value is shown follows from its column's name, so every report reads the same way:
``*_usd`` is money ($1,234.56; unknown money is "—", never $0), ``*_share`` a fraction shown as a percent,
``*_pct`` already a percent, other floats (DBUs, hours) with two decimals, integers with thousands
separators. Numbers are right-aligned.

The JSON is stable: the same stored data gives the same bytes (fixed key order, dates as ISO strings, floats
rounded to 6 decimals, i.e. below a cent). Its shape is described by ``docs/schemas/report.json``.
"""

import datetime as dt
import io
import json
from collections.abc import Iterable

import polars as pl

from cost_assets.reports.ledger import Report

FORMATS = ("table", "json", "csv")
JSON_DECIMALS = 6
UNKNOWN = "—"
# Column headers: what each name means in a few words; both kinds of dollars say which they are.
HEADERS = {
    "usage_date": "day",
    "scored_date": "day",
    "billed_dbus": "billed DBUs",
    "billed_usd": "billed $",
    "unpriced_dbus": "unpriced DBUs",
    "estimated_dbu_usd": "est. DBU $",
    "estimated_vm_usd": "est. VM $",
    "billed_vm_usd": "billed VM $",
    "effective_vm_usd": "effective VM $",
    "billed_cost": "billed (bill's currency)",
    "effective_cost": "effective (bill's currency)",
    "currency_code": "currency",
    "estimated_total_usd": "est. DBU+VM $",
    "estimated_token_usd": "est. token $",
    "runs_usd": "billed to runs",
    "idle_usd": "billed to idle",
    "unattributed_usd": "unattributed",
    "runs_share": "on runs",
    "bill_share": "of bill",
    "runtime_hours": "runtime h",
    "dbus": "DBUs",
    "task_runs": "task runs",
    "cluster_id": "cluster",
    "shared_cluster_usd": "on shared $",
    "shared_cluster_share": "on shared",
    "idle_nearby_usd": "idle nearby $",
    "idle_billed_usd": "idle billed $",
    "cluster_billed_usd": "cluster billed $",
    "cluster_idle_share": "of cluster",
    "idle_estimated_total_usd": "idle est. DBU+VM $",
    "idle_estimated_vm_usd": "idle est. VM $",
    "idle_estimated_disk_usd": "idle est. disk $",
    "within_tolerance_share": "within 5 %",
    "grain_rows": "rows",
    "delta_usd": "delta $",
    "spend_to_date_usd": "spent $",
    "billed_to_date_usd": "of it billed $",
    "estimated_to_date_usd": "of it estimated $",
    "amount_usd": "budget $",
    "forecast_usd": "forecast $",
    "remaining_usd": "remaining $",
    "pct_used": "used",
    "forecast_pct": "forecast",
    "actual_usd": "actual $",
    "expected_usd": "expected $",
    "impact_usd": "impact $",
    "estimated_disk_usd": "est. disk $",
    "effective_disk_usd": "effective disk $",
    "no_bill_estimated_vm_usd": "est. VM $, no bill",
    "no_bill_estimated_disk_usd": "est. disk $, no bill",
    "node_type_id": "node type",
    "pricing_model": "pricing",
    "vm_hours": "VM-hours",
    "effective_per_hour": "effective $/h",
    "sheet_per_hour": "sheet $/h",
    "ratio_to_sheet": "÷ sheet",
}
LEGEND = (
    "billed $ = the Databricks bill (DBU $ only) · est. DBU $ = the estimate of that bill · "
    "est. VM $ / est. disk $ / est. DBU+VM $ (DBU + VMs + their disks) = with the cloud VMs and their disks, "
    "not on the Databricks bill"
)


def money(value: float | None) -> str:
    """$1,234.56 (−$1,234.56 when negative); unknown money is "—", never $0."""
    if value is None:
        return UNKNOWN
    return f"-${-value:,.2f}" if value < 0 and round(value, 2) != 0 else f"${abs(value):,.2f}"


def cell(name: str, value: object) -> str:
    """One value as text, by the rule of its column name."""
    if name.endswith("_usd"):
        return money(value)  # type: ignore[arg-type]
    if value is None:
        return UNKNOWN
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if name.endswith("_per_hour"):  # a unit price: its digits matter ($0.0672/h)
            return f"${value:,.4f}"
        if name.endswith("_share"):
            return f"{100 * value:.1f} %"
        if name.endswith("_pct") or name == "pct_used":
            return f"{value:.1f} %"
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric()


def text_table(frame: pl.DataFrame) -> str:
    """An aligned text table: numbers right-aligned, text left-aligned, a rule under the header."""
    if frame.width == 0:
        return "  (no rows)"
    heads = [HEADERS.get(c, c) for c in frame.columns]
    rows = [[cell(c, v) for c, v in zip(frame.columns, row, strict=True)] for row in frame.iter_rows()]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(heads)]
    right = [_numeric(dtype) for dtype in frame.dtypes]

    def line(values: Iterable[str]) -> str:
        parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)]
        return "  " + "  ".join(parts).rstrip()

    out = [line(heads), "  " + "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows] or ["  (no rows)"]
    return "\n".join(out)


def as_table(report: Report) -> str:
    """The report for reading: a title line, each table under its name, the notes, the dollars' legend."""
    w = report.window
    scope = f", workspace {w.workspace}" if w.workspace else ""
    given = ", ".join(f"{k} {v}" for k, v in report.parameters.items() if v not in (None, [], ()))
    out = [f"{report.name} {w.start} .. {w.end}{scope}" + (f" ({given})" if given else "")]
    for name, frame in report.tables.items():
        if len(report.tables) > 1:
            out.append(f"\n{name}")
        if frame.width or not report.notes:
            out.append(text_table(frame))
    out += [f"\n{note}" for note in report.notes]
    if any(c.startswith(("billed_", "estimated_")) for frame in report.tables.values() for c in frame.columns):
        out.append("\n" + LEGEND)
    return "\n".join(out)


def _json_value(value: object) -> object:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, JSON_DECIMALS)
    return value


def as_json(report: Report) -> str:
    """The report as one stable JSON object (see ``docs/schemas/report.json``)."""
    doc = {
        "report": report.name,
        "start": report.window.start.isoformat(),
        "end": report.window.end.isoformat(),
        "workspace": report.window.workspace,
        "parameters": report.parameters,
        "notes": list(report.notes),
        "tables": {
            name: [{k: _json_value(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]
            for name, frame in report.tables.items()
        },
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def as_csv(report: Report) -> str:
    """The report's main (first) table as CSV, unrounded; the notes go to the caller's stderr."""
    frame = next(iter(report.tables.values()))
    buffer = io.StringIO()
    frame.write_csv(buffer)
    return buffer.getvalue()


def render(report: Report, fmt: str) -> str:
    """``report`` in ``fmt`` (one of :data:`FORMATS`)."""
    return {"table": as_table, "json": as_json, "csv": as_csv}[fmt](report)
