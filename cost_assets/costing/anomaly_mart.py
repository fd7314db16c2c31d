"""The rows of ``mart/cost_anomalies`` for one partition day: the anomaly view as of that day.

Pure polars (the asset in ``assets/anomalies.py`` wraps it); the scoring itself is
:mod:`cost_assets.costing.anomalies`. Partition D holds, for each of the **last 3 closed days ≤ D**
(``scored_date``; closed per :mod:`cost_assets.costing.closure`, judged on the bill's rows up to D), one row
per monitored series: the score, its episode, the feedback given on the episode and, on alertable days,
the top contributors and the incident (:mod:`cost_assets.costing.anomaly_incidents`). Why three: a
correction can still land on a day that has just closed, so the newest closed days are scored again by
each day's run; the newest partition holding a ``scored_date`` has its
current figures. Re-materializing D replaces D's rows only: the rows depend on the bill up to D, the
attributed costs of the 56 + days before, the feedback store and the episodes still open the closed day
before the first scored day (carried from the partition before, so an episode keeps its id and opening
impact across partitions).
"""

import datetime as dt

import polars as pl

from cost_assets.costing import anomalies, anomaly_incidents
from cost_assets.costing.anomalies import RESCORE_LAST_N, TOP_N
from cost_assets.vocabulary import TAG_DIMENSIONS

# The partition rows' columns (the contract is ``schemas.CostAnomalies``).
MART_SCHEMA = {
    "usage_date": pl.Date,
    "scored_date": pl.Date,
    "monitor": pl.String,
    "value": pl.String,
    "scope": pl.String,
    **{c: t for c, t in anomalies.LIFECYCLE_SCHEMA.items() if c not in ("usage_date", "monitor", "value")},
    "feedback": pl.String,
    "top_contributors": pl.String,
    "incident_id": pl.String,
}
del MART_SCHEMA["baseline_days"]
# The feedback store's rows as the scoring reads them (``cost_assets.anomaly_feedback``).
FEEDBACK_SCHEMA = {
    "anomaly_id": pl.String,
    "feedback": pl.String,  # vocabulary.ANOMALY_FEEDBACK
    "monitor": pl.String,
    "value": pl.String,
    "first_day": pl.Date,
    "last_day": pl.Date,
    "escalation": pl.Int32,
}
CARRY_COLUMNS = ["monitor", "value", "anomaly_id", "opened_on", "opening_impact_usd", "status"]
# How a monitor's value reads in an alert (the layers whose value joins two names say which two).
SCOPE_NAMES = {"workspace_sku": "workspace | SKU family", "endpoint_user": "endpoint | user"}


def scope() -> pl.Expr:
    """``team = data-eng`` from ``monitor`` and ``value``; ``account`` alone for the account series."""
    named = pl.concat_str(pl.col("monitor").replace(SCOPE_NAMES), pl.lit(" = "), pl.col("value"))
    return pl.when(pl.col("monitor") == "account").then(pl.lit("account")).otherwise(named)


def carry(previous: pl.DataFrame | None, before: dt.date | None) -> pl.DataFrame | None:
    """The episodes open (or escalated) on the closed day ``before`` the first scored day, from ``previous``
    (mart rows of earlier partitions; the newest partition holding ``before`` speaks for it)."""
    if previous is None or before is None:
        return None
    rows = previous.filter(pl.col("scored_date") == before)
    if rows.is_empty():
        return None
    newest = rows.filter(pl.col("usage_date") == pl.col("usage_date").max())
    return newest.filter(pl.col("status").is_in(["open", "escalated"])).select(CARRY_COLUMNS)


def resolve(feedback: pl.DataFrame, previous: pl.DataFrame | None) -> pl.DataFrame:
    """``feedback`` with the series and days of marks stored by id alone (made while a run held the
    ledger) filled in from ``previous`` mart rows: the episode's series, its opening day and its newest day
    out of band. Marks ``previous`` does not hold stay without them (their open episodes are still found
    through the carried episodes)."""
    missing = feedback.filter(pl.col("monitor").is_null())
    if missing.is_empty() or previous is None:
        return feedback
    episodes = (
        previous.filter(pl.col("anomaly_id").is_in(missing["anomaly_id"].implode()) & (pl.col("status") != "closed"))
        .group_by("anomaly_id")
        .agg(
            pl.col("monitor").first().alias("_monitor"),
            pl.col("value").first().alias("_value"),
            pl.col("opened_on").min().alias("_first"),
            pl.col("scored_date").max().alias("_last"),
        )
    )
    return (
        feedback.join(episodes, on="anomaly_id", how="left")
        .with_columns(
            pl.coalesce("monitor", "_monitor").alias("monitor"),
            pl.coalesce("value", "_value").alias("value"),
            pl.coalesce("first_day", "_first").alias("first_day"),
            pl.coalesce("last_day", "_last").alias("last_day"),
        )
        .select(feedback.columns)
    )


