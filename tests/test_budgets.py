"""Budgets: the file's validation, and where a budget stands (expected values worked out by hand)."""

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from cost_assets import schemas
from cost_assets.budgets import Budget, BudgetError, load, parse
from cost_assets.costing.budget_status import budget_status, sku_family, spend_rows

D = [dt.date(2026, 1, i) for i in range(1, 6)]  # Thu 01-01 .. Mon 01-05
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "budgets.yaml"


def _rows(rows: list[dict]) -> pl.DataFrame:
    """Ledger rows of workspace w1, job 7, untagged but for ``team``."""
    base = {"workspace_id": "w1", "tenant": None, "project": None, "cost_center": None, "job_id": 7}
    return pl.DataFrame([{**base, **row} for row in rows])


def attributed(*rows: tuple) -> pl.DataFrame:
    """mart/attributed_costs rows: (day, team, billed $), on a jobs cluster."""
    return _rows(
        [
            {
                "usage_date": d,
                "team": team,
                "sku_name": "PREMIUM_JOBS_COMPUTE",
                "resource_type": "cluster",
                "resource_id": "c1",
                "billed_cost_usd": usd,
            }
            for d, team, usd in rows
        ]
    )


def run_costs(*rows: tuple) -> pl.DataFrame:
    """mart/run_costs rows: (day, team, estimated DBU $, estimated VM $)."""
    return _rows(
        [
            {
                "usage_date": d,
                "team": team,
                "sku_name": "PREMIUM_JOBS_COMPUTE_(PHOTON)",
                "dbu_cost_usd": dbu,
                "vm_cost_usd": vm,
            }
            for d, team, dbu, vm in rows
        ]
    )


@pytest.fixture
def spend() -> pl.DataFrame:
    # Team etl is billed $10 a day on 01-01..01-04 (closed), and $5 so far on 01-05 (open: its bill lags).
    # The estimate: $9 DBU + $2 VM a day on 01-01..01-04, $12 DBU + $3 VM on 01-05. Team ml: $1,000 a day.
    billed = attributed(*[(d, "etl", 10.0) for d in D[:4]], (D[4], "etl", 5.0), *[(d, "ml", 1000.0) for d in D])
    estimate = run_costs(*[(d, "etl", 9.0, 2.0) for d in D[:4]], (D[4], "etl", 12.0, 3.0))
    return spend_rows(billed, estimate)


def budget(**kw) -> Budget:
    return Budget.model_validate({"name": "etl", "scope": {"team": "etl"}, "period": "month", "amount": 100, **kw})


def test_month_to_date_uses_the_bill_for_closed_days_and_the_estimate_for_open_ones(spend):
    out = budget_status(spend, set(D[:4]), [budget()], [D[4]])
    schemas.BudgetStatus.validate(out)
    row = out.row(0, named=True)
    # 4 closed days × $10 billed + the open day's estimated DBU $12 (its partial $5 bill is not used) = $52.
    assert row["spend_to_date_usd"] == pytest.approx(52.0)
    assert (row["billed_to_date_usd"], row["estimated_to_date_usd"], row["estimated_days"]) == (40.0, 12.0, 1)
    assert row["missing_days"] == 0
    assert (row["day_spend_usd"], row["day_basis"]) == (12.0, "estimated")
    assert row["remaining_usd"] == pytest.approx(48.0) and row["pct_used"] == pytest.approx(52.0)
    # 50 % crossed when the total went 40 → 52, on 01-05.
    assert (row["threshold_crossed_pct"], row["first_crossed_on"]) == (50.0, D[4])
    # Forecast: weekday means over 01-01..01-05 (the history): Mon 12, Thu/Fri/Sat/Sun 10; Tue and Wed have
    # no point, so the mean of all 5 days, 52 / 5 = 10.4. Days left 01-06..01-31: Tue ×4, Wed ×4, Thu ×4,
    # Fri ×4, Sat ×4, Sun ×3, Mon ×3 → 41.6 + 41.6 + 40 + 40 + 40 + 30 + 36 = 269.2; 52 + 269.2 = 321.2.
    assert row["forecast_usd"] == pytest.approx(321.2)
    assert row["state"] == "forecast_exceeded"  # 321 % ≥ the 100 % forecast threshold; spend is only 52 %


