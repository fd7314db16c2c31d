"""`cost-assets estimate` / cost_assets.preflight: expected values worked out by hand from the bundled sheet.

Numbers used (cost_assets/data/prices.yaml):

  Disks: one P10 per Azure node, $19.71 a month = 19.71 / 730 = $0.027 per node-hour;
         one gp3_128 per AWS node, $10.24 a month = 10.24 / 730 per node-hour
  AZURE Standard_DS3_v2   0.75 DBU/h   VM $0.23/h on-demand, $0.046/h spot
  AZURE Standard_DS4_v2   1.5  DBU/h   VM $0.46/h
  AZURE Standard_D4ds_v5  1.0  DBU/h   VM $0.23/h
  AZURE Standard_E16ds_v4 4.0  DBU/h   VM $1.15/h
  AWS   m5.xlarge         0.69 DBU/h   VM $0.192/h on-demand, $0.0672/h spot
  AWS   m5.2xlarge        1.37 DBU/h   VM $0.384/h on-demand
  AZURE PREMIUM_JOBS_COMPUTE          $0.30/DBU
  AZURE PREMIUM_JOBS_COMPUTE_(PHOTON) $0.30/DBU, photon_dbu_factor 2.9 before 2025-01-01, 2.5 from then on
  AZURE PREMIUM_ALL_PURPOSE_COMPUTE   $0.55/DBU
  AWS   PREMIUM_JOBS_COMPUTE          $0.15/DBU
"""

import datetime as dt
import json
import os
from pathlib import Path

import polars as pl
import pytest
from costing_builders import T0, clusters, events
from typer.testing import CliRunner

from cost_assets import preflight
from cost_assets.cli import app
from cost_assets.costing.price import price_segments
from cost_assets.costing.timeline import cluster_segments
from cost_assets.prices import UnknownPriceError, load_price_sheet

NOW = dt.datetime(2026, 1, 15, 12)  # the current sheet: jobs Photon factor 2.5
SHEET = load_price_sheet()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, in_process_leave: None):
    """Run `cost-assets estimate ...` in-process with none of the developer's settings."""
    for key in list(os.environ):
        if key.startswith(("COST_ASSETS_", "DATABRICKS_")):
            monkeypatch.delenv(key)

    def invoke(*args: str, env: dict[str, str] | None = None):
        return CliRunner().invoke(app, ["estimate", *args], env=env)

    return invoke


def run(**kw) -> preflight.Estimate:
    return preflight.estimate(at=kw.pop("at", NOW), sheet=SHEET, **kw)


P10, GP3 = 19.71 / 730, 10.24 / 730  # disk $ per node-hour


def totals(p: preflight.Point) -> tuple[float, float, float, float, float | None]:
    return (p.dbus, p.dbu_cost_usd, p.vm_cost_usd, p.disk_cost_usd, p.total_cost_usd)


# ------------------------------------------------------------------------------------------ by hand
def test_fixed_jobs_cluster():
    est = run(cloud="azure", node_type="Standard_DS3_v2", workers=4, hours=2)
    # DBUs  = 2 h × 1.0 × (0.75 + 4 × 0.75) DBU/h = 2 × 3.75 = 7.5
    # DBU $ = 7.5 × $0.30 = $2.25
    # VM $  = 2 h × ($0.23 + 4 × $0.23) = 2 × 1.15 = $2.30
    # disk $ = 2 h × 5 nodes × $0.027 = $0.27;  total $2.25 + $2.30 + $0.27 = $4.82
    assert totals(est.mid) == pytest.approx((7.5, 2.25, 2.30, 0.27, 4.82))
    assert est.min == est.mid == est.max and not est.autoscaling
    assert (est.sku_name, est.workload, est.photon_dbu_factor) == ("PREMIUM_JOBS_COMPUTE", "jobs", 1.0)


