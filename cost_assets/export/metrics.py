"""Prometheus metrics of the stored ledger, for ``cost-assets metrics serve|textfile`` (docs/exports.md).

The calculator this project replaces exported ``databricks_cost_total_usd``, ``databricks_cost_dbu_usd``
and ``databricks_runs_processed_total``; they keep their names here, beside the bill by workspace and SKU,
the attributed bill by team, each budget's used ratio, open anomalies and reconciliation accuracy.

**Gauges over two windows, no dates in labels.** Costs settle: a day's bill lands 12–48 h late and is
corrected for days, so a figure of an open day would move under a dashboard's feet. Every windowed gauge
carries ``window="latest_closed_day"`` (the newest day whose bill is closed, :mod:`costing.closure`) or
``window="month_to_date"`` (the 1st of that day's month through it); the day itself is the value of
``databricks_cost_latest_closed_day_timestamp_seconds``. A date label would make a new series every day,
which Prometheus keeps for its whole retention.

**Read per scrape, cached.** :class:`LedgerCollector` reads the DuckDB file read-only (:mod:`read`) when
scraped, at most once per ``cache_seconds``. While a pipeline run holds the file (DuckDB has one writer),
or before there is one, the last reading is served with ``databricks_cost_exporter_up 0`` (nothing but
that gauge before any reading succeeded), so a scrape never fails and never shows invented zeros.
"""

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import polars as pl
from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cost_assets import read
from cost_assets.costing.attribute import accuracy
from cost_assets.costing.closure import closed_days
from cost_assets.export.run_ledger import run_ledger
from cost_assets.timeutil import day_start_ms

LOG = logging.getLogger(__name__)
WINDOWS = ("latest_closed_day", "month_to_date")
OPEN_STATUSES = ("open", "escalated")

# name → (help, label names); every one a gauge.
METRICS = {
    "databricks_cost_total_usd": ("Runs' total cost (DBU $ + VM $), billed where the bill is in", ["window"]),
    "databricks_cost_dbu_usd": ("Runs' DBU cost, billed where the bill is in", ["window"]),
    "databricks_runs_processed_total": ("Job runs with a cost in the window", ["window"]),
    "databricks_billed_cost_usd": ("The Databricks bill ($)", ["window", "workspace_id", "sku_name"]),
    "databricks_attributed_cost_usd": ("The bill handed out, by team ('(untagged)' included)", ["window", "team"]),
    "databricks_reconciliation_accuracy_ratio": (
        "Share of billed $ whose estimate is within 5 % of the billed DBUs",
        ["window"],
    ),
    "databricks_attribution_coverage_ratio": ("Share of billed $ attributed to runs", ["window"]),
    "databricks_budget_used_ratio": (
        "Budget spend in its period so far / its amount, on the latest closed day",
        ["budget", "period"],
    ),
    "databricks_open_anomalies": ("Cost anomalies open or escalated, by monitor", ["monitor"]),
    "databricks_cost_latest_closed_day_timestamp_seconds": ("Start (UTC) of the latest closed day", []),
}
UP = "databricks_cost_exporter_up"


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[str, ...]
    value: float


# ------------------------------------------------------------------------------------------ the windows


def latest_closed_day(bill_days: pl.DataFrame) -> dt.date | None:
    """The newest closed usage day of ``usage_date, ingestion_date`` bill rows (None before any closes)."""
    return closed_days(bill_days).filter("closed")["usage_date"].max()


def windows(last: dt.date) -> dict[str, tuple[dt.date, dt.date]]:
    """Each window's first and last day (inclusive)."""
    return {"latest_closed_day": (last, last), "month_to_date": (last.replace(day=1), last)}


# ------------------------------------------------------------------------------------------ the figures


def _sum(frame: pl.DataFrame, column: str) -> float:
    return float(frame[column].sum() or 0.0)


