"""Cost anomalies: each monitored series' daily spend scored against its own robust baseline.

Pure polars, no Dagster (the ``mart/cost_anomalies`` asset wraps it). Five steps, one function each:

1. :func:`spend_rows` — ``mart/attributed_costs`` rows (optionally with the model-serving split) carrying,
   per row, the value of every monitor and every root-cause dimension;
2. :func:`spend_frame` — those rows summed to the daily series ``usage_date, monitor, value, cost_usd``;
3. :func:`score` — every closed day of every series: baseline, band, impact, state, alertable;
4. :func:`lifecycle` — alertable days grouped into episodes (open → escalated → closed) with a stable id;
5. :func:`root_causes` — for each alertable day, the lower-level keys that moved the most.

**Monitors** (``MONITORS``): ``account`` (one series, value ``"all"``), ``workspace_sku`` (value
``<workspace_id>|<SKU family>``), the tag dimensions, ``job``, ``user`` (these exactly as
``mart/cost_by_scope`` counts them, summed over workspaces) and ``endpoint_user`` (value
``<endpoint>|<user>``, model-serving money only).

**Which money.** ``billed_cost_usd`` of ``mart/attributed_costs`` — the bill, priced once, corrections
(RETRACTION / RESTATEMENT rows) already netted in, so a corrected day is judged on its corrected total.
*Credits and commitments*: nothing in our schema marks them, because nothing we ingest contains them —
``system.billing.usage`` (and every source normalized to it, ``raw/billing_usage``) holds usage rows only,
with ``record_type`` ORIGINAL / RETRACTION / RESTATEMENT; prepaid commitments and promotional credits are
applied on the invoice, which we do not read. So nothing is filtered out here: were such lines ever
ingested, they would need a marker column first (guessing one from a negative amount would drop
legitimate retractions). *Unknown money* (an unpriced SKU: ``billed_cost_usd`` null) is not counted as
$0: the series-day is flagged ``unpriced``, left out of every baseline and never alertable, because a
total missing part of its money would look like a drop.

**Gaps.** A series exists from its first closed day with non-zero (or unknown) spend. From then on,
every *closed* day on which it has no row counts as $0 spend — an absence is real information (the job
did not run); before its first day it has no history at all. A day that is not closed is neither
scored nor used in anyone's baseline (its bill may still grow), and a day missing from the bill
altogether (no rows, so no closure) is not a zero either: it is a hole in the calendar. The consequence
is deliberate: a job that runs every other Monday has a Monday median of $0 and its run days score
``high``; mark such days as planned (``score(planned=...)``) when that is expected.

**Baseline of day D** (the points are the series' closed, non-planned, priced days before D):

* ``weekday``: the same weekday in the 8 weeks before D (D−7, D−14, …, D−56), if ≥ 4 of them are points
  — spend follows the weekly schedule of jobs, so a Monday is compared with Mondays;
* else ``rolling_28d``: the 28 days before D, if ≥ 12 of them are points (young series, or many holes);
* else no baseline: ``new_spender`` if the series has no point before D at all and spends ≥ the $ floor,
  otherwise ``insufficient_history`` — never silently ``normal``.

``expected_usd`` is the median of the points, ``mad_usd`` the median absolute deviation over the same
points, and the band is ``expected ± k · 1.4826 · MAD`` (1.4826 · MAD estimates σ for normal noise; the
median and MAD ignore a past spike, which a mean and standard deviation would not). A flat history has
MAD = 0, so any change leaves the band; the $ thresholds below keep that from alerting on cents.

**State and alertable.** ``state`` is where the day lies: ``normal`` (inside the band, edges included),
``high`` / ``low`` (outside), ``new_spender``, ``insufficient_history``. ``impact_usd = actual − expected``.
A day is **alertable** when it is outside the band *and* ``|impact| ≥ max(floor_usd, pct · |expected|)``
(defaults $50 and 20 %: the floor silences small series, the percentage large ones), or when it is a
``new_spender`` (whose expected is $0, so its impact is its spend). Planned and unpriced days are never
alertable.

**Episodes** (:func:`lifecycle`): an alertable day opens an episode, identified by a hash of (monitor,
value, its first day) so every re-run names it the same; it escalates once |impact| reaches twice the
impact it opened with, and closes on the first day back in the band. **Root cause** (:func:`root_causes`):
for an alertable day, the jobs, resources, SKUs, users and tag values of the series whose spend moved
most against the very baseline days the series was judged on.

**How it stays fast** (365 days × 5,000 series in well under a second on 2 cores, see
``benchmarks/ANOMALIES.md``): no loop over series. Each series becomes a dense run of rows, one per date,
in one frame, so "n days earlier" is "n rows earlier" (a shift or a gather by position); the 8 weekday
points are sorted per row by a sorting network of column-wise min/max; only the few days that need the
28-day fallback get it, by one gather and one group-by; values reach their rows by position, not by
joins on strings.
"""

import datetime as dt
import hashlib
from collections.abc import Sequence

import polars as pl

from cost_assets.costing import scope
from cost_assets.costing.frames import ENGINE, Frame, cumsum_within, ffill_within, group_starts, lazy, shift_within
from cost_assets.vocabulary import (
    ANOMALY_BASELINES,
    ANOMALY_MONITORS,
    ANOMALY_STATES,
    ANOMALY_STATUSES,
    TAG_DIMENSIONS,
    TIERS,
    UNTAGGED,
)

# --- vocabulary of this module (the contract of mart/cost_anomalies checks against these) ----------------

# The monitored series, ``state``, ``baseline`` and ``status`` values are the vocabulary's (the contract
# of mart/cost_anomalies checks against them there).
MONITORS = ANOMALY_MONITORS
STATES = ANOMALY_STATES
BASELINES = ANOMALY_BASELINES
STATUSES = ANOMALY_STATUSES
# The one value of the ``account`` monitor (a deployment reads one Databricks account).
ACCOUNT_VALUE = "all"
# The lower-level keys a root cause is looked for in (each a column of :func:`spend_rows`); a monitor's
# own dimension is skipped for its alerts.
CONTRIBUTOR_DIMENSIONS = ["job", "resource", "sku_name", "user", *TAG_DIMENSIONS]

