"""The ``cost-assets`` command."""

import datetime as dt
import os
import warnings
from typing import Annotated

import dagster as dg
import typer

from cost_assets import anomaly_summary, report
from cost_assets.anomaly_cli import app as anomaly_app
from cost_assets.cli_common import leave, typer_app
from cost_assets.config import ConfigurationError, Settings
from cost_assets.export.metrics_cli import app as metrics_app
from cost_assets.read import WarehouseError
from cost_assets.reports import ledger as reports_ledger
from cost_assets.reports.cli import app as report_app

# Step-level progress is printed here; Dagster's own debug stream stays in the run's event log.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
app = typer_app("Databricks cost attribution on Dagster.")
app.add_typer(anomaly_app, name="anomaly")
app.add_typer(report_app, name="report")
app.add_typer(metrics_app, name="metrics")


@app.callback()
def main() -> None:
    """Databricks cost attribution on Dagster: `run` the pipeline, serve a mock workspace, report."""


def _instance() -> dg.DagsterInstance:
    """The instance under DAGSTER_HOME (runs visible in the UI), or a throwaway one without it."""
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def _days(days: int | None, start: dt.datetime | None, end: dt.datetime | None) -> tuple[dt.date, dt.date]:
    """The run's first and last day: START..END (END defaults to yesterday), else the last DAYS days."""
    if days is not None and start is not None:
        raise typer.BadParameter("give --days or --start, not both", param_hint="--days")
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    if start is None:
        if end is not None:
            raise typer.BadParameter("--end needs --start", param_hint="--end")
        return yesterday - dt.timedelta(days=days - 1), yesterday
    first, last = start.date(), end.date() if end is not None else yesterday
    if last < first:
        raise typer.BadParameter(f"{last} is before --start {first}", param_hint="--end")
    if last > yesterday:
        raise typer.BadParameter(f"{last} is not a complete UTC day yet (the last is {yesterday})", param_hint="--end")
    return first, last


def _failure(result: dg.ExecuteInProcessResult) -> str:
    """One line: the failed steps and the first one's error (its cause, the exception the asset raised)."""
    failures = result.get_step_failure_events()
    if not failures:  # the run failed outside any step (e.g. a resource could not start)
        return next((e.message or "" for e in result.all_events if e.is_run_failure), "see the errors above")
    steps = ", ".join(e.step_key or "?" for e in failures)
    error = failures[0].step_failure_data.error
    cause = error.cause if error is not None and error.cause is not None else error
    reason = cause.message.strip().splitlines()[0] if cause is not None and cause.message.strip() else "see above"
    return f"{len(failures)} step(s) failed: {steps}; {failures[0].step_key}: {reason}"