def test_photon_uses_the_sku_factor_in_force():
    est = run(cloud="AZURE", node_type="Standard_DS4_v2", workers=2, hours=4, photon=True)
    # DBUs  = 4 h × 2.5 × (1.5 + 2 × 1.5) = 4 × 2.5 × 4.5 = 45;  DBU $ = 45 × $0.30 = $13.50
    # VM $  = 4 h × ($0.46 + 2 × $0.46) = 4 × 1.38 = $5.52 (Photon does not change VM $)
    # disk $ = 4 h × 3 nodes × $0.027 = $0.324;  total $13.50 + $5.52 + $0.324 = $19.344
    assert totals(est.mid) == pytest.approx((45.0, 13.50, 5.52, 0.324, 19.344))
    assert est.sku_name == "PREMIUM_JOBS_COMPUTE_(PHOTON)"
    old = run(cloud="AZURE", node_type="Standard_DS4_v2", workers=2, hours=4, photon=True, at=dt.datetime(2024, 6, 1))
    # before 2025-01-01 the factor is 2.9: 4 × 2.9 × 4.5 = 52.2 DBU × $0.30 = $15.66
    assert (old.mid.dbus, old.mid.dbu_cost_usd) == pytest.approx((52.2, 15.66))


def test_spot_workers_with_an_on_demand_driver_of_another_type():
    est = run(cloud="aws", node_type="m5.xlarge", driver_node_type="m5.2xlarge", workers=5, hours=10, spot=True)
    # DBUs  = 10 h × (1.37 + 5 × 0.69) = 10 × 4.82 = 48.2 (spot does not change DBUs);  DBU $ = 48.2 × $0.15 = $7.23
    # VM $  = 10 h × ($0.384 driver on-demand + 5 × $0.0672 spot) = 10 × (0.384 + 0.336) = $7.20
    # disk $ = 10 h × 6 nodes × 10.24 / 730 = 614.4 / 730 (spot or not, a node carries its disk)
    disk = 10 * 6 * GP3
    assert totals(est.mid) == pytest.approx((48.2, 7.23, 7.20, disk, 14.43 + disk))
    assert (est.driver.pricing, est.driver.vm_per_hour) == ("on_demand", 0.384)
    assert (est.worker.pricing, est.worker.vm_per_hour) == ("spot", 0.0672)
    on_demand = run(cloud="aws", node_type="m5.xlarge", driver_node_type="m5.2xlarge", workers=5, hours=10)
    # the same on-demand: VM $ = 10 × (0.384 + 5 × 0.192) = 10 × 1.344 = $13.44
    assert on_demand.mid.vm_cost_usd == pytest.approx(13.44)


def test_autoscaling_reports_min_mid_and_max():
    est = run(
        cloud="AZURE", node_type="Standard_D4ds_v5", min_workers=2, max_workers=6, hours=8, workload="all_purpose"
    )
    # min, 2 workers: DBUs = 8 × (1 + 2 × 1) = 24 → 24 × $0.55 = $13.20;  VM = 8 × 3 × $0.23 = $5.52;
    #                 disk = 8 × 3 × $0.027 = $0.648;  $13.20 + $5.52 + $0.648 = $19.368
    # max, 6 workers: DBUs = 8 × (1 + 6 × 1) = 56 → $30.80;  VM = 8 × 7 × $0.23 = $12.88;
    #                 disk = 8 × 7 × $0.027 = $1.512;  $45.192
    # mid, (2 + 6) / 2 = 4 workers: DBUs = 8 × 5 = 40 → $22.00;  VM = 8 × 5 × $0.23 = $9.20;
    #                 disk = 8 × 5 × $0.027 = $1.08;  $32.28
    assert est.autoscaling and est.sku_name == "PREMIUM_ALL_PURPOSE_COMPUTE"
    assert totals(est.min) == pytest.approx((24.0, 13.20, 5.52, 0.648, 19.368))
    assert totals(est.max) == pytest.approx((56.0, 30.80, 12.88, 1.512, 45.192))
    assert totals(est.mid) == pytest.approx((40.0, 22.00, 9.20, 1.08, 32.28))
    assert est.mid.total_cost_usd == pytest.approx((est.min.total_cost_usd + est.max.total_cost_usd) / 2)


