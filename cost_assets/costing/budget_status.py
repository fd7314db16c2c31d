"""Where each budget stands, per day: spend so far in its period, the forecast to the period's end, a state.

Spend is bill-anchored: a **closed** day (``closure.py``) counts what the bill says — the attributed DBU $
of the budget's scope (``cost: dbu``), plus the estimated VM $ for ``cost: total`` (VMs are on the cloud
bill, not the Databricks one). An **open** day, whose bill is still lagging, counts the estimate of the same
kind (estimated DBU $, plus estimated VM $ for ``total``), and the row says how many days were estimated.

The forecast adds, for every day left in the period, the mean spend of the same weekday over the 28 days
up to the day (a trailing weekday profile; the mean of all of those days when a weekday has none, 0 with no
history). States, most urgent first: ``exceeded`` (spend ≥ amount), ``forecast_exceeded`` (the forecast
crossed a forecast threshold), ``warning`` (spend crossed an actual threshold), ``ok``.
"""

import datetime as dt

import polars as pl

from cost_assets import schemas
from cost_assets.budgets import SCOPE_KEYS, Budget
from cost_assets.costing import scope
from cost_assets.costing.frames import Frame, lazy

# The contract's columns and types (the pandera model is the one source of truth).
STATUS_SCHEMA = {name: column.dtype.type for name, column in schemas.BudgetStatus.to_schema().columns.items()}
PROFILE_DAYS = 28
# How far back the asset reads its inputs: a month to date plus the weekday profile's 28 days.
LOOKBACK_DAYS = 62
SPEND_COLUMNS = ["usage_date", *dict.fromkeys(SCOPE_KEYS.values()), "billed_dbu_usd", "est_dbu_usd", "est_vm_usd"]
_SKU_TIER = r"^(STANDARD|PREMIUM|ENTERPRISE)_"


def sku_family(sku_name: pl.Expr) -> pl.Expr:
    """The SKU without its tier and Photon suffix (``PREMIUM_JOBS_COMPUTE_(PHOTON)`` → ``JOBS_COMPUTE``)."""
    return sku_name.str.replace(_SKU_TIER, "").str.replace(r"_\(PHOTON\)$", "")


def spend_rows(
    attributed: Frame,
    run_costs: Frame,
    jobs: Frame | None = None,
    clusters: Frame | None = None,
    billing: Frame | None = None,
) -> pl.DataFrame:
    """One frame of daily money with every scope dimension: the bill handed out (``mart/attributed_costs``:
    billed DBU $) and the estimate (``mart/run_costs``: estimated DBU $ and VM $), side by side.

    ``user`` is :func:`cost_assets.costing.scope.with_user`, the rule of ``mart/cost_by_scope`` and the
    anomaly monitors: the job's user (the bill's ``run_as`` in ``billing``, else the creator in ``jobs``),
    else the creator of the row's cluster (``clusters``). Endpoint money has neither, so it has no user
    here: budgets do not read the per-request split of ``mart/serving_costs`` (which cost_by_scope and the
    anomalies use to give model-serving money a user)."""

    def dims(frame: Frame, endpoint: pl.Expr, cluster_id: pl.Expr) -> pl.LazyFrame:
        return scope.with_user(lazy(frame), cluster_id, jobs, clusters, billing).with_columns(
            pl.col("job_id").cast(pl.String),
            sku_family(pl.col("sku_name")).alias("sku_family"),
            endpoint.alias("endpoint"),
        )

    billed = dims(
        attributed,
        pl.when(pl.col("resource_type") == "endpoint").then(pl.col("resource_id")),
        scope.cluster_money_id(),
    )
    estimated = dims(run_costs, pl.lit(None, pl.String), pl.col("cluster_id"))
    billed = billed.with_columns(pl.col("billed_cost_usd").fill_null(0.0).alias("billed_dbu_usd"))
    # the cloud side of the estimate: VMs and their disks (a disk without a price adds nothing; a ledger from
    # before disks has none)
    has_disk = "disk_cost_usd" in estimated.collect_schema().names()
    disk = pl.col("disk_cost_usd").fill_null(0.0) if has_disk else pl.lit(0.0)
    estimated = estimated.with_columns(
        pl.col("dbu_cost_usd").fill_null(0.0).alias("est_dbu_usd"),
        (pl.col("vm_cost_usd").fill_null(0.0) + disk).alias("est_vm_usd"),
    )
    keep = [c for c in SPEND_COLUMNS if not c.endswith("_usd")]
    billed, estimated = billed.select(*keep, "billed_dbu_usd"), estimated.select(*keep, "est_dbu_usd", "est_vm_usd")
    return pl.concat([billed, estimated], how="diagonal_relaxed").select(SPEND_COLUMNS).collect()


def _period(day: dt.date, period: str) -> tuple[dt.date, dt.date]:
    """The calendar period (UTC) holding ``day``: its first and last day."""
    if period == "day":
        return day, day
    if period == "week":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=6)
    start = day.replace(day=1)
    following = (start + dt.timedelta(days=32)).replace(day=1)
    return start, following - dt.timedelta(days=1)


