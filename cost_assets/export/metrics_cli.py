"""``cost-assets metrics``: the ledger's Prometheus metrics, served over HTTP or written for node_exporter."""

import signal
import threading
from typing import Annotated

import typer

from cost_assets.cli_common import leave, settings_or_exit, typer_app
from cost_assets.export import metrics

app = typer_app("Prometheus metrics of the stored ledger (docs/exports.md).")


@app.command()
def serve(
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port of /metrics.")] = 9464,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
) -> None:
    """Serve /metrics, reading COST_ASSETS_DUCKDB at most once per COST_ASSETS_METRICS_CACHE_SECONDS."""
    settings = settings_or_exit()
    # A background job of a shell ignores SIGINT and a service manager stops with SIGTERM: both end the server.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server, _ = metrics.serve(settings.ledger, host, port, settings.metrics_cache_seconds)
    typer.echo(f"serving http://{host}:{server.server_port}/metrics from {settings.ledger} (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


@app.command()
def textfile(
    out: Annotated[str, typer.Option(help="The .prom file node_exporter's textfile collector reads.")],
) -> None:
    """Write the metrics once to OUT (atomically: a temp file renamed over it); exit 1 when the ledger could
    not be read (OUT then holds databricks_cost_exporter_up 0)."""
    settings = settings_or_exit()
    if not metrics.write_textfile(settings.ledger, out):
        typer.echo(f"{settings.ledger}: the ledger could not be read; {out} says up 0", err=True)
        leave(1)
    typer.echo(f"wrote {out}")
    leave(0)