def _print_summary(database: str, first: dt.date, last: dt.date, tables: list[str], names: dict[str, str]) -> None:
    """Rows per table, the bill per day, per workspace (``names``: the account's, id → name) and where it went
    (read-only, through cost_assets.report)."""
    typer.echo("\nRows per table")
    for row in report.table_counts(database, tables).iter_rows(named=True):
        typer.echo(f"  {row['table']:<28}{row['rows']:>10,}")
    typer.echo("\nBilled per day (all record types, effective $/DBU)")
    for row in report.billed_by_day(database, first, last).iter_rows(named=True):
        unpriced = f"   unpriced DBUs {row['unpriced_dbus']:,.2f}" if row["unpriced_dbus"] else ""
        typer.echo(
            f"  {row['usage_date']}  {row['billed_dbus']:>12,.2f} DBU  ${row['billed_usd'] or 0:>12,.2f}{unpriced}"
        )
    for line in report.workspace_lines(database, first, last, names):
        typer.echo(line)
    typer.echo("\nThe bill handed out (billed DBU $), and the estimate of runs + idle (DBU + VM + disk $)")
    for line in report.unattributed_note(database, first, last):
        typer.echo(line)
    typer.echo(f"  {'day':<10}  {'to runs':>12}  {'to idle':>12}  {'unattributed':>12}  {'estimated':>12}")
    for row in report.ledger_by_day(database, first, last).iter_rows(named=True):
        cells = [row[k] or 0.0 for k in ("runs_usd", "idle_usd", "unattributed_usd", "estimated_usd")]
        typer.echo(f"  {row['usage_date']}  " + "  ".join(f"${v:>11,.2f}" for v in cells))
    cloud = reports_ledger.reconcile_cloud(database, reports_ledger.Window(first, last))
    if reports_ledger.NOT_BUILT_CLOUD not in cloud.notes:  # with COST_ASSETS_CLOUD_BILL only
        typer.echo(
            "\nThe cloud bill's VMs and disks against their estimate (more: `cost-assets report reconcile --cloud`)"
        )
        head = ["estimated", "billed", "effective", "disks est.", "disks eff."]
        typer.echo(f"  {'day':<10}  " + "  ".join(f"{h:>12}" for h in head))
        columns = ("estimated_vm_usd", "billed_vm_usd", "effective_vm_usd", "estimated_disk_usd", "effective_disk_usd")
        for row in cloud.tables["days"].iter_rows(named=True):
            cells = [row[k] or 0.0 for k in columns]
            typer.echo(f"  {row['usage_date']}  " + "  ".join(f"${v:>11,.2f}" for v in cells))
    serving = reports_ledger.serving(database, reports_ledger.Window(first, last), ["provider", "model"])
    typer.echo("\nModel serving by provider and model (billed DBU $; more: `cost-assets report serving --help`)")
    for row in serving.tables["groups"].iter_rows(named=True):
        billed = "unknown" if row["billed_usd"] is None else f"${row['billed_usd']:,.2f}"
        typer.echo(f"  {row['provider']:<12} {row['model']:<44} {billed:>12}  {row['calls']:>9,} calls")
    anomalies = anomaly_summary.open_anomalies(database)
    if anomalies is not None:
        typer.echo(f"\nOpen cost anomalies ({anomalies.height}; `cost-assets anomaly ack|planned ID --reason ...`)")
        for line in anomaly_summary.anomaly_lines(anomalies):
            typer.echo(line)
    if (detection := anomaly_summary.detection_line(database, last)) is not None:
        typer.echo(f"\nPlanted anomalies of the simulated world, 35 days to {last}: {detection}")
    budgets = report.budgets_on(database, last)
    if budgets is not None and budgets.height:
        typer.echo(f"\nBudgets on {last} (spend so far in the period; forecast to its end)")
        for row in budgets.iter_rows(named=True):
            note = "".join(
                f", {row[k]} day(s) {what}"
                for k, what in (("estimated_days", "estimated"), ("missing_days", "missing"))
                if row[k]
            )
            typer.echo(
                f"  {row['budget']:<24} {row['period']:<6} ${row['spend_to_date_usd']:>10,.2f} of "
                f"${row['amount_usd']:>10,.2f}  forecast ${row['forecast_usd']:>10,.2f}  {row['state']}{note}"
            )


@app.command()
def run(
    days: Annotated[
        int | None,
        typer.Option(min=1, help="How many complete UTC days, ending yesterday [default: COST_ASSETS_SIM_DAYS, 7]."),
    ] = None,
    start: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], metavar="DAY", help="First day (YYYY-MM-DD) instead of --days."),
    ] = None,
    end: Annotated[
        dt.datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"], metavar="DAY", help="Last day (YYYY-MM-DD) with --start; default yesterday."
        ),
    ] = None,
) -> None:
    """Materialize the whole asset graph for a range of complete UTC days (one run) and print a summary."""
    # Beta notices about backfill_policy are for developers, not for someone running the pipeline.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    try:
        settings = Settings.from_environ(os.environ)
        # Importing the definitions builds the module-level `defs` from the same environment.
        from cost_assets.definitions import build_defs

        defs = build_defs(os.environ)
    except ConfigurationError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    first, last = _days(settings.sim_days if days is None and start is None else days, start, end)
    with _instance() as instance:
        typer.echo(f"daily pipeline {first} .. {last} (one run) → {settings.ledger}")
        result = defs.resolve_job_def("daily_pipeline").execute_in_process(
            instance=instance,
            run_config=QUIET,
            tags={
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
            },
            raise_on_error=False,
        )
    if not result.success:
        # Dagster has logged each failure with its stack trace above; the last line says what failed.
        typer.echo(f"\nrun failed: {_failure(result)}", err=True)
        leave(1)
    try:
        tables = sorted(".".join(key.path) for key in defs.resolve_all_asset_keys() if len(key.path) == 2)
        _print_summary(settings.ledger, first, last, tables, defs.resources["workspace"].workspace_names())
    except WarehouseError as e:  # e.g. another process took the file for writing meanwhile: say so, briefly
        typer.echo(f"\nno summary: {e}", err=True)
        leave(1)
    from cost_assets.assets.report_html import ReportFiles

    html = ReportFiles(database=settings.ledger, directory=settings.report_dir).path_for(last)
    if html.exists():
        typer.echo(f"\nHTML report (open it in a browser; more: `cost-assets report --help`): {html}")
    leave(0)  # without duckdb's shutdown noise burying the summary


