"""`cost-assets run`, the command behind `make run`, as a user runs it (a subprocess in a fresh folder)."""

import os
import subprocess
import sys
from pathlib import Path


def test_run_materializes_the_graph_and_prints_the_summary(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "COST_ASSETS_", "DAGSTER_"))}
    env["COST_ASSETS_SIM_SCALE"] = "tiny"
    result = subprocess.run([sys.executable, "-m", "cost_assets.cli", "run", "--days", "2"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for table in ("raw.job_runs", "raw.billing_usage", "ref.dbu_prices", "mart.run_costs", "mart.attributed_costs"):
        assert table in out
    assert "Billed per day" in out and "The bill handed out" in out
    assert (tmp_path / "data" / "cost_assets.duckdb").exists()  # the default COST_ASSETS_DUCKDB, created on use
    assert "nanobind" not in result.stderr
