"""The Hub's quota as the pin scan sees it: start a repo's check only when the window covers it,
say when and why pins went unchecked, and keep the quota state for `status`.

A check that the budget cannot finish is not started (*deferred*: its state stays as it was, so
it goes first next time) rather than cut in the middle (*unknown*). `once` reads the outcomes to
print `the Hub's API quota is spent until 14:05:12 UTC: 685 pins not checked (use --wait)`.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from monitor.detect.state import RepoState
from monitor.hub.budget import BUCKETS, Priority
from monitor.hub.client import BUDGET_SPENT, HubClient

RATE_LIMITED = "Hub rate limit"  # prefix of the errors of a 429 and of the pause after one
QUOTA_META = "hub_quota"


def check_cost(st: RepoState, complete: bool) -> int:
    """Requests one repo's check costs when nothing moved: refs (+ metadata when complete, + the
    authors' history on a first observation)."""
    if not st.baseline:
        return 3
    return 2 if complete else 1


class Gate:
    """Admits whole checks: a check starts only while the window's room, less what the checks
    already in flight may still spend (their cost less the requests they already sent, which the
    budget counts), covers its cost."""

    def __init__(self, client: HubClient, priority: Priority = Priority.PINS):
        self.client, self.priority = client, priority
        self._lock = threading.Lock()
        self._in_flight: dict[int, tuple[int, int]] = {}  # thread id -> (cost, calls admitted before)

    def claim(self, cost: int) -> str | None:
        """None when the check may start (then `release()` after it, same thread); else why not."""
        with self._lock:
            paused = self.client.stats.paused_for("api")
            if paused > 0:
                return f"{RATE_LIMITED}: paused for {paused:.0f}s (not checked)"
            if self.client.budget.room_for_claims(self.priority, self._in_flight) < cost:
                wait = self.client.budget.resets_in("api")
                return f"{BUDGET_SPENT} for this window (resets in {wait:.0f}s; not checked)"
            ident = threading.get_ident()
            self._in_flight[ident] = (cost, self.client.budget.admitted(ident))
            return None

    def release(self, cost: int = 0) -> None:
        with self._lock:
            self._in_flight.pop(threading.get_ident(), None)


def is_quota(error: str | None) -> bool:
    """Did the quota (ours or the Hub's) keep this repo unchecked?"""
    return bool(error) and (error.startswith(BUDGET_SPENT) or error.startswith(RATE_LIMITED))


def reset_at(client: HubClient, now: datetime | None = None) -> datetime:
    """When the api window resets (UTC, whole seconds)."""
    now = now or datetime.now(timezone.utc)
    wait = max(client.budget.resets_in("api"), client.stats.paused_for("api"))
    return (now + timedelta(seconds=wait)).replace(microsecond=0)


def quota_line(until: datetime, pins: int) -> str:
    """The contract line `once` prints before its summary (exact wording)."""
    return f"the Hub's API quota is spent until {until.strftime('%H:%M:%S')} UTC: {pins} pins not checked (use --wait)"


def remember(rt: Any) -> None:
    """Keep each bucket's quota state in the store, for `status` (which sends no request)."""
    now = datetime.now(timezone.utc)
    out = {}
    for name in BUCKETS:
        snap = rt.client.budget.snapshot(name)
        out[name] = {"remaining": snap.remaining, "quota": snap.quota,
                     "reset": (now + timedelta(seconds=snap.resets_in)).replace(microsecond=0).isoformat(),
                     "window": snap.window, "paused_for": round(rt.client.stats.paused_for(name), 1)}
    rt.store.set_meta(QUOTA_META, json.dumps({"at": now.replace(microsecond=0).isoformat(), "buckets": out},
                                             sort_keys=True))


def stored(store: Any) -> dict | None:
    try:
        value = json.loads(store.get_meta(QUOTA_META) or "null")
    except ValueError:
        return None
    return value if isinstance(value, dict) and isinstance(value.get("buckets"), dict) else None


def unchecked_keys(outcomes: Iterable[Any]) -> set[str]:
    """Repo keys a scan left without an answer: deferred, unknown or failed."""
    return {o.key for o in outcomes if o.status in ("deferred", "unknown", "error")}
