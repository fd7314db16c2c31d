"""Every benchmark script, run at its smallest size into a temporary folder: a change to a table contract,
an asset's lineage or the engine's signature must not silently break ``benchmarks/``.

One ``bench_engine.py`` run covers the engine at S (1 repeat, with a stand-in floor so the ratio code runs),
the memory probes (a fresh process per contender), the accuracy on a ``tiny`` world for 2 days, and
``bench_dagster_day.py`` at S (which it runs as a subprocess); a second run checks that the benchmark
works without the floor. ``original_calculator.py`` is run on its own too. The numbers are only checked
for sanity (they are not timed targets); ``benchmarks/RESULTS.md`` is never written.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
# The floor lives outside the repository; this stand-in has its interface (``synthetic`` and ``sweep``,
# whose third result has one row per interval) and does next to nothing.
FLOOR_STUB = """
import numpy as np
import polars as pl


def synthetic(clusters, events_per_cluster, runs, seed=1):
    rng = np.random.default_rng(seed)
    events = pl.DataFrame({"cluster": np.repeat(np.arange(clusters), events_per_cluster),
                           "ts": rng.integers(0, 86_400_000, clusters * events_per_cluster)})
    return events, pl.DataFrame({"run": np.arange(runs), "cluster": rng.integers(0, clusters, runs)})


def sweep(events, runs):
    iv = events.sort("cluster", "ts")
    return runs.with_columns(pl.lit(1.0).alias("run_dbus")), iv.head(0), iv
"""


def _run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "POLARS_MAX_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=BENCH.parent
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stderr[-4000:]}"
    return done


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``bench_engine.py`` with every part at the smallest size (stand-in floor), into a temporary folder."""
    tmp = tmp_path_factory.mktemp("bench")
    floor = tmp / "sweep_floor.py"
    floor.write_text(FLOOR_STUB)
    committed = {name: _sha(BENCH / name) for name in ("RESULTS.md", "results.json")}
    out = tmp / "out"
    _run(
        str(BENCH / "bench_engine.py"),
        "--sizes",
        "S",
        "--repeat",
        "1",
        "--naive-sample",
        "5",
        "--accuracy-scale",
        "tiny",
        "--accuracy-days",
        "2",
        "--dagster-size",
        "S",
        "--dagster-repeat",
        "1",
        "--floor",
        str(floor),
        "--out-dir",
        str(out),
    )
    assert {name: _sha(BENCH / name) for name in committed} == committed, "the committed results were rewritten"
    return {"json": json.loads((out / "results.json").read_text()), "md": (out / "RESULTS.md").read_text()}


def test_engine_at_the_smallest_size(smoke: dict):
    (s,) = smoke["json"]["sizes"]
    assert s["size"] == "S" and s["task_runs"] == 1_000
    assert s["run_costs_rows"] > 0 and s["segments"] > 0 and s["elementary_intervals"] > 0
    assert s["engine_unpriced_rows"] == 0, "the synthetic day uses the bundled sheet's node types"
    assert s["engine_total_cost_usd"] > 0 and s["original_total_cost_usd"] > 0
    assert s["engine_seconds"] > 0 and s["original_seconds"] > 0
    assert s["floor_seconds"] is not None and s["ratio_wall"] > 0 and s["floor_intervals"] > 0
    cross = s["naive_cross_check"]
    assert cross["sample_runs"] > 0 and cross["max_rel_diff"] < 1e-6, "engine shares vs the naive per-run loop"


def test_memory_probes(smoke: dict):
    (s,) = smoke["json"]["sizes"]
    for who in ("engine", "original", "floor"):
        assert 0 < s[f"{who}_inputs_rss_mb"] <= s[f"{who}_peak_rss_mb"] < 4096, who


def test_accuracy_on_a_tiny_world(smoke: dict):
    a = smoke["json"]["accuracy"]
    assert a["world"]["scale"] == "tiny" and a["world"]["days"] == 2 and a["world"]["truth_job_runs"] > 0
    for who in ("engine", "original"):
        e = a[who]
        assert e["runs"] > 0 and e["true_usd"] > 0 and e["estimated_usd"] > 0, who
        for part in (e, e["job_cluster_runs"], e["shared_cluster_runs"]):
            if part.get("runs"):
                assert 0 <= part["within_2pct_share"] <= 1, who
                assert 0 <= part["median_abs_rel_error"] <= part["p90_abs_rel_error"], who
        assert e["total_vs_truth"] > 0, who


def test_dagster_day_at_the_smallest_size(smoke: dict):
    d = smoke["json"]["dagster_day"]
    assert d["size"] == "S"
    setup = d["raw_setup_untimed"]["rows"]
    assert {"raw.job_runs", "raw.clusters", "raw.cluster_events", "ref.dbu_prices", "ref.instance_types"} <= set(setup)
    # raw.instance_pools is optional and the synthetic day lists no pools: created, empty.
    assert setup.pop("raw.instance_pools", 0) == 0
    assert all(rows > 0 for rows in setup.values()), setup
    # The timed selection is derived from the lineage: mart/run_costs and whatever sits between it and the
    # raw / ref tables, never those tables themselves.
    timed = d["timed_assets"]
    assert "mart/run_costs" in timed and not any(k.startswith(("raw/", "ref/")) for k in timed), timed
    rc = d["run_costs"]
    assert rc["rows"] > 0 and all(rows > 0 for rows in rc["rows_by_table"].values()), rc["rows_by_table"]
    assert d["run_costs_cold_seconds"] > 0 and rc["engine_only_seconds"] > 0
    best = rc["best"]
    assert 1 <= len(best["steps"]) <= len(timed), "a step materializes one or more of the timed assets"
    assert 0 < best["step_seconds"] <= best["wall_seconds"]
    assert {"mart.cluster_segments", "mart.estimated_costs", "mart.run_costs"} <= set(rc["rows_by_table"])
    assert 0 < rc["peak_rss_mb"] < 4096


