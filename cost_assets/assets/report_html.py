"""``report/html``: the offline HTML report (:mod:`cost_assets.reports.page`) written after the day's marts, with
a link to the file in the materialization's metadata.

It reads the stored ledger through :mod:`cost_assets.read` (read-only), like ``cost-assets report html``, so
it declares the marts it reads as plain dependencies (``deps``) instead of loading them as inputs; it runs
in the ``duckdb_writer`` pool because DuckDB lets no reader in while a writer holds the file.
"""

import datetime as dt
from collections.abc import Collection
from pathlib import Path

import dagster as dg

from cost_assets import delta
from cost_assets.assets.anomalies import COST_ANOMALIES
from cost_assets.assets.budgets import BUDGET_STATUS
from cost_assets.assets.costs import RUN_COSTS
from cost_assets.assets.policies import DAILY_ASSET
from cost_assets.assets.reconciliation import ATTRIBUTED_COSTS, RECONCILIATION
from cost_assets.assets.reporting import COST_BY_SCOPE
from cost_assets.partitions import window_days
from cost_assets.reports.ledger import Window

REPORT_HTML = dg.AssetKey(["report", "html"])
# The report of a day covers the week ending that day.
REPORT_DAYS = 7
MARTS = (COST_BY_SCOPE, ATTRIBUTED_COSTS, RECONCILIATION, RUN_COSTS)
OPTIONAL_MARTS = (BUDGET_STATUS, COST_ANOMALIES)


class ReportFiles(dg.ConfigurableResource):
    """Which ledger the HTML reports read (the DuckDB file or ``delta:<uri>``) and where they go:
    ``COST_ASSETS_REPORT_DIR``, else a ``reports`` folder beside the DuckDB file or the local Delta root
    (``data/reports`` by default and for a ledger on object storage; a test's own folder in tests)."""

    database: str
    directory: str | None = None

    def path_for(self, day: dt.date) -> Path:
        # A Delta ledger's "file" is its root folder; on object storage the reports stay local (data/reports).
        beside = delta.root_of(self.database) if delta.is_delta(self.database) else self.database
        folder = Path(self.directory or (Path(beside).parent / "reports" if delta.is_local(beside) else "data/reports"))
        return folder.resolve() / f"cost-report-{day.isoformat()}.html"


def build_report_html(present: Collection[dg.AssetKey]) -> dg.AssetsDefinition:
    """The report asset, after the marts it reads (budget status and anomalies when ``present`` has them)."""

    @dg.asset(
        key=REPORT_HTML,
        group_name="report",
        kinds={"html", "altair"},
        deps=[*MARTS, *(key for key in OPTIONAL_MARTS if key in present)],
        check_specs=[
            dg.AssetCheckSpec(
                "contract",
                asset=REPORT_HTML,
                description="The file works offline (the chart library inlined, no script fetched from a CDN) and "
                "holds at least one chart",
            )
        ],
        pool="duckdb_writer",
        **DAILY_ASSET,
    )
    def report_html(context: dg.AssetExecutionContext, report_files: ReportFiles) -> dg.MaterializeResult:
        """The offline HTML report of the week ending the run's last day (spend by team, billed vs estimated,
        top jobs and users, idle by cluster, reconciliation accuracy, budget burn-down, open anomalies): one
        self-contained file under ``COST_ASSETS_REPORT_DIR``, linked from the metadata. A range of days
        writes the file of its last day."""
        from cost_assets.reports import page  # Altair and vl-convert load when a report is drawn, not with the defs

        last = window_days(context.partition_time_window)[-1]
        window = Window(last - dt.timedelta(days=REPORT_DAYS - 1), last)
        written = page.write(report_files.database, window, report_files.path_for(last))
        text = written.path.read_text(encoding="utf-8")
        offline = "<script src=" not in text and "vegaEmbed" in text
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name="contract",
                    passed=offline and bool(written.charts),
                    metadata={"offline": offline, "charts": len(written.charts)},
                )
            ],
            metadata={
                "report_file": dg.MetadataValue.path(str(written.path)),
                "report_link": dg.MetadataValue.url(written.path.as_uri()),
                "covers": f"{window.start} .. {window.end}",
                "charts": dg.MetadataValue.md("\n".join(f"- {title}" for title in written.charts)),
                "left_out": dg.MetadataValue.md("\n".join(f"- {note}" for note in written.notes) or "nothing"),
                "size_bytes": written.size_bytes,
            },
        )

    return report_html
