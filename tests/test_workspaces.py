"""Many workspaces: the workspaces file, the simulated account, attribution across workspaces (and the
``workspace_not_configured`` bucket), and one failing workspace that loses nobody's rows."""

import datetime as dt
import threading
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from test_attribute import attribute
from test_reconcile import PRICE, estimate, one, usage

from cost_assets.assets import raw
from cost_assets.config import ConfigurationError
from cost_assets.definitions import build_defs
from cost_assets.ingest.account import Answer
from cost_assets.ingest.fetch import SourceUnavailable, WorkspaceDay, fetch_day
from cost_assets.ingest.http import AuthError
from cost_assets.mock_server import DEFAULT_TOKEN, MockOptions
from cost_assets.mock_server.account import MockAccount
from cost_assets.resources.databricks import DatabricksWorkspace, LiveAccount
from cost_assets.resources.simulated import SimulatedBillingSource, SimulatedWorkspace, SimulatedWorld
from cost_assets.resources.warehouse import read_table, storage_resources
from cost_assets.simulation.api import SimulatedApi
from cost_assets.simulation.world import WorldConfig, account_member
from cost_assets.workspaces import WorkspacesError, load, parse

GOOD = """\
workspaces:
  - name: etl
    host: https://adb-1111.1.azuredatabricks.net
    workspace_id: 1111
    cloud: azure
    region: eastus
    token_env: TOKEN_ETL
  - name: ml
    host: https://dbc-ml.cloud.databricks.com
    workspace_id: "2222"
    cloud: AWS
    client_id_env: ML_CLIENT_ID
    client_secret_env: ML_CLIENT_SECRET
    rate_limit: 5
"""
ENV = {"TOKEN_ETL": "dapi-etl-secret", "ML_CLIENT_ID": "ml-id", "ML_CLIENT_SECRET": "ml-secret-value"}


# --- the workspaces file ---------------------------------------------------------------------------------


def test_a_good_file_gives_each_workspace_with_its_credential_variables():
    etl, ml = parse(GOOD, "ws.yaml", ENV)
    assert (etl.name, etl.host, etl.workspace_id, etl.cloud, etl.region) == (
        "etl",
        "https://adb-1111.1.azuredatabricks.net",
        "1111",
        "AZURE",
        "eastus",
    )
    assert etl.credential_variables == ["TOKEN_ETL"]
    assert (ml.cloud, ml.rate_limit, ml.credential_variables) == ("AWS", 5.0, ["ML_CLIENT_ID", "ML_CLIENT_SECRET"])


def test_the_example_file_is_valid():
    names = [
        "DATABRICKS_TOKEN_ETL_PROD",
        "ML_RESEARCH_CLIENT_ID",
        "ML_RESEARCH_CLIENT_SECRET",
        "DATABRICKS_TOKEN_ANALYTICS",
    ]
    example = Path(__file__).parent.parent / "examples" / "workspaces.yaml"
    entries = load(example, dict.fromkeys(names, "set"))
    assert [(e.name, e.cloud, e.credential_variables) for e in entries] == [
        ("etl-prod", "AZURE", names[:1]),
        ("ml-research", "AZURE", names[1:3]),
        ("analytics-aws", "AWS", names[3:]),
    ]


def test_every_problem_names_the_file_the_entry_and_the_field():
    text = """\
workspaces:
  - name: etl
    host: http://example.com
    workspace_id: adb-1
    cloud: moon
    token_env: TOKEN_ETL
  - name: ml
    host: https://ml.example.com
    workspace_id: 2
    cloud: aws
    token_env: TOKEN_ML
    client_id_env: ML_CLIENT_ID
  - name: etl
    host: https://b.example.com
    workspace_id: 3
    cloud: gcp
  - host: https://c.example.com
    workspace_id: 4
    cloud: gcp
    token_env: T4
    colour: red
"""
    with pytest.raises(WorkspacesError) as e:
        parse(text, "ws.yaml", ENV)
    assert e.value.problems == [
        "ws.yaml: workspace 'etl' (#1): host: 'http://example.com' uses plain http; only https:// is allowed "
        "(http only for 127.0.0.1/localhost)",
        "ws.yaml: workspace 'etl' (#1): workspace_id: must be the numeric workspace id, got 'adb-1'",
        "ws.yaml: workspace 'etl' (#1): cloud: must be 'AZURE', 'AWS' or 'GCP'",
        "ws.yaml: workspace 'ml' (#2): entry: give token_env, or client_id_env and client_secret_env, not both",
        # Unset variables are named in the same pass, even on entries with other problems (TOKEN_ML, T4 are
        # not in ENV; TOKEN_ETL and ML_CLIENT_ID are).
        "ws.yaml: workspace 'ml' (#2): token_env: the environment variable TOKEN_ML is not set",
        "ws.yaml: workspace 'etl' (#3): entry: credentials: give token_env, or client_id_env and client_secret_env",
        "ws.yaml: workspace #4: name: Field required",
        "ws.yaml: workspace #4: colour: Extra inputs are not permitted",
        "ws.yaml: workspace #4: token_env: the environment variable T4 is not set",
    ]


