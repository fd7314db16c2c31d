"""Fault injection: what goes wrong between the client and the mock workspace, and how often.

Faults are configuration (:class:`Faults`): a token-bucket rate limit answering 429 with
``Retry-After``, a share of 503s, slow responses, and connections dropped mid-body. The random draws
come from one ``random.Random(seed)`` taken three times per request, so the same request sequence gets
the same faults. :func:`fault_summary` is the line the CLI prints on exit
(``faults: 503×12, 429×3, drop×1``).
"""

import math
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from cost_assets.mock_server.protocol import MockError


@dataclass(frozen=True)
class Faults:
    """What goes wrong, and how often. All off by default."""

    rate_limit_per_s: float | None = None  # token bucket (burst = one second's worth); 429 when empty
    retry_after_s: int | None = None  # Retry-After on 429s; None: the time until the bucket refills
    error_rate: float = 0.0  # share of requests answered 503 TEMPORARILY_UNAVAILABLE
    slow_rate: float = 0.0  # share of requests delayed by slow_s
    slow_s: float = 0.0
    drop_rate: float = 0.0  # share of responses cut off mid-body (connection closed)
    seed: int = 0


class _FaultInjector:
    def __init__(self, faults: Faults, clock: Callable[[], float]):
        self.faults, self.clock = faults, clock
        self.rng = random.Random(faults.seed)
        self.capacity = max(1.0, faults.rate_limit_per_s or 0.0)
        self.tokens, self.refilled = self.capacity, clock()
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    def decide(self, path: str) -> tuple[float, bool]:
        """Raise the fault reply if this request gets one; else (seconds to stall, drop mid-body)."""
        f = self.faults
        with self.lock:
            if f.rate_limit_per_s:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.refilled) * f.rate_limit_per_s)
                self.refilled = now
                if self.tokens < 1:
                    self.injected["429"] += 1
                    wait = f.retry_after_s or max(1, math.ceil((1 - self.tokens) / f.rate_limit_per_s))
                    raise MockError(
                        429,
                        "REQUEST_LIMIT_EXCEEDED",
                        f"Too many requests to {path}; the limit is {f.rate_limit_per_s:g} per second",
                        {"Retry-After": str(wait)},
                    )
                self.tokens -= 1
            # Drawn after the (time-dependent) rate limit, so the same seed gives the same faults.
            error, slow, drop = self.rng.random(), self.rng.random(), self.rng.random()
            if error < f.error_rate:
                self.injected["503"] += 1
                raise MockError(
                    503,
                    "TEMPORARILY_UNAVAILABLE",
                    f"The service at {path} is temporarily unavailable. Please try again later.",
                )
            stall = f.slow_s if slow < f.slow_rate else 0.0
            if stall:
                self.injected["slow"] += 1
            if drop < f.drop_rate:
                self.injected["drop"] += 1
            return stall, drop < f.drop_rate


def fault_summary(injected: Counter[str]) -> str:
    """``faults: 503×12, 429×3, drop×1`` (most frequent first), or ``faults: none``."""
    counts = sorted(injected.items(), key=lambda kv: (-kv[1], kv[0]))
    return "faults: " + (", ".join(f"{kind}×{n}" for kind, n in counts if n) or "none")