def _daily(spend: pl.DataFrame, budget: Budget, closed: set[dt.date]) -> dict[dt.date, tuple[float, bool]]:
    """The scope's spend per day and whether it is billed (closed day) or estimated (open day)."""
    rows = spend.filter(*[pl.col(SCOPE_KEYS[k]) == v for k, v in budget.scope.items()]) if budget.scope else spend
    sums = rows.group_by("usage_date").agg(pl.col("billed_dbu_usd", "est_dbu_usd", "est_vm_usd").sum())
    vm = budget.cost == "total"
    out = {}
    for day, billed, est_dbu, est_vm in sums.iter_rows():
        is_closed = day in closed
        out[day] = ((billed if is_closed else est_dbu) + (est_vm if vm else 0.0), is_closed)
    return out


def _profile(daily: dict[dt.date, tuple[float, bool]], day: dt.date) -> dict[int, float]:
    """Mean spend per weekday over the 28 days ending on ``day`` (missing days count as $0 spent)."""
    window = [day - dt.timedelta(days=i) for i in range(PROFILE_DAYS)]
    history = [d for d in window if d >= min(daily, default=day)]
    if not history:
        return {}
    values = {d: daily.get(d, (0.0, True))[0] for d in history}
    overall = sum(values.values()) / len(values)
    by_weekday: dict[int, list[float]] = {}
    for d, v in values.items():
        by_weekday.setdefault(d.weekday(), []).append(v)
    return {w: (sum(by_weekday[w]) / len(by_weekday[w]) if w in by_weekday else overall) for w in range(7)}


def _crossed(pct: float, levels: list[float]) -> float | None:
    reached = [level for level in levels if pct >= level]
    return max(reached) if reached else None


def budget_status(
    spend: pl.DataFrame, closed: set[dt.date], budgets: list[Budget], days: list[dt.date]
) -> pl.DataFrame:
    """Per budget and day of ``days``: spend to date, forecast, remaining, state and first crossing.

    ``spend``: :func:`spend_rows` covering the days' periods and the 28 days before (see LOOKBACK_DAYS);
    ``closed``: the closed days (``closure.closed_days``). A day of the period the ledger does not hold at
    all (never materialized) adds nothing and is counted in ``missing_days``."""
    known = set(spend["usage_date"].to_list())  # days the ledger holds at all (any scope)
    rows = []
    for budget in budgets:
        daily = _daily(spend, budget, closed)
        for day in days:
            start, end = _period(day, budget.period)
            to_date, crossed_on, billed, estimated, estimated_days, missing = 0.0, {}, 0.0, 0.0, 0, 0
            for i in range((day - start).days + 1):
                d = start + dt.timedelta(days=i)
                if d not in known:  # never materialized: unknown, not $0 — counted so the row says so
                    missing += 1
                    continue
                value, is_closed = daily.get(d, (0.0, d in closed))
                to_date += value
                billed, estimated = (billed + value, estimated) if is_closed else (billed, estimated + value)
                estimated_days += 0 if is_closed else 1
                for level in budget.thresholds.actual:
                    if to_date >= budget.amount * level / 100 and level not in crossed_on:
                        crossed_on[level] = d
            profile = _profile(daily, day)
            ahead = [day + dt.timedelta(days=i) for i in range(1, (end - day).days + 1)]
            forecast = to_date + sum(profile.get(d.weekday(), 0.0) for d in ahead)
            pct = 100 * to_date / budget.amount
            forecast_pct = 100 * forecast / budget.amount
            level = _crossed(pct, budget.thresholds.actual)
            if pct >= 100:
                state = "exceeded"
            elif _crossed(forecast_pct, budget.thresholds.forecast) is not None:
                state = "forecast_exceeded"
            elif level is not None:
                state = "warning"
            else:
                state = "ok"
            today = daily.get(day, (0.0, day in closed))
            rows.append(
                {
                    "usage_date": day,
                    "workspace_id": budget.scope.get("workspace"),
                    "budget": budget.name,
                    "scope": budget.describe_scope(),
                    "period": budget.period,
                    "period_start": start,
                    "period_end": end,
                    "cost_basis": budget.cost,
                    "amount_usd": budget.amount,
                    "currency_code": budget.currency,
                    "day_spend_usd": today[0],
                    "day_basis": "billed" if today[1] else "estimated",
                    "spend_to_date_usd": to_date,
                    "billed_to_date_usd": billed,
                    "estimated_to_date_usd": estimated,
                    "estimated_days": estimated_days,
                    "missing_days": missing,
                    "forecast_usd": forecast,
                    "remaining_usd": budget.amount - to_date,
                    "pct_used": pct,
                    "forecast_pct": forecast_pct,
                    "threshold_crossed_pct": level,
                    "first_crossed_on": crossed_on.get(level) if level is not None else None,
                    "state": state,
                    "owner": budget.owner,
                    "channel": budget.channel,
                }
            )
    return pl.DataFrame(rows, schema=STATUS_SCHEMA)