# --- parameters (defaults) -----------------------------------------------------------------------------

K = 3.5  # band half-width in robust σ
MAD_TO_SIGMA = 1.4826
FLOOR_USD = 50.0
PCT = 0.20
ESCALATE_FACTOR = 2.0  # an open episode escalates once |impact| ≥ this × its impact when opened
RESCORE_LAST_N = 3  # the asset re-scores the last N closed days (late corrections land on closed days too)
TOP_N = 5

WEEKS = 8  # weekday baseline: D−7 … D−7·WEEKS
MIN_WEEKDAY_POINTS = 4
ROLLING_DAYS = 28
MIN_ROLLING_POINTS = 12
# How many days before the first scored day the spend frame must reach back for the baselines to be the
# full ones (the asset loads this much history).
LOOKBACK_DAYS = max(7 * WEEKS, ROLLING_DAYS)

# The frames' columns and dtypes (what a pandera contract of ``mart/cost_anomalies`` would check).
SPEND_SCHEMA = {
    "usage_date": pl.Date,
    "monitor": pl.String,
    "value": pl.String,
    "cost_usd": pl.Float64,
    "unpriced": pl.Boolean,
}
SCORE_SCHEMA = {
    "usage_date": pl.Date,
    "monitor": pl.String,
    "value": pl.String,
    "actual_usd": pl.Float64,
    "expected_usd": pl.Float64,
    "mad_usd": pl.Float64,
    "lower_usd": pl.Float64,
    "upper_usd": pl.Float64,
    "impact_usd": pl.Float64,
    "threshold_usd": pl.Float64,
    "baseline": pl.String,
    "baseline_points": pl.Int32,
    "state": pl.String,
    "alertable": pl.Boolean,
    "planned": pl.Boolean,
    "unpriced": pl.Boolean,
    "baseline_days": pl.List(pl.Date),
}
LIFECYCLE_SCHEMA = {
    **SCORE_SCHEMA,
    "anomaly_id": pl.String,
    "opened_on": pl.Date,
    "opening_impact_usd": pl.Float64,
    "status": pl.String,
}
ROOT_CAUSE_SCHEMA = {
    "usage_date": pl.Date,
    "monitor": pl.String,
    "value": pl.String,
    "impact_usd": pl.Float64,
    "contributor_dimension": pl.String,
    "contributor_value": pl.String,
    "actual_usd": pl.Float64,
    "expected_usd": pl.Float64,
    "delta_usd": pl.Float64,
    "share_of_impact": pl.Float64,
    "rank": pl.UInt32,
}
SPEND_COLUMNS = list(SPEND_SCHEMA)
SCORE_COLUMNS = list(SCORE_SCHEMA)
LIFECYCLE_COLUMNS = list(LIFECYCLE_SCHEMA)
ROOT_CAUSE_COLUMNS = list(ROOT_CAUSE_SCHEMA)


# --- 1. rows -----------------------------------------------------------------------------------------------


def sku_family(sku_name: pl.Expr) -> pl.Expr:
    """The SKU family: ``sku_name`` without its tier, its Photon marker and its region.

    ``PREMIUM_JOBS_COMPUTE_(PHOTON)`` → ``JOBS_COMPUTE``; ``ENTERPRISE_SERVERLESS_SQL_COMPUTE_US_EAST_N_VIRGINIA``
    → ``SERVERLESS_SQL_COMPUTE``. Why these three: the tier is the workspace's plan (it changes only when
    the plan does, and then the whole workspace moves together), Photon is an engine switch on the same
    workload (a job turning Photon on should read as a cost change of that workload, not as one series
    dying and another being born), and the region suffix that serverless SKUs carry
    (``_US_EAST_N_VIRGINIA``, ``_EUROPE_LONDON``, ``_AP_SOUTHEAST_SYDNEY``) is fixed per workspace. The region
    is recognized by its first word (a geography: US, EUROPE, AP, CANADA, …), which no workload word is; an
    unknown region word would simply stay in the family. Null → ``vocabulary.UNTAGGED``.
    """
    tiers = "|".join(TIERS)
    regions = "US|EU|EUROPE|AP|ASIA|CANADA|CA|SA|SOUTH|UK|AUSTRALIA|JAPAN|INDIA|KOREA|ME|MIDDLE|AFRICA|UAE|BRAZIL"
    return (
        sku_name.str.strip_chars()
        .str.to_uppercase()
        .str.replace(rf"^({tiers})_", "")
        .str.replace_all(r"_\(PHOTON\)", "")
        .str.replace(rf"_({regions})(_[A-Z0-9]+)*$", "")
        .fill_null(UNTAGGED)
    )


def _untagged(expr: pl.Expr) -> pl.Expr:
    """Null or blank → ``vocabulary.UNTAGGED`` (the same rule as cost_by_scope)."""
    return pl.when(expr.cast(pl.String).str.strip_chars() != "").then(expr.cast(pl.String)).otherwise(pl.lit(UNTAGGED))


