"""A source that forgets is not the truth about a day that already has data.

Sources forget: the Jobs API keeps runs ~60 days and cluster events ~30 days, a bill download or a
``system.billing.usage`` query can lack a day that is not ingested yet or was filtered away, and a CSV
can be saved header-only. Writing such an answer over a stored partition would silently destroy data
(the stored bill of a day replaced by nothing, its reconciliation flipped to ``no_billing``). So before a
raw table replaces stored days, every day's new rows are compared with its stored rows, and a day whose
new answer is *suspect* keeps its stored rows:

* **the bill** (:data:`BILL`): suspect when the source returns no rows for the day, or when its net
  billed quantity drops by more than ``threshold`` (a share, default 0.5) and the drop is not explained
  by RETRACTION records — i.e. the quantity billed *before* retractions (ORIGINAL + RESTATEMENT) drops by
  more than the share too. A correction that retracts usage lowers the net but not the gross, so it is
  accepted;
* **runs and events** (:data:`RETAINED`): these sources only ever forget a past day (retention, deleted
  runs); suspect when a day has fewer rows than stored.

A day with nothing stored is never suspect (there is nothing to lose). Pure polars, no Dagster: the raw
assets call :func:`refused_days` and :func:`keep_stored`, and fail the run naming what was kept unless the
run carries the :data:`ACCEPT_TAG` override.
"""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import polars as pl

ACCEPT_TAG = "cost_assets/accept_smaller_source"
DEFAULT_THRESHOLD = 0.5

Rule = Literal["bill", "retained"]
BILL: Rule = "bill"
RETAINED: Rule = "retained"


@dataclass(frozen=True)
class DayCheck:
    """One day's stored vs new answer of one table, and why the new one is refused (None: accepted)."""

    table: str
    day: dt.date
    stored_rows: int
    new_rows: int
    stored_quantity: float | None = None  # the bill's net quantity (DBUs); None for row-count tables
    new_quantity: float | None = None
    reason: str | None = None
    unit: str = "DBUs"  # what the quantity counts (the cloud bill's is its cost)

    def describe(self) -> str:
        text = f"{self.table} {self.day}: stored {self.stored_rows:,} rows, new {self.new_rows:,}"
        if self.stored_quantity is not None:
            text += f" (net {self.stored_quantity:,.4f} {self.unit} stored, {self.new_quantity or 0.0:,.4f} new)"
        return text + (f" — {self.reason}" if self.reason else "")


def _per_day(frame: pl.DataFrame, with_quantity: bool) -> dict[dt.date, tuple[int, float, float]]:
    """day → (rows, net quantity, gross quantity without RETRACTION records)."""
    if frame.height == 0:
        return {}
    aggs = [pl.len().alias("rows")]
    if with_quantity:
        aggs += [
            pl.col("usage_quantity").sum().alias("net"),
            pl.col("usage_quantity").filter(pl.col("record_type") != "RETRACTION").sum().alias("gross"),
        ]
    else:
        aggs += [pl.lit(0.0).alias("net"), pl.lit(0.0).alias("gross")]
    out = frame.group_by("usage_date").agg(aggs)
    return {r["usage_date"]: (r["rows"], r["net"] or 0.0, r["gross"] or 0.0) for r in out.iter_rows(named=True)}


def check_days(
    table: str,
    stored: pl.DataFrame,
    new: pl.DataFrame,
    days: Iterable[dt.date],
    rule: Rule,
    threshold: float = DEFAULT_THRESHOLD,
    unit: str = "DBUs",
) -> list[DayCheck]:
    """Compare the new answer with the stored rows, day by day (``usage_date``), under ``rule``."""
    if not 0 < threshold < 1:
        raise ValueError(f"the shrink threshold is a share in (0, 1), got {threshold}")
    bill = rule == BILL
    old, now = _per_day(stored, bill), _per_day(new, bill)
    checks = []
    for day in sorted(set(days)):
        s_rows, s_net, s_gross = old.get(day, (0, 0.0, 0.0))
        n_rows, n_net, n_gross = now.get(day, (0, 0.0, 0.0))
        reason = None
        if s_rows and not n_rows:
            reason = "the source returned no rows for a day that is stored"
        elif s_rows and bill and s_net > 0 and n_net < s_net * (1 - threshold) and n_gross < s_gross * (1 - threshold):
            reason = (
                f"net billed quantity dropped by {1 - n_net / s_net:.0%} (more than {threshold:.0%}) "
                "and no RETRACTION records explain it"
            )
        elif s_rows and not bill and n_rows < s_rows:
            reason = "fewer rows than stored (the source keeps this data for a limited time)"
        quantities = (s_net, n_net) if bill else (None, None)
        checks.append(DayCheck(table, day, s_rows, n_rows, *quantities, reason=reason, unit=unit))
    return checks


def refused(checks: Iterable[DayCheck]) -> list[DayCheck]:
    return [c for c in checks if c.reason]


def keep_stored(new: pl.DataFrame, stored: pl.DataFrame, days: Iterable[dt.date]) -> pl.DataFrame:
    """``new`` with the rows of ``days`` replaced by the stored rows of those days (cast to ``new``'s schema,
    so the partition write puts back exactly what was there; a column stored before it existed is NULL)."""
    keep = list(days)
    if not keep:
        return new
    have = set(stored.columns)
    old = stored.filter(pl.col("usage_date").is_in(keep)).select(
        [(pl.col(c) if c in have else pl.lit(None)).cast(t).alias(c) for c, t in new.schema.items()]
    )
    return pl.concat([new.filter(~pl.col("usage_date").is_in(keep)), old]).sort("usage_date", maintain_order=True)


def refusal_message(source: str, refused_checks: list[DayCheck], written: list[dt.date]) -> str:
    """What was refused and kept, what was written, and how to accept the smaller answer."""
    days = sorted({c.day for c in refused_checks})
    lines = [
        f"{source} answered with less than is stored for {len(days)} day(s); their stored rows were kept "
        f"(kept: {', '.join(map(str, days))}):"
    ]
    lines += [f"  {c.describe()}" for c in refused_checks]
    lines.append(f"written with the new rows: {', '.join(map(str, written))}" if written else "nothing was written")
    lines.append(
        f"If the smaller answer is right, re-run with the run tag {ACCEPT_TAG}=true (threshold: "
        "COST_ASSETS_SHRINK_THRESHOLD)."
    )
    return "\n".join(lines)
