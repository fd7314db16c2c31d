"""``cost-assets anomaly``: list the open cost anomalies, acknowledge one or mark it planned.

``ack ID --reason TEXT``: seen, handled; the alert sensor does not alert on it again unless it escalates.
``planned ID --reason TEXT``: expected spend (a migration, a backfill); its days are left out of the
baselines from the next materialization of ``mart/cost_anomalies`` on. Marks go to the feedback store
(:mod:`cost_assets.anomaly_feedback`, in ``COST_ASSETS_ALERT_STORE``); the ledger is only read.
"""

from typing import Annotated

import typer

from cost_assets import anomaly_summary
from cost_assets.anomaly_feedback import FeedbackError, FeedbackStore, mark
from cost_assets.cli_common import settings_or_exit, typer_app
from cost_assets.read import WarehouseError

app = typer_app("Cost anomalies: list the open ones, acknowledge one or mark it planned.")
Reason = Annotated[str, typer.Option("--reason", help="Why (stored with the mark).")]


def _mark(anomaly_id: str, feedback: str, reason: str) -> None:
    settings = settings_or_exit()
    try:
        episode = mark(settings.ledger, FeedbackStore(settings.alert_store_path), anomaly_id, feedback, reason)
    except (FeedbackError, WarehouseError) as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    if episode is None:
        typer.echo(
            f"{anomaly_id}: {feedback} (a run holds the ledger, so its series is not shown; the next "
            "materialization of mart/cost_anomalies finds it)"
        )
        return
    typer.echo(f"{anomaly_id} ({episode['scope']}, {episode['first_day']} … {episode['last_day']}): {feedback}")


@app.command()
def ack(anomaly_id: Annotated[str, typer.Argument(metavar="ID")], reason: Reason) -> None:
    """Acknowledge an anomaly or an incident (ID: either id): no further alert on its incident unless it
    escalates."""
    _mark(anomaly_id, "acknowledged", reason)


@app.command()
def planned(anomaly_id: Annotated[str, typer.Argument(metavar="ID")], reason: Reason) -> None:
    """Mark an anomaly or an incident (every member) as planned spend: its days leave the baselines."""
    _mark(anomaly_id, "planned", reason)


@app.command("list")
def list_open() -> None:
    """The anomalies open on the newest scored day, largest impact first, with any feedback."""
    settings = settings_or_exit()
    try:
        rows = anomaly_summary.open_anomalies(settings.ledger)
    except WarehouseError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    if rows is None or rows.is_empty():
        typer.echo("no open anomalies")
        return
    for line in anomaly_summary.anomaly_lines(rows):
        typer.echo(line)
