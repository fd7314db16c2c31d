"""Share each cluster's cost among the task runs on it: a vectorized elementary-interval sweep.

Why a sweep and not Overwatch's pairwise formula: the pairwise share (runtime in interval ÷ sum of
runtimes, capped at 1) does not conserve money when runs overlap partially. Here each cluster's
timeline is conceptually cut at every segment change and every run start/end (runs are also cut at
hours, so the result has an hourly grain for reconciliation). Inside one elementary interval the cost
rate and the set of active runs are constant, so the interval's cost is split exactly: run *i* gets
``weight_i / Σ active weights`` of it, and an interval with no active run is ``idle``.

Implementation (no Python loop per run or event, and the elementary intervals are never materialized):
per cluster, the run boundaries alone give two monotone functions, ``G(t) = ∫ 1/W`` over time with runs
(W = Σ active weights) and ``A(t) = ∫ 1{runs active}``; both are piecewise linear, so a small table of
run boundaries plus one as-of join evaluates them anywhere. A segment ``[a, b)`` with money ``m`` (a
constant rate) hands ``m × (G(b) − G(a)) / (b − a)`` per unit of weight to the runs and
``m × ((b − a) − (A(b) − A(a))) / (b − a)`` to idle. With ``S`` the per-cluster cum-sum of the first
over segments, a run piece ``[s, e)`` gets ``w × (F(e) − F(s))`` where
``F(t) = S_before(seg(t)) + rate × (min(G(t), G(b)) − G(a))`` (G is non-decreasing), ``seg(t)`` being the
last segment overlapping a run that starts at or before ``t`` (others hand nothing to runs). Clusters are
keyed by a dense integer taken from the segments' grouped order (no sort, no join); input that is not
grouped and time-ordered is sorted first, and overlapping segments of one cluster are an error.

Job clusters (not shared) belong to their runs: their run-free time (start-up, tear-down, gaps) is
handed to the cluster's runs, each taking a part in proportion to its weighted run time on the cluster
that day (equal parts if all run times are zero); the runs, in order of start, take consecutive stretches
of the day's run-free hours (:func:`_hand_in_order`). A job cluster with cost but no run that day (e.g. the
tear-down after midnight of a run that ended the day before) keeps an ``idle`` row: money is never
dropped. Invariant (tested): Σ run shares + idle = the cluster's cost, per cluster and hour.
"""

import polars as pl

from cost_assets.costing.frames import ENGINE, Frame, group_starts, lazy, shift_within, sum_within
from cost_assets.costing.price import MONEY_COLUMNS, US_PER_HOUR
from cost_assets.costing.timeline import split_at_hours

JOB_COMPUTE_TYPES = ["job_cluster", "new_cluster"]
ALLOCATION_COLUMNS = [
    "consumer",
    "task_run_id",
    "cluster_id",
    "hour_start",
    "runtime_hours",
    *MONEY_COLUMNS,
    "unpriced",
]
ALLOCATION_COLUMNS_KEYED = [("ck" if c == "cluster_id" else c) for c in ALLOCATION_COLUMNS]
_UNP = "_unpriced_us"
_SUMMED = [*MONEY_COLUMNS, _UNP]


def shared_cluster_flags(segments: Frame, runs: Frame, clusters: Frame | None = None) -> pl.LazyFrame:
    """``is_shared_cluster`` per cluster: cluster_source ≠ JOB; unknown source → decided by its runs.

    Pools are shared (their VMs outlive any run). A cluster whose source is unknown (no segment and no
    ``clusters`` row says it) is a job cluster only if every run on it has ``compute_type``
    job_cluster/new_cluster.
    """
    seg = lazy(segments)
    names = seg.collect_schema().names()
    source = pl.col("cluster_source") if "cluster_source" in names else pl.lit(None, pl.String)
    sources = [
        seg.select("cluster_id", (pl.col("segment_kind") == "pool").alias("_pool"), source.alias("cluster_source"))
    ]
    if clusters is not None:
        sources.append(lazy(clusters).select("cluster_id", pl.lit(False).alias("_pool"), "cluster_source"))
    known = (
        pl.concat(sources)
        .group_by("cluster_id")
        .agg(pl.col("_pool").any(), pl.col("cluster_source").drop_nulls().first())
    )
    runs = lazy(runs)
    job_only = (
        pl.col("compute_type").is_in(JOB_COMPUTE_TYPES).all()
        if "compute_type" in runs.collect_schema().names()
        else pl.lit(False)
    )
    by_runs = runs.group_by("cluster_id").agg(job_only.alias("_job_only"))
    return known.join(by_runs, on="cluster_id", how="full", coalesce=True).select(
        "cluster_id",
        pl.when(pl.col("_pool").fill_null(False))
        .then(True)
        .when(pl.col("cluster_source").is_not_null())
        .then(pl.col("cluster_source") != "JOB")
        .otherwise(~pl.col("_job_only").fill_null(False))
        .alias("is_shared_cluster"),
    )