def spend_rows(
    attributed: Frame,
    jobs: Frame | None = None,
    clusters: Frame | None = None,
    billing: Frame | None = None,
    serving_costs: Frame | None = None,
) -> pl.LazyFrame:
    """``mart/attributed_costs`` rows with the value of every monitor and root-cause dimension.

    Columns: ``usage_date, workspace_id, resource, sku_name, cost_usd, unpriced`` then one column per
    monitor (``MONITORS``) and the contributor dimensions (``resource`` = ``<resource_type>:<resource_id>``,
    ``sku_name``). Every dimension column is filled (``vocabulary.UNTAGGED``) except ``endpoint_user``,
    which is null on rows that are not model-serving money.

    The tag, job and user values are those of ``mart/cost_by_scope`` (same inputs, same rules), so the
    anomaly series of a team is the team's cost_by_scope total: tags as resolved on the attributed rows;
    ``user`` = :func:`cost_assets.costing.scope.with_user` (the job's user: the bill's ``run_as``, else the
    job's creator; needs ``jobs``; else for cluster money the cluster's creator; needs ``clusters``),
    else ``UNTAGGED``. With ``serving_costs`` (``mart/serving_costs``), endpoint money is taken from its
    request split instead, as cost_by_scope does: tenant and user from the requests, no job, no other tag.
    A serving row is spread over its endpoint-day's SKUs by their share of the attributed endpoint $, so
    ``workspace_sku`` still sees the SKU (serving_costs has none) and every monitor but ``endpoint_user``
    still sums to the day's attributed total. Without ``serving_costs`` the endpoint rows stay as they are
    and ``endpoint_user`` is ``<endpoint>|(untagged)``.
    """
    att = lazy(attributed)
    rows = att.select(
        "usage_date",
        "workspace_id",
        "resource_type",
        "resource_id",
        "sku_name",
        "job_id",
        *TAG_DIMENSIONS,
        pl.col("billed_cost_usd").alias("cost_usd"),
    )
    rows = scope.with_user(rows, scope.cluster_money_id(), jobs, clusters, billing)
    rows = rows.with_columns(pl.col("job_id").cast(pl.String).alias("job"))
    endpoint_user = pl.when(pl.col("resource_type") == "endpoint").then(
        pl.concat_str(pl.col("resource_id"), pl.lit("|"), _untagged(pl.col("user")))
    )
    if serving_costs is not None:
        endpoint = rows.filter(pl.col("resource_type") == "endpoint")
        rows = rows.filter(pl.col("resource_type") != "endpoint")
        rows = pl.concat([rows, _serving_rows(serving_costs, endpoint)], how="diagonal_relaxed")
    return rows.select(
        "usage_date",
        "workspace_id",
        pl.concat_str("resource_type", pl.lit(":"), "resource_id").alias("resource"),
        _untagged(pl.col("sku_name")).alias("sku_name"),
        "cost_usd",
        pl.col("cost_usd").is_null().alias("unpriced"),
        pl.lit(ACCOUNT_VALUE).alias("account"),
        pl.concat_str(_untagged(pl.col("workspace_id")), pl.lit("|"), sku_family(pl.col("sku_name"))).alias(
            "workspace_sku"
        ),
        *[_untagged(pl.col(t)).alias(t) for t in TAG_DIMENSIONS],
        _untagged(pl.col("job")).alias("job"),
        _untagged(pl.col("user")).alias("user"),
        endpoint_user.alias("endpoint_user"),
    )


def _serving_rows(serving_costs: Frame, endpoint_rows: pl.LazyFrame) -> pl.LazyFrame:
    """serving_costs groups as spend rows, spread over the endpoint-day's SKUs by their attributed $.

    An endpoint-day whose attributed $ is zero or unknown spreads by row count; a serving row whose
    endpoint has no attributed row that day keeps a null SKU.
    """
    day = ["usage_date", "workspace_id", "resource_id"]
    skus = (
        endpoint_rows.group_by(*day, "sku_name")
        .agg(pl.col("cost_usd").sum().alias("_sku_usd"), pl.len().alias("_n"))
        .with_columns(
            pl.when(pl.col("_sku_usd").sum().over(day) != 0)
            .then(pl.col("_sku_usd") / pl.col("_sku_usd").sum().over(day))
            .otherwise(pl.col("_n") / pl.col("_n").sum().over(day))
            .alias("_share")
        )
        .select(*day, "sku_name", "_share")
    )
    return (
        lazy(serving_costs)
        .select(
            "usage_date",
            pl.col("workspace_id").cast(pl.String),
            pl.col("endpoint_name").alias("resource_id"),
            pl.when(pl.col("tenant") != UNTAGGED).then(pl.col("tenant")).alias("tenant"),
            pl.when(pl.col("user") != UNTAGGED).then(pl.col("user")).alias("user"),
            "actual_usd",
        )
        .join(skus, on=day, how="left")
        .select(
            "usage_date",
            "workspace_id",
            pl.lit("endpoint").alias("resource_type"),
            "resource_id",
            "sku_name",
            "tenant",
            "user",
            (pl.col("actual_usd") * pl.col("_share").fill_null(1.0)).alias("cost_usd"),
        )
    )


# --- 2. series ---------------------------------------------------------------------------------------------


def spend_frame(rows: Frame) -> pl.DataFrame:
    """The daily series: ``usage_date, monitor, value, cost_usd, unpriced`` (``SPEND_COLUMNS``).

    ``rows``: :func:`spend_rows`. ``cost_usd`` sums the known $; ``unpriced`` says some of the series-day's
    money is unknown (see the module doc). One row per (day, monitor, value) that has a row that day.
    """
    rows = lazy(rows)
    per_monitor = [
        rows.filter(pl.col(m).is_not_null())
        .group_by("usage_date", pl.col(m).alias("value"))
        .agg(pl.col("cost_usd").sum(), pl.col("unpriced").any())
        .with_columns(pl.lit(m).alias("monitor"))
        for m in MONITORS
    ]
    return (
        pl.concat(per_monitor, how="vertical")
        .select(SPEND_COLUMNS)
        .sort("monitor", "value", "usage_date")
        .collect(engine=ENGINE)
    )


# --- 3. scoring --------------------------------------------------------------------------------------------

# The sorting network (below) is row-wise: the streaming engine works through it in batches, so its 16
# temporary columns never exist for all rows at once (measured on the benchmark: ~170 MB lower peak than
# in memory). The order-dependent stages use ``frames.ENGINE``.
ROW_WISE = "streaming"
# Money comparisons (band edges, thresholds) allow this much float error, so $150 − $100 ≥ $50 holds.
EPS_USD = 1e-9


def calendar(closed: Frame) -> list[dt.date]:
    """The closed days, ascending (``closed``: :func:`cost_assets.costing.closure.closed_days`)."""
    days = lazy(closed).filter(pl.col("closed")).select("usage_date").unique().sort("usage_date").collect()
    return days["usage_date"].to_list()


