"""Which storage the ledger lives in (``COST_ASSETS_STORAGE``): the resources writing and reading it, and the
writer pool only a DuckDB file needs.

* ``duckdb`` (default): one embedded file, a single writer: every asset writing it runs in the
  ``duckdb_writer`` pool (limit 1 in the instance's ``concurrency`` settings).
* ``delta:<uri>``: Delta Lake tables (:mod:`cost_assets.resources.delta`), a local folder or S3-compatible
  storage, which take writers of different days at once: the assets are built without that pool, so two
  runs (two pods on Kubernetes) write their days side by side.
"""

from collections.abc import Sequence

import dagster as dg

from cost_assets import delta
from cost_assets.resources import warehouse
from cost_assets.resources.delta import CostDeltaIOManager

# The pool every asset that writes (or reads while others write) the DuckDB file declares.
DUCKDB_WRITER_POOL = "duckdb_writer"


def storage_resources(location: str, shrink_threshold: float = 0.5) -> dict[str, dg.ConfigurableResource]:
    """The IO manager writing the ledger at ``location`` (a DuckDB file, or ``delta:<uri>``) and the ledger
    resource reading it (the raw assets compare a new answer with what is stored before replacing a day)."""
    if not delta.is_delta(location):
        return warehouse.storage_resources(location, shrink_threshold)
    return {
        "io_manager": CostDeltaIOManager(root=delta.root_of(location)),
        "ledger": warehouse.Ledger(database=location, shrink_threshold=shrink_threshold),
    }


def _without_pool(op: dg.OpDefinition) -> dg.OpDefinition:
    """``op`` as it is, but in no pool (``OpDefinition.with_replaced_properties`` keeps the pool)."""
    return dg.OpDefinition.dagster_internal_init(
        name=op.name,
        ins={d.name: dg.In.from_definition(d) for d in op.input_defs},
        outs={d.name: dg.Out.from_definition(d) for d in op.output_defs},
        compute_fn=op.compute_fn,
        config_schema=op.config_schema,
        description=op.description,
        tags=op.tags,
        required_resource_keys=op.required_resource_keys,
        code_version=op._version,  # what with_replaced_properties passes (the public `version` is deprecated)
        retry_policy=op.retry_policy,
        version=None,
        pool=None,
    )


def storage_assets(assets: Sequence[dg.AssetsDefinition], location: str) -> list[dg.AssetsDefinition]:
    """``assets`` for the ledger at ``location``: as they are for DuckDB; for Delta, those in the DuckDB
    writer pool are taken out of it (nothing else changes: keys, checks, partitions, policies)."""
    if not delta.is_delta(location):
        return list(assets)
    freed = []
    for asset in assets:
        op = asset.node_def
        if isinstance(op, dg.OpDefinition) and op.pool == DUCKDB_WRITER_POOL:
            asset = dg.AssetsDefinition.dagster_internal_init(
                **{**asset.get_attributes_dict(), "node_def": _without_pool(op)}
            )
        freed.append(asset)
    return freed
