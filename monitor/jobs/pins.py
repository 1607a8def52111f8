"""scan_pins: check every pinned repo, concurrently under a bound, and record each outcome."""

from __future__ import annotations

import ctypes
import json
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Mapping, Sequence

from monitor.detect.findings import Finding
from monitor.detect.state import RepoState
from monitor.detect.token import token_origin
from monitor.detect.content import ContentState
from monitor.detect.times import iso, parse_iso
from monitor.hub.budget import Priority
from monitor.hub.client import EventShareSpent, HubClient
from monitor.jobs import quota
from monitor.jobs.content_check import ContentChecker, PinContent
from monitor.jobs.heads import CHECK, LISTED, REFS, SCAN, Fallback, Step, after_check, hold_per_repo, plan_cycle, \
    say_fallback
from monitor.jobs.pin_check import CheckResult, PinChecker, RepoWatch, group_pins
from monitor.jobs.token import note_token
from monitor.runtime import Runtime

log = logging.getLogger("hubwatch.pins")

try:  # glibc only; musl and macOS have no malloc_trim, and need none of this
    _malloc_trim = ctypes.CDLL(None).malloc_trim
except Exception:
    _malloc_trim = None


def _release_freed_memory() -> None:
    """Return the pages a scan freed to the OS. A scan allocates from many threads at once and
    glibc keeps what they free inside its heaps, so without this the daemon's RSS creeps up a
    little every cycle with nothing live (benchmarks/soak.py: +6% over 500 cycles, flat with it)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


@dataclass(frozen=True)
class RepoOutcome:
    """How one repo's check ended, for summaries: `pins` is how many pins watch that repo."""

    key: str
    status: str  # ok | unknown | unavailable | error | skipped | token_rejected | deferred
    pins: int
    new_findings: tuple[Finding, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class ScanReport:
    checked: int
    ok: int
    unknown: int  # deferred repos included: no answer this cycle
    unavailable: int
    errors: int
    new_findings: tuple[Finding, ...]
    requests: int
    seconds: float
    token_rejected: int = 0  # repos not checked because the Hub rejected our token
    outcomes: tuple[RepoOutcome, ...] = ()
    deferred: int = 0  # repos not checked: the request budget (the Hub's quota) was spent first
    listed: int = 0  # repos the namespace listings answered for (no request of their own)
    listing_pages: int = 0
    fallbacks: tuple[Fallback, ...] = ()
    last_ok: Mapping[str, str | None] = field(default_factory=dict)  # repo key -> last_ok after the scan


def _observation(before: RepoState, result: CheckResult) -> str | None:
    """A history row only when something visible changed, so the table grows with events, not time."""
    after = result.state
    seen = (before.branches, before.tags, before.unavailable_kind, before.unknown_since is not None,
            before.object_id, before.scan_issues)
    now = (after.branches, after.tags, after.unavailable_kind, after.unknown_since is not None,
           after.object_id, after.scan_issues)
    if seen == now and not result.findings:
        return None
    return json.dumps({"status": result.status, "branches": after.branches, "tags": after.tags,
                       "object_id": after.object_id, "error": result.error,
                       "findings": [f.fingerprint for f in result.findings]}, sort_keys=True)


def pin_content(rt: Runtime, client: HubClient):
    """The per-check content inspection factory the checker calls with a repo key. Its reads draw
    on `client`'s row of the budget, the scan's own (a Hub event's check: EVENTS)."""
    checker = ContentChecker(client)
    base = rt.settings.hub.endpoint

    def make(key: str) -> PinContent:
        return PinContent(checker, base, ContentState.from_json(rt.store.load_content(key)))

    return make


def _checkers(rt: Runtime, base: HubClient) -> dict[str, PinChecker]:
    """One checker per planned action: the per-repo check as configured; refs alone (metadata
    not due: the listing already showed identity and flags); the metadata (scan) read now."""
    pins, endpoint, content = rt.settings.pins, rt.settings.hub.endpoint, pin_content(rt, base)
    return {CHECK: PinChecker(base, pins, endpoint, content=content),
            REFS: PinChecker(base, replace(pins, metadata_every=float("inf")), endpoint, content=content),
            SCAN: PinChecker(base, replace(pins, metadata_every=0.0), endpoint, content=content)}


def scan_pins(rt: Runtime, *, complete: bool = False, only: set[str] | None = None,
              priority: Priority = Priority.PINS, first: Sequence[str] = (),
              client: HubClient | None = None) -> ScanReport:
    """Check every pin (or only the repo keys in `only`); one bad repo never stops the others.

    A steady cycle (not `complete`, not `only`) learns heads in bulk (jobs/heads.py). Repos go
    oldest `last_ok` first (the repos in `first`, deferred Hub events, before them), and one
    starts only while the request budget still covers it: what the quota does not cover is
    *deferred* (its state untouched), so it goes first next time. `priority`: the budget row the
    checks draw on. `client`: a view of rt.client — a Hub event's check passes
    `rt.client.for_events()` (the lowest row, EVENTS): EventShareSpent then ends the scan,
    recording nothing more."""
    started, requests_before = time.monotonic(), rt.client.stats.requests
    watches = [w for w in group_pins(rt.settings.pin) if only is None or w.key in only]
    raw = rt.store.load_states() if only is None else {k: rt.store.load_state(k) for k in only}
    states = {w.key: RepoState.from_json(raw.get(w.key)) for w in watches}
    del raw
    ahead = {key: i for i, key in enumerate(first)}
    # deferred events first, then never answered or longest ago
    watches.sort(key=lambda w: (ahead.get(w.key, len(ahead)), states[w.key].last_ok or ""))
    if client is not None:
        priority = client.priority
    checkers = _checkers(rt, client if client is not None else rt.client.for_priority(priority))
    sinks = list(rt.sinks)
    rejected = threading.Event()  # the token is refused: every further request would be too
    rt.client.stats.clear_token_rejected()  # asked again: the first check goes alone and tells
    gate = quota.Gate(rt.client, priority)
    fallbacks: list[Fallback] = []
    said: set[str] = set()
    lock = threading.Lock()
    if complete or only is not None:
        plan_steps, pages = [Step(w, CHECK) for w in watches], 0
    else:
        plan = plan_cycle(rt.client, rt.store, rt.settings.pins, watches, states, rt.clock())
        order = {w.key: i for i, w in enumerate(watches)}
        # a repo a Hub event reported (its check deferred) gets its refs read now, whatever the listing shows
        steps = [Step(s.watch, CHECK) if s.watch.key in ahead and s.action in (LISTED, SCAN) else s
                 for s in plan.steps]
        # Oldest last_ok first, except that a sweep's read (nothing seen moving) waits behind the
        # reads something asked for (a listed move, a tag pin) unless its repo is already stale:
        # under a short quota a move is found in this cycle, and no sweep waits past two cycles.
        stale_before = rt.clock() - timedelta(seconds=2 * rt.settings.pins.every)

        def waits(s: Step) -> bool:
            at = parse_iso(states[s.watch.key].last_ok)
            return s.sweep and s.watch.key not in ahead and at is not None and at > stale_before

        plan_steps = sorted(steps, key=lambda s: (waits(s), order[s.watch.key]))
        pages, fallbacks = plan.pages, list(plan.fallbacks)
    last_ok: dict[str, str | None] = {w.key: states[w.key].last_ok for w in watches}
    del states

    def disagreed(w: RepoWatch, now) -> None:
        fb = Fallback(w.repo.type, w.repo.id.split("/", 1)[0].lower(), "disagrees")
        with lock:
            if fb.namespace in said:
                return
            said.add(fb.namespace)
            fallbacks.append(fb)
        say_fallback(rt.store, fb, f"the listing did not show {w.repo.id}'s head")
        hold_per_repo(rt.store, fb, now, rt.settings.pins.refs_every)

    def one(step: Step) -> tuple[str, tuple[Finding, ...], str | None]:
        w = step.watch
        if rt.stop.is_set():  # shutting down: repos not checked yet wait for the next start
            return "skipped", (), None
        if rejected.is_set():
            return "token_rejected", (), None
        now = rt.clock()
        before = RepoState.from_json(rt.store.load_state(w.key))
        cost = quota.check_cost(before, complete)
        deferred = gate.claim(cost)
        if deferred is not None:
            if client is not None and client.event:  # a Hub event's check: its repo goes first next scan
                raise EventShareSpent(deferred)
            return "deferred", (), deferred
        try:
            result = checkers[step.action if step.action in checkers else CHECK].check(
                w, before, now, complete=complete)
        except EventShareSpent:
            raise
        except Exception:  # a bug must not sink the scan: log it, treat the repo as unknown
            log.exception("check of %s failed unexpectedly", w.repo.id)
            return "error", (), "internal error (see the log)"
        finally:
            gate.release(cost)
        if result.status == "token_rejected":
            rejected.set()
        state, disagrees = after_check(step, before, result.state, result.status, now)
        if disagrees:
            disagreed(w, now)
        new = rt.store.record(w.key, state.to_json(), result.findings, sinks, now,
                              observation=_observation(before, result), content_json=result.content)
        last_ok[w.key] = state.last_ok
        for f in new:
            log.warning("finding %s %s %s %s", f.severity, f.kind, f.subject, f.fingerprint,
                        extra={"job": "scan_pins", "subject": f.subject, "fingerprint": f.fingerprint,
                               "fields": {"severity": f.severity, "kind": f.kind}})
        if result.status != "ok":
            log.info("%s: %s (%s)", w.repo.id, result.status, result.error)
        return result.status, tuple(new), result.error

    # Repos the listings answered for: nothing changed, no request; recorded in one transaction.
    listed = [s for s in plan_steps if s.action == LISTED]
    touched = bool(listed) and not rt.stop.is_set()
    if touched:
        at = iso(rt.clock())
        rt.store.touch_states([s.watch.key for s in listed], at, rt.clock())
        last_ok.update({s.watch.key: at for s in listed})
    # The first repo alone: its answer tells the quota and whether the token is accepted before
    # the others fan out.
    ordered = [s for s in plan_steps if s.action != LISTED]
    outcomes = [one(s) for s in ordered[:1]]
    with ThreadPoolExecutor(max_workers=max(1, rt.settings.hub.concurrency),
                            thread_name_prefix="pin") as pool:
        outcomes += list(pool.map(one, ordered[1:]))
    ordered += listed
    outcomes += [("ok" if touched else "skipped", (), None)] * len(listed)
    _release_freed_memory()
    steps_done = [s.watch for s in ordered]
    statuses = [s for s, _, _ in outcomes]
    per_key = Counter(p.key for p in rt.settings.pin)
    token_news = note_token(rt, rejected="token_rejected" in statuses,
                            worked=bool({"ok", "unavailable"} & set(statuses)), now=rt.clock())
    if "token_rejected" in statuses:
        log.warning("token from %s refused by the Hub (401 Invalid credentials): %d repo(s) not checked",
                    token_origin(rt.settings.hub.token_source), statuses.count("token_rejected"),
                    extra={"job": "scan_pins"})
    report = ScanReport(
        checked=len(statuses) - statuses.count("skipped"), ok=statuses.count("ok"),
        unknown=statuses.count("unknown") + statuses.count("deferred"),
        unavailable=statuses.count("unavailable"), errors=statuses.count("error"),
        new_findings=tuple(f for _, fs, _ in outcomes for f in fs) + tuple(token_news),
        requests=rt.client.stats.requests - requests_before, seconds=time.monotonic() - started,
        token_rejected=statuses.count("token_rejected"),
        outcomes=tuple(RepoOutcome(w.key, s, per_key[w.key], fs, err)
                       for w, (s, fs, err) in zip(steps_done, outcomes)),
        deferred=statuses.count("deferred"), listed=sum(1 for s in ordered if s.action == LISTED),
        listing_pages=pages, fallbacks=tuple(fallbacks), last_ok=last_ok)
    if not complete and only is None and not report.deferred:
        rt.client.budget.reserve_for_pins(report.requests)  # what the rows below must leave the pins
    quota.remember(rt)
    log.info("scan_pins: %d repos, %d ok, %d unknown, %d unavailable, %d errors, %d new findings, %d requests",
             report.checked, report.ok, report.unknown, report.unavailable, report.errors,
             len(report.new_findings), report.requests,
             extra={"job": "scan_pins", "duration": round(report.seconds, 3)})
    return report
