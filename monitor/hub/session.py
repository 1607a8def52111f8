"""Process-wide HTTP session set-up for huggingface_hub, and request accounting.

huggingface_hub reads HF_ENDPOINT once at import, so `prepare()` must run before anything
imports it. We install our own client factory to count every request (retries included) and
to read the Hub's RateLimit headers, which the quota budget and the benchmarks rely on.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from monitor.hub.budget import BUCKETS, Budget, bucket_of


@dataclass(frozen=True)
class RateLimitSnapshot:
    remaining: int
    reset_in: float
    limit: int | None
    seen_at: float
    bucket: str = "api"


class HubStats:
    """Thread-safe counters of Hub traffic, shared by every HubClient in the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.by_status: dict[int, int] = {}
        self.rate_limited = 0
        self.ratelimit: RateLimitSnapshot | None = None  # the last api answer's
        self.ratelimits: dict[str, RateLimitSnapshot] = {}  # bucket -> its last answer's
        # bucket -> monotonic time: set on a 429 so no job hammers a limited quota. Per bucket: a
        # 429 on a file download (resolvers) never pauses the api calls (pin refs) and vice versa.
        self.pause_until: dict[str, float] = {}
        # Set when a connection could not even be opened (refused, DNS, network down): for a short
        # while every call fails at once, so retries and backoff of hundreds of calls cannot add up
        # to minutes of waiting on a Hub we know is out of reach.
        self.unreachable_until = 0.0
        self.unreachable_reason: str | None = None
        # Set when the Hub answered 401 "Invalid credentials": every other call with the same token
        # would be refused too, so they fail at once instead of spending the quota on 401s. The pin
        # scan clears it at its start (its first call, sent alone, asks again).
        self.token_rejected_until = 0.0

    def on_request(self) -> None:
        with self._lock:
            self.requests += 1

    def on_response(self, status: int, ratelimit: RateLimitSnapshot | None, retry_after: float | None = None,
                    bucket: str = "api") -> None:
        """`bucket`: the one the request's URL belongs to; the RateLimit header's own name wins."""
        with self._lock:
            self.unreachable_until, self.unreachable_reason = 0.0, None  # it answered: reachable
            self.by_status[status] = self.by_status.get(status, 0) + 1
            if ratelimit is not None:
                bucket = ratelimit.bucket
                self.ratelimits[bucket] = ratelimit
                if bucket == "api":
                    self.ratelimit = ratelimit
            if status == 429:
                self.rate_limited += 1
                # The Hub's RateLimit reset, else Retry-After, else a cautious minute.
                wait = ratelimit.reset_in if ratelimit else retry_after if retry_after is not None else 60.0
                self.pause_until[bucket] = max(self.pause_until.get(bucket, 0.0),
                                               time.monotonic() + min(wait, 3600.0))

    def on_unreachable(self, reason: str, hold: float) -> None:
        with self._lock:
            self.unreachable_reason = reason
            self.unreachable_until = max(self.unreachable_until, time.monotonic() + hold)

    def unreachable(self) -> str | None:
        """Why the Hub is known to be out of reach right now, or None."""
        with self._lock:
            return self.unreachable_reason if time.monotonic() < self.unreachable_until else None

    def on_token_rejected(self, hold: float) -> None:
        with self._lock:
            self.token_rejected_until = max(self.token_rejected_until, time.monotonic() + hold)

    def token_rejected(self) -> bool:
        """Did the Hub refuse our token within the hold? Then no call is sent with it."""
        with self._lock:
            return time.monotonic() < self.token_rejected_until

    def clear_token_rejected(self) -> None:
        with self._lock:
            self.token_rejected_until = 0.0

    def answers(self) -> int:
        """HTTP answers received (any status): 0 means the Hub was never reached."""
        with self._lock:
            return sum(self.by_status.values())

    def accepted(self) -> int:
        """2xx answers so far: each one proves the Hub took our token."""
        with self._lock:
            return sum(n for status, n in self.by_status.items() if 200 <= status < 300)

    def paused_for(self, bucket: str = "api") -> float:
        """Seconds no call of this bucket is sent (after a 429 on it)."""
        with self._lock:
            return max(0.0, self.pause_until.get(bucket, 0.0) - time.monotonic())

    def reset(self) -> None:
        with self._lock:
            self.requests, self.by_status, self.rate_limited = 0, {}, 0
            self.ratelimit, self.ratelimits, self.pause_until = None, {}, {}
            self.unreachable_until, self.unreachable_reason = 0.0, None
            self.token_rejected_until = 0.0