def rescore_days(closed: Frame, n: int = RESCORE_LAST_N) -> list[dt.date]:
    """The last ``n`` closed days: what the asset re-scores on each run (a late correction can still land on
    a day that has just closed, so the newest few are scored again rather than once)."""
    return calendar(closed)[-n:] if n > 0 else []


# An optimal sorting network for 8 values (19 compare-exchanges in 7 layers; checked exhaustively on 0/1
# inputs): the weekday baseline's 8 points are sorted with column-wise min/max — elementwise kernels —
# instead of a list column per row (``list.median`` and a MAD by ``list.eval`` took several seconds on the
# benchmark, this takes ~0.2 s).
_SORT8 = [
    [(0, 1), (2, 3), (4, 5), (6, 7)],
    [(0, 2), (1, 3), (4, 6), (5, 7)],
    [(1, 2), (5, 6), (0, 4), (3, 7)],
    [(1, 5), (2, 6)],
    [(1, 4), (3, 6)],
    [(2, 4), (3, 5)],
    [(3, 4)],
]


def _sort8(frame: pl.LazyFrame, cols: list[str]) -> pl.LazyFrame:
    """Sort the 8 columns ``cols`` row-wise, in place (null must already be +inf, which sorts last)."""
    for layer in _SORT8:
        frame = frame.with_columns(
            expr
            for i, j in layer
            for expr in (
                pl.min_horizontal(cols[i], cols[j]).alias(cols[i]),
                pl.max_horizontal(cols[i], cols[j]).alias(cols[j]),
            )
        )
    return frame


