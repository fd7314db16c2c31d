"""What every asset that reads a source and writes it over stored days shares (the raw, reference and cloud bill
assets): one behaviour for failing, warning and keeping stored days, whatever the source.

* :func:`final_errors` — bad input, refused credentials, a missing object: another try cannot fix them, so the
  step fails at once instead of spending its retries;
* :class:`Guarded` — the guard's verdict (``cost_assets/guard.py``) on a window: which days keep their stored
  rows, the run tag that accepts a smaller answer (:func:`accepts_smaller`), and the failures after writing;
* :func:`stored_rows` — the stored rows the guard compares a new answer with;
* :func:`read_optional` — an optional source (serving usage and entities, the cloud bill) read over a window:
  absent or not granted, it warns and every stored day of the window stays; :func:`guard_retained` then keeps
  the stored rows of a day the source now answers with fewer rows for (the serving sources);
* :func:`contract_gate` — the contract checks, and a stop before any output when one failed;
* :func:`sources_check` / :func:`sources_spec` — the WARN ``sources_complete`` check of a source read only in
  part (or, for an optional source, not at all);
* :func:`days_present_check` — the WARN check of a bill (the Databricks bill, the cloud bill) for each day
  without a single row: bills lag, so a day with no rows is not a $0 day.
"""

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import polars as pl

from cost_assets import guard
from cost_assets.checks import ContractBroken
from cost_assets.ingest.fetch import NotFound, NotPermitted, SourceUnavailable
from cost_assets.ingest.http import AuthError
from cost_assets.resources.warehouse import Ledger

# WARN check: a source answered only in part, or an optional source not at all.
SOURCES = "sources_complete"


# Errors another try cannot fix: bad input, refused credentials, a missing object, no permission.
FINAL_ERRORS = (ValueError, AuthError, NotPermitted, NotFound)


@contextmanager
def final_errors(source: str) -> Iterator[None]:
    """Around a call to a source: errors that another try cannot fix fail the step at once (no retry)."""
    try:
        yield
    except FINAL_ERRORS as e:
        raise dg.Failure(description=f"{source}: {e}", allow_retries=False) from e


def table_name(key: dg.AssetKey) -> str:
    """The DuckDB table of an asset (``raw/billing_usage`` → ``raw.billing_usage``)."""
    return ".".join(key.path)


def contract_gate(context: dg.AssetExecutionContext, checks: list[dg.AssetCheckResult]):
    """Yield the check results; if any failed, stop before any output is written."""
    yield from checks
    broken = [c.asset_key.to_user_string() for c in checks if not c.passed]
    if broken:
        raise ContractBroken(
            description=f"contract broken for {', '.join(broken)}; nothing was written "
            "(see the failed contract checks for the rows)"
        )


def sources_check(key: dg.AssetKey, warnings: list[str]) -> dg.AssetCheckResult:
    """WARN when part of a source could not be read (named, with the error); passed otherwise."""
    return dg.AssetCheckResult(
        check_name=SOURCES,
        asset_key=key,
        passed=not warnings,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(warnings[:5]) + (f" (+{len(warnings) - 5} more)" if len(warnings) > 5 else "")
        if warnings
        else "every source answered",
        metadata={"problems": len(warnings), "details": dg.MetadataValue.text("\n".join(warnings) or "none")},
    )


def sources_spec(key: dg.AssetKey, what: str) -> dg.AssetCheckSpec:
    """The spec of :func:`sources_check` on ``key``; ``what`` names what may not be read."""
    return dg.AssetCheckSpec(
        SOURCES,
        asset=key,
        description=f"WARN when {what} could not be read (the "
        "source and the error are named; what could be read is written)",
    )


def days_present_check(
    check_name: str,
    key: dg.AssetKey,
    days: list[dt.date],
    frame: pl.DataFrame,
    *,
    absent: Callable[[dt.date], str],
    lag: str,
    complete: str,
    metadata_key: str,
) -> dg.AssetCheckResult:
    """WARN for each day of ``days`` without a single row in ``frame``: a bill lags (``lag`` says by how
    much), so an empty day is not yet a $0 day. ``absent(day)`` words a missing day, ``complete`` the pass."""
    seen = set(frame["usage_date"].to_list()) if frame.height else set()
    missing = [d for d in days if d not in seen]
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=key,
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(absent(d) for d in missing) + f"; {lag}" if missing else complete,
        metadata={metadata_key: dg.MetadataValue.text(", ".join(map(str, missing)) or "none")},
    )


def accepts_smaller(context: dg.AssetExecutionContext) -> bool:
    """Whether the run carries the tag that accepts a source's smaller answer over the stored days."""
    return context.run.tags.get(guard.ACCEPT_TAG, "").lower() in ("1", "true", "yes")


