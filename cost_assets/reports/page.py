"""The offline HTML report: the ledger's charts in one self-contained file (``cost-assets report html`` and the
``report/html`` asset write it).

Altair builds the charts from the same reports as ``cost-assets report`` (:mod:`cost_assets.reports.ledger`,
so a number means the same everywhere) and saves them with ``inline=True``: vl-convert-python puts the Vega,
Vega-Lite and vega-embed JavaScript into the file, so it opens offline, from a mail attachment or a file
share, with no CDN. The SVG renderer draws every chart as SVG elements (crisp when zoomed or printed, and
checkable by a test). Charts are stacked in one ``vconcat``; a chart without data in the window is left out
and named in the page's subtitle, as are the optional tables that are not built (budgets, anomalies).
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import polars as pl

from cost_assets.reports import ledger
from cost_assets.reports.ledger import Window

TOP_N = 10
IDLE_CLUSTERS = 15
WIDTH = 640
HEIGHT = 220
# The three kinds of daily dollars, in words that keep the bill and the estimate apart.
SERIES = {
    "billed_usd": "Databricks bill (DBU $)",
    "estimated_dbu_usd": "estimate of the bill (DBU $)",
    "estimated_total_usd": "estimate incl. cloud VMs and disks (DBU + VM + disk $)",
}
MONEY = ",.2f"


@dataclass(frozen=True)
class Written:
    """What was written: the file, its size, the titles of the charts drawn, and what was left out."""

    path: Path
    size_bytes: int
    charts: tuple[str, ...]
    notes: tuple[str, ...]


def _dates(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    """Dates as ISO strings (what Vega-Lite parses as a temporal field)."""
    return frame.with_columns(pl.col(c).cast(pl.Utf8) for c in columns)


def _bars(frame: pl.DataFrame, label: str, value: str, title: str, value_title: str) -> alt.Chart:
    """A horizontal bar per row, the biggest on top."""
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            y=alt.Y(f"{label}:N", sort="-x", title=None),
            x=alt.X(f"{value}:Q", title=value_title),
            tooltip=[alt.Tooltip(f"{label}:N"), alt.Tooltip(f"{value}:Q", format=MONEY)],
        )
        .properties(width=WIDTH)
    )


def team_trend(database: str, window: Window) -> alt.Chart | None:
    """Billed $ per day stacked by team."""
    rows = ledger.trends(database, window, "team").tables["days"]
    if rows.is_empty():
        return None
    return (
        alt.Chart(_dates(rows, "usage_date"), title="Spend per day by team (Databricks bill, DBU $)")
        .mark_bar()
        .encode(
            x=alt.X("yearmonthdate(usage_date):O", title="day"),
            y=alt.Y("sum(billed_usd):Q", title="billed $"),
            color=alt.Color("value:N", title="team"),
            tooltip=[alt.Tooltip("value:N", title="team"), alt.Tooltip("billed_usd:Q", format=MONEY)],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )


def billed_vs_estimated(database: str, window: Window) -> alt.Chart | None:
    """The bill, the estimate of the bill, and the estimate with VMs, per day."""
    days = ledger.daily(database, window).select("usage_date", *SERIES)
    if days.is_empty():
        return None
    long = _dates(days, "usage_date").unpivot(index="usage_date", variable_name="series", value_name="usd")
    long = long.with_columns(pl.col("series").replace_strict(SERIES))
    return (
        alt.Chart(long, title="Billed vs estimated per day")
        .mark_line(point=True)
        .encode(
            x=alt.X("yearmonthdate(usage_date):O", title="day"),
            y=alt.Y("usd:Q", title="$"),
            color=alt.Color("series:N", sort=list(SERIES.values()), title=None, legend=alt.Legend(labelLimit=0)),
            tooltip=[alt.Tooltip("series:N"), alt.Tooltip("usd:Q", format=MONEY)],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )


def top_chart(database: str, window: Window, by: str) -> alt.Chart | None:
    rows = ledger.top(database, window, by, TOP_N).tables["top"].filter(pl.col("billed_usd").is_not_null())
    if rows.is_empty():
        return None
    return _bars(rows, "value", "billed_usd", f"Top {TOP_N} {by}s by billed $", "billed $ (DBU)")


def idle_chart(database: str, window: Window) -> alt.Chart | None:
    rows = ledger.idle(database, window).tables["clusters"].filter(pl.col("idle_billed_usd") > 0).head(IDLE_CLUSTERS)
    if rows.is_empty():
        return None
    return _bars(rows, "cluster_id", "idle_billed_usd", "Idle by cluster (billed $ no run used)", "idle billed $")


def accuracy_chart(database: str, window: Window) -> alt.Chart | None:
    days = ledger.reconcile(database, window).tables["days"].drop_nulls("within_tolerance_share")
    if days.is_empty():
        return None
    return (
        alt.Chart(_dates(days, "usage_date"), title="Reconciliation: share of billed $ within 5 % of the estimate")
        .mark_bar()
        .encode(
            x=alt.X("yearmonthdate(usage_date):O", title="day"),
            y=alt.Y("within_tolerance_share:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]), title=None),
            tooltip=[alt.Tooltip("within_tolerance_share:Q", format=".1%")],
        )
        .properties(width=WIDTH, height=HEIGHT // 2)
    )


def budget_chart(database: str, window: Window) -> alt.Chart | None:
    """Each budget's spend to date and forecast per day against its amount (needs mart.budget_status)."""
    days = ledger.budget_days(database, window)
    if days is None or days.is_empty():
        return None
    data = _dates(days, "usage_date")
    base = alt.Chart(data).encode(x=alt.X("yearmonthdate(usage_date):O", title="day"), color="budget:N")
    spent = base.mark_line(point=True).encode(
        y=alt.Y("spend_to_date_usd:Q", title="spent to date $"),
        tooltip=[
            "budget:N",
            alt.Tooltip("spend_to_date_usd:Q", format=MONEY),
            alt.Tooltip("amount_usd:Q", format=MONEY),
        ],
    )
    amount = base.mark_line(strokeDash=[4, 4]).encode(y="amount_usd:Q")
    return alt.layer(spent, amount, title="Budget burn-down (dashed: the budget)").properties(
        width=WIDTH, height=HEIGHT
    )


