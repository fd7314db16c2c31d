"""The per-run ledger and the Observability Service export, against a real receiver on 127.0.0.1."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import polars as pl
import pytest

from cost_assets.assets.exports_delivery import ObservabilityService
from cost_assets.definitions import build_defs
from cost_assets.export.observability import batches, deliver
from cost_assets.export.run_ledger import calculation_version, run_ledger
from cost_assets.ingest.http import ApiError, AuthError, RetryPolicy
from tests.conftest import run_daily, sim_environ
from tests.export_builders import DAY, attributed, run_costs

TOKEN = "obs-secret-token-123"
FAST = RetryPolicy(max_attempts=5, retry_timeout_s=10.0, backoff_s=0.001, max_backoff_s=0.001, jitter_s=0.0)


class Receiver:
    """An Observability Service on 127.0.0.1 that deduplicates by Idempotency-Key. ``fail`` decides per call
    whether to answer 500, and ``after`` whether that failure comes after the batch was stored (the reply
    was lost) or before."""

    def __init__(self, fail=lambda n: False, after=lambda n: False, status: int = 500):
        self.calls: list[dict] = []
        self.accepted: dict[str, dict] = {}
        self.fail, self.after, self.status = fail, after, status
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key")
                with receiver.lock:
                    n = len(receiver.calls)
                    receiver.calls.append({"auth": self.headers.get("Authorization"), "key": key, "body": body})
                    failing = receiver.fail(n)
                    if not failing or receiver.after(n):
                        receiver.accepted.setdefault(key, body)
                self.send_response(receiver.status if failing else 200)
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/costs"

    def runs_accepted(self) -> list[tuple]:
        return [(r["databricks_run_id"], r["task_run_id"]) for b in self.accepted.values() for r in b["runs"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _ledger_inputs() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Run 1 (billed), run 2 (estimated, no bill yet), run 4 (unpriced estimate), an idle row, and a
    serverless run 3 only the bill knows; plus an unattributed bill row that is nobody's run."""
    costs = run_costs(
        {"run_id": 1, "task_run_id": 11, "job_id": 100, "task_key": "ingest", "dbus": 2.0, "dbu_cost_usd": 0.6}
        | {"vm_cost_usd": 0.4, "total_cost_usd": 1.0, "team": "data"},
        {"run_id": 2, "task_run_id": 21, "job_id": 200, "task_key": "train", "cluster_id": "c-2", "dbus": 1.0}
        | {"dbu_cost_usd": 0.3, "vm_cost_usd": 0.2, "total_cost_usd": 0.5},
        {"run_id": 4, "task_run_id": 41, "job_id": 400, "cluster_id": "c-4", "unpriced": True}
        | {"dbus": None, "dbu_cost_usd": None, "vm_cost_usd": None, "total_cost_usd": None},
        {"consumer": "idle", "cluster_id": "c-3", "is_shared_cluster": True, "dbus": 1.0}
        | {"dbu_cost_usd": 0.3, "vm_cost_usd": 0.2, "total_cost_usd": 0.5},
    )
    bill = attributed(
        {"run_id": 1, "task_run_id": 11, "job_id": 100, "billed_dbus": 2.2, "billed_cost_usd": 0.66, "team": "data"},
        {"resource_type": "serverless", "resource_id": "3", "run_id": 3, "job_id": 300, "billed_dbus": 1.0}
        | {"billed_cost_usd": 0.7, "reason": "serverless"},
        {"consumer": "unattributed", "resource_id": "c-9", "billed_dbus": 1.0, "billed_cost_usd": 0.7}
        | {"reason": "no_estimate"},
    )
    return costs, bill