def _within(frame: pl.DataFrame, first: dt.date, last: dt.date) -> pl.DataFrame:
    return frame.filter(pl.col("usage_date").is_between(first, last))


def _text(value: object) -> str:
    return "" if value is None else str(value)


def window_samples(window: str, marts: dict[str, pl.DataFrame]) -> list[Sample]:
    """The windowed gauges of one window from the marts' rows of its days."""
    ledger = run_ledger(marts["run_costs"], marts["attributed_costs"])
    samples = [
        Sample("databricks_cost_total_usd", (window,), _sum(ledger, "total_cost_usd")),
        Sample("databricks_cost_dbu_usd", (window,), _sum(ledger, "dbu_cost_usd")),
        Sample(
            "databricks_runs_processed_total",
            (window,),
            float(ledger.select("workspace_id", "run_id").unique().height),
        ),
    ]
    billed = (
        marts["reconciliation"]
        .group_by("workspace_id", "sku_name")
        .agg(pl.col("billed_cost_usd").sum())
        .sort("workspace_id", "sku_name", nulls_last=True)
    )
    samples += [
        Sample("databricks_billed_cost_usd", (window, _text(ws), _text(sku)), float(usd))
        for ws, sku, usd in billed.iter_rows()
    ]
    teams = (
        marts["cost_by_scope"]
        .filter(pl.col("dimension") == "team")
        .group_by("value")
        .agg(pl.col("billed_cost_usd").sum())
        .sort("value")
    )
    samples += [Sample("databricks_attributed_cost_usd", (window, team), float(usd)) for team, usd in teams.iter_rows()]
    quality = accuracy(marts["reconciliation"], marts["attributed_costs"])
    billed_usd = _sum(quality, "billed_cost_usd")
    if billed_usd > 0:  # shares of nothing are not 0 %: no sample
        samples += [
            Sample(
                "databricks_reconciliation_accuracy_ratio", (window,), _sum(quality, "matched_cost_usd") / billed_usd
            ),
            Sample("databricks_attribution_coverage_ratio", (window,), _sum(quality, "run_cost_usd") / billed_usd),
        ]
    return samples


def budget_samples(budget_status: pl.DataFrame, last: dt.date) -> list[Sample]:
    """Each budget's spend / amount on its newest day up to ``last``."""
    newest = (
        budget_status.filter(pl.col("usage_date") <= last)
        .sort("usage_date")
        .group_by("budget", maintain_order=True)
        .last()
        .sort("budget")
    )
    return [
        Sample(
            "databricks_budget_used_ratio", (row["budget"], row["period"]), row["spend_to_date_usd"] / row["amount_usd"]
        )
        for row in newest.iter_rows(named=True)
    ]


def anomaly_samples(anomalies: pl.DataFrame) -> list[Sample]:
    """Anomalies open or escalated as of the newest partition (each at its newest scored day), by monitor."""
    if anomalies.height == 0:
        return []
    current = (
        anomalies.filter(pl.col("usage_date") == pl.col("usage_date").max(), pl.col("anomaly_id").is_not_null())
        .sort("scored_date")
        .group_by("anomaly_id", maintain_order=True)
        .last()
        .filter(pl.col("status").is_in(OPEN_STATUSES))
    )
    counts = current.group_by("monitor").len().sort("monitor")
    return [Sample("databricks_open_anomalies", (monitor,), float(n)) for monitor, n in counts.iter_rows()]


# ------------------------------------------------------------------------------------------ reading


MART_SQL = "SELECT * FROM {table} WHERE usage_date BETWEEN ? AND ?"
NEWEST_ANOMALIES = (
    "SELECT * FROM mart.cost_anomalies WHERE usage_date = (SELECT max(usage_date) FROM mart.cost_anomalies)"
)
WINDOW_MARTS = ("run_costs", "attributed_costs", "reconciliation", "cost_by_scope")


