"""Lookups anyone may ask for (`GET /v1/lookup/NAME`, the `/hubwatch` slash command): rate-limited
and answered from a short cache, so whoever can reach them cannot spend the Hub budget that pin
checks need. (Their Hub calls also run in the budget's on-demand share: see hub/budget.py.)

The CLI `hubwatch lookup` is the operator's and does not come through here.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from monitor.jobs.lookup import LookupResult

CACHE_SECONDS = 60.0
CACHE_ENTRIES = 1024
PER_MINUTE = 30  # Hub-backed lookups; cached answers are free
BURST = 10  # at least; a third of a minute's rate when that is more


def retry_after_header(seconds: float) -> str:
    """A Retry-After value: whole seconds, rounded up, from 1 to an hour."""
    return str(max(1, min(3600, math.ceil(seconds))))


class RateLimited(Exception):
    """Too many lookups: try again in `retry_after` seconds (HTTP 429, Slack "slow down")."""

    def __init__(self, retry_after: float):
        super().__init__(f"too many lookups; retry in {retry_after:.0f}s")
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        return retry_after_header(self.retry_after)


class TokenBucket:
    """`burst` lookups at once, then `per_minute` a minute."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = per_minute / 60.0, burst, clock
        self._tokens, self._at = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0.0 if a lookup may start now (and count it), else the seconds until one may."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate if self.rate > 0 else 3600.0


class OnDemandLookups:
    """`lookup(name)`: a cached answer, or a Hub lookup if the rate allows, else `RateLimited`.
    Hub errors pass through unchanged (a refused budget is `Transient`: 503 / "try again")."""

    def __init__(self, lookup: Callable[[str], "LookupResult"], *, per_minute: float = PER_MINUTE,
                 burst: int | None = None, ttl: float = CACHE_SECONDS, entries: int = CACHE_ENTRIES,
                 slots: int = 8, clock: Callable[[], float] = time.monotonic):
        """`slots`: lookups in flight at most (a slow Hub holds them); more wait for nobody: they
        are refused like a spent rate, so lookups can never take every HTTP worker."""
        self._lookup, self.ttl, self.entries, self.clock = lookup, ttl, entries, clock
        self._slots = threading.BoundedSemaphore(slots)
        self.bucket = TokenBucket(per_minute, burst or max(BURST, int(per_minute // 3)), clock)
        self._cache: OrderedDict[str, tuple[float, "LookupResult"]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, name: str) -> "LookupResult | None":
        key = name.lower()  # Hub names are case-insensitive
        with self._lock:
            hit = self._cache.get(key)
            if hit is None or hit[0] <= self.clock():
                self._cache.pop(key, None)
                return None
            self._cache.move_to_end(key)
            return hit[1]

    def lookup(self, name: str) -> "LookupResult":
        hit = self.cached(name)
        if hit is not None:
            return hit
        wait = self.bucket.take()
        if wait > 0:
            raise RateLimited(wait)
        if not self._slots.acquire(blocking=False):
            raise RateLimited(1.0)
        try:
            result = self._lookup(name)
        finally:
            self._slots.release()
        with self._lock:
            self._cache[name.lower()] = (self.clock() + self.ttl, result)
            self._cache.move_to_end(name.lower())
            while len(self._cache) > self.entries:
                self._cache.popitem(last=False)
        return result
