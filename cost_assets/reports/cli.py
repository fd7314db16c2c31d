"""``cost-assets report …``: the stored ledger as tables, JSON or CSV, and the offline HTML report.

Every subcommand reads the DuckDB file of ``COST_ASSETS_DUCKDB`` read-only (nothing is re-run) over a window:
``--start/--end``, or ``--days N`` ending at ``--end``; without ``--end`` the window ends on the newest day the
ledger holds (not "yesterday": a ledger built with ``cost-assets run --start … --end …`` is reported as it is).
Exit codes: 0 done, 1 the warehouse cannot be read (the message says why and what to do), 2 bad options.
Each command leaves through ``os._exit`` once its output is flushed (:func:`cost_assets.cli_common.leave`), so
it is tested as a program (a subprocess), not through typer's CliRunner.
"""

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cost_assets.cli_common import leave, settings_or_exit, typer_app
from cost_assets.read import WarehouseError
from cost_assets.reports import ledger, render
from cost_assets.reports.ledger import Report, Window

DEFAULT_DAYS = 7
app = typer_app(
    "Read the stored ledger: summary, trends, top spenders, a job or run, idle, reconciliation, budgets, "
    "anomalies, serving; or an offline HTML report."
)

Day = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], metavar="DAY", help="First day (YYYY-MM-DD).")]
EndDay = Annotated[
    dt.datetime | None,
    typer.Option(formats=["%Y-%m-%d"], metavar="DAY", help="Last day (YYYY-MM-DD) [default: the newest day stored]."),
]
Days = Annotated[int | None, typer.Option(min=1, help=f"How many days ending at --end [default: {DEFAULT_DAYS}].")]
Workspace = Annotated[str | None, typer.Option(help="Only this workspace id [default: all].")]
Format = Annotated[str, typer.Option("--format", "-f", help="table, json or csv (csv: the main table).")]


def _database() -> str:
    return settings_or_exit().ledger


def window(
    database: str, start: dt.datetime | None, end: dt.datetime | None, days: int | None, workspace: str | None
) -> Window:
    """The days asked for: START..END, or DAYS days ending at END; END defaults to the newest stored day."""
    if days is not None and start is not None:
        raise typer.BadParameter("give --days or --start, not both", param_hint="--days")
    last = end.date() if end is not None else None
    if last is None:
        last = ledger.latest_day(database) or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    first = start.date() if start is not None else last - dt.timedelta(days=(days or DEFAULT_DAYS) - 1)
    if last < first:
        raise typer.BadParameter(f"{last} is before --start {first}", param_hint="--end")
    return Window(first, last, workspace)


def _emit(
    build: Callable[[str, Window], Report],
    start: dt.datetime | None,
    end: dt.datetime | None,
    days: int | None,
    workspace: str | None,
    fmt: str,
) -> None:
    """Resolve the window, build the report, print it; warehouse problems are one line on stderr, exit 1."""
    if fmt not in render.FORMATS:
        raise typer.BadParameter(f"{fmt!r}: allowed: {', '.join(render.FORMATS)}", param_hint="--format")
    database = _database()
    try:
        report = build(database, window(database, start, end, days, workspace))
    except WarehouseError as e:
        typer.echo(f"error: {e}", err=True)
        leave(1)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        leave(2)
    typer.echo(render.render(report, fmt), nl=fmt != "csv")
    if fmt == "csv":
        for note in report.notes:
            typer.echo(note, err=True)
    leave(0)


@app.command()
def summary(
    start: Day = None, end: EndDay = None, days: Days = None, workspace: Workspace = None, fmt: Format = "table"
) -> None:
    """Per day and in total: the Databricks bill, where it went (runs, idle, unattributed), the estimate."""
    _emit(ledger.summary, start, end, days, workspace, fmt)


@app.command()
def trends(
    split_by: Annotated[
        str | None, typer.Option(help="team, tenant, project, cost_center, job, user or workspace: one line per value.")
    ] = None,
    start: Day = None,
    end: EndDay = None,
    days: Days = None,
    workspace: Workspace = None,
    fmt: Format = "table",
) -> None:
    """Daily billed vs estimated DBU $ (and the estimate with VMs), optionally split by a dimension."""
    _emit(lambda db, w: ledger.trends(db, w, split_by), start, end, days, workspace, fmt)


@app.command()
def top(
    by: Annotated[
        str, typer.Option(help="team, tenant, project, cost_center, user, job, workspace, cluster or sku.")
    ] = "team",
    limit: Annotated[int, typer.Option(min=1, help="How many.")] = 10,
    start: Day = None,
    end: EndDay = None,
    days: Days = None,
    workspace: Workspace = None,
    fmt: Format = "table",
) -> None:
    """The biggest spenders of a dimension, with their share of the bill."""
    _emit(lambda db, w: ledger.top(db, w, by, limit), start, end, days, workspace, fmt)