def test_a_credential_variable_that_is_not_set_is_named_and_no_value_is_shown():
    env = {"TOKEN_ETL": "dapi-etl-secret", "ML_CLIENT_ID": "ml-id"}  # ML_CLIENT_SECRET is not set
    with pytest.raises(WorkspacesError) as e:
        parse(GOOD.replace('workspace_id: "2222"', "workspace_id: 1111"), "ws.yaml", env)
    assert e.value.problems == [
        "ws.yaml: workspace 'ml' (#2): workspace_id: 'etl' has the same id",
        "ws.yaml: workspace 'ml' (#2): client_secret_env: the environment variable ML_CLIENT_SECRET is not set",
    ]
    assert "dapi-etl-secret" not in str(e.value) and "ml-id" not in str(e.value)


def test_a_missing_or_malformed_file_is_named(tmp_path: Path):
    with pytest.raises(WorkspacesError, match=r"nope.yaml: cannot read the workspaces file"):
        load(tmp_path / "nope.yaml", ENV)
    with pytest.raises(WorkspacesError) as e:
        parse("workspaces: []\n", "ws.yaml", ENV)
    assert e.value.problems == [
        "ws.yaml: the file: workspaces: List should have at least 1 item after validation, not 0"
    ]


def test_the_definitions_read_the_file_and_keep_every_secret_out_of_the_config(tmp_path: Path):
    path = tmp_path / "workspaces.yaml"
    path.write_text(GOOD)
    environ = {
        **ENV,
        "COST_ASSETS_WORKSPACES": str(path),
        "COST_ASSETS_BILLING_SOURCE": "csv:bill/*.csv",
        "COST_ASSETS_DUCKDB": str(tmp_path / "x.duckdb"),
        "COST_ASSETS_WORKSPACE_CONCURRENCY": "3",
    }
    defs = build_defs(environ)
    account = defs.resources["workspace"]
    assert isinstance(account, LiveAccount)
    assert account.max_concurrent == 3 and account.configured_workspace_ids() == ["1111", "2222"]
    etl, ml = account.workspaces
    assert (etl.connection.max_requests_per_second, ml.connection.max_requests_per_second) == (20.0, 5.0)
    assert isinstance(etl.connection.token, dg.EnvVar) and etl.connection.token.env_var_name == "TOKEN_ETL"
    shown = repr(account) + str(account.model_dump())
    assert not any(secret in shown for secret in ENV.values())

    # A bad file stops the definitions with its lines; no bill source for live workspaces is an error too.
    with pytest.raises(ConfigurationError) as e:
        build_defs({**environ, "TOKEN_ETL": ""})
    assert e.value.problems == [
        f"{path}: workspace 'etl' (#1): token_env: the environment variable TOKEN_ETL is not set"
    ]
    with pytest.raises(ConfigurationError, match="COST_ASSETS_WORKSPACES is set, so the bill must come from"):
        build_defs({k: v for k, v in environ.items() if k != "COST_ASSETS_BILLING_SOURCE"})
    with pytest.raises(ConfigurationError, match="COST_ASSETS_SIM_WORKSPACES is for the simulated account"):
        build_defs({**environ, "COST_ASSETS_SIM_WORKSPACES": "3"})


# --- the simulated account -------------------------------------------------------------------------------

DAY = dt.date(2026, 3, 4)


def test_simulated_workspaces_share_no_id_and_the_account_bill_names_one_more():
    account = SimulatedWorkspace(world=SimulatedWorld(scale="tiny"), workspaces=3)
    got = [m.fetch([DAY]) for m in account.members()]
    ids = [g.workspace_id for g in got]
    assert ids == ["1234567890123456", "1234567890123457", "1234567890123458"] == account.configured_workspace_ids()
    assert got[0].job_runs.equals(SimulatedWorkspace(world=SimulatedWorld(scale="tiny")).fetch([DAY]).job_runs)
    for column, frame in [("run_id", "job_runs"), ("job_id", "jobs"), ("cluster_id", "clusters")]:
        sets = [set(getattr(g, frame)[column].to_list()) for g in got]
        assert all(sets), column
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2]), column
    bill = SimulatedBillingSource(world=SimulatedWorld(scale="tiny"), workspaces=3, as_of="2026-03-20").usage([DAY])
    assert sorted(bill["workspace_id"].unique()) == [*ids, "1234567890123459"]  # + the unconfigured one
    single = SimulatedBillingSource(world=SimulatedWorld(scale="tiny"), as_of="2026-03-20").usage([DAY])
    assert single.equals(bill.filter(pl.col("workspace_id") == ids[0]))