def _optional(database: str, sql: str, params: list) -> pl.DataFrame | None:
    """A table only some configurations have (budgets, anomalies): None when it is not there."""
    try:
        return read.fetch(database, sql, params)
    except read.TableMissingError:
        return None


def read_samples(database: str) -> list[Sample]:
    """Every sample, read from the DuckDB file ``database`` (a ``read.WarehouseError`` when it cannot be)."""
    bill_days = read.fetch(database, "SELECT DISTINCT usage_date, ingestion_date FROM raw.billing_usage")
    last = latest_closed_day(bill_days)
    if last is None:
        return []
    spans = windows(last)
    first = min(start for start, _ in spans.values())
    marts = {
        name: read.fetch(database, MART_SQL.format(table=read.table_name(f"mart.{name}")), [first, last])
        for name in WINDOW_MARTS
    }
    samples = [Sample("databricks_cost_latest_closed_day_timestamp_seconds", (), day_start_ms(last) / 1000)]
    for window, (start, end) in spans.items():
        samples += window_samples(window, {name: _within(frame, start, end) for name, frame in marts.items()})
    budgets = _optional(database, "SELECT * FROM mart.budget_status WHERE usage_date BETWEEN ? AND ?", [first, last])
    if budgets is not None:
        samples += budget_samples(budgets, last)
    anomalies = _optional(
        database,
        "SELECT * FROM mart.cost_anomalies WHERE usage_date = (SELECT max(usage_date) FROM mart.cost_anomalies)",
        [],
    )
    if anomalies is not None:
        samples += anomaly_samples(anomalies)
    return samples


# ------------------------------------------------------------------------------------------ Prometheus


def families(samples: list[Sample], up: bool) -> Iterator[GaugeMetricFamily]:
    """Every metric family (one per name, also without samples, so the HELP text is always there)."""
    for name, (help_text, labels) in METRICS.items():
        family = GaugeMetricFamily(name, help_text, labels=labels)
        for sample in samples:
            if sample.name == name:
                family.add_metric(list(sample.labels), sample.value)
        yield family
    yield GaugeMetricFamily(UP, "1 when the last scrape read the ledger, 0 when it could not", value=float(up))


class LedgerCollector(Collector):
    """Reads the ledger when scraped, at most once per ``cache_seconds``; serves the last good reading with
    ``up 0`` when the file cannot be read (held by a writer, not there yet)."""

    def __init__(self, database: str, cache_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.database = database
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()  # the HTTP server scrapes from a thread per request
        self._read_at: float | None = None
        self._samples: list[Sample] = []
        self._up = False

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self.cache_seconds:
                try:
                    self._samples, self._up = read_samples(self.database), True
                except read.WarehouseError as e:
                    LOG.warning("metrics: the ledger could not be read, serving the last reading: %s", e)
                    self._up = False
                self._read_at = now
            samples, up = list(self._samples), self._up
        yield from families(samples, up)

    @property
    def up(self) -> bool:
        """Whether the latest reading succeeded."""
        return self._up


def registry(database: str, cache_seconds: float = 60.0) -> CollectorRegistry:
    """A registry holding only the ledger's metrics (no process or Python metrics)."""
    target = CollectorRegistry(auto_describe=False)
    target.register(LedgerCollector(database, cache_seconds))
    return target


def serve(database: str, host: str, port: int, cache_seconds: float = 60.0):
    """Start the ``/metrics`` HTTP server in a background thread; returns (server, thread)."""
    return start_http_server(port, addr=host, registry=registry(database, cache_seconds))


def write_textfile(database: str, out: str) -> bool:
    """Write the metrics to ``out`` for node_exporter's textfile collector (a temp file renamed over it, so a
    reader never sees half a file); False when the ledger could not be read (the file then says up 0)."""
    collector = LedgerCollector(database, cache_seconds=0)
    target = CollectorRegistry(auto_describe=False)
    target.register(collector)
    write_to_textfile(out, target)
    return collector.up