def planned_days(feedback: pl.DataFrame, carried: pl.DataFrame | None, days: list[dt.date]) -> pl.DataFrame:
    """``monitor, value, usage_date`` left out of the baselines: every day a planned anomaly had when it was
    marked (``first_day`` … ``last_day``), and the scored ``days`` of a planned episode still open."""
    marked = feedback.filter(pl.col("feedback") == "planned")
    known = marked.drop_nulls(["monitor", "first_day", "last_day"])
    spans = known.select("monitor", "value", pl.date_ranges("first_day", "last_day").alias("usage_date"))
    spans = spans.explode("usage_date")
    ongoing = pl.DataFrame(schema={"monitor": pl.String, "value": pl.String, "usage_date": pl.Date})
    if carried is not None:
        still = carried.filter(pl.col("anomaly_id").is_in(marked["anomaly_id"].implode()))
        ongoing = still.select("monitor", "value").join(
            pl.DataFrame({"usage_date": days}, schema={"usage_date": pl.Date}), how="cross"
        )
    return pl.concat([spans, ongoing]).unique()


def top_contributors(causes: pl.DataFrame) -> pl.DataFrame:
    """``usage_date, monitor, value, top_contributors``: per alert, what moved most of each kind the issue
    of an alert is told by — the job, the resource (cluster, endpoint …), the SKU, the user and one tag
    value (team, tenant, project or cost center, whichever moved most) — largest change in the impact's
    direction first, as JSON. One per kind because the same dollars move every kind at once: the five
    largest overall would often be one job's dollars under five tag names."""
    kinds = {d: ("tag" if d in TAG_DIMENSIONS else d) for d in anomalies.CONTRIBUTOR_DIMENSIONS}
    order = {d: i for i, d in enumerate(anomalies.CONTRIBUTOR_DIMENSIONS)}
    key = ["usage_date", "monitor", "value"]
    best = (
        causes.filter(pl.col("rank") == 1)
        .with_columns(
            (pl.col("delta_usd") * pl.col("impact_usd").sign()).alias("_moved"),
            pl.col("contributor_dimension").replace_strict(kinds, default=None).alias("_kind"),
            pl.col("contributor_dimension").replace_strict(order, default=len(order)).alias("_dim"),
        )
        .sort("_moved", "_dim", descending=[True, False])
        .unique([*key, "_kind"], keep="first", maintain_order=True)
    )
    contributor = pl.struct(
        pl.col("contributor_dimension").alias("dimension"),
        pl.col("contributor_value").alias("value"),
        pl.col("actual_usd").round(2),
        pl.col("expected_usd").round(2),
        pl.col("delta_usd").round(2),
    )
    return (
        best.group_by(key, maintain_order=True)
        .agg(contributor.alias("_c"))
        .with_columns(pl.col("_c").list.head(TOP_N).list.eval(pl.element().struct.json_encode()).list.join(", "))
        .select(*key, pl.concat_str(pl.lit("["), pl.col("_c"), pl.lit("]")).alias("top_contributors"))
    )


def as_of(
    day: dt.date,
    closed: pl.DataFrame,
    spend: pl.DataFrame,
    rows: pl.DataFrame,
    previous: pl.DataFrame | None,
    feedback: pl.DataFrame,
    *,
    k: float = anomalies.K,
    floor_usd: float = anomalies.FLOOR_USD,
    pct: float = anomalies.PCT,
) -> pl.DataFrame:
    """The rows of partition ``day`` (``MART_SCHEMA``; module doc).

    ``closed``: :func:`cost_assets.costing.closure.closed_days` of the bill's rows up to ``day``;
    ``spend`` / ``rows``: :func:`anomalies.spend_frame` / :func:`anomalies.spend_rows` (collected) over the
    look-back; ``previous``: mart rows of earlier partitions (for the carried episodes; None on a first run);
    ``feedback``: the feedback store (``FEEDBACK_SCHEMA``)."""
    closed = closed.filter(pl.col("usage_date") <= day)
    cal = anomalies.calendar(closed)
    days = cal[-RESCORE_LAST_N:]
    if not days:
        return pl.DataFrame(schema=MART_SCHEMA)
    carried = carry(previous, cal[-RESCORE_LAST_N - 1] if len(cal) > RESCORE_LAST_N else None)
    feedback = resolve(feedback, previous)
    scored = anomalies.score(
        spend.filter(pl.col("usage_date") <= day),
        closed,
        planned_days(feedback, carried, days),
        k=k,
        floor_usd=floor_usd,
        pct=pct,
    )
    life = anomalies.lifecycle(scored, None if carried is None else carried.drop("anomaly_id"))
    causes = top_contributors(anomalies.root_causes(rows, life))
    key = ["usage_date", "monitor", "value"]
    return (
        life.join(causes, on=key, how="left")
        .join(feedback.select("anomaly_id", "feedback"), on="anomaly_id", how="left")
        .with_columns(
            pl.lit(day).alias("_day"),
            scope().alias("scope"),
            pl.when(pl.col("alertable")).then(pl.col("top_contributors")).alias("top_contributors"),
            # A planned day opens no episode (never alertable): it is planned because of a mark.
            pl.coalesce("feedback", pl.when(pl.col("planned")).then(pl.lit("planned"))).alias("feedback"),
        )
        .rename({"usage_date": "scored_date"})
        .rename({"_day": "usage_date"})
        .pipe(anomaly_incidents.assign)
        .select(list(MART_SCHEMA))
        .cast(MART_SCHEMA)
        .sort("scored_date", "monitor", "value")
    )
