"""Grouping alertable series into incidents (costing/anomaly_incidents.py), on small cases written out by
hand: one spend change (job 42 spikes on its cluster c1) alerts as the job, its project and its user, and
is one incident whose impact is the job's, not the sum of the three layers."""

import datetime as dt
import hashlib

import polars as pl
from anomaly_builders import mart_row

from cost_assets.costing import anomaly_incidents
from cost_assets.costing.anomaly_incidents import SPECIFICITY
from cost_assets.vocabulary import ANOMALY_MONITORS

P = dt.date(2026, 12, 3)  # the partition
D = dt.date(2026, 12, 1)  # the scored day
C1 = [("resource", "cluster:c1", 200.0), ("sku_name", "JOBS_COMPUTE", 200.0)]


def incident_hash(anchor: str, first: dt.date) -> str:
    """The documented identity: SHA-256 of ``incident ␟ anchor's anomaly id ␟ its first day``, first 16
    hex digits."""
    return hashlib.sha256(f"incident\x1f{anchor}\x1f{first.isoformat()}".encode()).hexdigest()[:16]


def alert(monitor, value, actual, expected, contributors, *, opened_on=D, partition=P, anomaly_id=None):
    return mart_row(
        partition,
        D,
        monitor,
        value,
        actual=actual,
        expected=expected,
        anomaly_id=anomaly_id or f"{monitor}-{value}",
        opened_on=opened_on,
        status="open",
        alertable=True,
        state="high",
        contributors=contributors,
    )


def spike_rows(partition=P, job_actual=300.0) -> pl.DataFrame:
    """Job 42 spends $300 against $100 expected (+200) on cluster c1. Its project p ($500 vs $280: +220,
    job 42's +200 and +20 of other jobs) and its user ana ($350 vs $140: +210) alert too, each naming c1
    as their top resource. The project's episode opened the day before (it was already a little high).
    Unrelated the same day: team t (+70 on cluster c2), and tenant globex (+60) whose rows have no
    resource that moved (contributors: a user only). Team u is in band."""
    job_delta = job_actual - 100.0
    rows = [
        alert("job", "42", job_actual, 100.0, [("resource", "cluster:c1", job_delta), ("user", "ana", job_delta)]),
        alert("project", "p", 500.0, 280.0, [("job", "42", 200.0), *C1], opened_on=D - dt.timedelta(days=1)),
        alert("user", "ana", 350.0, 140.0, [("job", "42", 200.0), *C1]),
        alert("team", "t", 160.0, 90.0, [("resource", "cluster:c2", 70.0)]),
        alert("tenant", "globex", 160.0, 100.0, [("user", "bob", 60.0)]),
        {**mart_row(partition, D, "team", "u", actual=50.0, expected=50.0)},
    ]
    return pl.DataFrame([{**r, "usage_date": partition} for r in rows]).drop("incident_id")


def test_every_monitor_has_a_place_in_the_specificity_order():
    assert sorted(SPECIFICITY) == sorted(ANOMALY_MONITORS)


def test_a_job_spike_alerting_as_job_project_and_user_is_one_incident():
    out = anomaly_incidents.assign(spike_rows())
    ids = dict(out.select("monitor", "incident_id").rows())
    # Job, project and user share their top resource, cluster c1: one incident. Its anchor is the episode
    # of its most specific layer (the job's, "job-42", opened 12-01), not the project's earlier one (11-30).
    c1 = incident_hash("job-42", D)
    assert ids["job"] == ids["project"] == ids["user"] == c1
    # Team t names cluster c2: an incident of its own; tenant globex has no resource contributor: keyed by
    # its own series. Each is its own anchor. Team u is not alertable: no incident.
    teams = dict(out.filter(pl.col("monitor") == "team").select("value", "incident_id").rows())
    assert teams == {"t": incident_hash("team-t", D), "u": None}
    assert ids["tenant"] == incident_hash("tenant-globex", D)