def test_total_cost_adds_the_estimated_vm_dollars(spend):
    out = budget_status(spend, set(D[:4]), [budget(cost="total", amount=60)], [D[4]])
    row = out.row(0, named=True)
    # Closed days: $10 billed + $2 VM = $12 × 4 = $48; the open day: $12 DBU + $3 VM = $15 → $63 ≥ $60.
    assert row["spend_to_date_usd"] == pytest.approx(63.0)
    assert row["state"] == "exceeded" and row["threshold_crossed_pct"] == 100.0
    # Running totals 12, 24, 36, 48, 63: 100 % of $60 is crossed on 01-05.
    assert row["first_crossed_on"] == D[4]


def test_week_and_day_periods_and_the_whole_account(spend):
    week = budget(name="w", period="week", amount=1000)
    account = Budget.model_validate({"name": "all", "scope": "account", "period": "day", "amount": 2000})
    out = budget_status(spend, set(D[:4]), [week, account], [D[3], D[4]])
    rows = {(r["budget"], r["usage_date"]): r for r in out.iter_rows(named=True)}
    # Sunday 01-04 closes the week of Mon 12-29 .. Sun 01-04: 01-01..01-04 billed $10 each = $40.
    assert rows["w", D[3]]["period_start"] == dt.date(2025, 12, 29)
    assert rows["w", D[3]]["spend_to_date_usd"] == pytest.approx(40.0)
    assert rows["w", D[3]]["missing_days"] == 3  # 12-29..12-31 are not in the ledger
    # Monday 01-05 starts a new week: only its estimated $12.
    assert rows["w", D[4]]["period_start"] == D[4] and rows["w", D[4]]["spend_to_date_usd"] == pytest.approx(12.0)
    # The account, per day: 01-04 billed $10 (etl) + $1,000 (ml) = $1,010, 51 % of $2,000: a warning.
    assert rows["all", D[3]]["spend_to_date_usd"] == pytest.approx(1010.0)
    assert rows["all", D[3]]["state"] == "warning" and rows["all", D[3]]["forecast_usd"] == pytest.approx(1010.0)


def test_ok_when_no_threshold_is_reached(spend):
    out = budget_status(spend, set(D[:4]), [budget(amount=100_000)], [D[0]])
    row = out.row(0, named=True)
    assert row["state"] == "ok" and row["threshold_crossed_pct"] is None and row["first_crossed_on"] is None


def test_a_user_budget_counts_the_users_jobs_and_the_clusters_they_created():
    # Who is who: job 7 was created by dave but runs as alice (the bill's run_as wins); job 8 was created by
    # bob and the bill names no run_as (so bob). Cluster c1 (carol's) runs both jobs; cluster c9 is alice's
    # all-purpose cluster, whose money has no job (idle). Endpoint e1's money has no job and no cluster.
    jobs = pl.DataFrame(
        {"workspace_id": ["w1", "w1"], "job_id": [7, 8], "usage_date": [D[0]] * 2, "creator_user_name": ["dave", "bob"]}
    )
    billing = pl.DataFrame({"workspace_id": ["w1", "w1"], "job_id": [7, 8], "run_as": ["alice", None]})
    clusters = pl.DataFrame(
        {"cluster_id": ["c1", "c9"], "usage_date": [D[0]] * 2, "creator_user_name": ["carol", "alice"]}
    )
    tags = {"workspace_id": "w1", "team": None, "tenant": None, "project": None, "cost_center": None}
    sku = "PREMIUM_JOBS_COMPUTE"
    billed = pl.DataFrame(
        [
            {
                **tags,
                "usage_date": d,
                "job_id": job,
                "resource_type": kind,
                "resource_id": rid,
                "sku_name": sku,
                "billed_cost_usd": usd,
            }
            for d, job, kind, rid, usd in [
                (D[0], 7, "cluster", "c1", 10.0),  # alice (run_as)
                (D[0], None, "cluster", "c9", 4.0),  # alice (c9's creator)
                (D[0], 8, "cluster", "c1", 100.0),  # bob (job 8's creator)
                (D[0], None, "endpoint", "e1", 50.0),  # nobody
                (D[1], 7, "cluster", "c1", 10.0),  # alice
                (D[1], None, "cluster", "c9", 6.0),  # alice
                (D[2], 7, "cluster", "c1", 3.0),  # alice, but 01-03 is open: its partial bill is not used
            ]
        ],
        schema_overrides={"job_id": pl.Int64},
    )
    estimate = pl.DataFrame(
        [
            {
                **tags,
                "usage_date": d,
                "job_id": job,
                "cluster_id": cid,
                "sku_name": sku,
                "dbu_cost_usd": dbu,
                "vm_cost_usd": vm,
            }
            for d, job, cid, dbu, vm in [
                (D[0], 7, "c1", 9.0, 1.0),  # closed day: the bill counts instead
                (D[2], 7, "c1", 8.0, 1.0),  # alice
                (D[2], None, "c9", 2.0, 0.5),  # alice (idle on her cluster)
                (D[2], 8, "c1", 70.0, 5.0),  # bob
            ]
        ],
        schema_overrides={"job_id": pl.Int64},
    )
    spend = spend_rows(billed, estimate, jobs, clusters, billing)
    users = [budget(name=u, scope={"user": u}) for u in ("alice", "bob", "carol")]
    out = budget_status(spend, {D[0], D[1]}, users, [D[2]])
    schemas.BudgetStatus.validate(out)
    rows = {r["budget"]: r for r in out.iter_rows(named=True)}
    # alice, month to 01-03: billed 01-01 $10 (job 7) + $4 (c9) = $14, 01-02 $10 + $6 = $16 → $30 billed;
    # 01-03 is open: estimated DBU $8 (job 7) + $2 (c9) = $10 → $40 of $100.
    alice = rows["alice"]
    assert (alice["billed_to_date_usd"], alice["estimated_to_date_usd"]) == pytest.approx((30.0, 10.0))
    assert alice["spend_to_date_usd"] == pytest.approx(40.0) and alice["estimated_days"] == 1
    # bob: 01-01 billed $100 (job 8) + 01-03 estimated $70 = $170 ≥ $100.
    assert rows["bob"]["spend_to_date_usd"] == pytest.approx(170.0) and rows["bob"]["state"] == "exceeded"
    # carol created c1, but all its money is the jobs': her budget sees $0.
    assert rows["carol"]["spend_to_date_usd"] == 0.0
    # The endpoint's $50 has no user (budgets do not read the serving split): no user row carries it.
    assert spend.filter(pl.col("endpoint") == "e1")["user"].to_list() == [None]


