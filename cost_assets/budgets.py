"""Budgets: the file that declares them (``COST_ASSETS_BUDGETS``), validated before anything runs.

A budgets file is YAML with one list, ``budgets``; each budget has

``name``
    unique, shown in ``mart/budget_status`` and in alerts.
``scope``
    a mapping of attribution dimensions to the value they must have (all must match), or ``account``
    (or nothing) for the whole account. Dimensions: :data:`SCOPE_KEYS`.
``period``
    ``day``, ``week`` (ISO, Monday to Sunday) or ``month``; calendar periods in UTC.
``amount`` and ``currency``
    the budget per period; only ``USD`` (the ledger's currency).
``cost``
    ``dbu`` (the Databricks bill; default) or ``total`` (DBU + VM: the billed DBU $ plus the estimated VM $
    and the VMs' disks $).
``thresholds``
    ``actual`` (default ``[50, 80, 100]``) and ``forecast`` (default ``[100]``), percentages of ``amount``.
``owner`` and ``channel``
    who is told, and where (free text; the alert sinks read ``channel``).
``per_call_usd`` and ``per_session_usd`` (optional)
    caps a serving application enforces before each request with :class:`cost_assets.spend_guard.SpendGuard`:
    one call's estimate, and the estimates of one ``usage_context`` session (docs/ai-spend.md).

Every problem is reported at once, one line each, naming the file, the budget and the key; nothing is
read from the ledger or written to it before the file is valid.
"""

import datetime as dt
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cost_assets import read
from cost_assets.config import Settings
from cost_assets.prices import load_strict_yaml

# What a budget can filter on, and the column of the spend rows each one reads.
SCOPE_KEYS = {
    "workspace": "workspace_id",
    "team": "team",
    "tenant": "tenant",
    "project": "project",
    "cost_center": "cost_center",
    "user": "user",
    "job": "job_id",
    "sku_family": "sku_family",
    "endpoint": "endpoint",
}
PERIODS = ("day", "week", "month")


class BudgetError(ValueError):
    """A budgets file is invalid: one line per problem, ``file: budget 'name': key: problem``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class Thresholds(BaseModel):
    """Alert levels in % of the amount, on the spend so far and on the forecast to the period's end."""

    model_config = ConfigDict(extra="forbid")
    actual: list[float] = Field(default_factory=lambda: [50.0, 80.0, 100.0])
    forecast: list[float] = Field(default_factory=lambda: [100.0])

    @field_validator("actual", "forecast")
    @classmethod
    def _positive_sorted(cls, levels: list[float]) -> list[float]:
        if any(level <= 0 for level in levels):
            raise ValueError("every threshold must be a percentage > 0")
        return sorted(set(levels))


class Budget(BaseModel):
    """One budget of the file (see the module doc)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    scope: dict[str, str] = Field(default_factory=dict)
    period: Literal["day", "week", "month"]
    amount: float = Field(gt=0)
    currency: Literal["USD"] = "USD"
    cost: Literal["dbu", "total"] = "dbu"
    thresholds: Thresholds = Field(default_factory=Thresholds)
    owner: str | None = None
    channel: str | None = None
    per_call_usd: float | None = Field(None, gt=0)
    per_session_usd: float | None = Field(None, gt=0)

    @field_validator("scope", mode="before")
    @classmethod
    def _scope(cls, value: Any) -> Any:
        if value in (None, "account"):
            return {}
        if isinstance(value, dict):
            unknown = sorted(set(map(str, value)) - set(SCOPE_KEYS))
            if unknown:
                raise ValueError(f"unknown dimension(s) {', '.join(unknown)} (allowed: {', '.join(SCOPE_KEYS)})")
            return {str(k): str(v) for k, v in value.items()}
        return value

    def describe_scope(self) -> str:
        """``account`` or ``team=etl, workspace=123``: the scope as people write it."""
        return ", ".join(f"{k}={v}" for k, v in sorted(self.scope.items())) or "account"


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    budgets: list[dict[str, Any]] = Field(default_factory=list)


def _line(file: str, budget: str, err: dict) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(budget)"
    message = str(err["msg"]).replace("Input should be", "must be").replace("Value error, ", "")
    return f"{file}: budget {budget!r}: {key}: {message}"


def parse(text: str, file: str) -> list[Budget]:
    """The budgets of ``text`` (the contents of ``file``); :class:`BudgetError` lists every problem."""
    data = load_strict_yaml(text, file, BudgetError)
    try:
        raw = _File.model_validate(data if isinstance(data, dict) else {"budgets": data}).budgets
    except ValidationError as exc:
        raise BudgetError([f"{file}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from None
    problems, budgets, seen = [], [], set()
    for i, entry in enumerate(raw):
        name = str(entry.get("name") or f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
        if name in seen:
            problems.append(f"{file}: budget {name!r}: name: another budget has the same name")
        seen.add(name)
        try:
            budgets.append(Budget.model_validate(entry))
        except ValidationError as exc:
            problems += [_line(file, name, e) for e in exc.errors()]
    if problems:
        raise BudgetError(problems)
    return budgets


def load(path: str | Path) -> list[Budget]:
    """The budgets of the file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BudgetError([f"{path}: cannot read the budgets file: {exc.strerror or exc}"]) from None
    return parse(text, str(path))


