"""Account benchmark: N simulated workspaces × D days as one backfill, in-process (target ≤ 10 min, ≤ 2 GiB).

    python benchmarks/bench_account.py                      # 20 workspaces × 30 days, small; writes ACCOUNT.md
    python benchmarks/bench_account.py --workspaces 2 --days 2 --scale tiny --out-dir "$(mktemp -d)"

**The backfill** (timed against the target): the project's ``build_defs`` with
``COST_ASSETS_SIM_WORKSPACES=N`` on a temporary DuckDB file and Dagster instance, then the whole asset
graph for the D days ending ``--end`` as **one run** (a single-run backfill: the same partition-range tags
as ``cost-assets run``). The simulated workspaces answer in-process; every API call of the workspace fetch
goes through :class:`CountingApi`, which counts it per workspace-day by endpoint and waits
``--latency-ms`` first (a round trip to a real workspace; the wait releases the GIL as a socket would), so
concurrency is measured on a fetch that waits like a real one. Wall time and the process's peak RSS.

**The fetch formula** (README, "Account scale"): per workspace-day the fetch makes
``3 + J + G + E + B + P`` calls: runs/list (one sweep; over HTTP ⌈runs listed / 25⌉ pages),
clusters/list and instance-pools/list, ``J`` jobs/get (one per distinct job of the listed runs), ``G``
clusters/get (the job clusters of the listed runs, and used clusters the list lacks), ``E`` clusters/events
(one per cluster looked at; over HTTP one per 500 events), ``B`` walk-back pages (25 events each) and ``P``
instance-pools/get.
Its bound from what the day shows — ``3 + J + 2 × (job clusters of the listed runs + listed clusters) +
B + P`` — is checked for every workspace-day (``formula_violations`` must be 0).

**The naive baseline** (same run, fetch only): the same N workspaces × D days fetched one workspace after
the other (``max_concurrent=1``) against the concurrent fetch (``COST_ASSETS_WORKSPACE_CONCURRENCY``,
default 8), both through :func:`cost_assets.ingest.account.read_all` as the raw asset calls it, same
latency; the speed-up is the concurrency's. Results: ``ACCOUNT.md`` and ``account.json`` in ``--out-dir``.
"""

import os

os.environ.setdefault("POLARS_MAX_THREADS", "2")

import argparse
import datetime as dt
import json
import platform
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).parent))
from memory import peak_rss_mb, reset_peak

from cost_assets.definitions import build_defs
from cost_assets.ingest import fetch
from cost_assets.ingest.account import read_all
from cost_assets.resources.databricks import DatabricksWorkspace
from cost_assets.resources.simulated import SimulatedWorkspace, SimulatedWorld
from cost_assets.resources.warehouse import read_table
from cost_assets.simulation.api import SimulatedApi

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
TARGET_WALL_S = 600
TARGET_RSS_MB = 2048


class CountingApi:
    """A simulated workspace API that counts each call per day and endpoint and waits ``latency_s`` first.

    ``fetch.fetch_day`` starts every day with runs/list, so that call opens the next day's counters. The
    counts and the day's bound terms go to ``sink`` (one list per workspace)."""

    def __init__(self, api: SimulatedApi, latency_s: float, sink: list[dict]):
        self._api, self._latency, self._sink = api, latency_s, sink
        self.workspace_id, self.cloud = api.workspace_id, api.cloud

    def _call(self, endpoint: str) -> None:
        self._sink[-1]["calls"][endpoint] += 1
        if self._latency:
            time.sleep(self._latency)

    def list_runs(self, start_time_from: int, start_time_to: int) -> Iterator[dict]:
        self._sink.append({"calls": Counter(), "job_clusters": 0, "listed_clusters": 0})
        self._call("runs/list")
        runs = list(self._api.list_runs(start_time_from, start_time_to))
        self._sink[-1]["job_clusters"] = len(fetch._job_clusters_of(runs))
        return iter(runs)

    def get_job(self, job_id: int) -> dict:
        self._call("jobs/get")
        return self._api.get_job(job_id)

    def get_cluster(self, cluster_id: str) -> dict:
        self._call("clusters/get")
        return self._api.get_cluster(cluster_id)

    def list_clusters(self) -> list[dict]:
        self._call("clusters/list")
        listed = self._api.list_clusters()
        self._sink[-1]["listed_clusters"] = len(listed)
        return listed

    def list_instance_pools(self) -> list[dict]:
        self._call("instance-pools/list")
        return self._api.list_instance_pools()

    def get_instance_pool(self, instance_pool_id: str) -> dict:
        self._call("instance-pools/get")
        return self._api.get_instance_pool(instance_pool_id)

    def cluster_events(self, cluster_id: str, start_time: int, end_time: int) -> list[dict]:
        self._call("clusters/events")
        return self._api.cluster_events(cluster_id, start_time, end_time)

    def cluster_events_before(
        self, cluster_id: str, end_time: int, event_types: Iterable[str], limit: int
    ) -> Iterator[dict]:
        for i, event in enumerate(self._api.cluster_events_before(cluster_id, end_time, event_types, limit)):
            if i % limit == 0:  # a new page
                self._call("clusters/events (walk back)")
            yield event

    def serving_requests(self, start_time: int, end_time: int) -> list[dict]:
        """Not part of the workspace fetch (``raw/serving_usage`` is its own asset): waits, not counted."""
        if self._latency:
            time.sleep(self._latency)
        return self._api.serving_requests(start_time, end_time)