# --- attribution across workspaces ---------------------------------------------------------------------


def test_two_workspaces_are_attributed_apart_and_an_unlisted_one_is_workspace_not_configured():
    """Workspace A: cluster c1 billed 10 DBU, estimated 6:2 for runs 1 and 2 → 7.5 / 2.5 DBU.
    Workspace B: cluster c1 too (ids are per workspace), billed 4 DBU, all idle → 4 DBU idle.
    Workspace C (not in the file): billed 3 DBU on a job run (job_run_id 99) → unattributed,
    workspace_not_configured, not the run: nothing of C is fetched, so no run of C can be known."""
    bill = pl.concat(
        [
            usage({"workspace_id": "A", "cluster_id": "c1", "usage_quantity": 10.0}),
            usage({"workspace_id": "B", "cluster_id": "c1", "usage_quantity": 4.0}),
            usage({"workspace_id": "C", "cluster_id": "c9", "usage_quantity": 3.0, "job_run_id": 99, "job_id": 9}),
        ]
    )
    est = estimate(
        {"workspace_id": "A", "cluster_id": "c1", "task_run_id": 1, "dbus": 6.0},
        {"workspace_id": "A", "cluster_id": "c1", "task_run_id": 2, "dbus": 2.0},
        {"workspace_id": "B", "cluster_id": "c1", "consumer": "idle", "dbus": 4.0},
    )
    _, out = attribute(bill, est, configured=["A", "B"])
    assert one(out, workspace_id="A", task_run_id=1)["billed_dbus"] == pytest.approx(10.0 * 6 / 8)  # 7.5
    assert one(out, workspace_id="A", task_run_id=2)["billed_dbus"] == pytest.approx(10.0 * 2 / 8)  # 2.5
    idle = one(out, workspace_id="B")
    assert (idle["consumer"], idle["billed_dbus"]) == ("idle", 4.0)
    foreign = one(out, workspace_id="C")
    assert (foreign["consumer"], foreign["reason"], foreign["run_id"], foreign["job_id"]) == (
        "unattributed",
        "workspace_not_configured",
        None,
        None,
    )
    assert foreign["billed_cost_usd"] == pytest.approx(3.0 * PRICE)  # 1.50 $
    # Conserved: 10 + 4 + 3 = 17 DBU billed, 17 DBU handed out.
    assert out["billed_dbus"].sum() == pytest.approx(17.0)

    # One workspace (configured None): C's job run owns its row, as always.
    _, single = attribute(bill, est)
    assert (one(single, workspace_id="C")["consumer"], one(single, workspace_id="C")["run_id"]) == ("run", 99)


# --- one failing workspace -------------------------------------------------------------------------------


class BrokenWorkspace(SimulatedWorkspace):
    """A workspace whose credentials are refused (a failure another try cannot fix: no step retry)."""

    def fetch(self, days: list[dt.date]) -> WorkspaceDay:
        raise AuthError(
            "401 Unauthorized: check TOKEN_ML", method="GET", endpoint="/api/2.2/jobs/runs/list", status=401
        )


class AccountWithOneDown(SimulatedWorkspace):
    """The simulated account, with workspace ``down`` broken."""

    down: str = ""

    def members(self) -> list[DatabricksWorkspace]:
        return [BrokenWorkspace(world=m.world, name=m.name) if m.name == self.down else m for m in super().members()]


def _materialize(db: Path, workspace: DatabricksWorkspace) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [raw.workspace_tables],
        resources={"workspace": workspace, **storage_resources(str(db))},
        partition_key=DAY.isoformat(),
        raise_on_error=False,
    )


def _by_workspace(db: Path, table: str) -> dict[str, int]:
    return dict(read_table(str(db), table).group_by("workspace_id").len().rows())