# ------------------------------------------------------------------------------- before spending: check()
@dataclass(frozen=True)
class Allowance:
    """What a budget allows now: the answer of :func:`check`."""

    budget: str
    allowed: bool
    remaining_usd: float  # before the estimated spend; negative when the budget is already exceeded
    spend_to_date_usd: float
    as_of: dt.date  # the last day mart/budget_status holds for the budget


_CACHE: dict[tuple, tuple[float, Allowance]] = {}


def _stored_allowance(path: str, database: str, scope: dict[str, str]) -> Allowance:
    """The latest ``mart/budget_status`` row of the budget whose scope is exactly ``scope``."""
    match = [b for b in load(path) if b.scope == scope]
    if not match:
        raise LookupError(f"no budget in {path} has the scope {scope or 'account'}")
    name = match[0].name
    row = read.fetch(
        database,
        "select usage_date, spend_to_date_usd, remaining_usd from mart.budget_status "
        "where budget = ? order by usage_date desc limit 1",
        [name],
    )
    if row.height == 0:
        raise LookupError(f"budget {name!r} has no status yet: materialize mart/budget_status first")
    day, spent, remaining = row.row(0)
    return Allowance(name, True, remaining, spent, day)


def check(
    scope: Mapping[str, str] | str,
    estimated_usd: float,
    *,
    budgets_path: str | None = None,
    database: str | None = None,
    ttl_s: float = 300.0,
    clock: Callable[[], float] = time.monotonic,
) -> Allowance:
    """May a caller spend ``estimated_usd`` more in ``scope`` (``{"tenant": "acme"}``, or ``"account"``)?

    For services that cap a tenant's spend before a call: the budget whose scope is exactly ``scope`` (from
    ``budgets_path``, default ``COST_ASSETS_BUDGETS``), its latest period-to-date spend in
    ``mart/budget_status`` (``database``, default the configured ledger), and ``allowed`` = the estimate
    fits in what remains. The budget and its stored status are cached for ``ttl_s`` seconds per (file,
    database, scope), so a busy service neither parses the file nor opens the ledger on every call. A scope without a
    budget is a ``LookupError``."""
    wanted = {} if scope in (None, "account") else {str(k): str(v) for k, v in dict(scope).items()}
    path = budgets_path or os.environ.get("COST_ASSETS_BUDGETS")
    if not path:
        raise LookupError("no budgets file: set COST_ASSETS_BUDGETS or pass budgets_path")
    database = database or Settings.from_environ(os.environ).ledger
    key = (path, database, tuple(sorted(wanted.items())))
    cached = _CACHE.get(key)
    if cached is None or clock() - cached[0] > ttl_s:  # the file and the ledger are read once per TTL
        cached = (clock(), _stored_allowance(path, database, wanted))
        _CACHE[key] = cached
    stored = cached[1]
    return Allowance(
        stored.budget,
        estimated_usd <= stored.remaining_usd,
        stored.remaining_usd,
        stored.spend_to_date_usd,
        stored.as_of,
    )