def test_single_node_is_the_driver_only():
    est = run(cloud="AZURE", node_type="Standard_DS3_v2", workers=0, hours=2)
    # DBUs = 2 × 0.75 = 1.5 → $0.45;  VM = 2 × $0.23 = $0.46;  disk = 2 × $0.027 = $0.054;  total $0.964
    assert totals(est.mid) == pytest.approx((1.5, 0.45, 0.46, 0.054, 0.964))


@pytest.mark.parametrize(
    ("kw", "names"),
    [
        ({"cloud": "AZURE", "node_type": "Standard_DS3_v9"}, ["'Standard_DS3_v9'", "AZURE", "Standard_DS3_v2"]),
        ({"cloud": "AZURE", "node_type": "m5.xlarge"}, ["'m5.xlarge'", "AZURE"]),  # an AWS type
        ({"cloud": "AWS", "node_type": "m5.xlarge", "driver_node_type": "m5.huge"}, ["'m5.huge'", "AWS"]),
        ({"cloud": "GCP", "node_type": "n2-standard-4"}, ["'n2-standard-4'", "GCP"]),  # no GCP rows at all
        # AWS Enterprise has no DLT SKU; DLT has no Photon SKU on the sheet
        ({"cloud": "AWS", "node_type": "m5.xlarge", "tier": "enterprise", "workload": "dlt"}, ["AWS ENTERPRISE dlt"]),
        ({"cloud": "AZURE", "node_type": "Standard_DS3_v2", "workload": "dlt", "photon": True}, ["AZURE PREMIUM dlt"]),
    ],
)
def test_a_missing_price_is_an_error_naming_it_never_zero(kw: dict, names: list[str]):
    with pytest.raises(UnknownPriceError) as err:
        run(workers=2, hours=1, **kw)
    for name in names:
        assert name in str(err.value)


@pytest.mark.parametrize(
    "kw",
    [
        {"workers": 2, "min_workers": 1, "max_workers": 3},
        {"min_workers": 1},
        {},
        {"min_workers": 4, "max_workers": 2},
        {"workers": -1},
        {"workers": 2, "hours": 0},
        {"workers": 2, "cloud": "oracle"},
        {"workers": 2, "workload": "sql_pro"},
    ],
)
def test_unusable_arguments(kw: dict):
    with pytest.raises(preflight.PreflightInputError):
        run(**{"cloud": "AZURE", "node_type": "Standard_DS3_v2", "hours": 1, **kw})


