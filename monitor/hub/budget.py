"""One Hub request budget for the whole process: per rate-limit bucket, fixed shares per caller.

The Hub meters three buckets separately, each in fixed windows (5 minutes unless its
`RateLimit-Policy` says `w=`): `api` (every `/api/` call), `resolvers` (file downloads, any URL
with a `/resolve/` segment) and `pages` (everything else). A 429 on one says nothing about the
others, so each is tracked on its own: a spent `resolvers` window never holds back a pin's refs.

How to draw on it (the API other modules use)::

    from monitor.hub.budget import Priority, bucket_of
    budget.admit(Priority.PINS)                        # one /api/ call of the pin scan
    budget.admit(Priority.EVENTS)                      # a webhook / HTTP / Slack triggered call
    budget.admit(Priority.PINS, bucket="resolvers")    # a file read (content inspection)
    budget.count(bucket_of(url))                       # the session hook: one real request went out
    budget.observe("api", remaining, reset_in, quota, window)   # the Hub's RateLimit headers

`HubClient` does all three for its callers: pick the row with `client.for_priority(Priority.X)`
and the bucket follows from the URL (`bucket_of`). A pin check triggered by a Hub webhook:
`scan_pins(rt, complete=True, only={key}, priority=Priority.EVENTS)` (its repo comes back
*deferred* when the events' share is spent: the next scheduled scan checks it, oldest first).
File reads of content inspection: `client.file_text(…)` and friends go to `resolvers` by their URL. `admit` counts the call at once (concurrent
callers cannot all pass the check before any is counted); the session hook's `count` then
consumes that reservation, and counts retries on top.

The fixed-share table (highest first). Every row stops once the window's total use reaches its
ceiling; the rows below the pins also share what the pins leave them, and each has its own cap:

| row          | may use the window up to           | own share of the window |
|--------------|------------------------------------|-------------------------|
| `PINS`       | 95% (the last 5%: other tools)     | —                       |
| `LOOKALIKES` | 70%, minus the pins' reserve       | —                       |
| `CLONES`     | 70%, minus the pins' reserve       | 30%                     |
| `ROSTER`     | 70%, minus the pins' reserve       | 30%                     |
| `EVENTS`     | 70%, minus the pins' reserve       | 10% (lowest row)        |

The pins' reserve is at least 25% of the quota and never below what their last steady cycle
needed (`reserve_for_pins(n)`, set by the pin scan): whatever the rows below ask for — a flood of
webhook events, HTTP/Slack lookups — the next pin scan keeps what a steady cycle needs. `EVENTS`
is the lowest row: checks and look-ups triggered from outside (Hub webhooks, HTTP and Slack
lookups). When the Hub's own `RateLimit` header says fewer requests remain than we think, its
word wins; when it shows a new window began, ours restarts with it.

The quota is the one the Hub advertises (`RateLimit-Policy: …;q=N`), for `api` capped by
`limits.hub_requests_per_5min` when that is set; before the first answer, the Hub's published
defaults (hub-docs rate-limits: api 500 anonymous / 1,000 free; resolvers 3,000 / 5,000; pages
100 / 200). A process sends its first call alone and lets the others go only once it finished:
started into a spent window, it learns so from one answer instead of a burst of 429s.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

WINDOW = 300.0
ANONYMOUS_QUOTA, TOKEN_QUOTA = 500, 1000  # the Hub's api quotas per 5 minutes until it tells us its own
BUCKETS = ("api", "resolvers", "pages")
DEFAULT_QUOTAS = {"api": (ANONYMOUS_QUOTA, TOKEN_QUOTA), "resolvers": (3000, 5000), "pages": (100, 200)}
FIRST_CALL_WAIT = 120.0  # never wait longer than this for the first call (its own timeouts end it sooner)
SAFETY = 0.95  # never plan to use the last 5%: other tools may share the token
LOW_PRIORITY_SHARE = 0.7  # every row below the pins stops once 70% of the window is used
PINS_FLOOR = 0.25  # the pins' reserve is never below a quarter of the window
ON_DEMAND_SHARE = 0.1  # EVENTS: at most 10% of the window (100 of a free token's 1,000)


class Priority(enum.IntEnum):
    """Rows of the fixed-share table, highest first (see the module docstring)."""

    PINS = 0
    LOOKALIKES = 1
    CLONES = 2
    ROSTER = 3
    EVENTS = 4  # lowest: webhook-, HTTP- and Slack-triggered checks and look-ups


# row -> (ceiling of the window's total use, own share of the window or None)
SHARES: dict[Priority, tuple[float, float | None]] = {
    Priority.PINS: (SAFETY, None),
    Priority.LOOKALIKES: (LOW_PRIORITY_SHARE, None),
    Priority.CLONES: (LOW_PRIORITY_SHARE, 0.3),
    Priority.ROSTER: (LOW_PRIORITY_SHARE, 0.3),
    Priority.EVENTS: (LOW_PRIORITY_SHARE, ON_DEMAND_SHARE),
}


def bucket_of(url: str) -> str:
    """The Hub's bucket for a request URL: `api`, `resolvers` (a `/resolve/` segment) or `pages`."""
    path = urlsplit(url).path
    if path.startswith("/api/"):
        return "api"
    return "resolvers" if "/resolve/" in path else "pages"