def test_the_ledger_takes_the_bill_where_it_is_in_and_the_estimate_elsewhere():
    ledger = run_ledger(*_ledger_inputs())
    by_run = {row["run_id"]: row for row in ledger.iter_rows(named=True)}
    assert sorted(by_run) == [1, 2, 3, 4]  # idle and unattributed money is nobody's run
    # Run 1: billed DBU $0.66 (the bill's share) + estimated VM $0.40 = $1.06.
    assert by_run[1]["cost_basis"] == "billed"
    assert (by_run[1]["dbu_cost_usd"], by_run[1]["vm_total_cost_usd"]) == (0.66, 0.4)
    assert by_run[1]["total_cost_usd"] == pytest.approx(1.06)
    assert (
        by_run[1]["calculator_id"] == "100"
        and by_run[1]["tags"] == '{"cost_center":null,"project":null,"team":"data","tenant":null}'
    )
    # Run 2: no bill yet, the estimate: $0.30 + $0.20 = $0.50.
    assert (by_run[2]["cost_basis"], by_run[2]["total_cost_usd"]) == ("estimated", 0.5)
    # Run 3: serverless, only on the bill: DBU $0.70 + VM $0 (serverless VMs are in the DBU price) = $0.70.
    assert (by_run[3]["cost_basis"], by_run[3]["cluster_id"], by_run[3]["total_cost_usd"]) == ("billed", None, 0.7)
    # Run 4: unpriced estimate: unknown, never $0.
    assert by_run[4]["total_cost_usd"] is None and by_run[4]["unpriced"]


def test_calculation_version_changes_with_the_figures_only():
    costs, bill = _ledger_inputs()
    ledger = run_ledger(costs, bill)
    assert calculation_version(ledger) == calculation_version(run_ledger(costs.reverse(), bill.reverse()))
    restated = bill.with_columns(pl.col("billed_cost_usd") * 2)
    assert calculation_version(run_ledger(costs, restated)) != calculation_version(ledger)


def test_the_payload_has_the_original_shape(receiver):
    ledger = run_ledger(*_ledger_inputs())
    day_batches = batches(ledger, DAY, batch_size=3)
    stats = deliver(receiver.url, TOKEN, day_batches, retry=FAST)
    assert stats["calls"] == 2 and stats["retries"] == 0  # 4 runs in batches of 3: 2 POSTs
    first = receiver.calls[0]
    assert first["auth"] == f"Bearer {TOKEN}"
    body = first["body"]
    assert set(body) == {"calculation_date", "calculation_version", "batch_index", "batch_count", "runs"}
    assert (body["calculation_date"], body["batch_index"], body["batch_count"]) == ("2026-01-05", 0, 2)
    assert body["calculation_version"].startswith("0.1.0+")
    run1 = body["runs"][0]
    assert run1 == {
        "databricks_run_id": 1,
        "task_run_id": 11,
        "task_key": "ingest",
        "calculator_id": "100",
        "cluster_id": "c-1",
        "workspace_id": "ws-1",
        "total_cost_usd": pytest.approx(1.06),
        "dbu_cost_usd": 0.66,
        "vm_total_cost_usd": 0.4,
        "runtime_hours": 1.0,
        "dbus": 2.0,
        "billed_dbus": 2.2,
        "cost_basis": "billed",
        "unpriced": False,
        "currency_code": "USD",
        "tags": {"team": "data"},
    }
    assert first["key"] == f"cost-assets/2026-01-05/{body['calculation_version']}/0"


def _many_runs(n: int) -> pl.DataFrame:
    rows = [
        {"run_id": i, "task_run_id": 1000 + i, "job_id": 7, "dbus": 1.0, "dbu_cost_usd": 0.5, "vm_cost_usd": 0.5}
        | {"total_cost_usd": 1.0, "cluster_id": f"c-{i}"}
        for i in range(n)
    ]
    return run_ledger(run_costs(*rows), attributed())


def test_every_run_is_delivered_exactly_once_when_half_the_calls_fail():
    # Every second call answers 500; half of those after the receiver already stored the batch (the
    # reply was lost), so the client resends a batch the receiver has: it deduplicates by key.
    receiver = Receiver(fail=lambda n: n % 2 == 0, after=lambda n: n % 4 == 0)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        day_batches = batches(_many_runs(23), DAY, batch_size=5)
        stats = deliver(receiver.url, TOKEN, day_batches, retry=FAST)
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
    # 23 runs in batches of 5: 5 batches (5+5+5+5+3); each batch is tried twice (500, then 200): 10 calls.
    assert len(day_batches) == 5 and stats["calls"] == 10 and stats["retries"] == 5
    assert len({c["key"] for c in receiver.calls}) == 5 == len(receiver.accepted)
    accepted = receiver.runs_accepted()
    assert sorted(accepted) == [(i, 1000 + i) for i in range(23)]  # each run once
    assert len(accepted) == len(set(accepted))