def test_a_scope_on_an_unknown_dimension_lists_the_allowed_ones_user_included():
    with pytest.raises(BudgetError) as failure:
        parse("budgets:\n  - {name: p, scope: {person: alice}, period: day, amount: 1}\n", "b.yaml")
    allowed = "(allowed: workspace, team, tenant, project, cost_center, user, job, sku_family, endpoint)"
    assert "b.yaml: budget 'p': scope:" in str(failure.value) and allowed in str(failure.value)
    assert parse("budgets:\n  - {name: a, scope: {user: alice}, period: day, amount: 1}\n", "b.yaml")[0].scope == {
        "user": "alice"
    }


def test_sku_family_drops_tier_and_photon():
    names = pl.Series(["PREMIUM_JOBS_COMPUTE_(PHOTON)", "STANDARD_ALL_PURPOSE_COMPUTE", "ENTERPRISE_SQL_PRO"])
    assert pl.select(sku_family(pl.lit(names))).to_series().to_list() == [
        "JOBS_COMPUTE",
        "ALL_PURPOSE_COMPUTE",
        "SQL_PRO",
    ]


def test_a_bad_file_names_the_file_the_budget_and_the_key():
    text = """
budgets:
  - name: etl
    scope: {team: etl, colour: blue}
    period: fortnight
    amount: -5
  - name: ml
    period: month
    amount: 10
    currency: EUR
  - name: ml
    period: day
    amount: 1
"""
    with pytest.raises(BudgetError) as failure:
        parse(text, "budgets.yaml")
    lines = str(failure.value).splitlines()
    assert any(line.startswith("budgets.yaml: budget 'etl': scope:") and "colour" in line for line in lines)
    assert any(
        line.startswith("budgets.yaml: budget 'etl': period:") and "'day', 'week' or 'month'" in line for line in lines
    )
    assert any(line.startswith("budgets.yaml: budget 'etl': amount:") for line in lines)
    assert any(line.startswith("budgets.yaml: budget 'ml': currency:") for line in lines)
    assert "budgets.yaml: budget 'ml': name: another budget has the same name" in lines
    assert len(lines) == 5


