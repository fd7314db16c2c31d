"""late_billing_sensor on a real ephemeral instance: a correction re-materializes exactly its day."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from cost_assets.definitions import build_defs
from cost_assets.ingest import parse
from cost_assets.resources.billing import BillingSource
from cost_assets.resources.warehouse import read_table
from cost_assets.sensors import late_billing_sensor
from tests.conftest import QUIET, sim_environ

TODAY = dt.datetime.now(dt.UTC).date()
DAY, OTHER = TODAY - dt.timedelta(days=3), TODAY - dt.timedelta(days=4)  # inside the sensor's look-back


class JsonLinesBillingSource(BillingSource):
    """system.billing.usage rows from a JSON-lines file (the test edits the file between ticks)."""

    path: str

    def usage(self, days: list[dt.date], stats: dict | None = None) -> pl.DataFrame:
        rows = [json.loads(line) for line in Path(self.path).read_text().splitlines() if line]
        return parse.system_usage_frame(rows, "system_tables").filter(pl.col("usage_date").is_in(days))


def _row(record_id: str, day: dt.date, record_type: str, quantity: float, ingested: dt.date) -> dict:
    hour = f"{day.isoformat()}T10:00:00.000Z"
    return {
        "record_id": record_id,
        "account_id": "a",
        "workspace_id": "1234567890123456",
        "cloud": "AZURE",
        "sku_name": "PREMIUM_ALL_PURPOSE_COMPUTE",
        "usage_start_time": hour,
        "usage_end_time": f"{day.isoformat()}T11:00:00.000Z",
        "usage_unit": "DBU",
        "usage_quantity": f"{quantity:.18f}",
        "usage_metadata": {"cluster_id": "0101-000000-shared01"},
        "record_type": record_type,
        "ingestion_date": ingested.isoformat(),
    }


@pytest.fixture
def setup(tmp_path):
    bill = tmp_path / "usage.jsonl"
    database = tmp_path / "w.duckdb"
    defs = build_defs(sim_environ(database))
    defs = dg.Definitions(
        assets=defs.assets,
        jobs=defs.jobs,
        sensors=defs.sensors,
        resources={**defs.resources, "billing": JsonLinesBillingSource(path=str(bill))},
    )
    return defs, bill, database


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance):
    context = dg.build_sensor_context(
        instance=instance, resources={"billing": defs.resources["billing"]}, definitions=defs
    )
    return late_billing_sensor.evaluate_tick(context)


def _materialize(defs: dg.Definitions, instance: dg.DagsterInstance, day: dt.date, selection) -> None:
    result = dg.materialize(
        defs.assets,
        selection=selection,
        partition_key=day.isoformat(),
        instance=instance,
        resources=defs.resources,
        run_config=QUIET,
    )
    assert result.success


def test_a_correction_rematerializes_exactly_its_day(setup):
    defs, bill, database = setup
    original = [
        _row("o1", DAY, "ORIGINAL", 10.0, DAY + dt.timedelta(days=1)),
        _row("o2", OTHER, "ORIGINAL", 4.0, OTHER + dt.timedelta(days=1)),
    ]
    _write(bill, original)
    instance = dg.DagsterInstance.ephemeral()
    downstream = dg.AssetSelection.assets(["raw", "billing_usage"]).downstream()
    for day in (DAY, OTHER):
        _materialize(defs, instance, day, dg.AssetSelection.all())

    # Nothing changed since: no run requested.
    assert not _tick(defs, instance).run_requests

    # Days later the 10 DBU hour is corrected to 12: RETRACTION −10 and RESTATEMENT 12, ingested 3 days on.
    later = DAY + dt.timedelta(days=3)
    _write(bill, [*original, _row("r1", DAY, "RETRACTION", -10.0, later), _row("s1", DAY, "RESTATEMENT", 12.0, later)])
    requests = _tick(defs, instance).run_requests
    assert [r.partition_key for r in requests] == [DAY.isoformat()]  # exactly the affected day
    assert requests[0].run_key.startswith(f"late-billing:{DAY.isoformat()}:")
    assert requests[0].run_key.endswith(":12.0")  # the day's new net quantity: 10 − 10 + 12

    _materialize(defs, instance, DAY, downstream)
    # The simulated workspace has clusters of its own that day (estimated, unbilled here): keep the bill's one.
    recon = read_table(str(database), "mart.reconciliation").filter(
        pl.col("usage_date") == DAY, pl.col("resource_id") == "0101-000000-shared01"
    )
    assert recon["billed_dbus"].to_list() == [pytest.approx(10.0 - 10.0 + 12.0)]
    assert recon["has_correction"].to_list() == [True]
    # The cluster is unknown to the workspace, so its hour has no estimate (that reason outranks correction).
    assert recon["reason"].to_list() == ["no_estimate"]
    raw = read_table(str(database), "raw.billing_usage").filter(pl.col("usage_date") == DAY)
    assert sorted(raw["record_type"].to_list()) == ["ORIGINAL", "RESTATEMENT", "RETRACTION"]
    # The other day kept its single materialization; after the re-run nothing is pending.
    assert not _tick(defs, instance).run_requests


def test_records_ingested_later_on_the_same_date_are_noticed(setup):
    """A correction ingested on the date the day was last read still changes the day's fingerprint."""
    defs, bill, _ = setup
    ingested = DAY + dt.timedelta(days=1)
    original = [_row("o1", DAY, "ORIGINAL", 10.0, ingested)]
    _write(bill, original)
    instance = dg.DagsterInstance.ephemeral()
    _materialize(defs, instance, DAY, dg.AssetSelection.all())
    _write(
        bill,
        [*original, _row("r1", DAY, "RETRACTION", -10.0, ingested), _row("s1", DAY, "RESTATEMENT", 12.0, ingested)],
    )
    assert [r.partition_key for r in _tick(defs, instance).run_requests] == [DAY.isoformat()]