# ------------------------------------------------------------------------------- same as the engine
@pytest.mark.parametrize(
    ("cluster", "est"),
    [
        ({"cloud": "AZURE", "node_type_id": "Standard_DS3_v2", "driver_node_type_id": "Standard_DS3_v2"}, {}),
        ({"cloud": "AZURE", "node_type_id": "Standard_DS4_v2", "driver_node_type_id": "Standard_DS4_v2"}, {}),
        (
            {
                "cloud": "AZURE",
                "node_type_id": "Standard_DS4_v2",
                "driver_node_type_id": "Standard_DS4_v2",
                "is_photon": True,
                "runtime_engine": "PHOTON",
            },
            {"photon": True},
        ),
        (
            {
                "cloud": "AWS",
                "node_type_id": "m5.xlarge",
                "driver_node_type_id": "m5.2xlarge",
                "availability": "SPOT_WITH_FALLBACK",
                "first_on_demand": 1,
            },
            {"spot": True},
        ),
        (
            {
                "cloud": "AZURE",
                "node_type_id": "Standard_DS3_v2",
                "driver_node_type_id": "Standard_DS3_v2",
                "cluster_source": "UI",
            },
            {"workload": "all_purpose"},
        ),
        (
            {
                "cloud": "AZURE",
                "node_type_id": "Standard_DS3_v2",
                "driver_node_type_id": "Standard_DS3_v2",
                "cluster_source": "PIPELINE",
            },
            {"workload": "dlt"},
        ),
    ],
    ids=["jobs", "jobs-ds4", "photon", "spot", "all-purpose", "dlt"],
)
@pytest.mark.parametrize("workers", [0, 3])
def test_the_estimate_equals_the_engine_on_the_same_cluster(cluster: dict, est: dict, workers: int):
    """The engine (timeline + price_segments on the bundled sheet) pricing a cluster that runs 150 min at T0
    (2024-06-19, when the jobs Photon factor is 2.9) gives what the estimate says for 2.5 h."""
    row = {"cluster_id": "c", "cluster_source": "JOB", "num_workers": workers, **cluster}
    if workers == 0:
        row["is_single_node"] = True
    ev = events(("c", 0, "RUNNING", workers, workers), ("c", 150, "TERMINATING", None, None))
    segs = cluster_segments(clusters(row), ev, T0, T0 + dt.timedelta(days=1))
    priced = price_segments(segs, SHEET.instance_types_frame(), SHEET.dbu_prices_frame(), "PREMIUM")
    assert not priced["unpriced"].any()
    engine = priced.select(pl.col("dbus", "dbu_cost_usd", "vm_cost_usd", "disk_cost_usd", "total_cost_usd").sum()).row(
        0
    )
    mine = preflight.estimate(
        cloud=row["cloud"],
        node_type=row["node_type_id"],
        driver_node_type=row["driver_node_type_id"],
        workers=workers,
        hours=2.5,
        at=T0,
        sheet=SHEET,
        **est,
    )
    assert totals(mine.mid) == pytest.approx(engine, rel=1e-12)


# ------------------------------------------------------------------------------------------ the CLI
FIXED = ["--cloud", "azure", "--node-type", "Standard_DS3_v2", "--workers", "4", "--hours", "2"]


def test_cli_table(cli):
    result = cli(*FIXED)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "AZURE PREMIUM jobs: PREMIUM_JOBS_COMPUTE at $0.30/DBU" in out
    assert "7.50" in out and "$2.25" in out and "$2.30" in out and "$0.27" in out and "$4.82" in out  # by hand above
    assert "4 workers × $0.23/h on-demand) × 2 h" in out


def test_cli_money_has_thousands_separators(cli):
    # 49 × E16ds_v4 + driver for 10 h, all-purpose: DBUs = 10 × 4.0 × 50 = 2,000 → × $0.55 = $1,100.00;
    # VM = 10 × $1.15 × 50 = $575.00;  disk = 10 × $0.027 × 50 = $13.50;  total $1,688.50
    result = cli(
        *["--cloud", "AZURE", "--node-type", "Standard_E16ds_v4", "--workers", "49", "--hours", "10"],
        *["--workload", "all_purpose"],
    )
    assert result.exit_code == 0, result.output
    for text in ("2,000.00", "$1,100.00", "$575.00", "$13.50", "$1,688.50"):
        assert text in result.stdout


def test_cli_autoscaling_rows(cli):
    result = cli(
        *["--cloud", "AZURE", "--node-type", "Standard_D4ds_v5", "--min-workers", "2", "--max-workers", "6"],
        *["--hours", "8", "--workload", "all_purpose"],
    )
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.startswith("  m")}
    # the hand values of test_autoscaling_reports_min_mid_and_max
    assert rows["min"] == ["2", "24.00", "$13.20", "$5.52", "$0.65", "$19.37"]
    assert rows["mid"] == ["4", "40.00", "$22.00", "$9.20", "$1.08", "$32.28"]
    assert rows["max"] == ["6", "56.00", "$30.80", "$12.88", "$1.51", "$45.19"]


