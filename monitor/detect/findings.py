"""The Finding: what detection produces and what alerts carry."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

SEVERITIES = ("info", "low", "medium", "high", "critical")


def severity_rank(severity: str) -> int:
    """Order severities: info=0 … critical=4."""
    return SEVERITIES.index(severity)


def max_severity(*severities: str) -> str:
    return max(severities, key=severity_rank)


def fingerprint(kind: str, subject: str, key: Any) -> str:
    """Stable id of a distinct finding: same (kind, subject, key) -> same fingerprint, forever."""
    blob = json.dumps([kind, subject.lower(), key], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Finding:
    """One thing worth telling a security team.

    `evidence` is JSON-serialisable; `links` point at Hub pages; `fingerprint` identifies the
    finding across runs (the alert pipeline sends each fingerprint once).
    """

    kind: str
    severity: str
    subject: str
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict, compare=False)
    links: tuple[Link, ...] = ()
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        if not self.fingerprint:
            raise ValueError("a finding needs a fingerprint")

    @classmethod
    def make(cls, kind: str, severity: str, subject: str, summary: str, *, key: Any,
             evidence: Mapping[str, Any] | None = None, links: tuple[Link, ...] = ()) -> "Finding":
        """Build a finding whose fingerprint is derived from (kind, subject, key)."""
        return cls(kind, severity, subject, summary, dict(evidence or {}), tuple(links),
                   fingerprint(kind, subject, key))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "subject": self.subject,
            "summary": self.summary,
            "evidence": dict(self.evidence),
            "links": [{"label": l.label, "url": l.url} for l in self.links],
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Finding":
        return cls(d["kind"], d["severity"], d["subject"], d["summary"], dict(d.get("evidence") or {}),
                   tuple(Link(l["label"], l["url"]) for l in d.get("links") or ()), d["fingerprint"])


# Every finding kind (docs/detection.md lists each; tests/test_deploy_cli.py keeps the two equal):
# `findings --kind` refuses any other word instead of printing nothing.
KINDS = ("ref_moved", "risky_change", "tag_moved", "pin_unreachable", "pin_unverified", "repo_unavailable",
         "repo_renamed", "repo_recreated", "scan_flagged", "monitoring_degraded", "token_rejected",
         "lookalike", "repo_clone", "roster_membership", "content_flagged")