@dataclass(frozen=True)
class BudgetSnapshot:
    quota: int
    used: int
    remaining: int
    resets_in: float
    hub_remaining: int | None
    bucket: str = "api"
    window: float = WINDOW


class _Bucket:
    """One bucket's window (no lock of its own: Budget holds the lock)."""

    def __init__(self, name: str, start: float, window: float):
        self.name, self.window, self.start = name, window, start
        self.used = 0
        self.reserved = 0  # admitted calls whose first request has not been seen yet
        self.rows: dict[Priority, int] = {}
        self.hub_remaining: int | None = None
        self.hub_reset_at = 0.0
        self.advertised: int | None = None
        self.aligned = False  # our window start follows the Hub's (after its first answer)

    def roll(self, now: float) -> None:
        if now - self.start >= self.window:
            self.start += self.window * math.floor((now - self.start) / self.window)
            self.used, self.reserved, self.rows = 0, 0, {}
        if self.hub_remaining is not None and now >= self.hub_reset_at:
            self.hub_remaining = None


class Budget:
    def __init__(self, quota: int | None = None, window: float = WINDOW, clock: Callable[[], float] = time.monotonic,
                 *, token: bool = True):
        self._lock = threading.Condition()
        self.window, self.clock = window, clock
        self.configured = quota  # limits.hub_requests_per_5min (api); None: follow the Hub
        self.token = token
        self.denied = 0
        self.denied_by: dict[str, int] = {}
        self._pins_need = 0
        self._admitted: dict[int, int] = {}  # thread id -> api calls admitted (whole-check claims)
        self._first = "unsent"  # the process's first call: unsent | in_flight | done
        self._buckets = {b: _Bucket(b, clock(), window) for b in BUCKETS}

    # --- quotas -------------------------------------------------------------------------------
    def _quota(self, b: _Bucket) -> int:
        default = DEFAULT_QUOTAS[b.name][1 if self.token else 0]
        hub = b.advertised
        if b.name != "api" or self.configured is None:
            return hub if hub is not None else default
        return min(self.configured, hub) if hub is not None else self.configured

    @property
    def quota(self) -> int:
        """The api quota we plan against: the Hub's, or the configured one when that is lower."""
        with self._lock:
            return self._quota(self._buckets["api"])

    @property
    def advertised(self) -> int | None:
        return self._buckets["api"].advertised

    @property
    def default(self) -> int:
        return DEFAULT_QUOTAS["api"][1 if self.token else 0]

    def reset(self) -> None:
        """Forget everything, as a new process would (tests)."""
        with self._lock:
            self._buckets = {b: _Bucket(b, self.clock(), self.window) for b in BUCKETS}
            self.denied, self.denied_by, self._pins_need, self._first = 0, {}, 0, "unsent"
            self._lock.notify_all()

    def configure(self, quota: int | None, *, token: bool = True) -> None:
        """`quota`: limits.hub_requests_per_5min (None when not set); `token`: whether calls carry one."""
        with self._lock:
            self.configured, self.token = quota, token

    def reserve_for_pins(self, requests: int) -> None:
        """What a steady pin cycle needs (its last cycle's requests): the rows below the pins leave
        at least this much of every api window (never less than PINS_FLOOR of it)."""
        with self._lock:
            self._pins_need = max(0, int(requests))

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

    # --- accounting ------------------------------------------------------------------------------
    def _bucket(self, name: str) -> _Bucket:
        b = self._buckets.get(name)
        if b is None:
            raise ValueError(f"unknown rate-limit bucket {name!r} (one of {', '.join(BUCKETS)})")
        b.roll(self.clock())
        return b

    def count(self, bucket: str = "api") -> None:
        """One real request went out (called from the HTTP session hook). The first request of an
        admitted call was counted when it was admitted; retries count here."""
        with self._lock:
            b = self._bucket(bucket)
            if b.reserved > 0:
                b.reserved -= 1
            else:
                b.used += 1
            if b.hub_remaining is not None:
                b.hub_remaining = max(0, b.hub_remaining - 1)

    def observe(self, bucket: str, remaining: int, reset_in: float, quota: int | None = None,
                window: float | None = None) -> None:
        """The Hub's RateLimit headers of one answer in `bucket`: requests left, seconds to the
        reset, and the quota and window its policy advertises."""
        with self._lock:
            now = self.clock()
            b = self._bucket(bucket)
            if window is not None and window > 0:
                b.window = float(window)
            if quota is not None and quota > 0:
                b.advertised = quota
            hub_start = now + reset_in - b.window
            new_window = b.aligned and hub_start > b.start + b.window / 2
            if not b.aligned or new_window:  # our first sight of the Hub's clock, or a new window began
                b.start, b.aligned = hub_start, True
                if new_window:
                    b.used, b.rows = b.reserved, {}
                if quota is not None:  # the Hub's count (other tools included), plus our calls not yet sent
                    b.used = max(b.used, quota - remaining + b.reserved)
            b.hub_remaining, b.hub_reset_at = remaining, now + reset_in

    # --- admission -------------------------------------------------------------------------------
    def _ceiling(self, row: Priority, quota: int, b: "_Bucket | None" = None) -> float:
        ceiling, _ = SHARES[row]
        if row is Priority.PINS:
            return quota * ceiling
        # The pins keep what a steady cycle needs, less what they already spent in this window:
        # the reserve is room left for them, not counted twice beside their own use.
        need = min(self._pins_need, quota * SAFETY) - (b.rows.get(Priority.PINS, 0) if b is not None else 0)
        reserve = max(quota * PINS_FLOOR, need)
        return min(quota * ceiling, quota * SAFETY - reserve)

    def admit(self, priority: Priority = Priority.PINS, bucket: str = "api") -> bool:
        """May one more call of this row start now in this bucket? Counted at once when it may."""
        with self._lock:
            b = self._bucket(bucket)
            quota = self._quota(b)
            ceiling = self._ceiling(priority, quota, b)
            own = SHARES[priority][1]
            ok = b.used < int(ceiling) and (own is None or b.rows.get(priority, 0) < int(quota * own))
            if ok and b.hub_remaining is not None:
                ok = b.hub_remaining > quota - ceiling
            if not ok:
                self.denied += 1
                self.denied_by[bucket] = self.denied_by.get(bucket, 0) + 1
            else:
                b.used += 1
                b.reserved += 1
                b.rows[priority] = b.rows.get(priority, 0) + 1
                if bucket == "api":
                    if len(self._admitted) > 10_000:  # threads come and go: forget (claims then count in full)
                        self._admitted.clear()
                    ident = threading.get_ident()
                    self._admitted[ident] = self._admitted.get(ident, 0) + 1
            return ok

    def admitted(self, ident: int | None = None) -> int:
        """api calls admitted so far in thread `ident` (default: the calling thread)."""
        with self._lock:
            return self._admitted.get(threading.get_ident() if ident is None else ident, 0)

    def room_for_claims(self, priority: Priority, claims: dict[int, tuple[int, int]]) -> int:
        """`room(priority)` less what checks in flight may still spend: `claims` maps a thread id
        to (its check's cost, `admitted(thread)` when it started). Read under one lock, so a call
        admitted meanwhile is counted once, never twice."""
        with self._lock:
            unspent = sum(max(0, cost - (self._admitted.get(t, 0) - start)) for t, (cost, start) in claims.items())
            return self.room(priority) - unspent

    def room(self, priority: Priority = Priority.PINS, bucket: str = "api") -> int:
        """How many more calls of this row the window admits now (planning; nothing is counted)."""
        with self._lock:
            b = self._bucket(bucket)
            quota = self._quota(b)
            ceiling = self._ceiling(priority, quota, b)
            left = int(ceiling) - b.used
            own = SHARES[priority][1]
            if own is not None:
                left = min(left, int(quota * own) - b.rows.get(priority, 0))
            if b.hub_remaining is not None:
                left = min(left, b.hub_remaining - math.ceil(quota - ceiling))
            return max(0, left)

    def resets_in(self, bucket: str = "api") -> float:
        with self._lock:
            now = self.clock()
            b = self._bucket(bucket)
            ours = b.start + b.window - now
            return max(0.0, b.hub_reset_at - now if b.hub_remaining == 0 else ours)

    def snapshot(self, bucket: str = "api") -> BudgetSnapshot:
        with self._lock:
            now = self.clock()
            b = self._bucket(bucket)
            quota = self._quota(b)
            remaining = max(0, quota - b.used)
            if b.hub_remaining is not None:
                remaining = min(remaining, b.hub_remaining)
            return BudgetSnapshot(quota, b.used, remaining, max(0.0, b.start + b.window - now), b.hub_remaining,
                                  bucket, b.window)

    def snapshots(self) -> dict[str, BudgetSnapshot]:
        return {name: self.snapshot(name) for name in BUCKETS}
