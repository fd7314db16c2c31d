"""The reports of ``cost-assets report``, read from the stored ledger (never by re-running the pipeline).

Each function returns a :class:`Report`: named tables (polars frames, the first one the main table) over a
window of days, optionally one workspace. The SQL is in ``queries/*.sql`` next to this module, one file per
question, with numbered parameters (``$1`` first day, ``$2`` last day, ``$3`` workspace or NULL for all,
``$4``… the report's own). Everything is read through :mod:`cost_assets.read` (read-only; a missing database
or table, or a file held by a writer, is a ``WarehouseError`` that says what to do).

Two kinds of dollars are kept apart by name, because they answer different questions:

* ``billed_*``: the **Databricks bill** (DBU $ only; the cloud provider bills the VMs separately);
* ``estimated_dbu_usd``: the estimate **of that bill** (comparable with ``billed_usd``), and
  ``estimated_vm_usd`` / ``estimated_disk_usd`` / ``estimated_total_usd``: the estimate's cloud VM $, the
  nodes' managed disks $ and DBU $ + VM $ + disk $ (what a run really costs; never compared with the
  Databricks bill).

Optional tables (``mart.budget_status`` exists only with budgets, ``mart.cost_anomalies`` only once the
anomaly asset ran) give an empty report with a "not built: …" note instead of an error.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files

import polars as pl

from cost_assets import read
from cost_assets.query import query_attribution
from cost_assets.vocabulary import SCOPE_DIMENSIONS

# `top --by`: the roll-up dimensions of mart.cost_by_scope, plus the bill's own keys (mart.attributed_costs).
WORKSPACE = "workspace"
RESOURCE_DIMENSIONS = (WORKSPACE, "cluster", "sku")
TOP_DIMENSIONS = (*SCOPE_DIMENSIONS, *RESOURCE_DIMENSIONS)
# `trends --split-by`: the roll-up dimensions, or the workspace (mart.attributed_costs: one line per workspace).
TREND_DIMENSIONS = (*SCOPE_DIMENSIONS, WORKSPACE)
# The workspaces the ledger holds (to say so when --workspace names none of them).
WORKSPACES = "select distinct workspace_id from mart.attributed_costs where workspace_id is not null order by 1"
# `serving --group-by`: the words of query_attribution (mart.serving_costs' key, without day and workspace).
SERVING_DIMENSIONS = ("tenant", "agent", "user", "session", "endpoint", "model", "provider")
# query_attribution's measures under the names every report uses (billed = the bill's DBU $).
SERVING_NAMES = {
    "actual_usd": "billed_usd",
    "actual_dbus": "billed_dbus",
    "estimated_usd": "estimated_token_usd",
    "delta_usd": "delta_usd",
    "calls": "calls",
}
NOT_BUILT_BUDGETS = (
    "not built: mart.budget_status (budgets are optional: set COST_ASSETS_BUDGETS to a budgets file, e.g. "
    "examples/budgets.yaml, and run `make run`)"
)
NOT_BUILT_PRICES = (
    "not built: mart.observed_vm_prices (a ledger from before it: re-materialize the cloud bill's marts, e.g. "
    "`make run`)"
)
NOT_BUILT_CLOUD = (
    "not built: mart.vm_reconciliation (the cloud bill is optional: set COST_ASSETS_CLOUD_BILL to the cloud "
    "cost exports, or to simulated, and run `make run`)"
)
NOT_BUILT_ANOMALIES = "not built: mart.cost_anomalies (materialize it: run `make run`)"


@dataclass(frozen=True)
class Window:
    """The days a report covers (both inclusive) and the workspace it is limited to (None: all)."""

    start: dt.date
    end: dt.date
    workspace: str | None = None

    def params(self) -> list[object]:
        """The ``$1 $2 $3`` every query takes."""
        return [self.start, self.end, self.workspace]


@dataclass(frozen=True)
class Report:
    """A report's named tables (the first is the main one: what ``--format csv`` prints) and notes."""

    name: str
    window: Window
    tables: dict[str, pl.DataFrame]
    parameters: dict[str, object] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@cache
def statement(name: str) -> str:
    """The SQL of ``queries/<name>.sql``."""
    return files("cost_assets.reports").joinpath("queries", f"{name}.sql").read_text(encoding="utf-8")


def _fetch(database: str, name: str, params: Sequence[object]) -> pl.DataFrame:
    return read.fetch(database, statement(name), params)