def test_the_incident_reports_its_most_specific_layer_without_double_counting():
    (c1, c2, globex) = anomaly_incidents.summarize(anomaly_incidents.assign(spike_rows())).iter_rows(named=True)
    # Largest |impact| first: c1 (+200), c2 (+70), globex (+60). c1's figures are the job layer's alone:
    # actual $300, expected $100, impact +$200 — not 200 + 220 + 210 = 630 over the three layers.
    assert (c1["cause"], c1["layer"], c1["opened_on"]) == ("resource=cluster:c1", "job", D)
    assert (c1["actual_usd"], c1["expected_usd"], c1["impact_usd"]) == (300.0, 100.0, 200.0)
    # Members: the most specific layer first (job, user, project), each with its own impact.
    members = [(m["scope"], m["impact_usd"]) for m in c1["members"]]
    assert members == [("job = 42", 200.0), ("user = ana", 210.0), ("project = p", 220.0)]
    assert c1["anomaly_ids"] == ["job-42", "user-ana", "project-p"]
    assert '"resource"' in c1["top_contributors"] and c1["escalated"] is False
    assert (c2["cause"], c2["impact_usd"]) == ("resource=cluster:c2", 70.0)
    assert (globex["cause"], globex["layer"], globex["impact_usd"]) == ("tenant=globex", "tenant", 60.0)


def test_two_jobs_on_the_same_cluster_add_up_at_the_job_layer():
    # Jobs 42 (+200) and 43 (+50) both spike on cluster c1; their project p rises by +260 (+250 of theirs,
    # +10 of others). One incident; impact = 200 + 50 = 250 (the job layer: two values of one monitor,
    # disjoint money), actual = 300 + 80 = 380, expected = 100 + 30 = 130.
    rows = pl.DataFrame(
        [
            alert("job", "42", 300.0, 100.0, [("resource", "cluster:c1", 200.0)]),
            alert("job", "43", 80.0, 30.0, [("resource", "cluster:c1", 50.0)]),
            alert("project", "p", 540.0, 280.0, [("job", "42", 200.0), ("resource", "cluster:c1", 250.0)]),
        ]
    ).drop("incident_id")
    (incident,) = anomaly_incidents.summarize(anomaly_incidents.assign(rows)).iter_rows(named=True)
    assert (incident["actual_usd"], incident["expected_usd"], incident["impact_usd"]) == (380.0, 130.0, 250.0)
    assert len(incident["members"]) == 3


def test_the_incident_id_is_stable_across_re_scores_and_days():
    first = anomaly_incidents.assign(spike_rows())
    # The next partition re-scores the day with a correction (the job at $320): same incident id.
    again = anomaly_incidents.assign(spike_rows(partition=P + dt.timedelta(days=1), job_actual=320.0))
    assert set(first["incident_id"].drop_nulls()) == set(again["incident_id"].drop_nulls())
    # The job's next day: its episode still open since 12-01, on a new job cluster c9 (a job cluster is new
    # every run), with a tenant whose episode opens that day naming c9 too. The key changed (c9), the
    # anchor did not (the job's episode, the most specific layer): the same incident continues.
    nxt = {"scored_date": D + dt.timedelta(days=1)}
    later = pl.DataFrame(
        [
            {**alert("job", "42", 280.0, 100.0, [("resource", "cluster:c9", 180.0)]), **nxt},
            {
                **alert("tenant", "o", 300.0, 110.0, [("resource", "cluster:c9", 180.0)], opened_on=nxt["scored_date"]),
                **nxt,
            },
        ]
    ).drop("incident_id")
    assert anomaly_incidents.assign(later)["incident_id"].to_list() == [incident_hash("job-42", D)] * 2


def test_an_untagged_value_is_the_least_specific_layer():
    # A serving spike on endpoint e: the job series "(untagged)" (everything that is not a job) rises +177,
    # tenant globex +174, both naming endpoint e. "(untagged)" names nothing, so the incident is counted at
    # the tenant layer (+174), though job ranks before tenant, and the tenant's episode is its anchor.
    e = [("resource", "endpoint:e", 179.0)]
    rows = pl.DataFrame([alert("job", "(untagged)", 226.0, 49.0, e), alert("tenant", "globex", 186.0, 12.0, e)]).drop(
        "incident_id"
    )
    (incident,) = anomaly_incidents.summarize(anomaly_incidents.assign(rows)).iter_rows(named=True)
    assert (incident["layer"], incident["impact_usd"]) == ("tenant", 174.0)
    assert incident["incident_id"] == incident_hash("tenant-globex", D)