def _pick_median(cols: list[str], n: pl.Expr) -> pl.Expr:
    """The median of the first ``n`` of the row-sorted ``cols`` (null when n = 0)."""
    out = pl.when(n == 1).then(pl.col(cols[0]))
    for m in range(2, len(cols) + 1):
        lo, hi = cols[(m - 1) // 2], cols[m // 2]
        out = out.when(n == m).then((pl.col(lo) + pl.col(hi)) / 2 if m % 2 == 0 else pl.col(hi))
    return out


def _weekly_median_mad(frame: pl.LazyFrame, points: list[pl.Expr]) -> pl.LazyFrame:
    """``_wk_med, _wk_mad, _wk_n``: median, MAD and count of the non-null ``points`` (8 expressions)."""
    cols = [f"_w{i}" for i in range(len(points))]
    inf = float("inf")
    frame = frame.with_columns(
        *[p.alias(c) for p, c in zip(points, cols, strict=True)],
    ).with_columns(
        pl.sum_horizontal(pl.col(c).is_not_null() for c in cols).cast(pl.Int32).alias("_wk_n"),
        *[pl.col(c).fill_null(inf) for c in cols],
    )
    n = pl.col("_wk_n")
    frame = _sort8(frame, cols).with_columns(_pick_median(cols, n).alias("_wk_med"))
    # Deviations of the n real points (sorted again; the padding stays +inf, beyond n).
    frame = frame.with_columns(
        pl.when(n > i).then((pl.col(c) - pl.col("_wk_med")).abs()).otherwise(inf).alias(c) for i, c in enumerate(cols)
    )
    return _sort8(frame, cols).with_columns(_pick_median(cols, n).alias("_wk_mad")).drop(cols)


_SEP = "\x1f"  # joins monitor and value into one key (no monitor name contains it)


def _daily_rows(spend: Frame, cal: list[dt.date], day: pl.Expr) -> pl.DataFrame:
    """``_key, _k, d, cost_usd, unpriced``: the closed-day rows, one per (series, day), sorted by (_k, d).

    The series key is ``monitor ␟ value`` as a Categorical (``_k``: its integer code) and rows are sorted,
    not hash-grouped: on 1.6 M rows a group-by on the two strings peaks ~300 MB higher than this. Repeated
    (series, day) rows — :func:`spend_frame` never makes them — are summed.
    """
    src = lazy(spend)
    if "unpriced" not in src.collect_schema().names():
        src = src.with_columns(pl.col("cost_usd").is_null().alias("unpriced"))
    rows = (
        src.filter(pl.col("usage_date").is_in(pl.Series(cal, dtype=pl.Date).implode()))
        .select(
            pl.concat_str("monitor", pl.lit(_SEP), "value").cast(pl.Categorical).alias("_key"),
            day,
            pl.col("cost_usd").cast(pl.Float64),
            pl.col("unpriced").cast(pl.Boolean),
        )
        .with_columns(pl.col("_key").to_physical().alias("_k"))
        .sort("_k", "d")
        .collect(engine=ENGINE)
    )
    repeated = rows.select((pl.col("_k").eq(pl.col("_k").shift(1)) & pl.col("d").eq(pl.col("d").shift(1))).any())
    if repeated.item():
        rows = rows.group_by("_key", "_k", "d").agg(pl.col("cost_usd").sum(), pl.col("unpriced").any()).sort("_k", "d")
    return rows


def score(
    spend: Frame,
    closed: Frame,
    planned: Frame | None = None,
    *,
    rescore_last: int | None = RESCORE_LAST_N,
    k: float = K,
    floor_usd: float = FLOOR_USD,
    pct: float = PCT,
) -> pl.DataFrame:
    """Score the closed days of every series (module doc: baseline, band, state, alertable).

    ``spend``: :func:`spend_frame` (``usage_date, monitor, value, cost_usd`` [+ ``unpriced``]); rows on days
    that are not closed are ignored. ``closed``: :func:`cost_assets.costing.closure.closed_days`.
    ``planned``: ``monitor, value, usage_date`` days to leave out of the baselines (a known migration, a
    planned backfill); they are still scored, but never alertable. ``rescore_last``: output only the last
    N closed days (the asset's re-score window; ``spend`` must then reach ``LOOKBACK_DAYS`` further back);
    ``None``: every closed day. ``k``: band half-width; ``floor_usd`` / ``pct``: the alert thresholds.

    One row per (output day, series that exists by that day), sorted by monitor, value, usage_date,
    ``SCORE_COLUMNS`` (``SCORE_SCHEMA``): ``actual_usd`` (0 on a gap day); ``expected_usd``, ``mad_usd``,
    ``lower_usd``, ``upper_usd`` (null without a baseline; expected 0 and no band for a new spender);
    ``impact_usd`` (actual − expected); ``threshold_usd`` (max(floor, pct·|expected|)); ``baseline``
    (``BASELINES``, null without one) and ``baseline_points`` (its number of points; without a baseline,
    the points in the 28 days before); ``state`` (``STATES``); ``alertable``; ``planned``; ``unpriced``;
    ``baseline_days`` (the dates expected came from — on alertable rows only, for :func:`root_causes`;
    empty for a new spender; null elsewhere).
    """
    cal = calendar(closed)
    out_days = cal if rescore_last is None else cal[-rescore_last:] if rescore_last > 0 else []
    if not out_days:
        return pl.DataFrame(schema=SCORE_SCHEMA)
    origin = cal[0]
    cal_idx = pl.Series("d", [(d - origin).days for d in cal], dtype=pl.Int32)
    last, first_out = int(cal_idx[-1]), (out_days[0] - origin).days

    def day_index() -> pl.Expr:
        return (pl.col("usage_date") - pl.lit(origin)).dt.total_days().cast(pl.Int32).alias("d")

    rows = _daily_rows(spend, cal, day_index())
    # A series starts on its first closed day with non-zero (or unknown) spend (rows are sorted by key, day).
    spends = (pl.col("cost_usd") != 0) | pl.col("unpriced")
    # The grid of a series starts on its first day, or LOOKBACK_DAYS before the first output day if that
    # is later (``_start``): no baseline reaches further back, so a re-score window costs its days only.
    length = pl.lit(last + 1, pl.Int64) - pl.col("_start")
    series = (
        rows.lazy()
        .filter(spends)
        .filter(group_starts("_k"))
        .select(
            "_k",
            pl.col("d").alias("_first"),
            pl.col("_key").cast(pl.String).str.splitn(_SEP, 2).struct.rename_fields(["monitor", "value"]),
        )
        .unnest("_key")
        .sort("monitor", "value")
        .with_row_index("sid")
        .with_columns(pl.max_horizontal("_first", pl.lit(first_out - LOOKBACK_DAYS, pl.Int32)).alias("_start"))
        .with_columns((length.cum_sum() - length).alias("_lo"))
        .collect(engine=ENGINE)
    )
    if series.is_empty():
        return pl.DataFrame(schema=SCORE_SCHEMA)
    # The dense grid: every date from the series' first day to the last closed day, so that row r − n is
    # n days before row r in the same series (if r − n ≥ _lo). Dates that are not closed are holes: no
    # point, no score. Values land on their rows by position (scatter), not by a join on strings.
    grid = (
        series.lazy()
        .select("sid", "_first", "_start", "_lo", pl.int_ranges("_start", last + 1, dtype=pl.Int32).alias("d"))
        .explode("d")
        .collect(engine=ENGINE)
    )
    on_grid = pl.col("d") >= pl.col("_start")
    at = (pl.col("_lo") + pl.col("d") - pl.col("_start")).alias("_row")
    values = rows.join(series.select("_k", "_start", "_lo"), on="_k").filter(on_grid).select(at, "cost_usd", "unpriced")
    del rows
    n = grid.height
    cost = (
        pl.repeat(None, n, dtype=pl.Float64, eager=True).alias("cost_usd").scatter(values["_row"], values["cost_usd"])
    )
    unpriced = pl.repeat(False, n, eager=True).alias("unpriced").scatter(values["_row"], values["unpriced"])
    del values
    is_planned = pl.repeat(False, n, eager=True).alias("planned")
    if planned is not None:
        marks = (
            lazy(planned)
            .select("monitor", "value", day_index())
            .join(series.lazy().select("monitor", "value", "_start", "_lo"), on=["monitor", "value"])
            .filter(on_grid)
            .select(at)
            .collect(engine=ENGINE)
        )
        is_planned = is_planned.scatter(marks["_row"], True)
    in_cal = pl.col("d").is_in(cal_idx.implode())
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    grid = (
        grid.lazy()
        .with_columns(
            cost,
            unpriced,
            is_planned,
            in_cal.alias("_cal"),
            row.alias("_r"),
        )
        .with_columns(pl.when(pl.col("_cal")).then(pl.col("cost_usd").fill_null(0.0)).alias("actual_usd"))
        # A baseline point: a closed day, not planned, all of its money known (a gap day is a $0 point).
        .with_columns(
            pl.when(pl.col("_cal") & ~pl.col("planned") & ~pl.col("unpriced")).then(pl.col("actual_usd")).alias("_pt")
        )
        .with_columns((pl.col("_pt").is_not_null().cast(pl.Int32).cum_sum() - pl.col("_pt").is_not_null()).alias("_cx"))
        .drop("cost_usd")
        .collect(engine=ENGINE)
    )
    # Points before row r in its series: cx[r] − cx[_lo] (cx counts the points before each row, globally).
    cx = pl.col("_cx")
    lag = [pl.when(pl.col("_r") - 7 * w >= pl.col("_lo")).then(pl.col("_pt").shift(7 * w)) for w in range(1, WEEKS + 1)]
    cols = [f"_p{w}" for w in range(1, WEEKS + 1)]
    scored = (
        grid.lazy()
        .with_columns(
            (cx - cx.gather(pl.col("_lo"))).cast(pl.Int32).alias("_before"),
            (cx - cx.gather(pl.max_horizontal(pl.col("_r") - ROLLING_DAYS, pl.col("_lo"))))
            .cast(pl.Int32)
            .alias("_r_n"),
            *[e.alias(c) for e, c in zip(lag, cols, strict=True)],
        )
        .filter(pl.col("_cal") & (pl.col("d") >= first_out))
        .drop("_pt", "_cal", "_cx")
        .collect(engine=ENGINE)
    )
    # Only the points and their days are needed from here on (gathered by row position).
    pt, pt_day = grid["_pt"], grid["d"]
    del grid
    scored = _weekly_median_mad(scored.lazy(), [pl.col(c) for c in cols]).drop(cols).collect(engine=ROW_WISE)

    # The 28-day fallback only where the weekday rule cannot serve and 28 days can (young series, many
    # holes or planned days): the points are gathered by row position, then one group-by; the results go
    # back to their rows by position too (a join would copy every column of ``scored``).
    need = scored.with_row_index("_i").filter(
        (pl.col("_wk_n") < MIN_WEEKDAY_POINTS) & (pl.col("_r_n") >= MIN_ROLLING_POINTS)
    )
    rolling = (
        _gather_window(need, pt, pt_day, range(1, ROLLING_DAYS + 1))
        .group_by("_i")
        .agg(
            pl.col("_pt").median().alias("_r_med"),
            (pl.col("_pt") - pl.col("_pt").median()).abs().median().alias("_r_mad"),
        )
        .collect(engine=ENGINE)
    )
    unset = pl.repeat(None, scored.height, dtype=pl.Float64, eager=True)
    scored = scored.with_columns(
        unset.alias("_r_med").scatter(rolling["_i"], rolling["_r_med"]),
        unset.alias("_r_mad").scatter(rolling["_i"], rolling["_r_mad"]),
    )
    del need, rolling
    scored = _judge(scored, k, floor_usd, pct)

    # baseline_days of the alertable rows, by the same positions.
    alerts = scored.with_row_index("_i").filter(pl.col("alertable") & pl.col("baseline").is_not_null())
    weekly_offsets = [7 * w for w in range(1, WEEKS + 1)]
    refs = pl.concat(
        [
            _gather_window(alerts.filter(pl.col("baseline") == "weekday"), pt, pt_day, weekly_offsets),
            _gather_window(alerts.filter(pl.col("baseline") == "rolling_28d"), pt, pt_day, range(1, ROLLING_DAYS + 1)),
        ]
    )
    as_date = (pl.lit(origin) + pl.duration(days=pl.col("_d"))).cast(pl.Date)
    days = refs.group_by("_i").agg(as_date.sort().alias("baseline_days"))
    baseline_days = (
        pl.LazyFrame({"_i": pl.int_range(scored.height, dtype=pl.UInt32, eager=True)})
        .join(days, on="_i", how="left", maintain_order="left")
        .collect(engine=ENGINE)["baseline_days"]
    )
    # Rows are in grid order, which is (monitor, value, usage_date): sids follow the sorted keys.
    return scored.select(
        (pl.lit(origin) + pl.duration(days=pl.col("d"))).cast(pl.Date).alias("usage_date"),
        pl.lit(series["monitor"]).gather(pl.col("sid")).alias("monitor"),
        pl.lit(series["value"]).gather(pl.col("sid")).alias("value"),
        *SCORE_COLUMNS[3:-1],
        pl.when(pl.col("state") == "new_spender")
        .then(pl.lit([], dtype=pl.List(pl.Date)))
        .otherwise(pl.lit(baseline_days))
        .alias("baseline_days"),
    ).cast(SCORE_SCHEMA)


def _gather_window(rows: pl.DataFrame, pt: pl.Series, pt_day: pl.Series, offsets: Sequence[int]) -> pl.LazyFrame:
    """``_i, _d, _pt``: the points ``offsets`` days before each of ``rows`` (grid row ``_r``) in its series."""
    off = pl.Series("_o", list(offsets), dtype=pl.Int64)
    at = (
        rows.lazy()
        .select("_i", "_lo", (pl.col("_r") - pl.lit(off).implode()).alias("_at"))
        .explode("_at")
        .filter(pl.col("_at") >= pl.col("_lo"))
    )
    return at.with_columns(
        pl.lit(pt).gather(pl.col("_at")).alias("_pt"), pl.lit(pt_day).gather(pl.col("_at")).alias("_d")
    ).filter(pl.col("_pt").is_not_null())


def _judge(scored: pl.DataFrame, k: float, floor_usd: float, pct: float) -> pl.DataFrame:
    """Baseline choice, band, impact, state and alertable (module doc)."""
    weekday = pl.col("_wk_n") >= MIN_WEEKDAY_POINTS
    rolling = ~weekday & (pl.col("_r_n") >= MIN_ROLLING_POINTS)
    has_baseline = weekday | rolling
    # New: no point before today, and a history known to be empty — the series did not already spend on
    # the calendar's first day (what came before that is unknown) and its grid was not cut at LOOKBACK_DAYS
    # (then it had days before the cut).
    new = (
        ~has_baseline
        & (pl.col("_before") == 0)
        & (pl.col("_first") > 0)
        & (pl.col("_first") == pl.col("_start"))
        & (pl.col("actual_usd") >= floor_usd - EPS_USD)
    )
    expected = pl.when(weekday).then("_wk_med").when(rolling).then("_r_med").when(new).then(pl.lit(0.0))
    mad = pl.when(weekday).then("_wk_mad").when(rolling).then("_r_mad")
    half = k * MAD_TO_SIGMA * pl.col("mad_usd")
    impact = pl.col("actual_usd") - pl.col("expected_usd")
    out = (
        scored.lazy()
        .with_columns(
            expected.alias("expected_usd"),
            mad.alias("mad_usd"),
            pl.when(weekday).then(pl.lit("weekday")).when(rolling).then(pl.lit("rolling_28d")).alias("baseline"),
            pl.when(weekday).then("_wk_n").otherwise("_r_n").alias("baseline_points"),
            new.alias("_new"),
        )
        .with_columns(
            (pl.col("expected_usd") - half).alias("lower_usd"),
            (pl.col("expected_usd") + half).alias("upper_usd"),
            impact.alias("impact_usd"),
            pl.when(pl.col("expected_usd").is_not_null())
            .then(pl.max_horizontal(pl.lit(floor_usd), pct * pl.col("expected_usd").abs()))
            .alias("threshold_usd"),
        )
        .with_columns(
            pl.when(pl.col("_new"))
            .then(pl.lit("new_spender"))
            .when(pl.col("expected_usd").is_null())
            .then(pl.lit("insufficient_history"))
            .when(pl.col("actual_usd") > pl.col("upper_usd") + EPS_USD)
            .then(pl.lit("high"))
            .when(pl.col("actual_usd") < pl.col("lower_usd") - EPS_USD)
            .then(pl.lit("low"))
            .otherwise(pl.lit("normal"))
            .alias("state")
        )
        .with_columns(
            (
                ~pl.col("planned")
                & ~pl.col("unpriced")
                & (
                    (pl.col("state") == "new_spender")
                    | (
                        pl.col("state").is_in(["high", "low"])
                        & (pl.col("impact_usd").abs() >= pl.col("threshold_usd") - EPS_USD)
                    )
                )
            ).alias("alertable")
        )
    )
    temporaries = ["_first", "_start", "_before", "_r_n", "_wk_n", "_wk_med", "_wk_mad", "_r_med", "_r_mad", "_new"]
    return out.drop(temporaries).collect(engine=ENGINE)


# --- 4. lifecycle ------------------------------------------------------------------------------------------


def anomaly_id(monitor: str, value: str, opened_on: dt.date) -> str:
    """The identity of an episode: a stable hash of (monitor, value, first day of the episode).

    SHA-256 (first 16 hex digits) of ``monitor ␟ value ␟ YYYY-MM-DD``: the same episode gets the same id in
    every run, process and polars version (``pl.Expr.hash`` promises none of that), so re-scoring a day
    updates an alert instead of opening a new one.
    """
    text = f"{monitor}\x1f{value}\x1f{opened_on.isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lifecycle(scored: Frame, carry: Frame | None = None, *, escalate_factor: float = ESCALATE_FACTOR) -> pl.DataFrame:
    """Group the scored days of each series into episodes: open → escalated → closed.

    ``scored``: :func:`score` output, consecutive closed days per series (the score grid already has a row
    for every closed day of a series, gaps included). An episode **opens** on an alertable day when none is
    open; it stays open while the series is out of its band — ``high``, ``low`` (alertable or not),
    ``insufficient_history`` (no band to be back in), a flip from high to low without passing through the
    band included; it is **escalated** from the first day with ``|impact| ≥ escalate_factor × |impact
    when opened|`` on (a new spender's impact is its spend); it is **closed** on the first ``normal`` day
    (back in band), which belongs to the episode. The next alertable day opens a new episode.

    ``carry``: the episodes still open before the first day of ``scored`` (the asset's previous output rows
    of that day with status open/escalated: ``monitor, value, opened_on, opening_impact_usd, status``), so
    a re-score window continues them under the same id instead of reopening them.

    Returns ``scored`` (sorted by monitor, value, usage_date) plus ``LIFECYCLE_COLUMNS``: ``anomaly_id``
    (:func:`anomaly_id`), ``opened_on``, ``opening_impact_usd``, ``status`` (``STATUSES``) — all null on
    days outside an episode.
    """
    key = ["monitor", "value", "usage_date"]
    columns = [c for c in lazy(scored).collect_schema().names() if not c.startswith("_") and c not in _EPISODE]
    s = lazy(scored).with_columns(pl.lit(False).alias("_carried"), pl.lit(False).alias("_carry_esc"))
    if carry is not None:
        firsts = s.group_by("monitor", "value").agg(pl.col("usage_date").min().alias("_first"))
        c = (
            lazy(carry)
            .select(
                "monitor",
                "value",
                pl.col("opened_on").alias("usage_date"),
                pl.col("opening_impact_usd").alias("impact_usd"),
                pl.lit("high").alias("state"),
                pl.lit(True).alias("alertable"),
                pl.lit(True).alias("_carried"),
                (pl.col("status") == "escalated").alias("_carry_esc"),
            )
            .join(firsts, on=["monitor", "value"], how="inner")
            .filter(pl.col("usage_date") < pl.col("_first"))
            .drop("_first")
        )
        s = pl.concat([s, c], how="diagonal_relaxed")
    s = s.collect(engine=ENGINE)
    if carry is not None or not _is_sorted(s, key):  # score() output is sorted: no copy of it then
        s = s.sort(key)
    start = group_starts("monitor", "value")
    normal = pl.col("state") == "normal"
    # A run: the days from a series' start, or from the day after a normal day, up to and including the
    # next normal day. An episode is the part of a run from its first alertable day on. Everything below is
    # a linear pass restarting at run starts (rows are sorted), no group-by over the runs.
    run_start = start | shift_within(normal, start).fill_null(False)
    alerts_so_far = cumsum_within(pl.col("alertable").cast(pl.Int32), pl.col("_run_start"))
    is_opening = pl.col("alertable") & (pl.col("_n_alerts") == 1)
    hit = (pl.col("impact_usd").abs() >= escalate_factor * pl.col("opening_impact_usd").abs() - EPS_USD).fill_null(
        False
    ) | pl.col("_carry_esc")
    s = (
        s.lazy()
        .with_columns(run_start.alias("_run_start"))
        .with_columns(alerts_so_far.alias("_n_alerts"))
        .with_columns(
            ffill_within(pl.when(is_opening).then(pl.int_range(pl.len())), pl.col("_run_start")).alias("_open")
        )
        .with_columns(
            pl.col("usage_date").gather(pl.col("_open")).alias("opened_on"),
            pl.col("impact_usd").gather(pl.col("_open")).alias("opening_impact_usd"),
        )
        .with_columns(
            cumsum_within((pl.col("opened_on").is_not_null() & hit).cast(pl.Int32), pl.col("_run_start")).alias("_esc")
        )
        .with_columns(
            pl.when(pl.col("opened_on").is_null())
            .then(pl.lit(None, pl.String))
            .when(normal)
            .then(pl.lit("closed"))
            .when(pl.col("_esc") > 0)
            .then(pl.lit("escalated"))
            .otherwise(pl.lit("open"))
            .alias("status")
        )
        .collect(engine=ENGINE)
    )
    # One hash per episode (on its opening row), handed to the episode's days by position.
    openings = s.with_row_index("_i").filter(pl.col("_open") == pl.col("_i"))
    ids = [anomaly_id(m, v, d) for m, v, d in openings.select("monitor", "value", "usage_date").iter_rows()]
    at_opening = pl.repeat(None, s.height, dtype=pl.String, eager=True).scatter(
        openings["_i"], pl.Series(ids, dtype=pl.String)
    )
    s = s.with_columns(pl.lit(at_opening).gather(pl.col("_open")).alias("anomaly_id"))
    if carry is not None:
        s = s.filter(~pl.col("_carried"))
    return s.select(*columns, *_EPISODE)


_EPISODE = ["anomaly_id", "opened_on", "opening_impact_usd", "status"]


def _is_sorted(frame: pl.DataFrame, key: list[str]) -> bool:
    """Whether ``frame`` is sorted by ``key`` (lexicographically, ascending; one linear pass)."""
    later = pl.lit(False)
    for col in reversed(key):
        c = pl.col(col)
        later = (c > c.shift(1)) | ((c == c.shift(1)) & later)
    first = pl.int_range(pl.len()) == 0
    return bool(frame.select((first | later).all()).item()) if frame.height else True


# --- 5. root cause -----------------------------------------------------------------------------------------


def root_causes(
    rows: Frame,
    scored: Frame,
    *,
    top_n: int = TOP_N,
    dimensions: Sequence[str] = CONTRIBUTOR_DIMENSIONS,
) -> pl.DataFrame:
    """The top contributors to each alertable day's impact, per lower-level dimension.

    ``rows``: :func:`spend_rows` covering the alert days and their ``baseline_days``; ``scored``:
    :func:`score` (or :func:`lifecycle`) output. For an alert of series (monitor, value) on day D, every
    value of every contributor dimension (``dimensions`` minus the monitor's own) among the series' rows is
    compared like the series itself: ``actual_usd`` = its $ on D, ``expected_usd`` = the median of its $ over
    **the same baseline days the series' expected came from** (a day it has no row is $0 — the series'
    gap rule), so contributor and series are judged on the same days; a new spender's contributors expect
    $0. ``delta_usd = actual − expected``. Contributors are ranked by their delta in the direction of the
    impact (a spike is explained by what rose, a drop by what fell), only those that moved that way are
    kept, ``top_n`` per (alert, dimension); ``share_of_impact = delta / impact`` (medians do not add up, so
    the shares need not sum to 1).

    Columns: ``ROOT_CAUSE_COLUMNS`` — ``usage_date, monitor, value, impact_usd, contributor_dimension,
    contributor_value, actual_usd, expected_usd, delta_usd, share_of_impact, rank`` (1 = largest).
    """
    alerts = (
        lazy(scored)
        .filter(pl.col("alertable"))
        .select("usage_date", "monitor", "value", "impact_usd", "baseline_days")
        .collect(engine=ENGINE)
    )
    if alerts.is_empty():
        return pl.DataFrame(schema=ROOT_CAUSE_SCHEMA)
    alert = ["usage_date", "monitor", "value"]
    refs = (
        alerts.select(*alert, pl.col("baseline_days").alias("_ref")).explode("_ref").drop_nulls("_ref")
    )  # (alert, baseline day)
    days = pl.concat([alerts["usage_date"], refs["_ref"]]).unique().implode()
    src = lazy(rows).filter(pl.col("usage_date").is_in(days))
    long = []
    for m in alerts["monitor"].unique().sort():
        wanted = alerts.lazy().filter(pl.col("monitor") == m).select(pl.col("value").alias(m)).unique()
        mine = src.join(wanted, on=m, how="semi")
        for dim in dimensions:
            if dim == m:
                continue
            long.append(
                mine.group_by("usage_date", pl.col(m).alias("value"), pl.col(dim).cast(pl.String).alias("_cv"))
                .agg(pl.col("cost_usd").sum().alias("_usd"))
                .with_columns(pl.lit(m).alias("monitor"), pl.lit(dim).alias("contributor_dimension"))
            )
    if not long:
        return pl.DataFrame(schema=ROOT_CAUSE_SCHEMA)
    contrib = pl.concat(long, how="diagonal_relaxed").collect(engine=ENGINE).lazy()
    key = [*alert, "contributor_dimension", "_cv"]
    actual = alerts.lazy().select(alert).join(contrib, on=alert).select(*key, pl.col("_usd").alias("actual_usd"))
    base = (
        refs.lazy()
        .join(contrib.rename({"usage_date": "_ref"}), on=["_ref", "monitor", "value"])
        .group_by(key)
        .agg(pl.col("_usd").alias("_vals"))
    )
    n_ref = alerts.lazy().select(*alert, pl.col("baseline_days").list.len().fill_null(0).alias("_n"), "impact_usd")
    padded = pl.concat_list(
        pl.col("_vals").fill_null(pl.lit([], dtype=pl.List(pl.Float64))),
        pl.lit(0.0).repeat_by(pl.col("_n") - pl.col("_vals").list.len().fill_null(0)),
    )
    direction = pl.col("impact_usd").sign()
    out = (
        actual.join(base, on=key, how="full", coalesce=True)
        .join(n_ref, on=alert, how="left")
        .with_columns(
            pl.col("actual_usd").fill_null(0.0),
            pl.when(pl.col("_n") > 0).then(padded.list.median()).otherwise(pl.lit(0.0)).alias("expected_usd"),
        )
        .with_columns((pl.col("actual_usd") - pl.col("expected_usd")).alias("delta_usd"))
        .filter(pl.col("delta_usd") * direction > EPS_USD)
        .sort(pl.col("delta_usd") * direction, "_cv", descending=[True, False])
        .with_columns(
            pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).over(*alert, "contributor_dimension").alias("rank")
        )
        .filter(pl.col("rank") <= top_n)
        .with_columns(
            pl.col("_cv").alias("contributor_value"),
            (pl.col("delta_usd") / pl.col("impact_usd")).alias("share_of_impact"),
        )
        .select(ROOT_CAUSE_COLUMNS)
        .sort(*alert, "contributor_dimension", "rank")
        .collect(engine=ENGINE)
    )
    return out.cast(ROOT_CAUSE_SCHEMA)