def latest_day(database: str) -> dt.date | None:
    """The newest day the ledger (``mart.attributed_costs``) holds; None when it holds none."""
    return read.fetch(database, "select max(usage_date) as day from mart.attributed_costs")["day"][0]


def daily(database: str, window: Window) -> pl.DataFrame:
    """Per day: the bill (DBUs, DBU $, unpriced DBUs), where it went, and the estimate (DBU, VM, total)."""
    return _fetch(database, "daily", window.params())


def workspace_ids(database: str) -> list[str]:
    """Every workspace id ``mart.attributed_costs`` holds, on any day."""
    return read.fetch(database, WORKSPACES)["workspace_id"].to_list()


def unknown_workspace(database: str, window: Window) -> tuple[str, ...]:
    """A note when ``--workspace`` names a workspace the ledger has no row of (so empty tables are not
    read as "it spent nothing"), listing the ids it has; none otherwise."""
    if window.workspace is None:
        return ()
    known = workspace_ids(database)
    if window.workspace in known:
        return ()
    return (
        f"the ledger has no workspace {window.workspace!r} (mart.attributed_costs holds "
        f"{', '.join(known) or 'no workspace'}): check the id",
    )


def workspaces(database: str, window: Window) -> pl.DataFrame:
    """Per workspace: job runs, billed DBUs and $, and ``not_configured_usd`` (the $ handed to unattributed
    because the account does not list it; null for a workspace it lists); listed ones first, most billed first."""
    return _fetch(database, "workspaces", window.params())


def unattributed(database: str, window: Window) -> pl.DataFrame:
    """The bill's $ handed to ``unattributed``, per ``mart.attributed_costs`` reason."""
    return _fetch(database, "unattributed", window.params())


def summary(database: str, window: Window) -> Report:
    """The window's bill and estimate per day, and their totals (with the share of the bill on runs)."""
    days = daily(database, window)
    money = [c for c in days.columns if c != "usage_date"]
    total = days.select(pl.col(money).sum()).with_columns(
        (pl.col("runs_usd") / pl.col("billed_usd")).alias("runs_share")
    )
    if days.is_empty():
        total = total.clear()
    return Report("summary", window, {"days": days, "total": total}, notes=unknown_workspace(database, window))


def trends(database: str, window: Window, split_by: str | None = None) -> Report:
    """Daily billed vs estimated DBU $ (and the estimate's DBU + VM $), or per value of ``split_by``."""
    if split_by is None:
        days = daily(database, window).select(
            "usage_date",
            "billed_usd",
            "estimated_dbu_usd",
            "estimated_vm_usd",
            "estimated_disk_usd",
            "estimated_total_usd",
        )
        return Report("trends", window, {"days": days}, {"split_by": None}, unknown_workspace(database, window))
    _allowed(split_by, TREND_DIMENSIONS, "--split-by")
    if split_by == WORKSPACE:
        days = _fetch(database, "trends_workspace", window.params())
    else:
        days = _fetch(database, "trends_by", [*window.params(), split_by])
    return Report("trends", window, {"days": days}, {"split_by": split_by}, unknown_workspace(database, window))


def top(database: str, window: Window, by: str, limit: int = 10) -> Report:
    """The ``limit`` values of a dimension with the most billed $, with their share of the bill."""
    _allowed(by, TOP_DIMENSIONS, "--by")
    query = "top_resource" if by in RESOURCE_DIMENSIONS else "top_scope"
    rows = _fetch(database, query, [*window.params(), by, limit])
    return Report("top", window, {"top": rows}, {"by": by, "limit": limit}, unknown_workspace(database, window))


def consumer(database: str, window: Window, *, job_id: int | None = None, run_id: int | None = None) -> Report:
    """One job's or one run's days: runtime, DBUs, DBU $, VM $, billed $ and share of the day's bill, the part
    on shared clusters, and the idle estimate of the clusters it ran on."""
    if (job_id is None) == (run_id is None):
        raise ValueError("give a job_id or a run_id")
    rows = _fetch(database, "consumer_days", [*window.params(), job_id, run_id])
    name, key = ("job", job_id) if job_id is not None else ("run", run_id)
    return Report(name, window, {"days": rows}, {f"{name}_id": key}, unknown_workspace(database, window))


def idle(database: str, window: Window) -> Report:
    """Idle per cluster (and warm pool): billed idle $, its share of the bill and of the cluster's bill."""
    clusters = _fetch(database, "idle", window.params())
    return Report("idle", window, {"clusters": clusters}, notes=unknown_workspace(database, window))


