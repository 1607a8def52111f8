"""One Hub request budget for the whole process, sized by the plan's quota per 5-minute window.

The Hub counts API requests in fixed 5-minute windows. We count ours the same way (every real
request, retries included, via the session hook) and admit a new call only while the window has
room. Low-priority callers (look-alike probing) must leave a reserve, so pin checks, webhook
checks and lookups still get through when the budget runs short. On-demand lookups (HTTP and
Slack: anyone who can reach the port or the slash command) are capped twice: to their own share
of the window, and, like probing, to the first 70% of it, so whatever they ask, pin checks keep
the rest. When the Hub's own RateLimit
header says fewer requests remain than we think, its word wins.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

WINDOW = 300.0
SAFETY = 0.95  # never plan to use the last 5%: other tools may share the token
LOW_PRIORITY_SHARE = 0.7  # probing stops once 70% of the window is used
ON_DEMAND_SHARE = 0.1  # HTTP/Slack lookups: at most 10% of the window (100 of a free token's 1,000)


@dataclass(frozen=True)
class BudgetSnapshot:
    quota: int
    used: int
    remaining: int
    resets_in: float
    hub_remaining: int | None


class Budget:
    def __init__(self, quota: int = 1000, window: float = WINDOW, clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self.quota, self.window, self.clock = quota, window, clock
        self._start = clock()
        self._used = 0
        self._reserved = 0  # admitted calls whose first request has not been seen yet
        self._hub_remaining: int | None = None
        self._hub_reset_at = 0.0
        self._on_demand = 0  # calls admitted for on-demand lookups in this window
        self.denied = 0

    def reset(self) -> None:
        with self._lock:
            self._start, self._used, self._reserved, self._hub_remaining, self.denied = self.clock(), 0, 0, None, 0
            self._on_demand = 0

    def configure(self, quota: int) -> None:
        with self._lock:
            self.quota = quota

    def _roll(self, now: float) -> None:
        if now - self._start >= self.window:
            self._start, self._used, self._reserved, self._on_demand = now, 0, 0, 0
        if self._hub_remaining is not None and now >= self._hub_reset_at:
            self._hub_remaining = None

    def count(self) -> None:
        """One real request went out (called from the HTTP session hook). The first request of an
        admitted call was counted when it was admitted; retries count here."""
        with self._lock:
            self._roll(self.clock())
            if self._reserved > 0:
                self._reserved -= 1
            else:
                self._used += 1
            if self._hub_remaining is not None:
                self._hub_remaining = max(0, self._hub_remaining - 1)

    def observe(self, remaining: int, reset_in: float) -> None:
        """The Hub's RateLimit header: how many requests it still allows, and when it resets."""
        with self._lock:
            self._hub_remaining, self._hub_reset_at = remaining, self.clock() + reset_in

    def allow(self, low_priority: bool = False, on_demand: bool = False) -> bool:
        """May one more call start now? Low-priority and on-demand calls leave a reserve for pin
        checks; on-demand calls also stay within their own share."""
        with self._lock:
            now = self.clock()
            self._roll(now)
            low_priority = low_priority or on_demand
            limit = int(self.quota * (LOW_PRIORITY_SHARE if low_priority else SAFETY))
            ok = self._used < limit and (not on_demand or self._on_demand < int(self.quota * ON_DEMAND_SHARE))
            if ok and self._hub_remaining is not None:
                ok = self._hub_remaining > self.quota * (1 - (LOW_PRIORITY_SHARE if low_priority else SAFETY))
            if not ok:
                self.denied += 1
            else:
                # Count the call now, not when its request goes out: concurrent callers would all
                # pass the check before any of them is counted.
                self._used += 1
                self._reserved += 1
                self._on_demand += on_demand
            return ok

    def resets_in(self) -> float:
        with self._lock:
            now = self.clock()
            self._roll(now)
            ours = self._start + self.window - now
            return max(0.0, min(ours, self._hub_reset_at - now) if self._hub_remaining == 0 else ours)

    def snapshot(self) -> BudgetSnapshot:
        with self._lock:
            now = self.clock()
            self._roll(now)
            return BudgetSnapshot(self.quota, self._used, max(0, self.quota - self._used),
                                  max(0.0, self._start + self.window - now), self._hub_remaining)
