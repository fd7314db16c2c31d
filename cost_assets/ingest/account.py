"""Many workspaces in one run: each workspace's source read concurrently, each failure kept apart.

One code location serves every workspace of an account as a loop inside each daily run (not a partition
dimension: 500 workspaces × 3 years of days would exceed what Dagster's partitions are meant for). A
thread pool runs at most ``max_concurrent`` workspaces at once; each workspace has its own HTTP client and
so its own client-side rate limit. A workspace that fails does not stop the others: its error is returned
beside their answers, and the raw asset writes what came (``REPLACE_BY`` keeps the failed workspace's
stored rows) before it reports the failure. Pure: no Dagster.
"""

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

M = TypeVar("M")
T = TypeVar("T")


@dataclass(frozen=True)
class Answer(Generic[M, T]):
    """One workspace's answer: the value, or the error that stopped it; and how long it took."""

    member: M
    name: str
    value: T | None
    error: BaseException | None
    seconds: float


def read_all(
    members: Sequence[M],
    read: Callable[[M], T],
    name: Callable[[M], str],
    max_concurrent: int,
    log: Callable[[str], None],
) -> list[Answer[M, T]]:
    """``read(member)`` for every member, at most ``max_concurrent`` at once; answers in ``members``' order.
    Logs one line per workspace as it finishes (its time, or its error)."""

    def one(member: M) -> Answer[M, T]:
        started = time.monotonic()
        try:
            value, error = read(member), None
        except Exception as e:  # kept with its workspace; the caller decides what fails
            value, error = None, e
        answer = Answer(member, name(member), value, error, time.monotonic() - started)
        log(
            f"workspace {answer.name}: "
            + (f"failed after {answer.seconds:.1f} s: {error}" if error else f"done in {answer.seconds:.1f} s")
        )
        return answer

    if len(members) == 1:
        return [one(members[0])]
    with ThreadPoolExecutor(
        max_workers=max(1, min(max_concurrent, len(members))), thread_name_prefix="workspace"
    ) as pool:
        return list(pool.map(one, members))