def test_cli_over_budget_exits_2_and_says_why(cli):
    result = cli(*FIXED, "--budget", "4")
    assert result.exit_code == 2
    assert "Estimated cost $4.82 exceeds budget $4.00" in result.stderr
    # what drives it: the VM and DBU arithmetic of the hand computation
    assert "4 workers × $0.23/h on-demand) × 2 h" in result.stderr
    assert "7.50 DBU × $0.30/DBU" in result.stderr
    assert cli(*FIXED, "--budget", "5").exit_code == 0
    assert cli(*FIXED, "--budget", "4.82").exit_code == 0  # equal is within budget


def test_cli_autoscaling_budget_is_checked_against_the_upper_end(cli):
    # mid $32.28 fits $40, max $45.19 does not
    args = ["--cloud", "AZURE", "--node-type", "Standard_D4ds_v5", "--min-workers", "2", "--max-workers", "6"]
    result = cli(*args, "--hours", "8", "--workload", "all_purpose", "--budget", "40")
    assert result.exit_code == 2
    assert "Estimated cost $45.19 exceeds budget $40.00 (the upper end: 6 workers for 8 h" in result.stderr


def test_cli_json_shape(cli):
    result = cli(*FIXED, "--json", "--budget", "4")
    assert result.exit_code == 2  # over budget with --json too
    data = json.loads(result.stdout)
    assert list(data) == [
        "cloud",
        "tier",
        "workload",
        "sku_name",
        "photon",
        "spot",
        "hours",
        "priced_at",
        "driver",
        "worker",
        "photon_dbu_factor",
        "dbu_list_price",
        "dbu_price",
        "autoscaling",
        "estimate",
        "range",
        "budget",
        "notes",
    ]
    point = {
        "workers": 4.0,
        "dbus": 7.5,
        "dbu_cost_usd": 2.25,
        "vm_cost_usd": 2.3,
        "disk_cost_usd": 0.27,
        "total_cost_usd": 4.82,
    }
    assert data["estimate"] == point
    assert data["range"] == {"min": point, "mid": point, "max": point}
    assert data["driver"] == {
        "node_type_id": "Standard_DS3_v2",
        "dbu_per_hour": 0.75,
        "vm_per_hour": 0.23,
        "pricing": "on_demand",
        "disk_per_hour": pytest.approx(P10),
        "vm_price_source": "sheet",
    }
    assert data["budget"] == {"usd": 4.0, "compared_with": "max", "over": True}
    assert (data["cloud"], data["tier"], data["sku_name"], data["dbu_price"]) == (
        "AZURE",
        "PREMIUM",
        "PREMIUM_JOBS_COMPUTE",
        0.30,
    )
    assert data["priced_at"].endswith("Z") and data["notes"] == []
    no_budget = json.loads(cli(*FIXED, "--json").stdout)
    assert no_budget["budget"] is None and set(no_budget) == set(data)


def test_cli_unknown_node_type_exits_2_naming_it_and_the_cloud(cli):
    result = cli("--cloud", "AZURE", "--node-type", "Standard_DS3_v9", "--workers", "2", "--hours", "1")
    assert result.exit_code == 2
    assert "unknown node type 'Standard_DS3_v9' on AZURE" in result.stderr
    assert "$" not in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--workers", "2", "--min-workers", "1", "--max-workers", "3"],
        ["--min-workers", "1"],
        ["--min-workers", "4", "--max-workers", "2"],
        ["--workers", "2", "--workload", "serving"],
    ],
)
def test_cli_bad_arguments_exit_2(cli, args: list[str]):
    assert cli("--cloud", "AZURE", "--node-type", "Standard_DS3_v2", "--hours", "1", *args).exit_code == 2


