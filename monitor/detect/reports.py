"""Reports: messages that are not findings (the daily digest). PURE: facts in, a Report out.

A report is never deduplicated (every digest is sent, even one identical to yesterday's: its
arrival is the point — silence must never be mistaken for health) and never counted as a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from monitor.detect.times import iso


@dataclass(frozen=True)
class Report:
    kind: str  # "digest"
    payload: Mapping[str, Any] = field(compare=False)  # JSON-serialisable
    created_at: str = ""  # ISO 8601 UTC


@dataclass(frozen=True)
class DigestFacts:
    pins: int
    unknown: int  # pins whose last check got no trustworthy answer
    unavailable: int  # pins whose repo is gone, gated or disabled
    changes: int  # new findings about pins in the period
    new_lookalikes: int  # new look-alike findings in the period
    open_findings: int  # not acknowledged, all time
    open_by_severity: Mapping[str, int]
    lookalike: Mapping[str, Any] | None  # coverage (see jobs/status.py), None without protected names
    pending: int = 0  # pins never checked yet


def digest(facts: DigestFacts, since: datetime, now: datetime) -> Report:
    payload = {
        "period_start": iso(since), "period_end": iso(now),
        "pins": facts.pins, "pending": facts.pending, "unknown": facts.unknown, "unavailable": facts.unavailable,
        "changes": facts.changes, "new_lookalikes": facts.new_lookalikes,
        "open_findings": facts.open_findings, "open_by_severity": dict(facts.open_by_severity),
        "lookalike": dict(facts.lookalike) if facts.lookalike is not None else None,
    }
    return Report("digest", payload, iso(now))
