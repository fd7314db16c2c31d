"""query_attribution over a tiny hand-written mart.serving_costs in a temporary DuckDB file."""

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from cost_assets.query import GROUP_COLUMNS, query_attribution
from cost_assets.read import TableMissingError

D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
# usage_date, tenant, agent, user, estimated, actual, dbus, calls
ROWS = [
    (D1, "o'reilly", "triage", "ana", 1.0, 1.5, 10.0, 3),
    (D1, "o'reilly", "writer", "bo", 2.0, 2.5, 20.0, 4),
    (D2, "o'reilly", "triage", "ana", 4.0, 3.0, 30.0, 5),
    (D1, "acme", "triage", "ana", 8.0, 9.0, 40.0, 6),
    (D3, "o'reilly", "triage", "ana", 16.0, 17.0, 50.0, 7),
    (D1, "o'reilly' OR '1'='1", "x", "y", 32.0, 33.0, 60.0, 8),
    (D2, "(untagged)", "triage", "ana", None, 0.5, 5.0, 1),
]


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = str(tmp_path / "q.duckdb")
    with duckdb.connect(path) as con:
        con.execute("CREATE SCHEMA mart")
        con.execute(
            "CREATE TABLE mart.serving_costs (usage_date DATE, workspace_id VARCHAR, tenant VARCHAR, agent VARCHAR, "
            '"user" VARCHAR, session VARCHAR, endpoint_name VARCHAR, model VARCHAR, provider VARCHAR, '
            "calls BIGINT, estimated_usd DOUBLE, actual_usd DOUBLE, actual_dbus DOUBLE, delta_usd DOUBLE, "
            "currency_code VARCHAR)"
        )
        for day, tenant, agent, user, est, act, dbus, calls in ROWS:
            delta = None if est is None else act - est
            session = f"s-{user}"  # one session per user: ana's rows are session s-ana
            con.execute(
                "INSERT INTO mart.serving_costs VALUES "
                "(?, 'ws', ?, ?, ?, ?, 'chat', 'llama', 'databricks', ?, ?, ?, ?, ?, 'USD')",
                [day, tenant, agent, user, session, calls, est, act, dbus, delta],
            )
    return path


def test_tenant_with_a_quote_returns_exactly_its_rows(database):
    out = query_attribution(tenant_id="o'reilly", start_date=D1, end_date=D2, group_by=["tenant"], database=database)
    assert out.to_dicts() == [
        {
            "tenant": "o'reilly",
            "estimated_usd": pytest.approx(1.0 + 2.0 + 4.0),
            "actual_usd": pytest.approx(1.5 + 2.5 + 3.0),
            "actual_dbus": pytest.approx(10.0 + 20.0 + 30.0),
            "delta_usd": pytest.approx(7.0 - 7.0),
            "calls": 3 + 4 + 5,
        }
    ]


def test_an_injection_shaped_tenant_is_only_a_value(database):
    out = query_attribution("o'reilly' OR '1'='1", database=database, start_date=D1, end_date=D3, group_by=["tenant"])
    assert out["tenant"].to_list() == ["o'reilly' OR '1'='1"] and out["calls"].to_list() == [8]


def test_group_by_agent_and_day_over_an_inclusive_range(database):
    out = query_attribution("o'reilly", database=database, start_date=D1, end_date=D3, group_by=["usage_date", "agent"])
    got = {(r["usage_date"], r["agent"]): r["actual_usd"] for r in out.to_dicts()}
    assert got == pytest.approx({(D1, "triage"): 1.5, (D1, "writer"): 2.5, (D2, "triage"): 3.0, (D3, "triage"): 17.0})


def test_all_tenants_and_unknown_money_stays_unknown(database):
    out = query_attribution(database=database, start_date=D2, end_date=D2, group_by=["tenant"])
    got = {r["tenant"]: (r["estimated_usd"], r["actual_usd"]) for r in out.to_dicts()}
    assert got == {"(untagged)": (None, 0.5), "o'reilly": (4.0, 3.0)}


def test_empty_group_by_gives_one_total(database):
    out = query_attribution(database=database, start_date=D1, end_date=D1, group_by=[])
    assert out.height == 1 and out["calls"][0] == 3 + 4 + 6 + 8
    assert out["actual_dbus"][0] == pytest.approx(10.0 + 20.0 + 40.0 + 60.0)