@pytest.mark.e2e
def test_a_failing_workspace_keeps_its_stored_rows_and_the_others_day_is_written(tmp_path: Path):
    db = tmp_path / "x.duckdb"
    world = SimulatedWorld(scale="tiny")
    assert _materialize(db, SimulatedWorkspace(world=world, workspaces=3)).success
    before = {t: _by_workspace(db, t) for t in ("raw.job_runs", "raw.clusters", "raw.cluster_events", "raw.jobs")}
    runs_before = read_table(str(db), "raw.job_runs")
    # Workspace 1 of 3 now fails; 0 and 2 answer as before (their rows replaced by equal rows).
    result = _materialize(db, AccountWithOneDown(world=world, workspaces=3, down="simulated-1"))
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "1 workspace(s) could not be fetched; their stored rows were kept:" in message
    assert "workspace simulated-1: AuthError: 401 Unauthorized: check TOKEN_ML" in message
    # The stored rows of every workspace are as before (the same world), none duplicated, none lost.
    assert {t: _by_workspace(db, t) for t in before} == before
    assert (
        read_table(str(db), "raw.job_runs")
        .sort("workspace_id", "run_id", "task_run_id")
        .equals(runs_before.sort("workspace_id", "run_id", "task_run_id"))
    )
    # The written outputs' metadata says which workspace failed.
    [runs] = [m for m in result.asset_materializations_for_node("workspace_tables") if m.asset_key == raw.JOB_RUNS]
    assert runs.metadata["workspaces_failed"].value == 1
    assert runs.metadata["workspace/simulated-1/failed"].value == 1
    assert runs.metadata["workspace/simulated-0/failed"].value == 0
    assert (
        runs.metadata["workspace/simulated-2/runs"].value
        == runs_before.filter(pl.col("workspace_id") == "1234567890123458")["run_id"].n_unique()
    )


@pytest.mark.e2e
def test_a_workspace_answering_fewer_runs_keeps_its_day_while_the_others_are_replaced(tmp_path: Path):
    """The guard per workspace: workspace 1 answers with no runs (past retention) for a stored day; its
    stored rows stay, workspace 0 and 2 are written, and the step fails naming workspace 1 only."""
    db = tmp_path / "x.duckdb"
    world = SimulatedWorld(scale="tiny")
    assert _materialize(db, SimulatedWorkspace(world=world, workspaces=3)).success
    before = _by_workspace(db, "raw.job_runs")

    class Forgetful(SimulatedWorkspace):
        def fetch(self, days: list[dt.date]) -> WorkspaceDay:
            got = super().fetch(days)
            got.job_runs = got.job_runs.clear()
            return got

    class Account(SimulatedWorkspace):
        def members(self) -> list[DatabricksWorkspace]:
            return [Forgetful(world=m.world, name=m.name) if m.name == "simulated-1" else m for m in super().members()]

    result = _materialize(db, Account(world=world, workspaces=3))
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "the Jobs and Clusters APIs of workspace simulated-1 answered with less than is stored" in message
    assert "simulated-0" not in message and "simulated-2" not in message
    assert _by_workspace(db, "raw.job_runs") == before

    # Two workspaces forget: one failure names both (the guard's messages, one after the other).
    class TwoForget(SimulatedWorkspace):
        def members(self) -> list[DatabricksWorkspace]:
            return [Forgetful(world=m.world, name=m.name) if m.name != "simulated-1" else m for m in super().members()]

    result = _materialize(db, TwoForget(world=world, workspaces=3))
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "could not be fetched" not in message
    for name in ("simulated-0", "simulated-2"):
        assert f"the Jobs and Clusters APIs of workspace {name} answered with less than is stored" in message
    assert _by_workspace(db, "raw.job_runs") == before


def test_a_failure_outlasting_the_client_retries_is_retried_a_refusal_is_not():
    """The step's retry policy fetches every workspace again (writes are idempotent per workspace)."""
    answer = Answer(None, "etl", None, ConnectionError("connection reset by peer"), 1.0)
    refused = Answer(None, "ml", None, AuthError("401", method="GET", endpoint="/x", status=401), 1.0)
    assert raw._workspaces_failure([answer], []).allow_retries
    assert not raw._workspaces_failure([answer, refused][1:], []).allow_retries
    assert raw._workspaces_failure([answer, refused], []).allow_retries  # one of them may pass next time


# --- the mock account over HTTP ---------------------------------------------------------------------------

MOCK_CFG = WorldConfig(seed=5, scale="tiny", start=dt.date(2026, 1, 1), days=3)
MOCK_DAY = dt.date(2026, 1, 2)


