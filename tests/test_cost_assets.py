"""The cost and reconciliation assets through Dagster on the simulated world."""

import dagster as dg
import polars as pl
import pytest

from cost_assets.definitions import build_defs
from cost_assets.resources.prices import BundledPriceCatalog
from cost_assets.resources.warehouse import read_table
from tests.conftest import run_daily, sim_environ


def _materialized(result, key: str) -> list[dict]:
    """The metadata of each materialization (one per day: metadata is per partition) of ``key``."""
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return [{k: v.value for k, v in e.materialization.metadata.items()} for e in events]


def test_estimates_match_the_simulated_truth_and_the_ledger_sums_to_the_bill(database):
    defs = build_defs(sim_environ(database, COST_ASSETS_SIM_SCALE="small"))
    result = run_daily(defs, "2026-01-02", "2026-01-03")
    assert result.success
    days = _materialized(result, "sim/run_cost_accuracy")
    assert len(days) == 2
    # ≥ 95 % of runs within 2 % of the generator's ground truth, on each day.
    for runs in days:
        assert runs["truth/runs"] > 40 and runs["truth/within_2pct_share"] >= 0.95
    # ≥ 95 % of billed $ on grain rows within 5 % of the estimate, on each day.
    for attributed in _materialized(result, "mart/attributed_costs"):
        assert attributed["accuracy/within_5pct_share"] >= 0.95
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks[("mart/attributed_costs", "conserves_the_bill")]
    # Conservation, recomputed from the stored tables: per day Σ attributed $ = Σ billed $.
    recon = (
        read_table(str(database), "mart.reconciliation")
        .group_by("usage_date")
        .agg(pl.col("billed_cost_usd").sum().alias("billed"))
    )
    ledger = (
        read_table(str(database), "mart.attributed_costs")
        .group_by("usage_date")
        .agg(pl.col("billed_cost_usd").sum().alias("attributed"))
    )
    both = recon.join(ledger, on="usage_date")
    assert both.height == 2 and ((both["billed"] - both["attributed"]).abs() < 0.01).all()


class WithoutDS3(BundledPriceCatalog):
    """The bundled catalog minus Azure Standard_DS3_v2, so clusters of that type cannot be priced."""

    def instance_types(self) -> pl.DataFrame:
        return super().instance_types().filter(pl.col("node_type_id") != "Standard_DS3_v2")


def test_an_unknown_node_type_is_flagged_never_zero(database):
    defs = build_defs(sim_environ(database, COST_ASSETS_SIM_SCALE="small"))
    resources = {**defs.resources, "prices": WithoutDS3()}
    defs = dg.Definitions(assets=defs.assets, jobs=defs.jobs, resources=resources)
    result = run_daily(defs, "2026-01-03")
    assert result.success  # a WARN check does not stop the pipeline
    clusters = read_table(str(database), "raw.clusters")
    ds3 = set(
        clusters.filter(
            (pl.col("node_type_id") == "Standard_DS3_v2") | (pl.col("driver_node_type_id") == "Standard_DS3_v2")
        )["cluster_id"]
    )
    assert ds3, "the simulated day should use Standard_DS3_v2"
    costs = read_table(str(database), "mart.run_costs")
    unpriced = costs.filter(pl.col("cluster_id").is_in(list(ds3)))
    assert unpriced["unpriced"].all() and unpriced["total_cost_usd"].is_null().all()
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "priced")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "Standard_DS3_v2" in check.metadata["unpriced"].value


def test_run_summary_bills_a_csv_day_once(tmp_path, database):
    """The legacy CSV has no cloud column: the summary must not price it once per cloud of the sheet."""
    import datetime as dt

    from cost_assets import report
    from cost_assets.simulation import views
    from cost_assets.simulation.world import WorldConfig

    config = WorldConfig(scale="tiny", start=dt.date(2026, 1, 1), days=5)
    bill = tmp_path / "usage.csv"
    bill.write_text(views.legacy_csv(config, dt.date(2026, 1, 1), dt.date(2026, 1, 5)))
    defs = build_defs(sim_environ(database, COST_ASSETS_BILLING_SOURCE=f"csv:{bill}"))
    assert run_daily(defs, "2026-01-03").success
    raw = read_table(str(database), "raw.billing_usage")
    summary = report.billed_by_day(str(database), dt.date(2026, 1, 3), dt.date(2026, 1, 3))
    assert summary["billed_dbus"].to_list() == [pytest.approx(raw["usage_quantity"].sum())]
    ledger = read_table(str(database), "mart.attributed_costs")["billed_cost_usd"].sum()
    assert summary["billed_usd"].to_list() == [pytest.approx(ledger)]


def test_day_over_day_compares_with_the_day_before_not_a_whole_backfill(database):
    """After a 3-day single-run backfill, the next day is compared with its previous day's total (the
    backfill's own total for three days would look like a 3× drop)."""
    defs = build_defs(sim_environ(database, COST_ASSETS_SIM_SCALE="small"))
    instance = dg.DagsterInstance.ephemeral()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    job = defs.resolve_job_def("daily_pipeline")
    assert job.execute_in_process(
        instance=instance,
        run_config=quiet,
        tags={"dagster/asset_partition_range_start": "2026-01-01", "dagster/asset_partition_range_end": "2026-01-03"},
    ).success
    result = job.execute_in_process(instance=instance, run_config=quiet, partition_key="2026-01-04")
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "day_over_day")
    costs = read_table(str(database), "mart.run_costs").group_by("usage_date").agg(pl.col("total_cost_usd").sum())
    by_day = {str(d): t for d, t in costs.iter_rows()}
    # The simulated days differ by far less than 50 % from one day to the next.
    assert abs(by_day["2026-01-04"] / by_day["2026-01-03"] - 1) < 0.5
    assert check.passed, check.metadata