def anomaly_chart(report: ledger.Report) -> alt.Chart | None:
    """The open and escalated anomalies of an ``anomalies`` report, by impact."""
    rows = report.tables["anomalies"]
    open_ = rows.filter(pl.col("status").is_in(["open", "escalated"])) if rows.width else rows
    if open_.is_empty():
        return None
    data = _dates(open_, "scored_date", "opened_on").with_columns(
        pl.concat_str("scope", pl.lit(" ("), "scored_date", pl.lit(")")).alias("anomaly")
    )
    return _bars(data, "anomaly", "impact_usd", "Open anomalies (impact: actual − expected $)", "impact $")


def charts(database: str, window: Window) -> tuple[list[alt.Chart], list[str]]:
    """The charts with data in the window, and a note for each one left out."""
    drawn, notes = [], []
    wanted = [
        ("spend by team", lambda: team_trend(database, window)),
        ("billed vs estimated", lambda: billed_vs_estimated(database, window)),
        ("top jobs", lambda: top_chart(database, window, "job")),
        ("top users", lambda: top_chart(database, window, "user")),
        ("idle by cluster", lambda: idle_chart(database, window)),
        ("reconciliation accuracy", lambda: accuracy_chart(database, window)),
    ]
    for name, build in wanted:
        chart = build()
        drawn.append(chart) if chart is not None else notes.append(f"{name}: no data in the window")
    budget = budget_chart(database, window)
    if budget is not None:
        drawn.append(budget)
    else:
        notes.append("budget burn-down: " + ledger.NOT_BUILT_BUDGETS)
    anomalies = ledger.anomalies(database, window)
    chart = anomaly_chart(anomalies)
    if chart is not None:
        drawn.append(chart)
    else:
        notes.append("open anomalies: " + (ledger.NOT_BUILT_ANOMALIES if anomalies.notes else "none"))
    return drawn, notes


def write(database: str, window: Window, out: Path, generated: dt.datetime | None = None) -> Written:
    """Write the report for ``window`` to ``out`` (its folder is created); one file, no network needed."""
    drawn, notes = charts(database, window)
    when = (generated or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    scope = f", workspace {window.workspace}" if window.workspace else ""
    subtitle = [
        f"{window.start} .. {window.end}{scope} · generated {when} from the stored ledger",
        "Databricks bill = DBU $ only; the estimate adds the cloud VMs and their disks (DBU + VM + disk $)",
        *notes,
    ]
    if not drawn:  # an empty page still says so in a chart
        drawn = [alt.Chart(pl.DataFrame({"text": ["no data in the window"]})).mark_text(size=16).encode(text="text")]
    titles = tuple(str(c.title.text if isinstance(c.title, alt.TitleParams) else c.title) for c in drawn)
    page = alt.vconcat(*drawn, title=alt.TitleParams("Databricks cost report", subtitle=subtitle, anchor="start"))
    page = page.resolve_scale(color="independent")
    out.parent.mkdir(parents=True, exist_ok=True)
    page.save(str(out), format="html", inline=True, embed_options={"renderer": "svg", "actions": False})
    return Written(out, out.stat().st_size, titles, tuple(notes))
