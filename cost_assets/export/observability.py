"""The Observability Service export: each day's per-run costs POSTed as the original calculator did.

The calculator this project replaces posted ``{calculation_date, calculation_version, runs: [...]}`` to an
Observability Service. :func:`batches` builds that payload from the run ledger (:mod:`run_ledger`, the
same numbers as ``finops.calculator_run_costs``) and :func:`deliver` sends it. No Dagster here.

**Deterministic batches.** The day's runs in the ledger's key order, cut every ``batch_size`` runs; every
batch carries ``batch_index`` / ``batch_count`` beside the original fields and an ``Idempotency-Key``
header ``cost-assets/<date>/<calculation_version>/<index>``. The version holds a digest of the day's
figures, so the same day materialized again sends the same batches under the same keys (a receiver that
deduplicates by key takes each run once), and a day restated by a late bill sends new keys.

**Delivery.** One bearer-authenticated POST per batch through the project's HTTP client
(:class:`cost_assets.ingest.http.ApiClient`): 429 and every 5xx and connection errors are retried with
the project's :class:`RetryPolicy` backoff (honouring ``Retry-After``); 401/403 and other 4xx fail at once.
Batches go in order and a failure stops the day, raising :class:`ApiError` with the method, path and
status but never the token; the next materialization resends every batch under the same keys.
"""

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import polars as pl

from cost_assets.export.run_ledger import KEY, calculation_version
from cost_assets.ingest.http import ApiClient, PatCredentials, RetryPolicy

TOKEN_VARIABLE = "COST_ASSETS_OBSERVABILITY_TOKEN"
DEFAULT_BATCH_SIZE = 500
# The ledger's columns each run entry carries, under the original calculator's names where it had one.
RUN_FIELDS = {
    "run_id": "databricks_run_id",
    "task_run_id": "task_run_id",
    "task_key": "task_key",
    "calculator_id": "calculator_id",
    "cluster_id": "cluster_id",
    "workspace_id": "workspace_id",
    "total_cost_usd": "total_cost_usd",
    "dbu_cost_usd": "dbu_cost_usd",
    "vm_total_cost_usd": "vm_total_cost_usd",
    "runtime_hours": "runtime_hours",
    "dbus": "dbus",
    "billed_dbus": "billed_dbus",
    "cost_basis": "cost_basis",
    "unpriced": "unpriced",
    "currency_code": "currency_code",
    "tags": "tags",
}
# Every 5xx says "try again" for a service like this one (unlike Databricks, whose 500s are mostly final).
RETRY_STATUSES = frozenset({429, *range(500, 600)})


def observability_retry() -> RetryPolicy:
    """5 attempts within 60 s: backoff 0.5 s, 1 s, 2 s, 4 s (capped at 8 s) plus ≤ 0.5 s jitter."""
    return RetryPolicy(max_attempts=5, retry_timeout_s=60.0, backoff_s=0.5, max_backoff_s=8.0, jitter_s=0.5)


@dataclass(frozen=True)
class Batch:
    """One POST: its idempotency key and JSON body."""

    key: str
    body: dict[str, Any]

    @property
    def run_count(self) -> int:
        return len(self.body["runs"])


def _run(row: dict[str, Any]) -> dict[str, Any]:
    entry = {name: row[column] for column, name in RUN_FIELDS.items()}
    entry["tags"] = {k: v for k, v in json.loads(row["tags"]).items() if v is not None}
    return entry


def batches(ledger: pl.DataFrame, day: dt.date, batch_size: int = DEFAULT_BATCH_SIZE) -> list[Batch]:
    """The day's payloads: the ledger's rows of ``day`` in key order, ``batch_size`` runs per batch (none
    for a day without runs)."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be ≥ 1")
    rows = ledger.filter(pl.col("usage_date") == day).sort(KEY, nulls_last=True)
    version = calculation_version(rows)
    runs = [_run(row) for row in rows.iter_rows(named=True)]
    count = -(-len(runs) // batch_size)
    return [
        Batch(
            key=f"cost-assets/{day.isoformat()}/{version}/{index}",
            body={
                "calculation_date": day.isoformat(),
                "calculation_version": version,
                "batch_index": index,
                "batch_count": count,
                "runs": runs[index * batch_size : (index + 1) * batch_size],
            },
        )
        for index in range(count)
    ]


def deliver(
    url: str,
    token: str,
    day_batches: list[Batch],
    *,
    timeout_s: float = 30.0,
    retry: RetryPolicy | None = None,
) -> dict[str, float]:
    """POST each batch in order (see the module doc); the client's call and retry counts."""
    parts = urlsplit(url.strip())
    credentials = PatCredentials(token, hint=f"{TOKEN_VARIABLE} and COST_ASSETS_OBSERVABILITY_URL")
    with ApiClient(
        f"{parts.scheme}://{parts.netloc}",
        credentials,
        timeout_s=timeout_s,
        max_requests_per_second=None,
        retry=retry or observability_retry(),
        name="Observability Service",
        retry_statuses=RETRY_STATUSES,
    ) as client:
        for batch in day_batches:
            client.request("POST", url.strip(), json=batch.body, headers={"Idempotency-Key": batch.key})
        return client.stats()