def test_an_unreadable_or_malformed_file_is_one_clear_line(tmp_path):
    with pytest.raises(BudgetError, match="cannot read the budgets file"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("budgets:\n  - name: a\n    name: b\n")
    with pytest.raises(BudgetError, match=r"bad\.yaml: invalid YAML.*duplicate key"):
        load(bad)


def test_the_shipped_example_is_valid():
    budgets = load(EXAMPLE)
    assert budgets and {b.period for b in budgets} <= {"day", "week", "month"}


# --- through Dagster ---------------------------------------------------------------------------------------


def test_budget_status_is_materialized_from_the_stored_ledger(tmp_path):
    import dagster as dg

    from cost_assets.definitions import build_defs
    from cost_assets.resources.warehouse import read_table
    from tests.conftest import run_daily, sim_environ

    database = tmp_path / "ledger.duckdb"
    defs = build_defs(sim_environ(database, COST_ASSETS_BUDGETS=str(EXAMPLE)))
    assert run_daily(defs, "2026-01-05", "2026-01-07").success
    status = read_table(str(database), "mart.budget_status")
    names = {b.name for b in load(EXAMPLE)}
    assert status.height == 3 * len(names) and set(status["budget"]) == names
    # Only 01-05..07 are stored: 01-01..04 are missing (unknown, not $0), and each day's month to date is
    # the sum of the stored days so far, read back from the ledger.
    account = status.filter(pl.col("budget") == "account-monthly").sort("usage_date")
    days = account["day_spend_usd"].to_list()
    assert account["spend_to_date_usd"].to_list() == pytest.approx([days[0], days[0] + days[1], sum(days)])
    assert account["missing_days"].to_list() == [4, 4, 4]
    # The tiny world's bill for 01-05..07 was ingested up to 01-08: 01-05 and 01-06 are closed (billed);
    # 01-07 waits for an ingestion on 01-09, so it counts its estimate.
    assert account["day_basis"].to_list() == ["billed", "billed", "estimated"]
    assert set(status["state"]) <= {"ok", "warning", "exceeded", "forecast_exceeded"}
    assert "mart/budget_status" in {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert isinstance(defs.resources["budgets"], dg.ConfigurableResource)


def test_a_bad_budgets_file_stops_the_definitions_from_loading(tmp_path):
    from cost_assets.config import ConfigurationError
    from cost_assets.definitions import build_defs

    bad = tmp_path / "budgets.yaml"
    bad.write_text("budgets:\n  - name: x\n    period: year\n    amount: 1\n")
    with pytest.raises(ConfigurationError, match=r"budget 'x': period"):
        build_defs({"COST_ASSETS_DUCKDB": str(tmp_path / "d.duckdb"), "COST_ASSETS_BUDGETS": str(bad)})
    assert not (tmp_path / "d.duckdb").exists()  # nothing was opened, let alone written


# --- check(): may a caller spend this much? ----------------------------------------------------------------


def test_check_answers_from_the_latest_status_and_caches_it(tmp_path):
    import duckdb

    from cost_assets import budgets as module

    module._CACHE.clear()
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n  - {name: acme, scope: {tenant: acme}, period: month, amount: 300}\n")
    database = str(tmp_path / "ledger.duckdb")
    with duckdb.connect(database) as con:
        con.execute("create schema mart")
        con.execute(
            "create table mart.budget_status (usage_date date, budget varchar, "
            "spend_to_date_usd double, remaining_usd double)"
        )
        con.execute(
            "insert into mart.budget_status values ('2026-01-04', 'acme', 200, 100), ('2026-01-05', 'acme', 260, 40)"
        )
    now = [0.0]
    ask = {"budgets_path": str(path), "database": database, "ttl_s": 60, "clock": lambda: now[0]}
    # The latest day (01-05): $300 − $260 = $40 remain; $39.99 fits, $40.01 does not.
    fits = module.check({"tenant": "acme"}, 39.99, **ask)
    assert (fits.allowed, fits.remaining_usd, fits.as_of) == (True, 40.0, dt.date(2026, 1, 5))
    assert not module.check({"tenant": "acme"}, 40.01, **ask).allowed
    with duckdb.connect(database) as con:  # the next day lands: $10 remain
        con.execute("insert into mart.budget_status values ('2026-01-06', 'acme', 290, 10)")
    now[0] = 59.0  # within the TTL: the cached answer
    assert module.check({"tenant": "acme"}, 20, **ask).allowed
    now[0] = 61.0  # past it: read again
    assert not module.check({"tenant": "acme"}, 20, **ask).allowed
    with pytest.raises(LookupError, match="no budget"):
        module.check({"tenant": "globex"}, 1, **ask)