@pytest.mark.e2e
def test_the_mock_account_serves_three_workspaces_that_the_live_client_fetches_concurrently(tmp_path, monkeypatch):
    """Three mock workspaces (one server each on 127.0.0.1), the workspaces file the mock prints, the live
    client over HTTP: each workspace's tables are what the simulation says for its world; the requests of
    different workspaces were in flight at the same time; the account bill names a fourth workspace."""
    with MockAccount(MockOptions(world=MOCK_CFG), 3) as account:
        in_flight, peak, lock = [0], [0], threading.Lock()
        for server in account.servers:
            handle = server.mock.handle

            def counted(*args, _handle=handle, **kwargs):
                with lock:
                    in_flight[0] += 1
                    peak[0] = max(peak[0], in_flight[0])
                try:
                    time.sleep(0.01)  # long enough for another workspace's request to arrive meanwhile
                    return _handle(*args, **kwargs)
                finally:
                    with lock:
                        in_flight[0] -= 1

            server.mock.handle = counted
        path = tmp_path / "workspaces.yaml"
        path.write_text(account.workspaces_file("MOCK_TOKEN"))
        monkeypatch.setenv("MOCK_TOKEN", DEFAULT_TOKEN)
        monkeypatch.setenv("DATABRICKS_TOKEN", DEFAULT_TOKEN)
        db = tmp_path / "x.duckdb"
        defs = build_defs(
            {
                "COST_ASSETS_WORKSPACES": str(path),
                "MOCK_TOKEN": DEFAULT_TOKEN,
                "DATABRICKS_HOST": account.servers[0].url,
                "DATABRICKS_TOKEN": DEFAULT_TOKEN,
                "DATABRICKS_WAREHOUSE_ID": "mock",
                "COST_ASSETS_SQL_PUSHDOWN": "false",
                "COST_ASSETS_DUCKDB": str(db),
            }
        )
        resources = {k: defs.resources[k] for k in ("workspace", "billing", "ledger", "io_manager")}
        result = dg.materialize(
            [raw.workspace_tables, raw.billing_usage], resources=resources, partition_key=MOCK_DAY.isoformat()
        )
        assert result.success
    assert peak[0] >= 2  # workspaces fetched concurrently, not one after the other
    ids = [account_member(MOCK_CFG, k).workspace_id for k in range(4)]
    for k, workspace_id in enumerate(ids[:3]):
        expected = fetch_day(SimulatedApi(account_member(MOCK_CFG, k)), MOCK_DAY)
        stored = read_table(str(db), "raw.job_runs", "workspace_id = ?", [workspace_id])
        assert sorted(stored["task_run_id"]) == sorted(expected.job_runs["task_run_id"]), workspace_id
        clusters = read_table(str(db), "raw.clusters", "workspace_id = ?", [workspace_id])
        assert sorted(clusters["cluster_id"]) == sorted(expected.clusters["cluster_id"]), workspace_id
    assert sorted(read_table(str(db), "raw.billing_usage")["workspace_id"].unique()) == ids
    [runs] = [m for m in result.asset_materializations_for_node("workspace_tables") if m.asset_key == raw.JOB_RUNS]
    for k in range(3):  # each workspace's own client counted its calls
        assert runs.metadata[f"workspace/mock-{k}/api_calls"].value > 0


@pytest.mark.e2e
def test_an_optional_source_missing_in_one_workspace_warns_and_keeps_that_workspaces_rows(tmp_path: Path):
    """raw/serving_usage of a 3-workspace account: workspace 1 loses its system.serving grant. The day does
    not fail; the WARN check names the workspace; its stored requests stay, the others are rewritten."""
    db = tmp_path / "x.duckdb"
    world = SimulatedWorld(scale="tiny")

    def serve(workspace: DatabricksWorkspace) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [raw.serving_usage],
            resources={"workspace": workspace, **storage_resources(str(db))},
            partition_key=DAY.isoformat(),
        )

    assert serve(SimulatedWorkspace(world=world, workspaces=3)).success
    before = _by_workspace(db, "raw.serving_usage")
    assert len(before) == 3 and all(before.values())

    class NotGranted(SimulatedWorkspace):
        def serving_usage(self, days: list[dt.date], stats: dict[str, float] | None = None) -> pl.DataFrame:
            raise SourceUnavailable("[INSUFFICIENT_PERMISSIONS] no USE SCHEMA on system.serving")

    class Account(SimulatedWorkspace):
        def members(self) -> list[DatabricksWorkspace]:
            return [NotGranted(world=m.world, name=m.name) if m.name == "simulated-1" else m for m in super().members()]

    result = serve(Account(world=world, workspaces=3))
    assert result.success
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "sources_complete"]
    assert not check.passed
    assert check.description == (
        "workspace simulated-1: serving usage not read, stored rows kept: "
        "[INSUFFICIENT_PERMISSIONS] no USE SCHEMA on system.serving"
    )
    assert _by_workspace(db, "raw.serving_usage") == before