def reconcile(database: str, window: Window) -> Report:
    """Accuracy per day, and the reason codes with their rows and dollars."""
    days = _fetch(database, "reconcile_days", window.params())
    reasons = _fetch(database, "reconcile_reasons", window.params())
    return Report("reconcile", window, {"reasons": reasons, "days": days}, notes=unknown_workspace(database, window))


def reconcile_cloud(database: str, window: Window) -> Report:
    """The cloud bill against the estimate's VM and disk $ (``mart.vm_reconciliation``): per day the VMs'
    estimated, billed and effective $ and the disks' estimated and effective $, per day and reason every
    charge, and the VMs' observed $ per VM-hour by node type and pricing model against the sheet's
    (``mart.observed_vm_prices``); a note when the cloud bill is not set up. With ``--workspace``, charges the
    estimate has no row for (no workspace) are left out; the prices are the account's."""
    try:
        days = _fetch(database, "reconcile_cloud_days", window.params())
        reasons = _fetch(database, "reconcile_cloud_reasons", window.params())
    except read.TableMissingError:
        empty = {"days": pl.DataFrame(), "reasons": pl.DataFrame(), "prices": pl.DataFrame()}
        return Report("reconcile_cloud", window, empty, notes=(NOT_BUILT_CLOUD,))
    notes: tuple[str, ...] = ()
    try:
        prices = _fetch(database, "reconcile_cloud_prices", window.params()[:2])
    except read.TableMissingError:
        prices, notes = pl.DataFrame(), (NOT_BUILT_PRICES,)
    if window.workspace is not None:
        notes = (*notes, "mart.observed_vm_prices has no workspace column: --workspace does not narrow prices")
    return Report("reconcile_cloud", window, {"days": days, "reasons": reasons, "prices": prices}, notes=notes)


def budget(database: str, window: Window, name: str | None = None) -> Report:
    """Each budget on its newest day in the window (or one budget); a note when there are no budgets."""
    try:
        rows = _fetch(database, "budget", [*window.params(), name])
    except read.TableMissingError:
        return Report("budget", window, {"budgets": pl.DataFrame()}, {"budget": name}, (NOT_BUILT_BUDGETS,))
    return Report("budget", window, {"budgets": rows}, {"budget": name})


def budget_days(database: str, window: Window) -> pl.DataFrame | None:
    """Every budget's spend to date per day (the burn-down); None without ``mart.budget_status``."""
    try:
        return _fetch(database, "budget_days", [*window.params(), None])
    except read.TableMissingError:
        return None


def anomalies(database: str, window: Window) -> Report:
    """High/low days and anomaly episodes scored in the window; a note when the table is not built."""
    notes = ()
    if window.workspace is not None:
        notes = ("mart.cost_anomalies has no workspace column: --workspace does not narrow this report",)
    try:
        rows = _fetch(database, "anomalies", window.params()[:2])
    except read.TableMissingError:
        return Report("anomalies", window, {"anomalies": pl.DataFrame()}, notes=(*notes, NOT_BUILT_ANOMALIES))
    return Report("anomalies", window, {"anomalies": rows}, notes=notes)


def serving(database: str, window: Window, group_by: Sequence[str] = ("tenant",), tenant: str | None = None) -> Report:
    """Model-serving spend grouped by ``group_by`` (``query_attribution``), the most billed first."""
    for column in group_by:
        _allowed(column, SERVING_DIMENSIONS, "--group-by")
    groups = list(group_by)
    extra = ["workspace_id"] if window.workspace is not None else []
    rows = query_attribution(tenant, window.start, window.end, [*groups, *extra], database=database)
    if extra:
        rows = rows.filter(pl.col("workspace_id") == window.workspace).drop("workspace_id")
    rows = rows.rename({"endpoint_name": "endpoint"} if "endpoint_name" in rows.columns else {}).rename(SERVING_NAMES)
    rows = rows.select(*groups, *SERVING_NAMES.values()).sort(
        ["billed_usd", *groups], descending=[True] + [False] * len(groups), nulls_last=True
    )
    parameters = {"group_by": groups, "tenant": tenant}
    return Report("serving", window, {"groups": rows}, parameters, unknown_workspace(database, window))


def _allowed(value: str, allowed: Sequence[str], option: str) -> None:
    if value not in allowed:
        raise ValueError(f"{option} {value!r}: allowed: {', '.join(allowed)}")