@app.command()
def job(
    job_id: Annotated[int, typer.Argument(help="The Databricks job id.")],
    start: Day = None,
    end: EndDay = None,
    days: Days = None,
    workspace: Workspace = None,
    fmt: Format = "table",
) -> None:
    """One job per day: runtime, DBUs, DBU $, VM $, billed $ and share, on shared clusters, idle nearby."""
    _emit(lambda db, w: ledger.consumer(db, w, job_id=job_id), start, end, days, workspace, fmt)


@app.command("run")
def run_(
    run_id: Annotated[int, typer.Argument(help="The Databricks job run id.")],
    start: Day = None,
    end: EndDay = None,
    days: Days = None,
    workspace: Workspace = None,
    fmt: Format = "table",
) -> None:
    """One job run per day: runtime, DBUs, DBU $, VM $, billed $ and share, on shared clusters, idle nearby."""
    _emit(lambda db, w: ledger.consumer(db, w, run_id=run_id), start, end, days, workspace, fmt)


@app.command()
def idle(
    start: Day = None, end: EndDay = None, days: Days = None, workspace: Workspace = None, fmt: Format = "table"
) -> None:
    """Idle per cluster and warm pool: billed idle $, share of the bill and of the cluster's own bill."""
    _emit(ledger.idle, start, end, days, workspace, fmt)


@app.command()
def reconcile(
    cloud: Annotated[
        bool,
        typer.Option(
            "--cloud",
            help="The cloud bill: estimated vs billed VM and disk $ per day and reason, and the prices table (the "
            "bill's $ per VM-hour per node type and pricing against the price sheet's).",
        ),
    ] = False,
    start: Day = None,
    end: EndDay = None,
    days: Days = None,
    workspace: Workspace = None,
    fmt: Format = "table",
) -> None:
    """Estimate vs bill: the reason codes with their $, and the accuracy per day (--cloud: the cloud bill's
    VMs and disks, from mart.vm_reconciliation, and its VM prices, from mart.observed_vm_prices; needs
    COST_ASSETS_CLOUD_BILL)."""
    _emit(ledger.reconcile_cloud if cloud else ledger.reconcile, start, end, days, workspace, fmt)


@app.command()
def budget(
    name: Annotated[str | None, typer.Option("--budget", help="Only this budget.")] = None,
    start: Day = None,
    end: EndDay = None,
    days: Days = None,
    workspace: Workspace = None,
    fmt: Format = "table",
) -> None:
    """Each budget on the window's newest day: spent, forecast, remaining, state (needs COST_ASSETS_BUDGETS)."""
    _emit(lambda db, w: ledger.budget(db, w, name), start, end, days, workspace, fmt)


@app.command()
def anomalies(
    start: Day = None, end: EndDay = None, days: Days = None, workspace: Workspace = None, fmt: Format = "table"
) -> None:
    """Cost anomalies scored in the window (high/low days and open, escalated or closed episodes)."""
    _emit(ledger.anomalies, start, end, days, workspace, fmt)


@app.command()
def serving(
    group_by: Annotated[
        list[str] | None,
        typer.Option(help="tenant, agent, user, session, endpoint, model, provider (repeatable) [default: tenant]."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant ('(untagged)' included).")] = None,
    start: Day = None,
    end: EndDay = None,
    days: Days = None,
    workspace: Workspace = None,
    fmt: Format = "table",
) -> None:
    """Model-serving spend by tenant, agent, user, session, endpoint, model or provider: billed $ vs the
    token-price estimate."""
    _emit(lambda db, w: ledger.serving(db, w, group_by or ["tenant"], tenant), start, end, days, workspace, fmt)


@app.command()
def html(
    out: Annotated[Path, typer.Option(help="The HTML file to write (one self-contained file, works offline).")],
    start: Day = None,
    end: EndDay = None,
    days: Days = None,
    workspace: Workspace = None,
) -> None:
    """Write the charts (spend by team, billed vs estimated, top jobs and users, idle, accuracy, budgets,
    anomalies) to one offline HTML file."""
    from cost_assets.reports import page

    database = _database()
    try:
        written = page.write(database, window(database, start, end, days, workspace), out)
    except WarehouseError as e:
        typer.echo(f"error: {e}", err=True)
        leave(1)
    typer.echo(f"wrote {written.path} ({written.size_bytes:,} bytes)")
    for title in written.charts:
        typer.echo(f"  chart: {title}")
    for note in written.notes:
        typer.echo(f"  left out: {note}")
    leave(0)
