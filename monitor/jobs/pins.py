"""scan_pins: check every pinned repo, concurrently under a bound, and record each outcome."""

from __future__ import annotations

import ctypes
import json
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

from monitor.detect.findings import Finding
from monitor.detect.state import RepoState
from monitor.detect.token import token_origin
from monitor.hub.client import EventShareSpent, HubClient
from monitor.detect.content import ContentState
from monitor.jobs.content_check import ContentChecker, PinContent
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
    status: str  # ok | unknown | unavailable | error | skipped | token_rejected
    pins: int
    new_findings: tuple[Finding, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class ScanReport:
    checked: int
    ok: int
    unknown: int
    unavailable: int
    errors: int
    new_findings: tuple[Finding, ...]
    requests: int
    seconds: float
    token_rejected: int = 0  # repos not checked because the Hub rejected our token
    outcomes: tuple[RepoOutcome, ...] = ()


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


def pin_content(rt: Runtime):
    """The per-check content inspection factory the checker calls with a repo key."""
    checker = ContentChecker(rt.client)
    base = rt.settings.hub.endpoint

    def make(key: str) -> PinContent:
        return PinContent(checker, base, ContentState.from_json(rt.store.load_content(key)))

    return make


def scan_pins(rt: Runtime, *, complete: bool = False, only: set[str] | None = None,
              first: Sequence[str] = (), client: HubClient | None = None) -> ScanReport:
    """Check every pin (or only the repo keys in `only`); one bad repo never stops the others.
    The repos in `first` (deferred Hub events) are checked first. `client`: a view of rt.client
    (a Hub event's check: EventShareSpent then ends the scan, recording nothing more)."""
    started, requests_before = time.monotonic(), rt.client.stats.requests
    ahead = {key: i for i, key in enumerate(first)}
    watches = sorted((w for w in group_pins(rt.settings.pin) if only is None or w.key in only),
                     key=lambda w: ahead.get(w.key, len(ahead)))
    checker = PinChecker(client or rt.client, rt.settings.pins, rt.settings.hub.endpoint, content=pin_content(rt))
    sinks = list(rt.sinks)
    rejected = threading.Event()  # the token is refused: every further request would be too
    rt.client.stats.clear_token_rejected()  # asked again: the first check goes alone and tells

    def one(w: RepoWatch) -> tuple[str, tuple[Finding, ...], str | None]:
        if rt.stop.is_set():  # shutting down: repos not checked yet wait for the next start
            return "skipped", (), None
        if rejected.is_set():
            return "token_rejected", (), None
        now = rt.clock()
        before = RepoState.from_json(rt.store.load_state(w.key))
        try:
            result = checker.check(w, before, now, complete=complete)
        except EventShareSpent:
            raise
        except Exception:  # a bug must not sink the scan: log it, treat the repo as unknown
            log.exception("check of %s failed unexpectedly", w.repo.id)
            return "error", (), "internal error (see the log)"
        if result.status == "token_rejected":
            rejected.set()
        new = rt.store.record(w.key, result.state.to_json(), result.findings, sinks, now,
                              observation=_observation(before, result), content_json=result.content)
        for f in new:
            log.warning("finding %s %s %s %s", f.severity, f.kind, f.subject, f.fingerprint,
                        extra={"job": "scan_pins", "subject": f.subject, "fingerprint": f.fingerprint,
                               "fields": {"severity": f.severity, "kind": f.kind}})
        if result.status != "ok":
            log.info("%s: %s (%s)", w.repo.id, result.status, result.error)
        return result.status, tuple(new), result.error

    # The first repo alone: its answer tells the quota and whether the token is accepted before
    # the others fan out.
    outcomes = [one(w) for w in watches[:1]]
    with ThreadPoolExecutor(max_workers=max(1, rt.settings.hub.concurrency),
                            thread_name_prefix="pin") as pool:
        outcomes += list(pool.map(one, watches[1:]))
    _release_freed_memory()
    statuses = [s for s, _, _ in outcomes]
    per_key = Counter(p.key for p in rt.settings.pin)
    token_news = note_token(rt, rejected="token_rejected" in statuses,
                            worked=bool({"ok", "unavailable"} & set(statuses)), now=rt.clock())
    if "token_rejected" in statuses:
        log.warning("token from %s refused by the Hub (401 Invalid credentials): %d repo(s) not checked",
                    token_origin(rt.settings.hub.token_source), statuses.count("token_rejected"),
                    extra={"job": "scan_pins"})
    report = ScanReport(
        checked=len(statuses) - statuses.count("skipped"), ok=statuses.count("ok"), unknown=statuses.count("unknown"),
        unavailable=statuses.count("unavailable"), errors=statuses.count("error"),
        new_findings=tuple(f for _, fs, _ in outcomes for f in fs) + tuple(token_news),
        requests=rt.client.stats.requests - requests_before, seconds=time.monotonic() - started,
        token_rejected=statuses.count("token_rejected"),
        outcomes=tuple(RepoOutcome(w.key, s, per_key[w.key], fs, err) for w, (s, fs, err) in zip(watches, outcomes)))
    log.info("scan_pins: %d repos, %d ok, %d unknown, %d unavailable, %d errors, %d new findings, %d requests",
             report.checked, report.ok, report.unknown, report.unavailable, report.errors,
             len(report.new_findings), report.requests,
             extra={"job": "scan_pins", "duration": round(report.seconds, 3)})
    return report