@pytest.mark.parametrize(
    "bad", [["tenant; DROP TABLE mart.serving_costs"], ["actual_usd"], ['"user"'], ["tenant", "tenant"]]
)
def test_group_by_outside_the_allow_list_is_refused(database, bad):
    with pytest.raises(ValueError, match="group"):
        query_attribution(database=database, start_date=D1, end_date=D3, group_by=bad)
    assert query_attribution(database=database, start_date=D1, end_date=D3, group_by=["tenant"]).height == 4


def test_user_column_and_every_allowed_column_can_be_grouped(database):
    out = query_attribution("acme", database=database, start_date=D1, end_date=D3, group_by=list(GROUP_COLUMNS))
    assert out.height == 1 and out["user"][0] == "ana"


def test_bad_dates_and_missing_file(database, tmp_path):
    with pytest.raises(ValueError, match="after"):
        query_attribution(database=database, start_date=D3, end_date=D1)
    with pytest.raises(FileNotFoundError):
        query_attribution(database=str(tmp_path / "nope.duckdb"), start_date=D1, end_date=D1)


def test_issue_signature_positional_and_default_database(database, monkeypatch):
    """query_attribution(tenant_id, start_date, end_date, group_by) reads COST_ASSETS_DUCKDB by default."""
    monkeypatch.setenv("COST_ASSETS_DUCKDB", database)
    by_keyword = query_attribution(tenant_id="o'reilly", start_date=D1, end_date=D3, group_by=["agent"])
    positional = query_attribution("o'reilly", D1.isoformat(), D3.isoformat(), ["agent"])
    assert by_keyword.equals(positional) and by_keyword.height > 0


def test_endpoint_is_an_alias_of_endpoint_name(database):
    plain = query_attribution(start_date=D1, end_date=D3, group_by=["endpoint_name"], database=database)
    aliased = query_attribution(start_date=D1, end_date=D3, group_by=["endpoint"], database=database)
    assert aliased.equals(plain)


def test_a_string_group_by_is_one_column(database):
    # "tenant" as a string must not be read as the columns t, e, n, a, n, t.
    as_string = query_attribution(database=database, start_date=D1, end_date=D3, group_by="tenant")
    as_list = query_attribution(database=database, start_date=D1, end_date=D3, group_by=["tenant"])
    assert as_string.columns[0] == "tenant" and as_string.equals(as_list)


def test_a_missing_database_or_table_says_to_run_the_pipeline_first(database, tmp_path):
    with pytest.raises(FileNotFoundError, match="run `make run` first"):
        query_attribution(database=str(tmp_path / "nope.duckdb"), start_date=D1, end_date=D1)
    empty = str(tmp_path / "empty.duckdb")
    duckdb.connect(empty).close()
    with pytest.raises(TableMissingError, match=r"serving_costs.* run `make run` first"):
        query_attribution(database=empty, start_date=D1, end_date=D1)


def test_every_dimension_is_a_filter_and_a_group(database):
    # agent=triage and user=ana over D1..D3: o'reilly D1 (1.5, 3 calls), D2 (3.0, 5), D3 (17.0, 7); acme D1
    # (9.0, 6); untagged D2 (0.5, 1) — grouped by tenant.
    out = query_attribution(
        start_date=D1,
        end_date=D3,
        group_by=["tenant", "session", "provider", "workspace"],
        database=database,
        agent="triage",
        user="ana",
        model="llama",
        provider="databricks",
        session="s-ana",
        endpoint="chat",
        workspace="ws",
    )
    got = {r["tenant"]: (r["actual_usd"], r["calls"]) for r in out.to_dicts()}
    assert got == {"(untagged)": (0.5, 1), "acme": (9.0, 6), "o'reilly": (pytest.approx(1.5 + 3.0 + 17.0), 3 + 5 + 7)}
    assert set(out["session"]) == {"s-ana"} and set(out["provider"]) == {"databricks"}
    assert out.columns[4:] == ["estimated_usd", "actual_usd", "actual_dbus", "delta_usd", "calls"]


def test_a_filter_value_is_bound_and_unknown_filters_are_refused(database):
    assert query_attribution(start_date=D1, end_date=D3, database=database, user="ana' OR '1'='1").height == 0
    with pytest.raises(TypeError, match="cannot filter on"):
        query_attribution(start_date=D1, end_date=D3, database=database, colour="red")
    with pytest.raises(ValueError, match="disagree"):
        query_attribution("acme", D1, D3, database=database, tenant="globex")