# Per workspace name: one dict per fetched day (calls by endpoint, and the bound's terms).
CALLS: dict[str, list[dict]] = defaultdict(list)
_LOCK = threading.Lock()


class CountedWorkspace(SimulatedWorkspace):
    """One simulated workspace whose API calls are counted (and wait the latency)."""

    latency_ms: float = 0.0

    def api_for(self, days: Sequence[dt.date]) -> fetch.WorkspaceApi:
        with _LOCK:
            sink = CALLS[self.name]
        return CountingApi(SimulatedApi(self.world.config_for(days)), self.latency_ms / 1000, sink)


class CountedAccount(SimulatedWorkspace):
    """The simulated account of ``workspaces`` counted workspaces."""

    latency_ms: float = 0.0

    def members(self) -> list[DatabricksWorkspace]:
        return [
            CountedWorkspace(world=m.world, name=m.name, latency_ms=self.latency_ms, max_concurrent=self.max_concurrent)
            for m in super().members()
        ]


def _formula(days: list[dict]) -> dict:
    """Calls per workspace-day against the fetch formula's bound."""
    per_day, violations = [], 0
    for d in days:
        calls = d["calls"]
        bound = (
            3
            + calls["jobs/get"]
            + 2 * (d["job_clusters"] + d["listed_clusters"])
            + calls["clusters/events (walk back)"]
            + calls["instance-pools/get"]
        )
        total = sum(calls.values())
        per_day.append(total)
        violations += total > bound
    return {"calls": per_day, "violations": violations}


def backfill(tmp: Path, args: argparse.Namespace) -> dict:
    """The whole graph for the days, one run, N workspaces; wall, peak RSS, calls per workspace-day."""
    db = str(tmp / "warehouse.duckdb")
    env = {
        "COST_ASSETS_DUCKDB": db,
        "COST_ASSETS_ALERT_STORE": str(tmp / "alerts.sqlite"),
        "COST_ASSETS_SIM_WORKSPACES": str(args.workspaces),
        "COST_ASSETS_SIM_SCALE": args.scale,
        "COST_ASSETS_WORKSPACE_CONCURRENCY": str(args.concurrency),
    }
    defs = build_defs(env)
    account = CountedAccount(
        world=defs.resources["workspace"].world,
        workspaces=args.workspaces,
        max_concurrent=args.concurrency,
        latency_ms=args.latency_ms,
    )
    home = tmp / "dagster_home"
    home.mkdir()
    first = args.end - dt.timedelta(days=args.days - 1)
    CALLS.clear()
    reset_peak()
    started = time.perf_counter()
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        result = dg.materialize(
            defs.assets,
            resources={**defs.resources, "workspace": account},
            instance=instance,
            run_config=QUIET,
            tags={
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": args.end.isoformat(),
            },
            raise_on_error=False,
        )
    wall = time.perf_counter() - started
    rss = peak_rss_mb()
    if not result.success:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        raise RuntimeError(f"the backfill failed in {failed}")
    formula = [_formula(days) for days in CALLS.values()]
    calls = [c for f in formula for c in f["calls"]]
    attributed = read_table(db, "mart.attributed_costs")
    return {
        "workspaces": args.workspaces,
        "days": args.days,
        "first_day": first.isoformat(),
        "last_day": args.end.isoformat(),
        "wall_seconds": round(wall, 1),
        "peak_rss_mb": round(rss),
        "workspace_days_fetched": len(calls),
        "calls_per_workspace_day": {
            "mean": round(sum(calls) / len(calls), 1),
            "min": min(calls),
            "max": max(calls),
        },
        "formula_violations": sum(f["violations"] for f in formula),
        "rows": {t: read_table(db, t).height for t in ("raw.job_runs", "raw.billing_usage", "mart.attributed_costs")},
        "workspaces_in_bill": read_table(db, "raw.billing_usage")["workspace_id"].n_unique(),
        "workspace_not_configured_usd": round(
            float(attributed.filter(reason="workspace_not_configured")["billed_cost_usd"].sum()), 2
        ),
        "billed_usd": round(float(attributed["billed_cost_usd"].sum()), 2),
    }


