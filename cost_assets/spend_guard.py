"""Per-tenant spending caps a serving application enforces before each model-serving request.

Built on the budgets file (:mod:`cost_assets.budgets`: a budget's ``scope``, ``amount`` and the optional
``per_call_usd`` / ``per_session_usd``) and on :func:`cost_assets.budgets.check` (the budget's period-to-date
spend stored in ``mart/budget_status``). :meth:`SpendGuard.admit` is called with a request's estimate (e.g.
:func:`cost_assets.instrument.estimate_usd`) and either returns (the request may go) or raises
:class:`CapExceeded` naming the budget, the cap and the amounts. Three caps, cheapest first:

* **per call**: the estimate alone may not exceed ``per_call_usd``;
* **per session**: the estimates admitted for the same ``usage_context`` session plus this one may not
  exceed ``per_session_usd`` (sessions are counted in this process's memory);
* **per scope, on actual spend**: what the budget has left on the bill (``remaining_usd`` of its latest
  status) minus the estimates admitted after the status's last day — the bill lags 12–48 h, and those
  estimates stand in for the days it has not reached yet — must cover this estimate.

Why the actual spend is fetched asynchronously and cached: reading it opens the ledger, which a request
must never wait on. The remaining amount is cached for ``ttl_s`` seconds; when it is older, a refresh is
started in the background (one at a time) and requests keep using the cached value meanwhile. Only the
very first request waits for it. A failed refresh keeps the cached value and is logged; before any value
has been fetched, the per-scope cap cannot be judged and the failure is raised (a cap that silently
allows everything is no cap).
"""

import datetime as dt
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping

from cost_assets import budgets

log = logging.getLogger(__name__)


class CapExceeded(RuntimeError):
    """A request would exceed a cap: which budget, which cap, the limit and what the spend would be."""

    def __init__(self, budget: str, cap: str, limit_usd: float, would_be_usd: float):
        self.budget, self.cap, self.limit_usd, self.would_be_usd = budget, cap, limit_usd, would_be_usd
        super().__init__(
            f"budget {budget!r}: the {cap} cap of ${limit_usd:.4f} would be exceeded (${would_be_usd:.4f})"
        )


def _in_background(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="cost-assets-spend-guard", daemon=True).start()


class SpendGuard:
    """The caps of one budget (see the module doc). ``fetch_status`` returns the budget's stored
    :class:`cost_assets.budgets.Allowance`; ``clock`` (monotonic seconds) ages the cache, ``now`` (UTC)
    dates the admitted estimates; ``start`` runs a refresh in the background (tests run it by hand)."""

    def __init__(
        self,
        budget: budgets.Budget,
        fetch_status: Callable[[], budgets.Allowance],
        *,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        start: Callable[[Callable[[], None]], None] = _in_background,
    ):
        self.budget, self.fetch_status, self.ttl_s = budget, fetch_status, ttl_s
        self.clock, self.now, self.start = clock, now, start
        self._status: budgets.Allowance | None = None
        self._fetched_at = 0.0
        self._refreshing = False
        self._sessions: defaultdict[str, float] = defaultdict(float)
        self._admitted: list[tuple[dt.date, float]] = []  # (UTC day, estimate) of every admitted request
        self._lock = threading.Lock()

    @classmethod
    def for_scope(
        cls,
        scope: Mapping[str, str] | str,
        *,
        budgets_path: str | None = None,
        database: str | None = None,
        **kwargs,
    ) -> "SpendGuard":
        """The guard of the budget whose scope is exactly ``scope`` (``{"tenant": "acme"}``), its status read
        with :func:`cost_assets.budgets.check` (the file and ledger defaults of that function)."""
        wanted = {} if scope in (None, "account") else {str(k): str(v) for k, v in dict(scope).items()}
        path = budgets_path or os.environ.get("COST_ASSETS_BUDGETS")
        if not path:
            raise LookupError("no budgets file: set COST_ASSETS_BUDGETS or pass budgets_path")
        match = [b for b in budgets.load(path) if b.scope == wanted]
        if not match:
            raise LookupError(f"no budget in {path} has the scope {wanted or 'account'}")
        return cls(
            match[0],
            lambda: budgets.check(wanted, 0.0, budgets_path=path, database=database, ttl_s=0.0),
            **kwargs,
        )

    # --- the actual spend, cached -----------------------------------------------------------------------

    def _refresh(self) -> None:
        try:
            status = self.fetch_status()
        except Exception:  # a failed refresh keeps the cached value (logged, never raised)
            log.exception("spend guard %r: refreshing the budget status failed; the cached one stays", self.budget.name)
            with self._lock:
                self._refreshing = False
            return
        with self._lock:
            self._status, self._fetched_at, self._refreshing = status, self.clock(), False

    def _cached_status(self) -> budgets.Allowance:
        with self._lock:
            status, stale = self._status, self.clock() - self._fetched_at > self.ttl_s
            start = status is not None and stale and not self._refreshing
            if start:
                self._refreshing = True
        if status is None:  # the first request waits: there is nothing to judge the cap by yet
            fresh = self.fetch_status()
            with self._lock:
                self._status, self._fetched_at = fresh, self.clock()
            return fresh
        if start:
            self.start(self._refresh)
        return status

    # --- the caps --------------------------------------------------------------------------------------

    def admit(self, estimated_usd: float, session: str | None = None) -> None:
        """Let a request of ``estimated_usd`` go (and count it), or raise :class:`CapExceeded`."""
        name = self.budget.name
        if self.budget.per_call_usd is not None and estimated_usd > self.budget.per_call_usd:
            raise CapExceeded(name, "per-call", self.budget.per_call_usd, estimated_usd)
        status = self._cached_status()
        with self._lock:
            if session is not None and self.budget.per_session_usd is not None:
                would_be = self._sessions[session] + estimated_usd
                if would_be > self.budget.per_session_usd:
                    raise CapExceeded(name, f"per-session ({session})", self.budget.per_session_usd, would_be)
            # Days the status covers are on the bill now: their estimates are dropped, the rest stand in.
            self._admitted = [(day, usd) for day, usd in self._admitted if day > status.as_of]
            unbilled = sum(usd for _, usd in self._admitted)
            would_be = status.spend_to_date_usd + unbilled + estimated_usd
            if unbilled + estimated_usd > status.remaining_usd:
                raise CapExceeded(name, f"{self.budget.period} budget", self.budget.amount, would_be)
            if session is not None:
                self._sessions[session] += estimated_usd
            self._admitted.append((self.now().astimezone(dt.UTC).date(), estimated_usd))