def test_results_md(smoke: dict):
    md = smoke["md"]
    for heading in ("## Targets", "### S:", "## What the engine's extra work buys", "## The whole day through Dagster"):
        assert heading in md
    assert "None" not in md and not re.search(r"\bnan\b", md)


def test_without_the_floor(tmp_path: Path):
    """The floor is outside the repository: without it the ratios are n/a and the rest still runs."""
    done = _run(
        str(BENCH / "bench_engine.py"),
        "--sizes",
        "S",
        "--repeat",
        "1",
        "--naive-sample",
        "0",
        "--no-accuracy",
        "--no-dagster",
        "--floor",
        str(tmp_path / "absent.py"),
        "--out-dir",
        str(tmp_path),
    )
    assert "ratios are n/a" in done.stderr
    (s,) = json.loads((tmp_path / "results.json").read_text())["sizes"]
    assert s["ratio_wall"] is None and s["floor_seconds"] is None and s["run_costs_rows"] > 0
    assert "n/a" in (tmp_path / "RESULTS.md").read_text()


def test_original_calculator_cli():
    done = _run(str(BENCH / "original_calculator.py"), "--scale", "tiny", "--days", "1")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["world"]["truth_job_runs"] > 0
    assert 0 <= r["engine"]["within_2pct_share"] <= 1 and 0 <= r["original"]["within_2pct_share"] <= 1


def test_anomaly_benchmark_at_a_small_size(tmp_path: Path):
    """bench_anomalies.py on 200 series × 60 days: it runs, agrees with its naive loop, writes its report."""
    done = _run(
        str(BENCH / "bench_anomalies.py"),
        "--series",
        "200",
        "--days",
        "60",
        "--repeat",
        "1",
        "--naive-series",
        "20",
        "--out-dir",
        str(tmp_path),
    )
    result = json.loads(done.stdout)
    check = result["cross_check"]
    assert check["rows"] > 0 and check["state_mismatches"] == 0 and check["alertable_mismatches"] == 0
    assert result["vectorised"]["scored_rows"] > 0
    assert "# Anomaly scoring benchmark" in (tmp_path / "ANOMALIES.md").read_text()


def test_account_benchmark_at_two_workspaces_and_two_days(tmp_path: Path):
    """``bench_account.py`` at its smallest: 2 tiny workspaces × 2 days, one backfill, and the fetch both ways."""
    shipped = _sha(BENCH / "ACCOUNT.md")
    env_home = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    smallest = ["--workspaces", "2", "--days", "2", "--scale", "tiny", "--out-dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_account.py"), *smallest],
        capture_output=True,
        text=True,
        env={**env_home, "POLARS_MAX_THREADS": "2"},
        timeout=240,
        cwd=BENCH.parent,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads((tmp_path / "account.json").read_text())
    b = out["backfill"]
    assert b["workspace_days_fetched"] == 2 * 2  # each workspace fetched once over the 2-day window
    assert b["formula_violations"] == 0 and b["calls_per_workspace_day"]["min"] >= 2  # runs/list, clusters/list
    assert b["workspaces_in_bill"] == 2 + 1  # the 2 configured + the one the simulated bill adds
    assert 0 < b["workspace_not_configured_usd"] < b["billed_usd"]
    assert all(rows > 0 for rows in b["rows"].values()) and 0 < b["peak_rss_mb"] < 4096
    concurrent, sequential = out["fetch"]["concurrent"], out["fetch"]["sequential"]
    assert (concurrent["max_concurrent"], sequential["max_concurrent"]) == (8, 1)
    assert concurrent["calls"] == sequential["calls"] > 0 and concurrent["runs"] == sequential["runs"] > 0
    md = (tmp_path / "ACCOUNT.md").read_text()
    assert "## Targets" in md and "None" not in md and not re.search(r"\bnan\b", md)
    assert _sha(BENCH / "ACCOUNT.md") == shipped  # the shipped results are never written by the test


def test_run_days_benchmark_at_two_tiny_days(tmp_path: Path):
    """``bench_run_days.py`` at its smallest: ``cost-assets run --days 2`` on a tiny world, timed in a fresh process."""
    shipped = _sha(BENCH / "RUN_DAYS.md")
    _run(str(BENCH / "bench_run_days.py"), "--days", "2", "--scale", "tiny", "--out-dir", str(tmp_path))
    out = json.loads((tmp_path / "run_days.json").read_text())
    assert (out["days"], out["scale"]) == (2, "tiny")
    assert out["wall_seconds"] > 0 and 0 < out["peak_rss_mb"] < 4096 and out["summary_lines"] > 0
    md = (tmp_path / "RUN_DAYS.md").read_text()
    assert "2 days at `tiny`" in md and "n/a (not the target's run)" in md  # the target is for 90 medium days
    assert _sha(BENCH / "RUN_DAYS.md") == shipped  # the shipped results are never written by the test
