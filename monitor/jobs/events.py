"""Hub webhook events: a hint, never evidence.

Whoever holds the webhook secret can POST anything to /hooks/hub, so an event only *schedules* a
check of the pinned repo it names, and every finding comes from what the daemon itself reads:
- at most one event check per repo per `[hub_webhook] min_interval`; events arriving meanwhile
  are merged into the next one (never dropped: a repo's events always end in a check);
- the check is the steady-cycle check (one refs read when nothing moved, nothing more read);
- its Hub calls are the budget's lowest row (`Priority.EVENTS` in hub/budget.py, through `HubClient.for_events`): when that share is spent the
  check stops, records nothing, and the repo goes first in the next scheduled scan;
- a claimed tag move (`updatedRefs`) is kept only in checked form: its oldSha is the head we
  recorded for that tag and its newSha is a commit of the repo (one read, at most MAX_CLAIMS per
  repo and check). Then it is `tag_moved` even if the tag moved back before our refs read, the one
  trace of it; any other claim raises nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from monitor.detect import revisions as rv
from monitor.detect.findings import Finding
from monitor.detect.state import RepoState
from monitor.errors import HubError, NotFound, RevisionNotFound
from monitor.hub.models import RepoId

MAX_CLAIMS = 5  # claimed tag moves verified per repo and check (one Hub read each)
OUTCOMES = ("checked", "merged", "deferred", "ignored")  # hubwatch_hub_events_total{outcome}
STALE_AFTER = 600.0  # a check scheduled this long past its time is taken as lost (rescheduled)


@dataclass(frozen=True)
class TagClaim:
    tag: str
    old_sha: str
    new_sha: str


def tag_claims(event, recorded_tags: Mapping[str, str]) -> list[TagClaim]:
    """The event's tag moves worth one read each: a tag we recorded at `oldSha`, claimed to point
    at another `newSha`. Creations, deletions and moves of tags we never saw are not claims."""
    out: list[TagClaim] = []
    for u in event.updated_refs:
        if len(out) >= MAX_CLAIMS:
            break
        if not u.ref.startswith("refs/tags/") or u.old_sha is None or u.new_sha is None or u.old_sha == u.new_sha:
            continue
        tag = u.ref[len("refs/tags/"):]
        if recorded_tags.get(tag) == u.old_sha:
            out.append(TagClaim(tag, u.old_sha, u.new_sha))
    return out


@dataclass
class _Repo:
    last: float | None = None  # when its last event check started
    scheduled_for: float | None = None  # a check is scheduled (to start at this time)
    claims: list[TagClaim] = field(default_factory=list)
    events: int = 0  # events since its last check started


class EventGate:
    """Which event starts a check and when; the claims waiting for it; the repos deferred to the
    next scan. Thread-safe (HTTP workers offer, scheduler threads start); `clock` is monotonic."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._deferred: dict[str, None] = {}  # ordered set

    def offer(self, key: str, claims: Sequence[TagClaim], min_interval: float) -> tuple[str, float]:
        """An event for watched repo `key`: ("checked", seconds until its check may start) when it
        schedules one, ("merged", 0) when a check is already scheduled."""
        with self._lock:
            now = self.clock()
            r = self._repos.setdefault(key, _Repo())
            for c in claims:
                if c not in r.claims and len(r.claims) < MAX_CLAIMS:
                    r.claims.append(c)
            r.events += 1
            if r.scheduled_for is not None and now < r.scheduled_for + STALE_AFTER:
                return "merged", 0.0
            wait = 0.0 if r.last is None else max(0.0, r.last + min_interval - now)
            r.scheduled_for = now + wait
            return ("checked" if wait == 0 else "merged"), wait

    def start(self, key: str) -> tuple[list[TagClaim], int]:
        """The scheduled check of `key` starts: (its claims, how many events it answers)."""
        with self._lock:
            r = self._repos.setdefault(key, _Repo())
            r.last, r.scheduled_for = self.clock(), None
            claims, events, r.claims, r.events = r.claims, r.events, [], 0
            return claims, events

    def defer(self, key: str, claims: Sequence[TagClaim] = ()) -> None:
        """The event share is spent: `key` goes first in the next scan; its claims wait there."""
        with self._lock:
            r = self._repos.setdefault(key, _Repo())
            r.claims = list(dict.fromkeys([*claims, *r.claims]))[:MAX_CLAIMS]
            self._deferred[key] = None

    def take_deferred(self) -> list[tuple[str, list[TagClaim]]]:
        """The repos deferred since the last scan, oldest first, with their waiting claims."""
        with self._lock:
            out = []
            for key in self._deferred:
                r = self._repos.setdefault(key, _Repo())
                out.append((key, r.claims))
                r.claims = []
            self._deferred.clear()
            return out


def event_tag_finding(claim: TagClaim, base: str, repo: RepoId) -> Finding:
    """A checked tag move: the same fingerprint as the polled `tag_moved` of that move, so when our
    own refs read saw it too this is a no-op; when the tag moved back first, the only trace."""
    move = rv.Move(claim.tag, "tag", claim.old_sha, claim.new_sha, False)
    f = rv.describe_move(repo, base, move, (), None, None, (), ())
    evidence = {**f.evidence, "source": "Hub webhook event, newSha read back from the Hub"}
    return Finding(f.kind, f.severity, f.subject, f.summary, evidence, f.links, f.fingerprint)


def verify_claims(client, base: str, repo: RepoId, state: RepoState,
                  claims: Sequence[TagClaim]) -> tuple[list[Finding], list[TagClaim]]:
    """(findings of the claims that hold, claims left to verify later: the Hub did not answer).
    A claim our refs read already shows (the tag is at newSha now) costs nothing: the check's own
    finding covers it. EventShareSpent propagates (the caller defers what is left)."""
    found: list[Finding] = []
    left = list(claims)
    while left:
        claim = left[0]
        if state.tags.get(claim.tag) != claim.new_sha:
            try:
                seen = client.identity(repo, claim.new_sha).sha
            except (RevisionNotFound, NotFound):
                seen = None  # not a commit of this repo: the claim raises nothing
            except HubError:
                return found, left  # unknown: verified at the repo's next check
            if seen == claim.new_sha:
                found.append(event_tag_finding(claim, base, repo))
        left.pop(0)
    return found, []


def record_claims(rt, key: str, claims: Sequence[TagClaim]) -> tuple[list[Finding], list[TagClaim]]:
    """Verify the claims of pinned repo `key` against the Hub (the event share) and record the
    ones that hold -> (new findings, claims left for its next check)."""
    from monitor.hub.client import EventShareSpent

    pin = next((p for p in rt.settings.pin if p.key == key), None)
    if pin is None:  # no longer pinned (a reload)
        return [], []
    state = RepoState.from_json(rt.store.load_state(key))
    try:
        found, left = verify_claims(rt.client.for_events(), rt.settings.hub.endpoint, RepoId(pin.type, pin.repo),
                                    state, claims)
    except EventShareSpent:
        found, left = [], list(claims)
    new = rt.store.record(key, None, found, list(rt.sinks), rt.clock()) if found else []
    return new, left
