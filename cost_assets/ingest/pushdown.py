"""The push-down of ``system.billing.usage``: what the warehouse's reduced rows mean to the pipeline.

``queries/billing_usage_pushdown.sql`` makes the SQL warehouse do the heavy work: it reads the full
``system.billing.usage`` rows (every struct and map), keeps only the columns ``raw/billing_usage``
holds, sums records that agree on all of them (usage date × hour × resource × SKU × record type × tags ×
identity) and prices each row with the ``system.billing.list_prices`` join. Only those aggregates
travel, as typed Arrow chunks (``EXTERNAL_LINKS`` + ``ARROW_STREAM``; see :mod:`cost_assets.ingest.sql`).

The reduction keeps every column downstream reads — ``record_type`` (corrections net out by the plain
sum, docs/reconciliation), ``ingestion_date`` (closure and the late-bill sensor), ``custom_tags`` and
the resource ids (attribution) — so the contract of ``raw/billing_usage`` is unchanged, and the rows go
through the same parser as raw rows (:func:`usage_rows` rebuilds the struct shape it reads). Where every
record is alone in its group (as in ``system.billing.usage``, whose records are already per hour ×
resource × SKU) the frame is identical to fetching raw rows; records that differ only in columns the
project never reads (e.g. ``usage_metadata.notebook_id``, ``usage_type``) become one row whose id is a
digest of theirs.
"""

from collections.abc import Iterator

import polars as pl

from cost_assets.vocabulary import IDENTITY_FIELDS

# The flattened usage_metadata / product_features / identity_metadata fields the statement returns.
USAGE_METADATA = (
    "cluster_id",
    "warehouse_id",
    "endpoint_name",
    "instance_pool_id",
    "node_type",
    "job_id",
    "job_run_id",
)
PRODUCT_FEATURES = ("is_photon", "is_serverless")


def usage_rows(frame: pl.DataFrame) -> Iterator[dict]:
    """The reduced rows in the shape of ``system.billing.usage`` rows (structs as dicts), for
    :func:`cost_assets.ingest.parse.system_usage_frame`, so both fetches share one parser."""
    nested = {*USAGE_METADATA, *PRODUCT_FEATURES, *IDENTITY_FIELDS, "list_cost_usd"}
    for row in frame.iter_rows(named=True):
        yield {
            **{k: v for k, v in row.items() if k not in nested},
            "usage_metadata": {k: row[k] for k in USAGE_METADATA},
            "product_features": {k: row[k] for k in PRODUCT_FEATURES},
            "identity_metadata": {k: row[k] for k in IDENTITY_FIELDS},
        }


def priced_totals(frame: pl.DataFrame) -> dict[str, float]:
    """What the warehouse's price join found, for the raw asset's metadata: the list-price cost of the
    rows it could price and how many it could not (flagged, never counted as $0)."""
    cost = frame.get_column("list_cost_usd").cast(pl.Float64) if frame.height else pl.Series([], dtype=pl.Float64)
    return {
        "pushdown/rows": float(frame.height),
        "pushdown/list_cost_usd": round(float(cost.sum()), 6),
        "pushdown/unpriced_rows": float(cost.null_count()),
    }