@app.command(
    "mock-server", add_help_option=False, context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def mock_server(ctx: typer.Context) -> None:
    """Serve the simulated workspace over the Databricks APIs on 127.0.0.1 (options: --help)."""
    from cost_assets import mock_server as server

    raise typer.Exit(server.main(ctx.args))


@app.command()
def estimate(
    cloud: Annotated[str, typer.Option(help="AZURE, AWS or GCP (any case).")],
    node_type: Annotated[str, typer.Option(help="Worker node type, e.g. Standard_DS3_v2 or m5.xlarge.")],
    hours: Annotated[float, typer.Option(help="How long the cluster runs, in hours.")],
    workers: Annotated[
        int | None, typer.Option(min=0, help="Fixed number of workers (0: single node, driver only).")
    ] = None,
    min_workers: Annotated[int | None, typer.Option(min=0, help="Autoscaling: the fewest workers.")] = None,
    max_workers: Annotated[int | None, typer.Option(min=0, help="Autoscaling: the most workers.")] = None,
    driver_node_type: Annotated[str | None, typer.Option(help="Driver node type (default: the --node-type).")] = None,
    photon: Annotated[bool, typer.Option("--photon", help="Photon runtime (the SKU's Photon DBU factor).")] = False,
    spot: Annotated[bool, typer.Option("--spot", help="Workers on spot VMs, the driver on-demand.")] = False,
    workload: Annotated[str, typer.Option(help="jobs, all_purpose or dlt.")] = "jobs",
    tier: Annotated[
        str | None, typer.Option(help="STANDARD, PREMIUM or ENTERPRISE (default: COST_ASSETS_TIER, else PREMIUM).")
    ] = None,
    budget: Annotated[
        float | None, typer.Option(min=0, help="Exit 2 when the estimate (its upper end) exceeds this many USD.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object instead of the table.")] = False,
) -> None:
    """Estimate a cluster's DBUs, DBU $, VM $, disk $ and total before launching it, from the pipeline's price
    sheet (COST_ASSETS_VM_PRICES=observed: VM $/h the cloud bill showed, where it saw enough)."""
    import dataclasses
    import json

    from cost_assets import preflight
    from cost_assets.prices import PriceSheetError, UnknownPriceError, load_price_sheet

    if workers is not None and (min_workers is not None or max_workers is not None):
        raise typer.BadParameter("give --workers or --min-workers/--max-workers, not both", param_hint="--workers")
    if workers is None and (min_workers is None or max_workers is None):
        raise typer.BadParameter("give --workers, or both --min-workers and --max-workers", param_hint="--workers")
    try:
        settings = Settings.from_environ(os.environ)
        sheet = load_price_sheet(settings.prices_path)
        observed, unavailable = (
            preflight.observed_from_ledger(settings.ledger) if settings.vm_prices == "observed" else (None, None)
        )
        result = preflight.estimate(
            cloud=cloud,
            node_type=node_type,
            driver_node_type=driver_node_type,
            workers=workers,
            min_workers=min_workers,
            max_workers=max_workers,
            hours=hours,
            photon=photon,
            spot=spot,
            workload=workload,
            tier=tier or settings.tier,
            sheet=sheet,
            observed=observed,
        )
    except (ConfigurationError, PriceSheetError, UnknownPriceError, preflight.PreflightInputError) as e:
        typer.echo(f"error: {e}", err=True)
        leave(2)
    if result.cloud == "AZURE" and settings.azure_region:
        note = (
            f"COST_ASSETS_AZURE_REGION={settings.azure_region}: the pipeline takes Azure VM $/h from the Retail "
            "Prices API; this estimate uses the price sheet's"
        )
        result = dataclasses.replace(result, notes=(*result.notes, note))
    if unavailable:
        result = dataclasses.replace(result, notes=(*result.notes, unavailable))
    typer.echo(json.dumps(result.to_json(budget), indent=2) if as_json else preflight.table(result))
    message = preflight.budget_message(result, budget) if budget is not None else None
    if message:
        typer.echo(message, err=True)
    leave(2 if message else 0)  # COST_ASSETS_VM_PRICES=observed read the ledger: no duckdb shutdown noise


if __name__ == "__main__":
    app()