class Guarded:
    """The guard's verdict for one asset's window: which days keep their stored rows, and the message.
    A refusal is deliberate, so its failure is never retried."""

    def __init__(
        self, context: dg.AssetExecutionContext, source: str, days: list[dt.date], checks: list[guard.DayCheck]
    ):
        self.refused = guard.refused(checks)
        self.kept = sorted({c.day for c in self.refused})
        self.written = [d for d in days if d not in self.kept]
        self.message = guard.refusal_message(source, self.refused, self.written) if self.refused else ""
        if self.refused and accepts_smaller(context):
            context.log.warning(f"accepted by the run tag {guard.ACCEPT_TAG}:\n{self.message}")
            self.refused, self.kept, self.written, self.message = [], [], days, ""
        if self.refused:
            context.log.error(self.message)

    def metadata(self) -> dict[str, str]:
        """``kept_stored_days`` when some days kept their stored rows (empty otherwise)."""
        return {"kept_stored_days": ", ".join(map(str, self.kept))} if self.kept else {}

    def fail_if_nothing_written(self) -> None:
        if self.refused and not self.written:
            raise dg.Failure(
                description=self.message, metadata={"kept_days": ", ".join(map(str, self.kept))}, allow_retries=False
            )

    def fail_if_refused(self) -> None:
        """After the other days were written: the run fails, so nothing downstream sees the refused days."""
        if self.refused:
            raise dg.Failure(
                description=self.message,
                allow_retries=False,
                metadata={
                    "kept_days": ", ".join(map(str, self.kept)),
                    "written_days": ", ".join(map(str, self.written)),
                },
            )


def stored_rows(ledger: Ledger, key: dg.AssetKey, days: list[dt.date], like: pl.DataFrame) -> pl.DataFrame:
    """The stored rows of the window (an empty frame shaped like ``like`` when nothing is stored)."""
    rows = ledger.stored_days(table_name(key), days)
    return like.head(0) if rows is None else rows


@dataclass
class OptionalRead:
    """What :func:`read_optional` got: the frame to write (the source's answer, or — when it could not be
    read — the stored rows of every stored day), the stored rows, and the problems (empty: it answered)."""

    frame: pl.DataFrame
    stored: pl.DataFrame
    problems: list[str]
    kept: list[dt.date]


def read_optional(
    context: dg.AssetExecutionContext,
    ledger: Ledger,
    key: dg.AssetKey,
    days: list[dt.date],
    empty: pl.DataFrame,
    read: Callable[[], pl.DataFrame],
    *,
    source: str,
    what: str,
) -> OptionalRead:
    """``read()`` an optional source for ``days``. An error another try cannot fix fails the step at once
    (:func:`final_errors`, naming ``source``); a source absent or not granted (``SourceUnavailable``) is a
    warning (``what`` not read), its problem is returned for the WARN :func:`sources_check`, and every stored
    day of the window stays as it is, whatever the run's tags: nothing was read that could replace it."""
    try:
        with final_errors(source):
            frame, problems = read(), []
    except SourceUnavailable as e:
        frame, problems = empty, [str(e)]
        context.log.warning(f"{what} not read, stored rows kept: {e}")
    stored = stored_rows(ledger, key, days, empty)
    if not problems:
        return OptionalRead(frame, stored, [], [])
    kept = sorted(set(stored["usage_date"].to_list()))
    return OptionalRead(guard.keep_stored(frame, stored, kept), stored, problems, kept)


def guard_retained(
    context: dg.AssetExecutionContext, key: dg.AssetKey, got: OptionalRead, days: list[dt.date]
) -> tuple[pl.DataFrame, list[str], list[dt.date]]:
    """An optional source that forgets (``guard.RETAINED``, by row count): a day it now answers with fewer rows
    than stored keeps its stored rows and is a problem (WARN, the day does not fail), unless the run carries
    the tag that accepts a smaller answer. Returns the frame to write, the problems and the days kept."""
    if got.problems:
        return got.frame, got.problems, got.kept
    smaller = guard.refused(guard.check_days(table_name(key), got.stored, got.frame, days, guard.RETAINED))
    if smaller and accepts_smaller(context):
        context.log.warning(
            "accepted by the run tag " + guard.ACCEPT_TAG + ":\n" + "\n".join(c.describe() for c in smaller)
        )
        return got.frame, [], []
    kept = sorted({c.day for c in smaller})
    return guard.keep_stored(got.frame, got.stored, kept), [c.describe() + "; stored rows kept" for c in smaller], kept