def _run_table(runs: pl.LazyFrame) -> pl.LazyFrame:
    """Per cluster key and run boundary ``t``: G and A at ``t`` and their slopes until the next boundary."""
    active = pl.col("active_runs") > 0
    g_slope = pl.when(active & (pl.col("active_weight") > 0)).then(1.0 / pl.col("active_weight")).otherwise(0.0)
    a_slope = active.cast(pl.Float64)
    starts = runs.select("ck", pl.col("run_start").alias("t"), pl.col("weight").alias("_dw"), pl.lit(1).alias("_dn"))
    ends = runs.select("ck", pl.col("run_end").alias("t"), (-pl.col("weight")).alias("_dw"), pl.lit(-1).alias("_dn"))
    span = (
        pl.when(pl.col("ck") == pl.col("ck").shift(-1))
        .then((pl.col("t").shift(-1) - pl.col("t")).dt.total_microseconds())
        .otherwise(0)
        .cast(pl.Float64)
    )
    return (
        pl.concat([starts, ends])
        .group_by(["ck", "t"])
        .agg(pl.col("_dw").sum(), pl.col("_dn").sum())
        .sort(["ck", "t"])
        .with_columns(
            pl.col("_dw").cum_sum().over("ck").alias("active_weight"),
            pl.col("_dn").cum_sum().over("ck").alias("active_runs"),
            span.alias("_span"),
        )
        .with_columns(g_slope.alias("g_slope"), a_slope.alias("a_slope"))
        .with_columns(
            # Values at t (exclusive cum-sums of the pieces before it).
            ((pl.col("g_slope") * pl.col("_span")).cum_sum().over("ck") - pl.col("g_slope") * pl.col("_span")).alias(
                "G"
            ),
            ((pl.col("a_slope") * pl.col("_span")).cum_sum().over("ck") - pl.col("a_slope") * pl.col("_span")).alias(
                "A"
            ),
        )
        .select("ck", pl.col("t").alias("_tk"), "G", "A", "g_slope", "a_slope")
    )


def _eval_at(frame: pl.LazyFrame, table: pl.LazyFrame, at: str, suffix: str) -> pl.LazyFrame:
    """Add ``G{suffix}``, ``A{suffix}`` = G and A at column ``at`` (frame sorted by ck, ``at``)."""
    since = (pl.col(at) - pl.col("_tk")).dt.total_microseconds().cast(pl.Float64)
    return (
        frame.join_asof(table, left_on=at, right_on="_tk", by="ck", strategy="backward", check_sortedness=False)
        .with_columns(
            (pl.col("G") + since * pl.col("g_slope")).fill_null(0.0).alias(f"G{suffix}"),
            (pl.col("A") + since * pl.col("a_slope")).fill_null(0.0).alias(f"A{suffix}"),
        )
        .drop("_tk", "G", "A", "g_slope", "a_slope")
    )


