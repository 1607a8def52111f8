"""What a scan amounted to, in an operator's words: `hubwatch once`'s closing lines and the
daemon's one line per scan cycle and per delivery batch (logger `hubwatch.cycle`, INFO, shown by
`hubwatch run` unless -q)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from monitor.hub.client import UNREACHABLE

cycle_log = logging.getLogger("hubwatch.cycle")

# A check that only says "still no answer" changed nothing about the repo.
NOT_A_CHANGE = frozenset({"monitoring_degraded"})


@dataclass(frozen=True)
class PinCounts:
    checked: int  # pins whose repo was checked (a repo watched by two pins counts twice)
    changed: int  # pins whose check recorded a new finding (a move, a rename, the repo gone…)
    unknown: int  # pins whose check got no trustworthy answer from the Hub
    new_findings: int


def pin_counts(report: Any) -> PinCounts:
    """Per-pin counts of a `ScanReport`."""
    done = [o for o in report.outcomes if o.status != "skipped"]
    return PinCounts(
        checked=sum(o.pins for o in done),
        changed=sum(o.pins for o in done if any(f.kind not in NOT_A_CHANGE for f in o.new_findings)),
        # token_rejected: not checked at all (the token is the problem, said on its own line)
        unknown=sum(o.pins for o in done if o.status in ("unknown", "error", "token_rejected", "deferred")),
        new_findings=len(report.new_findings))


def summary_line(c: PinCounts, extra_findings: int = 0) -> str:
    """The contract line `hubwatch once` ends with (exact wording; scripts grep it)."""
    return (f"checked {c.checked} pins: {c.changed} changed, {c.unknown} unknown, "
            f"{c.new_findings + extra_findings} new findings")


def lookalike_line(r: Any) -> str:
    return (f"look-alike discovery: {r.probed} candidates probed ({r.probe_hits} exist), "
            f"{r.feed_authors} new-repo authors, {r.searched} searches, {r.assessed} assessed, "
            f"{len(r.new_findings)} new findings, {r.errors} errors")


def lookalike_fields(r: Any) -> dict[str, int]:
    d = {k: v for k, v in asdict(r).items() if isinstance(v, int)}
    d["new_findings"] = len(r.new_findings)
    return d


def unreachable_reason(report: Any, stats: Any = None) -> str | None:
    """Why no check got through when every one failed for want of a connection, else None.

    Only then: a Hub that answered even once (a 500, a 429) was reachable, and its unknowns are
    ordinary transient failures. Without `stats` (the daemon, whose counters span its whole life)
    the checks' own errors decide."""
    done = [o for o in report.outcomes if o.status != "skipped"]
    if not done or (stats is not None and stats.answers()) or not all(
            (o.error or "").startswith(UNREACHABLE) for o in done):
        return None
    if stats is not None and stats.unreachable_reason:
        return stats.unreachable_reason
    first = done[0].error or ""
    return first[len(UNREACHABLE):].strip(" ():") or "no connection"


def endpoint_host(endpoint: str) -> str:
    """The Hub's address as shown to people: scheme, host and port, no credentials or path."""
    try:
        parts = urlsplit(endpoint)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
    except ValueError:
        return "the configured endpoint"


def unreachable_line(endpoint: str, reason: str) -> str:
    return f"the Hub at {endpoint_host(endpoint)} could not be reached ({reason}): every check is unknown"


# --- the daemon's cycle lines ---------------------------------------------------------------------

def budget_left(budget: Any) -> tuple[int, int, float]:
    """(requests left, quota, seconds to the window's reset); the Hub's own count wins when lower."""
    snap = budget.snapshot()
    left = snap.remaining if snap.hub_remaining is None else min(snap.remaining, snap.hub_remaining)
    return left, snap.quota, snap.resets_in


def log_scan_cycle(report: Any, budget: Any, endpoint: str | None = None) -> PinCounts:
    """The cycle's line; when no check could even connect, it ends saying so and why (as `once`
    does), so a daemon on a host that cannot reach the Hub does not just count unknowns."""
    c = pin_counts(report)
    left, quota, resets = budget_left(budget)
    reason = unreachable_reason(report) if endpoint else None
    cycle_log.info(
        "scan cycle: checked %d pins, %d changed, %d unknown, %d new findings; %d Hub requests, "
        "budget left %d of %d (window resets in %ds)%s", c.checked, c.changed, c.unknown, c.new_findings,
        report.requests, left, quota, int(resets),
        f"; the Hub at {endpoint_host(endpoint)} could not be reached ({reason})" if reason else "",
        extra={"job": "scan_pins", "duration": round(report.seconds, 3),
               "fields": {**asdict(c), "requests": report.requests, "budget_left": left, "budget_quota": quota,
                          **({"unreachable": reason} if reason else {})}})
    return c


def log_lookalike_cycle(report: Any, budget: Any) -> None:
    left, quota, _ = budget_left(budget)
    cycle_log.info("%s; %d Hub requests, budget left %d of %d", lookalike_line(report), report.requests, left, quota,
                   extra={"job": "scan_lookalikes",
                          "fields": {**lookalike_fields(report), "budget_left": left, "budget_quota": quota}})


def log_delivery(report: Any) -> None:
    """One line per delivery batch that did something (an idle pass every 30 s says nothing)."""
    if not (report.sent or report.retried or report.dead):
        return
    per_sink = ", ".join(f"{name} {r.sent}/{r.retried}/{r.dead}" for name, r in report.per_sink.items()
                         if r.sent or r.retried or r.dead)
    cycle_log.info("delivery: %d sent, %d to retry, %d dead-lettered (sent/retry/dead per sink: %s)",
                   report.sent, report.retried, report.dead, per_sink,
                   extra={"job": "deliver", "fields": {"sent": report.sent, "retried": report.retried,
                                                       "dead": report.dead}})


def log_findings(findings: Any, job: str) -> None:
    """One WARNING line per new finding, severity first (pin findings are logged by scan_pins)."""
    log = logging.getLogger(f"hubwatch.{job}")
    for f in findings:
        log.warning("finding %s %s %s %s", f.severity, f.kind, f.subject, f.fingerprint,
                    extra={"job": job, "subject": f.subject, "fingerprint": f.fingerprint,
                           "fields": {"severity": f.severity, "kind": f.kind}})