def test_the_same_day_twice_gives_the_same_batches_and_keys():
    ledger = _many_runs(12)
    once, again = batches(ledger, DAY, batch_size=5), batches(ledger.sample(fraction=1.0, shuffle=True, seed=3), DAY, 5)
    assert [b.key for b in once] == [b.key for b in again]
    assert [b.body for b in once] == [b.body for b in again]
    assert [b.run_count for b in once] == [5, 5, 2]


def test_a_refused_token_fails_at_once_and_never_shows_the_token():
    receiver = Receiver(fail=lambda n: True, status=401)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(AuthError) as refused:
            deliver(receiver.url, TOKEN, batches(_many_runs(2), DAY), retry=FAST)
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
    assert len(receiver.calls) == 1  # not retried
    assert TOKEN not in str(refused.value) and "COST_ASSETS_OBSERVABILITY_TOKEN" in str(refused.value)
    assert TOKEN not in repr(ObservabilityService(url=receiver.url, token=TOKEN))


def test_a_receiver_that_keeps_failing_gives_up_with_the_status():
    receiver = Receiver(fail=lambda n: True, status=503)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(ApiError, match="HTTP 503") as failed:
            deliver(receiver.url, TOKEN, batches(_many_runs(2), DAY), retry=FAST)
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
    assert len(receiver.calls) == FAST.max_attempts and TOKEN not in str(failed.value)


def test_the_asset_posts_each_day_only_when_configured_and_keeps_the_token_out(tmp_path, receiver, monkeypatch):
    database = tmp_path / "ledger.duckdb"
    assert "export/observability_service" not in _keys(build_defs(sim_environ(database)))
    monkeypatch.setenv("COST_ASSETS_OBSERVABILITY_TOKEN", TOKEN)  # dg.EnvVar reads it when the run starts
    environ = sim_environ(database, COST_ASSETS_OBSERVABILITY_URL=receiver.url, COST_ASSETS_OBSERVABILITY_TOKEN=TOKEN)
    defs = build_defs(environ)
    assert "export/observability_service" in _keys(defs)
    first = run_daily(defs, "2026-01-05")
    assert first.success
    keys_once = {c["key"] for c in receiver.calls}
    assert keys_once and all(c["auth"] == f"Bearer {TOKEN}" for c in receiver.calls)
    posted = sum(len(c["body"]["runs"]) for c in receiver.calls)
    second = run_daily(defs, "2026-01-05")  # idempotent: the same day again repeats the same keys
    assert second.success and {c["key"] for c in receiver.calls} == keys_once
    assert len(receiver.accepted) == len(keys_once)
    materialization = next(
        e.materialization
        for e in first.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey(["export", "observability_service"])
    )
    assert materialization.metadata["runs"].value == posted > 0
    records = [str(e) for e in first.all_events]
    assert TOKEN not in json.dumps({k: str(v) for k, v in materialization.metadata.items()})
    assert not any(TOKEN in r for r in records)


def _keys(defs: dg.Definitions) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


def test_a_refused_token_fails_the_asset_without_step_retries_and_leaves_the_marts(tmp_path, monkeypatch):
    receiver = Receiver(fail=lambda n: True, status=401)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("COST_ASSETS_OBSERVABILITY_TOKEN", TOKEN)
    database = tmp_path / "ledger.duckdb"
    environ = sim_environ(database, COST_ASSETS_OBSERVABILITY_URL=receiver.url, COST_ASSETS_OBSERVABILITY_TOKEN=TOKEN)
    try:
        result = run_daily(build_defs(environ), "2026-01-05", raise_on_error=False)
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
    assert not result.success
    assert len(receiver.calls) == 1  # neither the client nor the step tried again
    failed = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failed] == ["export__observability_service"]
    assert TOKEN not in str(failed[0].step_failure_data.error)
    # The marts were written before the export ran: its failure blocks none of them.
    materialized = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"mart/run_costs", "mart/attributed_costs", "mart/cost_by_scope"} <= materialized