def test_cli_reads_overrides_and_tier_from_the_settings(cli, tmp_path: Path):
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "instance_types:\n"
        "  - {cloud: AZURE, node_type_id: Custom_X, vcpus: 8, memory_gb: 32, dbu_per_hour: 2.0,\n"
        "     vm_on_demand_per_hour: 1.0, effective_from: 2020-01-01}\n"
        "contract_discounts:\n"
        "  - {cloud: AZURE, workload: jobs, discount: 0.5}\n"
    )
    args = ["--cloud", "AZURE", "--node-type", "Custom_X", "--workers", "1", "--hours", "1", "--spot", "--json"]
    result = cli(*args, env={"COST_ASSETS_PRICES": str(prices), "COST_ASSETS_TIER": "standard"})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # STANDARD_JOBS_COMPUTE is $0.15 list, the 50 % jobs discount makes it $0.075/DBU.
    # DBUs = 1 h × (2.0 + 1 × 2.0) = 4 → 4 × $0.075 = $0.30
    # Custom_X has no spot price: the worker is charged on-demand, VM = 1 h × (1.0 + 1.0) = $2.00
    # Custom_X has no disk price: disk $ unknown (null), left out of the total: $0.30 + $2.00 = $2.30
    assert (data["sku_name"], data["dbu_list_price"], data["dbu_price"]) == ("STANDARD_JOBS_COMPUTE", 0.15, 0.075)
    assert data["estimate"] == {
        "workers": 1.0,
        "dbus": 4.0,
        "dbu_cost_usd": 0.3,
        "vm_cost_usd": 2.0,
        "disk_cost_usd": None,
        "total_cost_usd": 2.3,
    }
    assert data["worker"]["pricing"] == "on_demand"
    assert data["notes"] == [
        "AZURE Custom_X has no spot price in the price sheet: workers are charged on-demand",
        "AZURE Custom_X has no disk price in the price sheet: disk $ unknown, not in the total",
    ]


def test_cli_a_bad_prices_file_exits_2(cli, tmp_path: Path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("instance_types: [{cloud: AZURE}]\n")
    result = cli(*FIXED, env={"COST_ASSETS_PRICES": str(prices)})
    assert result.exit_code == 2
    assert "prices.yaml" in result.stderr and "instance_types[0]" in result.stderr


# ------------------------------------------------------------------------------ observed prices: why not
def test_observed_prices_from_a_ledger_without_the_cloud_bill_say_to_set_it(tmp_path: Path):
    import duckdb

    ledger = tmp_path / "ledger.duckdb"
    with duckdb.connect(str(ledger)) as con:  # a ledger of a run without COST_ASSETS_CLOUD_BILL: no observed prices
        con.execute("create schema mart; create table mart.run_costs (usage_date date)")
    observed, note = preflight.observed_from_ledger(str(ledger))
    assert observed is None
    assert note == (
        f"COST_ASSETS_VM_PRICES=observed: the ledger {str(ledger)!r} has no mart.observed_vm_prices, which is built "
        "from the cloud bill: set COST_ASSETS_CLOUD_BILL (docs/cloud-bill.md) and run the pipeline (`make run`); "
        "the sheet's VM prices are used"
    )


@pytest.mark.parametrize(
    ("name", "missing"),
    [
        (
            "{tmp}/none.duckdb",
            "DuckDB database '{tmp}/none.duckdb' does not exist: run `make run` first (it "
            "materializes the pipeline into this file).",
        ),
        (
            "delta:{tmp}/none",
            "Delta ledger 'delta:{tmp}/none' does not exist: run `make run` first (it "
            "materializes the pipeline into this ledger's folder).",
        ),
    ],
    ids=["duckdb", "delta"],
)
def test_observed_prices_from_a_missing_ledger_say_to_run_first(tmp_path: Path, name: str, missing: str):
    observed, note = preflight.observed_from_ledger(name.format(tmp=tmp_path))
    assert observed is None
    assert note == (
        f"COST_ASSETS_VM_PRICES=observed: no observed prices ({missing.format(tmp=tmp_path)}); "
        "the sheet's VM prices are used"
    )
