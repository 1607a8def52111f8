"""`once`'s quota-aware complete check: every pin checked, or said why not.

The first scan learns the quota from the first answer's `RateLimit-Policy` and checks whole repos
while the window covers them (jobs/quota.py); what it cannot cover is deferred. With `wait`, each
spent window is waited out (progress on stderr) and the deferred repos go next. Whatever is still
without an answer gets one retry at the end of the run.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Callable

from monitor.jobs import quota
from monitor.jobs.pins import ScanReport, scan_pins
from monitor.runtime import Runtime

WAIT_MARGIN = 0.5  # seconds past the Hub's reset before asking again


def combine(a: ScanReport, b: ScanReport) -> ScanReport:
    """`a` with the repos `b` checked again replaced by `b`'s outcomes."""
    later = {o.key: o for o in b.outcomes}
    outcomes = tuple(later.pop(o.key, o) for o in a.outcomes) + tuple(later.values())
    statuses = [o.status for o in outcomes]
    return replace(
        a, checked=len(statuses) - statuses.count("skipped"), ok=statuses.count("ok"),
        unknown=statuses.count("unknown") + statuses.count("deferred"), unavailable=statuses.count("unavailable"),
        errors=statuses.count("error"), token_rejected=statuses.count("token_rejected"),
        deferred=statuses.count("deferred"), new_findings=a.new_findings + b.new_findings,
        requests=a.requests + b.requests, seconds=a.seconds + b.seconds, outcomes=outcomes,
        fallbacks=a.fallbacks + b.fallbacks, last_ok={**a.last_ok, **b.last_ok})


def _deferred(report: ScanReport) -> set[str]:
    return {o.key for o in report.outcomes if o.status == "deferred" or
            (o.status == "unknown" and quota.is_quota(o.error))}


def _pins(report: ScanReport, keys: set[str]) -> int:
    return sum(o.pins for o in report.outcomes if o.key in keys)


def _wait_window(rt: Runtime, report: ScanReport, keys: set[str],
                 progress: Callable[[int, int, datetime], None] | None) -> bool:
    """Wait out the spent window; False when the run was stopped meanwhile."""
    total = sum(o.pins for o in report.outcomes)
    until = quota.reset_at(rt.client)
    if progress is not None:
        progress(total - _pins(report, keys), total, until)
    seconds = max(rt.client.budget.resets_in("api"), rt.client.stats.paused_for("api")) + WAIT_MARGIN
    return not rt.stop.wait(seconds)


def complete_check(rt: Runtime, *, wait: bool = False,
                   progress: Callable[[int, int, datetime], None] | None = None) -> ScanReport:
    """Every pin once as a complete check; `progress(pins checked, total, reset time)` before each wait."""
    report = scan_pins(rt, complete=True)

    def go_on(report: ScanReport) -> ScanReport:
        while wait and (keys := _deferred(report)) and not rt.stop.is_set():
            if not _wait_window(rt, report, keys, progress):
                break
            more = scan_pins(rt, complete=True, only=keys)
            report = combine(report, more)
            if more.requests == 0 and _deferred(report) == keys:
                break  # a fresh window that admits not even one repo (a quota below one check): stop
        return report

    report = go_on(report)
    # One retry, at the end of the run, of whatever is still without an answer.
    unanswered = quota.unchecked_keys(report.outcomes)
    if unanswered and not rt.stop.is_set() and not report.token_rejected and not _all_unreachable(report):
        report = go_on(combine(report, scan_pins(rt, complete=True, only=unanswered)))
    return report


def _all_unreachable(report: ScanReport) -> bool:
    from monitor.hub.client import UNREACHABLE

    done = [o for o in report.outcomes if o.status != "skipped"]
    return bool(done) and all((o.error or "").startswith(UNREACHABLE) for o in done)

