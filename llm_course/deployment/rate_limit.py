"""Rate limiting with a token bucket per caller (used by `serve`, which 08_deployment shows).

Each caller (an API key's name, or the client's IP address when the service has no keys)
has a bucket that holds at most `burst` tokens and refills at `rate` tokens per second. A
request takes one token; with none left it is refused (429), and the caller is told how
many seconds until a token is back (the `Retry-After` header). So a caller may send `burst`
requests at once, then `rate` per second on average.

The clock is a parameter (`time.monotonic` by default), so tests can move time by hand.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`burst` tokens at most, `rate` more per second; `take()` spends one if it can."""

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < rate < math.inf:
            raise ValueError(f"rate must be a number of requests per second above 0, not {rate}")
        if int(burst) < 1:
            raise ValueError(f"burst must be at least 1 request, not {burst}")
        self.rate = float(rate)
        self.burst = int(burst)
        self.clock = clock
        self.tokens = float(self.burst)  # a new caller may send a full burst at once
        self.updated = clock()

    def take(self) -> float:
        """0.0 if a token was spent (serve the request); else the seconds until one is back."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def full(self) -> bool:
        """True when the bucket has refilled completely (it can be forgotten)."""
        return self.tokens + (self.clock() - self.updated) * self.rate >= self.burst


class RateLimiter:
    """One `TokenBucket` per caller, made on the caller's first request; thread-safe.

    At most `max_callers` buckets are kept: beyond that, full buckets (callers idle long
    enough to have refilled) are forgotten, which changes nothing for them.
    """

    def __init__(self, rate: float, burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic, max_callers: int = 10_000) -> None:
        self.rate = rate
        self.burst = max(1, math.ceil(rate)) if burst is None else burst
        TokenBucket(self.rate, self.burst, clock)  # check the numbers now, not on a request
        self.clock = clock
        self.max_callers = max_callers
        self.buckets: dict[str, TokenBucket] = {}
        self.lock = threading.Lock()

    def wait_seconds(self, caller: str) -> float:
        """0.0 to serve `caller`'s request now; else the seconds it should wait."""
        with self.lock:
            bucket = self.buckets.get(caller)
            if bucket is None:
                if len(self.buckets) >= self.max_callers:
                    self.buckets = {k: b for k, b in self.buckets.items() if not b.full()}
                bucket = self.buckets[caller] = TokenBucket(self.rate, self.burst, self.clock)
            return bucket.take()


def retry_after(wait_seconds: float) -> str:
    """The `Retry-After` header's value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_seconds)))
