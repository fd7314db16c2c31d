"""The spend guard a serving application calls before each request: per-call, per-session and per-scope
caps, the actual spend cached with a TTL and refreshed in the background — all on a fake clock."""

import datetime as dt

import duckdb
import pytest

from cost_assets import budgets
from cost_assets.spend_guard import CapExceeded, SpendGuard

AS_OF = dt.date(2026, 1, 5)
TODAY = dt.datetime(2026, 1, 6, 9, tzinfo=dt.UTC)  # the bill has reached the 5th; today's spend is not on it
BUDGET = budgets.Budget(
    name="acme", scope={"tenant": "acme"}, period="month", amount=300, per_call_usd=2.0, per_session_usd=3.0
)


class Clock:
    """Monotonic seconds and the UTC time, moved by hand."""

    def __init__(self) -> None:
        self.seconds, self.utc = 0.0, TODAY

    def __call__(self) -> float:
        return self.seconds


class Status:
    """The stored budget status the guard fetches; counts the fetches."""

    def __init__(self, spent: float, remaining: float, as_of: dt.date = AS_OF) -> None:
        self.answer = budgets.Allowance("acme", True, remaining, spent, as_of)
        self.fetches = 0
        self.fail = False

    def __call__(self) -> budgets.Allowance:
        self.fetches += 1
        if self.fail:
            raise ConnectionError("ledger busy")
        return self.answer


def guard(status: Status, clock: Clock, started: list) -> SpendGuard:
    return SpendGuard(BUDGET, status, ttl_s=60, clock=clock, now=lambda: clock.utc, start=started.append)


def test_per_call_cap():
    g = guard(Status(0, 300), Clock(), [])
    g.admit(2.0)  # exactly the cap is allowed
    with pytest.raises(CapExceeded, match=r"budget 'acme': the per-call cap of \$2.0000 would be exceeded"):
        g.admit(2.01)


def test_per_session_cap_counts_each_session_apart():
    g = guard(Status(0, 300), Clock(), [])
    g.admit(1.5, session="s-1")
    g.admit(1.5, session="s-1")  # 1.5 + 1.5 = 3.0: the cap itself
    with pytest.raises(CapExceeded, match=r"per-session \(s-1\)") as caught:
        g.admit(0.01, session="s-1")
    assert caught.value.would_be_usd == pytest.approx(3.01)
    g.admit(1.5, session="s-2")  # another session starts at 0


def test_actual_cap_counts_the_estimates_the_bill_has_not_reached():
    # $300 month, $295 spent on the bill up to the 5th: $5 remain. Today's admitted estimates stand in for
    # the bill's lag: 2 + 2 = 4 admitted, then 1.5 more would make 5.5 > 5.
    g = guard(Status(spent=295, remaining=5), Clock(), [])
    g.admit(2.0)
    g.admit(2.0)
    with pytest.raises(CapExceeded, match=r"month budget cap of \$300\.0000") as caught:
        g.admit(1.5)
    assert caught.value.would_be_usd == pytest.approx(295 + 4 + 1.5)
    g.admit(1.0)  # 4 + 1 = 5: exactly what remains


def test_the_status_is_cached_for_the_ttl_and_refreshed_in_the_background():
    clock, status, started = Clock(), Status(spent=290, remaining=10), []
    g = guard(status, clock, started)
    g.admit(1.0)  # the first request waits for the status
    assert status.fetches == 1 and started == []
    clock.seconds = 60.0  # within the TTL (60 s): no refresh
    g.admit(1.0)
    assert status.fetches == 1 and started == []
    clock.seconds = 61.0  # past it: a refresh is started, this request uses the cached status
    g.admit(1.0)
    g.admit(1.0)  # one refresh at a time
    assert len(started) == 1 and status.fetches == 1
    # The bill reaches the 6th: today's $4 of estimates are on it now ($294 spent, $6 remain).
    status.answer = budgets.Allowance("acme", True, 6.0, 294.0, dt.date(2026, 1, 6))
    started[0]()  # the background refresh runs
    assert status.fetches == 2
    clock.utc = TODAY + dt.timedelta(days=1)  # the 7th: not on the bill
    for _ in range(3):
        g.admit(2.0)  # 2 + 2 + 2 = $6: exactly what remains (the 6th's estimates were dropped, not counted)
    with pytest.raises(CapExceeded):
        g.admit(0.01)


def test_a_failed_refresh_keeps_the_cached_status_but_a_first_failure_is_raised(caplog):
    clock, status, started = Clock(), Status(spent=0, remaining=300), []
    status.fail = True
    g = guard(status, clock, started)
    with pytest.raises(ConnectionError):
        g.admit(1.0)  # nothing to judge the scope cap by: no silent allow
    status.fail = False
    g.admit(1.0)
    clock.seconds = 120.0
    g.admit(1.0)
    status.fail = True
    started[0]()
    assert "refreshing the budget status failed" in caplog.text
    g.admit(1.0)  # the cached status still answers
    clock.seconds = 240.0
    g.admit(1.0)
    assert len(started) == 2  # a new refresh is tried after the failed one


def test_for_scope_reads_the_budgets_file_and_the_stored_status(tmp_path):
    path = tmp_path / "budgets.yaml"
    path.write_text(
        "budgets:\n  - {name: acme, scope: {tenant: acme}, period: month, amount: 300, per_call_usd: 0.5}\n"
    )
    database = str(tmp_path / "ledger.duckdb")
    with duckdb.connect(database) as con:
        con.execute("create schema mart")
        con.execute(
            "create table mart.budget_status (usage_date date, budget varchar, "
            "spend_to_date_usd double, remaining_usd double)"
        )
        con.execute("insert into mart.budget_status values ('2026-01-05', 'acme', 299.5, 0.5)")
    clock = Clock()
    g = SpendGuard.for_scope(
        {"tenant": "acme"}, budgets_path=str(path), database=database, clock=clock, now=lambda: clock.utc
    )
    g.admit(0.3)
    with pytest.raises(CapExceeded, match="per-call"):
        g.admit(0.6)
    with pytest.raises(CapExceeded, match="month budget"):
        g.admit(0.3)  # 0.3 + 0.3 > the $0.5 that remain
    with pytest.raises(LookupError, match="no budget"):
        SpendGuard.for_scope({"tenant": "globex"}, budgets_path=str(path), database=database)


def test_caps_must_be_positive_in_the_budgets_file():
    with pytest.raises(budgets.BudgetError, match=r"budget 'acme': per_session_usd: .*greater than 0"):
        budgets.parse("budgets:\n  - {name: acme, period: day, amount: 5, per_session_usd: 0}\n", "b.yaml")