def _keyed_segments(segments: pl.LazyFrame, runs: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Segments with a dense cluster key ``ck`` in (ck, time) order, and the key map (runs' clusters too).

    The timeline emits segments grouped by cluster and ordered in time, so the key is a cum-sum of group
    starts and no sort is needed; anything else (hand-made input, price cuts) is sorted first. Segments
    of one cluster must not overlap (the sweep's arithmetic assumes it).
    """
    dur = (pl.col("segment_end") - pl.col("segment_start")).dt.total_microseconds().cast(pl.Float64)
    seg = (
        segments.select(
            "cluster_id",
            "segment_start",
            "segment_end",
            *[pl.col(m).fill_null(0.0) for m in MONEY_COLUMNS],
            (pl.col("unpriced").cast(pl.Float64) * dur).alias(_UNP),
        )
        .filter(dur > 0)
        .collect(engine=ENGINE)
    )
    new = group_starts("cluster_id")
    overlap = ~new & (pl.col("segment_start") < pl.col("segment_end").shift(1))

    def keyed(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        frame = frame.with_columns((new.cum_sum() - 1).cast(pl.UInt32).set_sorted().alias("ck"))
        return frame, frame.filter(new).select("cluster_id", "ck")

    seg, first = keyed(seg)
    if not first["cluster_id"].is_unique().all() or seg.select(overlap.any()).item():
        seg, first = keyed(seg.drop("ck").sort("cluster_id", "segment_start"))
        bad = seg.filter(overlap)
        if bad.height:
            raise ValueError(f"segments overlap on cluster {bad['cluster_id'][0]} at {bad['segment_start'][0]}")
    extra = (
        runs.select("cluster_id")
        .unique()
        .join(first.lazy(), on="cluster_id", how="anti")
        .with_row_index("ck", offset=first.height)
        .with_columns(pl.col("ck").cast(pl.UInt32))
    )
    keys = pl.concat([first.lazy(), extra.select("cluster_id", "ck")]).collect(engine=ENGINE).lazy()
    return seg.drop("cluster_id").lazy(), keys


def _segment_base(seg: pl.LazyFrame, table: pl.LazyFrame) -> pl.DataFrame:
    """Segments (ck, time order) with money, duration and G, A at both ends (the only wide frame kept)."""
    dur = (pl.col("segment_end") - pl.col("segment_start")).dt.total_microseconds().cast(pl.Float64)
    seg = _eval_at(_eval_at(seg, table, "segment_start", "a"), table, "segment_end", "b")
    return seg.with_columns(dur.alias("_dur")).drop("segment_end").collect(engine=ENGINE)


def _idle(base: pl.DataFrame) -> pl.DataFrame:
    """Money and time of each segment's run-free part, per cluster key and hour (segments are cut at hours
    and in (ck, time) order, so each cluster-hour is a run of rows: summed in one pass)."""
    idle_t = (pl.col("_dur") - (pl.col("Ab") - pl.col("Aa"))).clip(lower_bound=0.0)
    part = (
        base.lazy()
        .with_columns(idle_t.alias("up_us"))
        .filter(pl.col("up_us") > 0)
        .select(
            "ck",
            pl.col("segment_start").dt.truncate("1h").alias("hour_start"),
            "up_us",
            *[(pl.col(m) * (pl.col("up_us") / pl.col("_dur"))).alias(m) for m in _SUMMED],
        )
        .collect(engine=ENGINE)
    )
    return sum_within(part, ["ck", "hour_start"], ["up_us", *_SUMMED])


def _lookup(base: pl.DataFrame) -> pl.DataFrame:
    """Running sums before each *active* segment (one that overlaps a run) and its rates.

    Inactive segments hand nothing to runs, so ``F`` is flat across them: ``F(t)`` only needs the last
    active segment starting at or before ``t`` (``min(G(t), G(b))`` covers a ``t`` past its end).
    """
    shared = {m: pl.col(m) * (pl.col("Gb") - pl.col("Ga")) / pl.col("_dur") for m in MONEY_COLUMNS}
    shared[_UNP] = pl.col(_UNP) * (pl.col("Ab") - pl.col("Aa")) / pl.col("_dur")  # unpriced µs: counted
    return (
        base.lazy()
        .filter(pl.col("Ab") > pl.col("Aa"))
        .with_columns((shared[c].cum_sum().over("ck") - shared[c]).alias(f"_before{c}") for c in _SUMMED)
        .select(
            "ck",
            pl.col("segment_start").alias("_a"),
            "Ga",
            "Gb",
            "Aa",
            "Ab",
            *[f"_before{c}" for c in _SUMMED],
            *[(pl.col(c) / pl.col("_dur")).alias(f"_rate{c}") for c in _SUMMED],
        )
        .collect(engine=ENGINE)
    )


def _run_shares(lookup: pl.DataFrame, table: pl.LazyFrame, pieces: pl.LazyFrame) -> pl.LazyFrame:
    """Run piece shares ``w × (F(end) − F(start))``, ``F(t) = before + rate × (min(G(t), G(b)) − G(a))``."""
    lookup = lookup.lazy()
    drop = [
        "_a",
        "Ga",
        "Gb",
        "Aa",
        "Ab",
        "Gt",
        "At",
        *[f"_before{c}" for c in _SUMMED],
        *[f"_rate{c}" for c in _SUMMED],
    ]

    def f_at(frame: pl.LazyFrame, at: str, tag: str) -> pl.LazyFrame:
        frame = _eval_at(frame.sort(["ck", at]), table, at, "t")
        frame = frame.join_asof(lookup, left_on=at, right_on="_a", by="ck", strategy="backward", check_sortedness=False)
        g = pl.min_horizontal("Gt", "Gb") - pl.col("Ga")
        a = pl.min_horizontal("At", "Ab") - pl.col("Aa")
        return frame.with_columns(
            *[
                (pl.col(f"_before{m}") + pl.col(f"_rate{m}") * g).fill_null(0.0).alias(f"{tag}{m}")
                for m in MONEY_COLUMNS
            ],
            (pl.col(f"_before{_UNP}") + pl.col(f"_rate{_UNP}") * a).fill_null(0.0).alias(f"{tag}{_UNP}"),
        ).drop(drop)

    ends = f_at(f_at(pieces, "run_start", "_f0"), "run_end", "_f1")
    share = {m: pl.col("weight") * (pl.col(f"_f1{m}") - pl.col(f"_f0{m}")) for m in MONEY_COLUMNS}
    return ends.select(
        pl.lit("run").alias("consumer"),
        "task_run_id",
        "ck",
        "hour_start",
        ((pl.col("run_end") - pl.col("run_start")).dt.total_microseconds() / US_PER_HOUR).alias("runtime_hours"),
        # A difference of running sums can round to -1e-18 on a zero-cost piece: money is >= 0.
        *[share[m].clip(lower_bound=0.0).alias(m) for m in MONEY_COLUMNS],
        ((pl.col(f"_f1{_UNP}") - pl.col(f"_f0{_UNP}")) > 0.5).alias("unpriced"),
    )


def allocate(segments: Frame, runs: Frame, flags: Frame | None = None) -> pl.DataFrame:
    """Hourly allocation rows: ``consumer ('run'|'idle'), task_run_id, cluster_id, hour_start, runtime_hours``,
    the money columns and ``unpriced``; one row per consumer × task run × cluster × hour.

    ``segments``: priced segments (``price.price_segments``; at least cluster_id, segment_start/end, the
    money columns and unpriced). ``runs``: one row per task run on a cluster with ``cluster_id,
    task_run_id, run_start, run_end`` clipped to the window, optional ``weight`` (default 1.0, > 0) and
    ``compute_type``. ``flags``: ``cluster_id, is_shared_cluster`` (default :func:`shared_cluster_flags`).
    Money is filled with 0 where unpriced; ``unpriced`` says the row touched an unpriced segment (the
    engine nulls its money). Runs outside every segment get zero money (the cluster was down).
    """
    rows, keys = allocate_keyed(segments, runs, flags)
    return rows.with_columns(keys["cluster_id"].gather(rows["ck"])).select(ALLOCATION_COLUMNS)


def allocate_keyed(segments: Frame, runs: Frame, flags: Frame | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """:func:`allocate` with the cluster as a dense key: rows carry ``ck`` instead of ``cluster_id``, and
    ``keys`` (``cluster_id, ck``, row ``i`` has ``ck = i``) maps it back. The engine gathers per-cluster
    columns by ``ck`` (no hash join over the million allocation rows).
    """
    seg, runs = lazy(segments), lazy(runs)
    if "weight" not in runs.collect_schema().names():
        runs = runs.with_columns(pl.lit(1.0).alias("weight"))
    flags = lazy(flags) if flags is not None else shared_cluster_flags(seg, runs)
    seg, keys = _keyed_segments(seg, runs)
    runs = runs.join(keys, on="cluster_id").select("ck", "task_run_id", "run_start", "run_end", "weight")
    pieces = split_at_hours(runs, "run_start", "run_end").collect(engine=ENGINE).lazy()
    table = _run_table(runs).collect(engine=ENGINE).lazy()
    base = _segment_base(seg, table)
    shares = _run_shares(_lookup(base), table, pieces).collect(engine=ENGINE)
    idle = _idle(base)
    del base
    job_keys = keys.join(flags.filter(~pl.col("is_shared_cluster")), on="cluster_id", how="semi").select("ck")
    job_runs = runs.join(job_keys, on="ck", how="semi").collect(engine=ENGINE)
    handed = _hand_in_order(idle, job_runs)
    # A run's hand-off in an hour it ran joins that hour's row; the others get a row of their own.
    on = ["ck", "hour_start", "task_run_id"]
    shares = shares.join(handed, on=on, how="left").with_columns(
        *[(pl.col(m) + pl.col(f"_hand{m}").fill_null(0.0)).alias(m) for m in MONEY_COLUMNS],
        pl.col("unpriced") | (pl.col(f"_hand{_UNP}").fill_null(0.0) > 0.5),
    )
    own = handed.join(shares.select(on), on=on, how="anti").select(
        pl.lit("run").alias("consumer"),
        "task_run_id",
        "ck",
        "hour_start",
        pl.lit(0.0).alias("runtime_hours"),
        *[pl.col(f"_hand{m}").alias(m) for m in MONEY_COLUMNS],
        (pl.col(f"_hand{_UNP}") > 0.5).alias("unpriced"),
    )
    kept_idle = idle.join(job_runs.select("ck").unique(), on="ck", how="anti").select(
        pl.lit("idle").alias("consumer"),
        pl.lit(None, pl.Int64).alias("task_run_id"),
        "ck",
        "hour_start",
        (pl.col("up_us") / US_PER_HOUR).alias("runtime_hours"),
        *MONEY_COLUMNS,
        (pl.col(_UNP) > 0.5).alias("unpriced"),
    )
    rows = pl.concat([shares.select(ALLOCATION_COLUMNS_KEYED), own, kept_idle], how="vertical_relaxed")
    return rows, keys.collect(engine=ENGINE).sort("ck")


def _hand_in_order(idle: pl.DataFrame, job_runs: pl.DataFrame) -> pl.DataFrame:
    """A job cluster's run-free money, handed to its runs: ``ck, hour_start, task_run_id`` and the handed
    money as ``_hand<column>`` (unpriced µs included), at most one row per (hour, run).

    Each run's part of the day's run-free *time* is its weighted run time on the cluster ÷ the runs' total
    (equal parts if all are zero). The run-free hours are laid end to end in time order (each at its
    average rate), and so are the runs' parts in order of start (then ``task_run_id``): a run takes the
    stretch its part covers, so the first runs take the start-up and the last the tear-down. Handing every
    hour to every run (a row per hour × run) would grow as idle hours × runs per cluster; this grows as
    idle hours + runs. ``job_runs``: the job clusters' runs (``ck, task_run_id, run_start, run_end, weight``,
    one row per run); only clusters with runs and run-free money hand anything out.
    """
    hours = (
        idle.lazy()
        .join(job_runs.lazy().select("ck").unique(), on="ck", how="semi")
        .sort("ck", "hour_start")
        .with_columns(pl.col("up_us").cum_sum().over("ck").alias("_pos"))
        .collect(engine=ENGINE)
    )
    last_hour = hours.filter(pl.col("ck").ne_missing(pl.col("ck").shift(-1))).select(
        "ck", pl.col("_pos").alias("_total")
    )
    weight = pl.when(pl.col("_rt").sum().over("ck") > 0).then(pl.col("_rt")).otherwise(1.0)
    runs = (
        job_runs.lazy()
        .select(
            "ck",
            "task_run_id",
            "run_start",
            ((pl.col("run_end") - pl.col("run_start")).dt.total_microseconds() * pl.col("weight")).alias("_rt"),
        )
        .sort("ck", "run_start", "task_run_id")
        .with_columns(weight.cum_sum().over("ck").alias("_cum"))
        .join(last_hour.lazy(), on="ck")
        # The last run ends exactly where the last hour does (cum ÷ its own last value is 1.0).
        .select(
            "ck", "task_run_id", (pl.col("_cum") / pl.col("_cum").last().over("ck") * pl.col("_total")).alias("_pos")
        )
        .collect(engine=ENGINE)
    )
    # Pieces between consecutive ends (of an hour or of a run's stretch): each lies in one hour and one run
    # (an end shared by both gives an empty piece, dropped).
    ends = pl.concat([hours.select("ck", "_pos"), runs.select("ck", "_pos")]).sort("ck", "_pos")
    pieces = ends.with_columns(
        (pl.col("_pos") - shift_within(pl.col("_pos"), group_starts("ck")).fill_null(0.0)).alias("_len")
    ).filter(pl.col("_len") > 0)
    asof = {"on": "_pos", "by": "ck", "strategy": "forward", "check_sortedness": False}
    return (
        pieces.join_asof(hours.select("ck", "_pos", "hour_start", "up_us", *_SUMMED), **asof)
        .join_asof(runs, **asof)
        .select(
            "ck",
            "hour_start",
            "task_run_id",
            *[(pl.col(c) * pl.col("_len") / pl.col("up_us")).alias(f"_hand{c}") for c in _SUMMED],
        )
    )
