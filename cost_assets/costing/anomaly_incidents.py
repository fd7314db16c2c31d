"""Incidents: the alertable series of one spend change, grouped so the channel hears of it once.

One spend change moves every layer that holds its dollars: a job that runs away is out of band as itself,
its project, team, tenant, user, workspace × SKU family and perhaps the account — each a series with an
anomaly (episode) of its own. Cost-anomaly tools group such alerts by root cause; here the root cause an
alert names is its **top resource contributor** (``top_contributors``' ``resource`` entry: the cluster,
endpoint, warehouse … whose $ moved most in the impact's direction). Why the resource and not the first
contributor of any kind: a series never lists its own dimension (the job series has no ``job``
contributor, its project series does), while every layer's money runs on resources, and a resource is the
most specific thing that spends — so the job's, its project's and its user's alerts name the same cluster.
**Alertable series on the same scored day with the same key are one incident**; an alert without a
resource contributor is an incident of its own, keyed by its series.

**Figures without double counting.** The layers nest (a job's dollars are also its user's, project's and
the account's), so an incident's actual, expected and impact are those of its **most specific layer**
present (:data:`SPECIFICITY`; an ``(untagged)`` value after all tagged ones): the sums over its members
of that one monitor — the values of one monitor split the money, so they add.

**Identity** follows the incident's *anchor*: the member episode of its most specific layer that opened
first (ties: the smaller anomaly id) — the root cause's own series, e.g. the job's episode. Id =
hash("incident", anchor's anomaly id, anchor's first day) (:func:`cost_assets.costing.anomalies.anomaly_id`,
whose monitor names never collide with "incident"). The anchor's episode is carried across partitions
under its id, so re-scoring a day keeps the incident's id, and so does the incident's next day even when
the shared key changes: a job cluster is a new cluster every run, so a runaway job names a new resource
each day, while its own episode (and with it the incident) goes on. Pure polars.
"""

import polars as pl

from cost_assets.costing.anomalies import anomaly_id
from cost_assets.vocabulary import UNTAGGED

# Most specific first: a job's (or an endpoint user's) dollars are all its user's; a user's usually lie in
# one project, a project in a team; workspace × SKU family and the account hold everyone's.
SPECIFICITY = ["endpoint_user", "job", "user", "project", "cost_center", "tenant", "team", "workspace_sku", "account"]
KEY_DIMENSION = "resource"
INCIDENT_MONITOR = "incident"  # the "monitor" hashed into an incident id

_CONTRIBUTORS = pl.List(pl.Struct({"dimension": pl.String, "value": pl.String}))


def key() -> pl.Expr:
    """``resource=<id>`` of the row's top resource contributor, else ``<monitor>=<value>`` (its series)."""
    resource = (
        pl.col("top_contributors")
        .str.json_decode(_CONTRIBUTORS)
        .list.eval(pl.element().filter(pl.element().struct.field("dimension") == KEY_DIMENSION))
        .list.first()
        .struct.field("value")
    )
    own = pl.concat_str(pl.col("monitor"), pl.lit("="), pl.col("value"))
    return pl.coalesce(pl.concat_str(pl.lit(f"{KEY_DIMENSION}="), resource), own)


def _layer() -> pl.Expr:
    """The row's place in :data:`SPECIFICITY`; an ``(untagged)`` value comes after every tagged one: it is
    the rest of its dimension's money (``job = (untagged)`` is everything but jobs), which names nothing."""
    rank = pl.col("monitor").replace_strict({m: i for i, m in enumerate(SPECIFICITY)}, return_dtype=pl.Int32)
    return rank + pl.when(pl.col("value") == UNTAGGED).then(len(SPECIFICITY)).otherwise(0)


def _members(rows: pl.DataFrame) -> pl.DataFrame:
    """The alertable rows with ``_key``, ``_layer``, ``_top`` (the row is of its incident's most specific
    layer) and the incident's anchor (``_anchor``, ``_first``: its anomaly id and first day), grouped per
    (partition, scored day, key)."""
    group = ["usage_date", "scored_date", "_key"]
    top = pl.col("_top")
    order = [pl.col("opened_on").filter(top), pl.col("anomaly_id").filter(top)]
    return (
        rows.filter(pl.col("alertable"))
        .with_columns(key().alias("_key"), _layer().alias("_layer"))
        .with_columns((pl.col("_layer") == pl.col("_layer").min().over(group)).alias("_top"))
        .with_columns(
            pl.col("anomaly_id").filter(top).sort_by(order).first().over(group).alias("_anchor"),
            pl.col("opened_on").filter(top).sort_by(order).first().over(group).alias("_first"),
        )
    )


def assign(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` (mart rows: ``usage_date, scored_date, monitor, value, alertable, opened_on,
    top_contributors``) with ``incident_id``: the incident of each alertable row (module doc), null on the
    other rows."""
    members = _members(rows)
    ids = members.select("_anchor", "_first").unique()
    ids = ids.with_columns(
        pl.Series("incident_id", [anomaly_id(INCIDENT_MONITOR, a, d) for a, d in ids.iter_rows()], dtype=pl.String)
    )
    tagged = members.join(ids, on=["_anchor", "_first"], how="left").select(
        "usage_date", "scored_date", "monitor", "value", "incident_id"
    )
    return rows.drop("incident_id", strict=False).join(
        tagged, on=["usage_date", "scored_date", "monitor", "value"], how="left"
    )


def summarize(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per incident of ``rows`` (alertable mart rows of one scored day per incident, e.g. its
    newest, with ``incident_id`` and ``scope``, ``status``, ``anomaly_id``, the $ columns): ``incident_id,
    scored_date, cause`` (the shared key), ``opened_on`` (its first day), ``layer`` (the most specific
    monitor among its members), ``actual_usd, expected_usd, impact_usd`` (summed over that layer's members),
    ``escalated`` (a member escalated), ``members`` (monitor, scope and impact of each, most specific layer first,
    largest impact first), ``anomaly_ids`` and ``top_contributors`` (those of the largest member of the most
    specific layer). Largest |impact| first."""
    members = _members(rows).sort("_layer", pl.col("impact_usd").abs(), "scope", descending=[False, True, False])
    top = pl.col("_top")
    return (
        members.group_by("incident_id", maintain_order=True)
        .agg(
            pl.col("scored_date").first(),
            pl.col("_key").first().alias("cause"),
            pl.col("_first").first().alias("opened_on"),
            pl.col("monitor").first().alias("layer"),
            pl.col("actual_usd").filter(top).sum(),
            pl.col("expected_usd").filter(top).sum(),
            pl.col("impact_usd").filter(top).sum(),
            (pl.col("status") == "escalated").any().alias("escalated"),
            pl.struct("monitor", "scope", "impact_usd").alias("members"),
            pl.col("anomaly_id").unique(maintain_order=True).alias("anomaly_ids"),
            pl.col("top_contributors").first(),
        )
        .sort(pl.col("impact_usd").abs(), "incident_id", descending=[True, False])
    )