STATS = HubStats()
BUDGET = Budget()
_thread = threading.local()


def thread_requests() -> int:
    """Hub requests sent so far by the calling thread (retries and redirect hops included).

    A pin check runs in one thread, so the difference between two readings is what the check
    spent: that is how its per-check request cap is held, whatever retries or renames cost."""
    return getattr(_thread, "requests", 0)
_prepared: str | None = None
_lock = threading.Lock()


def prepare(endpoint: str, pool_size: int = 32) -> None:
    """Point huggingface_hub at `endpoint` (before its import when possible) and hook the session."""
    global _prepared
    with _lock:
        os.environ.setdefault("HF_ENDPOINT", endpoint)
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        if _prepared is not None:
            return
        import httpx2
        from huggingface_hub.utils import set_client_factory
        from huggingface_hub.utils._http import hf_request_event_hook

        def on_request(request: "httpx2.Request") -> None:
            STATS.on_request()
            BUDGET.count(bucket_of(str(request.url)))
            _thread.requests = getattr(_thread, "requests", 0) + 1

        def on_response(response: "httpx2.Response") -> None:
            note_answer(response)

        def factory() -> "httpx2.Client":
            return httpx2.Client(
                event_hooks={"request": [hf_request_event_hook, on_request], "response": [on_response]},
                follow_redirects=True,
                timeout=None,
                limits=httpx2.Limits(max_connections=pool_size * 2, max_keepalive_connections=pool_size),
            )

        set_client_factory(factory)
        # huggingface_hub installs its own stderr handler; route its records through ours so
        # --log-format json stays pure JSON and our secret redaction applies to them too.
        from monitor import logs

        logs.adopt_third_party("huggingface_hub")
        _prepared = endpoint


_POLICY_QUOTA = re.compile(r"(?:^|;)\s*q\s*=\s*(\d+)\s*(?:;|$)")
_POLICY_WINDOW = re.compile(r"(?:^|;)\s*w\s*=\s*(\d+)\s*(?:;|$)")


def note_answer(response: Any) -> None:
    """One answer of the Hub (API call or file read): its status and RateLimit headers, for the
    process's STATS (reachability, a 429's pause of its bucket) and BUDGET (per bucket)."""
    from huggingface_hub.utils import parse_ratelimit_headers

    info = parse_ratelimit_headers(response.headers)
    snap = None
    if info is not None and info.resource_type in BUCKETS:
        snap = RateLimitSnapshot(info.remaining, float(info.reset_in_seconds), info.limit,
                                 time.monotonic(), info.resource_type)
    STATS.on_response(response.status_code, snap, _retry_after(response.headers.get("Retry-After")),
                      bucket_of(str(response.request.url)))
    # Each bucket is metered on its own: the answer's RateLimit names which one it speaks of.
    if snap is not None:
        quota, window = bucket_policy(response.headers.get("RateLimit-Policy"), snap.bucket)
        BUDGET.observe(snap.bucket, info.remaining, float(info.reset_in_seconds), quota, window)


def bucket_policy(policy: str | None, bucket: str = "api") -> tuple[int | None, int | None]:
    """(quota, window seconds) of one bucket's policy in a RateLimit-Policy header, e.g.
    `"fixed window";"resolvers";q=5000;w=300`.

    Read here rather than from huggingface_hub's parse, which takes the first q= of any policy
    and none at all when the RateLimit header is missing."""
    for item in (policy or "").split(","):
        params = [p.strip() for p in item.split(";")]
        if f'"{bucket}"' in params:
            q, w = _POLICY_QUOTA.search(item), _POLICY_WINDOW.search(item)
            return (int(q.group(1)) if q else None), (int(w.group(1)) if w and int(w.group(1)) > 0 else None)
    return None, None


def api_quota(policy: str | None) -> int | None:
    """The quota of the "api" policy in a RateLimit-Policy header."""
    return bucket_policy(policy, "api")[0]


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
