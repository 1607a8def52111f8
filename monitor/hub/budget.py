"""One Hub request budget for the whole process, sized by the quota per 5-minute window.

The Hub counts API requests in fixed 5-minute windows. We count ours the same way (every real
request, retries included, via the session hook) and admit a new call only while the window has
room. Low-priority callers (look-alike probing) must leave a reserve, so pin checks, webhook
checks and lookups still get through when the budget runs short. On-demand lookups (HTTP and
Slack: anyone who can reach the port or the slash command) are capped twice: to their own share
of the window, and, like probing, to the first 70% of it, so whatever they ask, pin checks keep
the rest. When the Hub's own RateLimit header says fewer requests remain than we think, its word
wins.

The quota is the one the Hub advertises (`RateLimit-Policy: …;q=N`), capped by
`limits.hub_requests_per_5min` when that is set; before the first answer, the Hub's published
default (500 anonymous, 1,000 with a token). A process sends its first call alone and lets the
others go only once it finished: started into a spent window, it learns so from one answer
instead of a burst of 429s.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

WINDOW = 300.0
ANONYMOUS_QUOTA, TOKEN_QUOTA = 500, 1000  # the Hub's quotas per 5 minutes until it tells us its own
FIRST_CALL_WAIT = 120.0  # never wait longer than this for the first call (its own timeouts end it sooner)
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
    def __init__(self, quota: int | None = None, window: float = WINDOW, clock: Callable[[], float] = time.monotonic,
                 *, token: bool = True):
        self._lock = threading.Condition()
        self.window, self.clock = window, clock
        self.configured = quota  # limits.hub_requests_per_5min; None: follow the Hub
        self.default = TOKEN_QUOTA if token else ANONYMOUS_QUOTA
        self.advertised: int | None = None  # the Hub's RateLimit-Policy q=
        self._start = clock()
        self._used = 0
        self._reserved = 0  # admitted calls whose first request has not been seen yet
        self._hub_remaining: int | None = None
        self._hub_reset_at = 0.0
        self._on_demand = 0  # calls admitted for on-demand lookups in this window
        self.denied = 0
        self._first = "unsent"  # the process's first call: unsent | in_flight | done

    @property
    def quota(self) -> int:
        """The quota we plan against: the Hub's, or the configured one when that is lower."""
        hub = self.advertised
        if self.configured is None:
            return hub if hub is not None else self.default
        return min(self.configured, hub) if hub is not None else self.configured

    def reset(self) -> None:
        """Forget everything, as a new process would (tests)."""
        with self._lock:
            self._start, self._used, self._reserved, self._hub_remaining, self.denied = self.clock(), 0, 0, None, 0
            self._on_demand = 0
            self.advertised, self._first = None, "unsent"
            self._lock.notify_all()

    def configure(self, quota: int | None, *, token: bool = True) -> None:
        """`quota`: limits.hub_requests_per_5min (None when not set); `token`: whether calls carry one."""
        with self._lock:
            self.configured = quota
            self.default = TOKEN_QUOTA if token else ANONYMOUS_QUOTA

    # --- the process's first call goes alone -------------------------------------------------------
    def first_call(self) -> bool:
        """Before a call: wait while the process's first call is in flight. True when this call is
        the first (the caller then reports `first_done()` whatever its outcome)."""
        with self._lock:
            if self._first == "unsent":
                self._first = "in_flight"
                return True
            self._lock.wait_for(lambda: self._first != "in_flight", timeout=FIRST_CALL_WAIT)
            return False

    def first_done(self) -> None:
        with self._lock:
            self._first = "done"
            self._lock.notify_all()

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

    def observe(self, remaining: int, reset_in: float, quota: int | None = None) -> None:
        """The Hub's RateLimit headers: how many requests it still allows, when it resets, and the
        quota its policy advertises."""
        with self._lock:
            self._hub_remaining, self._hub_reset_at = remaining, self.clock() + reset_in
            if quota is not None and quota > 0:
                self.advertised = quota

    def allow(self, low_priority: bool = False, on_demand: bool = False) -> bool:
        """May one more call start now? Low-priority and on-demand calls leave a reserve for pin
        checks; on-demand calls also stay within their own share."""
        with self._lock:
            now = self.clock()
            self._roll(now)
            quota = self.quota
            low_priority = low_priority or on_demand
            limit = int(quota * (LOW_PRIORITY_SHARE if low_priority else SAFETY))
            ok = self._used < limit and (not on_demand or self._on_demand < int(quota * ON_DEMAND_SHARE))
            if ok and self._hub_remaining is not None:
                ok = self._hub_remaining > quota * (1 - (LOW_PRIORITY_SHARE if low_priority else SAFETY))
            if not ok:
                self.denied += 1
            else:
                # Count the call now, not when its request goes out: concurrent callers would all
                # pass the check before any of them is counted.
                self._used += 1
                self._reserved += 1
                self._on_demand += on_demand
            return ok

    def admit_event(self) -> bool:
        """May one more call of event-driven work (a Hub webhook's check) start now? Events are the
        lowest row of the budget: today they draw on the on-demand share (and its 70% ceiling), so a
        flood of events can never take what the scheduled pin scan needs."""
        return self.allow(on_demand=True)

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
            quota = self.quota
            return BudgetSnapshot(quota, self._used, max(0, quota - self._used),
                                  max(0.0, self._start + self.window - now), self._hub_remaining)