def fetch_only(args: argparse.Namespace, max_concurrent: int) -> dict:
    """The workspace fetch alone, as the raw asset runs it, at ``max_concurrent``."""
    account = CountedAccount(
        world=SimulatedWorld(scale=args.scale),
        workspaces=args.workspaces,
        max_concurrent=max_concurrent,
        latency_ms=args.latency_ms,
    )
    days = [args.end - dt.timedelta(days=k) for k in range(args.days)][::-1]
    members = account.members()
    for m in members:  # the worlds generated beforehand, as in the backfill's second fetch of the same window
        SimulatedApi(m.world.config_for(days)).list_clusters()
    CALLS.clear()
    started = time.perf_counter()
    answers = read_all(members, lambda m: m.fetch(days), lambda m: m.name, max_concurrent, lambda _: None)
    wall = time.perf_counter() - started
    errors = [a.error for a in answers if a.error]
    if errors:
        raise RuntimeError(f"fetch failed: {errors[0]}")
    return {
        "max_concurrent": max_concurrent,
        "wall_seconds": round(wall, 1),
        "calls": sum(sum(d["calls"].values()) for days_ in CALLS.values() for d in days_),
        "runs": sum(a.value.job_runs.height for a in answers),
    }


def markdown(out: dict) -> str:
    b, c, s = out["backfill"], out["fetch"]["concurrent"], out["fetch"]["sequential"]
    ok = b["wall_seconds"] <= TARGET_WALL_S and b["peak_rss_mb"] <= TARGET_RSS_MB and b["formula_violations"] == 0
    cfg = out["config"]
    return f"""# Account benchmark: {b["workspaces"]} workspaces × {b["days"]} days, one backfill

`python benchmarks/bench_account.py` ({cfg["scale"]} worlds, {cfg["latency_ms"]} ms per API call, at most
{cfg["concurrency"]} workspaces at once; {out["machine"]}, {out["date"]}). How it is measured: the
benchmark's docstring.

## Targets

| | measured | target | |
|---|---:|---:|---|
| wall time of the backfill (one run, {b["first_day"]} .. {b["last_day"]}) | {b["wall_seconds"]} s \
| ≤ {TARGET_WALL_S} s | {_verdict(b["wall_seconds"] <= TARGET_WALL_S)} |
| peak RSS | {b["peak_rss_mb"]} MB | ≤ {TARGET_RSS_MB} MB | {_verdict(b["peak_rss_mb"] <= TARGET_RSS_MB)} |
| workspace-days over the fetch formula's bound | {b["formula_violations"]} of {b["workspace_days_fetched"]} \
| 0 | {_verdict(b["formula_violations"] == 0)} |

{"Every target is met." if ok else "**A target is missed** (see above)."}

API calls per workspace-day: mean {b["calls_per_workspace_day"]["mean"]}, min {b["calls_per_workspace_day"]["min"]},
max {b["calls_per_workspace_day"]["max"]} (in-process: one runs/list sweep per day; over HTTP add its pages).
Rows: {", ".join(f"{k} {v:,}" for k, v in b["rows"].items())}. The bill names {b["workspaces_in_bill"]}
workspaces ({b["workspaces"]} configured + 1 not): ${b["workspace_not_configured_usd"]:,} of ${b["billed_usd"]:,}
went to `workspace_not_configured`.

## Concurrent vs one workspace after the other (the fetch alone)

| fetch | wall | calls | task runs |
|---|---:|---:|---:|
| concurrent (at most {c["max_concurrent"]} at once) | {c["wall_seconds"]} s | {c["calls"]:,} | {c["runs"]:,} |
| sequential (naive baseline) | {s["wall_seconds"]} s | {s["calls"]:,} | {s["runs"]:,} |

Sequential / concurrent wall: {s["wall_seconds"] / max(c["wall_seconds"], 0.1):.1f}×, same calls and rows. What
concurrency buys is the overlap of the calls' waits (``--latency-ms`` each); the simulated answers are
computed on the same cores, which bounds the gain.
"""


def _verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workspaces", type=int, default=20)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--scale", default="small", choices=["tiny", "small", "medium"])
    p.add_argument("--latency-ms", type=float, default=2.0, help="wait per API call (a round trip)")
    p.add_argument("--concurrency", type=int, default=8, help="COST_ASSETS_WORKSPACE_CONCURRENCY")
    p.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2026, 11, 30), help="last day of the backfill")
    p.add_argument("--out-dir", type=Path, default=Path(__file__).parent)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    with tempfile.TemporaryDirectory(prefix="bench-account-") as tmp:
        result = backfill(Path(tmp), args)
    out = {
        "config": {k: str(v) if isinstance(v, dt.date) else v for k, v in vars(args).items() if k != "out_dir"},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "date": dt.date.today().isoformat(),
        "backfill": result,
        "fetch": {"concurrent": fetch_only(args, args.concurrency), "sequential": fetch_only(args, 1)},
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "account.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out_dir / "ACCOUNT.md").write_text(markdown(out))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
